"""The work behind each ``retain`` command: data, training or scoring, and tracking, wired together.

Each ``run_*`` function takes a validated config object and returns an outcome object; the
``format_*`` functions turn an outcome into what the command prints. The CLI only parses
arguments and calls these, so a notebook or a scheduler can call them the same way.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from retain import data, tracking
from retain.churn.backtest import paired_comparison
from retain.churn.evidence import evidence_records
from retain.config import (
    ConfigError,
    DatabaseConfig,
    DataConfig,
    DemoConfig,
    Playbook,
    ScoreConfig,
    Taxonomy,
    TextJobConfig,
    TrackingConfig,
    TrainConfig,
    load_config,
)
from retain.contracts import THEME_SEPARATOR, World
from retain.scoring import (
    PLAN_ARCHIVE,
    SUMMARY,
    ScoringError,
    ScoringModels,
    feedback_scores,
    outreach_list,
    reasons_coverage,
    score_and_rank,
    score_flat,
    summarise,
    write_scores,
)
from retain.text.scoring import score_feedback
from retain.text.training import TextTrainResult, train_text_models
from retain.training import (
    TextModels,
    TrainingError,
    TrainingResult,
    observed_since,
    observed_until,
    train,
    train_flat,
)

logger = logging.getLogger(__name__)

THEME_IDS_TAG = "theme_ids"


@dataclass
class Registration:
    """What the registry now holds for one model: the new version and the champion decision."""

    name: str
    version: str
    promoted: bool
    reason: str


@dataclass
class TrainOutcome:
    result: TrainingResult
    registrations: list[Registration]
    report_paths: dict[str, Path]
    data_summary: str
    rows_used: dict[str, int]
    tracking_uri: str
    seconds: float
    data_warnings: tuple[str, ...] = ()


@dataclass
class ScoreOutcome:
    ranked: pd.DataFrame  # every scored customer, control ones too (the list: scoring.outreach_list)
    paths: dict[str, Path]
    summary: dict[str, Any]
    seconds: float
    published_run: int | None = None
    database: str | None = None
    #: Per stage: ``stage``, ``seconds``, ``peak_rss_mb`` (``retain.timing``).
    stages: list[dict[str, Any]] = field(default_factory=list)
    #: Feedback texts scored and taken from the text cache, and the seconds spent in the models.
    texts: dict[str, Any] = field(default_factory=dict)


@dataclass
class ReportOutcome:
    path: Path
    #: The report's sections, in order, and the CSV file of each table behind them.
    sections: list[str]
    tables: dict[str, Path]
    notes: list[str]
    seconds: float
    mlflow_run: str | None = None


@dataclass
class DemoOutcome:
    world_dir: Path
    rows: dict[str, int]
    train: TrainOutcome
    score: ScoreOutcome
    seconds: dict[str, float] = field(default_factory=dict)
    #: The demo's database and a lead token for its page (a demo prints it; see DEMO_TOKEN_NAME).
    database_url: str | None = None
    lead_token: str | None = None
    report: ReportOutcome | None = None


def run_synth(
    out: Path, customers: int, seed: int, start: date, end: date, file_format: str = "parquet",
    show_progress: bool = False,
) -> dict[str, Path]:
    """Generate a synthetic world and write its four tables to ``out``."""
    from retain.synth import generate_world

    world = generate_world(customers, seed=seed, start=start, end=end, show_progress=show_progress)
    paths = data.write_world(world, out, file_format=file_format)
    for name, frame in world.tables().items():
        logger.info("%s: %d rows", name, len(frame))
    return paths


def _open_store_before_training(config: TrackingConfig) -> None:
    """Open (create, migrate) the store once the inputs have been read, before any training.

    After the inputs: a missing data file or taxonomy leaves no new empty store behind. Before
    training: a store that cannot be used fails now, not after minutes of work, and a new store
    is created and migrated once under a lock (concurrent trainings).
    """
    tracking.open_store(config, create=True)


def run_train(config: TrainConfig, show_progress: bool = False, until: date | None = None) -> TrainOutcome:
    """Load and validate the data, audit, train and evaluate, write the report, log and register.

    With ``until``, the data is read as if it ended on that date (no row dated after it is read),
    so every label window closes by then: that is how a held-out period is simulated.
    """
    started = time.perf_counter()
    stop = pd.Timestamp(until) + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1) if until else None
    if config.data.layout == "flat":
        if until is not None:
            raise ConfigError(
                "--until needs dated tables (data.layout: tables); a flat table has no dates to cut at"
            )
        flat = data.load_flat(config.data, attributes=config.features.attributes)
        _open_store_before_training(config.tracking)
        result = train_flat(flat, config.churn, config.scoring.monitoring.reference_rows)
        summary, rows_used = flat.summary(), {"customers": len(flat.frame)}
        warnings = _flat_warnings(flat)
    else:
        loaded = data.load_world(config.data, until=stop)
        theme_ids = _theme_ids(config)
        _open_store_before_training(config.tracking)
        result = train(
            loaded.world, theme_ids, config.features, config.label, config.text, config.churn,
            until=stop, show_progress=show_progress, reference_rows=config.scoring.monitoring.reference_rows,
            pretrained_text=(
                registered_text_models(config.tracking) if _feedback_without_labels(loaded.world) else None
            ),
        )
        summary = loaded.summary()
        rows_used = {name: len(frame) for name, frame in loaded.world.tables().items()}
        warnings = loaded.warnings
    logger.info("%s", result.churn.audit.summary())
    report_paths = write_training_report(result, config.reports_dir)
    registrations = register_training(result, config)
    return TrainOutcome(
        result=result,
        registrations=registrations,
        report_paths=report_paths,
        data_summary=summary,
        rows_used=rows_used,
        tracking_uri=config.tracking.tracking_uri,
        seconds=time.perf_counter() - started,
        data_warnings=tuple(warnings),
    )


def _flat_warnings(flat: data.FlatTable) -> tuple[str, ...]:
    reports = [flat.report, *([flat.test_report] if flat.test_report is not None else [])]
    return tuple(r.summary() for r in reports if len(r.rejected) or len(r.amended))


def registered_text_models(track: TrackingConfig) -> TextModels | None:
    """The registry's text champions, for data without text labels (None if there are none).

    The champion of ``retain text train`` (``tracking.text_model``, one model for sentiment and
    themes, whichever kind won) comes first; otherwise the sentiment and theme models a churn
    training on labelled feedback registered.
    """
    from_text_job = _text_job_champion(track)
    if from_text_job is not None:
        return from_text_job
    versions: dict[str, str] = {}
    models: dict[str, Any] = {}
    until: list[pd.Timestamp] = []
    theme_ids: list[str] = []
    for name in (track.sentiment_model, track.theme_model):
        try:
            version = tracking.champion_version(track, name)
        except Exception:  # noqa: BLE001 - no store or no such model yet
            version = None
        if version is None:
            continue
        models[name], versions[name] = tracking.load_version(track, name, version), version
        stamp = tracking.run_tags(track, name, version).get("train_until")
        until.append(pd.Timestamp(stamp) if stamp and stamp != "None" else pd.Timestamp.max)
        if name == track.theme_model:
            tags = tracking.model_version_tags(track, name, version)
            theme_ids = [t for t in tags.get(THEME_IDS_TAG, "").split(THEME_SEPARATOR) if t]
    if not models:
        return None
    return TextModels(
        sentiment=models.get(track.sentiment_model),
        themes=models.get(track.theme_model),
        theme_ids=theme_ids,
        metrics={},
        baseline_metrics={},
        train_until=max(until),
        registered=versions,
    )


def _text_job_champion(track: TrackingConfig) -> TextModels | None:
    try:
        version = tracking.champion_version(track, track.text_model)
    except Exception:  # noqa: BLE001 - no store or no such model yet
        version = None
    if version is None:
        return None
    bundle = tracking.load_text_model(track, f"models:/{track.text_model}/{version}").model
    stamp = tracking.run_tags(track, track.text_model, version).get("train_until")
    return TextModels(
        sentiment=bundle.sentiment,
        themes=bundle.themes,
        theme_ids=list(bundle.theme_ids),
        metrics={},
        baseline_metrics={},
        train_until=pd.Timestamp(stamp) if stamp else pd.Timestamp.max,
        registered={track.text_model: version},
        single_label_themes=bool(bundle.single_label_themes),
    )


def _feedback_without_labels(world: Any) -> bool:
    from retain.training import labelled_feedback

    if world.feedback is None or world.feedback.empty:
        return False
    with_sentiment, with_themes = labelled_feedback(world.feedback)
    return with_sentiment.empty and with_themes.empty


def _theme_ids(config: TrainConfig | ScoreConfig) -> list[str]:
    if not config.text.taxonomy.exists():
        logger.info("no theme taxonomy at %s: themes are left out", config.text.taxonomy)
        return []
    return load_config(config.text.taxonomy, Taxonomy).ids


def write_training_report(result: TrainingResult, directory: Path) -> dict[str, Path]:
    """Metrics (JSON), plots (PNG) and the evaluation predictions (CSV) for people to read."""
    text_figures = result.text.figures if result.text is not None else {}
    paths = data.write_figures({**result.churn.figures, **text_figures}, directory)
    paths["metrics"] = data.write_json(training_metrics(result), directory / "metrics.json")
    paths["predictions"] = data.write_frame(
        result.churn.predictions, directory / "churn_evaluation_predictions.csv"
    )
    return paths


def training_metrics(result: TrainingResult) -> dict[str, Any]:
    churn = result.churn
    out: dict[str, Any] = {
        "layout": result.layout,
        "churn_definition": result.definition,
        "feature_families": result.families,
        "evaluation": result.evaluation,
        "tuned_on": churn.tuned_on,
        "settings": churn.params,
        "churn": churn.metrics,
        "churn_logistic_baseline": churn.baseline_metrics,
        "churn_per_split": churn.per_split.to_dict(orient="records"),
        "churn_vs_baseline": churn.comparison.to_dict(),
        "audit": churn.audit.to_dict(),
        "features_used": churn.feature_columns,
        "refit": refit_description(result),
    }
    if result.plan is not None:
        out["horizon_days"] = result.plan.horizon_days
        out["evaluation_as_of"] = [str(d.date()) for d in result.plan.evaluation]
        out["labelled_as_of"] = [str(d.date()) for d in result.plan.labelled]
    if result.text is not None:
        out["text"] = result.text.metrics
        out["text_majority_baseline"] = result.text.baseline_metrics
        out["text_rows"] = {"fit": result.text.n_train, "evaluate": result.text.n_test}
    return out


def refit_description(result: TrainingResult) -> str:
    """Which rows the registered model was refitted on after evaluation."""
    if result.plan is not None:
        return (
            f"after evaluation, refitted on {result.churn.n_train} rows: the latest labelled dates "
            f"up to {result.plan.last_labelled.date()}, evaluation dates included"
        )
    return f"after evaluation, refitted on all {result.churn.n_train} labelled training rows"


def register_training(result: TrainingResult, config: TrainConfig) -> list[Registration]:
    """Log the text run and the churn run to MLflow, register the models, decide champions."""
    track = config.tracking
    text = result.text
    registrations: list[Registration] = []
    text_versions: dict[str, str] = dict(text.registered) if text is not None else {}
    if text is not None and not text.registered:
        with tracking.tracked_run(track, "text-models", tags={"evaluation_id": text.evaluation_id}) as run:
            run.log_params(config.text, prefix="text")
            run.log_params({"n_fit": text.n_train, "n_evaluate": text.n_test, "theme_ids": ",".join(text.theme_ids)})
            run.log_metrics(text.metrics)
            run.log_metrics({f"baseline_{k}": v for k, v in text.baseline_metrics.items()})
            run.log_figures(text.figures)
            run.set_tags({"train_until": str(text.train_until)})
            examples = ["The agent never called me back", "Great app, works perfectly"]
            uris = {}
            if text.sentiment is not None:
                uris["sentiment"] = run.log_model(text.sentiment, "sentiment", input_example=examples)
            if text.themes is not None:
                uris["themes"] = run.log_model(text.themes, "themes", input_example=examples)
        for kind, name, metric, extra in (
            ("sentiment", track.sentiment_model, "sentiment_macro_f1", {}),
            ("themes", track.theme_model, "themes_micro_f1", {THEME_IDS_TAG: THEME_SEPARATOR.join(text.theme_ids)}),
        ):
            if kind not in uris:
                continue
            version = tracking.register_model(track, uris[kind], name, tags=extra)
            registrations.append(
                _promote(track, name, version, metric, text.metrics[metric], text.baseline_metrics[metric], text.evaluation_id)
            )
            text_versions[name] = version

    churn = result.churn
    tags = {
        "evaluation_id": result.evaluation_id,
        "evaluation": result.evaluation,
        "tuned_on": churn.tuned_on,
        "churn_definition": result.definition,
        "layout": result.layout,
        "feature_families": ", ".join(result.families),
        "refit": refit_description(result),
        "audit_excluded": ", ".join(churn.audit.excluded_columns) or "none",
    }
    if result.plan is not None:
        tags["trained_until"] = str(result.plan.last_labelled.date())
    with tracking.tracked_run(track, "churn", tags=tags) as run:
        run.log_params(config.churn, prefix="churn")
        run.log_params(config.features, prefix="features")
        run.log_params(config.label, prefix="label")
        run.log_params({f"chosen.{k}": v for k, v in churn.params.items()})
        run.log_params({"n_train_rows": churn.n_train})
        run.log_metrics(churn.metrics)
        run.log_metrics({f"baseline_{k}": v for k, v in churn.baseline_metrics.items()})
        run.log_metrics({"roc_auc_gain_over_baseline": churn.comparison.difference})
        run.log_figures(churn.figures)
        run.log_frame(churn.predictions, "evaluation_predictions")
        run.log_frame(churn.selection, "settings_search")
        run.log_dict(churn.audit.to_dict(), "audit.json")
        tracking.tag_text_models(run, text_versions)
        # No input example: MLflow cannot check a signature on pandas category columns.
        churn_uri = run.log_model(churn.model, "churn", extra_requirements=("lightgbm", "retain"))
        if churn.reference is not None:
            as_of = None if churn.reference_as_of is None else str(churn.reference_as_of.date())
            tracking.log_monitoring_reference(run, churn.reference, {"as_of": as_of, "roc_auc": churn.metrics["roc_auc"]})
        run.log_model(churn.baseline, "logistic_baseline")
    version = tracking.register_model(track, churn_uri, track.churn_model, tags={"layout": result.layout})

    def against_champion(champion: str) -> tuple[bool, str] | None:
        theirs = tracking.evaluation_predictions(track, track.churn_model, champion)
        if theirs is None:
            return None
        keys = ["split", "customer_id", "as_of"]
        paired = churn.predictions.merge(
            theirs[[*keys, "churn_probability"]].rename(columns={"churn_probability": "champion_probability"}),
            on=keys,
        )
        if len(paired) != len(churn.predictions):
            return None
        comparison = paired_comparison(paired, "churn_probability", "champion_probability")
        return comparison.better, comparison.describe()

    decision = tracking.promote_if_better(
        track, track.churn_model, version, metric="roc_auc",
        value=churn.metrics["roc_auc"], baseline_value=churn.baseline_metrics["roc_auc"],
        evaluation_id=result.evaluation_id,
        baseline_detail=churn.comparison.describe(names=False),
        champion_paired=against_champion,
    )
    registrations.append(
        Registration(name=track.churn_model, version=version, promoted=decision.promoted, reason=decision.reason)
    )
    return registrations


def _promote(
    track: TrackingConfig, name: str, version: str, metric: str, value: float, baseline: float, evaluation_id: str
) -> Registration:
    decision = tracking.promote_if_better(
        track, name, version, metric=metric, value=value, baseline_value=baseline, evaluation_id=evaluation_id
    )
    return Registration(name=name, version=version, promoted=decision.promoted, reason=decision.reason)


def load_scoring_models(
    track: TrackingConfig, churn_version: str | None = None, reference: bool = False
) -> tuple[ScoringModels, list[str]]:
    """The champion churn model, the text models it was trained with, and their theme ids.

    With ``reference``, also the monitoring reference saved with the churn model (None when it
    has none: a model registered before monitoring existed).

    The churn model's text features were computed by particular sentiment and theme model
    versions (recorded on its run); scoring uses those same versions, not whatever text models
    are champions now, so the features mean at scoring what they meant in training. A churn
    model trained without text features uses no text model.
    """
    if churn_version is not None:
        churn = tracking.load_version(track, track.churn_model, churn_version)
    else:
        churn, churn_version = tracking.load_champion(track, track.churn_model)
    used = tracking.text_models_used(track, track.churn_model, churn_version)
    versions = {track.churn_model: churn_version}
    sentiment = themes = None
    theme_ids: list[str] = []
    single_label = False
    if track.text_model in used:
        # One model from `retain text train` (any kind: TF-IDF, transformer, zero-label).
        bundle = tracking.load_text_model(
            track, f"models:/{track.text_model}/{used[track.text_model]}"
        ).model
        sentiment, themes, theme_ids = bundle.sentiment, bundle.themes, list(bundle.theme_ids)
        single_label = bool(bundle.single_label_themes)
        versions[track.text_model] = used[track.text_model]
    if track.sentiment_model in used:
        sentiment = tracking.load_version(track, track.sentiment_model, used[track.sentiment_model])
        versions[track.sentiment_model] = used[track.sentiment_model]
    if track.theme_model in used:
        themes = tracking.load_version(track, track.theme_model, used[track.theme_model])
        versions[track.theme_model] = used[track.theme_model]
        tags = tracking.model_version_tags(track, track.theme_model, used[track.theme_model])
        theme_ids = [t for t in tags.get(THEME_IDS_TAG, "").split(THEME_SEPARATOR) if t]
    models = ScoringModels(
        sentiment=sentiment, themes=themes, churn=churn, versions=versions,
        single_label_themes=single_label,
        text_versions={name: v for name, v in versions.items() if name != track.churn_model},
        reference=tracking.monitoring_reference(track, track.churn_model, churn_version) if reference else None,
    )
    return models, theme_ids


def default_score_date(world_end: pd.Timestamp) -> pd.Timestamp:
    """Score as of the start of the day after the data ends, so the last day counts."""
    return world_end.normalize() + pd.Timedelta(days=1)


def score_date(
    as_of: date | None, data_end: pd.Timestamp, config: ScoreConfig, force: bool = False
) -> tuple[pd.Timestamp, str]:
    """The scoring date and how it was chosen.

    Default: the day after the data that passed the contract ends. A date given more than
    ``scoring.max_as_of_gap_days`` from that is refused unless forced (``force`` or
    ``scoring.force_as_of``): stale data would make everyone look silent, a date long past
    would rank the customers of then.

    Raises
    ------
    ScoringError
        When the date is too far from the end of the data and not forced.
    """
    default = default_score_date(data_end)
    if as_of is None:
        return default, f"default: the day after the data ends ({data_end:%Y-%m-%d %H:%M:%S})"
    when = pd.Timestamp(as_of)
    days = abs(when - default) / pd.Timedelta(days=1)
    where = (
        f"{days:.0f} days {'after' if when > default else 'before'} the default scoring date "
        f"{default.date()} (the day after the data ends, {data_end:%Y-%m-%d %H:%M:%S})"
    )
    limit = config.scoring.max_as_of_gap_days
    if days <= limit:
        return when, "--as-of"
    if force or config.scoring.force_as_of:
        return when, f"--as-of, forced: {where}"
    raise ScoringError(
        f"--as-of {when.date()} is {where}, more than scoring.max_as_of_gap_days ({limit}); check "
        "that the data is current (or that the date is meant), then pass --force-as-of to score anyway"
    )


def run_score(
    config: ScoreConfig,
    as_of: date | None = None,
    churn_version: str | None = None,
    force_as_of: bool = False,
    show_progress: bool = False,
) -> ScoreOutcome:
    """Score with the champion models (or a given churn version) and write the ranked list atomically.

    The scoring date is ``as_of`` or the day after the data ends (see :func:`score_date`); the
    summary records it, how it was chosen and the data's warnings. Each stage's wall time and
    the peak memory after it are in ``outcome.stages`` (printed and logged to MLflow as a
    ``score`` run); feedback scored by the same text models in an earlier run is read from the
    text cache (``scoring.text_cache``, ``<output_dir>/text_cache.parquet``).
    """
    from retain.timing import stage, stage_clock

    started = time.perf_counter()
    with stage_clock(show_progress, stages=12 if config.data.layout == "tables" else 7) as clock:
        with stage("load models"):
            tracking.open_store(config.tracking, create=False)
            models, theme_ids = load_scoring_models(
                config.tracking, churn_version, reference=config.scoring.monitoring.enabled
            )
            playbook = load_config(config.scoring.playbook, Playbook)
            check_playbook_tiers(playbook, config)
            contacts = known_contacts(config)
        world = None
        text_counts: dict[str, int] = {}
        watched: Watched
        if config.scoring.engine == "spark":
            from retain.engines.spark import score_on_spark

            run = score_on_spark(
                config, models, theme_ids, playbook, lambda end: score_date(as_of, end, config, force_as_of), contacts
            )
            ranked, world, how, rejected, warnings = run.ranked, run.world, run.as_of_chosen, run.rejected, run.warnings
            # The driver holds every customer's features and probability, not all the feedback,
            # events or customer rows (``run.world`` has the explained customers' rows only).
            watched = Watched(
                run.scores.table, run.scores.probability,
                notes=(
                    "theme surges not checked on the Spark engine: the feedback stays on the cluster",
                    "realised performance of earlier runs not computed on the Spark engine: the labels stay on the cluster",
                ),
                labels_world=False,
            )
        elif config.data.layout == "flat":
            with stage("load data"):
                flat = data.load_flat(config.data, attributes=config.features.attributes)
            ranked = score_flat(
                flat.frame, models, config.scoring, playbook, pd.Timestamp(as_of) if as_of else None,
                value_column=config.data.flat.value_column if config.data.flat else None, contacts=contacts,
            )
            rejected = {"customers": len(flat.report.rejected)}
            how = "--as-of" if as_of is not None else "each row's snapshot date"
            warnings = _flat_warnings(flat)
            watched = Watched(flat.frame.loc[flat.frame["churned"].fillna(0) != 1], ranked["churn_probability"].to_numpy())
        else:
            with stage("load data"):
                loaded = data.load_world(config.data)
            world = loaded.world
            data_end = observed_until(loaded.world)
            when, how = score_date(as_of, data_end, config, force_as_of)
            logger.info("scoring as of %s (%s)", when.date(), how)
            scores, ranked = score_and_rank(
                loaded.world, when, models, theme_ids, config.features, config.scoring, playbook, config.label,
                contacts=contacts, text_scorer=_text_scorer(config, models, theme_ids, text_counts, show_progress),
            )
            rejected = {name: len(r.rejected) for name, r in loaded.reports.items()}
            warnings = loaded.warnings
            watched = Watched(scores.table, scores.probability, feedback=dated_text_scores(scores.text_scores, world))
        summary = summarise(ranked, models.versions)
        if config.scoring.monitoring.enabled and len(ranked):
            with stage("monitoring"):
                summary["monitoring"] = monitor(config, models, watched, ranked["as_of"].iloc[0], world)
        summary["as_of_chosen"] = how
        summary["rejected_input_rows"] = rejected
        summary["data_warnings"] = list(warnings)
        summary["control_in_list"] = playbook.include_control
        listed = outreach_list(ranked, playbook.include_control)
        summary["reasons"] = reasons_coverage(listed)
        with stage("write"):
            paths = write_scores(
                ranked, config.scoring.output_dir, summary, keep_runs=config.scoring.keep_runs,
                include_control=playbook.include_control,
            )
        # Not in the summary file: a rerun on the same data writes the same files.
        outcome = ScoreOutcome(ranked=ranked, paths=paths, summary=summary, seconds=0.0, texts=text_counts)
        if config.scoring.publish:
            with stage("publish"):
                # The database holds the list the files hold: the control group only if the playbook lists it.
                outcome.published_run = publish_scores(
                    config.scoring.database, listed, summary, world, models, theme_ids
                )
            from retain.serve.db import masked

            outcome.database = masked(config.scoring.database.url)
    outcome.seconds = time.perf_counter() - started
    outcome.stages = clock.summary()
    if config.scoring.log_to_mlflow:
        tracking.log_score_run(config.tracking, summary, outcome.stages, outcome.seconds, text_counts)
    return outcome


@dataclass(frozen=True)
class Watched:
    """What a scoring run's monitoring reads: its feature table, probabilities and dated feedback scores."""

    table: pd.DataFrame
    probability: Any
    feedback: pd.DataFrame | None = None
    notes: tuple[str, ...] = ()
    #: Whether the run's world holds every customer and event (realised performance reads labels from it).
    labels_world: bool = True


