"""Job configuration: pydantic models loaded from one YAML file per job in ``configs/``.

Defaults live here and nowhere else. Every model forbids unknown keys, so a misspelled key is an
error that names the key and the file. Relative paths in a config file are resolved against the
current working directory (the repo root for ``make`` targets).
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
ModelT = TypeVar("ModelT", bound=BaseModel)


def shared_data_dir() -> Path:
    """The directory of the shared public data sets: ``$RETAIN_DATA_DIR`` or ``../shared/data``."""
    return Path(os.environ.get("RETAIN_DATA_DIR", "../shared/data"))


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataConfig(Strict):
    """Where the four tables are and how the user's column names map onto the contracts."""

    path: Path = Field(description="Directory with customers, events, tickets, feedback (.csv or .parquet).")
    files: dict[str, str] = Field(
        default_factory=dict,
        description="Optional file name per table, e.g. {tickets: zendesk_export.csv}.",
    )
    columns: dict[Literal["customers", "events", "tickets", "feedback"], dict[str, str]] = Field(
        default_factory=dict,
        description="Per table, contract column -> the user's column name.",
    )
    quarantine_dir: Path | None = Field(
        default=None, description="Where rejected rows are written; default <path>/quarantine."
    )


class SynthConfig(Strict):
    """The synthetic world: size, seed and time span."""

    customers: int = Field(20000, ge=10)
    seed: int = 0
    start: date = date(2024, 1, 1)
    end: date = date(2025, 12, 31)


class FeatureConfig(Strict):
    """Point-in-time churn features and labels."""

    windows_days: tuple[int, ...] = (30, 90)
    horizon_days: int = Field(90, ge=1, description="Churn label window (as_of, as_of + horizon].")


class TextModelConfig(Strict):
    """TF-IDF + logistic regression text models for sentiment and themes."""

    taxonomy: Path = Path("configs/themes.yaml")
    max_features: int = 50_000
    ngram_max: int = Field(2, ge=1, le=3)
    min_df: int = 2
    C: float = Field(4.0, gt=0)
    char_ngrams: bool = Field(
        True, description="Add character n-grams to word n-grams: more accurate, about 8x slower to score."
    )
    theme_threshold: float = Field(0.5, gt=0, lt=1)
    oof_folds: int = Field(5, ge=2, description="Folds for out-of-fold feedback scores used in churn training.")
    test_fraction: float = Field(0.2, gt=0, lt=1, description="Latest share of labelled feedback held out.")


class ChurnModelConfig(Strict):
    """Gradient-boosted churn model, its calibration and its training dates."""

    n_estimators: int = Field(400, ge=1)
    learning_rate: float = Field(0.02, gt=0)
    num_leaves: int = Field(8, ge=2)
    min_child_samples: int = Field(40, ge=1)
    calibration: Literal["isotonic", "sigmoid"] = "sigmoid"
    n_jobs: int = Field(2, ge=1, description="LightGBM threads; 1 is faster on small data or a busy machine.")
    train_every_days: int = Field(30, ge=1, description="Spacing of training as_of dates.")
    train_periods: int = Field(12, ge=1, description="How many training as_of dates, going back.")
    test_as_of: date | None = Field(
        default=None, description="Evaluation date; default: the last date whose label window is observed."
    )


class TrackingConfig(Strict):
    """MLflow tracking store, experiment and registered model names."""

    tracking_uri: str = Field(
        default_factory=lambda: os.environ.get("MLFLOW_TRACKING_URI", DEFAULT_TRACKING_URI)
    )
    experiment: str = "retain"
    sentiment_model: str = "retain-sentiment"
    theme_model: str = "retain-themes"
    churn_model: str = "retain-churn"
    champion_alias: str = "champion"


class RiskTier(Strict):
    name: str
    min_probability: float = Field(ge=0, le=1)


class ScoringConfig(Strict):
    """Scoring: where the ranked list goes, tiers, reasons and the playbook."""

    output_dir: Path = Path("outputs")
    playbook: Path = Path("configs/playbook.yaml")
    top_reasons: int = Field(3, ge=1)
    tiers: tuple[RiskTier, ...] = (
        RiskTier(name="high", min_probability=0.5),
        RiskTier(name="medium", min_probability=0.2),
        RiskTier(name="low", min_probability=0.0),
    )

    @model_validator(mode="after")
    def _tiers_descend(self) -> ScoringConfig:
        probs = [t.min_probability for t in self.tiers]
        if not probs or probs != sorted(probs, reverse=True) or probs[-1] != 0.0:
            raise ValueError("tiers must be listed from highest min_probability down to one with 0.0")
        return self


class TrainConfig(Strict):
    """``retain train``: text models, features, churn model, evaluation and registration."""

    data: DataConfig
    features: FeatureConfig = FeatureConfig()
    text: TextModelConfig = TextModelConfig()
    churn: ChurnModelConfig = ChurnModelConfig()
    tracking: TrackingConfig = TrackingConfig()
    reports_dir: Path = Path("outputs/reports")


class ScoreConfig(Strict):
    """``retain score``: champion models applied to the data as of a date."""

    data: DataConfig
    features: FeatureConfig = FeatureConfig()
    tracking: TrackingConfig = TrackingConfig()
    scoring: ScoringConfig = ScoringConfig()


class DemoConfig(Strict):
    """``retain demo``: a synthetic world, then train and score on it."""

    synth: SynthConfig = SynthConfig()
    workdir: Path = Path("demo")
    features: FeatureConfig = FeatureConfig()
    text: TextModelConfig = TextModelConfig()
    churn: ChurnModelConfig = ChurnModelConfig()
    tracking: TrackingConfig = TrackingConfig()
    scoring: ScoringConfig = ScoringConfig(output_dir=Path("demo/outputs"))


class ConfigError(ValueError):
    """A config file is missing, unreadable or invalid; the message names the file and the key."""


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
        raise ConfigError(f"config file not found: {path}") from None
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


class Theme(Strict):
    id: str
    name: str
    description: str
    churn_relevant: bool = False


class Taxonomy(Strict):
    """The theme taxonomy (``configs/themes.yaml``)."""

    themes: tuple[Theme, ...]

    @property
    def ids(self) -> list[str]:
        return [t.id for t in self.themes]


class PlaybookRule(Strict):
    signal: str = Field(description="The reason signal that triggers this action (see retain.churn.reasons).")
    action: str
    min_tier: str | None = Field(default=None, description="Only for customers in this tier or higher.")


class Playbook(Strict):
    """Recommended actions per reason signal (``configs/playbook.yaml``)."""

    default_action: str
    rules: tuple[PlaybookRule, ...] = ()
