"""Value at risk of a purchase log (``retain.scoring``): customers without a contracted monthly
value are worth the spend BG/NBD x Gamma-Gamma expect if they stay, fitted on the whole log to
``as_of``; recent spend when asked for or when the models cannot be fitted."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from retain.config import FeatureConfig, ScoringConfig
from retain.contracts import World
from retain.insight.value import DAYS_PER_MONTH, expected_value, purchase_summary
from retain.scoring import RECENT_SPEND, fit_purchase_value, value_from_purchases

AS_OF = pd.Timestamp("2025-01-01")
FEATURES = FeatureConfig(horizon_days=90)
PROBABILISTIC = ScoringConfig()


def purchase_log(n: int = 500, seed: int = 0) -> pd.DataFrame:
    """Buyers from the BG/NBD story (rate ~ Gamma(0.6, 12 days), drop-out ~ Beta(0.9, 3)) over
    2024 and the first half of 2025, baskets ~ Gamma(6, scale 5) (mean 30)."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2024-01-01")
    end = pd.Timestamp("2025-06-30")
    span = (end - start).days
    rows = []
    for i in range(n):
        rate, drop = rng.gamma(0.6, 1 / 12), rng.beta(0.9, 3.0)
        t = float(rng.integers(0, 300))
        rows.append((f"C{i:04d}", start + pd.Timedelta(days=t), rng.gamma(6.0, 5.0)))
        while (t := t + rng.exponential(1 / rate)) <= span:
            rows.append((f"C{i:04d}", start + pd.Timedelta(days=t), rng.gamma(6.0, 5.0)))
            if rng.random() < drop:  # after each repeat purchase
                break
    return pd.DataFrame(rows, columns=["customer_id", "occurred_at", "amount"]).assign(event_type="purchase")


def world_of(events: pd.DataFrame) -> World:
    first = events.groupby("customer_id", as_index=False)["occurred_at"].min()
    customers = first.rename(columns={"occurred_at": "signup_at"}).assign(churned_at=pd.NaT)
    return World(customers=customers, events=events)


def table_of(world: World) -> pd.DataFrame:
    bought = world.events.loc[world.events["occurred_at"] <= AS_OF, "customer_id"].unique()
    return pd.DataFrame({"customer_id": sorted(bought)})


@pytest.fixture(scope="module")
def log() -> pd.DataFrame:
    return purchase_log()


def test_the_value_is_the_spend_expected_if_the_customer_stays_per_month(log: pd.DataFrame) -> None:
    world = world_of(log)
    valuation = fit_purchase_value(world, AS_OF, PROBABILISTIC, FEATURES)
    assert valuation.models is not None and valuation.horizon_days == 90
    assert "BG/NBD x Gamma-Gamma" in valuation.basis and "90 days" in valuation.basis
    table = table_of(world)
    value = value_from_purchases(world, table, AS_OF, valuation)
    summary = purchase_summary(log.loc[log["occurred_at"] <= AS_OF], AS_OF)
    expected = expected_value(valuation.models, summary, 90, if_alive=True) * DAYS_PER_MONTH / 90
    np.testing.assert_allclose(value.to_numpy(), expected, rtol=1e-12)
    assert (value > 0).all()


def test_events_after_as_of_change_neither_the_models_nor_the_values(log: pd.DataFrame) -> None:
    before = world_of(log.loc[log["occurred_at"] <= AS_OF])
    after = world_of(log)
    assert len(after.events) > len(before.events)
    one = fit_purchase_value(before, AS_OF, PROBABILISTIC, FEATURES)
    two = fit_purchase_value(after, AS_OF, PROBABILISTIC, FEATURES)
    assert one.models.purchases.params_ == two.models.purchases.params_
    assert one.models.spend.params_ == two.models.spend.params_
    table = table_of(before)
    pd.testing.assert_series_equal(
        value_from_purchases(before, table, AS_OF, one), value_from_purchases(after, table, AS_OF, two)
    )


def test_parts_of_the_customers_valued_with_the_whole_logs_models_give_the_whole(log: pd.DataFrame) -> None:
    world = world_of(log)
    valuation = fit_purchase_value(world, AS_OF, PROBABILISTIC, FEATURES)
    table = table_of(world)
    whole = value_from_purchases(world, table, AS_OF, valuation)
    for part in (table.iloc[::2], table.iloc[1::2]):
        ids = set(part["customer_id"])
        mine = World(
            customers=world.customers.loc[world.customers["customer_id"].isin(ids)],
            events=log.loc[log["customer_id"].isin(ids)],
        )
        np.testing.assert_array_equal(
            value_from_purchases(mine, part, AS_OF, valuation).to_numpy(), whole.loc[part.index].to_numpy()
        )


def test_a_one_basket_big_spender_no_longer_outranks_a_regular_buyer(log: pd.DataFrame) -> None:
    regular_days = pd.date_range(AS_OF - pd.Timedelta(days=364), AS_OF, freq="14D")
    extra = pd.DataFrame(
        {
            "customer_id": ["big-once"] + ["regular"] * len(regular_days),
            "occurred_at": [AS_OF - pd.Timedelta(days=300), *regular_days],
            "amount": [1500.0] + [40.0] * len(regular_days),
            "event_type": "purchase",
        }
    )
    world = world_of(pd.concat([log, extra], ignore_index=True))
    table = pd.DataFrame({"customer_id": ["big-once", "regular"]})
    recent = value_from_purchases(world, table, AS_OF, fit_purchase_value(world, AS_OF, ScoringConfig(purchase_value="recent_spend"), FEATURES))
    # recent spend: 1500 / 12 = 125 a month against 27 x 40 / 12 = 90
    assert recent.tolist() == pytest.approx([125.0, len(regular_days) * 40.0 / 12])
    expected = value_from_purchases(world, table, AS_OF, fit_purchase_value(world, AS_OF, PROBABILISTIC, FEATURES))
    assert expected.iloc[1] > 3 * expected.iloc[0]


def test_too_few_repeat_buyers_fall_back_to_recent_spend_saying_why(caplog: pytest.LogCaptureFixture) -> None:
    events = pd.DataFrame(
        {
            "customer_id": ["a", "a", "b"],
            "occurred_at": pd.to_datetime(["2024-06-01", "2024-09-01", "2024-12-01"]),
            "amount": [10.0, 20.0, 30.0],
            "event_type": "purchase",
        }
    )
    world = world_of(events)
    with caplog.at_level(logging.WARNING, logger="retain.scoring"):
        valuation = fit_purchase_value(world, AS_OF, PROBABILISTIC, FEATURES)
    assert valuation.models is None
    assert valuation.basis.startswith(RECENT_SPEND[:-1]) and "could not be fitted" in valuation.basis
    assert "1 repeat buyer(s)" in caplog.text
    value = value_from_purchases(world, pd.DataFrame({"customer_id": ["a", "b"]}), AS_OF, valuation)
    assert value.tolist() == pytest.approx([30.0 / 12, 30.0 / 12])


def test_customers_who_all_have_a_monthly_value_need_no_fit(log: pd.DataFrame) -> None:
    world = world_of(log)
    valued = World(customers=world.customers.assign(monthly_value=10.0), events=log)
    assert fit_purchase_value(valued, AS_OF, PROBABILISTIC, FEATURES).models is None
    horizon = ScoringConfig(purchase_value_horizon_days=30)
    assert fit_purchase_value(world, AS_OF, horizon, FEATURES).horizon_days == 30
