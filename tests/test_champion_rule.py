"""The champion rule of ``retain.tracking.promote_if_better``, at its edges, against a real
MLflow SQLite store in a temporary directory.

"Better" means strictly better: a candidate that only ties its baseline or the champion it is
compared with is not promoted (a tie is no evidence, and moving the alias on ties would churn the
production model for nothing). A champion evaluated on other data is not compared.

One store per module (creating its schema takes seconds). The rule only reads and writes the
registry, so versions are created straight from a placeholder source rather than from a logged
model (which would add seconds and test nothing here); each test uses its own model name.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from retain.config import TrackingConfig
from retain.tracking import (
    PromotionDecision,
    champion_version,
    model_version_tags,
    promote_if_better,
)


@pytest.fixture(scope="module")
def tracking(tmp_path_factory: pytest.TempPathFactory) -> TrackingConfig:
    store = tmp_path_factory.mktemp("champion-rule")
    return TrackingConfig(tracking_uri=f"sqlite:///{store / 'mlflow.db'}", experiment="champion")


@pytest.fixture(scope="module")
def client(tracking: TrackingConfig) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking.tracking_uri)


Promote = Callable[..., tuple[str, PromotionDecision]]


@pytest.fixture
def promote(
    tracking: TrackingConfig, client: Any, request: pytest.FixtureRequest, tmp_path: Path
) -> Promote:
    """Register a new version under this test's model name and try to promote it."""
    name = request.node.name.replace("[", "-").replace("]", "")
    client.create_registered_model(name)

    def register_and_promote(
        value: float,
        baseline: float,
        evaluation_id: str = "eval-A",
        metric: str = "roc_auc",
        higher_is_better: bool = True,
    ) -> tuple[str, PromotionDecision]:
        version = str(client.create_model_version(name, source=tmp_path.as_uri()).version)
        decision = promote_if_better(
            tracking,
            name,
            version,
            metric,
            value,
            baseline,
            higher_is_better,
            evaluation_id=evaluation_id,
        )
        return version, decision

    register_and_promote.model_name = name  # type: ignore[attr-defined]
    return register_and_promote


def _champion(tracking: TrackingConfig, promote: Promote) -> str | None:
    return champion_version(tracking, promote.model_name)  # type: ignore[attr-defined]


def test_a_tie_with_the_baseline_is_not_promoted(tracking: TrackingConfig, promote: Promote) -> None:
    version, tie = promote(0.70, 0.70)
    assert not tie.promoted
    assert "does not beat the baseline" in tie.reason
    assert _champion(tracking, promote) is None
    tags = model_version_tags(tracking, promote.model_name, version)  # type: ignore[attr-defined]
    assert tags["promotion.promoted"] == "false"

    _, better = promote(0.7001, 0.70)
    assert better.promoted and better.previous_champion is None


def test_a_tie_with_the_champion_is_not_promoted(tracking: TrackingConfig, promote: Promote) -> None:
    first, decision = promote(0.80, 0.70)
    assert decision.promoted
    assert _champion(tracking, promote) == first

    _, tie = promote(0.80, 0.70)
    assert not tie.promoted
    assert tie.previous_champion == first
    assert f"does not beat champion version {first}" in tie.reason
    assert _champion(tracking, promote) == first

    better, decision = promote(0.8001, 0.70)
    assert decision.promoted and decision.previous_champion == first
    assert _champion(tracking, promote) == better


def test_lower_is_better_ties_are_not_promoted(tracking: TrackingConfig, promote: Promote) -> None:
    def loss(value: float, baseline: float) -> tuple[str, PromotionDecision]:
        return promote(value, baseline, metric="brier", higher_is_better=False)

    _, tie_with_baseline = loss(0.20, 0.20)
    assert not tie_with_baseline.promoted
    _, worse_than_baseline = loss(0.21, 0.20)
    assert not worse_than_baseline.promoted
    first, decision = loss(0.15, 0.20)
    assert decision.promoted
    _, tie_with_champion = loss(0.15, 0.20)
    assert not tie_with_champion.promoted
    _, higher = loss(0.16, 0.20)
    assert not higher.promoted
    assert _champion(tracking, promote) == first
    lower, decision = loss(0.14, 0.20)
    assert decision.promoted and _champion(tracking, promote) == lower


def test_a_champion_evaluated_on_other_data_is_not_compared(
    tracking: TrackingConfig, promote: Promote
) -> None:
    old, decision = promote(0.90, 0.70, evaluation_id="eval-A")
    assert decision.promoted

    # worse than the champion's figure, but on other data: the figures are not comparable
    new, decision = promote(0.75, 0.70, evaluation_id="eval-B")
    assert decision.promoted and decision.previous_champion == old
    assert "evaluated on different data" in decision.reason
    assert _champion(tracking, promote) == new

    # the baseline on the same data still has to be beaten, whatever the champion
    _, tie = promote(0.70, 0.70, evaluation_id="eval-C")
    assert not tie.promoted
    assert _champion(tracking, promote) == new

    # back on eval-B, the new champion's figure is compared again, ties included
    _, tie = promote(0.75, 0.70, evaluation_id="eval-B")
    assert not tie.promoted
    assert _champion(tracking, promote) == new


def test_a_champion_without_the_metric_is_not_compared(
    tracking: TrackingConfig, promote: Promote
) -> None:
    _, decision = promote(0.90, 0.70, metric="roc_auc")
    assert decision.promoted
    new, decision = promote(0.30, 0.20, metric="pr_auc")
    assert decision.promoted
    assert "has no recorded pr_auc" in decision.reason
    assert _champion(tracking, promote) == new


def test_not_finite_figures_never_promote(tracking: TrackingConfig, promote: Promote) -> None:
    _, nan_value = promote(float("nan"), 0.70)
    _, nan_baseline = promote(0.80, float("nan"))
    _, infinite = promote(float("inf"), 0.70)
    assert not (nan_value.promoted or nan_baseline.promoted or infinite.promoted)
    assert _champion(tracking, promote) is None
