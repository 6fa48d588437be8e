"""Sentiment per theme: for each theme a text raises, the polarity the text expresses about it.

"The staff were lovely but billing was a mess" raises two themes with opposite polarities; a
whole-text sentiment model calls it one thing. Two routes:

- **Clauses** (no per-theme labels needed), :func:`aspect_sentiment`: each text is split into
  clauses (:func:`split_clauses`: sentence punctuation, ``;``, dashes and contrastive
  connectives such as *but*, *however*, *although*); the fitted sentiment and theme models score
  every clause of every text in one batch; each theme the text raises takes the sentiment of the
  clauses that raise it (weighted by their theme probability), ``"mixed"`` when those clauses
  disagree strongly, and the whole text's sentiment when no single clause raises it.
- **Pairs** (per-theme polarity labels exist, as in SemEval), :func:`theme_pairs`: one
  ``(text, theme name)`` item per labelled theme, for a pair classifier: a transformer reading
  both columns as a sentence pair, or :func:`make_pair_model` (TF-IDF with per-theme copies of
  the features, logistic regression).

Any models following the package's contract work: ``predict_proba(texts)`` and ``classes_``;
theme models return ``(n, n_themes)`` with the positions ``0..n_themes-1`` (or the theme ids) as
classes and may carry per-theme ``thresholds_``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from retain.config import TextModelConfig
from retain.contracts import SENTIMENTS, split_themes
from retain.text.inputs import as_texts
from retain.text.scoring import SENTIMENT_COLUMNS, class_probabilities
from retain.text.tfidf import _text_features

logger = logging.getLogger(__name__)

MIXED = "mixed"
"""The label of a theme whose clauses disagree strongly (one clearly positive, one negative)."""

CONTRASTIVE_CONNECTIVES: tuple[str, ...] = (
    "but",
    "however",
    "although",
    "though",
    "while",
    "whereas",
    "yet",
    "nevertheless",
    "nonetheless",
)
"""Words that start a new clause: what follows often turns the polarity."""

# A leading subordinate clause ("Although the food was good, ...") ends at its first comma.
_SUBORDINATORS = ("although", "though", "while", "whereas")

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|[\r\n]+|;|\s[-\u2013\u2014]+\s|\s*\u2014\s*")
_CONNECTIVE = re.compile(
    r"(?<![^\s,])(?:even\s+though|" + "|".join(CONTRASTIVE_CONNECTIVES) + r")\b",
    flags=re.IGNORECASE,
)
# "not yet fixed", "as well while", "for a while": the word before says it is no connective.
_NOT_A_CONNECTIVE_AFTER = frozenset({"not", "a", "as", "and", "or", "the"})
# "The pasta, though, was cold." / "Good though.": a parenthetical or final "though" turns
# nothing around in the clause it sits in.
_PARENTHETICAL = frozenset({"though", "yet"})
_WORD = re.compile(r"[\w']+")
_EDGE = re.compile(r"^[\s,.;:!?\-\u2013\u2014]+|[\s,;:\-\u2013\u2014]+$")

ASPECT_COLUMNS: tuple[str, ...] = (
    "feedback_id",
    "theme",
    "theme_probability",
    *SENTIMENT_COLUMNS,
    "sentiment",
    "source",
    "clauses",
)
"""Columns of the long table returned by :func:`aspect_sentiment`."""


def split_clauses(text: str) -> list[str]:
    """Split a text into clauses that can each carry their own polarity.

    Boundaries are sentence ends (``.``, ``!``, ``?`` followed by a space), line breaks, ``;``,
    a dash between spaces, and the contrastive connectives of :data:`CONTRASTIVE_CONNECTIVES`
    (whole words, any case; the connective starts the next clause). A clause that opens with
    *although*, *though*, *while* or *whereas* also ends at its first comma ("Although the food
    was good, the service was slow" gives two clauses). Punctuation and spaces at a clause's
    edges are stripped and empty clauses dropped.

    Parameters
    ----------
    text
        One text; ``""`` gives no clause.

    Returns
    -------
    list of str
        The clauses in order; ``[text.strip()]`` when there is no boundary.
    """
    clauses: list[str] = []
    for sentence in _SENTENCE_END.split(text):
        for part in _split_connectives(sentence):
            clauses.extend(_split_leading_subordinate(part))
    cleaned = [_EDGE.sub("", c) for c in clauses]
    return [c for c in cleaned if c]


def _split_connectives(sentence: str) -> list[str]:
    """Split before each connective that follows at least two words of the clause so far."""
    parts: list[str] = []
    start = 0
    for match in _CONNECTIVE.finditer(sentence):
        words = _WORD.findall(sentence[start : match.start()])
        following = sentence[match.end() : match.end() + 1]
        if (
            len(words) < 2
            or words[-1].lower() in _NOT_A_CONNECTIVE_AFTER
            or (match.group().lower() in _PARENTHETICAL and following in {",", ".", "!", "?", ""})
        ):
            continue
        parts.append(sentence[start : match.start()])
        start = match.start()
    parts.append(sentence[start:])
    return parts


def _split_leading_subordinate(clause: str) -> list[str]:
    """ "Although A, B" -> ["Although A", "B"] (when A has at least two words)."""
    words = clause.strip().split(maxsplit=1)
    if words and words[0].lower() in _SUBORDINATORS and "," in clause:
        head, tail = clause.split(",", 1)
        if len(_WORD.findall(head)) >= 3 and _WORD.search(tail):
            return [head, tail]
    return [clause]


def theme_thresholds(
    theme_model: Any,
    n_themes: int,
    threshold: float | Sequence[float] | None = None,
    single_label: bool = False,
) -> np.ndarray:
    """The probability each theme must reach to count as raised.

    ``threshold`` if given (one number or one per theme); otherwise the model's per-theme
    ``thresholds_`` if it has them; otherwise 0.5. With ``single_label`` any probability above
    0: only the most probable theme is left non-zero (:func:`most_probable_only`).
    """
    if single_label:
        return np.full(n_themes, np.finfo(float).tiny)
    if threshold is None:
        threshold = getattr(theme_model, "thresholds_", 0.5)
    values = np.broadcast_to(np.asarray(threshold, dtype=float), (n_themes,)).copy()
    if np.any((values < 0) | (values > 1)):
        raise ValueError(f"theme thresholds must lie in [0, 1], got {values}")
    return values


def most_probable_only(probabilities: np.ndarray) -> np.ndarray:
    """Each row's highest probability kept, the others set to 0 (ties keep every maximum)."""
    probabilities = np.asarray(probabilities, dtype=float)
    if probabilities.size == 0:
        return probabilities.copy()
    top = np.nanmax(probabilities, axis=1, keepdims=True)
    return np.where(probabilities == top, probabilities, 0.0)


def aspect_sentiment(
    texts: Any,
    sentiment_model: Any,
    theme_model: Any,
    theme_ids: Sequence[str],
    *,
    feedback_ids: Sequence[Any] | None = None,
    threshold: float | Sequence[float] | None = None,
    conflict: float = 0.5,
    single_label: bool = False,
) -> pd.DataFrame:
    """Sentiment per theme, one row per (text, theme it raises).

    Every text and every clause of a text with more than one clause is scored by both models in
    one batch. A theme is raised by a text when the whole text or one of its clauses reaches the
    theme's threshold. Its sentiment is then:

    - the average sentiment of the clauses that reach the threshold, each weighted by its theme
      probability (``source="clauses"``), labelled ``"mixed"`` when one of those clauses has
      ``p(positive) >= conflict`` and another ``p(negative) >= conflict``;
    - the whole text's sentiment when the text has one clause, or no single clause reaches the
      threshold (``source="text"``).

    Parameters
    ----------
    texts
        The texts (anything :func:`retain.text.inputs.as_texts` accepts).
    sentiment_model
        A fitted sentiment estimator: ``predict_proba(texts)``, ``classes_`` naming sentiments.
    theme_model
        A fitted multi-label theme estimator: ``predict_proba(texts)`` of shape
        ``(n, len(theme_ids))``, ``classes_`` the positions or the theme ids.
    theme_ids
        The taxonomy's theme ids, in order.
    feedback_ids
        One id per text; the positions ``0..n-1`` if omitted.
    threshold
        Theme probability needed to raise a theme, one number or one per theme; default the
        theme model's ``thresholds_``, else 0.5 (see :func:`theme_thresholds`).
    conflict
        How sure two clauses must be of opposite polarities for the theme to be ``"mixed"``;
        above 1 never.
    single_label
        The theme model gives each text one theme (a softmax over themes, ``themes_mode``
        single): a text or clause raises its most probable theme, whatever its probability,
        and thresholds are not used. Read at 0.5, a softmax over many themes seldom raises any.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`ASPECT_COLUMNS`: ``feedback_id``, ``theme`` (id),
        ``theme_probability`` (the highest of the text and its clauses),
        ``sentiment_negative`` / ``_neutral`` / ``_positive``, ``sentiment`` (the most likely
        of those or ``"mixed"``), ``source`` (``"clauses"`` or ``"text"``) and ``clauses`` (how
        many clauses raise the theme; 0 for ``"text"``). Rows follow the texts' order, themes
        in taxonomy order; a text raising no theme has no row.
    """
    texts = as_texts(texts)
    ids = list(range(len(texts))) if feedback_ids is None else list(feedback_ids)
    if len(ids) != len(texts):
        raise ValueError(f"{len(ids)} feedback_ids for {len(texts)} texts")
    theme_ids = list(theme_ids)
    thresholds = theme_thresholds(theme_model, len(theme_ids), threshold, single_label)
    scored = _ThemePolarities.of(
        texts, sentiment_model, theme_model, theme_ids, thresholds, conflict, single_label
    )
    rows, cols = np.nonzero(scored.theme_probability >= thresholds)  # row-major: text order
    out = scored.frame(rows, cols)
    out.insert(0, "theme", np.asarray(theme_ids, dtype=object)[cols])
    out.insert(0, "feedback_id", pd.Series([ids[i] for i in rows], dtype=object))
    return out[list(ASPECT_COLUMNS)]


def pair_sentiment(
    texts: Any,
    themes: Sequence[str],
    sentiment_model: Any,
    theme_model: Any,
    theme_ids: Sequence[str],
    *,
    threshold: float | Sequence[float] | None = None,
    conflict: float = 0.5,
) -> pd.DataFrame:
    """Sentiment about a given theme in a given text, by the clause rule of :func:`aspect_sentiment`.

    For (text, theme) items whose theme is known (labelled data, or themes predicted
    elsewhere): the same rule, whether or not the theme model finds the theme in the text.
    Repeated texts are scored once.

    Parameters
    ----------
    texts
        One text per item.
    themes
        One theme id (from ``theme_ids``) per item.
    sentiment_model, theme_model, theme_ids, threshold, conflict
        As in :func:`aspect_sentiment`.

    Returns
    -------
    pandas.DataFrame
        One row per item, in order: ``theme_probability``, ``sentiment_negative`` /
        ``_neutral`` / ``_positive``, ``sentiment``, ``source``, ``clauses``.
    """
    texts = as_texts(texts)
    if len(themes) != len(texts):
        raise ValueError(f"{len(themes)} themes for {len(texts)} texts")
    theme_ids = list(theme_ids)
    position = {t: j for j, t in enumerate(theme_ids)}
    unknown = sorted({t for t in themes if t not in position})
    if unknown:
        raise ValueError(f"themes not in theme_ids: {', '.join(unknown)}")
    thresholds = theme_thresholds(theme_model, len(theme_ids), threshold)
    distinct, row_of = np.unique(np.asarray(texts, dtype=object), return_inverse=True)
    scored = _ThemePolarities.of(
        list(distinct), sentiment_model, theme_model, theme_ids, thresholds, conflict
    )
    return scored.frame(row_of, np.asarray([position[t] for t in themes], dtype=int))


@dataclass(frozen=True)
class _ThemePolarities:
    """Theme probability and the clause rule's sentiment for every (text, theme), as arrays."""

    theme_probability: np.ndarray  # (n, k): the highest of the text and its clauses
    sentiment: np.ndarray  # (n, k, 3) in SENTIMENTS order
    label: np.ndarray  # (n, k) object
    clauses: np.ndarray  # (n, k) clauses reaching the threshold; 0: whole-text sentiment

    @classmethod
    def of(
        cls,
        texts: list[str],
        sentiment_model: Any,
        theme_model: Any,
        theme_ids: list[str],
        thresholds: np.ndarray,
        conflict: float,
        single_label: bool = False,
    ) -> _ThemePolarities:
        """Score texts and the clauses of multi-clause texts in one batch, then apply the rule."""
        clauses = [split_clauses(t) for t in texts]
        # Clauses of single-clause texts are the text itself: scored once, as the text.
        owner = np.asarray([i for i, c in enumerate(clauses) if len(c) > 1 for _ in c], dtype=int)
        units = texts + [c for parts in clauses if len(parts) > 1 for c in parts]
        sentiment = class_probabilities(sentiment_model, units, SENTIMENTS, "sentiment")
        themes = class_probabilities(theme_model, units, theme_ids, "theme")
        if single_label:  # thresholds are then any probability above 0 (theme_thresholds)
            themes = most_probable_only(themes)
        n, k = len(texts), len(theme_ids)
        logger.debug("aspect sentiment: %d texts, %d clauses scored", n, len(units) - n)

        text_sentiment = np.repeat(sentiment[:n, None, :], k, axis=1)  # (n, k, 3)
        best = themes[:n].copy()
        hits = np.zeros((n, k), dtype=int)
        label = np.asarray(SENTIMENTS, dtype=object)[text_sentiment.argmax(axis=2)]
        if len(owner):
            clause_themes, clause_sentiment = themes[n:], sentiment[n:]
            hit = clause_themes >= thresholds  # (m, k)
            weight = np.where(hit, clause_themes, 0.0)
            # owners are ascending and contiguous: one segment of clause rows per text
            starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
            texts_with = owner[starts]
            best[texts_with] = np.maximum(
                best[texts_with], np.maximum.reduceat(clause_themes, starts, axis=0)
            )
            hits[texts_with] = np.add.reduceat(hit.astype(int), starts, axis=0)
            weighted = np.add.reduceat(
                weight[:, :, None] * clause_sentiment[:, None, :], starts, axis=0
            )  # (texts_with, k, 3)
            total = np.add.reduceat(weight, starts, axis=0)
            negative = SENTIMENTS.index("negative")
            positive = SENTIMENTS.index("positive")
            most_negative = np.maximum.reduceat(
                np.where(hit, clause_sentiment[:, [negative]], -1.0), starts, axis=0
            )
            most_positive = np.maximum.reduceat(
                np.where(hit, clause_sentiment[:, [positive]], -1.0), starts, axis=0
            )
            from_clauses = hits[texts_with] > 0
            with np.errstate(invalid="ignore", divide="ignore"):
                averaged = weighted / total[:, :, None]
            rows, cols = np.nonzero(from_clauses)
            text_rows = texts_with[rows]
            text_sentiment[text_rows, cols] = averaged[rows, cols]
            mixed = (most_negative[rows, cols] >= conflict) & (most_positive[rows, cols] >= conflict)
            label[text_rows, cols] = np.where(
                mixed,
                MIXED,
                np.asarray(SENTIMENTS, dtype=object)[averaged[rows, cols].argmax(axis=1)],
            )
        return cls(best, text_sentiment, label, hits)

    def frame(self, rows: np.ndarray, cols: np.ndarray) -> pd.DataFrame:
        """The (text, theme) cells ``(rows[i], cols[i])`` as rows of a table."""
        probabilities = self.sentiment[rows, cols].reshape(len(rows), len(SENTIMENTS))
        clauses = self.clauses[rows, cols]
        out = pd.DataFrame(
            {
                "theme_probability": self.theme_probability[rows, cols].astype(float),
                **{c: probabilities[:, s] for s, c in enumerate(SENTIMENT_COLUMNS)},
                "sentiment": pd.Series(self.label[rows, cols], dtype=object),
                "source": pd.Series(np.where(clauses > 0, "clauses", "text"), dtype=object),
                "clauses": clauses.astype(int),
            }
        )
        return out


def aspect_column(theme_id: str, what: str) -> str:
    """A wide aspect column: ``aspect_<theme_id>_<what>`` (``what``: a sentiment or ``label``)."""
    return f"aspect_{theme_id}_{what}"


def aspect_sentiment_wide(
    aspects: pd.DataFrame, feedback_ids: Sequence[Any], theme_ids: Sequence[str]
) -> pd.DataFrame:
    """The long :func:`aspect_sentiment` table as one row per text.

    Parameters
    ----------
    aspects
        The long table.
    feedback_ids
        Every text's id, in the order wanted (texts raising no theme get a row too).
    theme_ids
        The taxonomy's theme ids, in order.

    Returns
    -------
    pandas.DataFrame
        ``feedback_id`` then, per theme, ``aspect_<id>_label`` (the sentiment label, None when
        the text does not raise the theme) and ``aspect_<id>_negative`` (the probability that
        the text is negative about the theme; 0 when it does not raise it). Same row order as
        ``feedback_ids``.
    """
    index = pd.Index(list(feedback_ids))
    if not index.is_unique:
        raise ValueError("feedback_ids must be unique")
    out: dict[str, Any] = {"feedback_id": list(index)}
    for theme in theme_ids:
        rows = aspects.loc[aspects["theme"] == theme]
        position = index.get_indexer(rows["feedback_id"])
        if (position < 0).any():
            raise ValueError(f"aspects hold feedback ids not in feedback_ids (theme {theme!r})")
        labels = np.full(len(index), None, dtype=object)
        negative = np.zeros(len(index), dtype=float)
        labels[position] = rows["sentiment"].to_numpy(dtype=object)
        negative[position] = rows["sentiment_negative"].to_numpy(dtype=float)
        # object dtype keeps None for "not raised" (pandas would infer str and write NaN)
        out[aspect_column(theme, "label")] = pd.Series(labels, dtype=object)
        out[aspect_column(theme, "negative")] = negative
    return pd.DataFrame(out)


def aspect_feedback_scores(
    feedback: pd.DataFrame,
    sentiment_model: Any | None,
    theme_model: Any | None,
    theme_ids: Sequence[str],
    threshold: float | Sequence[float] | None = None,
    single_label: bool = False,
) -> pd.DataFrame:
    """Per-theme negative sentiment for the feedback-scores table (churn features read it).

    Parameters
    ----------
    feedback
        Needs ``feedback_id`` (unique) and ``text``.
    sentiment_model, theme_model
        Fitted models, or None: then every ``aspect_<id>_negative`` is NaN (unknown, not 0).
    theme_ids
        The taxonomy's theme ids, in order.
    threshold, single_label
        As in :func:`aspect_sentiment`.

    Returns
    -------
    pandas.DataFrame
        ``feedback_id`` and ``aspect_<id>_negative`` per theme (see
        :func:`aspect_sentiment_wide`), with ``feedback``'s index.
    """
    columns = [aspect_column(t, "negative") for t in theme_ids]
    if sentiment_model is None or theme_model is None or feedback.empty:
        out = pd.DataFrame(np.nan, index=feedback.index, columns=columns)
        out.insert(0, "feedback_id", feedback["feedback_id"])
        return out
    long = aspect_sentiment(
        feedback["text"],
        sentiment_model,
        theme_model,
        theme_ids,
        feedback_ids=list(feedback["feedback_id"]),
        threshold=threshold,
        single_label=single_label,
    )
    wide = aspect_sentiment_wide(long, list(feedback["feedback_id"]), theme_ids)
    wide.index = feedback.index
    return wide[["feedback_id", *columns]]


def add_aspect_scores(
    scores: pd.DataFrame,
    feedback: pd.DataFrame,
    sentiment_model: Any | None,
    theme_model: Any | None,
    theme_ids: Sequence[str],
    single_label: bool = False,
) -> pd.DataFrame:
    """``scores`` (a feedback-scores table of ``feedback``'s rows) with the columns of
    :func:`aspect_feedback_scores` added; a new frame, ``scores`` is not modified.
    ``single_label``: the theme model gives one theme per text (see :func:`aspect_sentiment`)."""
    per_theme = aspect_feedback_scores(
        feedback, sentiment_model, theme_model, theme_ids, single_label=single_label
    )
    if not scores.index.equals(per_theme.index):
        raise ValueError("scores and feedback must have the same rows (index)")
    return pd.concat([scores, per_theme.drop(columns="feedback_id")], axis=1)


# --------------------------------------------------------------------------------------------
# Supervised route: (text, theme) pairs


def parse_theme_polarities(value: Any) -> dict[str, str]:
    """``"food:positive|service:negative"`` as ``{"food": "positive", "service": "negative"}``.

    Missing or empty values give ``{}``. The theme may itself hold ``:`` (split at the last).
    """
    out: dict[str, str] = {}
    for item in split_themes(pd.Series([value]))[0]:
        theme, sep, polarity = item.rpartition(":")
        if not sep or not theme:
            raise ValueError(f"expected 'theme:polarity', got {item!r}")
        out[theme] = polarity
    return out


def theme_pairs(
    texts: Any,
    theme_polarities: Sequence[Mapping[str, str]],
    theme_names: Mapping[str, str] | None = None,
    feedback_ids: Sequence[Any] | None = None,
) -> tuple[pd.DataFrame, np.ndarray]:
    """One ``(text, theme)`` item per labelled theme of each text, for a pair classifier.

    Parameters
    ----------
    texts
        The texts.
    theme_polarities
        Per text, theme id -> polarity label (e.g. from :func:`parse_theme_polarities`).
    theme_names
        Theme id -> the words the classifier reads for it (a taxonomy's names); the id itself
        (``_`` and ``/`` read as spaces) where missing.
    feedback_ids
        One id per text; positions if omitted.

    Returns
    -------
    tuple of (pandas.DataFrame, numpy.ndarray)
        The pairs, columns ``text`` and ``theme`` (the two inputs of a pair classifier, in
        this order) plus ``feedback_id`` and ``theme_id``; and the polarity labels, one per
        pair. Texts in order, each text's themes in the order given.
    """
    texts = as_texts(texts)
    if len(theme_polarities) != len(texts):
        raise ValueError(f"{len(theme_polarities)} label sets for {len(texts)} texts")
    ids = list(range(len(texts))) if feedback_ids is None else list(feedback_ids)
    names = dict(theme_names or {})
    rows: list[tuple[str, str, Any, str]] = []
    labels: list[str] = []
    for text, fid, polarities in zip(texts, ids, theme_polarities, strict=True):
        for theme, polarity in polarities.items():
            name = names.get(theme) or re.sub(r"[_/]+", " ", theme)
            rows.append((text, name, fid, theme))
            labels.append(polarity)
    pairs = pd.DataFrame.from_records(rows, columns=["text", "theme", "feedback_id", "theme_id"])
    return pairs, np.asarray(labels, dtype=object)


THEME_MARKER = " [theme] "
"""What :func:`joined_pairs` puts between a text and its theme name."""


def joined_pairs(pairs: pd.DataFrame, marker: str = THEME_MARKER) -> list[str]:
    """A pair as one string, ``text + marker + theme``, for single-text models such as TF-IDF."""
    return [f"{t}{marker}{name}" for t, name in zip(as_texts(pairs["text"]),
                                                      as_texts(pairs["theme"]), strict=True)]


def pair_columns(X: Any) -> tuple[list[str], np.ndarray]:
    """The texts and theme names of 2-column pair input (a DataFrame's first two columns, or an
    ``(n, 2)`` array), as :func:`theme_pairs` gives them."""
    if isinstance(X, pd.DataFrame):
        if X.shape[1] < 2:
            raise ValueError(f"expected (text, theme) columns, got {X.shape[1]} column(s)")
        texts, themes = X.iloc[:, 0], X.iloc[:, 1]
    else:
        values = np.asarray(X, dtype=object)
        if values.ndim != 2 or values.shape[1] != 2:
            raise ValueError(f"expected (text, theme) pairs of shape (n, 2), got {values.shape}")
        texts, themes = values[:, 0], values[:, 1]
    return as_texts(texts), np.asarray(as_texts(themes), dtype=object)


class ThemeInteractions(TransformerMixin, BaseEstimator):
    """Features of (text, theme) pairs for a linear model: the text's TF-IDF, plus a copy of it
    in a block of its own per theme (zero in the other themes' blocks).

    A linear model on the shared block learns polarity words that hold for every theme ("great",
    "awful"); on a theme's block, the words that speak for that theme only ("cheap" is good for
    price, bad for ambience). The TF-IDF stand-in of a pair transformer.

    Parameters
    ----------
    text_features
        An unfitted text vectoriser (anything with ``fit``/``transform`` on a list of texts);
        the package's TF-IDF word + character n-grams if None.
    """

    def __init__(self, text_features: Any = None) -> None:
        self.text_features = text_features

    def fit(self, X: Any, y: Any = None) -> ThemeInteractions:
        """Fit the vectoriser on the texts and record the themes seen; returns ``self``."""
        texts, themes = pair_columns(X)
        base = self.text_features if self.text_features is not None else _text_features(
            TextModelConfig()
        )
        self.text_features_ = clone(base).fit(texts)
        self.themes_ = np.unique(themes)
        return self

    def transform(self, X: Any) -> sparse.csr_matrix:
        """``(n, (1 + n_themes) * n_text_features)`` sparse features; a theme not seen in
        ``fit`` gets the shared block only."""
        check_is_fitted(self, "themes_")
        texts, themes = pair_columns(X)
        shared = sparse.csr_matrix(self.text_features_.transform(texts))
        blocks = [shared]
        for theme in self.themes_:
            mask = (themes == theme).astype(shared.dtype)
            blocks.append(sparse.diags(mask, dtype=shared.dtype) @ shared)
        return sparse.hstack(blocks, format="csr")

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        return tags


def make_pair_model(config: TextModelConfig | None = None) -> Pipeline:
    """An unfitted (text, theme) -> polarity Pipeline: :class:`ThemeInteractions`, then logistic
    regression.

    ``fit(pairs, labels)`` with ``pairs`` the first two columns of :func:`theme_pairs` (or an
    ``(n, 2)`` array of text and theme name); ``predict_proba`` has one column per entry of the
    sorted ``classes_`` (e.g. ``conflict``, ``negative``, ``neutral``, ``positive``).
    """
    config = config or TextModelConfig()
    return Pipeline(
        [
            ("pairs", ThemeInteractions(_text_features(config))),
            ("classifier", LogisticRegression(C=config.C, max_iter=2000)),
        ]
    )
