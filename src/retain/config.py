"""Job configuration: pydantic models loaded from one YAML file per job in ``configs/``.

Defaults live here and nowhere else. Every model forbids unknown keys, so a misspelled key is an
error that names the key and the file. Relative paths in a config file are resolved against the
current working directory (the repo root for ``make`` targets).
"""

from __future__ import annotations

import os
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
ModelT = TypeVar("ModelT", bound=BaseModel)


def shared_data_dir() -> Path:
    """The directory of the shared public data sets: ``$RETAIN_DATA_DIR`` or ``../shared/data``."""
    return Path(os.environ.get("RETAIN_DATA_DIR", "../shared/data"))


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


TableName = Literal["customers", "events", "tickets", "feedback"]


def expand_path(value: str | Path) -> Path:
    """Expand ``$RETAIN_DATA_DIR`` (default ``../shared/data``), other variables and ``~``."""
    text = str(value)
    if "RETAIN_DATA_DIR" in text:
        text = text.replace("${RETAIN_DATA_DIR}", str(shared_data_dir())).replace(
            "$RETAIN_DATA_DIR", str(shared_data_dir())
        )
    return Path(os.path.expanduser(os.path.expandvars(text)))


class ReadOptions(Strict):
    """How to read one input file: separator, encoding, date format, header."""

    sep: str | None = Field(
        default=None,
        description="Field separator; default ',' for .csv and any whitespace for .txt/.dat.",
    )
    encoding: str = Field("utf-8", description="Text encoding, e.g. latin-1.")
    date_format: str | None = Field(
        default=None, description="strftime format of every timestamp column, e.g. '%Y%m%d'."
    )


class FlatLayout(Strict):
    """One row per customer with a churn label (``data.layout: flat``)."""

    file: str = Field(description="The table's file name under data.path.")
    id_column: str | None = Field(default=None, description="Customer id column; default: the row number.")
    label_column: str = Field(description="The churn label column.")
    churned_values: tuple[str, ...] = Field(
        ("1", "yes", "true", "churned", "y"),
        description="Label values that mean churned (compared case-insensitively); others mean stayed.",
    )
    value_column: str | None = Field(
        default=None, description="Monthly value per customer (value at risk); optional."
    )
    snapshot_column: str | None = Field(default=None, description="Date each row describes; optional.")
    drop: tuple[str, ...] = Field(default=(), description="Columns never used as features.")
    test_file: str | None = Field(
        default=None,
        description="A separate labelled file to evaluate on (e.g. an official split); "
        "default: cross-validation folds of the one file.",
    )


class DataConfig(Strict):
    """Where the data is and how the user's files map onto retain's tables.

    ``layout: tables`` (default): ``customers`` plus any of ``events``, ``tickets``, ``feedback``
    in one directory. ``layout: flat``: one file, one row per customer with a label (``flat``).
    Paths may use ``$RETAIN_DATA_DIR`` (default ``../shared/data``).
    """

    layout: Literal["tables", "flat"] = "tables"
    path: Path = Field(description="Directory with the input files.")
    files: dict[TableName, str] = Field(
        default_factory=dict,
        description="Optional file name per table, e.g. {tickets: zendesk_export.csv}.",
    )
    columns: dict[TableName, dict[str, str]] = Field(
        default_factory=dict,
        description="Per table, contract column -> the user's column name.",
    )
    constants: dict[TableName, dict[str, str]] = Field(
        default_factory=dict,
        description="Per table, a contract column the file lacks -> one value for every row, "
        "e.g. {events: {event_type: purchase}} for a purchase log.",
    )
    read: dict[TableName, ReadOptions] = Field(
        default_factory=dict, description="Per table, how to read its file (separator, encoding, dates)."
    )
    customers_from_events: bool = Field(
        False,
        description="No customers file: derive one customer per id in events, signed up at their "
        "first event (for purchase or usage logs).",
    )
    rating_scale: tuple[float, float] = Field(
        (1.0, 5.0), description="The feedback rating scale (min, max), e.g. [1, 10] or [0, 10]."
    )
    flat: FlatLayout | None = None
    quarantine_dir: Path | None = Field(
        default=None, description="Where rejected rows are written; default <path>/quarantine."
    )
    export_time: datetime | None = Field(
        default=None,
        description="When the data was exported (UTC unless it names a zone): a row dated after "
        "it is quarantined. Default: the time of the run.",
    )
    max_quarantine_share: float = Field(
        0.05,
        ge=0,
        le=1,
        description="When more than this share of a table's rows is quarantined the run stops "
        "(exit 3), naming the main reasons; 1 turns the check off.",
    )
    extra_columns: dict[TableName, tuple[str, ...]] = Field(
        default_factory=dict,
        description="Per table, columns that are not contract columns on purpose. A column that "
        "is not in the contract but looks like an optional one the file lacks (`cast` for "
        "`csat`) is an error unless listed here or mapped in data.columns.",
    )
    warnings_fatal: bool = Field(
        False,
        description="Stop (exit 3) on any data warning (quarantined rows, fields set missing, an "
        "empty table) instead of running and listing the warnings in the summary.",
    )

    @model_validator(mode="before")
    @classmethod
    def _expand_paths(cls, values: object) -> object:
        if isinstance(values, dict):
            values = dict(values)
            for key in ("path", "quarantine_dir"):
                if values.get(key) is not None:
                    values[key] = expand_path(values[key])
        return values

    @model_validator(mode="after")
    def _layout_complete(self) -> DataConfig:
        if self.layout == "flat" and self.flat is None:
            raise ValueError("layout 'flat' needs a 'flat' section (file, label_column...)")
        if self.layout == "tables" and self.flat is not None:
            raise ValueError("a 'flat' section needs layout: flat")
        low, high = self.rating_scale
        if not high > low:
            raise ValueError(f"rating_scale must be (min, max) with max > min, got {self.rating_scale}")
        return self