def dated_text_scores(text_scores: pd.DataFrame | None, world: World) -> pd.DataFrame | None:
    """The run's feedback scores with each row's ``created_at`` (what theme surges read)."""
    if text_scores is None or world.feedback is None:
        return None
    dates = world.feedback[["feedback_id", "created_at"]].astype({"feedback_id": str})
    return text_scores.astype({"feedback_id": str}).merge(dates, on="feedback_id", how="inner")


def monitor(
    config: ScoreConfig, models: ScoringModels, watched: Watched, as_of: pd.Timestamp, world: World | None
) -> dict[str, Any]:
    """The run's monitoring section (``insight.monitoring.monitor_run``); one WARNING line per breach."""
    from retain.insight.monitoring import monitor_run

    settings = config.scoring.monitoring
    realised, notes = earlier_runs_realised(config, world if watched.labels_world else None, pd.Timestamp(as_of))
    result = monitor_run(
        watched.probability, settings, reference=models.reference, table=watched.table,
        features=list(models.churn.feature_names_in_), feedback_scores=watched.feedback, as_of=pd.Timestamp(as_of),
        realised=realised, notes=[*watched.notes, *notes],
    )
    for line in result.breaches:
        logger.warning("monitoring breach: %s", line)
    return result.section


def earlier_runs_realised(
    config: ScoreConfig, world: World | None, as_of: pd.Timestamp
) -> tuple[list[dict[str, Any]], list[str]]:
    """Realised performance of each earlier run whose churn labels the data now shows.

    The earlier runs are the archived outreach plans (``<output_dir>/outreach_plans``: every
    scored customer and probability, kept after the run is pruned) dated before ``as_of``
    whose horizon ends by the time the data observes churn (``training.labels_observed_until``)
    and by ``as_of`` (a past ``--as-of`` never reads labels seen after it);
    each customer's label is read from the data as it is now (``churn.labels.labels``).
    """
    from retain.churn.labels import labels
    from retain.insight.monitoring import realised_performance
    from retain.training import TrainingError, labels_observed_until

    plans = data.dated_files(config.scoring.output_dir / PLAN_ARCHIVE, "plan_")
    if world is None or not plans:
        return [], []
    try:
        observed = labels_observed_until(world, config.label)
    except TrainingError as exc:
        return [], [f"realised performance not computed: {exc}"]
    # A past as_of (--as-of) on data that runs on: judge only what was known at as_of.
    observed = min(observed, as_of)
    horizon = pd.Timedelta(days=config.features.horizon_days)
    found: list[dict[str, Any]] = []
    for when, path in plans.items():
        if when >= as_of or when + horizon > observed:
            continue
        plan = data.read_frame(path)
        truth = labels(world.customers, world.events, when, config.features.horizon_days, config.label)
        truth.index = truth.index.astype(str)
        churned = truth.reindex(plan["customer_id"].astype(str).to_numpy())
        known = churned.notna().to_numpy()
        if len(np.unique(churned.to_numpy()[known])) < 2:
            continue
        performance = realised_performance(plan["churn_probability"].to_numpy()[known], churned.to_numpy()[known])
        found.append({"as_of": str(when.date()), **performance})
    return found, []


