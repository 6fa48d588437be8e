"""Feedback text models: sentiment (multi-class) and themes (multi-label), and their scores.

Both models are plain scikit-learn Pipelines (TF-IDF features, then logistic regression), so
``clone``, grid search and MLflow's sklearn flavour work on them unchanged:

- the sentiment model is fitted on ``(texts, labels)`` with labels in
  ``{"negative", "neutral", "positive"}``; its ``classes_`` are sorted;
- the theme model is fitted on ``(texts, Y)`` with ``Y`` a 0/1 indicator matrix of shape
  ``(n_texts, n_themes)`` whose columns follow the taxonomy order (see :func:`theme_indicators`).

:func:`score_feedback` turns any pair of such estimators (anything with ``predict_proba`` and
``classes_``, e.g. a future transformer model) into the feedback-scores table the churn features
read, and :func:`out_of_fold_feedback_scores` produces the same table for labelled feedback with
each row scored by models that never saw it, so that churn models are not trained on flattered
text features.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.dummy import DummyClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.preprocessing import FunctionTransformer

from retain.config import TextModelConfig
from retain.contracts import SENTIMENTS, split_themes

logger = logging.getLogger(__name__)

SENTIMENT_COLUMNS: tuple[str, ...] = tuple(f"sentiment_{s}" for s in SENTIMENTS)
"""Sentiment probability columns of the feedback-scores table, in this order."""

THEME_PREFIX = "theme_"

# Character n-grams within word boundaries catch misspellings, elongations ("sooo"), hashtags
# and word stems that word n-grams miss. Measured with the default settings: on the airline
# tweets (benchmark T1) they lift sentiment accuracy / macro-F1 from 0.799 / 0.727 to
# 0.817 / 0.756, and on SemEval-2014 restaurant categories (T3) theme micro-F1 from 0.839 to
# 0.852. The price is speed: sentiment + themes score about 3,500 tweets/s on one core instead
# of about 28,000 with words alone.
_CHAR_NGRAM_RANGE = (2, 5)
_MAX_ITER = 2000


def theme_column(theme_id: str) -> str:
    """The feedback-scores column holding the probability of ``theme_id``."""
    return f"{THEME_PREFIX}{theme_id}"


def feedback_score_columns(theme_ids: Sequence[str]) -> list[str]:
    """All columns of the feedback-scores table, in order."""
    return ["feedback_id", *SENTIMENT_COLUMNS, *(theme_column(t) for t in theme_ids)]


def as_texts(texts: Any) -> list[str]:
    """Turn texts into a list of strings; missing values (``None``, NaN, ``pd.NA``) become ``""``.

    Accepts a list, a pandas Series, a one-column DataFrame or a 1-d / ``(n, 1)`` array. It is
    the first step of both text Pipelines, so a fitted model scores missing text as empty text.
    """
    if isinstance(texts, pd.DataFrame):
        if texts.shape[1] != 1:
            raise ValueError(f"expected one text column, got {texts.shape[1]} columns")
        texts = texts.iloc[:, 0]
    if isinstance(texts, str):
        raise TypeError("expected a sequence of texts, got a single string")
    values = np.asarray(list(texts) if not hasattr(texts, "__array__") else texts, dtype=object)
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim != 1:
        raise ValueError(f"expected a 1-d sequence of texts, got shape {values.shape}")
    return ["" if _is_missing(v) else str(v) for v in values]


def _is_missing(value: object) -> bool:
    if value is None or value is pd.NA:
        return True
    return isinstance(value, float) and np.isnan(value)


def _tfidf(analyzer: str, ngram_range: tuple[int, int], config: TextModelConfig) -> TfidfVectorizer:
    return TfidfVectorizer(
        analyzer=analyzer,
        ngram_range=ngram_range,
        sublinear_tf=True,
        min_df=config.min_df,
        max_features=config.max_features,
        strip_accents="unicode",
        dtype=np.float32,
    )


def _text_features(config: TextModelConfig) -> FeatureUnion:
    """Word n-gram TF-IDF plus (if ``config.char_ngrams``) character n-gram TF-IDF, concatenated."""
    parts = [("words", _tfidf("word", (1, config.ngram_max), config))]
    if config.char_ngrams:
        parts.append(("chars", _tfidf("char_wb", _CHAR_NGRAM_RANGE, config)))
    return FeatureUnion(parts)


def make_sentiment_model(config: TextModelConfig | None = None) -> Pipeline:
    """An unfitted sentiment Pipeline: TF-IDF word + character n-grams, logistic regression.

    Parameters
    ----------
    config
        TF-IDF and regularisation settings; the defaults of :class:`TextModelConfig` if omitted.

    Returns
    -------
    Pipeline
        ``fit(texts, labels)`` with labels such as ``negative``/``neutral``/``positive``;
        ``predict_proba(texts)`` has one column per entry of the sorted ``classes_``. Missing
        texts are treated as empty strings.
    """
    config = config or TextModelConfig()
    return Pipeline(
        [
            ("text", FunctionTransformer(as_texts)),
            ("features", _text_features(config)),
            ("classifier", LogisticRegression(C=config.C, max_iter=_MAX_ITER)),
        ]
    )


def make_theme_model(config: TextModelConfig | None = None) -> Pipeline:
    """An unfitted multi-label theme Pipeline: TF-IDF, one logistic regression per theme.

    Parameters
    ----------
    config
        TF-IDF and regularisation settings; the defaults of :class:`TextModelConfig` if omitted.

    Returns
    -------
    Pipeline
        ``fit(texts, Y)`` with ``Y`` a 0/1 indicator matrix ``(n_texts, n_themes)`` in taxonomy
        order (:func:`theme_indicators`); ``predict_proba(texts)`` returns ``(n_texts, n_themes)``
        independent probabilities and ``classes_`` is ``[0, ..., n_themes - 1]``. A theme with
        no positive example in the training data gets a constant probability of 0 (scikit-learn
        warns "Label not k is present in all training examples").

    Notes
    -----
    Each theme's regression weighs its rare positives up (``class_weight="balanced"``), so that
    the configured threshold of 0.5 balances precision and recall instead of missing most
    mentions of rare themes: on SemEval-2014 restaurant categories this lifts micro-F1 at 0.5
    from 0.820 to 0.852. The price is that a theme probability is a score, not the frequency
    with which the theme occurs: it overstates rare themes.
    """
    config = config or TextModelConfig()
    return Pipeline(
        [
            ("text", FunctionTransformer(as_texts)),
            ("features", _text_features(config)),
            (
                "classifier",
                OneVsRestClassifier(
                    LogisticRegression(C=config.C, max_iter=_MAX_ITER, class_weight="balanced")
                ),
            ),
        ]
    )


def theme_indicators(themes: pd.Series, theme_ids: Sequence[str]) -> np.ndarray:
    """The 0/1 indicator matrix of the ``|``-joined theme column, columns in ``theme_ids`` order.

    Parameters
    ----------
    themes
        The feedback ``themes`` column: theme ids joined by ``|``; ``""`` or missing = no theme.
    theme_ids
        The taxonomy's theme ids, in order.

    Returns
    -------
    numpy.ndarray
        ``int8`` array of shape ``(len(themes), len(theme_ids))``. Ids not in ``theme_ids`` are
        ignored with a logged warning.
    """
    position = {t: i for i, t in enumerate(theme_ids)}
    Y = np.zeros((len(themes), len(theme_ids)), dtype=np.int8)
    unknown: dict[str, int] = {}
    for row, ids in enumerate(split_themes(themes)):
        for t in ids:
            if t in position:
                Y[row, position[t]] = 1
            else:
                unknown[t] = unknown.get(t, 0) + 1
    if unknown:
        logger.warning(
            "Ignoring theme ids not in the taxonomy: %s",
            ", ".join(f"{t!r} ({n} rows)" for t, n in sorted(unknown.items())),
        )
    return Y


def theme_lists(
    probabilities: np.ndarray, theme_ids: Sequence[str], threshold: float
) -> list[list[str]]:
    """The themes whose probability is at least ``threshold``, per row, in taxonomy order.

    Parameters
    ----------
    probabilities
        ``(n, n_themes)`` theme probabilities, columns in ``theme_ids`` order.
    theme_ids
        The taxonomy's theme ids, in order.
    threshold
        Minimum probability for a theme to be assigned.
    """
    probabilities = np.asarray(probabilities)
    if probabilities.ndim != 2 or probabilities.shape[1] != len(theme_ids):
        raise ValueError(
            f"expected probabilities of shape (n, {len(theme_ids)}), got {probabilities.shape}"
        )
    ids = np.asarray(theme_ids, dtype=object)
    return [list(ids[row >= threshold]) for row in probabilities]


def _class_probabilities(
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
    if positional and not set(names) & set(wanted):
        names = [wanted[int(c)] if 0 <= int(c) < len(wanted) else str(c) for c in classes]
    column = {name: j for j, name in enumerate(names)}
    missing = [w for w in wanted if w not in column]
    if missing:
        logger.warning(
            "The %s model does not know class(es) %s; their probability is set to 0",
            what,
            ", ".join(missing),
        )
    out = np.zeros((len(texts), len(wanted)), dtype=float)
    for i, w in enumerate(wanted):
        if w in column:
            out[:, i] = proba[:, column[w]]
    return out


def score_feedback(
    feedback: pd.DataFrame,
    sentiment_model: Any,
    theme_model: Any,
    theme_ids: Sequence[str],
) -> pd.DataFrame:
    """Sentiment and theme probabilities for every feedback text.

    Parameters
    ----------
    feedback
        The feedback table (needs ``feedback_id`` and ``text``; missing text counts as empty).
    sentiment_model
        A fitted estimator with ``predict_proba(texts)`` and ``classes_`` naming sentiments.
    theme_model
        A fitted estimator with ``predict_proba(texts)`` of shape ``(n, n_themes)`` and
        ``classes_`` either the theme ids or the positions ``0..n_themes-1`` in ``theme_ids``.
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
    texts = as_texts(feedback["text"])
    sentiment = _class_probabilities(sentiment_model, texts, SENTIMENTS, "sentiment")
    themes = _class_probabilities(theme_model, texts, list(theme_ids), "theme")
    out = pd.DataFrame(np.hstack([sentiment, themes]), columns=columns[1:], index=feedback.index)
    out.insert(0, "feedback_id", feedback["feedback_id"])
    return out


