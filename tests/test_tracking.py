"""retain.tracking against a real MLflow SQLite store in a temporary directory (no mocks).

One store is shared (creating the SQLite schema takes seconds); every test that touches the
registry uses its own registered model name, so tests stay independent of each other's order.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline

from retain.churn.model import ChurnClassifier
from retain.config import FeatureConfig, ScoringConfig, TrackingConfig
from retain.tracking import (
    NoChampionError,
    PromotionDecision,
    TrackedRun,
    champion_version,
    flatten_params,
    load_champion,
    model_version_tags,
    pinned_requirements,
    promote_if_better,
    register_model,
    tag_text_models,
    text_models_used,
    tracked_run,
)

matplotlib.use("Agg")
import matplotlib.pyplot as plt

TEXTS = [
    "love the new dashboard",
    "billing charged me twice, awful",
    "great support, quick answer",
    "terrible app, keeps crashing",
    "really happy with the service",
    "refund never arrived, angry",
] * 3
SENTIMENT = ["positive", "negative", "positive", "negative", "positive", "negative"] * 3


class SegmentRateClassifier(ClassifierMixin, BaseEstimator):
    """Churn rate per value of one category column: a class outside retain's trusted types.

    retain stores models with skops and trusts only the types it lists, so logging this one is
    refused (it would be stored, but not loaded back without trusting it).
    """

    def __init__(self, column: str = "segment", prior: float = 0.5) -> None:
        self.column = column
        self.prior = prior

    def fit(self, X: pd.DataFrame, y: Any) -> SegmentRateClassifier:
        y = np.asarray(y)
        self.classes_ = np.array([0, 1])
        groups = pd.Series(y, index=X.index).groupby(X[self.column], observed=True)
        self.rates_ = groups.mean().to_dict()
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        churn = X[self.column].map(self.rates_).astype(float).fillna(self.prior).to_numpy()
        return np.column_stack([1 - churn, churn])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)

    def segment_rates(self) -> dict[str, float]:
        """A custom method, to show the loaded object is the class itself, not a pyfunc."""
        return dict(self.rates_)


@dataclass(frozen=True)
class LoggedRun:
    run: TrackedRun
    sentiment: Pipeline
    sentiment_uri: str
    churn: ChurnClassifier
    churn_uri: str
    churn_frame: pd.DataFrame
    figure: Any


@pytest.fixture(scope="session")
def tracking(tmp_path_factory: pytest.TempPathFactory) -> TrackingConfig:
    """One SQLite store and experiment, inside a temporary directory.

    Session-scoped (ready to move to conftest.py and share): creating the schema takes seconds,
    and tests that use the registry pick their own registered model names.
    """
    store = tmp_path_factory.mktemp("mlflow")
    return TrackingConfig(tracking_uri=f"sqlite:///{store / 'mlflow.db'}", experiment="retain-test")


@pytest.fixture(scope="module")
def churn_frame() -> pd.DataFrame:
    segments = ["smb", "mid", "enterprise"]
    return pd.DataFrame(
        {
            "segment": pd.Categorical(
                ["smb", "mid", "enterprise", "smb", "smb", "mid"], categories=segments
            ),
            "logins_30d": [1.0, 12.0, 30.0, 0.0, 2.0, 8.0],
        }
    )


@pytest.fixture(scope="module")
def logged(tracking: TrackingConfig, churn_frame: pd.DataFrame) -> LoggedRun:
    """A run with parameters, metrics, a figure, a table and two models."""
    sentiment = make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(TEXTS, SENTIMENT)
    churn = ChurnClassifier(n_estimators=10, min_child_samples=1).fit(churn_frame, [1, 0, 0, 1, 1, 0])
    figure, axes = plt.subplots()
    axes.plot([0, 1], [0, 1])
    with tracked_run(tracking, "unit", tags={"purpose": "test"}) as run:
        run.log_params({"text": {"C": 4.0, "ngram_max": 2}, "seed": 0})
        run.log_params(FeatureConfig(), prefix="features")
        run.log_metrics({"roc_auc": np.float64(0.75), "brier": 0.18})
        run.log_figures({"calibration": figure})
        run.log_frame(churn_frame, "sample")
        run.log_frame(churn_frame, "sample", fmt="csv")
        tag_text_models(run, {tracking.sentiment_model: "3", tracking.theme_model: 2})
        sentiment_uri = run.log_model(sentiment, "sentiment", input_example=TEXTS[:3])
        churn_uri = run.log_model(churn, "churn", input_example=churn_frame.head(3))
    return LoggedRun(run, sentiment, sentiment_uri, churn, churn_uri, churn_frame, figure)


def _run_data(tracking: TrackingConfig, run_id: str) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking.tracking_uri).get_run(run_id)


def _artifacts(tracking: TrackingConfig, run_id: str, path: str) -> list[str]:
    from mlflow import MlflowClient

    return [a.path for a in MlflowClient(tracking.tracking_uri).list_artifacts(run_id, path)]


# --- runs -----------------------------------------------------------------------------------


def test_run_records_params_metrics_and_tags(tracking: TrackingConfig, logged: LoggedRun) -> None:
    run = _run_data(tracking, logged.run.run_id)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "unit"
    assert run.data.params["text.C"] == "4.0"
    assert run.data.params["text.ngram_max"] == "2"
    assert run.data.params["features.windows_days"] == "[30, 90]"
    assert run.data.params["features.horizon_days"] == "90"
    assert run.data.metrics == {"roc_auc": 0.75, "brier": 0.18}
    assert run.data.tags["purpose"] == "test"
    assert "retain.version" in run.data.tags


def test_artifacts_stay_in_the_store_directory(tracking: TrackingConfig, logged: LoggedRun) -> None:
    store_dir = Path(tracking.tracking_uri.removeprefix("sqlite:///")).parent
    artifact_uri = _run_data(tracking, logged.run.run_id).info.artifact_uri
    assert artifact_uri.startswith((store_dir / "mlartifacts").as_uri())
    assert _artifacts(tracking, logged.run.run_id, "plots") == ["plots/calibration.png"]
    assert sorted(_artifacts(tracking, logged.run.run_id, "tables")) == [
        "tables/sample.csv",
        "tables/sample.parquet",
    ]


def test_figures_are_closed_after_logging(logged: LoggedRun) -> None:
    assert not plt.fignum_exists(logged.figure.number)


def test_nan_metrics_are_skipped_with_a_warning(
    tracking: TrackingConfig, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.WARNING, logger="retain.tracking"),
        tracked_run(tracking, "nan") as run,
    ):
        run.log_metrics({"lift_at_10": float("nan"), "recall": 0.5, "ratio": np.inf})
    assert _run_data(tracking, run.run_id).data.metrics == {"recall": 0.5}
    assert "lift_at_10=nan" in caplog.text and "ratio=inf" in caplog.text


def test_names_mlflow_refuses_are_logged_with_underscores(tracking: TrackingConfig) -> None:
    """A theme id such as banking77's ``reverted_card_payment?`` reaches metric and tag names."""
    with tracked_run(tracking, "odd-names") as run:
        run.log_metrics({"themes_f1_reverted_card_payment?": 0.5, "themes_f1_a/b": 0.25})
        run.log_params({"theme?": "x"})
        run.set_tags({"validation.f1_why?": "0.5"})
    data = _run_data(tracking, run.run_id).data
    assert data.metrics == {"themes_f1_reverted_card_payment_": 0.5, "themes_f1_a/b": 0.25}
    assert data.params == {"theme_": "x"}
    assert data.tags["validation.f1_why_"] == "0.5"