def run_report(config: ScoreConfig, show_progress: bool = False) -> ReportOutcome:
    """Write the insight report (``report.output_dir/report.html`` and its tables) and log it to MLflow.

    KPIs come from the data alone; themes, drivers and the model section need the champion churn
    model and the text models it was trained with (left out with a note when there is none);
    monitoring comes from the latest scoring run's summary under ``scoring.output_dir``.
    """
    from retain.insight.report import ReportParts, insight_report, kpi_tables
    from retain.timing import stage, stage_clock

    started = time.perf_counter()
    settings = config.report
    if config.data.layout != "tables":
        raise ConfigError(
            "retain report needs dated tables (data.layout: tables, or a purchase log); a flat "
            "one-row-per-customer table has no periods to report on"
        )
    notes: list[str] = []
    with stage_clock(show_progress, stages=7, desc="Report"):
        with stage("load models"):
            models, theme_ids, evaluation, churn_version = _report_models(config, notes)
        with stage("load data"):
            world = data.load_world(config.data).world
            end = observed_until(world)
        with stage("text"):
            text_scores = None
            if models is not None and world.feedback is not None and (models.sentiment is not None or models.themes is not None):
                since = (end - pd.DateOffset(months=settings.months)).normalize()
                feedback = world.feedback.loc[world.feedback["created_at"] >= since]
                text_scores = feedback_scores(feedback, models, theme_ids, config.features)
        with stage("KPIs"):
            tables, kpi_notes = kpi_tables(
                world, end, config.label, config.features.horizon_days, settings, text_scores, theme_ids
            )
            notes += kpi_notes
        with stage("drivers"):
            drivers = _report_drivers(world, config, models, theme_ids, notes) if settings.drivers else None
        with stage("value"):
            value, value_summary = _report_value(world, end, config, notes) if settings.value else (None, {})
        monitoring = data.read_json(config.scoring.output_dir / data.LATEST / SUMMARY).get("monitoring")
        facts = {
            "data": str(config.data.path),
            "data from": f"{observed_since(world):%Y-%m-%d}",
            "data until": f"{end:%Y-%m-%d %H:%M}",
            "customers": f"{world.customers['customer_id'].nunique():,}",
            "churn definition": f"{config.label.definition}, {config.features.horizon_days}-day horizon",
            "churn model": f"{config.tracking.churn_model} version {churn_version}" if churn_version else "none",
        }
        parts = ReportParts(
            title="retain report",
            facts={k: v for k, v in facts.items() if v},
            service=tables.get("service"),
            service_by={k.removeprefix("service_by_"): v for k, v in tables.items() if k.startswith("service_by_")},
            customers=tables.get("customers"),
            themes=tables.get("themes"),
            drivers=drivers,
            value=value,
            value_summary=value_summary,
            evaluation=evaluation,
            monitoring=monitoring,
            notes=notes,
        )
        with stage("write"):
            page = insight_report(parts)
            if drivers is not None:
                tables["drivers"] = drivers
            out = settings.output_dir
            paths = {name: data.write_frame(table, out / f"{name}.csv") for name, table in tables.items()}
            path = data.write_text_file(page, out / "report.html")
    run_id = None
    if settings.log_to_mlflow:
        run_id = tracking.log_report_run(config.tracking, page, tables, parts.facts)
    sections = re.findall(r'<section id="([a-z_]+)"', page)
    return ReportOutcome(
        path=path, sections=sections, tables=paths, notes=notes, seconds=time.perf_counter() - started, mlflow_run=run_id
    )


