"""Theme discovery on unlabelled text: cluster sentence embeddings, name clusters by their terms.

:func:`discover_themes` proposes themes for a pile of feedback nobody has labelled yet:

1. ``normalise``: strip, drop empty texts and duplicates, sort (so input order cannot matter);
2. ``embed``: sentence vectors from the encoder (:func:`retain.text.encoder.embed`);
3. ``cluster``: KMeans with a fixed seed; with ``n_themes=None`` the number of clusters with the
   best silhouette in ``[min_themes, max_themes]``; clusters smaller than ``min_share`` dropped;
4. ``name``: each cluster's distinctive terms by class-based TF-IDF (a cluster's term frequency
   times ``log(1 + mean words per cluster / the term's count over all clusters)``), an id from
   its top terms (unique, deterministic), a description listing the terms, and the texts
   nearest the cluster's centre as examples.

:func:`taxonomy_yaml` turns the result into taxonomy YAML (loadable with
``retain.config.load_config(path, Taxonomy)``) for a person to edit; write it with
:func:`retain.data.write_text_file`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from retain.text.encoder import DEFAULT_ENCODER, embed, load_encoder
from retain.text.inputs import as_texts

logger = logging.getLogger(__name__)

_TAXONOMY_KEYS = ("id", "name", "description", "examples")
_TOKEN = r"(?u)\b[^\W\d_][\w'-]*[^\W_]\b"


def normalise_texts(texts: Iterable[Any]) -> list[str]:
    """Stripped, non-empty, distinct texts in sorted order (whitespace runs become one space)."""
    cleaned = {" ".join(t.split()) for t in as_texts(list(texts))}
    return sorted(t for t in cleaned if t)


def choose_n_clusters(
    vectors: np.ndarray, candidates: Sequence[int], random_state: int = 0
) -> tuple[int, dict[int, float]]:
    """The candidate cluster count with the best silhouette (cosine), and every score.

    Ties go to the smaller count. At most 2,000 rows (a seeded sample) enter the silhouette.
    """
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    scores: dict[int, float] = {}
    for k in candidates:
        if not 2 <= k < len(vectors):
            continue
        labels = KMeans(n_clusters=k, n_init=10, random_state=random_state).fit_predict(vectors)
        if len(set(labels)) < 2:
            continue
        scores[k] = float(
            silhouette_score(
                vectors,
                labels,
                metric="cosine",
                sample_size=min(len(vectors), 2000),
                random_state=random_state,
            )
        )
    if not scores:
        raise ValueError(f"no cluster count in {list(candidates)} fits {len(vectors)} texts")
    best = max(scores, key=lambda k: (round(scores[k], 6), -k))
    return best, scores


def class_tfidf_terms(
    cluster_texts: Sequence[Sequence[str]], n_terms: int = 5, stop_words: str | None = "english"
) -> list[list[str]]:
    """The ``n_terms`` most distinctive words or word pairs of each cluster (class-based TF-IDF).

    Ties are broken alphabetically, so the result depends only on the clusters' texts.
    """
    from sklearn.feature_extraction.text import CountVectorizer

    documents = [" \n ".join(texts) for texts in cluster_texts]
    vectorizer = CountVectorizer(
        stop_words=stop_words, ngram_range=(1, 2), token_pattern=_TOKEN, strip_accents="unicode"
    )
    counts = vectorizer.fit_transform(documents).toarray().astype(np.float64)
    vocabulary = vectorizer.get_feature_names_out()
    tf = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)
    mean_words = counts.sum() / max(len(documents), 1)
    idf = np.log1p(mean_words / np.maximum(counts.sum(axis=0), 1.0))
    weight = tf * idf
    out = []
    for row in weight:
        order = sorted(np.flatnonzero(row > 0), key=lambda j: (-round(row[j], 12), vocabulary[j]))
        out.append([str(vocabulary[j]) for j in order[:n_terms]])
    return out


def _slug(term: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", term.lower()).strip("_")


def theme_ids(term_lists: Sequence[Sequence[str]], n_id_terms: int = 2) -> list[str]:
    """Ids from each cluster's top terms, made unique deterministically.

    An id joins the first ``n_id_terms`` terms (``"late_flight_delayed"``); if it is taken, one
    more term is added, and if the terms run out, ``_2``, ``_3``, ... Clusters are served in the
    given order (put the larger first).
    """
    used: set[str] = set()
    ids = []
    for position, terms in enumerate(term_lists):
        slugs = list(dict.fromkeys(s for s in (_slug(t) for t in terms) if s))
        candidate = ""
        for width in range(min(n_id_terms, len(slugs)), len(slugs) + 1):
            candidate = "_".join(slugs[:width]) if width else ""
            if candidate and candidate not in used:
                break
        base = candidate or f"theme_{position + 1}"
        candidate, suffix = base, 2
        while candidate in used:
            candidate, suffix = f"{base}_{suffix}", suffix + 1
        used.add(candidate)
        ids.append(candidate)
    return ids


def discover_themes(
    texts: Any,
    *,
    encoder: str = DEFAULT_ENCODER,
    n_themes: int | None = None,
    min_themes: int = 3,
    max_themes: int = 12,
    min_share: float = 0.02,
    n_terms: int = 6,
    n_examples: int = 3,
    stop_words: str | None = "english",
    random_state: int = 0,
    batch_size: int = 64,
    max_length: int = 128,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Propose themes for unlabelled texts.

    Parameters
    ----------
    texts
        Feedback texts (anything :func:`retain.text.inputs.as_texts` accepts); order, surrounding
        whitespace, duplicates and missing texts do not change the result.
    encoder
        Sentence encoder name or folder (see :func:`retain.text.encoder.resolve_encoder`).
    n_themes
        Number of clusters; ``None`` chooses it by silhouette in ``[min_themes, max_themes]``.
    min_themes, max_themes
        The range searched when ``n_themes`` is ``None``.
    min_share
        Clusters holding fewer than this share of the distinct texts are dropped (and so fewer
        than ``n_themes`` themes may come back).
    n_terms
        Distinctive terms listed per theme.
    n_examples
        Example texts per theme, the nearest to the cluster's centre.
    stop_words
        Passed to scikit-learn's ``CountVectorizer`` when naming clusters.
    random_state
        KMeans and silhouette seed.
    batch_size, max_length, progress
        As in :func:`retain.text.encoder.embed`.

    Returns
    -------
    list of dict
        One dict per theme, largest first: ``id``, ``name``, ``description``, ``examples``
        (the taxonomy fields, see :func:`taxonomy_yaml`), plus ``size`` (distinct texts in the
        cluster) and ``terms``.
    """
    corpus = normalise_texts(as_texts(texts))
    if len(corpus) < 3:
        raise ValueError(f"theme discovery needs at least 3 distinct texts, got {len(corpus)}")
    vectors = embed(
        corpus,
        load_encoder(encoder),
        batch_size=batch_size,
        max_length=max_length,
        progress=progress,
    )
    labels, centres = _cluster(vectors, n_themes, min_themes, max_themes, random_state)
    minimum = max(2, int(np.ceil(min_share * len(corpus))))
    clusters = [np.flatnonzero(labels == c) for c in range(len(centres))]
    kept = [c for c in range(len(centres)) if len(clusters[c]) >= minimum]
    logger.info(
        "Discovered %d clusters in %d texts; %d kept (at least %d texts each)",
        len(centres),
        len(corpus),
        len(kept),
        minimum,
    )
    terms = class_tfidf_terms(
        [[corpus[i] for i in clusters[c]] for c in range(len(centres))], n_terms, stop_words
    )
    # Largest first; equal sizes by their terms, so the order does not hang on KMeans numbering.
    kept.sort(key=lambda c: (-len(clusters[c]), terms[c]))
    ids = theme_ids([terms[c] for c in kept])
    themes = []
    for theme_id, c in zip(ids, kept, strict=True):
        members = clusters[c]
        centre = centres[c] / max(float(np.linalg.norm(centres[c])), 1e-12)
        closeness = vectors[members] @ centre
        nearest = members[np.lexsort((members, -np.round(closeness, 6)))][:n_examples]
        words = terms[c]
        themes.append(
            {
                "id": theme_id,
                "name": ", ".join(words[:3]).capitalize() if words else theme_id,
                "description": (
                    f"Discovered theme ({len(members)} of {len(corpus)} texts); "
                    f"distinctive terms: {', '.join(words)}."
                ),
                "examples": [corpus[i] for i in nearest],
                "size": len(members),
                "terms": list(words),
            }
        )
    return themes


