"""Texts and theme labels as the text models take them: a list of strings, a 0/1 indicator matrix."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from retain.contracts import split_themes

logger = logging.getLogger(__name__)


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