def test_html_report_is_logged_as_a_readable_artifact(tracking: TrackingConfig) -> None:
    from mlflow import MlflowClient

    page = "<!DOCTYPE html><html><body><h1>Text model evaluation</h1></body></html>"
    with tracked_run(tracking, "report") as run:
        path = run.log_html(page, "text_report")
    assert path == "reports/text_report.html"
    assert _artifacts(tracking, run.run_id, "reports") == [path]
    local = MlflowClient(tracking.tracking_uri).download_artifacts(run.run_id, path)
    assert Path(local).read_text(encoding="utf-8") == page


def test_failed_block_marks_the_run_failed(tracking: TrackingConfig) -> None:
    with pytest.raises(KeyError), tracked_run(tracking, "boom") as run:
        raise KeyError("a bug inside the training block")
    assert _run_data(tracking, run.run_id).info.status == "FAILED"


def test_log_model_outside_its_run_is_an_error(tracking: TrackingConfig, logged: LoggedRun) -> None:
    with pytest.raises(RuntimeError, match="inside its tracked_run block"):
        logged.run.log_model(logged.sentiment, "late")


def test_text_models_used_are_read_back(tracking: TrackingConfig, logged: LoggedRun) -> None:
    version = register_model(tracking, logged.churn_uri, "text-models-used")
    assert text_models_used(tracking, "text-models-used", version) == {
        tracking.sentiment_model: "3",
        tracking.theme_model: "2",
    }


