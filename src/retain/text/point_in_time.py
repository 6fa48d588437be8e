"""Point-in-time feedback scores: text models refitted on a time grid.

:func:`point_in_time_feedback_scores` produces the feedback-scores table for each training
``as_of`` from models fitted only on feedback created before it (refitted on a time grid, see
:func:`text_model_cuts`), so text features at a date never come from models that saw later
feedback.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.dummy import DummyClassifier
from sklearn.model_selection import KFold
from tqdm.auto import tqdm

from retain.config import TextModelConfig
from retain.text.aspects import add_aspect_scores
from retain.text.inputs import as_texts, theme_indicators
from retain.text.scoring import score_feedback
from retain.text.tfidf import make_sentiment_model, make_theme_model

logger = logging.getLogger(__name__)


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

    Superseded for churn features by :func:`point_in_time_feedback_scores`: shuffled folds let
    a row's scores come from models fitted on feedback created after it.

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


@dataclass(frozen=True)
class TextModelCut:
    """One refit of the text models, on labelled feedback created strictly before ``cut``.

    Attributes
    ----------
    cut
        The fitting cutoff: only feedback with ``created_at < cut`` trains the models.
    as_of_dates
        The ``as_of`` dates whose scores come from these models (each ``>= cut``).
    sentiment_rows, theme_rows
        Rows with a sentiment (theme) label created before ``cut``.
    sentiment_fitted, themes_fitted
        Whether that model was fitted (at least ``min_labelled`` labelled rows); if not, its
        score columns are NaN for these dates.
    scored_rows
        Feedback rows scored by these models (created on or before the latest of
        ``as_of_dates``); 0 when neither model was fitted.
    """

    cut: pd.Timestamp
    as_of_dates: tuple[pd.Timestamp, ...]
    sentiment_rows: int
    theme_rows: int
    sentiment_fitted: bool
    themes_fitted: bool
    scored_rows: int

    @property
    def fitted(self) -> bool:
        """Whether any text model was fitted at this cut (otherwise its dates get no scores)."""
        return self.sentiment_fitted or self.themes_fitted


@dataclass(frozen=True)
class _CutScores:
    """The scores of one cut's models, rows in ``created_at`` order, for slicing by ``as_of``."""

    scores: pd.DataFrame
    created_at: np.ndarray


@dataclass(frozen=True)
class PointInTimeScores:
    """Feedback scores per ``as_of``, each from text models fitted on feedback before it.

    Built by :func:`point_in_time_feedback_scores`; read with :meth:`scores_for`. Scores are
    kept once per cut (not per date): the dates of one cut share one table, sliced on demand.
    """

    theme_ids: tuple[str, ...]
    refit_every_days: int
    min_labelled: int
    cuts: tuple[TextModelCut, ...]
    _cut_of: dict[pd.Timestamp, pd.Timestamp] = field(repr=False)
    _scores: dict[pd.Timestamp, _CutScores] = field(repr=False)

    @property
    def as_of_dates(self) -> tuple[pd.Timestamp, ...]:
        """The dates asked for, in order."""
        return tuple(sorted(self._cut_of))

    @property
    def n_fits(self) -> int:
        """Cuts at which text models were fitted (one sentiment and/or one theme model each)."""
        return sum(cut.fitted for cut in self.cuts)

    @property
    def unscored_dates(self) -> tuple[pd.Timestamp, ...]:
        """Dates with too little labelled feedback before their cut: no text scores."""
        return tuple(d for d in self.as_of_dates if not self.cut_for(d).fitted)

    def cut_for(self, as_of: pd.Timestamp | str) -> TextModelCut:
        """The refit whose models score the feedback at ``as_of``."""
        cut = self._cut_of.get(pd.Timestamp(as_of))
        if cut is None:
            raise KeyError(f"{as_of} is not one of the as_of dates these scores were built for")
        return next(c for c in self.cuts if c.cut == cut)

    def scores_for(self, as_of: pd.Timestamp | str) -> pd.DataFrame | None:
        """The feedback scores to build features at ``as_of``, or None if there are none.

        Returns
        -------
        pandas.DataFrame or None
            The columns of :func:`score_feedback` for every feedback row created on or before
            ``as_of`` (in ``created_at`` order, with the input's index), from models fitted on
            labelled feedback created before the cut of ``as_of``. The columns of a model that
            could not be fitted are NaN. None if neither model could be fitted: the caller
            leaves the text features out for that date.
        """
        as_of = pd.Timestamp(as_of)
        cut = self.cut_for(as_of)
        cached = self._scores.get(cut.cut)
        if cached is None:
            return None
        rows = int(np.searchsorted(cached.created_at, as_of.to_datetime64(), side="right"))
        return cached.scores.iloc[:rows]

    def summary(self) -> str:
        """One line per cut, for logs and run records."""
        header = (
            f"{len(self.as_of_dates)} as_of dates, {len(self.cuts)} cuts every "
            f"{self.refit_every_days} days, {self.n_fits} fitted"
        )
        return "\n".join([header, *(_describe(c) for c in self.cuts)])


