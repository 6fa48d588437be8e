"""BG/NBD and Gamma-Gamma (``retain.insight.value``): hand-checked likelihoods and expectations,
planted parameters recovered from simulated populations, the purchase summary, the estimator contract."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.utils.estimator_checks import (
    check_get_params_invariance,
    check_no_attributes_set_in_init,
    check_parameters_default_constructible,
)

from retain.insight.value import (
    BetaGeoModel,
    GammaGammaModel,
    ValueModels,
    expected_value,
    expected_value_table,
    fit_value_models,
    purchase_summary,
)

PLANTED_BG = (0.6, 12.0, 0.9, 3.0)  # r, alpha (days), a, b
PLANTED_GG = (6.0, 4.0, 15.0)  # p, q, v


def simulate_bgnbd(
    params: tuple[float, float, float, float], n: int, seed: int, holdout: float = 0.0
) -> pd.DataFrame:
    """Customers drawn from the BG/NBD story: frequency, recency, T and purchases in (T, T + holdout].

    Each customer makes a first purchase at 0 and is watched until T (uniform 150..400 days).
    While alive they buy at rate lambda ~ Gamma(r, alpha); after each repeat purchase they drop
    out with probability p ~ Beta(a, b).
    """
    r, alpha, a, b = params
    rng = np.random.default_rng(seed)
    rates = rng.gamma(r, 1 / alpha, n)
    drop = rng.beta(a, b, n)
    ages = rng.integers(150, 401, n).astype(float)
    rows = []
    for rate, p, age in zip(rates, drop, ages, strict=True):
        t, x, t_x, later, alive = 0.0, 0, 0.0, 0, True
        while alive:
            t += rng.exponential(1 / rate)
            if t > age + holdout:
                break
            if t <= age:
                x, t_x = x + 1, t
            else:
                later += 1
            alive = rng.random() >= p
        rows.append((x, t_x, age, later))
    return pd.DataFrame(rows, columns=["frequency", "recency", "T", "holdout_purchases"]).astype(float)


@pytest.fixture(scope="module")
def population() -> pd.DataFrame:
    return simulate_bgnbd(PLANTED_BG, n=6000, seed=0, holdout=180.0)


@pytest.fixture(scope="module")
def fitted(population: pd.DataFrame) -> BetaGeoModel:
    return BetaGeoModel().fit(population["frequency"], population["recency"], population["T"])


# --- hand-checked values ------------------------------------------------------------------------


def test_log_likelihood_of_a_one_time_buyer_by_hand() -> None:
    # r = alpha = a = b = 1, x = 0, T = 10: Gamma terms and Beta terms cancel, L = (alpha + T)^-r
    ll = BetaGeoModel.individual_log_likelihood((1.0, 1.0, 1.0, 1.0), [0], [0], [10])
    assert ll[0] == pytest.approx(-math.log(11.0), rel=1e-12)


def test_log_likelihood_of_a_repeat_buyer_by_hand() -> None:
    # r=2, alpha=3, a=1, b=2; x=1, t_x=4, T=10:
    # Gamma(3) 3^2 / Gamma(2) = 18; B(1, 3) / B(1, 2) = (1/3) / (1/2) = 2/3;
    # (alpha+T)^-(r+x) = 13^-3; a/(b+x-1) (alpha+t_x)^-(r+x) = 1/2 * 7^-3
    expected = math.log(18 * 2 / 3 * (13.0**-3 + 0.5 * 7.0**-3))
    ll = BetaGeoModel.individual_log_likelihood((2.0, 3.0, 1.0, 2.0), [1, 0], [4, 0], [10, 10])
    assert ll[0] == pytest.approx(expected, rel=1e-12)
    # and the one-time buyer beside it: Gamma terms 3^2 = 9, Beta terms 1, 13^-2
    assert ll[1] == pytest.approx(math.log(9 * 13.0**-2), rel=1e-12)


def _model(params: tuple[float, float, float, float]) -> BetaGeoModel:
    model = BetaGeoModel()
    model.r_, model.alpha_, model.a_, model.b_ = params
    return model


def test_probability_alive_by_hand() -> None:
    model = _model((2.0, 3.0, 1.0, 2.0))
    # x=1, t_x=4, T=10: 1 / (1 + 1/2 (13/7)^3); a one-time buyer is alive (no chance to drop yet)
    alive = model.probability_alive([1, 0], [4, 0], [10, 25])
    assert alive[0] == pytest.approx(1 / (1 + 0.5 * (13 / 7) ** 3), rel=1e-12)
    assert alive[1] == 1.0


def test_expected_purchases_of_a_one_time_buyer_by_hand() -> None:
    # a=2, b=1, r=1, x=0: (a+b-1)/(a-1) [1 - ((alpha+T)/(alpha+T+t)) 2F1(1, 1; 2; z)] with
    # 2F1(1, 1; 2; z) = -ln(1-z)/z; alpha+T = 10, t = 10: z = 1/2, so E = 2 (1 - ln 2)
    model = _model((1.0, 4.0, 2.0, 1.0))
    expected = model.expected_purchases(10.0, [0], [0], [6])
    assert expected[0] == pytest.approx(2 * (1 - math.log(2)), rel=1e-10)


def test_a_customer_alive_now_is_a_new_customer_with_updated_parameters() -> None:
    # alive at T after x repeat purchases: a fresh customer (x=0, T=0) with (r+x, alpha+T, a, b+x)
    r, alpha, a, b = 0.7, 9.0, 1.3, 2.5
    x, t_x, age, t = 3.0, 40.0, 100.0, 60.0
    now = _model((r, alpha, a, b)).expected_purchases_if_alive(t, [x], [t_x], [age])
    fresh = _model((r + x, alpha + age, a, b + x)).expected_purchases(t, [0], [0], [0])
    assert now[0] == pytest.approx(fresh[0], rel=1e-10)
    both = _model((r, alpha, a, b))
    unconditional = both.expected_purchases(t, [x], [t_x], [age])
    assert unconditional[0] == pytest.approx(both.probability_alive([x], [t_x], [age])[0] * now[0], rel=1e-12)


def test_gamma_gamma_expected_value_by_hand() -> None:
    model = GammaGammaModel()
    model.p_, model.q_, model.v_ = 6.0, 4.0, 15.0
    # p (v + x m) / (p x + q - 1): x=2, m=20: 6 * 55 / 15 = 22; x=0: the population mean 6*15/3 = 30
    assert model.expected_average_value([2, 0], [20.0, 0.0]).tolist() == pytest.approx([22.0, 30.0])
    # one basket of 10 at p=1, q=2, v=1: ln Gamma(3) - 0 - 0 + 0 + 0 + 0 - 3 ln 11
    ll = GammaGammaModel.individual_log_likelihood((1.0, 2.0, 1.0), [1], [10.0])
    assert ll[0] == pytest.approx(math.log(2) - 3 * math.log(11), rel=1e-12)


# --- planted parameters -------------------------------------------------------------------------


def test_bgnbd_recovers_planted_parameters(population: pd.DataFrame, fitted: BetaGeoModel) -> None:
    for got, planted in zip(fitted.params_, PLANTED_BG, strict=True):
        assert got == pytest.approx(planted, rel=0.2)
    # the mean purchase rate r / alpha, what the holdout forecast rests on, much closer
    assert fitted.r_ / fitted.alpha_ == pytest.approx(PLANTED_BG[0] / PLANTED_BG[1], rel=0.06)


def test_expected_holdout_purchases_match_the_simulated_ones(population: pd.DataFrame, fitted: BetaGeoModel) -> None:
    expected = fitted.expected_purchases(180.0, population["frequency"], population["recency"], population["T"])
    assert expected.sum() == pytest.approx(population["holdout_purchases"].sum(), rel=0.05)
    # and per group: customers with more past purchases are expected to buy more, as they do
    busy = population["frequency"] >= 3
    assert expected[busy.to_numpy()].mean() == pytest.approx(population.loc[busy, "holdout_purchases"].mean(), rel=0.1)


def test_bgnbd_agrees_with_lifetimes(population: pd.DataFrame, fitted: BetaGeoModel) -> None:
    lifetimes = pytest.importorskip("lifetimes")
    theirs = lifetimes.BetaGeoFitter(penalizer_coef=0.0).fit(
        population["frequency"], population["recency"], population["T"]
    )
    assert list(fitted.params_) == pytest.approx(list(theirs.params_[["r", "alpha", "a", "b"]]), rel=1e-3)
    args = (population["frequency"], population["recency"], population["T"])
    assert fitted.expected_purchases(90.0, *args) == pytest.approx(
        theirs.conditional_expected_number_of_purchases_up_to_time(90.0, *args).to_numpy(), rel=1e-3, abs=1e-6
    )


def test_gamma_gamma_recovers_planted_parameters() -> None:
    p, q, v = PLANTED_GG
    rng = np.random.default_rng(1)
    n = 4000
    x = rng.integers(1, 12, n)
    nu = rng.gamma(q, 1 / v, n)
    m = np.array([rng.gamma(p, 1 / rate, k).mean() for rate, k in zip(nu, x, strict=True)])
    model = GammaGammaModel().fit(x, m)
    assert model.p_ == pytest.approx(p, rel=0.15)
    assert model.q_ == pytest.approx(q, rel=0.15)
    assert model.v_ == pytest.approx(v, rel=0.2)
    # the population mean basket p v / (q - 1) = 30
    assert model.p_ * model.v_ / (model.q_ - 1) == pytest.approx(30.0, rel=0.05)


def test_a_penalty_shrinks_the_parameters(population: pd.DataFrame, fitted: BetaGeoModel) -> None:
    penalised = BetaGeoModel(penalizer_coef=0.1).fit(population["frequency"], population["recency"], population["T"])
    assert sum(v**2 for v in penalised.params_) < sum(v**2 for v in fitted.params_)


# --- the summary and the table -----------------------------------------------------------------


def _log(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": [r[0] for r in rows],
            "occurred_at": pd.to_datetime([r[1] for r in rows], format="ISO8601"),
            "event_type": "purchase",
            "amount": [r[2] for r in rows],
        }
    )


def test_purchase_summary_by_hand() -> None:
    events = _log(
        [
            ("a", "2024-01-01", 10.0),
            ("a", "2024-01-01 18:00", 5.0),  # same day: one purchase of 15
            ("a", "2024-01-11", 20.0),
            ("a", "2024-01-21", 40.0),
            ("a", "2024-02-15", 99.0),  # after as_of
            ("b", "2024-01-30", 7.0),
        ]
    )
    summary = purchase_summary(events, pd.Timestamp("2024-01-31"))
    assert summary.index.tolist() == ["a", "b"]
    assert summary.loc["a"].tolist() == [2.0, 20.0, 30.0, 30.0]  # repeats on days 10 and 20; mean 30
    assert summary.loc["b"].tolist() == [0.0, 0.0, 1.0, 0.0]
    weekly = purchase_summary(events, pd.Timestamp("2024-01-31"), time_unit_days=7)
    # 2024-01-01 is a Monday: weeks 0, 1 and 2; as_of (a Wednesday) is in week 4
    assert weekly.loc["a"].tolist() == [2.0, 2.0, 4.0, 30.0]


def test_purchase_summary_ignores_events_without_an_amount_and_other_types() -> None:
    events = _log([("a", "2024-01-01", 10.0), ("a", "2024-01-05", np.nan), ("a", "2024-01-06", 3.0)])
    events.loc[2, "event_type"] = "refund"
    assert purchase_summary(events, pd.Timestamp("2024-01-31")).loc["a", "frequency"] == 1.0
    only = purchase_summary(events, pd.Timestamp("2024-01-31"), purchase_type="purchase")
    assert only.loc["a", "frequency"] == 0.0


def test_expected_value_table_and_discounting(population: pd.DataFrame, fitted: BetaGeoModel) -> None:
    spend = GammaGammaModel()
    spend.p_, spend.q_, spend.v_ = PLANTED_GG
    models = ValueModels(purchases=fitted, spend=spend)
    start = pd.Timestamp("2024-01-01")
    events = _log([("a", "2024-01-01", 10.0), ("a", "2024-03-01", 30.0), ("b", "2024-05-01", 5.0)])
    table = expected_value_table(events, pd.Timestamp("2024-06-30"), 90, models=models)
    a = table.loc["a"]
    assert a["T"] == (pd.Timestamp("2024-06-30") - start).days
    assert a["expected_value"] == pytest.approx(a["expected_purchases"] * a["expected_average_value"])
    assert table.loc["b", "expected_average_value"] == pytest.approx(30.0)  # a one-time buyer: the mean
    summary = table[["frequency", "recency", "T", "monetary_value"]]
    plain = expected_value(models, summary, 90)
    assert plain == pytest.approx(table["expected_value"].to_numpy())
    discounted = expected_value(models, summary, 90, monthly_discount_rate=0.01)
    assert np.all(discounted < plain) and np.all(discounted > plain / 1.01**3)
    if_alive = expected_value(models, summary, 90, if_alive=True)
    assert np.all(if_alive >= plain)


def test_too_few_repeat_buyers_is_an_error() -> None:
    summary = pd.DataFrame({"frequency": [0.0, 1.0], "recency": [0.0, 3.0], "T": [5.0, 9.0], "monetary_value": [0.0, 4.0]})
    with pytest.raises(ValueError, match="1 repeat buyer"):
        fit_value_models(summary)


# --- the estimator contract ---------------------------------------------------------------------


@pytest.mark.parametrize("make", [BetaGeoModel, GammaGammaModel])
def test_estimator_contract(make: type) -> None:
    name = make.__name__
    check_no_attributes_set_in_init(name, make())
    check_get_params_invariance(name, make())
    check_parameters_default_constructible(name, make())
    model = make(penalizer_coef=0.01)
    assert clone(model).get_params() == {"penalizer_coef": 0.01}
    data = simulate_bgnbd(PLANTED_BG, n=300, seed=3)
    repeat = data.loc[data["frequency"] > 0]
    args = (
        (data["frequency"], data["recency"], data["T"]) if make is BetaGeoModel
        else (repeat["frequency"], repeat["recency"] + 1.0)
    )
    assert model.fit(*args) is model
    assert not hasattr(clone(model), "log_likelihood_")
