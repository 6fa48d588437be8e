"""The inference cache of ``retain text score``: a rerun scores only new or changed texts.

An entry is keyed by ``(id, sha256 of the text, model version)``: a text whose id and content
were scored by the same model version is taken from the cache; a new id, an edited text or
another model version is scored afresh. Cached scores are the stored output of the same model on
the same text, so a hit equals a fresh score (the tests check it). The cache holds one model
version at a time: scoring with another version replaces it.

Pure functions over DataFrames; reading and writing the cache file is ``retain.data``'s job.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

ID = "id"
TEXT_HASH = "text_sha256"
MODEL_VERSION = "model_version"
KEY_COLUMNS = (ID, TEXT_HASH, MODEL_VERSION)


def text_hashes(texts: Sequence[str]) -> list[str]:
    """The sha256 hex digest of each text's UTF-8 bytes."""
    return [hashlib.sha256(t.encode("utf-8")).hexdigest() for t in texts]


@dataclass(frozen=True)
class CachedScores:
    """Scores in input order, and how many texts were taken from the cache or scored."""

    scores: pd.DataFrame
    cache: pd.DataFrame
    n_cached: int
    n_scored: int
    #: Wall seconds spent in the model (``predict``), cache lookups excluded.
    inference_seconds: float = 0.0


def lookup(
    ids: Sequence[str],
    hashes: Sequence[str],
    cache: pd.DataFrame | None,
    model_version: str,
    columns: Sequence[str],
) -> tuple[pd.DataFrame, np.ndarray]:
    """The cached score rows that still hold, and the positions that must be scored.

    Parameters
    ----------
    ids, hashes
        Per input text, its id and :func:`text_hashes` value.
    cache
        The cache table (key columns then score columns), or None.
    model_version
        The version of the model about to score; entries of other versions do not count.
    columns
        The score columns the model produces; a cache lacking any of them is not used.

    Returns
    -------
    tuple
        ``(hits, todo)``: ``hits`` holds the score ``columns`` of the cached texts, indexed by
        their input positions; ``todo`` the positions still to score, ascending.
    """
    positions = np.arange(len(ids))
    if cache is None or cache.empty or not set(columns) <= set(cache.columns):
        return pd.DataFrame(columns=list(columns)), positions
    current = cache.loc[cache[MODEL_VERSION].astype(str) == model_version]
    if current.empty:
        return pd.DataFrame(columns=list(columns)), positions
    wanted = pd.DataFrame({ID: list(ids), TEXT_HASH: list(hashes), "_position": positions})
    keyed = current.drop_duplicates([ID, TEXT_HASH], keep="last")
    found = wanted.merge(keyed, on=[ID, TEXT_HASH], how="inner")
    hits = found.set_index("_position")[list(columns)].sort_index()
    hits.index.name = None
    todo = np.setdiff1d(positions, hits.index.to_numpy())
    return hits, todo


def updated_cache(
    cache: pd.DataFrame | None,
    ids: Sequence[str],
    hashes: Sequence[str],
    scores: pd.DataFrame,
    model_version: str,
) -> pd.DataFrame:
    """The cache after a run: this version's entries, the newest text per id winning.

    Entries of other model versions are dropped (they could never be hits again for this
    version); an id scored now replaces its older entry.
    """
    fresh = pd.concat(
        [
            pd.DataFrame({ID: list(ids), TEXT_HASH: list(hashes), MODEL_VERSION: model_version}),
            scores.reset_index(drop=True),
        ],
        axis=1,
    )
    if cache is not None and not cache.empty and list(cache.columns) == list(fresh.columns):
        kept = cache.loc[cache[MODEL_VERSION].astype(str) == model_version]
        kept = kept.loc[~kept[ID].astype(str).isin(set(ids))]
        fresh = pd.concat([kept, fresh], ignore_index=True)
    return fresh.reset_index(drop=True)


def score_with_cache(
    ids: Sequence[str],
    texts: Sequence[str],
    predict: Callable[[list[str]], pd.DataFrame],
    columns: Sequence[str],
    cache: pd.DataFrame | None,
    model_version: str,
    *,
    batch_size: int = 2048,
    show_progress: bool = False,
) -> CachedScores:
    """Score ``texts`` with ``predict``, taking unchanged texts from ``cache``.

    Parameters
    ----------
    ids, texts
        The texts to score and their ids (unique).
    predict
        Texts to a score table with ``columns`` (e.g. ``TextModelBundle.predict``).
    columns
        The score columns, in order.
    cache
        The current cache table, or None.
    model_version
        Identifies the model behind ``predict``; a different one invalidates the cache.
    batch_size
        Texts per ``predict`` call (the progress bar advances per batch).
    show_progress
        Show a progress bar over the texts to score.

    Returns
    -------
    CachedScores
        Scores in input order (index ``0..n-1``), the cache to write back, and counts.
    """
    from tqdm.auto import tqdm

    ids = [str(i) for i in ids]
    texts = list(texts)
    hashes = text_hashes(texts)
    hits, todo = lookup(ids, hashes, cache, model_version, columns)
    parts = [hits] if len(hits) else []
    inference = 0.0
    with tqdm(total=len(todo), desc="Scoring texts", unit="text", disable=not show_progress) as bar:
        for start in range(0, len(todo), batch_size):
            rows = todo[start : start + batch_size]
            started = time.perf_counter()
            scored = predict([texts[i] for i in rows])[list(columns)]
            inference += time.perf_counter() - started
            scored.index = rows
            parts.append(scored)
            bar.update(len(rows))
    scores = pd.concat(parts).sort_index() if parts else pd.DataFrame(columns=list(columns))
    scores = scores.reset_index(drop=True)
    for column in scores.columns:  # labels read back from Parquet as strings: keep one dtype
        if not pd.api.types.is_numeric_dtype(scores[column].dtype):
            scores[column] = scores[column].astype(object)
    logger.info("texts: %d taken from the cache, %d scored", len(hits), len(todo))
    return CachedScores(
        scores=scores,
        cache=updated_cache(cache, ids, hashes, scores, model_version),
        n_cached=len(hits),
        n_scored=len(todo),
        inference_seconds=inference,
    )
