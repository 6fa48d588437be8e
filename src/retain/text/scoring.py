"""Feedback scores: sentiment and theme probabilities per feedback text, from any fitted models.

:func:`score_feedback` turns any pair of estimators (anything with ``predict_proba`` and
``classes_``: the TF-IDF pipelines, a transformer model) into the feedback-scores table the churn
features read.
"""

from __future__ import annotations

import logging
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


def _probabilities_or_nan(
    model: Any | None, texts: list[str], wanted: Sequence[str], what: str
) -> np.ndarray:
    if model is None:
        return np.full((len(texts), len(wanted)), np.nan)
    return class_probabilities(model, texts, wanted, what)


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
    texts = as_texts(feedback["text"])
    sentiment = _probabilities_or_nan(sentiment_model, texts, SENTIMENTS, "sentiment")
    themes = _probabilities_or_nan(theme_model, texts, list(theme_ids), "theme")
    out = pd.DataFrame(np.hstack([sentiment, themes]), columns=columns[1:], index=feedback.index)
    out.insert(0, "feedback_id", feedback["feedback_id"])
    return out
