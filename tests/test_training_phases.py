"""The training phases of ``retain.training``, fast: dates on hand-built worlds, then one run of
``train`` on a small synthetic world with small model settings."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from retain.churn.features import churn_labels, churn_population, feature_columns
from retain.config import ChurnModelConfig, FeatureConfig, TextModelConfig
from retain.contracts import World
from retain.synth import THEMES, generate_world
from retain.training import (
    ChurnModels,
    TrainingDates,
    TrainingError,
    build_training_table,
    choose_training_dates,
    train,
    train_churn_models,
)

DAY = pd.Timedelta(days=1)


def _world_spanning(first: str, last: str) -> World:
    """One customer with an event at ``first`` and one at ``last`` (no tickets, no feedback)."""
    return World(
        customers=pd.DataFrame(
            {
                "customer_id": ["C1"],
                "signup_at": [pd.Timestamp(first)],
                "monthly_value": [10.0],
                "churned_at": pd.to_datetime([pd.NaT]),
            }
        ),
        events=pd.DataFrame(
            {
                "customer_id": ["C1", "C1"],
                "occurred_at": [pd.Timestamp(first), pd.Timestamp(last)],
                "event_type": ["login", "login"],
            }
        ),
        tickets=pd.DataFrame(
            {
                "customer_id": pd.Series(dtype=object),
                "opened_at": pd.Series(dtype="datetime64[ns]"),
                "first_response_at": pd.Series(dtype="datetime64[ns]"),
                "resolved_at": pd.Series(dtype="datetime64[ns]"),
            }
        ),
        feedback=pd.DataFrame(
            {
                "feedback_id": pd.Series(dtype=object),
                "customer_id": pd.Series(dtype=object),
                "created_at": pd.Series(dtype="datetime64[ns]"),
                "text": pd.Series(dtype=object),
            }
        ),
    )


# --- choose_training_dates -------------------------------------------------------------------


def test_dates_on_two_years_of_data() -> None:
    """Data 2024-01-01 .. 2025-12-31 15:00, horizon 90 days, 12 dates 30 days apart:
    evaluation 2025-12-31 - 90 d = 2025-10-02; last training date 2025-10-02 - 90 d = 2025-07-04;
    first 2025-07-04 - 11 * 30 d = 2024-08-08 (after the 90 days of history, 2024-03-31)."""
    world = _world_spanning("2024-01-01 10:00", "2025-12-31 15:00")
    dates = choose_training_dates(
        world, FeatureConfig(horizon_days=90), ChurnModelConfig(train_every_days=30, train_periods=12)
    )
    assert dates.test == pd.Timestamp("2025-10-02")
    assert dates.horizon_days == 90
    assert len(dates.train) == 12
    assert dates.train[0] == pd.Timestamp("2024-08-08")
    assert dates.train[-1] == pd.Timestamp("2025-07-04")
    assert list(dates.train) == sorted(dates.train)
    assert set(np.diff(np.array(dates.train, dtype="datetime64[D]")).astype(int)) == {30}


@pytest.mark.parametrize("horizon", [30, 90])
@pytest.mark.parametrize("last", ["2025-12-31 00:00", "2025-12-31 23:59", "2025-11-17 06:00"])
def test_every_training_label_window_closes_by_the_evaluation_date(horizon: int, last: str) -> None:
    world = _world_spanning("2024-01-01", last)
    end = pd.Timestamp(last).normalize()
    dates = choose_training_dates(
        world,
        FeatureConfig(horizon_days=horizon),
        ChurnModelConfig(train_every_days=7, train_periods=20),
    )
    h = pd.Timedelta(days=horizon)
    for as_of in dates.train:
        assert as_of + h <= dates.test, f"training labels at {as_of.date()} peek past evaluation"
    # the evaluation window is the last one the data fully observe
    assert dates.test + h == end
    # and the last training window closes exactly at the evaluation date (none is wasted)
    assert dates.train[-1] + h == dates.test


def test_an_explicit_evaluation_date_must_have_its_labels_observed() -> None:
    world = _world_spanning("2024-01-01", "2025-12-31 12:00")
    features = FeatureConfig(horizon_days=90)
    last_observed = pd.Timestamp("2025-12-31") - 90 * DAY  # 2025-10-02
    ok = choose_training_dates(
        world, features, ChurnModelConfig(test_as_of=last_observed.date(), train_periods=3)
    )
    assert ok.test == last_observed
    assert ok.train[-1] == last_observed - 90 * DAY
    with pytest.raises(TrainingError, match="not observed yet"):
        choose_training_dates(
            world, features, ChurnModelConfig(test_as_of=(last_observed + DAY).date())
        )


def test_too_little_history_is_an_error_that_says_why() -> None:
    """90 days of history plus two 90-day label windows = 270 days; one day less is too short."""
    features = FeatureConfig(horizon_days=90)
    churn = ChurnModelConfig(train_periods=12)
    just_enough = _world_spanning("2024-01-01", str((pd.Timestamp("2024-01-01") + 270 * DAY).date()))
    dates = choose_training_dates(just_enough, features, churn)
    assert dates.train == (pd.Timestamp("2024-03-31"),)
    assert dates.test == pd.Timestamp("2024-06-29")

    short = _world_spanning("2024-01-01", str((pd.Timestamp("2024-01-01") + 269 * DAY).date()))
    with pytest.raises(TrainingError, match="not enough history"):
        choose_training_dates(short, features, churn)


# --- the churn phases on a small world --------------------------------------------------------

SMALL_TEXT = TextModelConfig(char_ngrams=False, min_df=1, max_features=2000, oof_folds=2)
SMALL_CHURN = ChurnModelConfig(
    n_estimators=20, min_child_samples=5, n_jobs=1, train_periods=3, train_every_days=60
)


@dataclass(frozen=True)
class Phases:
    world: World
    dates: TrainingDates
    table: pd.DataFrame
    churn: ChurnModels


@pytest.fixture(scope="module")
def small_world() -> World:
    return generate_world(300, seed=2, start="2024-01-01", end="2025-06-30")


@pytest.fixture(scope="module")
def phases(small_world: World) -> Phases:
    """The churn phases without text features (the text phase has its own, slower test)."""
    dates = choose_training_dates(small_world, FeatureConfig(), SMALL_CHURN)
    table = build_training_table(small_world, dates, None, [], FeatureConfig())
    return Phases(small_world, dates, table, train_churn_models(table, dates, SMALL_CHURN))


def test_training_table_holds_each_date_population_once(phases: Phases) -> None:
    customers = phases.world.customers
    assert sorted(phases.table["as_of"].unique()) == [*phases.dates.train, phases.dates.test]
    for as_of, rows in phases.table.groupby("as_of"):
        population = churn_population(customers, as_of)["customer_id"]
        assert sorted(rows["customer_id"]) == sorted(population), as_of
        labels = churn_labels(customers, as_of, phases.dates.horizon_days)
        np.testing.assert_array_equal(
            rows["churned"].to_numpy(), labels.loc[rows["customer_id"]].to_numpy()
        )


def test_evaluation_rows_are_exactly_the_evaluation_population(phases: Phases) -> None:
    dates, predictions = phases.dates, phases.churn.test_predictions
    population = churn_population(phases.world.customers, dates.test)["customer_id"]
    assert predictions["customer_id"].is_unique
    assert sorted(predictions["customer_id"]) == sorted(population)
    labels = churn_labels(phases.world.customers, dates.test, dates.horizon_days)
    np.testing.assert_array_equal(
        predictions["churned"].to_numpy(), labels.loc[predictions["customer_id"]].to_numpy()
    )
    assert 0 < predictions["churned"].sum() < len(predictions)
    assert phases.churn.metrics["n"] == len(population)


def test_training_rows_are_the_training_dates_populations(phases: Phases) -> None:
    customers = phases.world.customers
    n_train = sum(len(churn_population(customers, d)) for d in phases.dates.train)
    assert phases.churn.n_train == n_train
    assert phases.churn.n_train + len(phases.churn.test_predictions) == len(phases.table)


def test_churn_outputs_have_the_expected_shapes(phases: Phases) -> None:
    churn = phases.churn
    predictions = churn.test_predictions
    assert list(predictions.columns) == [
        "customer_id", "churned", "churn_probability", "baseline_probability",
    ]
    evaluation_rows = phases.table.loc[phases.table["as_of"] == phases.dates.test]
    np.testing.assert_allclose(
        predictions["churn_probability"],
        churn.model.predict_proba(evaluation_rows[churn.feature_columns])[:, 1],
    )
    assert predictions["baseline_probability"].between(0, 1).all()
    assert churn.feature_columns == feature_columns(phases.table)
    assert list(churn.model.feature_names_in_) == churn.feature_columns
    assert not {"customer_id", "as_of", "churned"} & set(churn.feature_columns)
    assert 0.0 <= churn.metrics["roc_auc"] <= 1.0
    assert set(churn.baseline_metrics) == set(churn.metrics)


def test_one_class_in_the_labels_is_a_training_error(phases: Phases) -> None:
    no_churners = phases.table.assign(churned=0)
    with pytest.raises(TrainingError, match="both churners and non-churners"):
        train_churn_models(no_churners, phases.dates, SMALL_CHURN)


# --- train, end to end (the text phase fits several models: seconds, so marked slow) ----------


@pytest.mark.slow
def test_train_runs_the_phases_end_to_end(small_world: World, phases: Phases) -> None:
    result = train(small_world, list(THEMES), FeatureConfig(), SMALL_TEXT, SMALL_CHURN)
    assert result.dates == phases.dates
    predictions = result.churn.test_predictions
    population = churn_population(small_world.customers, result.dates.test)["customer_id"]
    assert sorted(predictions["customer_id"]) == sorted(population)
    assert result.churn.n_train == phases.churn.n_train
    assert any(c.startswith("negative_feedback_") for c in result.churn.feature_columns)
    assert predictions["churn_probability"].between(0, 1).all()

    text = result.text
    assert text.theme_ids == list(THEMES)
    # every feedback row gets text scores, once
    assert sorted(text.feedback_scores["feedback_id"]) == sorted(small_world.feedback["feedback_id"])
    assert len(result.evaluation_id) == 16
