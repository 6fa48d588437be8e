"""The training job, as the phases a data scientist would say aloud.

Dated data (``data.layout: tables``):

1. ``plan_evaluation``: the labelled ``as_of`` dates (every label window observed), the
   evaluation dates of the backtest (the last ``churn.backtest_dates`` of them) and, before the
   first evaluation date, a validation date on which settings are chosen. Each evaluation date
   is predicted by a model fitted only on dates whose label windows closed by then. Data too
   short for a backtest falls back to customer-grouped folds over the labelled dates, and says so.
2. ``train_text_models``: sentiment and/or theme models on whatever labels exist (evaluated on
   the latest labelled feedback); none when nothing is labelled.
3. ``build_training_table``: point-in-time features and labels for every labelled date; text
   features at each date come from text models fitted only on feedback dated before it.
4. ``audit`` then ``choose_settings`` on the training side only, then ``backtest`` the churn
   model and the logistic baseline on the evaluation splits, with intervals and a paired test.
5. ``refit``: the model that is registered is refitted on the latest ``churn.train_periods``
   labelled dates, up to the last one (the evaluation dates included).

Flat data (``data.layout: flat``): the same audit, settings, evaluation and refit, with
stratified folds of customers (or the configured test file) in place of dates.

``train`` runs the phases; ``retain.tracking`` logs, registers and promotes what they produce.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold, StratifiedKFold

from retain import evaluation
from retain.churn import features
from retain.churn.audit import AuditResult, audit_features
from retain.churn.backtest import (
    Comparison,
    Split,
    metrics_with_interval,
    paired_comparison,
    split_metrics,
)
from retain.churn.model import ChurnClassifier, make_logistic_baseline
from retain.churn.selection import select_churn_settings
from retain.config import ChurnModelConfig, FeatureConfig, LabelConfig, TextModelConfig
from retain.contracts import TIME_COLUMNS, World
from retain.data import FlatTable
from retain.text.aspects import add_aspect_scores
from retain.text.inputs import theme_indicators
from retain.text.point_in_time import point_in_time_feedback_scores
from retain.text.scoring import score_feedback
from retain.text.tfidf import limit_to_customer_vocabulary, make_sentiment_model, make_theme_model

logger = logging.getLogger(__name__)

#: Days of history a customer base needs before the first training date.
MIN_HISTORY_DAYS = 90
#: Label column and the key columns of a training table.
LABEL = features.LABEL_COLUMN


class TrainingError(ValueError):
    """The data cannot support training (too short, no labels...); the message says why."""


@dataclass(frozen=True)
class EvaluationPlan:
    """Which dates are labelled, which are evaluated, and where settings are chosen."""

    labelled: tuple[pd.Timestamp, ...]
    evaluation: tuple[pd.Timestamp, ...]
    validation: pd.Timestamp | None
    horizon_days: int
    backtest: bool
    description: str

    @property
    def last_labelled(self) -> pd.Timestamp:
        return self.labelled[-1]


@dataclass
class TextModels:
    """Text models fitted on all labelled feedback (for scoring), and their evaluation."""

    sentiment: Any | None
    themes: Any | None
    theme_ids: list[str]
    metrics: dict[str, float]
    baseline_metrics: dict[str, float]
    figures: dict[str, Any] = field(default_factory=dict)
    n_train: int = 0
    n_test: int = 0
    train_until: pd.Timestamp | None = None
    evaluation_id: str = ""
    #: Registered versions, when these are champions loaded from the registry (not trained here).
    registered: dict[str, str] = field(default_factory=dict)
    #: The theme model gives each text one theme (``retain text train`` with ``themes_mode``
    #: single): per-theme sentiment reads its most probable theme, not a threshold.
    single_label_themes: bool = False


@dataclass
class ChurnResult:
    """The churn model to register, its evaluation, and how its settings were chosen."""

    model: ChurnClassifier
    baseline: Any
    feature_columns: list[str]
    metrics: dict[str, float]
    baseline_metrics: dict[str, float]
    per_split: pd.DataFrame
    predictions: pd.DataFrame
    comparison: Comparison
    params: dict[str, Any]
    tuned_on: str
    selection: pd.DataFrame
    audit: AuditResult
    figures: dict[str, Any] = field(default_factory=dict)
    n_train: int = 0
    #: What scoring runs are monitored against (``insight.monitoring.drift_reference``): a sample
    #: of the latest labelled rows' model inputs and the registered model's probabilities.
    reference: pd.DataFrame | None = None
    #: The date of the reference rows (dated data), None for a flat table.
    reference_as_of: pd.Timestamp | None = None


@dataclass
class TrainingResult:
    layout: str
    plan: EvaluationPlan | None
    text: TextModels | None
    churn: ChurnResult
    families: list[str]
    evaluation_id: str
    evaluation: str
    definition: str


# --------------------------------------------------------------------------------------------
# Dates


def observed_until(world: World) -> pd.Timestamp:
    """The latest moment the data describes (the newest event, ticket, feedback or signup)."""
    stamps = [frame[TIME_COLUMNS[name]].max() for name, frame in world.tables().items()]
    stamps = [s for s in stamps if pd.notna(s)]
    if not stamps:
        raise TrainingError("the data has no dated rows")
    return max(stamps)


def observed_since(world: World) -> pd.Timestamp:
    # Behaviour and support history start the clock; signups alone do not make history.
    tables = world.tables()
    stamps = [tables[name][TIME_COLUMNS[name]].min() for name in ("events", "tickets") if name in tables]
    stamps = [s for s in stamps if pd.notna(s)]
    return min(stamps) if stamps else world.customers["signup_at"].min()


def labels_observed_until(world: World, label_config: LabelConfig) -> pd.Timestamp:
    """How far the data observes churn: for ``inactivity``, the newest qualifying event.

    A label window after the last event would count everyone as churned, however late the other
    tables run.
    """
    if label_config.definition != "inactivity":
        return observed_until(world)
    if world.events is None or world.events.empty:
        raise TrainingError("churn definition 'inactivity' needs an events table")
    events = world.events
    if label_config.event_types is not None:
        events = events.loc[events["event_type"].astype(object).isin(list(label_config.event_types))]
    if events.empty:
        raise TrainingError(
            f"no event of the qualifying types {list(label_config.event_types or [])} in the events table"
        )
    return events["occurred_at"].max()


def plan_evaluation(
    world: World,
    feature_config: FeatureConfig,
    churn_config: ChurnModelConfig,
    until: pd.Timestamp | None = None,
    label_config: LabelConfig | None = None,
) -> EvaluationPlan:
    """Labelled dates, backtest evaluation dates and the validation date (see module docstring)."""
    horizon = pd.Timedelta(days=feature_config.horizon_days)
    step = pd.Timedelta(days=churn_config.train_every_days)
    data_end = observed_until(world) if label_config is None else labels_observed_until(world, label_config)
    end = (min(until, data_end) if until is not None else data_end).normalize()
    if churn_config.test_as_of is not None:
        last = pd.Timestamp(churn_config.test_as_of)
        if last + horizon > end:
            raise TrainingError(
                f"churn.test_as_of {last.date()} + {feature_config.horizon_days} days is after the "
                f"data ends ({end.date()}): its churn labels are not observed yet"
            )
    else:
        last = end - horizon
    earliest = observed_since(world).normalize() + pd.Timedelta(days=MIN_HISTORY_DAYS)
    n_dates = churn_config.train_periods + churn_config.backtest_dates + 4 * max(
        1, feature_config.horizon_days // churn_config.train_every_days
    )
    labelled = sorted(d for d in (last - k * step for k in range(n_dates)) if d >= earliest)
    if not labelled:
        raise TrainingError(
            f"not enough history: the data spans {observed_since(world).date()} to {end.date()}, "
            f"but training needs {MIN_HISTORY_DAYS} days of history plus a "
            f"{feature_config.horizon_days}-day label window"
        )
    evaluation_dates = [d for d in labelled[-churn_config.backtest_dates:] if d - horizon >= labelled[0]]
    if evaluation_dates:
        # The latest labelled date whose window closes by the first evaluation date, with at
        # least one earlier date whose window closes by it to fit on.
        candidates = [
            d for d in labelled
            if d + horizon <= evaluation_dates[0] and any(f + horizon <= d for f in labelled)
        ]
        validation = candidates[-1] if candidates else None
        description = (
            f"backtest on {len(evaluation_dates)} date(s) {', '.join(str(d.date()) for d in evaluation_dates)}; "
            "each predicted by a model fitted only on dates whose label windows closed by then"
        )
        return EvaluationPlan(
            labelled=tuple(labelled), evaluation=tuple(evaluation_dates), validation=validation,
            horizon_days=feature_config.horizon_days, backtest=True, description=description,
        )
    description = (
        f"customer-grouped {churn_config.cv_folds}-fold cross-validation over {len(labelled)} labelled "
        f"date(s) {labelled[0].date()}..{labelled[-1].date()}: the data is too short for a backtest "
        f"(that needs two {feature_config.horizon_days}-day label windows after {MIN_HISTORY_DAYS} "
        "days of history), so this judges the model on other customers, not on a later period"
    )
    logger.warning("evaluation: %s", description)
    return EvaluationPlan(
        labelled=tuple(labelled), evaluation=(), validation=None,
        horizon_days=feature_config.horizon_days, backtest=False, description=description,
    )


# --------------------------------------------------------------------------------------------
# Text


def labelled_feedback(feedback: pd.DataFrame | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows with a sentiment label, and rows with a themes label (either may be empty)."""
    if feedback is None:
        empty = pd.DataFrame()
        return empty, empty
    return (
        feedback.loc[feedback["sentiment"].notna()],
        feedback.loc[feedback["themes"].map(lambda v: isinstance(v, str))],
    )


