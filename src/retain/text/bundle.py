"""One text model for sentiment and themes: the fitted estimators, the theme ids and threshold.

:class:`TextModelBundle` is what ``retain text train`` registers (wrapped as an MLflow pyfunc by
``retain.tracking``) and what ``retain text score`` applies. Its :meth:`~TextModelBundle.predict`
turns texts into the scores table, whichever kind of model is inside (TF-IDF, transformer,
zero-label): columns are matched to the models' ``classes_`` by name, never by position.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from retain.contracts import SENTIMENTS, THEME_SEPARATOR
from retain.text.inputs import as_texts
from retain.text.scoring import (
    CLAUSE_SENTIMENT_METHOD,
    THEME_SENTIMENTS,
    class_probabilities,
    theme_column,
    theme_sentiments,
)

logger = logging.getLogger(__name__)

SENTIMENT_LABEL = "sentiment"
THEMES_LABEL = "themes"
LABEL_COLUMNS = (SENTIMENT_LABEL, THEMES_LABEL, THEME_SENTIMENTS)


def assign_themes(
    model: Any, probabilities: np.ndarray, threshold: float, single_label: bool = False
) -> np.ndarray:
    """The 0/1 theme matrix: each theme at or above its threshold, or the most probable one.

    The thresholds are the theme model's own ``thresholds_`` when it has one per theme (tuned
    per theme, as the transformer and zero-label classifiers do), otherwise ``threshold`` for
    all. A model with ``at_least_one`` set also gets its most probable theme on every text.
    With ``single_label`` every text gets exactly its most probable theme (thresholds unused).
    """
    probabilities = np.asarray(probabilities, dtype=float)
    if single_label:
        marked = np.zeros(probabilities.shape, dtype=int)
        if probabilities.size:
            marked[np.arange(len(probabilities)), probabilities.argmax(axis=1)] = 1
        return marked
    own = getattr(model, "thresholds_", None)
    if own is not None and len(own) == probabilities.shape[1]:
        thresholds = np.asarray(own, dtype=float)
    else:
        thresholds = np.full(probabilities.shape[1], float(threshold))
    marked = probabilities >= thresholds
    if getattr(model, "at_least_one", False) and len(probabilities):
        marked[np.arange(len(probabilities)), probabilities.argmax(axis=1)] = True
    return marked.astype(int)


@dataclass(frozen=True)
class TextModelBundle:
    """Fitted sentiment and/or theme models behind one ``predict``.

    Attributes
    ----------
    sentiment
        A fitted classifier whose ``classes_`` name sentiments, or None (no sentiment output).
    themes
        A fitted theme classifier, or None (no theme output): multi-label (probabilities in
        ``theme_ids`` order, ``classes_`` the ids or their positions) or, with
        ``single_label_themes``, single-label (``classes_`` the theme ids it was fitted on, a
        subset of ``theme_ids``; the others get probability 0).
    theme_ids
        The taxonomy's theme ids, in order.
    threshold
        A theme is assigned when its probability is at least this, unless the theme model
        carries its own per-theme ``thresholds_`` (see :func:`assign_themes`).
    kinds
        Task to model kind (``tfidf``, ``transformer``, ``zero_label``), for the record.
    single_label_themes
        Each text gets exactly one theme, the most probable (``themes_mode`` single); False:
        every theme at or above its threshold.
    """

    sentiment: Any | None
    themes: Any | None
    theme_ids: tuple[str, ...]
    threshold: float = 0.5
    kinds: dict[str, str] = field(default_factory=dict)
    # Last, with a default: bundles pickled before it existed read it from the class (False).
    single_label_themes: bool = False

    @property
    def sentiment_labels(self) -> list[str]:
        """The sentiments the model predicts, in the order negative, neutral, positive."""
        if self.sentiment is None:
            return []
        known = {str(c) for c in self.sentiment.classes_}
        return [s for s in SENTIMENTS if s in known]

    @property
    def columns(self) -> list[str]:
        """The columns :meth:`predict` returns, in order."""
        columns: list[str] = []
        if self.sentiment is not None:
            columns += [f"sentiment_{s}" for s in self.sentiment_labels] + [SENTIMENT_LABEL]
        if self.themes is not None:
            columns += [theme_column(t) for t in self.theme_ids] + [THEMES_LABEL]
        if self.theme_sentiment_method is not None:
            columns.append(THEME_SENTIMENTS)
        return columns

    @property
    def theme_sentiment_method(self) -> str | None:
        """How ``theme_sentiments`` is made (see :func:`theme_sentiments`); None without it."""
        if self.sentiment is None or self.themes is None:
            return None
        return CLAUSE_SENTIMENT_METHOD

    def predict(self, texts: Any) -> pd.DataFrame:
        """Sentiment and theme probabilities and labels, one row per text.

        Parameters
        ----------
        texts
            Anything :func:`retain.text.inputs.as_texts` accepts. A missing or blank text gets
            missing probabilities and empty labels.

        Returns
        -------
        pandas.DataFrame
            ``sentiment_<label>`` probabilities and ``sentiment`` (the most probable label),
            when there is a sentiment model; ``theme_<id>`` probabilities and ``themes`` (the ids
            at or above the threshold joined by ``|``, ``""`` for none; with
            ``single_label_themes`` the most probable id), when there is a theme model; with both, ``theme_sentiments`` (``theme:sentiment`` pairs joined by ``|``,
            from :func:`retain.text.scoring.theme_sentiments`). Index ``0..n-1``.
        """
        texts = as_texts(texts)
        if not texts:
            return pd.DataFrame(
                {c: pd.Series(dtype=object if c in LABEL_COLUMNS else float) for c in self.columns}
            )
        parts: list[pd.DataFrame] = []
        if self.sentiment is not None:
            labels = self.sentiment_labels
            proba = class_probabilities(self.sentiment, texts, labels, "sentiment")
            frame = pd.DataFrame(proba, columns=[f"sentiment_{s}" for s in labels])
            best = np.asarray(labels, dtype=object)[proba.argmax(axis=1)]
            frame[SENTIMENT_LABEL] = pd.Series(best, dtype=object)
            parts.append(frame)
        if self.themes is not None:
            ids = list(self.theme_ids)
            proba = class_probabilities(self.themes, texts, ids, "theme")
            frame = pd.DataFrame(proba, columns=[theme_column(t) for t in ids])
            marked = assign_themes(
                self.themes, proba, self.threshold, single_label=self.single_label_themes
            )
            chosen = [[ids[j] for j in np.flatnonzero(row)] for row in marked]
            frame[THEMES_LABEL] = pd.Series([THEME_SEPARATOR.join(t) for t in chosen], dtype=object)
            parts.append(frame)
        if not parts:
            return pd.DataFrame(index=pd.RangeIndex(len(texts)))
        scores = pd.concat(parts, axis=1)
        if self.theme_sentiment_method is not None:
            scores[THEME_SENTIMENTS], _ = theme_sentiments(texts, scores, self)
        # A blank text says nothing: no probabilities and no labels, rather than a confident
        # guess from the models' bias.
        blank = np.array([not t.strip() for t in texts])
        if blank.any():
            numeric = [c for c in scores.columns if c not in LABEL_COLUMNS]
            scores.loc[blank, numeric] = np.nan
            scores.loc[blank, [c for c in scores.columns if c in LABEL_COLUMNS]] = ""
        return scores[self.columns]
