"""The training phases of ``retain.training``, fast: evaluation plans on hand-built worlds, the
settings split, then one run of ``train`` on a small synthetic world and one of ``train_flat`` on
a small synthetic flat table, with small model settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest

from retain.churn.features import feature_columns
from retain.churn.labels import labels, population
from retain.churn.selection import SelectionResult
from retain.config import ChurnModelConfig, FeatureConfig, LabelConfig, TextModelConfig
from retain.contracts import World
from retain.data import FlatTable
from retain.synth import THEMES, generate_world
from retain.training import (
    EvaluationPlan,
    TrainingError,
    TrainingResult,
    dated_splits,
    flat_splits,
    plan_evaluation,
    train,
    train_churn,
    train_flat,
)

DAY = pd.Timedelta(days=1)


def _world_spanning(first: str, last: str) -> World:
    """One customer with an event at ``first`` and one at ``last`` (no tickets, no feedback)."""
    return World(
        customers=pd.DataFrame(
            {
                "customer_id": ["C1"],
                "signup_at": [pd.Timestamp(first)],
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
    )


def _one_row_per_date(plan: EvaluationPlan) -> pd.DataFrame:
    """A stand-in training table: two customers at every labelled date."""
    return pd.DataFrame(
        {
            "customer_id": [c for _ in plan.labelled for c in ("C1", "C2")],
            "as_of": [d for d in plan.labelled for _ in ("C1", "C2")],
        }
    )


def _check_backtest(plan: EvaluationPlan, end: pd.Timestamp) -> None:
    """Every evaluation date is predicted by a model fitted on dates whose windows closed by it."""
    h = pd.Timedelta(days=plan.horizon_days)
    assert plan.backtest
    assert list(plan.labelled) == sorted(set(plan.labelled))
    assert set(plan.evaluation) <= set(plan.labelled)
    table = _one_row_per_date(plan)
    splits = dated_splits(table, plan, folds=5)
    assert [s.name for s in splits] == [str(d.date()) for d in plan.evaluation]
    for split, as_of in zip(splits, plan.evaluation, strict=True):
        fitted = table.loc[split.fit, "as_of"]
        assert len(fitted), f"nothing to fit for {as_of.date()}"
        assert fitted.max() + h <= as_of, f"labels fitted for {as_of.date()} peek past it"
        assert (table.loc[split.evaluate, "as_of"] == as_of).all()
        assert split.evaluate.sum() == 2
        assert not (split.fit & split.evaluate).any()
    # the last evaluation window is the last one the data observe
    assert plan.evaluation[-1] + h == end
    assert plan.labelled[-1] == plan.evaluation[-1]


# --- plan_evaluation ---------------------------------------------------------------------------


def test_plan_on_two_years_of_data() -> None:
    """Data 2024-01-01 .. 2025-12-31 15:00, horizon 90 days, dates 30 days apart, 3 backtest dates.

    Last labelled date 2025-12-31 - 90 d = 2025-10-02; evaluation 2025-08-03, 2025-09-02,
    2025-10-02; validation 2025-08-03 - 90 d = 2025-05-05 (fitted on dates up to 2025-02-04).
    Going back 30 days at a time, the first date on or after 2024-03-31 (90 days of history)
    is 2025-10-02 - 18 * 30 d = 2024-04-10: 19 labelled dates.
    """
    world = _world_spanning("2024-01-01 10:00", "2025-12-31 15:00")
    plan = plan_evaluation(
        world,
        FeatureConfig(horizon_days=90),
        ChurnModelConfig(train_every_days=30, train_periods=12, backtest_dates=3),
    )
    assert plan.backtest
    assert plan.horizon_days == 90
    assert plan.evaluation == tuple(pd.to_datetime(["2025-08-03", "2025-09-02", "2025-10-02"]))
    assert plan.validation == pd.Timestamp("2025-05-05")
    assert plan.labelled[0] == pd.Timestamp("2024-04-10")
    assert plan.last_labelled == pd.Timestamp("2025-10-02")
    assert len(plan.labelled) == 19
    assert set(np.diff(np.array(plan.labelled, dtype="datetime64[D]")).astype(int)) == {30}
    assert "backtest on 3 date(s) 2025-08-03, 2025-09-02, 2025-10-02" in plan.description
    _check_backtest(plan, pd.Timestamp("2025-12-31"))


@pytest.mark.parametrize(("horizon", "step"), [(30, 7), (90, 30), (90, 7), (180, 14)])
@pytest.mark.parametrize("last", ["2025-12-31 00:00", "2025-12-31 23:59", "2025-11-17 06:00"])
@pytest.mark.parametrize("backtest_dates", [1, 3])
def test_every_evaluation_date_is_predicted_from_closed_label_windows(
    horizon: int, step: int, last: str, backtest_dates: int
) -> None:
    world = _world_spanning("2024-01-01", last)
    plan = plan_evaluation(
        world,
        FeatureConfig(horizon_days=horizon),
        ChurnModelConfig(train_every_days=step, train_periods=10, backtest_dates=backtest_dates),
    )
    assert len(plan.evaluation) == backtest_dates
    assert plan.evaluation == plan.labelled[-backtest_dates:]
    _check_backtest(plan, pd.Timestamp(last).normalize())


def _check_validation(plan: EvaluationPlan) -> None:
    h = pd.Timedelta(days=plan.horizon_days)
    assert plan.validation is not None
    assert plan.validation in plan.labelled
    # its own label window closes by the first evaluation date...
    assert plan.validation + h <= plan.evaluation[0]
    # ...and it has dates to fit on whose windows closed by it
    assert any(d + h <= plan.validation for d in plan.labelled)


@pytest.mark.parametrize(("horizon", "step"), [(90, 30), (60, 30), (28, 7), (14, 7)])
def test_settings_are_chosen_before_the_first_evaluation_date(horizon: int, step: int) -> None:
    world = _world_spanning("2024-01-01", "2025-12-31")
    plan = plan_evaluation(
        world, FeatureConfig(horizon_days=horizon), ChurnModelConfig(train_every_days=step, train_periods=10)
    )
    _check_validation(plan)


NO_VALIDATION_BUG = (
    "plan_evaluation puts the validation date at evaluation[0] - horizon and drops it when that "
    "is not a labelled date (horizon not a multiple of train_every_days, e.g. CDNOW's 180/14) or "
    "has nothing before it, and the grouped-fold fallback has none; train_churn then chooses "
    "settings and runs the audit once on every labelled row, the evaluation rows included"
)


@pytest.mark.parametrize(("horizon", "step"), [(30, 7), (90, 7), (180, 14)])
def test_settings_are_chosen_before_the_first_evaluation_date_for_any_step(horizon: int, step: int) -> None:
    world = _world_spanning("2024-01-01", "2025-12-31")
    plan = plan_evaluation(
        world, FeatureConfig(horizon_days=horizon), ChurnModelConfig(train_every_days=step, train_periods=10)
    )
    _check_validation(plan)


def test_until_truncates_the_plan() -> None:
    """--until 2025-06-30 (the CLI passes its last microsecond): the data are read as ending then."""
    world = _world_spanning("2024-01-01", "2025-12-31")
    until = pd.Timestamp("2025-07-01") - pd.Timedelta(microseconds=1)
    features, churn = FeatureConfig(horizon_days=90), ChurnModelConfig(train_every_days=30)
    plan = plan_evaluation(world, features, churn, until=until)
    assert plan.last_labelled == pd.Timestamp("2025-06-30") - 90 * DAY  # 2025-04-01
    assert all(d + 90 * DAY <= until for d in plan.labelled)
    _check_backtest(plan, pd.Timestamp("2025-06-30"))
    full = plan_evaluation(world, features, churn)
    assert full.last_labelled > plan.last_labelled


UNTIL_BEYOND_DATA_BUG = (
    "plan_evaluation takes `until` as the end of the data even when the data end earlier, so "
    "with --until after the last row the last evaluation dates have label windows the data "
    "never observe (contractual labels all 0, inactivity labels all 1)"
)


def test_until_after_the_data_end_does_not_extend_the_plan() -> None:
    world = _world_spanning("2024-01-01", "2025-06-30")
    features, churn = FeatureConfig(horizon_days=90), ChurnModelConfig(train_every_days=30)
    plan = plan_evaluation(world, features, churn, until=pd.Timestamp("2025-12-31 23:59"))
    assert plan.last_labelled + 90 * DAY <= pd.Timestamp("2025-06-30")


def test_an_explicit_evaluation_date_must_have_its_labels_observed() -> None:
    world = _world_spanning("2024-01-01", "2025-12-31 12:00")
    features = FeatureConfig(horizon_days=90)
    last_observed = pd.Timestamp("2025-12-31") - 90 * DAY  # 2025-10-02
    ok = plan_evaluation(
        world, features, ChurnModelConfig(test_as_of=last_observed.date(), train_every_days=30)
    )
    assert ok.last_labelled == last_observed
    earlier = pd.Timestamp("2025-06-01")
    plan = plan_evaluation(world, features, ChurnModelConfig(test_as_of=earlier.date(), train_every_days=30))
    assert plan.evaluation[-1] == earlier
    assert max(plan.labelled) == earlier
    with pytest.raises(TrainingError, match="not observed yet"):
        plan_evaluation(world, features, ChurnModelConfig(test_as_of=(last_observed + DAY).date()))


def test_too_little_history_for_a_backtest_falls_back_to_customer_folds() -> None:
    """90 days of history plus two 90-day windows = 270 days make a backtest; 269 do not."""
    features = FeatureConfig(horizon_days=90)
    churn = ChurnModelConfig(train_every_days=30, cv_folds=2)
    start = pd.Timestamp("2024-01-01")

    just_enough = plan_evaluation(_world_spanning("2024-01-01", str((start + 270 * DAY).date())), features, churn)
    assert just_enough.backtest
    assert just_enough.labelled[0] == pd.Timestamp("2024-03-31")
    assert just_enough.evaluation == (pd.Timestamp("2024-06-29"),)
    _check_backtest(just_enough, start + 270 * DAY)

    short = plan_evaluation(_world_spanning("2024-01-01", str((start + 269 * DAY).date())), features, churn)
    assert not short.backtest
    assert short.evaluation == ()
    assert short.validation is None
    assert short.labelled == tuple(pd.to_datetime(["2024-04-29", "2024-05-29", "2024-06-28"]))
    assert "customer-grouped 2-fold cross-validation" in short.description
    assert "too short for a backtest" in short.description
    # the fallback splits never put one customer on both sides
    table = _one_row_per_date(short)
    splits = dated_splits(table, short, folds=2)
    assert len(splits) == 2
    for split in splits:
        assert not set(table.loc[split.fit, "customer_id"]) & set(table.loc[split.evaluate, "customer_id"])
    assert np.logical_or.reduce([s.evaluate for s in splits]).all()


def test_no_labelled_date_is_an_error_that_says_why() -> None:
    """Fewer than 90 + 90 days: not even one labelled date."""
    world = _world_spanning("2024-01-01", str((pd.Timestamp("2024-01-01") + 179 * DAY).date()))
    with pytest.raises(TrainingError, match="not enough history"):
        plan_evaluation(world, FeatureConfig(horizon_days=90), ChurnModelConfig())


# --- the settings split in train_churn ---------------------------------------------------------


def _tiny_table(plan: EvaluationPlan, n: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for as_of in plan.labelled:
        y = rng.integers(0, 2, n)
        y[:2] = [0, 1]
        rows.append(
            pd.DataFrame(
                {
                    "customer_id": [f"C{i}" for i in range(n)],
                    "as_of": as_of,
                    "signal": y + rng.normal(0, 1.0, n),
                    "noise": rng.normal(0, 1, n),
                    "churned": y,
                }
            )
        )
    return pd.concat(rows, ignore_index=True)


def _settings_recorders(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[set[int]]]:
    """Record which table rows (their index) each settings search and each audit reads."""
    from retain import training

    seen: dict[str, list[set[int]]] = {"settings": [], "audit": []}
    real_audit = training.audit_features

    def audit(X: pd.DataFrame, y: Any, **kwargs: Any) -> Any:
        seen["audit"].append(set(X.index))
        return real_audit(X, y, **kwargs)

    def select(X: pd.DataFrame, y: Any, *, validation: Any, tuned_on: str | None = None, **_: Any) -> SelectionResult:
        if isinstance(validation, tuple):
            seen["settings"].append({int(i) for part in validation for i in X.index[part]})
        else:
            seen["settings"].append(set(X.index))
        params = {"n_estimators": 10, "min_child_samples": 5, "random_state": 0}
        return SelectionResult(params=params, scores=pd.DataFrame(), tuned_on=tuned_on or "recorded")

    monkeypatch.setattr(training, "audit_features", audit)
    monkeypatch.setattr(training, "select_churn_settings", select)
    return seen


def _every_split_has_settings_decided_without_its_rows(seen: dict[str, list[set[int]]], splits: list[Any]) -> None:
    for split in splits:
        evaluated = set(np.flatnonzero(split.evaluate))
        for kind in ("settings", "audit"):
            assert any(not rows & evaluated for rows in seen[kind]), f"{kind} for {split.name} read its rows"


def _run_train_churn(plan: EvaluationPlan, table: pd.DataFrame) -> Any:
    settings_split = None
    if plan.validation is not None:
        h = pd.Timedelta(days=plan.horizon_days)
        settings_split = (
            (table["as_of"] <= plan.validation - h).to_numpy(),
            (table["as_of"] == plan.validation).to_numpy(),
        )
    return train_churn(
        table, ["signal", "noise"], dated_splits(table, plan, 2), ChurnModelConfig(n_jobs=1),
        settings_split, dated=True, settings_description=plan.description,
    )


def _plan(horizon: int, step: int) -> EvaluationPlan:
    return plan_evaluation(
        _world_spanning("2024-01-01", "2025-12-31"),
        FeatureConfig(horizon_days=horizon),
        ChurnModelConfig(train_every_days=step, train_periods=3, backtest_dates=2),
    )


def test_settings_and_audit_never_read_evaluation_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    plan = _plan(90, 30)
    assert plan.validation is not None
    table = _tiny_table(plan)
    seen = _settings_recorders(monkeypatch)
    result = _run_train_churn(plan, table)
    # one decision, before the first evaluation date, serves every split and the refit
    assert len(seen["settings"]) == len(seen["audit"]) == 1
    (settings_rows,), (audit_rows,) = seen["settings"], seen["audit"]
    evaluation_rows = set(np.flatnonzero(table["as_of"].isin(plan.evaluation)))
    assert not settings_rows & evaluation_rows
    assert not audit_rows & evaluation_rows
    # the audit reads the fit side of the settings split only; the search reads up to validation
    assert table.loc[sorted(audit_rows), "as_of"].max() <= plan.validation - 90 * DAY
    assert table.loc[sorted(settings_rows), "as_of"].max() == plan.validation
    assert "before the first evaluation date" in result.tuned_on
    _every_split_has_settings_decided_without_its_rows(seen, dated_splits(table, plan, 2))


def _short_plan() -> EvaluationPlan:
    """269 days of data: too short for a backtest, customer-grouped folds (see above)."""
    return plan_evaluation(
        _world_spanning("2024-01-01", "2024-09-26"), FeatureConfig(horizon_days=90), ChurnModelConfig(train_every_days=30)
    )


def test_settings_and_audit_never_read_evaluation_rows_without_a_validation_date(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plan = _short_plan()
    assert plan.validation is None
    table = _tiny_table(plan, n=30)
    seen = _settings_recorders(monkeypatch)
    _run_train_churn(plan, table)
    _every_split_has_settings_decided_without_its_rows(seen, dated_splits(table, plan, 2))


def test_one_class_in_the_labels_is_a_training_error() -> None:
    plan = _plan(90, 30)
    table = _tiny_table(plan, n=10).assign(churned=0)
    with pytest.raises(TrainingError, match="churners and non-churners"):
        _run_train_churn(plan, table)


# --- train, end to end on a small synthetic world ----------------------------------------------

SMALL_TEXT = TextModelConfig(char_ngrams=False, min_df=2, max_features=2000)
SMALL_CHURN = ChurnModelConfig(
    search_budget_s=0, n_estimators=20, min_child_samples=5, n_jobs=1,
    train_periods=3, train_every_days=30, backtest_dates=2, cv_folds=3,
)
FEATURES = FeatureConfig(horizon_days=60)
CONTRACTUAL = LabelConfig()


@dataclass(frozen=True)
class Trained:
    world: World
    result: TrainingResult
    fitted_rows: list[int]  # rows each churn model was fitted on, in order


@pytest.fixture(scope="module")
def trained() -> Trained:
    """``train`` on 300 customers; feedback labels removed so no text model is fitted (fast)."""
    from retain import training

    world = generate_world(300, seed=2, start="2024-01-01", end="2025-06-30")
    feedback = world.feedback.assign(sentiment=None, themes=None)
    world = World(world.customers, world.events, world.tickets, feedback)
    fitted_rows: list[int] = []
    make_model = training._model

    def recording_model(params: dict[str, Any], config: ChurnModelConfig) -> Any:
        model = make_model(params, config)
        fit = model.fit

        def recording_fit(X: pd.DataFrame, y: Any, **kwargs: Any) -> Any:
            fitted_rows.append(len(X))
            return fit(X, y, **kwargs)

        model.fit = recording_fit  # type: ignore[method-assign]
        return model

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(training, "_model", recording_model)
        result = train(world, list(THEMES), FEATURES, CONTRACTUAL, SMALL_TEXT, SMALL_CHURN)
    return Trained(world, result, fitted_rows)


def test_train_plans_a_backtest_on_the_small_world(trained: Trained) -> None:
    plan = trained.result.plan
    assert plan is not None and plan.backtest
    assert len(plan.evaluation) == 2
    assert trained.result.layout == "tables"
    assert trained.result.text is None  # no labelled feedback: no text model, said in the log
    assert trained.result.evaluation == plan.description
    assert len(trained.result.evaluation_id) == 16


def test_predictions_are_exactly_the_evaluation_populations(trained: Trained) -> None:
    plan, churn = trained.result.plan, trained.result.churn
    assert plan is not None
    predictions = churn.predictions
    assert predictions["split"].unique().tolist() == [str(d.date()) for d in plan.evaluation]
    customers = trained.world.customers
    for as_of in plan.evaluation:
        rows = predictions.loc[predictions["as_of"] == as_of]
        expected = labels(customers, trained.world.events, as_of, plan.horizon_days, CONTRACTUAL)
        assert rows["customer_id"].tolist() == expected.index.tolist()
        np.testing.assert_array_equal(rows["churned"].to_numpy(), expected.to_numpy())
    assert len(predictions) == sum(len(population(customers, None, d)) for d in plan.evaluation)
    assert predictions[["churn_probability", "baseline_probability"]].stack().between(0, 1).all()


def test_the_registered_model_is_refitted_on_the_latest_labelled_dates(trained: Trained) -> None:
    plan, churn = trained.result.plan, trained.result.churn
    assert plan is not None
    customers = trained.world.customers

    periods = SMALL_CHURN.train_periods

    def rows_up_to(last: pd.Timestamp) -> int:
        # the latest `train_periods` labelled dates on or before `last`
        dates = [d for d in plan.labelled if d <= last][-periods:]
        return sum(len(population(customers, None, d)) for d in dates)

    h = pd.Timedelta(days=plan.horizon_days)
    # one model per evaluation date, fitted on the latest dates whose windows closed by it, then
    # the registered one, fitted on the latest labelled dates up to the last (evaluation included)
    assert trained.fitted_rows == [*(rows_up_to(d - h) for d in plan.evaluation), rows_up_to(plan.last_labelled)]
    assert churn.n_train == rows_up_to(plan.last_labelled)
    assert list(churn.model.feature_names_in_) == churn.feature_columns
    assert not {"customer_id", "as_of", "churned"} & set(churn.feature_columns)
    assert any(c.startswith("tickets_") for c in churn.feature_columns)
    assert any(c.startswith("rating_mean_") for c in churn.feature_columns)


def test_metrics_carry_intervals_and_a_paired_comparison(trained: Trained) -> None:
    churn = trained.result.churn
    for metrics in (churn.metrics, churn.baseline_metrics):
        assert metrics["roc_auc_low"] <= metrics["roc_auc"] <= metrics["roc_auc_high"]
        assert metrics["splits"] == 2
        assert metrics["n"] == len(churn.predictions)
    assert churn.comparison.candidate == "churn_probability"
    assert churn.comparison.reference == "baseline_probability"
    assert churn.comparison.difference == pytest.approx(
        churn.metrics["roc_auc"] - churn.baseline_metrics["roc_auc"]
    )
    assert churn.per_split["split"].tolist() == churn.predictions["split"].unique().tolist()
    assert "before the first evaluation date" in churn.tuned_on


# --- train_flat on a small synthetic flat table -------------------------------------------------


def _flat(n: int = 400, seed: int = 0, test: bool = False) -> FlatTable:
    rng = np.random.default_rng(seed)
    tenure = rng.integers(1, 72, n).astype(float)
    contract = rng.choice(["month", "year", "two years"], n)
    charges = rng.uniform(20, 110, n)
    logit = -1.0 - 0.04 * tenure + 1.5 * (contract == "month") + 0.01 * charges
    churned = (rng.uniform(0, 1, n) < 1 / (1 + np.exp(-logit))).astype(float)
    frame = pd.DataFrame(
        {
            "customer_id": [f"F{i}" for i in range(n)],
            "churned": churned,
            "monthly_value": charges,
            "as_of": pd.NaT,
            "tenure": tenure,
            "contract": contract,
            "charges": charges,
            # written when the customer left: the planted leak
            "exit_status": np.where(churned == 1, "closed", "open"),
        }
    )
    frame.loc[frame.index[:5], "churned"] = np.nan  # unlabelled rows are scored, not trained on
    columns = ["tenure", "contract", "charges", "exit_status"]
    if not test:
        return FlatTable(frame=frame, feature_columns=columns, report=None)  # type: ignore[arg-type]
    cut = int(0.75 * n)
    return FlatTable(
        frame=frame.iloc[:cut].reset_index(drop=True),
        feature_columns=columns,
        report=None,  # type: ignore[arg-type]
        test=frame.iloc[cut:].reset_index(drop=True),
    )


# settings are searched inside every fold of a flat table: two folds keep this fast
FLAT_CHURN = SMALL_CHURN.model_copy(update={"cv_folds": 2})


@pytest.fixture(scope="module")
def trained_flat() -> TrainingResult:
    return train_flat(_flat(), FLAT_CHURN)


def test_flat_predictions_are_the_folds_rows_once(trained_flat: TrainingResult) -> None:
    churn = trained_flat.churn
    labelled = _flat().frame.dropna(subset=["churned"])
    assert sorted(churn.predictions["customer_id"]) == sorted(labelled["customer_id"])
    assert churn.predictions["split"].nunique() == 2
    assert churn.n_train == len(labelled)
    assert trained_flat.plan is None and trained_flat.layout == "flat"
    assert "2-fold stratified cross-validation" in trained_flat.evaluation


def test_flat_audit_excludes_the_planted_leak(trained_flat: TrainingResult) -> None:
    churn = trained_flat.churn
    assert "exit_status" in churn.audit.excluded_columns
    assert "exit_status" not in churn.feature_columns
    assert "exit_status" not in churn.model.feature_names_in_
    assert {"tenure", "contract", "charges"} <= set(churn.feature_columns)
    # without the leak the model is good, not perfect
    assert 0.6 < churn.metrics["roc_auc"] < 0.95
    assert churn.metrics["roc_auc_low"] <= churn.metrics["roc_auc"] <= churn.metrics["roc_auc_high"]


@pytest.mark.slow
def test_flat_with_a_test_file_evaluates_on_it_only() -> None:
    flat = _flat(test=True)
    result = train_flat(flat, FLAT_CHURN)
    test_ids = flat.test.dropna(subset=["churned"])["customer_id"]  # type: ignore[union-attr]
    assert sorted(result.churn.predictions["customer_id"]) == sorted(test_ids)
    assert result.churn.predictions["split"].unique().tolist() == ["test file"]
    assert result.evaluation.startswith(f"the test file ({len(test_ids)} rows)")


def test_flat_splits_are_stratified_folds_or_the_test_rows() -> None:
    y = np.array([0, 1] * 12)
    splits = flat_splits(y, 4)
    assert len(splits) == 4
    assert np.sum([s.evaluate for s in splits], axis=0).tolist() == [1] * 24
    for s in splits:
        assert not (s.fit & s.evaluate).any()
        assert y[s.evaluate].mean() == 0.5
    test = np.arange(24) >= 18
    (only,) = flat_splits(y, 4, test)
    assert only.evaluate.tolist() == test.tolist() and only.fit.tolist() == (~test).tolist()


def test_feature_columns_skip_keys_and_label() -> None:
    table = pd.DataFrame(columns=["customer_id", "as_of", "x", "churned", "y"])
    assert feature_columns(table) == ["x", "y"]