def _report_models(
    config: ScoreConfig, notes: list[str]
) -> tuple[ScoringModels | None, list[str], pd.DataFrame | None, str | None]:
    """The champion churn model's scoring models, theme ids and evaluation predictions, if any."""
    try:
        tracking.open_store(config.tracking, create=False)
        models, theme_ids = load_scoring_models(config.tracking)
    except (tracking.NoChampionError, tracking.StoreError) as exc:
        notes.append(f"no themes, drivers or model section: {exc}")
        return None, [], None, None
    version = models.versions[config.tracking.churn_model]
    evaluation = tracking.evaluation_predictions(config.tracking, config.tracking.churn_model, version)
    if evaluation is None:
        notes.append(f"{config.tracking.churn_model} version {version} logged no evaluation predictions: no model section")
    return models, theme_ids, evaluation, version


def _report_drivers(
    world: World, config: ScoreConfig, models: ScoringModels | None, theme_ids: list[str], notes: list[str]
) -> pd.DataFrame | None:
    """The churn drivers (docs/drivers.md), or None with a note when the data cannot give them."""
    from retain.insight.drivers import drivers_report

    taxonomy = load_config(config.text.taxonomy, Taxonomy) if theme_ids and config.text.taxonomy.is_file() else None
    try:
        table = drivers_report(
            world, config.features, config.label, models, config.report.driver_analysis, taxonomy,
            theme_ids=theme_ids or None,
        )
    except (ValueError, TrainingError) as exc:
        notes.append(f"no churn drivers: {exc}")
        return None
    if table.empty:
        notes.append(
            "no churn drivers: no candidate (a ticket, feedback, channel or customer attribute) was seen in "
            f"at least {config.report.driver_analysis.min_rows} customer-dates (report.driver_analysis.min_rows)"
        )
        return None
    return table


def _report_value(
    world: World, end: pd.Timestamp, config: ScoreConfig, notes: list[str]
) -> tuple[pd.DataFrame | None, dict[str, Any]]:
    """A purchase log's expected customer value (BG/NBD x Gamma-Gamma fitted to ``end``), and its summary."""
    from retain.insight.value import expected_value_table
    from retain.scoring import needs_purchase_value

    if not needs_purchase_value(world.customers) or world.events is None or "amount" not in world.events.columns:
        return None, {}
    horizon = config.scoring.purchase_value_horizon_days or config.features.horizon_days
    try:
        table = expected_value_table(world.events, end, horizon)
    except (ValueError, RuntimeError) as exc:
        notes.append(f"no customer value section: BG/NBD and Gamma-Gamma could not be fitted ({exc})")
        return None, {}
    summary = {
        "customers with a purchase": f"{len(table):,}",
        "repeat buyers": f"{int((table['frequency'] > 0).sum()):,}",
        f"expected purchases in the next {horizon} days": f"{table['expected_purchases'].sum():,.0f}",
        f"expected spend in the next {horizon} days": f"{table['expected_value'].sum():,.0f}",
        "customers probably still active (P(alive) >= 0.5)": f"{(table['probability_alive'] >= 0.5).mean():.1%}",
        "mean expected basket": f"{table['expected_average_value'].mean():,.2f}",
        "models": "BG/NBD and Gamma-Gamma fitted on every buyer's history to the end of the data (docs/kpis.md)",
    }
    return table, summary


def format_report_outcome(outcome: ReportOutcome) -> str:
    lines = [f"report written to {outcome.path} in {outcome.seconds:.1f} s: {', '.join(outcome.sections)}"]
    lines += [f"  note: {n}" for n in outcome.notes]
    if outcome.mlflow_run:
        lines.append(f"logged to MLflow as run {outcome.mlflow_run} (artifact reports/report.html)")
    return "\n".join(lines)


def _text_scorer(
    config: ScoreConfig,
    models: ScoringModels,
    theme_ids: list[str],
    counts: dict[str, int],
    show_progress: bool,
    update: bool = True,
) -> Any:
    """Score feedback through the text cache (``scoring.text_cache``), counting hits into ``counts``.

    None without a cache: :func:`retain.scoring.score_customers` then scores every text. With
    ``update`` false the cache is read, not written.
    """
    if not config.scoring.text_cache:
        return None
    from retain.scoring import cached_feedback_scores

    def scorer(feedback: pd.DataFrame) -> pd.DataFrame:
        cache = data.read_text_cache(config.scoring.text_cache_path)
        result = cached_feedback_scores(
            feedback, models, theme_ids, config.features, cache, show_progress=show_progress
        )
        if update:
            data.write_frame(result.cache, config.scoring.text_cache_path)
        counts.update(
            {"from_cache": result.n_cached, "scored": result.n_scored, "inference_seconds": round(result.inference_seconds, 3)}
        )
        return result.scores

    return scorer


@dataclass
class ExplainOutcome:
    explained: pd.DataFrame  # scoring.explain_customers
    as_of: pd.Timestamp
    customers_scored: int
    seconds: float


def run_explain(
    config: ScoreConfig,
    customer_ids: list[str],
    as_of: date | None = None,
    force_as_of: bool = False,
    show_progress: bool = False,
) -> ExplainOutcome:
    """Reasons and their evidence for named customers, on request, as a scoring run would give them.

    Scores the population as ``retain score`` does (the text cache makes a rerun cheap) and
    computes exact reasons for the customers named, against the whole population; nothing is
    written or published.
    """
    from retain.scoring import explain_customers, fit_purchase_value, score_customers

    started = time.perf_counter()
    if config.data.layout == "flat":
        raise ConfigError("retain explain needs dated tables (data.layout: tables); a flat table's list explains everyone")
    tracking.open_store(config.tracking, create=False)
    models, theme_ids = load_scoring_models(config.tracking)
    loaded = data.load_world(config.data, write_quarantine=False)
    when, _ = score_date(as_of, observed_until(loaded.world), config, force_as_of)
    scorer = _text_scorer(config, models, theme_ids, {}, show_progress, update=False)
    scores = score_customers(
        loaded.world, when, models, theme_ids, config.features, config.label, text_scorer=scorer,
        purchase_value=fit_purchase_value(loaded.world, when, config.scoring, config.features),
    )
    explained = explain_customers(
        scores, customer_ids, when, models, config.features, config.scoring, loaded.world
    )
    return ExplainOutcome(explained, when, len(scores.table), time.perf_counter() - started)


def format_explain_outcome(outcome: ExplainOutcome) -> str:
    lines = [f"As of {outcome.as_of.date()} ({outcome.customers_scored:,} customers scored):"]
    for row in outcome.explained.to_dict(orient="records"):
        lines.append(
            f"{row['customer_id']}  p={row['churn_probability']:.2f}  value at risk "
            f"{row['value_at_risk']:,.0f}/month  rank {row['rank']:,} by value at risk (control group included)"
        )
        i = 1
        quoted = False
        while f"reason_{i}" in row:
            phrase, evidence = row[f"reason_{i}"], row.get(f"reason_{i}_evidence")
            if isinstance(phrase, str):
                quoted = True
                behind = f"  [{evidence.replace('|', ', ')}]" if isinstance(evidence, str) and evidence else ""
                lines.append(f"  - {phrase}{behind}")
            i += 1
        if not quoted:
            lines.append("  no reason stands out: nothing in their data both raises the risk and differs from the typical customer")
    return "\n".join(lines)


def publish_scores(
    database: DatabaseConfig,
    ranked: pd.DataFrame,
    summary: dict[str, Any],
    world: World | None,
    models: ScoringModels,
    theme_ids: list[str],
) -> int:
    """Publish a ranked list to the database as its new current run; return the run id.

    With a world (not a flat table) the run also holds each customer's segment, region and
    plan, and the tickets and feedback behind their reasons, the feedback with the sentiment
    and themes of the text models the list was scored with. Runs beyond
    ``database.keep_runs`` are then pruned (never the outreach log).

    Raises
    ------
    retain.serve.db.DatabaseError
        The database cannot be opened or written; the previous run stays current.
    """
    from retain.serve import db, runs

    evidence = None
    if world is not None and len(ranked):
        evidence = evidence_behind(ranked, world, models, theme_ids)
        ranked = runs.with_customer_attributes(ranked, world.customers)
    with opened(database, "publishing the list") as engine:
        run_id = runs.publish_run(engine, ranked, summary, evidence)
        with db.database_errors(database.url, f"pruning runs after publishing run {run_id}"):
            runs.prune_runs(engine, database.keep_runs)
    return run_id


def evidence_behind(
    ranked: pd.DataFrame, world: World, models: ScoringModels, theme_ids: list[str]
) -> pd.DataFrame:
    """The tickets and feedback behind the list's reasons, feedback scored by the list's text models."""
    as_of = pd.Timestamp(ranked["as_of"].iloc[0])
    records = evidence_records(ranked, as_of, world.tickets, world.feedback)
    if world.feedback is None or (models.sentiment is None and models.themes is None):
        return records
    named = records.loc[records["kind"] == "feedback", "evidence_id"]
    feedback = world.feedback.loc[world.feedback["feedback_id"].astype(str).isin(named)]
    scores = score_feedback(feedback, models.sentiment, models.themes, theme_ids)
    return evidence_records(
        ranked, as_of, world.tickets, world.feedback, feedback_scores=scores, theme_ids=theme_ids
    )