class SynthConfig(Strict):
    """The synthetic world: size, seed and time span."""

    customers: int = Field(20000, ge=10)
    seed: int = 0
    start: date = date(2024, 1, 1)
    end: date = date(2025, 12, 31)


class FeatureConfig(Strict):
    """Point-in-time churn features."""

    windows_days: tuple[int, ...] = (30, 90)
    horizon_days: int = Field(90, ge=1, description="Churn label window (as_of, as_of + horizon].")
    attributes: tuple[str, ...] | Literal["all"] = Field(
        (),
        description="Extra customer columns to use as features (numbers, categories, booleans; "
        "text columns become categories; date columns are left out: a snapshot date can lie after "
        "as_of), or 'all'. The flat layout uses all its columns unless this names some.",
    )
    theme_sentiment_comments: int = Field(
        0,
        ge=0,
        description="Sentiment per theme over each customer's last N comments in the longest "
        "window ('negative about billing in 3 of the last 5 comments'): N, or 0 to leave these "
        "features out (they score every comment clause by clause).",
    )


class LabelConfig(Strict):
    """What churn means: ``contractual`` (a ``churned_at`` date) or ``inactivity`` (no activity).

    ``contractual``: a customer who signed up on or before ``as_of`` and has not churned by then
    is in the population; the label is 1 if ``churned_at`` falls in ``(as_of, as_of + horizon]``.
    ``inactivity`` (purchase or usage logs): a customer with at least one qualifying event on or
    before ``as_of`` (and, with ``max_silence_days``, one within that many days) is in the
    population; the label is 1 if no qualifying event falls in ``(as_of, as_of + horizon]``.
    Either way only data on or before ``as_of`` decides who is in the population.
    """

    definition: Literal["contractual", "inactivity"] = "contractual"
    event_types: tuple[str, ...] | None = Field(
        default=None, description="inactivity: the event types that count as activity; default all."
    )
    max_silence_days: int | None = Field(
        default=None,
        ge=1,
        description="inactivity: silent for longer than this at as_of counts as already lost.",
    )


class DriversConfig(Strict):
    """Churn drivers (``retain.insight.drivers``, docs/drivers.md): which situations go with churn."""

    window_days: int = Field(90, ge=1, description="A driver counts what happened in (as_of - window_days, as_of].")
    every_days: int = Field(30, ge=1, description="Spacing of the as_of dates the drivers are read at.")
    max_dates: int | None = Field(
        None, ge=1, description="Read at most this many dates (the latest labelled ones); default all."
    )
    slow_response_hours: float = Field(
        24.0, gt=0, description="A first response later than this (or still awaited after it) is slow."
    )
    low_csat: float = Field(2.0, description="A CSAT answer at or below this is low (1-5 scale).")
    min_rows: int = Field(
        30, ge=1, description="A driver seen (or missed) in fewer customer-dates than this is left out."
    )
    bootstrap: int = Field(200, ge=20, description="Bootstrap draws of customers for the lift and difference intervals.")
    confidence: float = Field(0.95, gt=0, lt=1)
    l2_penalty: float = Field(
        1.0, gt=0, description="Ridge penalty of the adjusted regression (lambda in lambda/2 * |beta|^2)."
    )
    seed: int = 0