# --- models ---------------------------------------------------------------------------------


def test_text_pipeline_loads_back_and_predicts_the_same(
    tracking: TrackingConfig, logged: LoggedRun
) -> None:
    import mlflow.sklearn

    loaded = mlflow.sklearn.load_model(logged.sentiment_uri)
    assert isinstance(loaded, Pipeline)
    np.testing.assert_array_equal(loaded.predict(TEXTS), logged.sentiment.predict(TEXTS))
    np.testing.assert_allclose(loaded.predict_proba(TEXTS), logged.sentiment.predict_proba(TEXTS))
    signature = mlflow.models.get_model_info(logged.sentiment_uri).signature
    assert signature is not None and signature.inputs.input_types()[0].name == "string"


def test_custom_estimator_with_category_columns_loads_back(
    tracking: TrackingConfig, logged: LoggedRun
) -> None:
    import mlflow.sklearn

    loaded = mlflow.sklearn.load_model(logged.churn_uri)
    assert type(loaded) is ChurnClassifier
    pd.testing.assert_frame_equal(  # a method of retain's class, not a pyfunc's predict
        loaded.feature_attributions(logged.churn_frame),
        logged.churn.feature_attributions(logged.churn_frame),
    )
    np.testing.assert_allclose(
        loaded.predict_proba(logged.churn_frame), logged.churn.predict_proba(logged.churn_frame)
    )
    # MLflow cannot validate category columns against its schema: logged without a signature.
    assert mlflow.models.get_model_info(logged.churn_uri).signature is None


def test_a_class_outside_the_trusted_types_is_refused_not_pickled(
    tracking: TrackingConfig, churn_frame: pd.DataFrame
) -> None:
    model = SegmentRateClassifier().fit(churn_frame, [1, 0, 0, 1, 1, 0])
    with (
        tracked_run(tracking, "untrusted") as run,
        pytest.raises(TypeError, match=r"test_tracking\.SegmentRateClassifier"),
    ):
        run.log_model(model, "segment_rates")


def test_pinned_requirements() -> None:
    pinned = pinned_requirements("scikit-learn", "pandas", "lightgbm>=4", "scikit-learn")
    assert pinned[0].startswith("scikit-learn==") and pinned[1].startswith("pandas==")
    assert pinned[2] == "lightgbm>=4"
    assert len(pinned) == 3


# --- registry and champion ------------------------------------------------------------------


def test_registry_versions_increment(tracking: TrackingConfig, logged: LoggedRun) -> None:
    versions = [register_model(tracking, logged.sentiment_uri, "increment") for _ in range(3)]
    assert versions == ["1", "2", "3"]


def test_promotion_rules(tracking: TrackingConfig, logged: LoggedRun) -> None:
    name = "promotion"

    def register() -> str:
        return register_model(tracking, logged.churn_uri, name)

    def promote(version: str, value: float, baseline: float = 0.70) -> PromotionDecision:
        return promote_if_better(
            tracking, name, version, "roc_auc", value, baseline, evaluation_id="eval-A"
        )

    worse_than_baseline = promote(register(), 0.65)
    assert worse_than_baseline == PromotionDecision(
        False, "roc_auc 0.65 does not beat the baseline 0.7", None
    )
    assert champion_version(tracking, name) is None

    first = register()
    better = promote(first, 0.80)
    assert better.promoted and better.previous_champion is None
    assert champion_version(tracking, name) == first

    worse_than_champion = promote(register(), 0.78)
    assert not worse_than_champion.promoted
    assert worse_than_champion.previous_champion == first
    assert "does not beat champion version 2 (0.8)" in worse_than_champion.reason
    assert champion_version(tracking, name) == first

    second = register()
    best = promote(second, 0.83)
    assert best.promoted and best.previous_champion == first
    assert champion_version(tracking, name) == second

    tags = model_version_tags(tracking, name, second)
    assert tags["metric.roc_auc"] == "0.83"
    assert tags["baseline.roc_auc"] == "0.7"
    assert tags["evaluation_id"] == "eval-A"
    assert tags["promotion.promoted"] == "true"
    assert tags["promotion.reason"] == best.reason
    assert tags["promotion.previous_champion"] == first
    assert model_version_tags(tracking, name, "3")["promotion.promoted"] == "false"