def database_of(config_path: Path | None, url: str | None) -> DatabaseConfig:
    """The database ``retain runs``, ``serve`` and ``tokens`` work on: ``url`` if given, else the
    score config's (``configs/score.yaml`` by default), else the default database.

    An explicit ``url`` wins over ``$RETAIN_DATABASE_URL``, which wins over the config file.
    """
    if url is not None:
        return DatabaseConfig().model_copy(update={"url": url})
    config = _serving_config(config_path)
    return config.scoring.database if config is not None else DatabaseConfig()


def report_of(config_path: Path | None) -> Path | None:
    """The report.html a config's ``retain report`` writes (``configs/score.yaml`` by default), if any."""
    config = _serving_config(config_path)
    return config.report.output_dir / "report.html" if config is not None else None


def _serving_config(config_path: Path | None) -> ScoreConfig | None:
    """The score config ``retain runs``, ``serve`` and ``tokens`` read: the one given, else
    ``configs/score.yaml`` when it exists, else None."""
    default = Path("configs/score.yaml")
    if config_path is None and not default.is_file():
        return None
    return load_config(config_path or default, ScoreConfig)


@contextlib.contextmanager
def opened(database: DatabaseConfig, doing: str, create: bool = True) -> Iterator[Any]:
    """The database opened (and migrated; created unless ``create`` is False), its errors while
    ``doing`` raised as ``DatabaseError`` (exit 8), closed afterwards."""
    from retain.serve import db

    engine = db.open_database(database.url, create=create)
    try:
        with db.database_errors(database.url, doing):
            yield engine
    finally:
        engine.dispose()


def list_published_runs(database: DatabaseConfig) -> list[Any]:
    """The runs kept in the database, newest first (``retain.serve.runs.RunInfo``)."""
    from retain.serve import runs

    with opened(database, "listing runs", create=False) as engine:
        return runs.list_runs(engine)


def rollback_published_run(database: DatabaseConfig, run_id: int) -> Any:
    """Make run ``run_id`` the current list again; return it (``RunInfo``)."""
    from retain.serve import runs

    with opened(database, f"rolling back to run {run_id}", create=False) as engine:
        return runs.rollback(engine, run_id)


def format_runs(listed: list[Any], database: DatabaseConfig) -> str:
    from retain.serve.db import masked

    if not listed:
        return f"No run published to {masked(database.url)} yet (retain score --publish)."
    lines = [
        f"Runs in {masked(database.url)} (newest first; * = current):",
        f"  {'':1} {'run':>5}  {'as_of':<10}  {'published (UTC)':<19}  {'status':<11}  {'customers':>9}  models",
    ]
    for run in listed:
        models = ", ".join(f"{name} v{version}" for name, version in sorted(run.model_versions.items()))
        lines.append(
            f"  {'*' if run.current else ' ':1} {run.id:>5}  {run.as_of:%Y-%m-%d}  "
            f"{run.created_at:%Y-%m-%d %H:%M:%S}  {run.status:<11}  {run.customers:>9}  {models}"
        )
    return "\n".join(lines)


def check_playbook_tiers(playbook: Playbook, config: ScoreConfig) -> None:
    """A rule's ``min_tier`` must name a configured tier (a typo would apply the rule to all)."""
    tiers = [t.name for t in config.scoring.tiers]
    unknown = sorted({r.min_tier for r in playbook.rules if r.min_tier is not None and r.min_tier not in tiers})
    if unknown:
        raise ConfigError(
            f"{config.scoring.playbook}: min_tier {unknown} is not a tier of scoring.tiers ({', '.join(tiers)})"
        )


def run_demo(config: DemoConfig, show_progress: bool = False) -> DemoOutcome:
    """Generate a synthetic world, then train, register and score on it, as a user would."""
    seconds = {}
    started = time.perf_counter()
    world_dir = config.workdir / "world"
    run_synth(
        world_dir, config.synth.customers, config.synth.seed, config.synth.start, config.synth.end,
        show_progress=show_progress,
    )
    seconds["synth"] = time.perf_counter() - started
    data_config = DataConfig(path=world_dir)
    train_outcome = run_train(
        TrainConfig(
            data=data_config,
            features=config.features,
            label=config.label,
            text=config.text,
            churn=config.churn,
            tracking=config.tracking,
            reports_dir=config.workdir / "reports",
        ),
        show_progress=show_progress,
    )
    seconds["train"] = train_outcome.seconds
    # The demo shows a list even when its small world leaves the new churn model short of the
    # champion rule: it then scores with that version and says so (`retain score` would not).
    churn = next(r for r in train_outcome.registrations if r.name == config.tracking.churn_model)
    has_champion = tracking.champion_version(config.tracking, config.tracking.churn_model) is not None
    if not has_champion:
        logger.warning(
            "%s version %s is not the champion (%s); the demo scores with it anyway",
            churn.name, churn.version, churn.reason,
        )
    # The demo publishes its list to a database of its own unless its config names one.
    database = (
        config.scoring.database
        if "database" in config.scoring.model_fields_set
        else DatabaseConfig(url=f"sqlite:///{config.workdir / 'retain.db'}")
    )
    score_outcome = run_score(
        ScoreConfig(
            data=data_config, features=config.features, label=config.label, text=config.text,
            churn=config.churn, tracking=config.tracking,
            scoring=config.scoring.model_copy(update={"publish": True, "database": database}),
        ),
        churn_version=None if has_champion else churn.version,
    )
    seconds["score"] = score_outcome.seconds
    report_outcome = run_report(
        ScoreConfig(
            data=data_config, features=config.features, label=config.label, text=config.text,
            churn=config.churn, tracking=config.tracking, scoring=config.scoring,
            report=config.report if "report" in config.model_fields_set
            else config.report.model_copy(update={"output_dir": config.workdir / "report"}),
        ),
        show_progress=show_progress,
    )
    seconds["report"] = report_outcome.seconds
    return DemoOutcome(
        world_dir=world_dir, rows=train_outcome.rows_used, train=train_outcome, score=score_outcome,
        seconds=seconds, database_url=database.url, lead_token=_demo_token(database), report=report_outcome,
    )


#: The token the demo makes so its page can be opened at once; a rerun replaces it.
DEMO_TOKEN_NAME = "demo-lead"


def _demo_token(database: DatabaseConfig) -> str:
    run_tokens_revoke(database, DEMO_TOKEN_NAME)
    return run_tokens_create(database, DEMO_TOKEN_NAME, "lead")


def format_training_outcome(outcome: TrainOutcome) -> str:
    result = outcome.result
    churn = result.churn
    m, base = churn.metrics, churn.baseline_metrics
    lines = [
        (f"Data: {result.layout} layout; churn definition: {result.definition}; "
        f"feature families: {', '.join(result.families)}."),
        *(f"Data warning: {w}" for w in outcome.data_warnings),
        f"Leakage audit: {', '.join(churn.audit.excluded_columns) or 'nothing'} excluded"
        + (f" ({len(churn.audit.warnings)} note(s) in the report)" if churn.audit.warnings else "") + ".",
        f"Churn model evaluated by {result.evaluation}",
        f"  ({int(m['n'])} customer rows, churn rate {m['base_rate']:.1%}; settings chosen on {churn.tuned_on.split(';')[0]}):",
        f"  {'':<22}{'ROC-AUC':>9}{'95% interval':>17}{'PR-AUC':>9}{'Brier':>9}{'lift@10%':>10}",
        *(
            f"  {label:<22}{x['roc_auc']:>9.3f}   {x['roc_auc_low']:.3f} to {x['roc_auc_high']:.3f}"
            f"{x['pr_auc']:>9.3f}{x['brier']:>9.4f}{x['lift_at_10']:>10.2f}"
            for label, x in (("gradient boosting", m), ("logistic baseline", base))
        ),
        f"  gradient boosting vs logistic baseline: {churn.comparison.describe(names=False)}",
    ]
    if len(churn.per_split) > 1:
        lines.append(
            "  per split ROC-AUC: "
            + ", ".join(f"{r.split} {r.roc_auc:.3f}" for r in churn.per_split.itertuples())
        )
    text = result.text
    if text is not None and text.registered:
        lines.append(
            "Text models: registered champions "
            + ", ".join(f"{n} v{v}" for n, v in text.registered.items())
            + f" (no labels in this data; used at dates on or after {text.train_until})"
        )
    elif text is not None:
        t, tb = text.metrics, text.baseline_metrics
        lines.append(f"Text models, evaluated on the latest {text.n_test} labelled feedback texts:")
        if "sentiment_accuracy" in t:
            lines.append(
                f"  sentiment  accuracy {t['sentiment_accuracy']:.3f}  macro-F1 {t['sentiment_macro_f1']:.3f}"
                f"   (majority class: {tb['sentiment_accuracy']:.3f} / {tb['sentiment_macro_f1']:.3f})"
            )
        if "themes_micro_f1" in t:
            lines.append(
                f"  themes     micro-F1 {t['themes_micro_f1']:.3f}  macro-F1 {t['themes_macro_f1']:.3f}"
                f"   (majority: {tb['themes_micro_f1']:.3f} / {tb['themes_macro_f1']:.3f})"
            )
    elif result.layout == "tables":
        lines.append("Text models: none (no labelled feedback); text features left out.")
    lines += [
        "Registry:",
        *(
            f"  {r.name} version {r.version}: {'champion' if r.promoted else 'not promoted'} ({r.reason})"
            for r in outcome.registrations
        ),
        f"Report: {outcome.report_paths['metrics'].parent}/ (metrics.json and plots)",
        f"MLflow: {outcome.tracking_uri}  (browse: mlflow ui --backend-store-uri {outcome.tracking_uri})",
    ]
    return "\n".join(lines)