def train_text_models(
    feedback: pd.DataFrame | None, theme_ids: list[str], config: TextModelConfig, min_rows: int = 20
) -> TextModels | None:
    """Sentiment and/or theme models on the labels that exist; evaluated on the latest ones.

    Each model is evaluated on the latest ``test_fraction`` of its labelled rows (fitted on the
    earlier ones), then refitted on all of them for scoring. ``None`` when neither label has
    ``min_rows`` rows: text features are then left out, which is a normal case.
    """
    with_sentiment, with_themes = labelled_feedback(feedback)
    use_sentiment = len(with_sentiment) >= min_rows and with_sentiment["sentiment"].nunique() >= 2
    use_themes = len(with_themes) >= min_rows and bool(theme_ids)
    if not (use_sentiment or use_themes):
        logger.info(
            "text: %d rows with a sentiment label, %d with themes; fewer than %d, so no text "
            "model is trained and text features are left out",
            len(with_sentiment), len(with_themes), min_rows,
        )
        return None
    metrics: dict[str, float] = {}
    baseline: dict[str, float] = {}
    figures: dict[str, Any] = {}
    sentiment_model = themes_model = None
    n_train = n_test = 0
    ids: list[str] = []
    until = []
    if use_sentiment:
        fit, test = _time_split(with_sentiment, config.test_fraction)
        model = _fit_text_model(make_sentiment_model, config, fit, fit["sentiment"].astype(str).to_numpy())
        predicted = model.predict(_texts(test))
        metrics.update(_prefixed("sentiment_", evaluation.sentiment_metrics(test["sentiment"], predicted)))
        majority = np.full(len(test), fit["sentiment"].mode().iloc[0], dtype=object)
        baseline.update(_prefixed("sentiment_", evaluation.sentiment_metrics(test["sentiment"], majority)))
        figures.update(evaluation.text_figures(test["sentiment"].to_numpy(), predicted, None, None, theme_ids))
        sentiment_model = _fit_text_model(
            make_sentiment_model, config, with_sentiment, with_sentiment["sentiment"].astype(str).to_numpy()
        )
        n_train, n_test = len(fit), len(test)
        ids += test["feedback_id"].astype(str).tolist()
        until.append(with_sentiment["created_at"].max())
    if use_themes:
        fit, test = _time_split(with_themes, config.test_fraction)
        Y_fit = theme_indicators(fit["themes"], theme_ids)
        Y_test = theme_indicators(test["themes"], theme_ids)
        model = _fit_text_model(make_theme_model, config, fit, Y_fit)
        Y_pred = (np.asarray(model.predict_proba(_texts(test))) >= config.theme_threshold).astype(int)
        metrics.update(_prefixed("themes_", evaluation.theme_metrics(Y_test, Y_pred, theme_ids)))
        Y_majority = np.tile((Y_fit.mean(axis=0) > 0.5).astype(int), (len(test), 1))
        baseline.update(_prefixed("themes_", evaluation.theme_metrics(Y_test, Y_majority, theme_ids)))
        figures.update(evaluation.text_figures(None, None, Y_test, Y_pred, theme_ids))
        themes_model = _fit_text_model(
            make_theme_model, config, with_themes, theme_indicators(with_themes["themes"], theme_ids)
        )
        n_train, n_test = max(n_train, len(fit)), max(n_test, len(test))
        ids += test["feedback_id"].astype(str).tolist()
        until.append(with_themes["created_at"].max())
    return TextModels(
        sentiment=sentiment_model,
        themes=themes_model,
        theme_ids=list(theme_ids) if use_themes else [],
        metrics=metrics,
        baseline_metrics=baseline,
        figures=figures,
        n_train=n_train,
        n_test=n_test,
        train_until=max(until),
        evaluation_id=_fingerprint(np.sort(np.unique(ids))),
    )


