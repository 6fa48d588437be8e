"""The work behind each ``retain`` command: data, training or scoring, and tracking, wired together.

Each ``run_*`` function takes a validated config object and returns an outcome object; the
``format_*`` functions turn an outcome into what the command prints. The CLI only parses
arguments and calls these, so a notebook or a scheduler can call them the same way.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

from retain import data, tracking
from retain.config import (
    ConfigError,
    DataConfig,
    DemoConfig,
    Playbook,
    ScoreConfig,
    Taxonomy,
    TrackingConfig,
    TrainConfig,
    load_config,
)
from retain.contracts import THEME_SEPARATOR
from retain.scoring import ScoringModels, score_world, summarise, write_scores
from retain.training import TrainingResult, observed_until, train

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


@dataclass
class ScoreOutcome:
    ranked: pd.DataFrame
    paths: dict[str, Path]
    summary: dict[str, Any]
    seconds: float


@dataclass
class DemoOutcome:
    world_dir: Path
    rows: dict[str, int]
    train: TrainOutcome
    score: ScoreOutcome
    seconds: dict[str, float] = field(default_factory=dict)


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


def run_train(config: TrainConfig, show_progress: bool = False) -> TrainOutcome:
    """Load and validate the data, train and evaluate, write the report, log and register."""
    started = time.perf_counter()
    loaded = data.load_world(config.data)
    taxonomy = load_config(config.text.taxonomy, Taxonomy)
    result = train(
        loaded.world, taxonomy.ids, config.features, config.text, config.churn, show_progress=show_progress
    )
    report_paths = write_training_report(result, config.reports_dir)
    registrations = register_training(result, config)
    return TrainOutcome(
        result=result,
        registrations=registrations,
        report_paths=report_paths,
        data_summary=loaded.summary(),
        rows_used={name: len(frame) for name, frame in loaded.world.tables().items()},
        tracking_uri=config.tracking.tracking_uri,
        seconds=time.perf_counter() - started,
    )


def write_training_report(result: TrainingResult, directory: Path) -> dict[str, Path]:
    """Metrics (JSON), plots (PNG) and the evaluation predictions (CSV) for people to read."""
    paths = data.write_figures({**result.churn.figures, **result.text.figures}, directory)
    paths["metrics"] = data.write_json(training_metrics(result), directory / "metrics.json")
    paths["predictions"] = data.write_frame(
        result.churn.test_predictions, directory / "churn_evaluation_predictions.csv"
    )
    return paths


def training_metrics(result: TrainingResult) -> dict[str, Any]:
    return {
        "evaluation_as_of": str(result.dates.test.date()),
        "training_as_of": [str(d.date()) for d in result.dates.train],
        "horizon_days": result.dates.horizon_days,
        "churn": result.churn.metrics,
        "churn_logistic_baseline": result.churn.baseline_metrics,
        "text": result.text.metrics,
        "text_majority_baseline": result.text.baseline_metrics,
        "text_rows": {"fit": result.text.n_train, "evaluate": result.text.n_test},
    }


def register_training(result: TrainingResult, config: TrainConfig) -> list[Registration]:
    """Log the text run and the churn run to MLflow, register the models, decide champions."""
    track = config.tracking
    text = result.text
    registrations = []
    with tracking.tracked_run(track, "text-models", tags={"evaluation_id": text.evaluation_id}) as run:
        run.log_params(config.text, prefix="text")
        run.log_params({"n_fit": text.n_train, "n_evaluate": text.n_test, "theme_ids": ",".join(text.theme_ids)})
        run.log_metrics(text.metrics)
        run.log_metrics({f"baseline_{k}": v for k, v in text.baseline_metrics.items()})
        run.log_figures(text.figures)
        examples = ["The agent never called me back", "Great app, works perfectly"]
        sentiment_uri = run.log_model(text.sentiment, "sentiment", input_example=examples)
        themes_uri = run.log_model(text.themes, "themes", input_example=examples)
    for name, uri, metric, extra in (
        (track.sentiment_model, sentiment_uri, "sentiment_macro_f1", {}),
        (track.theme_model, themes_uri, "themes_micro_f1", {THEME_IDS_TAG: THEME_SEPARATOR.join(text.theme_ids)}),
    ):
        version = tracking.register_model(track, uri, name, tags=extra)
        registrations.append(
            _promote(track, name, version, metric, text.metrics[metric], text.baseline_metrics[metric], text.evaluation_id)
        )
    text_versions = {r.name: r.version for r in registrations}

    churn = result.churn
    tags = {"evaluation_id": result.evaluation_id, "evaluation_as_of": str(result.dates.test.date())}
    with tracking.tracked_run(track, "churn", tags=tags) as run:
        run.log_params(config.churn, prefix="churn")
        run.log_params(config.features, prefix="features")
        run.log_params({"n_train_rows": churn.n_train, "training_dates": len(result.dates.train)})
        run.log_metrics(churn.metrics)
        run.log_metrics({f"baseline_{k}": v for k, v in churn.baseline_metrics.items()})
        run.log_figures(churn.figures)
        run.log_frame(churn.test_predictions, "evaluation_predictions")
        tracking.tag_text_models(run, text_versions)
        # No input example: MLflow cannot check a signature on pandas category columns.
        churn_uri = run.log_model(churn.model, "churn", extra_requirements=("lightgbm", "retain"))
        run.log_model(churn.baseline, "logistic_baseline")
    version = tracking.register_model(track, churn_uri, track.churn_model)
    registrations.append(
        _promote(
            track, track.churn_model, version, "roc_auc",
            churn.metrics["roc_auc"], churn.baseline_metrics["roc_auc"], result.evaluation_id,
        )
    )
    return registrations


def _promote(
    track: TrackingConfig, name: str, version: str, metric: str, value: float, baseline: float, evaluation_id: str
) -> Registration:
    decision = tracking.promote_if_better(
        track, name, version, metric=metric, value=value, baseline_value=baseline, evaluation_id=evaluation_id
    )
    return Registration(name=name, version=version, promoted=decision.promoted, reason=decision.reason)


def load_scoring_models(track: TrackingConfig) -> tuple[ScoringModels, list[str]]:
    """The champion churn model, the text models it was trained with, and their theme ids.

    The churn model's text features were computed by particular sentiment and theme model
    versions (recorded on its run); scoring uses those same versions, not whatever text models
    are champions now, so the features mean at scoring what they meant in training.
    """
    churn, churn_version = tracking.load_champion(track, track.churn_model)
    used = tracking.text_models_used(track, track.churn_model, churn_version)
    sentiment, sentiment_version = _text_model_for_churn(track, track.sentiment_model, used)
    themes, themes_version = _text_model_for_churn(track, track.theme_model, used)
    tags = tracking.model_version_tags(track, track.theme_model, themes_version)
    theme_ids = [t for t in tags.get(THEME_IDS_TAG, "").split(THEME_SEPARATOR) if t]
    versions = {
        track.sentiment_model: sentiment_version,
        track.theme_model: themes_version,
        track.churn_model: churn_version,
    }
    return ScoringModels(sentiment=sentiment, themes=themes, churn=churn, versions=versions), theme_ids


def _text_model_for_churn(track: TrackingConfig, name: str, used: dict[str, str]) -> tuple[Any, str]:
    if name in used:
        return tracking.load_version(track, name, used[name]), used[name]
    logger.warning("the churn champion does not record which %s version it used; using the champion", name)
    return tracking.load_champion(track, name)


def default_score_date(world_end: pd.Timestamp) -> pd.Timestamp:
    """Score as of the start of the day after the data ends, so the last day counts."""
    return world_end.normalize() + pd.Timedelta(days=1)


def run_score(config: ScoreConfig, as_of: date | None = None) -> ScoreOutcome:
    """Score with the champion models and write the ranked list atomically."""
    started = time.perf_counter()
    models, theme_ids = load_scoring_models(config.tracking)
    loaded = data.load_world(config.data)
    when = pd.Timestamp(as_of) if as_of is not None else default_score_date(observed_until(loaded.world))
    playbook = load_config(config.scoring.playbook, Playbook)
    check_playbook_tiers(playbook, config)
    ranked = score_world(loaded.world, when, models, theme_ids, config.features, config.scoring, playbook)
    summary = summarise(ranked, models.versions)
    summary["rejected_input_rows"] = {name: len(r.rejected) for name, r in loaded.reports.items()}
    paths = write_scores(ranked, config.scoring.output_dir, summary)
    return ScoreOutcome(ranked=ranked, paths=paths, summary=summary, seconds=time.perf_counter() - started)


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
            text=config.text,
            churn=config.churn,
            tracking=config.tracking,
            reports_dir=config.workdir / "reports",
        ),
        show_progress=show_progress,
    )
    seconds["train"] = train_outcome.seconds
    score_outcome = run_score(
        ScoreConfig(data=data_config, features=config.features, tracking=config.tracking, scoring=config.scoring)
    )
    seconds["score"] = score_outcome.seconds
    return DemoOutcome(world_dir=world_dir, rows=train_outcome.rows_used, train=train_outcome, score=score_outcome, seconds=seconds)


def format_training_outcome(outcome: TrainOutcome) -> str:
    result = outcome.result
    churn, base = result.churn.metrics, result.churn.baseline_metrics
    text, text_base = result.text.metrics, result.text.baseline_metrics
    lines = [
        (f"Churn model, evaluated as of {result.dates.test.date()} "
        f"({result.dates.horizon_days}-day horizon, {int(churn['n'])} customers, churn rate {churn['base_rate']:.1%}):"),
        f"  {'':<22}{'ROC-AUC':>9}{'PR-AUC':>9}{'Brier':>9}{'lift@10%':>10}",
        *(
            f"  {label:<22}{m['roc_auc']:>9.3f}{m['pr_auc']:>9.3f}{m['brier']:>9.4f}{m['lift_at_10']:>10.2f}"
            for label, m in (("gradient boosting", churn), ("logistic baseline", base))
        ),
        f"Text models, evaluated on the latest {result.text.n_test} labelled feedback texts:",
        (f"  sentiment  accuracy {text['sentiment_accuracy']:.3f}  macro-F1 {text['sentiment_macro_f1']:.3f}"
        f"   (majority class: {text_base['sentiment_accuracy']:.3f} / {text_base['sentiment_macro_f1']:.3f})"),
        (f"  themes     micro-F1 {text['themes_micro_f1']:.3f}  macro-F1 {text['themes_macro_f1']:.3f}"
        f"   (majority: {text_base['themes_micro_f1']:.3f} / {text_base['themes_macro_f1']:.3f})"),
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
    ranked, summary = outcome.ranked, outcome.summary
    tiers = ", ".join(f"{n} {t}" for t, n in summary["tiers"].items())
    lines = [
        (f"Scored {summary['customers_scored']} customers as of {summary['as_of']} ({tiers}); "
        f"value at risk {summary['value_at_risk_total']:,.0f} a month."),
        f"Top {min(top, len(ranked))} by value at risk:",
    ]
    for row in ranked.head(top).itertuples(index=False):
        lines.append(
            f"{row.rank:>3}. {row.customer_id}  p={row.churn_probability:.2f}  "
            f"value at risk {row.value_at_risk:,.0f}/month  [{row.risk_tier}]"
        )
        reasons = [getattr(row, f"reason_{i}") for i in range(1, 4) if hasattr(row, f"reason_{i}")]
        for reason in reasons:
            if isinstance(reason, str):
                lines.append(f"       - {reason}")
        lines.append(f"       -> {row.recommended_action}")
    lines.append("Outputs:")
    lines += [f"  {kind:<8} {path}" for kind, path in outcome.paths.items()]
    return "\n".join(lines)


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
            f"Time: {timing}.",
        ]
    )
