"""Feedback scores: sentiment and theme probabilities per feedback text, from any fitted models.

:func:`score_feedback` turns any pair of estimators (anything with ``predict_proba`` and
``classes_``: the TF-IDF pipelines, a transformer model) into the feedback-scores table the churn
features read.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from retain.contracts import SENTIMENTS
from retain.text.inputs import as_texts

logger = logging.getLogger(__name__)

SENTIMENT_COLUMNS: tuple[str, ...] = tuple(f"sentiment_{s}" for s in SENTIMENTS)
"""Sentiment probability columns of the feedback-scores table, in this order."""

THEME_PREFIX = "theme_"


def theme_column(theme_id: str) -> str:
    """The feedback-scores column holding the probability of ``theme_id``."""
    return f"{THEME_PREFIX}{theme_id}"


def feedback_score_columns(theme_ids: Sequence[str]) -> list[str]:
    """All columns of the feedback-scores table, in order."""
    return ["feedback_id", *SENTIMENT_COLUMNS, *(theme_column(t) for t in theme_ids)]


def class_probabilities(
    model: Any, texts: list[str], wanted: Sequence[str], what: str
) -> np.ndarray:
    """``model``'s probabilities for the classes ``wanted``, mapped by class name.

    Integer classes ``0..k-1`` (a multi-label model fitted on an indicator matrix) are read as
    positions in ``wanted``. A wanted class the model does not know gets probability 0.
    """
    proba = np.asarray(model.predict_proba(texts), dtype=float)
    classes = list(getattr(model, "classes_", range(proba.shape[1])))
    if proba.ndim != 2 or proba.shape[1] != len(classes):
        raise ValueError(
            f"{what} model returned probabilities of shape {proba.shape} "
            f"for {len(classes)} classes_"
        )
    names = [str(c) for c in classes]
    positional = all(isinstance(c, (int, np.integer)) for c in classes)
    if positional and len(wanted) == 1 and list(classes) == [0, 1]:
        # A one-theme taxonomy: the indicator matrix has one column and the model is binary.
        return proba[:, [1]]
    if positional and (
        [int(c) for c in classes] == list(range(len(wanted))) or not set(names) & set(wanted)
    ):
        # A model fitted on an indicator matrix: its classes are positions in ``wanted``, even
        # when theme ids look like numbers ("1", "2", "3").
        names = [wanted[int(c)] if 0 <= int(c) < len(wanted) else str(c) for c in classes]
    column = {name: j for j, name in enumerate(names)}
    missing = [w for w in wanted if w not in column]
    if missing:
        logger.warning(
            "The %s model does not know class(es) %s; their probability is set to 0",
            what,
            ", ".join(missing),
        )
    out = np.zeros((proba.shape[0], len(wanted)), dtype=float)
    for i, w in enumerate(wanted):
        if w in column:
            out[:, i] = proba[:, column[w]]
    return out


def _probabilities_or_nan(
    model: Any | None, texts: Any, wanted: Sequence[str], what: str
) -> np.ndarray:
    if model is None:
        return np.full((texts.shape[0] if hasattr(texts, "shape") else len(texts), len(wanted)), np.nan)
    return class_probabilities(model, texts, wanted, what)


class _OnFeatures:
    """A pipeline's last step, fed the features its earlier steps made (shared with another model)."""

    def __init__(self, pipeline: Any) -> None:
        self.classifier = pipeline.steps[-1][1]
        self.classes_ = getattr(pipeline, "classes_", getattr(self.classifier, "classes_", None))

    def predict_proba(self, features: Any) -> np.ndarray:
        return self.classifier.predict_proba(features)


def shared_text_features(first: Any, second: Any) -> bool:
    """Whether two fitted pipelines turn a text into the same features (all steps but the last).

    Then the texts are vectorised once for both: :func:`score_feedback` does so, which halves the
    text work of a scoring run when sentiment and themes were fitted on the same texts with the
    same settings (the TF-IDF models of `retain train`).
    """
    from joblib import hash as content_hash
    from sklearn.pipeline import Pipeline

    if not (isinstance(first, Pipeline) and isinstance(second, Pipeline)) or len(first.steps) < 2:
        return False
    known = _SHARED.setdefault(first, {})
    if id(second) not in known:  # hashing the vocabularies takes a while: once per pair of models
        same_steps = [type(s) for _, s in first.steps[:-1]] == [type(s) for _, s in second.steps[:-1]]
        known[id(second)] = same_steps and content_hash(first[:-1]) == content_hash(second[:-1])
    return known[id(second)]


#: Per fitted pipeline, whether it shares its features with another (by that one's id; a fitted
#: model is not changed after fitting, and the entry goes when the first pipeline does).
_SHARED: weakref.WeakKeyDictionary[Any, dict[int, bool]] = weakref.WeakKeyDictionary()