# --------------------------------------------------------------------------------------------
# Features


def build_training_table(
    world: World,
    plan: EvaluationPlan,
    theme_ids: list[str],
    feature_config: FeatureConfig,
    label_config: LabelConfig,
    text_config: TextModelConfig,
    use_text: bool,
    show_progress: bool = False,
    pretrained: TextModels | None = None,
) -> pd.DataFrame:
    """Features and labels at every labelled date; text scores fitted before each date only.

    With ``pretrained`` text models (registry champions), a date gets text scores only if those
    models were fitted on feedback up to that date at the latest; earlier dates get none.
    """
    scores = None
    aspects = feature_config.theme_sentiment_comments > 0
    if pretrained is not None and world.feedback is not None:
        scores = _pretrained_scores(world.feedback, pretrained, theme_ids, aspects)
    elif use_text and world.feedback is not None:
        scores = point_in_time_feedback_scores(
            world.feedback, list(plan.labelled), theme_ids, text_config,
            refit_every_days=text_config.refit_every_days, show_progress=show_progress,
            aspects=aspects,
        ).scores_for
    return features.build_training_table(
        world,
        plan.labelled,
        scores,
        theme_ids,
        windows_days=feature_config.windows_days,
        horizon_days=plan.horizon_days,
        show_progress=show_progress,
        definition=label_config,
        attributes=feature_config.attributes,
        theme_sentiment_comments=feature_config.theme_sentiment_comments,
    )