def _cluster(
    vectors: np.ndarray,
    n_themes: int | None,
    min_themes: int,
    max_themes: int,
    random_state: int,
) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.cluster import KMeans

    if n_themes is None:
        upper = min(max_themes, len(vectors) - 1)
        n_themes, scores = choose_n_clusters(
            vectors, range(min(min_themes, upper), upper + 1), random_state
        )
        logger.info("Silhouette by cluster count: %s; chose %d", scores, n_themes)
    if not 1 <= n_themes <= len(vectors):
        raise ValueError(f"n_themes must be between 1 and {len(vectors)}, got {n_themes}")
    model = KMeans(n_clusters=n_themes, n_init=10, random_state=random_state).fit(vectors)
    return model.labels_, model.cluster_centers_


def taxonomy_yaml(themes: Sequence[Any], header: str | None = None) -> str:
    """Taxonomy YAML text for ``themes`` (dicts or :class:`retain.config.Theme` objects).

    Only the taxonomy's fields are written (``id``, ``name``, ``description``, ``examples`` and,
    where set, ``churn_relevant``), so ``retain.config.load_config(path, Taxonomy)`` reads the
    file back. ``header`` becomes a comment at the top.
    """
    import yaml

    entries = []
    for theme in themes:
        fields = theme if isinstance(theme, dict) else theme.model_dump()
        entry = {key: fields[key] for key in _TAXONOMY_KEYS if key in fields}
        entry["examples"] = [str(e) for e in entry.get("examples", ())]
        if fields.get("churn_relevant"):
            entry["churn_relevant"] = True
        entries.append(entry)
    body = yaml.safe_dump(
        {"themes": entries},
        sort_keys=False,
        allow_unicode=True,
        width=100,
        default_flow_style=False,
    )
    if header is None:
        header = (
            "Themes proposed by retain's theme discovery. Edit freely: rename ids and names,\n"
            "merge or drop themes, improve descriptions and examples."
        )
    comment = "".join(f"# {line}\n" for line in header.splitlines())
    return comment + body