class _PriorTextModel:
    """Predicts the label prior for every text: the fallback when a training fold has one class."""

    def __init__(self, labels: pd.Series) -> None:
        self._prior = DummyClassifier(strategy="prior").fit(np.zeros((len(labels), 1)), labels)
        self.classes_ = self._prior.classes_

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        return self._prior.predict_proba(np.zeros((len(texts), 1)))


def _fit_sentiment(texts: list[str], labels: pd.Series, config: TextModelConfig) -> Any:
    """The sentiment model fitted on labelled rows; a prior-only model if there is one class."""
    if labels.empty:
        raise ValueError("no row with a sentiment label in a training fold")
    labels = labels.astype(str)
    if labels.nunique() < 2:
        logger.warning(
            "Only one sentiment class (%s) in a training fold; predicting it", labels.iloc[0]
        )
        return _PriorTextModel(labels)
    return make_sentiment_model(config).fit(texts, labels.to_numpy())


def out_of_fold_feedback_scores(
    feedback_labelled: pd.DataFrame,
    config: TextModelConfig | None,
    theme_ids: Sequence[str],
    n_folds: int | None = None,
) -> pd.DataFrame:
    """Feedback scores for labelled feedback, each row scored by models that did not see it.

    The rows are split into ``n_folds`` shuffled folds (``KFold(random_state=0)``); for each
    fold a sentiment model and a theme model are fitted on the other folds and score it. Churn
    features built from these scores are then as good as they will be on new feedback, not
    flattered by models that memorised their training texts.

    Parameters
    ----------
    feedback_labelled
        Feedback rows with ``feedback_id``, ``text``, ``sentiment`` and ``themes``. A row whose
        ``sentiment`` (or ``themes``) is missing is still scored, but not used to train that
        model.
    config
        Text model settings; the defaults of :class:`TextModelConfig` if ``None``.
    theme_ids
        The taxonomy's theme ids, in order.
    n_folds
        Number of folds; ``config.oof_folds`` if omitted.

    Returns
    -------
    pandas.DataFrame
        The columns of :func:`score_feedback`, one row per input row, in the input's order and
        with its index.
    """
    config = config or TextModelConfig()
    n_folds = n_folds or config.oof_folds
    n = len(feedback_labelled)
    if n < n_folds:
        raise ValueError(
            f"need at least {n_folds} labelled feedback rows for {n_folds} folds, got {n}"
        )
    texts = np.asarray(as_texts(feedback_labelled["text"]), dtype=object)
    sentiment = feedback_labelled["sentiment"].reset_index(drop=True)
    themes = feedback_labelled["themes"].reset_index(drop=True)
    Y = theme_indicators(themes, theme_ids)
    has_sentiment = sentiment.notna().to_numpy()
    has_themes = themes.map(lambda v: isinstance(v, str)).to_numpy(dtype=bool)

    parts: list[pd.DataFrame] = []
    folds = KFold(n_splits=n_folds, shuffle=True, random_state=0)
    for fold, (train, test) in enumerate(folds.split(texts), start=1):
        logger.info("Out-of-fold feedback scores: fold %d of %d", fold, n_folds)
        s_rows = train[has_sentiment[train]]
        t_rows = train[has_themes[train]]
        sentiment_model = _fit_sentiment(list(texts[s_rows]), sentiment.iloc[s_rows], config)
        if len(t_rows) == 0:
            raise ValueError("no row with theme labels in a training fold")
        theme_model = make_theme_model(config).fit(list(texts[t_rows]), Y[t_rows])
        part = score_feedback(feedback_labelled.iloc[test], sentiment_model, theme_model, theme_ids)
        part["_position"] = test
        parts.append(part)
    scores = pd.concat(parts).sort_values("_position").drop(columns="_position")
    scores.index = feedback_labelled.index
    return scores