def _pretrained_scores(
    feedback: pd.DataFrame, models: TextModels, theme_ids: list[str], aspects: bool = False
) -> Callable[[pd.Timestamp], pd.DataFrame | None]:
    scored = score_feedback(feedback, models.sentiment, models.themes, theme_ids)
    if aspects:
        scored = add_aspect_scores(
            scored, feedback, models.sentiment, models.themes, theme_ids,
            single_label=models.single_label_themes,
        )
    stamps = feedback["created_at"].to_numpy()
    until = models.train_until

    def scores_for(as_of: pd.Timestamp) -> pd.DataFrame | None:
        if until is None or as_of < until:
            return None  # that model saw feedback dated after as_of
        return scored.loc[stamps <= np.datetime64(as_of)]

    return scores_for


# --------------------------------------------------------------------------------------------
# Churn


def training_dates(plan: EvaluationPlan, last: pd.Timestamp, periods: int) -> list[pd.Timestamp]:
    """The latest ``periods`` labelled dates on or before ``last``."""
    return [d for d in plan.labelled if d <= last][-periods:]


def dated_splits(table: pd.DataFrame, plan: EvaluationPlan, folds: int, periods: int = 12) -> list[Split]:
    """Backtest splits or grouped folds.

    Backtest: each evaluation date is predicted by a model fitted on the latest ``periods``
    labelled dates whose label windows closed by it (``as_of + horizon <= evaluation date``).
    """
    as_of = table["as_of"]
    if plan.backtest:
        horizon = pd.Timedelta(days=plan.horizon_days)
        return [
            Split(
                str(d.date()),
                as_of.isin(training_dates(plan, d - horizon, periods)).to_numpy(),
                (as_of == d).to_numpy(),
            )
            for d in plan.evaluation
        ]
    groups = table["customer_id"].astype(str).to_numpy()
    n = min(folds, len(np.unique(groups)))
    return [
        Split(f"fold {k + 1}", _mask(len(table), fit), _mask(len(table), test))
        for k, (fit, test) in enumerate(GroupKFold(n).split(table, groups=groups))
    ]