class TextModelConfig(Strict):
    """TF-IDF + logistic regression text models for sentiment and themes."""

    taxonomy: Path = Path("configs/themes.yaml")
    max_features: int = 50_000
    ngram_max: int = Field(2, ge=1, le=3)
    min_df: int = Field(
        2, ge=2,
        description="A term enters a text model's vocabulary only when at least this many texts use "
        "it (never fewer than 2, so a name or number written once is not stored in the model).",
    )
    min_customers: int = Field(
        3, ge=1,
        description="The churn job's text models keep a term only when texts of at least this many "
        "distinct customers use it, so a customer's own name does not enter the model.",
    )
    C: float = Field(4.0, gt=0)
    char_ngrams: bool = Field(
        False,
        description="Add character n-grams to word n-grams: about 8x slower to fit and score. Off by "
        "default: the earlier choice to use them was made on T1's test split, not on validation data.",
    )
    theme_threshold: float = Field(0.5, gt=0, lt=1)
    oof_folds: int = Field(5, ge=2, description="Folds for out-of-fold feedback scores (kept for notebooks).")
    refit_every_days: int = Field(
        90, ge=1,
        description="Text models behind churn features are refitted on the feedback before each cut, "
        "cuts this many days apart, so a feature at as_of never comes from a model that saw later text.",
    )
    test_fraction: float = Field(0.2, gt=0, lt=1, description="Latest share of labelled feedback held out.")


class AuditConfig(Strict):
    """The leakage audit run before every churn training."""

    enabled: bool = True
    keep: tuple[str, ...] = Field(
        default=(), description="Columns to keep even if the audit flags them (still reported)."
    )


class ChurnModelConfig(Strict):
    """Gradient-boosted churn model, its calibration, its training dates and its evaluation.

    Model settings are chosen by a search on validation data (``search_budget_s``); setting any
    of ``n_estimators``, ``learning_rate``, ``num_leaves``, ``min_child_samples`` pins it and
    skips the search (the others keep ChurnClassifier's defaults), and the record says so.
    """

    n_estimators: int | None = Field(
        None, ge=1, description="Pin the number of trees; default: chosen by the settings search."
    )
    learning_rate: float | None = Field(None, gt=0, description="Pin the learning rate (skips the search).")
    num_leaves: int | None = Field(None, ge=2, description="Pin the leaves per tree (skips the search).")
    min_child_samples: int | None = Field(None, ge=1, description="Pin the rows per leaf (skips the search).")
    calibration: Literal["isotonic", "sigmoid"] = "sigmoid"
    n_jobs: int = Field(1, ge=1, description="LightGBM threads; more helps only on large data and an idle machine.")
    train_every_days: int = Field(30, ge=1, description="Spacing of training as_of dates.")
    train_periods: int = Field(12, ge=1, description="How many training as_of dates, going back.")
    test_as_of: date | None = Field(
        default=None, description="Last evaluation date; default: the last date whose label window is observed."
    )
    backtest_dates: int = Field(
        3, ge=1,
        description="Evaluation dates (train_every_days apart, ending at test_as_of); each is "
        "predicted by a model trained only on labels observed by then.",
    )
    cv_folds: int = Field(5, ge=2, description="Flat layout without a test file: evaluation folds.")
    search_budget_s: float = Field(
        60.0, ge=0, description="Seconds for choosing model settings on validation data."
    )
    audit: AuditConfig = Field(default_factory=lambda: AuditConfig())


class TrackingConfig(Strict):
    """MLflow tracking store, experiment and registered model names."""

    tracking_uri: str = Field(
        default_factory=lambda: os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    )
    experiment: str = "retain"
    sentiment_model: str = "retain-sentiment"
    theme_model: str = "retain-themes"
    churn_model: str = "retain-churn"
    text_model: str = Field(
        "retain-text",
        description="The one text model of `retain text train`: a pyfunc returning sentiment and "
        "theme probabilities, whichever model kind won.",
    )
    champion_alias: str = "champion"


class RiskTier(Strict):
    name: str
    min_probability: float = Field(ge=0, le=1)


DEFAULT_DATABASE_URL = "sqlite:///outputs/retain.db"
DATABASE_URL_ENV = "RETAIN_DATABASE_URL"


class DatabaseConfig(Strict):
    """Where ``retain score --publish`` publishes the list (``retain.serve``).

    ``$RETAIN_DATABASE_URL``, when set, overrides ``url`` (so a password need not sit in a
    config file).
    """

    url: str = Field(
        DEFAULT_DATABASE_URL,
        description="SQLAlchemy URL: sqlite:///path/to/file.db (created if missing) or "
        "postgresql+psycopg://user:password@host:5432/database.",
    )
    keep_runs: int = Field(30, ge=1, description="How many published runs to keep in the database.")

    @model_validator(mode="before")
    @classmethod
    def _url_from_environment(cls, values: object) -> object:
        override = os.environ.get(DATABASE_URL_ENV)
        if override and isinstance(values, dict):
            return {**values, "url": override}
        return values


