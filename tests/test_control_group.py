"""``outreach.control.control_group``: stratified by risk decile, stable per (customer, seed)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from retain.outreach.control import control_group, customer_draw, risk_deciles


def _customers(n: int, seed: int = 0) -> tuple[pd.Series, pd.Series]:
    rng = np.random.default_rng(seed)
    ids = pd.Series([f"C{i:05d}" for i in range(n)])
    return ids, pd.Series(rng.beta(1, 6, n))


def test_deciles_split_by_risk_into_equal_tenths() -> None:
    risk = pd.Series([0.9, 0.1, 0.5, 0.3, 0.7, 0.2, 0.8, 0.4, 0.6, 0.0])
    assert risk_deciles(risk).tolist() == [10, 2, 6, 4, 8, 3, 9, 5, 7, 1]
    assert risk_deciles(pd.Series(np.arange(35.0))).value_counts().sort_index().tolist() == [4, 3, 4, 3, 4, 3, 4, 3, 4, 3]


def test_the_share_is_exact_in_every_decile_up_to_rounding() -> None:
    ids, risk = _customers(1003)
    control = control_group(ids, risk, 0.1, seed=7)
    deciles = risk_deciles(risk)
    for _, members in control.groupby(deciles):
        assert members.sum() == int(np.floor(0.1 * len(members) + 0.5))
    assert control.sum() == 100  # ten deciles of 100 or 101 customers: 10 each


def test_the_same_customers_and_seed_give_the_same_group_in_any_row_order() -> None:
    ids, risk = _customers(500)
    control = control_group(ids, risk, 0.2, seed=3)
    order = np.random.default_rng(1).permutation(len(ids))
    shuffled = control_group(ids.iloc[order].reset_index(drop=True), risk.iloc[order].reset_index(drop=True), 0.2, seed=3)
    assert set(ids[control]) == set(ids.iloc[order].reset_index(drop=True)[shuffled])
    other_seed = control_group(ids, risk, 0.2, seed=4)
    assert set(ids[control]) != set(ids[other_seed])


def test_the_draw_is_a_hash_not_a_generator_state() -> None:
    assert customer_draw("C1", 0) == customer_draw("C1", 0)
    assert customer_draw("C1", 0) != customer_draw("C1", 1)
    draws = np.array([customer_draw(f"C{i}", 0) for i in range(2000)])
    assert 0 <= draws.min() and draws.max() < 1
    assert abs(draws.mean() - 0.5) < 0.03  # roughly uniform


def test_the_group_does_not_follow_risk_within_a_decile() -> None:
    ids, risk = _customers(5000, seed=2)
    control = control_group(ids, risk, 0.1, seed=0)
    # same mean risk as everyone, within sampling noise
    assert abs(risk[control].mean() - risk.mean()) < 0.01


def test_share_zero_holds_nobody_out_and_bad_inputs_are_refused() -> None:
    ids, risk = _customers(50)
    assert not control_group(ids, risk, 0.0).any()
    with pytest.raises(ValueError, match="share"):
        control_group(ids, risk, 1.0)
    with pytest.raises(ValueError, match="unique"):
        control_group(pd.Series(["A", "A"]), pd.Series([0.1, 0.2]), 0.5)