def flat_splits(y: np.ndarray, folds: int, test: np.ndarray | None = None) -> list[Split]:
    """One split to the test rows if given, else stratified shuffled folds (seed 0)."""
    if test is not None:
        return [Split("test file", ~test, test)]
    cv = StratifiedKFold(folds, shuffle=True, random_state=0)
    n = len(y)
    return [
        Split(f"fold {k + 1}", _mask(n, fit), _mask(n, ev))
        for k, (fit, ev) in enumerate(cv.split(np.zeros(n), y))
    ]


def train_churn(
    table: pd.DataFrame,
    columns: list[str],
    splits: list[Split],
    config: ChurnModelConfig,
    settings_split: tuple[np.ndarray, np.ndarray] | None,
    dated: bool,
    settings_description: str,
    validation_description: str | None = None,
    refit_rows: np.ndarray | None = None,
    audit_test_rows: bool = False,
) -> ChurnResult:
    """Audit, choose settings, evaluate on the splits, and refit on every labelled row.

    ``settings_split`` (fit, validation masks) is where settings and the audit are decided for
    dated data; for flat data (``None``) each split decides them on its own training rows (inner
    folds), so no evaluation row shapes the settings that evaluate it.
    """
    y = table[LABEL].to_numpy()
    groups = table["customer_id"].astype(str).to_numpy()
    pinned = {
        key: getattr(config, key)
        for key in ("n_estimators", "learning_rate", "num_leaves", "min_child_samples")
        if getattr(config, key) is not None
    }
    constant = [c for c in columns if table[c].nunique(dropna=True) < 2]
    if constant:
        # e.g. login counts in a purchase log: a column that never varies carries no information
        logger.info("left out %d feature(s) that never vary: %s", len(constant), ", ".join(constant))
        columns = [c for c in columns if c not in set(constant)]
    if np.unique(y).size < 2:
        raise TrainingError(f"churn labels are all {y[0]}: need churners and non-churners")

    def decide(
        fit_mask: np.ndarray, validation: Any, test_mask: np.ndarray | None = None
    ) -> tuple[list[str], dict[str, Any], str, pd.DataFrame, AuditResult]:
        X_fit = table.loc[fit_mask, columns]
        test_X = table.loc[test_mask, columns] if test_mask is not None and audit_test_rows else None
        audit = _audit(X_fit, y[fit_mask], config, test_X)
        kept = [c for c in columns if c not in set(audit.excluded_columns)]
        if pinned:
            table_ = pd.DataFrame([{"params": pinned, "evaluated": False}])
            return kept, pinned, "settings pinned in the config (churn.*), no search", table_, audit
        if validation is not None:
            chosen = select_churn_settings(
                table.loc[:, kept], y, groups=groups, validation=validation,
                time_budget_s=config.search_budget_s, random_state=0, n_jobs=config.n_jobs,
                tuned_on=validation_description,
            )
        else:
            rows = _selection_sample(np.flatnonzero(fit_mask), groups, SELECTION_ROWS)
            chosen = select_churn_settings(
                table.loc[rows, kept], y[rows], groups=groups[rows], validation=3,
                time_budget_s=config.search_budget_s, random_state=0, n_jobs=config.n_jobs,
                tuned_on=(
                    f"3 inner customer-grouped folds of {len(rows)} training rows"
                    + (f" (customers sampled from {int(fit_mask.sum())})" if len(rows) < fit_mask.sum() else "")
                ),
            )
        return kept, chosen.params, chosen.tuned_on, chosen.scores, audit

    if dated and settings_split is not None:
        fit_idx, val_idx = (np.flatnonzero(m) for m in settings_split)
        fit_idx = _selection_sample(fit_idx, groups, SELECTION_ROWS)
        decided = decide(settings_split[0], (fit_idx, val_idx))
    else:
        # No validation date before the evaluation: each split decides settings and the audit
        # on inner folds of its own training rows, so no evaluation row shapes them.
        decided = None

    parts = []
    for split in splits:
        if decided is None:
            kept, params, _, _, split_audit = decide(split.fit, None, split.evaluate)
            if split_audit.findings:
                logger.debug("audit on the training rows of %s:\n%s", split.name, split_audit.summary())
        else:
            kept, params = decided[0], decided[1]
        y_fit = y[split.fit]
        if np.unique(y_fit).size < 2 or np.unique(y[split.evaluate]).size < 2:
            logger.warning("evaluation split %s has one class; skipped", split.name)
            continue
        model = _model(params, config).fit(table.loc[split.fit, kept], y_fit, groups=groups[split.fit])
        base = make_logistic_baseline().fit(table.loc[split.fit, kept], y_fit)
        rows = table.loc[split.evaluate]
        parts.append(
            pd.DataFrame(
                {
                    "split": split.name,
                    "customer_id": rows["customer_id"].to_numpy(),
                    "as_of": rows["as_of"].to_numpy() if "as_of" in rows else pd.NaT,
                    "churned": y[split.evaluate],
                    "churn_probability": model.predict_proba(rows[kept])[:, 1],
                    "baseline_probability": base.predict_proba(rows[kept])[:, 1],
                }
            )
        )
        logger.info("evaluated split %s: %d rows fitted, %d evaluated", split.name, int(split.fit.sum()), len(rows))
    if not parts:
        raise TrainingError("no evaluation split has both churners and non-churners")
    predictions = pd.concat(parts, ignore_index=True)

    # The registered model: settings decided on all labelled rows' training side, fitted on all.
    everything = np.ones(len(table), dtype=bool)
    refit = refit_rows if refit_rows is not None else everything
    if decided is None:
        decided = decide(refit, None)
    kept, params, tuned_on, selection, audit = decided
    if dated and settings_split is not None:
        tuned_on = f"{tuned_on} (before the first evaluation date)"
    final = _model(params, config).fit(table.loc[refit, kept], y[refit], groups=groups[refit])
    baseline = make_logistic_baseline().fit(table.loc[refit, kept], y[refit])
    metrics = metrics_with_interval(predictions, "churn_probability")
    baseline_metrics = metrics_with_interval(predictions, "baseline_probability")
    comparison = paired_comparison(predictions, "churn_probability", "baseline_probability")
    figures = evaluation.churn_figures(
        predictions["churned"].to_numpy(),
        {
            "gradient boosting": predictions["churn_probability"].to_numpy(),
            "logistic baseline": predictions["baseline_probability"].to_numpy(),
        },
    )
    per_split = split_metrics(predictions, "churn_probability").merge(
        split_metrics(predictions, "baseline_probability")[["split", "roc_auc"]].rename(
            columns={"roc_auc": "baseline_roc_auc"}
        ),
        on="split",
    )
    return ChurnResult(
        model=final,
        baseline=baseline,
        feature_columns=kept,
        metrics=metrics,
        baseline_metrics=baseline_metrics,
        per_split=per_split,
        predictions=predictions,
        comparison=comparison,
        params=params,
        tuned_on=f"{tuned_on}; {settings_description}",
        selection=selection,
        audit=audit,
        figures=figures,
        n_train=int(refit.sum()),
    )