class SparkConfig(Strict):
    """``scoring.spark``: how ``retain score --engine spark`` runs (``retain.engines.spark``)."""

    master: str = Field(
        "local[2]",
        description="The Spark master: local[N] on this machine, or a cluster's URL (spark://..., yarn, k8s://...).",
    )
    partitions: int = Field(
        8,
        ge=1,
        description="Customers are split into this many partitions by a hash of their id; each is "
        "validated and scored in one pandas call, so a partition's rows must fit a worker's memory.",
    )
    data_uri: str | None = Field(
        default=None,
        description="Where Spark reads the Parquet tables (any URI it reads: s3a://bucket/world, "
        "hdfs://..., a directory); default data.path. Tables are <data_uri>/<table>.parquet or the "
        "names in data.files.",
    )
    conf: dict[str, str] = Field(
        default_factory=dict,
        description="Extra Spark settings, e.g. {spark.driver.memory: 8g}; they win over retain's own.",
    )


class ThemeSurgeConfig(Strict):
    """When a theme's share of the latest complete week counts as a surge (docs/monitoring.md)."""

    weeks: int = Field(8, ge=2, description="The recent range: this many weeks before the latest one.")
    sd: float = Field(3.0, gt=0, description="A surge is above the recent weeks' mean + sd x their standard deviation...")
    min_increase: float = Field(
        0.02, ge=0, le=1, description="...and at least this much (absolute share) above their mean."
    )
    min_feedback: int = Field(20, ge=1, description="Themes are checked when the latest week has this many feedback rows.")
    min_weeks: int = Field(
        4, ge=2, description="...and at least this many earlier weeks have feedback (the scoring run reads the "
        "longest feature window of feedback: 90 days give 12 weeks)."
    )


class MonitoringConfig(Strict):
    """Checks of each scoring run against the reference saved with the churn model (docs/monitoring.md).

    A breach is a ``monitoring breach:`` WARNING line, listed in the summary's ``monitoring``
    section; with ``fail_on_breach`` ``retain score`` then exits 9 (the list is still written).
    """

    enabled: bool = Field(True, description="Compute the monitoring section of each scoring run.")
    bins: int = Field(10, ge=2, description="Quantile bins of the reference for the PSI of a numeric value.")
    psi_warn: float = Field(0.2, gt=0, description="A feature whose PSI is above this has drifted.")
    ks_warn: float | None = Field(
        None, gt=0, le=1, description="Also flag a numeric feature whose KS statistic is above this (off by default: "
        "on large populations KS flags shifts too small to matter).",
    )
    score_psi_warn: float = Field(0.2, gt=0, description="The churn probabilities' PSI above this is a breach.")
    min_estimated_roc_auc: float | None = Field(
        None, ge=0, le=1, description="A breach when the estimated ROC-AUC (before labels) is below this."
    )
    max_roc_auc_drop: float | None = Field(
        0.05, ge=0, le=1, description="A breach when the estimated ROC-AUC is more than this below the ROC-AUC "
        "of training's evaluation.",
    )
    theme_surge: ThemeSurgeConfig = Field(default_factory=lambda: ThemeSurgeConfig())
    reference_rows: int = Field(
        5000, ge=100, description="At training: the reference saved with the churn model is a sample of at most "
        "this many customers of the last labelled date (features and probabilities).",
    )
    fail_on_breach: bool = Field(
        False, description="`retain score` exits 9 after writing the list when a check is breached, for a scheduler."
    )