def format_score_outcome(outcome: ScoreOutcome, top: int = 10) -> str:
    summary = outcome.summary
    ranked = outreach_list(outcome.ranked, bool(summary.get("control_in_list", False)))
    tiers = ", ".join(f"{n} {t}" for t, n in summary["tiers"].items())
    has_value = not str(summary.get("value_basis", "")).startswith("none")
    lines = [
        f"Scored {summary['customers_scored']} customers as of {summary['as_of']} ({tiers})"
        + (f"; value at risk {summary['value_at_risk_total']:,.0f} a month." if has_value else "."),
        f"Scoring date {summary['as_of']}: {summary.get('as_of_chosen', '--as-of')}.",
        *(f"Data warning: {w}" for w in summary.get("data_warnings", ())),
        _outreach_line(summary),
        f"Top {min(top, len(ranked))} by value at risk:"
        if has_value
        else f"Top {min(top, len(ranked))} by churn probability (the data has no monthly value):",
    ]
    for row in ranked.head(top).itertuples(index=False):
        value = f"value at risk {row.value_at_risk:,.0f}/month  " if has_value else ""
        lines.append(f"{row.rank:>3}. {row.customer_id}  p={row.churn_probability:.2f}  {value}[{row.risk_tier}]")
        reasons = [getattr(row, f"reason_{i}") for i in range(1, 4) if hasattr(row, f"reason_{i}")]
        for reason in reasons:
            if isinstance(reason, str):
                lines.append(f"       - {reason}")
        lines.append(f"       -> {row.recommended_action}  [{row.team}: {row.outreach_status}]")
    lines.append("Outputs:")
    lines += [f"  {kind:<8} {path}" for kind, path in outcome.paths.items()]
    lines += _monitoring_lines(summary.get("monitoring"))
    coverage = summary.get("reasons")
    if coverage and coverage["explained"] < coverage["of"]:
        lines.append(
            f"Reasons for the top {coverage['explained']:,} of {coverage['of']:,} listed customers "
            "(scoring.reasons_for: top); `retain explain` gives anyone else's."
        )
    if outcome.texts:
        texts = outcome.texts
        lines.append(
            f"Texts: {texts['scored']:,} scored ({texts['inference_seconds']:.1f} s in the text models), "
            f"{texts['from_cache']:,} taken from the text cache."
        )
    if outcome.stages:
        from retain.timing import format_stages

        lines += [f"Stages ({outcome.seconds:.1f} s in all):", format_stages(outcome.stages, outcome.seconds)]
    if outcome.published_run is not None:
        # Say why the page shows fewer customers than were scored: the control group is left out.
        left_out = len(outcome.ranked) - len(ranked)
        held = f" (the {left_out:,} of the control group are left out, so no one contacts them)" if left_out else ""
        lines.append(
            f"Published run {outcome.published_run} to {outcome.database}: {len(ranked):,} customers{held}; "
            "it is now the current list (`retain runs` lists the runs; `retain runs rollback <id>` goes back)."
        )
    return "\n".join(lines)


def _monitoring_lines(section: dict[str, Any] | None) -> list[str]:
    """What the score command prints of the run's monitoring (docs/monitoring.md)."""
    if not section:
        return []
    estimate = section.get("estimated_roc_auc")
    psi = section.get("score_psi")
    lines = [
        "Monitoring: estimated ROC-AUC before labels "
        + ("n/a" if estimate is None else f"{estimate:.3f}")
        + ("" if psi is None else f"; score PSI {psi:.3f}")
        + f"; {len(section.get('drifted_features', []))} drifted feature(s), "
        f"{len(section.get('theme_surges', []))} theme surge(s): "
        + ("BREACH" if section.get("breach") else "no breach")
    ]
    lines += [f"  breach: {line}" for line in section.get("breaches", [])]
    lines += [
        f"  realised as of {r['as_of']}: ROC-AUC {r['roc_auc']:.3f} (estimated then {r['estimated_roc_auc']:.3f})"
        for r in section.get("realised", []) if r.get("roc_auc") is not None and r.get("estimated_roc_auc") is not None
    ]
    lines += [f"  note: {note}" for note in section.get("notes", [])]
    return lines


def _outreach_line(summary: dict[str, Any]) -> str:
    counts = summary.get("outreach", {})
    shown = ", ".join(f"{counts.get(s, 0)} {s}" for s in ("assigned", "queued", "cooldown", "held_out"))
    return f"Outreach today: {shown}; {summary.get('control_customers', 0)} customers in the control group."


def format_demo_outcome(outcome: DemoOutcome) -> str:
    rows = ", ".join(f"{n:,} {name}" for name, n in outcome.rows.items())
    timing = ", ".join(f"{k} {v:.0f} s" for k, v in outcome.seconds.items())
    return "\n".join(
        [
            f"Synthetic world: {rows} -> {outcome.world_dir}/",
            "",
            format_training_outcome(outcome.train),
            "",
            format_score_outcome(outcome.score),
            "",
            *([format_report_outcome(outcome.report), ""] if outcome.report is not None else []),
            f"Time: {timing}.",
            *_how_to_open_the_page(outcome),
        ]
    )


def _how_to_open_the_page(outcome: DemoOutcome) -> list[str]:
    if outcome.lead_token is None:
        return []
    return [
        "",
        "Open the at-risk list in a browser:",
        f"  retain serve --database-url {outcome.database_url}"
        + (f" --report {outcome.report.path}" if outcome.report is not None else ""),
        "  then go to http://localhost:8000/ and paste this lead token (made for the demo only;",
        f"  `retain tokens create --role lead --name <you>` makes your own): {outcome.lead_token}",
    ]


# --------------------------------------------------------------------------------------------
# retain text train / retain text score: feedback text on its own


@dataclass
class TextTrainOutcome:
    result: TextTrainResult
    registration: Registration
    data_summary: str
    record_path: Path
    tracking_uri: str
    seconds: float
    report_path: Path | None = None


@dataclass
class TextScoreOutcome:
    scores: pd.DataFrame
    counts: pd.DataFrame
    paths: dict[str, Path]
    summary: dict[str, Any]
    seconds: float


def _taxonomy(config: TextJobConfig) -> Taxonomy:
    return load_config(config.taxonomy, Taxonomy)


def run_text_train(config: TextJobConfig, show_progress: bool = False) -> TextTrainOutcome:
    """Read the feedback file, train sentiment and/or themes, register one text model.

    Tasks with enough labels are evaluated on a validation split and refitted on every labelled
    row; tasks without get the zero-label classifier (or are left out). The result is logged to
    MLflow as one pyfunc model, registered as ``tracking.text_model`` and made champion when it
    beats its majority baseline and the comparable champion.
    """
    started = time.perf_counter()
    taxonomy = _taxonomy(config)
    table = data.load_text_table(config.data, taxonomy.ids)
    _open_store_before_training(config.tracking)
    result = train_text_models(table.frame, taxonomy, config, show_progress=show_progress)
    report = text_evaluation_report(result)
    registration = register_text_model(
        result, config, report_html=report and report.html,
        train_until=latest_text_date(table.frame),
    )
    record = text_training_record(result, config, table.summary(), registration)
    if report is not None:
        record["report_metrics"] = report.metrics
    record_path = data.write_json(record, config.output.parent / "text_training.json")
    report_path = (
        data.write_text_file(report.html, config.output.parent / "text_evaluation.html")
        if report is not None
        else None
    )
    return TextTrainOutcome(
        result=result,
        registration=registration,
        data_summary=table.summary(),
        record_path=record_path,
        report_path=report_path,
        tracking_uri=config.tracking.tracking_uri,
        seconds=time.perf_counter() - started,
    )


def text_training_record(
    result: TextTrainResult,
    config: TextJobConfig,
    data_summary: str,
    registration: Registration | None = None,
) -> dict[str, Any]:
    """What was trained, how it was chosen and how it did, as a JSON-able dict."""
    tasks = {}
    for task, r in result.tasks.items():
        tasks[task] = {
            "kind": r.kind,
            "how_chosen": r.how_chosen,
            "n_labelled": r.n_labelled,
            "n_fit": r.n_fit,
            "n_validation": r.n_validation,
            "n_selection": r.n_selection,
            "validation_use": r.validation_use,
            "validation": r.metrics,
            "majority_baseline": r.baseline_metrics,
            "shared_encoder": r.shared_encoder,
            "candidates": {
                c.kind: {
                    "validation": c.metrics,
                    "seconds_fit": c.seconds_fit,
                    "error": c.error,
                    "shared_encoder": c.shared_encoder,
                }
                for c in r.candidates
            },
            "comparisons": [c.to_dict() for c in r.comparisons],
        }
    record: dict[str, Any] = {
        "data": data_summary,
        "taxonomy": str(config.taxonomy),
        "theme_ids": list(result.bundle.theme_ids),
        "threshold": config.threshold,
        "themes_mode": {
            "setting": config.themes_mode,
            "single_label": result.bundle.single_label_themes,
            "why": result.themes_mode,
        },
        "encoder": config.model.encoder,
        "tuned_on": result.tuned_on,
        "evaluation_id": result.evaluation_id,
        "shared_encoder": result.shared_encoder,
        "tasks": tasks,
        "left_out": result.left_out,
        "seconds_train": result.seconds,
    }
    if registration is not None:
        record["registry"] = {
            "name": registration.name, "version": registration.version,
            "promoted": registration.promoted, "reason": registration.reason,
        }
    return record


def text_evaluation_report(result: TextTrainResult) -> Any:
    """The HTML evaluation report of the kept models on the validation split, or None.

    Its rows are those the reported figures come from (with ``auto``, the report half that
    took no part in choosing the kind). It describes each kept kind as fitted on the training
    part (the refit on every labelled row has seen the validation rows): per-theme
    precision/recall/F1, the sentiment confusion, calibration and the most confident errors.
    """
    from retain.text.report import evaluate_text_models

    sentiment = result.tasks.get("sentiment")
    themes = result.tasks.get("themes")
    arguments: dict[str, Any] = {}
    if sentiment is not None and sentiment.validation_model is not None:
        arguments.update(
            sentiment_model=sentiment.validation_model,
            sentiment_texts=sentiment.validation_texts,
            sentiment_true=sentiment.validation_truth,
        )
    if themes is not None and themes.validation_model is not None:
        own = getattr(themes.validation_model, "thresholds_", None) is not None
        arguments.update(
            theme_model=themes.validation_model,
            theme_texts=themes.validation_texts,
            themes_true=themes.validation_truth,
            theme_ids=list(result.bundle.theme_ids),
            theme_threshold=None if own else result.bundle.threshold,
            single_label_themes=result.bundle.single_label_themes,
        )
    if not arguments:
        return None
    return evaluate_text_models(**arguments, title="retain text models: validation split")


