"""select_churn_settings: validation rows only, deterministic, within a time budget."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from retain.churn.model import ChurnClassifier
from retain.churn.selection import SelectionResult, select_churn_settings

CANDIDATES = [
    {"learning_rate": 0.1, "n_estimators": 20, "num_leaves": 4, "min_child_samples": 20},
    {"learning_rate": 0.1, "n_estimators": 30, "num_leaves": 16, "min_child_samples": 5},
    {"learning_rate": 0.2, "n_estimators": 10, "num_leaves": 8, "min_child_samples": 10},
]


def make_table(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    usage = rng.normal(size=n)
    plan = rng.choice(["basic", "pro", "team"], n)
    margin = 1.5 * usage + np.where(plan == "basic", 1.0, -0.5)
    y = (rng.random(n) < 1 / (1 + np.exp(-margin))).astype(int)
    X = pd.DataFrame(
        {"usage": usage, "tickets": rng.poisson(1, n), "plan": pd.array(plan, dtype="str")}
    )
    return X, y


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, np.ndarray]:
    return make_table(400, seed=0)


def _select(X, y, **kwargs) -> SelectionResult:
    kwargs = {"candidates": CANDIDATES, "time_budget_s": 600, **kwargs}
    return select_churn_settings(X, y, **kwargs)


def _comparable(result: SelectionResult) -> pd.DataFrame:
    return result.scores.drop(columns="seconds")


def test_returns_the_best_candidate_with_its_tree_count_and_a_record(data) -> None:
    X, y = data
    result = _select(X, y)
    assert result.tuned_on == "3 inner stratified folds of the training rows"
    table = result.scores
    assert list(table.index) == [0, 1, 2]
    assert table["evaluated"].all()
    assert (table["seconds"] >= 0).all()
    assert all(len(folds) == 3 for folds in table["fold_roc_auc"])
    best = int(table["roc_auc"].idxmax())
    expected = {"random_state": 0, **CANDIDATES[best], "n_estimators": table["n_estimators"][best]}
    assert result.params == expected
    assert (table["n_estimators"] <= [c["n_estimators"] for c in CANDIDATES]).all()
    assert (table["roc_auc"] > 0.7).all()
    # The caller refits on all training rows with the chosen settings.
    ChurnClassifier(**result.params, n_jobs=1).fit(X, y)


def test_selection_is_deterministic(data) -> None:
    X, y = data
    first, second = _select(X, y), _select(X, y)
    assert first.params == second.params
    pd.testing.assert_frame_equal(_comparable(first), _comparable(second))


def test_a_spent_budget_still_tries_two_candidates_then_stops(data) -> None:
    X, y = data
    result = _select(X, y, time_budget_s=0)
    assert result.scores["evaluated"].tolist() == [True, True, False]
    assert np.isnan(result.scores["roc_auc"][2])
    full = _select(X, y)
    pd.testing.assert_frame_equal(_comparable(result).iloc[:2], _comparable(full).iloc[:2])


def test_an_explicit_split_reads_only_its_rows(data) -> None:
    X, y = data
    fit_idx, val_idx = np.arange(0, 250), np.arange(250, 330)
    held_out = np.arange(330, 400)
    on_subset = _select(
        X.iloc[:330], y[:330], validation=(fit_idx, val_idx), tuned_on="validation rows 250-329"
    )
    assert on_subset.tuned_on == "validation rows 250-329"
    # Held-out rows with unusable labels (NaN, or all one class) and scrambled features:
    # the outcome is the same, because they are never read.
    for y_held in (np.full(held_out.size, np.nan), np.ones(held_out.size)):
        y_all = np.concatenate([y[:330].astype(float), y_held])
        X_all = X.copy()
        X_all.loc[held_out, "usage"] = 1e9
        X_all.loc[held_out, "plan"] = "martian"
        result = _select(X_all, y_all, validation=(fit_idx, val_idx))
        assert result.params == on_subset.params
        pd.testing.assert_frame_equal(_comparable(result), _comparable(on_subset))
        assert result.tuned_on == "an explicit validation split (250 fit rows, 80 validation rows)"


def test_explicit_splits_must_not_overlap(data) -> None:
    X, y = data
    with pytest.raises(ValueError, match="both"):
        _select(X, y, validation=(np.arange(0, 200), np.arange(150, 300)))


def test_groups_keep_a_customer_on_one_side_of_the_inner_folds() -> None:
    # Pure-noise labels, each customer repeated 4 times: a flexible model memorises customers,
    # so folds that split customers flatter it; folds that keep them together do not.
    rng = np.random.default_rng(3)
    n_customers = 150
    X_one = pd.DataFrame({"a": rng.normal(size=n_customers), "b": rng.normal(size=n_customers)})
    y_one = rng.integers(0, 2, n_customers)
    X = pd.concat([X_one] * 4, ignore_index=True)
    y = np.tile(y_one, 4)
    groups = np.tile(np.arange(n_customers), 4)
    flexible = [
        {"learning_rate": 0.3, "n_estimators": 30, "num_leaves": 31, "min_child_samples": 2}
    ]
    grouped = select_churn_settings(X, y, groups=groups, candidates=flexible)
    mixed = select_churn_settings(X, y, candidates=flexible)
    assert "each group in one fold" in grouped.tuned_on
    assert mixed.scores["roc_auc"][0] > 0.75
    assert grouped.scores["roc_auc"][0] < 0.6


def test_invalid_arguments(data) -> None:
    X, y = data
    with pytest.raises(ValueError, match="candidates"):
        select_churn_settings(X, y, candidates=[])
    with pytest.raises(ValueError, match="2 inner folds"):
        select_churn_settings(X, y, validation=1, candidates=CANDIDATES)
    with pytest.raises(ValueError, match="groups"):
        select_churn_settings(X, y, groups=np.arange(3), candidates=CANDIDATES)