class ScoringConfig(Strict):
    """Scoring: where the ranked list goes, tiers, reasons and the playbook."""

    output_dir: Path = Field(
        Path("outputs"),
        description="Each run is written to <output_dir>/runs/<id>/; <output_dir>/latest points "
        "at the last complete one.",
    )
    keep_runs: int = Field(5, ge=1, description="How many published runs to keep in <output_dir>/runs.")
    playbook: Path = Path("configs/playbook.yaml")
    outreach_history: Path | None = Field(
        default=None,
        description="Past outreach contacts (CSV or Parquet: customer_id, contacted_at), for the "
        "playbook's cooldown and for `retain outreach report` (who was actually contacted).",
    )
    top_reasons: int = Field(3, ge=1)
    reasons_for: Literal["top", "all"] = Field(
        "top",
        description="Who gets reasons (exact model attributions, the slowest step of scoring): "
        "`all`, or `top`: the top `reasons_top_share` of the list by value at risk, and everyone "
        "when a run scores at most `reasons_all_up_to` customers. The others get a probability, a "
        "tier and the playbook's tier action; `retain explain` gives anyone's reasons on request.",
    )
    reasons_top_share: float = Field(0.1, gt=0, le=1, description="With reasons_for: top, the share of the list explained.")
    reasons_all_up_to: int = Field(
        100_000, ge=0, description="With reasons_for: top, a run of at most this many customers explains everyone."
    )
    reasons_reference_sample: int = Field(
        20_000,
        ge=100,
        description="With reasons for the top only: the size of the fixed sample (by id hash) whose "
        "attributions tell which direction of each feature is risky and which categories raise "
        "risk. Smaller samples misjudge categories whose effect is near zero (on a 21,000-customer "
        "world 5,000 gave the same top-3 reasons as everyone's attributions for 86% of the "
        "explained customers); benchmark S1 measures the agreement at a million customers.",
    )
    max_as_of_gap_days: int = Field(
        31,
        ge=0,
        description="A scoring date more than this many days from the end of the data (before "
        "or after) is refused unless forced (`retain score --force-as-of`): features would "
        "describe silence, or the past, rather than the customers now.",
    )
    force_as_of: bool = Field(
        False, description="Score at --as-of even when it is far from the end of the data."
    )
    publish: bool = Field(
        False,
        description="Also publish the list to the database (scoring.database) as a new current "
        "run; same as `retain score --publish`.",
    )
    database: DatabaseConfig = Field(default_factory=lambda: DatabaseConfig())
    text_cache: bool = Field(
        True,
        description="Keep the text models' scores of each feedback text in "
        "<output_dir>/text_cache.parquet (keyed by feedback id, text hash and model versions), so "
        "a rerun scores only new or edited texts.",
    )
    log_to_mlflow: bool = Field(
        True,
        description="Log each scoring run (counts, per-stage seconds and peak memory) to MLflow "
        "as a run named 'score'.",
    )
    engine: Literal["pandas", "spark"] = Field(
        "pandas",
        description="pandas: this process scores everyone. spark: the customers are validated and "
        "scored per partition on a Spark cluster (scoring.spark), then ranked here; the same list. "
        "Dated tables in Parquet only. Same as `retain score --engine`.",
    )
    spark: SparkConfig = Field(default_factory=lambda: SparkConfig())
    purchase_value: Literal["probabilistic", "recent_spend"] = Field(
        "probabilistic",
        description="The monthly value of a customer without a contracted monthly_value, from the "
        "purchases (events with an amount) on or before as_of. probabilistic: BG/NBD x Gamma-Gamma "
        "fitted on the whole purchase log to as_of, the spend expected over the next "
        "purchase_value_horizon_days if the customer is still active, per month (docs/kpis.md); "
        "falls back to recent_spend, saying why, when the models cannot be fitted. recent_spend: "
        "the average monthly spend of the last 365 days.",
    )
    purchase_value_horizon_days: int | None = Field(
        None, ge=1, description="probabilistic purchase value: the horizon of the expected spend (default features.horizon_days)."
    )
    monitoring: MonitoringConfig = Field(default_factory=lambda: MonitoringConfig())
    tiers: tuple[RiskTier, ...] = (
        RiskTier(name="high", min_probability=0.5),
        RiskTier(name="medium", min_probability=0.2),
        RiskTier(name="low", min_probability=0.0),
    )

    @property
    def text_cache_path(self) -> Path:
        """Where the text cache of scoring runs is kept."""
        return self.output_dir / "text_cache.parquet"

    @model_validator(mode="after")
    def _tiers_descend(self) -> ScoringConfig:
        probs = [t.min_probability for t in self.tiers]
        if not probs or probs != sorted(probs, reverse=True) or probs[-1] != 0.0:
            raise ValueError("tiers must be listed from highest min_probability down to one with 0.0")
        return self


class ReportConfig(Strict):
    """``retain report``: the insight report (KPIs, themes, drivers, value, model, monitoring)."""

    output_dir: Path = Field(
        Path("outputs/report"), description="Where report.html and its tables (CSV) are written."
    )
    freq: Literal["W", "M"] = Field("M", description="KPI periods: W (weeks from Monday) or M (months).")
    group_by: tuple[str, ...] = Field(
        ("segment", "channel", "region"),
        description="Service KPIs per group too: customer attributes or ticket/feedback columns; "
        "a name the data lacks, or an id, date or text column, is left out with a note.",
    )
    fcr_window_days: int = Field(7, ge=1, description="First-contact resolution: no follow-up ticket within N days.")
    theme_threshold: float = Field(
        0.5, gt=0.0, le=1.0, description="A feedback row mentions a theme at this probability or above."
    )
    months: int = Field(24, ge=1, description="Show the last N months of KPIs (older periods are left out).")
    drivers: bool = Field(True, description="Compute the churn drivers (docs/drivers.md).")
    driver_analysis: DriversConfig = Field(
        default_factory=lambda: DriversConfig(), description="How the drivers are read: window, dates, thresholds."
    )
    value: bool = Field(True, description="Expected customer value for purchase logs (BG/NBD + Gamma-Gamma).")
    log_to_mlflow: bool = Field(True, description="Log report.html to MLflow as a run named `report`.")