def latest_text_date(frame: pd.DataFrame) -> pd.Timestamp | None:
    """The latest ``created_at`` of the texts a text model saw (naive UTC), or None if undated.

    Churn training uses a registered text model's scores only at dates after this one (the tag
    ``train_until``); without it, only at scoring time.
    """
    if "created_at" not in frame.columns or frame["created_at"].isna().all():
        return None
    latest = pd.Timestamp(frame["created_at"].max())
    return latest.tz_convert(None) if latest.tzinfo is not None else latest


def register_text_model(
    result: TextTrainResult,
    config: TextJobConfig,
    report_html: str | None = None,
    train_until: pd.Timestamp | None = None,
) -> Registration:
    """Log the text run and the pyfunc model, register it, and apply the champion rule."""
    track = config.tracking
    kinds = result.bundle.kinds
    heavy = any(kind != "tfidf" for kind in kinds.values())
    tags = {
        **({"train_until": str(train_until)} if train_until is not None else {}),
        "evaluation_id": result.evaluation_id,
        "tuned_on": result.tuned_on,
        "encoder": config.model.encoder if heavy else "none",
        **{f"kind.{task}": kind for task, kind in kinds.items()},
    }
    with tracking.tracked_run(track, "text", tags=tags) as run:
        run.log_params(config.model, prefix="model")
        run.log_params(config.validation, prefix="validation")
        run.log_params(
            {
                "data.path": str(config.data.path),
                "taxonomy": str(config.taxonomy),
                "threshold": config.threshold,
                "n_texts": result.n_texts,
                **{f"{t}.n_labelled": r.n_labelled for t, r in result.tasks.items()},
            }
        )
        run.log_metrics(result.metrics)
        run.log_metrics({f"baseline_{k}": v for k, v in result.baseline_metrics.items()})
        run.log_dict(text_training_record(result, config, ""), "text_training.json")
        if report_html:
            run.log_html(report_html, "text_evaluation")
        uri = tracking.log_text_model(
            run, result.bundle, extra_requirements=("torch", "transformers") if heavy else ()
        )
    version_tags = {
        **tags,
        THEME_IDS_TAG: THEME_SEPARATOR.join(result.bundle.theme_ids),
        **{f"validation.{k}": f"{v:.6g}" for k, v in result.metrics.items()},
    }
    name = track.text_model
    version = tracking.register_model(track, uri, name, tags=version_tags)
    primary = result.primary
    if primary is None:
        decision = tracking.crown_without_evidence(
            track, name, version, "zero-label model trained without labels"
        )
    else:
        metric, value, baseline = primary
        details = [c.describe() for r in result.tasks.values() for c in r.comparisons]
        decision = tracking.promote_if_better(
            track, name, version, metric=metric, value=value, baseline_value=baseline,
            evaluation_id=result.evaluation_id,
            baseline_detail="; ".join(["majority class on the validation split", *details]),
        )
    return Registration(
        name=name, version=version, promoted=decision.promoted, reason=decision.reason
    )


def format_text_training(outcome: TextTrainOutcome) -> str:
    result = outcome.result
    lines = [f"Data: {outcome.data_summary}."]
    for task, r in result.tasks.items():
        if not r.supervised:
            lines.append(
                f"{task}: zero-label classifier, no labels to validate it on ({r.n_labelled} "
                "labelled texts); treat its output as a first reading, not a measured one."
            )
            continue
        held_out = f"{r.n_validation} held out"
        if r.n_selection:
            held_out += f", the kind chosen on {r.n_selection} others"
        lines.append(
            f"{task}: {r.kind}, trained on {r.n_labelled} labelled texts; validation on "
            f"{held_out} ({r.how_chosen}):"
        )
        labels = task == "sentiment" or r.single_label
        names = ("accuracy", "macro_f1") if labels else ("micro_f1", "macro_f1")
        for c in r.candidates:
            if c.error is not None:
                lines.append(f"  {c.kind:<12} not available: {c.error}")
                continue
            figures = "  ".join(f"{n} {c.metrics[n]:.3f}" for n in names)
            lines.append(f"  {c.kind:<12} {figures}   (fit {c.seconds_fit:.1f} s)")
        base = "  ".join(f"{n} {r.baseline_metrics[n]:.3f}" for n in names)
        lines.append(f"  {'majority':<12} {base}")
    if result.themes_mode:
        lines.append(f"Themes: {result.themes_mode}.")
    lines += [f"Left out: {note}." for note in result.left_out]
    reg = outcome.registration
    lines += [
        f"Settings chosen on: {result.tuned_on}.",
        (f"Registry: {reg.name} version {reg.version}: "
        f"{'champion' if reg.promoted else 'not promoted'} ({reg.reason})"),
        f"Record: {outcome.record_path}",
        *([f"Evaluation report: {outcome.report_path}"] if outcome.report_path else []),
        f"MLflow: {outcome.tracking_uri}",
        "Next: retain text score -c <this config> --input <file of texts>",
    ]
    return "\n".join(lines)


def run_text_score(
    config: TextJobConfig,
    input_path: Path | None = None,
    output: Path | None = None,
    model_uri: str | None = None,
    show_progress: bool = False,
) -> TextScoreOutcome:
    """Score a file of texts with the champion text model (or ``model_uri``), using the cache.

    Writes one row per text (id, sentiment probabilities and label, theme probabilities and
    labels, sentiment per theme) to ``output`` (default ``config.output``) and a summary JSON
    beside it, published together as one run (``<stem>.runs/<id>/``, pointed at by
    ``<stem>.latest``; ``output`` links into it), and the updated inference cache.
    """
    from retain.text.cache import score_with_cache
    from retain.text.scoring import theme_sentiment_counts

    started = time.perf_counter()
    tracking.open_store(config.tracking, create=False)
    loaded = tracking.load_text_model(config.tracking, model_uri)
    bundle = loaded.model
    table = data.load_text_table(config.data, path=input_path, labels=False)
    frame = table.frame
    cache = data.read_text_cache(config.cache) if config.cache is not None else None
    scored = score_with_cache(
        frame["id"].tolist(), frame["text"].tolist(), bundle.predict, bundle.columns, cache,
        loaded.model_version, show_progress=show_progress,
    )
    scores = pd.concat([frame[["id", "text"]].reset_index(drop=True), scored.scores], axis=1)
    counts = theme_sentiment_counts(scores)
    output = output or config.output
    paths: dict[str, Path] = {}
    if config.cache is not None:
        paths["cache"] = data.write_frame(scored.cache, config.cache)
    summary = {
        "model": loaded.description,
        "model_version": loaded.model_version,
        "input": table.source,
        "texts": len(scores),
        "taken_from_cache": scored.n_cached,
        "scored": scored.n_scored,
        "duplicate_ids_left_out": table.n_duplicates,
        "kinds": dict(bundle.kinds),
        "threshold": bundle.threshold,
        "theme_sentiment_method": bundle.theme_sentiment_method,
        "counts": counts.reset_index().to_dict(orient="records"),
    }
    # Scores and summary are published together (<stem>.runs/<id>/, then <stem>.latest switched);
    # `output` and the summary's usual path link into <stem>.latest.
    summary_name = f"{output.stem}_summary.json"
    published = data.publish_run(
        output.parent,
        {
            output.name: data.frame_writer(scores, output.suffix.lstrip(".")),
            summary_name: lambda p: data.dump_json(summary, p),
        },
        unit=output.stem,
    )
    paths = {"scores": output, "summary": output.with_name(summary_name), **paths, "run": published.run_dir}
    return TextScoreOutcome(
        scores=scores, counts=counts, paths=paths, summary=summary,
        seconds=time.perf_counter() - started,
    )


def format_text_scores(outcome: TextScoreOutcome) -> str:
    s = outcome.summary
    lines = [
        (f"Scored {s['texts']} texts with {s['model']} ({s['scored']} scored, "
        f"{s['taken_from_cache']} from the cache) in {outcome.seconds:.1f} s."),
    ]
    if s["theme_sentiment_method"] == "clauses":
        lines.append(
            "Sentiment per theme: from the clauses that raise each theme "
            "(mixed when they disagree; the whole text's when no single clause raises it)."
        )
    lines += ["Texts by theme and sentiment:", outcome.counts.to_string(), "Outputs:"]
    lines += [f"  {kind:<8} {path}" for kind, path in outcome.paths.items()]
    return "\n".join(lines)


@dataclass
class TextDiscoverOutcome:
    themes: list[dict[str, Any]]
    n_texts: int
    path: Path
    seconds: float


def run_text_discover(
    config: TextJobConfig,
    output: Path,
    input_path: Path | None = None,
    n_themes: int | None = None,
    show_progress: bool = False,
) -> TextDiscoverOutcome:
    """Propose themes from the texts of a file and write them as an editable taxonomy."""
    from retain.text.discovery import discover_themes, taxonomy_yaml

    started = time.perf_counter()
    table = data.load_text_table(config.data, path=input_path, labels=False)
    texts = table.frame["text"].tolist()
    themes = discover_themes(
        texts, encoder=config.model.encoder, n_themes=n_themes, progress=show_progress
    )
    header = (
        f"Themes proposed by `retain text discover` from {len(texts)} texts of "
        f"{input_path or config.data.path}. Edit names and descriptions, add example phrases, "
        "remove or merge themes, then name this file as the text config's taxonomy."
    )
    path = data.write_text_file(taxonomy_yaml(themes, header=header), output)
    return TextDiscoverOutcome(
        themes=themes, n_texts=len(texts), path=path, seconds=time.perf_counter() - started
    )


def format_text_discovery(outcome: TextDiscoverOutcome) -> str:
    head = f"Proposed {len(outcome.themes)} themes from {outcome.n_texts} texts"
    lines = [f"{head} in {outcome.seconds:.1f} s:"]
    for theme in outcome.themes:
        lines.append(f"  {theme['id']:<28} {theme.get('size', '?'):>6} texts  {theme['name']}")
    lines += [
        f"Taxonomy: {outcome.path} (edit it, then set it as the config's taxonomy)",
        "Next: retain text train -c <config with this taxonomy>",
    ]
    return "\n".join(lines)


# --- retain serve / retain tokens ------------------------------------------------------------