def score_feedback(
    feedback: pd.DataFrame,
    sentiment_model: Any | None,
    theme_model: Any | None,
    theme_ids: Sequence[str],
) -> pd.DataFrame:
    """Sentiment and theme probabilities for every feedback text.

    Parameters
    ----------
    feedback
        The feedback table (needs ``feedback_id`` and ``text``; missing text counts as empty).
    sentiment_model
        A fitted estimator with ``predict_proba(texts)`` and ``classes_`` naming sentiments, or
        None (no sentiment labels to fit one): the sentiment columns are then NaN.
    theme_model
        A fitted estimator with ``predict_proba(texts)`` of shape ``(n, n_themes)`` and
        ``classes_`` either the theme ids or the positions ``0..n_themes-1`` in ``theme_ids``,
        or None: the theme columns are then NaN.
    theme_ids
        The taxonomy's theme ids, in order.

    Returns
    -------
    pandas.DataFrame
        ``feedback_id``, ``sentiment_negative``, ``sentiment_neutral``, ``sentiment_positive``
        and ``theme_<id>`` per theme, with ``feedback``'s index. Columns are matched to the
        models' outputs by class name, never by position, so models whose classes come in
        another order (or lack a class, which then gets probability 0) score correctly.
    """
    columns = feedback_score_columns(theme_ids)
    if feedback.empty:
        out = pd.DataFrame({c: pd.Series(dtype=float) for c in columns}, index=feedback.index)
        out["feedback_id"] = feedback["feedback_id"]
        return out[columns]
    texts: Any = as_texts(feedback["text"])
    if sentiment_model is not None and theme_model is not None and shared_text_features(sentiment_model, theme_model):
        texts = sentiment_model[:-1].transform(texts)
        sentiment_model, theme_model = _OnFeatures(sentiment_model), _OnFeatures(theme_model)
    sentiment = _probabilities_or_nan(sentiment_model, texts, SENTIMENTS, "sentiment")
    themes = _probabilities_or_nan(theme_model, texts, list(theme_ids), "theme")
    out = pd.DataFrame(np.hstack([sentiment, themes]), columns=columns[1:], index=feedback.index)
    out.insert(0, "feedback_id", feedback["feedback_id"])
    return out


# --- ``retain text score``: sentiment per theme and the summary ----------------------------------

THEME_SENTIMENTS = "theme_sentiments"
"""Column of the text scores: ``theme:sentiment`` pairs joined by ``|`` (``billing:negative``)."""

OVERALL_SENTIMENT_METHOD = "overall"
"""Sentiment per theme is the text's overall sentiment (without models, see theme_sentiments)."""

CLAUSE_SENTIMENT_METHOD = "clauses"
"""Sentiment per theme from the clauses that raise the theme (see theme_sentiments)."""


def theme_sentiments(
    texts: Sequence[str], scores: pd.DataFrame, models: Any = None
) -> tuple[pd.Series, str]:
    """Sentiment per theme raised, per text, and the method that produced it.

    For every theme in a text's ``themes``, the clause rule of
    :func:`retain.text.aspects.pair_sentiment`: the text is split into clauses ("the staff were
    lovely but billing was a mess" -> two), both models score every clause, and the theme takes
    the sentiment of the clauses that raise it (``mixed`` when they disagree strongly), or the
    whole text's sentiment when no single clause raises it. It runs inside
    :meth:`TextModelBundle.predict`, so its output is cached and returned by the pyfunc.

    Parameters
    ----------
    texts
        The texts, row for row with ``scores``.
    scores
        The sentiment and theme scores of those texts: needs ``sentiment`` and ``themes``.
    models
        The :class:`~retain.text.bundle.TextModelBundle` that produced ``scores`` (its
        ``sentiment``, ``themes``, ``theme_ids`` and ``threshold``). Without it, every theme
        gets the text's overall sentiment (method ``"overall"``).

    Returns
    -------
    tuple
        ``(pairs, method)``: ``pairs`` holds ``theme:sentiment`` joined by ``|`` (``""`` when the
        text raises no theme) with ``scores``' index; ``method`` is ``"clauses"`` or
        ``"overall"``.
    """
    raised = [[t for t in str(themes).split("|") if t] for themes in scores["themes"]]
    if models is None or models.sentiment is None or models.themes is None:
        pairs = [
            "|".join(f"{theme}:{sentiment}" for theme in themes)
            for themes, sentiment in zip(raised, scores["sentiment"])
        ]
        return pd.Series(pairs, index=scores.index, dtype=object), OVERALL_SENTIMENT_METHOD
    from retain.text.aspects import pair_sentiment

    rows = [i for i, themes in enumerate(raised) for _ in themes]
    items = [theme for themes in raised for theme in themes]
    texts = list(texts)
    sentiments: list[str] = []
    if items:
        own = getattr(models.themes, "thresholds_", None) is not None
        polarity = pair_sentiment(
            [texts[i] for i in rows],
            items,
            models.sentiment,
            models.themes,
            models.theme_ids,
            threshold=None if own else models.threshold,
        )
        sentiments = polarity["sentiment"].astype(str).tolist()
    joined: list[list[str]] = [[] for _ in raised]
    for row, theme, sentiment in zip(rows, items, sentiments):
        joined[row].append(f"{theme}:{sentiment}")
    pairs = ["|".join(p) for p in joined]
    return pd.Series(pairs, index=scores.index, dtype=object), CLAUSE_SENTIMENT_METHOD


def theme_sentiment_counts(scores: pd.DataFrame) -> pd.DataFrame:
    """Texts per theme (rows, ``(no theme)`` last) and sentiment (columns), with totals.

    A text raising two themes counts once under each. Without a sentiment column there is one
    ``texts`` column; without themes, one ``(all texts)`` row.
    """
    if "themes" in scores.columns:
        themes = scores["themes"].fillna("").astype(str).str.split("|")
        raised = [[t for t in ts if t] or ["(no theme)"] for ts in themes]
        long = scores.assign(theme=raised).explode("theme")
    else:
        long = scores.assign(theme="(all texts)")
    if "sentiment" in scores.columns:
        table = pd.crosstab(long["theme"], long["sentiment"].astype(str))
        table = table[[s for s in SENTIMENTS if s in table.columns]]
        table["total"] = table.sum(axis=1)
    else:
        table = long.groupby("theme").size().to_frame("texts")
    order = sorted(table.index, key=lambda t: (t == "(no theme)", -int(table.loc[t].iloc[-1]), t))
    table = table.loc[order]
    table.index.name = "theme"
    table.columns.name = None
    return table