class RunConfig(Strict):
    """The sections a data set's config holds; ``retain train`` and ``retain score`` read the same file."""

    data: DataConfig
    features: FeatureConfig = FeatureConfig()
    label: LabelConfig = LabelConfig()
    text: TextModelConfig = TextModelConfig()
    churn: ChurnModelConfig = ChurnModelConfig()
    tracking: TrackingConfig = TrackingConfig()
    scoring: ScoringConfig = ScoringConfig()
    report: ReportConfig = ReportConfig()
    reports_dir: Path = Path("outputs/reports")


class TrainConfig(RunConfig):
    """``retain train``: text models, features, churn model, evaluation and registration."""


class ScoreConfig(RunConfig):
    """``retain score``: champion models applied to the data as of a date."""


class TextColumns(Strict):
    """Which of the file's columns hold what (``data.columns`` of a text job)."""

    text: str = Field(description="The feedback text.")
    id: str | None = Field(
        default=None, description="A unique id per text; default: the row number."
    )
    sentiment: str | None = Field(
        default=None, description="Sentiment label (optional; see data.sentiment_values)."
    )
    themes: str | None = Field(
        default=None,
        description="Theme labels: theme ids (or values mapped by data.theme_values) joined by "
        "data.theme_separator (optional).",
    )
    created_at: str | None = Field(
        default=None, description="When the text was written (optional)."
    )


class TextDataConfig(Strict):
    """One feedback file and how its columns map onto text, id and the optional labels.

    ``path`` may use ``$RETAIN_DATA_DIR`` (default ``../shared/data``). Labels are optional:
    a file with no label column at all is a normal case.
    """

    path: Path = Field(description="The feedback file (.csv, .tsv, .txt or .parquet).")
    read: ReadOptions = Field(default_factory=lambda: ReadOptions())
    columns: TextColumns
    sentiment_values: dict[str, str] = Field(
        default_factory=dict,
        description="Raw sentiment value -> negative, neutral or positive, e.g. "
        "{'1': positive, '0': negative}. Empty: the column already holds those words. With a "
        "mapping, a value it does not name is an error unless mapped to null (unlabelled).",
    )
    theme_values: dict[str, str | None] = Field(
        default_factory=dict,
        description="Raw theme value -> theme id of the taxonomy; '' = labelled, no theme; "
        "null = not labelled. Empty: the column already holds theme ids.",
    )
    theme_separator: str = Field(
        "|", min_length=1, description="Separator of several themes in a cell."
    )
    empty_themes: Literal["unlabelled", "no_theme"] = Field(
        "unlabelled",
        description="What an empty themes cell means: 'unlabelled' (not annotated), or "
        "'no_theme' (annotated: the text raises none of the themes, e.g. airline tweets "
        "without a negative reason).",
    )

    @model_validator(mode="before")
    @classmethod
    def _expand_path(cls, values: object) -> object:
        if isinstance(values, dict) and values.get("path") is not None:
            values = {**values, "path": expand_path(values["path"])}
        return values

    @model_validator(mode="after")
    def _sentiments_known(self) -> TextDataConfig:
        from retain.contracts import SENTIMENTS

        wrong = sorted({v for v in self.sentiment_values.values() if v not in SENTIMENTS})
        if wrong:
            raise ValueError(
                f"sentiment_values maps to {wrong}; use {', '.join(SENTIMENTS)} "
                "(or leave a value out)"
            )
        return self


class TfidfSettings(Strict):
    """TF-IDF + logistic regression (``model.kind: tfidf``, and the reference for ``auto``)."""

    max_features: int = Field(50_000, ge=1)
    ngram_max: int = Field(2, ge=1, le=3)
    min_df: int = Field(
        2, ge=2,
        description="Least number of texts using a term for it to enter the vocabulary (at least 2, "
        "so a name or number written once is not stored in the model).",
    )
    C: float = Field(4.0, gt=0)
    char_ngrams: bool = Field(False, description="Add character n-grams (about 8x slower).")


class TransformerSettings(Strict):
    """A fine-tuned or frozen encoder (``retain.text.transformer.TransformerTextClassifier``)."""

    mode: Literal["fine_tune", "frozen"] = Field(
        "fine_tune",
        description="fine_tune trains the encoder with a classification head; frozen reads its "
        "sentence vectors into a logistic regression.",
    )
    blend_tfidf: bool = Field(
        True,
        description="Blend the transformer's probabilities with a TF-IDF model's, the weight "
        "chosen on validation rows carved from the training rows (weights 0 and 1 included, so "
        "either model alone remains possible).",
    )
    shared: bool = Field(
        True,
        description="One encoder for sentiment and themes when both are trained as transformers "
        "(fine_tune mode, both tasks labelled): one multi-task fine-tuning with a head per task, "
        "so scoring runs the encoder once for both. false fine-tunes one encoder per task.",
    )
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="Further TransformerTextClassifier settings (epochs, batch_size...); "
        "a name the classifier does not take is an error naming it.",
    )