#: Settings are chosen on at most this many training rows (whole customers, sampled with a fixed
#: seed): the ranking of a few candidates settles long before, and nested selection per split
#: would otherwise dominate training time on large tables.
SELECTION_ROWS = 40_000


def _selection_sample(rows: np.ndarray, groups: np.ndarray, limit: int) -> np.ndarray:
    """Row positions of whole customers drawn (seed 0) until about ``limit`` rows."""
    if len(rows) <= limit:
        return rows
    customers = pd.unique(groups[rows])
    order = np.random.default_rng(0).permutation(len(customers))
    per_customer = pd.Series(groups[rows]).value_counts()
    counts = per_customer.reindex(customers[order]).to_numpy()
    chosen = set(customers[order][: int(np.searchsorted(np.cumsum(counts), limit)) + 1])
    return rows[np.isin(groups[rows], list(chosen))]


def _audit(
    X: pd.DataFrame, y: np.ndarray, config: ChurnModelConfig, test_X: pd.DataFrame | None = None
) -> AuditResult:
    if not config.audit.enabled:
        return AuditResult(findings=())
    keep = [c for c in config.audit.keep if c in X.columns]
    return audit_features(X, y, keep=keep, test_X=test_X)


def save_reference(churn: ChurnResult, rows: pd.DataFrame, as_of: pd.Timestamp | None, max_rows: int) -> None:
    """Keep on ``churn`` the monitoring reference: ``rows``' model inputs and the registered model's probabilities.

    In-sample probabilities (``rows`` are among the refit's): the calibration was fitted on
    held-out folds, so their spread is close to what the model gives new customers.
    """
    from retain.insight.monitoring import drift_reference

    probabilities = churn.model.predict_proba(rows[churn.feature_columns])[:, 1]
    churn.reference = drift_reference(rows, churn.feature_columns, probabilities, max_rows)
    churn.reference_as_of = as_of