def _describe(cut: TextModelCut) -> str:
    def model(name: str, fitted: bool, rows: int) -> str:
        return f"{name} {'fitted on' if fitted else 'not fitted,'} {rows} labelled rows"

    dates = ", ".join(str(d.date()) for d in cut.as_of_dates)
    return (
        f"cut {cut.cut.date()} (as_of {dates}): "
        f"{model('sentiment', cut.sentiment_fitted, cut.sentiment_rows)}; "
        f"{model('themes', cut.themes_fitted, cut.theme_rows)}; {cut.scored_rows} rows scored"
    )


def text_model_cuts(
    as_of_dates: Sequence[pd.Timestamp | str], refit_every_days: int
) -> dict[pd.Timestamp, pd.Timestamp]:
    """The fitting cutoff of each ``as_of``: the latest grid point on or before it.

    The grid is ``latest - k * refit_every_days`` (``k = 0, 1, ...``), anchored on the latest
    ``as_of``: that date (the evaluation date in training, "now" when scoring) gets models
    fitted on all feedback before it, as serving would; an earlier date's models are at most
    ``refit_every_days - 1`` days older than it. Dates sharing a grid step share a cut.
    """
    if refit_every_days < 1:
        raise ValueError(f"refit_every_days must be at least 1, got {refit_every_days}")
    dates = sorted({pd.Timestamp(d) for d in as_of_dates})
    if not dates:
        raise ValueError("as_of_dates is empty")
    if any(d is pd.NaT for d in dates):
        raise ValueError("as_of_dates contains NaT")
    anchor = dates[-1]
    step = pd.Timedelta(days=refit_every_days)
    # ceil((anchor - d) / step) steps back from the anchor: the grid point on or before d.
    return {d: anchor - -((d - anchor) // step) * step for d in dates}


def point_in_time_feedback_scores(
    feedback: pd.DataFrame,
    as_of_dates: Sequence[pd.Timestamp | str],
    theme_ids: Sequence[str],
    config: TextModelConfig | None = None,
    refit_every_days: int = 90,
    min_labelled: int = 20,
    show_progress: bool = False,
    aspects: bool = False,
) -> PointInTimeScores:
    """Feedback scores at each ``as_of`` from text models fitted only on earlier feedback.

    The text models behind a churn feature at ``as_of`` must not have seen feedback created
    after ``as_of``. Fitting once per date would be slow, so models are refitted on a time grid
    (:func:`text_model_cuts`): each ``as_of`` is scored by the models fitted on labelled
    feedback with ``created_at < cut``, its cut being the latest grid point ``<= as_of``. One
    sentiment and one theme model are fitted per distinct cut.

    Parameters
    ----------
    feedback
        The feedback table: ``feedback_id``, ``created_at``, ``text`` and the labels
        ``sentiment`` and/or ``themes`` (missing = unlabelled; a ``themes`` value of ``""``
        is a label: no theme). Either label column may be absent. Rows without ``created_at``
        are ignored.
    as_of_dates
        The dates features are built at (duplicates are merged).
    theme_ids
        The taxonomy's theme ids, in order.
    config
        Text model settings; the defaults of :class:`TextModelConfig` if None.
    refit_every_days
        Spacing of the cut grid.
    min_labelled
        Fewest labelled rows before a cut to fit a model there. Sentiment and themes are
        fitted independently, each on the rows carrying its label; a model without enough
        rows leaves its columns NaN, and a date with neither model gets no scores (logged).
    show_progress
        Show a progress bar over the cuts.
    aspects
        Add sentiment per theme (``aspect_<id>_negative``, see
        :func:`retain.text.aspects.aspect_feedback_scores`) from the same cut's models: NaN
        where either model could not be fitted.

    Returns
    -------
    PointInTimeScores
        ``scores_for(as_of)`` gives the scores table for a date (or None), ``cuts`` what was
        fitted where.
    """
    config = config or TextModelConfig()
    if min_labelled < 1:
        raise ValueError(f"min_labelled must be at least 1, got {min_labelled}")
    missing = [c for c in ("feedback_id", "created_at", "text") if c not in feedback.columns]
    if missing:
        raise ValueError(f"feedback lacks column(s) {', '.join(missing)}")
    cut_of = text_model_cuts(as_of_dates, refit_every_days)
    groups: dict[pd.Timestamp, list[pd.Timestamp]] = {}
    for as_of, cut in cut_of.items():
        groups.setdefault(cut, []).append(as_of)

    dated = feedback.loc[feedback["created_at"].notna()]
    if len(dated) < len(feedback):
        logger.warning("Ignoring %d feedback rows without created_at", len(feedback) - len(dated))
    # One ordering by time: each cut's training rows and each date's scored rows are prefixes.
    dated = dated.iloc[np.argsort(dated["created_at"].to_numpy(), kind="stable")]
    created = dated["created_at"].to_numpy().astype("datetime64[ns]")
    texts = np.asarray(as_texts(dated["text"]), dtype=object)
    sentiment = dated["sentiment"] if "sentiment" in dated else pd.Series(pd.NA, index=dated.index)
    themes = dated["themes"] if "themes" in dated else pd.Series(pd.NA, index=dated.index)
    has_sentiment = sentiment.notna().to_numpy()
    has_themes = themes.map(lambda v: isinstance(v, str)).to_numpy(dtype=bool)
    to_score = dated[["feedback_id", "text"]]

    cuts: list[TextModelCut] = []
    cached: dict[pd.Timestamp, _CutScores] = {}
    for cut in tqdm(sorted(groups), desc="text models", unit="cut", disable=not show_progress):
        dates = tuple(sorted(groups[cut]))
        before = int(np.searchsorted(created, cut.to_datetime64(), side="left"))
        s_rows = np.flatnonzero(has_sentiment[:before])
        t_rows = np.flatnonzero(has_themes[:before])
        sentiment_model = theme_model = None
        if len(s_rows) >= min_labelled:
            sentiment_model = _fit_sentiment(list(texts[s_rows]), sentiment.iloc[s_rows], config)
        if len(t_rows) >= min_labelled:
            Y = theme_indicators(themes.iloc[t_rows], theme_ids)
            theme_model = make_theme_model(config).fit(list(texts[t_rows]), Y)
        scored = 0
        if sentiment_model is not None or theme_model is not None:
            scored = int(np.searchsorted(created, dates[-1].to_datetime64(), side="right"))
            rows = to_score.iloc[:scored]
            table = score_feedback(rows, sentiment_model, theme_model, theme_ids)
            if aspects:
                table = add_aspect_scores(table, rows, sentiment_model, theme_model, theme_ids)
            cached[cut] = _CutScores(table, created[:scored])
        cuts.append(
            TextModelCut(
                cut=cut,
                as_of_dates=dates,
                sentiment_rows=len(s_rows),
                theme_rows=len(t_rows),
                sentiment_fitted=sentiment_model is not None,
                themes_fitted=theme_model is not None,
                scored_rows=scored,
            )
        )
        _log_cut(cuts[-1], min_labelled)
    return PointInTimeScores(
        theme_ids=tuple(theme_ids),
        refit_every_days=refit_every_days,
        min_labelled=min_labelled,
        cuts=tuple(cuts),
        _cut_of=cut_of,
        _scores=cached,
    )


def _log_cut(cut: TextModelCut, min_labelled: int) -> None:
    dates = ", ".join(str(d.date()) for d in cut.as_of_dates)
    if not cut.fitted:
        logger.warning(
            "No text scores for as_of %s: before the cut %s there are %d sentiment-labelled and "
            "%d theme-labelled feedback rows, fewer than min_labelled=%d; text features stay "
            "empty for those dates",
            dates,
            cut.cut.date(),
            cut.sentiment_rows,
            cut.theme_rows,
            min_labelled,
        )
        return
    logger.info(
        "Text models at cut %s (for as_of %s): sentiment on %d rows, themes on %d rows; "
        "%d feedback rows scored",
        cut.cut.date(),
        dates,
        cut.sentiment_rows,
        cut.theme_rows,
        cut.scored_rows,
    )
    for what, fitted, rows in (
        ("sentiment", cut.sentiment_fitted, cut.sentiment_rows),
        ("theme", cut.themes_fitted, cut.theme_rows),
    ):
        if not fitted:
            logger.warning(
                "No %s model at cut %s (as_of %s): %d %s-labelled rows before it, fewer than "
                "min_labelled=%d; its score columns are NaN",
                what,
                cut.cut.date(),
                dates,
                rows,
                what,
                min_labelled,
            )