class TextModelChoice(Strict):
    """Which text model to train: ``tfidf``, ``transformer``, or ``auto`` (both; keep the champion).

    With ``auto`` every candidate is fitted on the training part of the labelled rows and
    compared on the validation part; a candidate replaces TF-IDF only if a paired bootstrap over
    the validation texts shows it better (95% interval of the difference above 0).
    Without labels for a task the zero-label classifier is used whatever ``kind`` says.
    """

    kind: Literal["tfidf", "transformer", "auto"] = "tfidf"
    encoder: str = Field(
        "all-MiniLM-L6-v2",
        description="Encoder of the transformer and zero-label models: the bundled MiniLM, a "
        "local folder or a Hugging Face name.",
    )
    unlabelled: Literal["zero_label", "skip"] = Field(
        "zero_label",
        description="A task (sentiment or themes) without enough labels: 'zero_label' uses the "
        "zero-label classifier (themes from the taxonomy's descriptions); 'skip' leaves it out.",
    )
    tfidf: TfidfSettings = Field(default_factory=lambda: TfidfSettings())
    transformer: TransformerSettings = Field(default_factory=lambda: TransformerSettings())


class TextValidation(Strict):
    """The held-out validation split carved from the labelled rows of the file."""

    fraction: float = Field(0.2, gt=0, lt=1, description="Share of labelled rows held out.")
    seed: int = 0
    min_labelled: int = Field(
        20,
        ge=2,
        description="Fewer labelled rows than this for a task: no supervised model for it.",
    )
    bootstrap: int = Field(1000, ge=100, description="Paired bootstrap draws for kind: auto.")


class TextJobConfig(Strict):
    """``retain text train`` and ``retain text score``: feedback text on its own."""

    data: TextDataConfig
    taxonomy: Path = Path("configs/themes.yaml")
    model: TextModelChoice = Field(default_factory=lambda: TextModelChoice())
    threshold: float = Field(
        0.5, gt=0, lt=1, description="A theme is assigned when its probability is at least this."
    )
    themes_mode: Literal["auto", "single", "multi"] = Field(
        "auto",
        description="How many themes a text gets. 'multi': any number (one model per theme, "
        "each theme assigned at its threshold; chosen by micro-F1). 'single': exactly one, the "
        "most probable (one model over the themes, softmax / multinomial; chosen by macro-F1 of "
        "the assigned theme; accuracy and macro-F1 reported). 'auto': 'single' when every "
        "labelled row carries exactly one theme (after data.theme_values and "
        "data.empty_themes) and at least two themes occur, else 'multi'.",
    )
    validation: TextValidation = Field(default_factory=lambda: TextValidation())
    tracking: TrackingConfig = Field(default_factory=lambda: TrackingConfig())
    output: Path = Field(
        Path("outputs/text/scores.csv"),
        description="`retain text score` writes here (.csv or .parquet); the summary goes "
        "beside it.",
    )
    cache: Path | None = Field(
        Path("outputs/text/cache.parquet"),
        description="Inference cache (id, text hash, model version); null turns it off.",
    )


class DemoConfig(Strict):
    """``retain demo``: a synthetic world, then train and score on it."""

    synth: SynthConfig = SynthConfig()
    workdir: Path = Path("demo")
    features: FeatureConfig = FeatureConfig()
    label: LabelConfig = LabelConfig()
    text: TextModelConfig = TextModelConfig()
    churn: ChurnModelConfig = ChurnModelConfig()
    tracking: TrackingConfig = TrackingConfig()
    scoring: ScoringConfig = ScoringConfig(output_dir=Path("demo/outputs"))
    report: ReportConfig = ReportConfig(output_dir=Path("demo/report"))


class ConfigError(ValueError):
    """A config file is missing, unreadable or invalid; the message names the file and the key."""


def relative_path_hint(path: Path) -> str:
    """For a relative path that was not found: where it was looked for.

    Paths in configs (``data.path``, ``text.taxonomy``, ``scoring.playbook`` ...) are read from
    the current directory, as the shell would read them; the example configs expect the repo root.
    """
    if path.is_absolute():
        return ""
    return f" (relative paths are read from the current directory, {Path.cwd()}; run from the repo root or give an absolute path)"