def _model(params: dict[str, Any], config: ChurnModelConfig) -> ChurnClassifier:
    return ChurnClassifier(**{**params, "n_jobs": config.n_jobs, "calibration": config.calibration})


# --------------------------------------------------------------------------------------------
# The two training paths


def train(
    world: World,
    theme_ids: list[str],
    feature_config: FeatureConfig,
    label_config: LabelConfig,
    text_config: TextModelConfig,
    churn_config: ChurnModelConfig,
    until: pd.Timestamp | None = None,
    show_progress: bool = False,
    pretrained_text: TextModels | None = None,
    reference_rows: int = 5000,
) -> TrainingResult:
    """Train on dated tables (no tracking; see ``retain.tracking``).

    ``pretrained_text``: registry text champions to use when this data carries no text labels.
    ``reference_rows``: at most this many customers of the last labelled date are kept as the
    monitoring reference (:func:`save_reference`).
    """
    families = features.feature_families(world)
    logger.info("feature families: %s", ", ".join(families))
    plan = plan_evaluation(world, feature_config, churn_config, until, label_config)
    logger.info(
        "labelled as_of dates %s .. %s (%d), horizon %d days, %s",
        plan.labelled[0].date(), plan.labelled[-1].date(), len(plan.labelled), plan.horizon_days, plan.description,
    )
    text = train_text_models(world.feedback, theme_ids, text_config)
    pretrained = None
    if text is None and pretrained_text is not None and world.feedback is not None:
        pretrained = text = pretrained_text
        usable = [d for d in plan.labelled if text.train_until is not None and d >= text.train_until]
        logger.info(
            "text: no labels here; registered text models (fitted on feedback up to %s) give text "
            "features at %d of %d labelled dates (earlier dates have none: the models saw later text)",
            text.train_until, len(usable), len(plan.labelled),
        )
    if text is not None:
        families.append("text (sentiment" + (", themes" if text.themes is not None else "") + ")")
    text_theme_ids = text.theme_ids if text is not None else []
    table = build_training_table(
        world, plan, text_theme_ids, feature_config, label_config, text_config,
        use_text=text is not None, show_progress=show_progress, pretrained=pretrained,
    )
    columns = features.feature_columns(table)
    splits = dated_splits(table, plan, churn_config.cv_folds, churn_config.train_periods)
    settings_split = None
    if plan.validation is not None:
        horizon = pd.Timedelta(days=plan.horizon_days)
        fit_dates = training_dates(plan, plan.validation - horizon, churn_config.train_periods)
        settings_split = (
            table["as_of"].isin(fit_dates).to_numpy(),
            (table["as_of"] == plan.validation).to_numpy(),
        )
    refit_dates = training_dates(plan, plan.last_labelled, churn_config.train_periods)
    churn = train_churn(
        table, columns, splits, churn_config, settings_split, dated=True,
        refit_rows=table["as_of"].isin(refit_dates).to_numpy(),
        settings_description=plan.description,
        validation_description=(
            f"validation as_of {plan.validation.date()} (fitted on dates up to "
            f"{(plan.validation - pd.Timedelta(days=plan.horizon_days)).date()})"
            if plan.validation is not None else None
        ),
    )
    latest = table.loc[table["as_of"] == plan.last_labelled]
    save_reference(churn, latest, plan.last_labelled, reference_rows)
    return TrainingResult(
        layout="tables",
        plan=plan,
        text=text,
        churn=churn,
        families=families,
        evaluation_id=evaluation_fingerprint(world, plan, label_config),
        evaluation=plan.description,
        definition=label_config.definition,
    )