def run_serve(
    database: DatabaseConfig, host: str, port: int, log_level: str = "info", report_path: Path | None = None
) -> None:
    """Open (and migrate) the database, then serve the page and API until interrupted.

    ``report_path`` (``retain report``'s report.html) is linked from the page while it exists.
    """
    import uvicorn

    from retain.serve import auth, db
    from retain.serve.api import create_app

    engine = db.open_database(database.url)  # kept open: the server uses it until stopped
    with db.database_errors(database.url, "listing tokens"), engine.connect() as conn:
        tokens = auth.list_tokens(conn)
    shown = "localhost" if host in ("127.0.0.1", "::1") else host
    logger.info("serving the at-risk list at http://%s:%d/ (API docs at /api/docs); Ctrl-C stops", shown, port)
    if not any(t["revoked_at"] is None for t in tokens):
        logger.warning("no token exists yet: create one with `retain tokens create --role lead --name <you>`")
    # uvicorn's access log prints paths, which hold customer ids: the app logs route templates.
    if report_path is not None:
        logger.info("the page links to the report %s%s", report_path, "" if report_path.is_file() else " (not written yet)")
    uvicorn.run(create_app(engine, report_path), host=host, port=port, log_level=log_level, access_log=False)


def run_tokens_create(database: DatabaseConfig, name: str, role: str) -> str:
    """A new token for ``name`` with ``role`` (printed once by the CLI; only its hash is stored)."""
    from retain.serve import auth

    try:
        with opened(database, "creating a token") as engine, engine.begin() as conn:
            return auth.create_token(conn, name, role)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def run_tokens_list(database: DatabaseConfig) -> list[dict[str, Any]]:
    """Every token's name, role and dates (never a token or its hash)."""
    from retain.serve import auth

    with opened(database, "listing tokens") as engine, engine.connect() as conn:
        return auth.list_tokens(conn)


def run_tokens_revoke(database: DatabaseConfig, name: str) -> int:
    """Revoke the live token(s) named ``name`` (or with that id); how many were revoked."""
    from retain.serve import auth

    with opened(database, "revoking a token") as engine, engine.begin() as conn:
        return auth.revoke_token(conn, name)


# --------------------------------------------------------------------------------------------
# retain outreach report: the measured effect of a past list, once its horizon has passed


@dataclass
class OutreachReport:
    as_of: pd.Timestamp
    horizon_end: pd.Timestamp
    data_end: pd.Timestamp
    plan: Path
    effect: pd.DataFrame
    contacts_known: bool
    paths: dict[str, Path]


def known_contacts(config: ScoreConfig, database: bool | None = None) -> pd.DataFrame | None:
    """Who was contacted when: ``scoring.outreach_history`` and, when the list is published
    (``database``, default ``scoring.publish``), the outreach log leads keep in the database.

    None when neither is there (a cooldown then skips nobody).
    """
    frames = []
    if config.scoring.outreach_history is not None:
        frames.append(data.read_contacts(config.scoring.outreach_history))
    if config.scoring.publish if database is None else database:
        from retain.serve import runs

        with opened(config.scoring.database, "reading the outreach log") as engine:
            frames.append(runs.logged_contacts(engine))
    frames = [f for f in frames if len(f)]
    if not frames:  # nothing recorded: say so (intention to treat only) rather than "nobody"
        return None
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def run_outreach_report(
    config: ScoreConfig, plan_path: Path | None = None, as_of: date | None = None, publish: bool = False
) -> OutreachReport:
    """Compare churn of assigned and held-out customers of a past list whose horizon has passed.

    The plan is ``plan_path``, else the archived plan of ``as_of`` (``<output_dir>/outreach_plans``),
    else the newest archived plan whose horizon (``features.horizon_days``) the data now covers.
    Outcomes are the churn labels of ``config.label`` read from the data; the customers actually
    contacted come from ``scoring.outreach_history`` (contacts from the plan's date to the end of
    its horizon) and, when the list is published (``publish`` or ``scoring.publish``), the
    database's outreach log; without either only the intention-to-treat rows are given. Writes
    ``<output_dir>/outreach_effects/effect_<as_of>.json`` and ``.png``; with ``publish`` also
    stores the report in the database, where the API and the page show it.
    """
    from retain.churn.labels import labels
    from retain.outreach.effect import effect_figure, outreach_effect

    if config.data.layout == "flat":
        raise ScoringError("a flat table has no dates after its snapshot: the effect of outreach needs dated data")
    loaded = data.load_world(config.data)
    data_end = observed_until(loaded.world)
    horizon = pd.Timedelta(days=config.features.horizon_days)
    if plan_path is None:
        plan_path = _plan_to_report(config, data_end, horizon, pd.Timestamp(as_of) if as_of else None)
    plan = data.read_frame(plan_path)
    when = pd.Timestamp(plan["as_of"].iloc[0])
    if when + horizon > data_end:
        raise ScoringError(
            f"{plan_path}: the horizon of the list of {when.date()} ends {(when + horizon).date()}, but the data "
            f"ends {data_end.date()}: who churned is not known yet; run the report after that date's data is in"
        )
    outcomes = labels(loaded.world.customers, loaded.world.events, when, config.features.horizon_days, config.label)
    contacted = None
    contacts = known_contacts(config, database=publish or config.scoring.publish)
    if contacts is not None:
        window = (contacts["contacted_at"] >= when) & (contacts["contacted_at"] < when + horizon)
        contacted = set(contacts.loc[window, "customer_id"])
    effect = outreach_effect(plan, outcomes, contacted)
    out_dir = config.scoring.output_dir / "outreach_effects"
    name = f"effect_{when:%Y-%m-%d}"
    payload = {
        "as_of": when, "horizon_days": config.features.horizon_days, "horizon_end": when + horizon,
        "data_end": data_end, "plan": plan_path, "churn_definition": config.label.definition,
        "per_protocol": contacted is not None, "rows": effect.to_dict(orient="records"),
    }
    paths = {"json": data.write_json(payload, out_dir / f"{name}.json")}
    figure = effect_figure(effect, f"Effect of outreach on {config.features.horizon_days}-day churn, list of {when.date()}")
    paths["plot"] = data.write_figures({name: figure}, out_dir)[name]
    if publish:
        from retain.serve import runs

        with opened(config.scoring.database, "storing the outreach report") as engine:
            runs.store_outreach_report(engine, data_end.to_pydatetime(), payload)
    return OutreachReport(when, when + horizon, data_end, plan_path, effect, contacted is not None, paths)


def _plan_to_report(
    config: ScoreConfig, data_end: pd.Timestamp, horizon: pd.Timedelta, as_of: pd.Timestamp | None
) -> Path:
    plans = data.dated_files(config.scoring.output_dir / PLAN_ARCHIVE, "plan_")
    if as_of is not None:
        if as_of not in plans:
            listed = ", ".join(f"{d.date()}" for d in plans) or "none"
            raise ScoringError(f"no outreach plan of {as_of.date()} under {config.scoring.output_dir / PLAN_ARCHIVE} (plans: {listed})")
        return plans[as_of]
    ready = [d for d in plans if d + horizon <= data_end]
    if not ready:
        waiting = ", ".join(f"{d.date()} (ready after {(d + horizon).date()})" for d in plans) or "none yet"
        raise ScoringError(
            f"no outreach plan under {config.scoring.output_dir / PLAN_ARCHIVE} has a horizon that the data "
            f"(to {data_end.date()}) covers; plans: {waiting}"
        )
    return plans[ready[-1]]


def _outreach_report_notes(report: OutreachReport) -> list[str]:
    """What a first reader of the overall lines needs told: why PP is empty, whether ITT can tell."""
    from retain.outreach.effect import ALL_ACTIONS, INTENTION_TO_TREAT, PER_PROTOCOL

    overall = report.effect.loc[report.effect["action"] == ALL_ACTIONS].set_index("analysis")
    notes = []
    if report.contacts_known and PER_PROTOCOL in overall.index and overall.at[PER_PROTOCOL, "n_treated"] == 0:
        notes.append(
            f"No contact with an assigned customer of this list is logged from {report.as_of.date()} to "
            f"{report.horizon_end.date()} (the page's outreach form, or scoring.outreach_history): PP is empty."
        )
    if INTENTION_TO_TREAT in overall.index:
        itt = overall.loc[INTENTION_TO_TREAT]
        if pd.isna(itt["difference"]) or itt["ci_low"] <= 0 <= itt["ci_high"]:
            notes.append(
                f"The overall ITT interval {'is missing' if pd.isna(itt['difference']) else 'contains 0'}: "
                f"{int(itt['n_treated'])} assigned against {int(itt['n_control'])} held out cannot tell outreach "
                "from no outreach; more lists (or a larger control_share in the playbook) will."
            )
    return notes


def format_outreach_report(report: OutreachReport) -> str:
    lines = [
        (
            f"Effect of outreach, list of {report.as_of.date()} ({report.plan}); churn within the horizon "
            f"to {report.horizon_end.date()}, data to {report.data_end.date()}."
        ),
        "Treated: assigned that day; control: held out at random among those who would have been assigned.",
        "Difference = treated - control churn rate (below 0: fewer left after outreach), 95% Newcombe interval.",
        (
            "ITT: every assigned customer, reached or not (the figure to decide on); "
            "PP: only the assigned customers a contact was logged for."
        ),
    ]
    if not report.contacts_known:
        lines.append("No outreach history (scoring.outreach_history): intention to treat only.")
    if report.effect.empty:
        lines.append("No assigned or held-out customer with a known outcome.")
    else:
        lines += _outreach_report_notes(report)
    for row in report.effect.itertuples(index=False):
        kind = "ITT" if row.analysis == "intention_to_treat" else "PP "
        interval = (
            f"{row.difference:+.3f} [{row.ci_low:+.3f}, {row.ci_high:+.3f}]" if pd.notna(row.difference) else "n/a (a group is empty)"
        )
        lines.append(
            f"  {kind} treated {row.churned_treated}/{row.n_treated}  control {row.churned_control}/{row.n_control}  "
            f"{interval}  {row.action}"
        )
    lines.append("Outputs:")
    lines += [f"  {kind:<6} {path}" for kind, path in report.paths.items()]
    return "\n".join(lines)