def load_config(path: str | Path, model: type[ModelT]) -> ModelT:
    """Load and validate a YAML config file into ``model``.

    Raises
    ------
    ConfigError
        Naming the file and every offending key (unknown, misspelled, wrong type).
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}{relative_path_hint(path)}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"]) or "(top level)"
            msg = "unknown key (misspelled?)" if err["type"] == "extra_forbidden" else err["msg"]
            lines.append(f"  {key}: {msg}")
        raise ConfigError(f"{path}: invalid {model.__name__}:\n" + "\n".join(lines)) from None


def require_unique(names: list[str], what: str) -> None:
    """Raise ValueError naming the repeated ones when ``names`` are not unique."""
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"{what} must be unique; repeated: {', '.join(repeated)}")


class Theme(Strict):
    id: str
    name: str
    description: str
    churn_relevant: bool = False
    examples: tuple[str, ...] = Field(
        default=(), description="A few example phrases (used by the zero-label theme models)."
    )


class Taxonomy(Strict):
    """The theme taxonomy (``configs/themes.yaml``)."""

    themes: tuple[Theme, ...]

    @field_validator("themes")
    @classmethod
    def _ids_unique_and_plain(cls, themes: tuple[Theme, ...]) -> tuple[Theme, ...]:
        ids = [t.id for t in themes]
        require_unique(ids, "theme ids")
        # "|" joins theme ids in label and output columns, ":" joins theme and sentiment.
        bad = [i for i in ids if not i.strip() or "|" in i or ":" in i]
        if bad:
            raise ValueError(f"theme ids must be non-empty and hold no '|' or ':': {bad}")
        return themes

    @property
    def ids(self) -> list[str]:
        return [t.id for t in self.themes]


class Team(Strict):
    """A team that makes outreach contacts, and how many customers it can take on per day."""

    name: str
    daily_capacity: int | None = Field(
        default=None, ge=0, description="Customers the team can contact per day; null: no limit."
    )


class PlaybookRule(Strict):
    """One rule: customers it matches get ``action``, carried out by ``team``.

    A rule matches on any of ``signal`` (one of the customer's reasons), ``min_tier`` (the
    customer's risk tier or a higher one) and ``segment`` (the customer's segment, one or a
    list); every condition given must hold, and at least one must be given.
    """

    signal: str | None = Field(
        default=None, description="The reason signal that triggers this action (see retain.churn.reasons)."
    )
    action: str
    min_tier: str | None = Field(default=None, description="Only for customers in this tier or higher.")
    segment: str | tuple[str, ...] | None = Field(
        default=None, description="Only for customers of this segment (or one of these segments)."
    )
    team: str | None = Field(default=None, description="The team that acts; default: the playbook's default_team.")

    @model_validator(mode="after")
    def _matches_something(self) -> PlaybookRule:
        if self.signal is None and self.min_tier is None and self.segment is None:
            raise ValueError("a rule needs at least one of signal, min_tier or segment (default_action covers everyone else)")
        return self

    @property
    def segments(self) -> tuple[str, ...] | None:
        """``segment`` as a tuple (None: any segment)."""
        if self.segment is None:
            return None
        return (self.segment,) if isinstance(self.segment, str) else tuple(self.segment)


class Playbook(Strict):
    """Who gets which action, by which team, how often, and who is held out (``configs/playbook.yaml``).

    See ``docs/outreach.md``: rules, team capacity, cooldown and the control group.
    """

    default_action: str
    default_team: str = Field("customer_success", description="The team of default_action and of rules without a team.")
    rules: tuple[PlaybookRule, ...] = ()
    teams: tuple[Team, ...] = Field(
        default=(),
        description="Teams and their daily capacity; a team named by a rule or default_team but "
        "not listed here has no limit.",
    )
    cooldown_days: int = Field(
        30, ge=0, description="A customer contacted within this many days before as_of is not assigned again."
    )
    control_share: float = Field(
        0.1, ge=0, lt=1, description="Share of customers held out of outreach (per risk decile) to measure its effect."
    )
    control_seed: int = Field(
        0, description="Seed of the control group: the same seed holds out the same customers run after run."
    )
    include_control: bool = Field(
        False,
        description="Publish control customers in the ranked list too (flagged control, no action); "
        "by default they are left out of it and recorded only in the outreach plan.",
    )

    @field_validator("teams")
    @classmethod
    def _team_names_unique(cls, teams: tuple[Team, ...]) -> tuple[Team, ...]:
        require_unique([t.name for t in teams], "team names")
        return teams

    @model_validator(mode="after")
    def _rule_teams_are_listed(self) -> Playbook:
        if not self.teams:
            return self
        listed = {t.name for t in self.teams}
        named = {self.default_team} | {r.team for r in self.rules if r.team is not None}
        unknown = sorted(named - listed)
        if unknown:
            raise ValueError(f"team(s) {unknown} are not listed under teams ({', '.join(sorted(listed))})")
        return self

    def team_of(self, rule: PlaybookRule | None) -> str:
        """The team acting on ``rule`` (None: the default action)."""
        return rule.team if rule is not None and rule.team is not None else self.default_team

    def capacity(self, team: str) -> int | None:
        """The daily capacity of ``team`` (None: no limit)."""
        for t in self.teams:
            if t.name == team:
                return t.daily_capacity
        return None