def train_flat(flat: FlatTable, churn_config: ChurnModelConfig, reference_rows: int = 5000) -> TrainingResult:
    """Train on a flat table: folds (or the test file) for evaluation, refit on all labelled rows.

    The monitoring reference is a sample of the rows the registered model was fitted on.
    """
    frame = flat.frame.loc[flat.frame["churned"].notna()].reset_index(drop=True)
    test_rows = np.zeros(len(frame), dtype=bool)
    if flat.test is not None:
        test = flat.test.loc[flat.test["churned"].notna()].reset_index(drop=True)
        frame = pd.concat([frame, test], ignore_index=True)
        test_rows = np.r_[np.zeros(len(frame) - len(test), bool), np.ones(len(test), bool)]
    frame[LABEL] = frame["churned"].astype("int64")
    columns = [c for c in flat.feature_columns if c in frame.columns]
    splits = flat_splits(frame[LABEL].to_numpy(), churn_config.cv_folds, test_rows if flat.test is not None else None)
    description = (
        f"the test file ({int(test_rows.sum())} rows), model fitted on the {int((~test_rows).sum())} other rows"
        if flat.test is not None
        else f"{churn_config.cv_folds}-fold stratified cross-validation (shuffled, seed 0)"
    )
    # With a test file, the registered model (its audit, settings and fit) sees the training file
    # only: the test file stays unseen.
    churn = train_churn(
        frame, columns, splits, churn_config, None, dated=False,
        settings_description=f"evaluated on {description}",
        refit_rows=~test_rows if flat.test is not None else None,
        audit_test_rows=True,
    )
    save_reference(churn, frame.loc[~test_rows] if flat.test is not None else frame, None, reference_rows)
    digest = hashlib.sha256()
    digest.update(pd.util.hash_pandas_object(frame["customer_id"].astype(str), index=False).to_numpy().tobytes())
    digest.update(frame[LABEL].to_numpy().tobytes())
    digest.update(description.encode())
    return TrainingResult(
        layout="flat",
        plan=None,
        text=None,
        churn=churn,
        families=["customer attributes"],
        evaluation_id=digest.hexdigest()[:16],
        evaluation=description,
        definition="flat label",
    )


def evaluation_fingerprint(world: World, plan: EvaluationPlan, label: LabelConfig | None = None) -> str:
    """An id for "the same evaluation data": customers, tables, evaluation dates and definition."""
    digest = hashlib.sha256()
    ids = pd.util.hash_pandas_object(world.customers["customer_id"], index=False).to_numpy()
    digest.update(np.sort(ids).tobytes())
    for name, table in world.tables().items():
        digest.update(f"{name}:{len(table)}".encode())
    dates = ",".join(str(d.date()) for d in plan.evaluation) or f"groups:{plan.labelled[0]}..{plan.labelled[-1]}"
    digest.update(f"{dates}|{plan.horizon_days}|{label.model_dump_json() if label else ''}".encode())
    return digest.hexdigest()[:16]


def _mask(n: int, rows: np.ndarray) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    mask[rows] = True
    return mask


def _time_split(rows: pd.DataFrame, test_fraction: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    rows = rows.sort_values(["created_at", "feedback_id"], kind="stable")
    n_test = max(1, round(len(rows) * test_fraction))
    return rows.iloc[:-n_test], rows.iloc[-n_test:]


def _fingerprint(ids: np.ndarray) -> str:
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16]


def _texts(rows: pd.DataFrame) -> list[str]:
    return rows["text"].fillna("").astype(str).tolist()


def _fit_text_model(make: Callable[[TextModelConfig], Any], config: TextModelConfig, rows: pd.DataFrame, target: Any) -> Any:
    """A text model fitted on ``rows`` whose vocabulary holds only terms of several customers.

    These models are registered and their vocabularies pickled with them: a term must be used by
    ``config.min_customers`` distinct customers, so no customer's name or detail is stored.
    """
    texts = _texts(rows)
    model = limit_to_customer_vocabulary(make(config), texts, rows["customer_id"].astype(str), config.min_customers)
    return model.fit(texts, target)


def _prefixed(prefix: str, metrics: dict[str, float]) -> dict[str, float]:
    return {f"{prefix}{k}": float(v) for k, v in metrics.items()}