def test_champion_on_other_data_does_not_block(tracking: TrackingConfig, logged: LoggedRun) -> None:
    name = "other-data"
    old = register_model(tracking, logged.churn_uri, name)
    assert promote_if_better(
        tracking, name, old, "roc_auc", 0.90, 0.7, evaluation_id="old"
    ).promoted
    new = register_model(tracking, logged.churn_uri, name)
    decision = promote_if_better(tracking, name, new, "roc_auc", 0.75, 0.7, evaluation_id="new")
    assert decision.promoted and decision.previous_champion == old
    assert "evaluated on different data" in decision.reason
    assert champion_version(tracking, name) == new


def test_lower_is_better_and_nan(tracking: TrackingConfig, logged: LoggedRun) -> None:
    name = "loss"
    version = register_model(tracking, logged.churn_uri, name)
    nan = promote_if_better(
        tracking, name, version, "brier", float("nan"), 0.2, False, evaluation_id="e"
    )
    assert not nan.promoted and "not a number" in nan.reason
    lower = promote_if_better(tracking, name, version, "brier", 0.15, 0.2, False, evaluation_id="e")
    assert lower.promoted
    again = promote_if_better(tracking, name, version, "brier", 0.15, 0.2, False, evaluation_id="e")
    assert not again.promoted and "already the champion" in again.reason


def test_load_champion_returns_the_native_model(
    tracking: TrackingConfig, logged: LoggedRun, tmp_path: Path
) -> None:
    import mlflow

    name = "load"
    version = register_model(tracking, logged.churn_uri, name)
    promote_if_better(tracking, name, version, "roc_auc", 0.8, 0.7, evaluation_id="e")
    # Scoring starts no run: load_champion must not rely on a URI set earlier in the process.
    mlflow.set_tracking_uri(Path(tmp_path, "elsewhere").as_uri())
    model, loaded_version = load_champion(tracking, name)
    assert loaded_version == version
    assert type(model) is ChurnClassifier
    np.testing.assert_allclose(
        model.predict_proba(logged.churn_frame), logged.churn.predict_proba(logged.churn_frame)
    )


def test_load_champion_without_one_says_what_to_do(
    tracking: TrackingConfig, logged: LoggedRun
) -> None:
    with pytest.raises(NoChampionError, match="run `retain train` first"):
        load_champion(tracking, "never-registered")
    register_model(tracking, logged.churn_uri, "no-champion")
    with pytest.raises(NoChampionError, match="no-champion"):
        load_champion(tracking, "no-champion")


# --- pure helpers and import hygiene ---------------------------------------------------------


def test_flatten_params_nested_dicts_and_models() -> None:
    flat = flatten_params({"churn": {"lr": 0.05, "path": Path("a/b")}, "tags": ["x", "y"]})
    assert flat == {"churn.lr": "0.05", "churn.path": "a/b", "tags": '["x", "y"]'}
    scoring = flatten_params(ScoringConfig(), prefix="scoring")
    assert scoring["scoring.tiers.0.name"] == "high"
    assert scoring["scoring.tiers.2.min_probability"] == "0.0"
    assert scoring["scoring.output_dir"] == "outputs"


def test_import_does_not_import_mlflow() -> None:
    code = "import sys, retain.tracking; sys.exit('mlflow' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


@pytest.fixture(autouse=True)
def _no_open_figures() -> Iterator[None]:
    yield
    plt.close("all")
