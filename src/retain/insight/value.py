"""Probabilistic customer lifetime value of a purchase log: BG/NBD and Gamma-Gamma (docs/kpis.md).

A purchase log says when each customer bought and for how much, never when they left. The BG/NBD
model (Fader, Hardie & Lee 2005, "Counting your customers the easy way") reads each customer's
repeat purchases (``frequency``), the age of their last one (``recency``) and their own age
(``T``) as the outcome of two hidden traits: a purchase rate (Gamma(r, alpha) across customers)
and a chance of dropping out after each purchase (Beta(a, b)). The Gamma-Gamma model (Fader &
Hardie 2013, "The Gamma-Gamma model of monetary value") shrinks each repeat buyer's mean basket
towards the population's. Both are written here with numpy and scipy against the published
formulas (the same terms as lifetimes 0.11.3, which benchmark I1 checks them against).

:func:`purchase_summary` turns a purchase log into one row per customer as of a cutoff, as
lifetimes' ``summary_data_from_transaction_data`` does; :func:`expected_value_table` gives each
customer's expected purchases, probability of being alive, expected basket and expected value
over a horizon.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize, special
from sklearn.base import BaseEstimator

logger = logging.getLogger(__name__)

SUMMARY_COLUMNS = ("frequency", "recency", "T", "monetary_value")
DAYS_PER_MONTH = 365.0 / 12.0
# Weeks run Monday to Sunday, as lifetimes' (pandas') "W" periods: counted from a Monday.
_WEEK_ORIGIN = pd.Timestamp("1970-01-05")


def purchase_summary(
    events: pd.DataFrame,
    as_of: pd.Timestamp,
    time_unit_days: int = 1,
    purchase_type: str | None = None,
) -> pd.DataFrame:
    """One row per customer with a purchase on or before ``as_of``: frequency, recency, T, value.

    Parameters
    ----------
    events
        retain's events table: ``customer_id``, ``occurred_at``, ``amount`` (``event_type`` when
        ``purchase_type`` is given). A purchase is an event with an amount.
    as_of
        The end of the observation period; later events are ignored.
    time_unit_days
        1 (days) or 7 (weeks, Monday to Sunday). Purchases in the same period are one purchase
        whose amount is their sum.
    purchase_type
        Only events of this ``event_type`` count (default: every event with an amount).

    Returns
    -------
    pd.DataFrame
        Indexed by ``customer_id`` (str), sorted: ``frequency`` (periods with a purchase after
        the first), ``recency`` (periods from the first purchase to the last), ``T`` (periods from
        the first purchase to ``as_of``), ``monetary_value`` (mean amount of the repeat periods;
        0 with no repeat purchase), as lifetimes' ``summary_data_from_transaction_data``.
    """
    if time_unit_days not in (1, 7):
        raise ValueError(f"time_unit_days must be 1 (days) or 7 (weeks), got {time_unit_days}")
    empty = pd.DataFrame({c: pd.Series(dtype=float) for c in SUMMARY_COLUMNS}, index=pd.Index([], name="customer_id", dtype=object))
    if events is None or "amount" not in events.columns or events.empty:
        return empty
    when = pd.to_datetime(events["occurred_at"])
    bought = (when <= as_of) & events["amount"].notna()
    if purchase_type is not None:
        bought &= events["event_type"].astype(object) == purchase_type
    if not bought.any():
        return empty
    origin = _WEEK_ORIGIN if time_unit_days == 7 else pd.Timestamp("1970-01-01")
    purchases = pd.DataFrame(
        {
            "customer_id": events.loc[bought, "customer_id"].astype(str).to_numpy(),
            "period": _period(when[bought], origin, time_unit_days),
            "amount": events.loc[bought, "amount"].to_numpy(dtype=float),
        }
    )
    periods = purchases.groupby(["customer_id", "period"], sort=True)["amount"].sum().reset_index()
    grouped = periods.groupby("customer_id", sort=True)
    first = grouped["period"].transform("min")
    repeat = periods.loc[periods["period"] > first]
    summary = pd.DataFrame(
        {
            "frequency": grouped.size() - 1,
            "recency": grouped["period"].max() - grouped["period"].min(),
            "T": _period(pd.Series([as_of]), origin, time_unit_days)[0] - grouped["period"].min(),
        }
    ).astype(float)
    mean_repeat = repeat.groupby("customer_id")["amount"].mean()
    summary["monetary_value"] = mean_repeat.reindex(summary.index).fillna(0.0).to_numpy()
    summary.index = summary.index.astype(object).rename("customer_id")
    return summary


def _period(stamps: pd.Series, origin: pd.Timestamp, unit_days: int) -> np.ndarray:
    days = (pd.to_datetime(stamps).dt.normalize() - origin) // pd.Timedelta(days=1)
    return np.floor_divide(np.asarray(days, dtype=np.int64), unit_days)


def _as_arrays(*columns: object) -> list[np.ndarray]:
    return [np.asarray(c, dtype=float) for c in columns]


def _weighted_unique(*columns: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Identical rows once, with how many times they occur (the likelihood sums over rows)."""
    stacked = np.column_stack(columns)
    unique, counts = np.unique(stacked, axis=0, return_counts=True)
    return [unique[:, i] for i in range(unique.shape[1])], counts.astype(float)


def _fit_log_params(objective: object, start: np.ndarray) -> tuple[np.ndarray, float, bool]:
    """Minimise ``objective`` over log-parameters: BFGS, then Nelder-Mead from its end point."""
    first = optimize.minimize(objective, start, method="BFGS", options={"gtol": 1e-8, "maxiter": 2000})
    polished = optimize.minimize(
        objective, first.x, method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 4000}
    )
    best = polished if polished.fun <= first.fun else first
    return best.x, float(best.fun), bool(np.isfinite(best.fun))


class BetaGeoModel(BaseEstimator):
    """The BG/NBD model of repeat purchases (Fader, Hardie & Lee 2005), fitted by maximum likelihood.

    While alive a customer buys at rate lambda ~ Gamma(r, alpha); after each purchase they drop
    out with probability p ~ Beta(a, b).

    Parameters
    ----------
    penalizer_coef
        L2 penalty on the parameters added to the mean negative log-likelihood, as lifetimes'
        ``penalizer_coef`` (0: plain maximum likelihood).

    Attributes
    ----------
    r_, alpha_, a_, b_ : float
        The fitted parameters.
    log_likelihood_ : float
        Total log-likelihood of the fitted data at the fitted parameters.
    n_customers_ : int
    """

    def __init__(self, penalizer_coef: float = 0.0) -> None:
        self.penalizer_coef = penalizer_coef

    @staticmethod
    def individual_log_likelihood(
        params: Sequence[float], frequency: object, recency: object, T: object
    ) -> np.ndarray:
        """Each customer's log-likelihood at ``params`` = (r, alpha, a, b): the paper's eq. 6.

        ln L = ln Gamma(r+x) - ln Gamma(r) + r ln alpha + ln B(a, b+x) - ln B(a, b)
        + ln[(alpha+T)^-(r+x) + 1{x>0} a/(b+x-1) (alpha+t_x)^-(r+x)].
        """
        r, alpha, a, b = params
        x, t_x, t = _as_arrays(frequency, recency, T)
        a1 = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha)
        a2 = special.betaln(a, b + x) - special.betaln(a, b)
        a3 = -(r + x) * np.log(alpha + t)
        a4 = np.where(
            x > 0, np.log(a) - np.log(b + np.maximum(x, 1) - 1) - (r + x) * np.log(alpha + t_x), -np.inf
        )
        return a1 + a2 + np.logaddexp(a3, a4)

    def fit(self, frequency: object, recency: object, T: object) -> BetaGeoModel:
        """Maximum likelihood (scipy.optimize on log-parameters) over the customers given."""
        x, t_x, t = _as_arrays(frequency, recency, T)
        if not len(x):
            raise ValueError("no customers to fit the BG/NBD model on")
        if np.any(t_x > t) or np.any(t_x < 0) or np.any((x == 0) & (t_x != 0)):
            raise ValueError("recency must lie in [0, T], and be 0 where frequency is 0")
        (ux, ut_x, ut), weights = _weighted_unique(x, t_x, t)
        total = weights.sum()

        def objective(log_params: np.ndarray) -> float:
            params = np.exp(log_params)
            ll = self.individual_log_likelihood(params, ux, ut_x, ut)
            value = -(weights * ll).sum() / total + self.penalizer_coef * float(np.sum(params**2))
            return float(value) if np.isfinite(value) else 1e300

        start = np.log([1.0, max(float(np.mean(t)), 1.0), 1.0, 1.0])
        log_params, _, ok = _fit_log_params(objective, start)
        if not ok:
            raise RuntimeError("the BG/NBD fit did not reach a finite likelihood")
        self.r_, self.alpha_, self.a_, self.b_ = (float(v) for v in np.exp(log_params))
        self.log_likelihood_ = float((weights * self.individual_log_likelihood(self.params_, ux, ut_x, ut)).sum())
        self.n_customers_ = len(x)
        return self

    @property
    def params_(self) -> tuple[float, float, float, float]:
        """(r, alpha, a, b)."""
        return self.r_, self.alpha_, self.a_, self.b_

    def probability_alive(self, frequency: object, recency: object, T: object) -> np.ndarray:
        """P(alive at T | x, t_x, T) = 1 / (1 + 1{x>0} a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x)): eq. 13."""
        r, alpha, a, b = self.params_
        x, t_x, t = _as_arrays(frequency, recency, T)
        log_odds = (r + x) * np.log((alpha + t) / (alpha + t_x)) + np.log(a) - np.log(b + np.maximum(x, 1) - 1)
        return np.where(x == 0, 1.0, special.expit(-log_odds))

    def expected_purchases_if_alive(self, t: float, frequency: object, recency: object, T: object) -> np.ndarray:
        """Expected purchases in (T, T+t] of a customer still alive at T, given their history.

        A customer alive at T is a fresh BG/NBD customer with parameters (r+x, alpha+T, a, b+x):
        (a+b+x-1)/(a-1) [1 - ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x; a+b+x-1; t/(alpha+T+t))],
        the numerator of the paper's eq. 10.
        """
        r, alpha, a, b = self.params_
        x, _, age = _as_arrays(frequency, recency, T)
        if t <= 0:
            return np.zeros(len(x))
        c = a + b + x - 1
        z = t / (alpha + age + t)
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            log_hyp = np.log(special.hyp2f1(r + x, b + x, c, z))
            # Euler's transformation where 2F1 overflows: 2F1(a,b;c;z) = (1-z)^(c-a-b) 2F1(c-a,c-b;c;z)
            alternative = np.log(special.hyp2f1(c - r - x, c - b - x, c, z)) + (c - r - x - b - x) * np.log1p(-z)
        log_hyp = np.where(np.isfinite(log_hyp), log_hyp, alternative)
        return (a + b + x - 1) / (a - 1) * -np.expm1(log_hyp + (r + x) * np.log((alpha + age) / (alpha + age + t)))

    def expected_purchases(self, t: float, frequency: object, recency: object, T: object) -> np.ndarray:
        """E[purchases in (T, T+t] | x, t_x, T]: the paper's eq. 10, P(alive) x the purchases if alive."""
        return self.probability_alive(frequency, recency, T) * self.expected_purchases_if_alive(
            t, frequency, recency, T
        )


class GammaGammaModel(BaseEstimator):
    """The Gamma-Gamma model of the mean basket (Fader & Hardie 2013), fitted by maximum likelihood.

    A customer's baskets are Gamma(p, nu) with nu ~ Gamma(q, v) across customers; their mean
    basket is E(M) = p nu^-1. Fit it on repeat buyers (frequency > 0, monetary value > 0); it
    assumes basket size and purchase frequency are independent.

    Parameters
    ----------
    penalizer_coef
        L2 penalty on the parameters added to the mean negative log-likelihood, as lifetimes'.

    Attributes
    ----------
    p_, q_, v_ : float
    log_likelihood_ : float
    n_customers_ : int
    """

    def __init__(self, penalizer_coef: float = 0.0) -> None:
        self.penalizer_coef = penalizer_coef

    @staticmethod
    def individual_log_likelihood(params: Sequence[float], frequency: object, monetary_value: object) -> np.ndarray:
        """Each repeat buyer's log-likelihood of their mean basket m over x baskets at (p, q, v).

        ln Gamma(px+q) - ln Gamma(px) - ln Gamma(q) + q ln v + (px-1) ln m + px ln x - (px+q) ln(xm+v).
        """
        p, q, v = params
        x, m = _as_arrays(frequency, monetary_value)
        return (
            special.gammaln(p * x + q) - special.gammaln(p * x) - special.gammaln(q) + q * np.log(v)
            + (p * x - 1) * np.log(m) + p * x * np.log(x) - (p * x + q) * np.log(x * m + v)
        )

    def fit(self, frequency: object, monetary_value: object) -> GammaGammaModel:
        """Maximum likelihood over repeat buyers (every frequency > 0 and monetary value > 0)."""
        x, m = _as_arrays(frequency, monetary_value)
        if not len(x):
            raise ValueError("no repeat buyers to fit the Gamma-Gamma model on")
        if np.any(x <= 0) or np.any(m <= 0):
            raise ValueError("the Gamma-Gamma model is fitted on repeat buyers: frequency and monetary value > 0")
        (ux, um), weights = _weighted_unique(x, m)
        total = weights.sum()

        def objective(log_params: np.ndarray) -> float:
            params = np.exp(log_params)
            ll = self.individual_log_likelihood(params, ux, um)
            value = -(weights * ll).sum() / total + self.penalizer_coef * float(np.sum(params**2))
            return float(value) if np.isfinite(value) else 1e300

        start = np.log([1.0, 2.0, max(float(np.mean(m)), 1.0)])
        log_params, _, ok = _fit_log_params(objective, start)
        if not ok:
            raise RuntimeError("the Gamma-Gamma fit did not reach a finite likelihood")
        self.p_, self.q_, self.v_ = (float(v) for v in np.exp(log_params))
        self.log_likelihood_ = float((weights * self.individual_log_likelihood(self.params_, ux, um)).sum())
        self.n_customers_ = len(x)
        return self

    @property
    def params_(self) -> tuple[float, float, float]:
        """(p, q, v)."""
        return self.p_, self.q_, self.v_

    def expected_average_value(self, frequency: object, monetary_value: object) -> np.ndarray:
        """E[M | x, m_x] = p (v + x m_x) / (p x + q - 1): eq. 5 (x = 0: the population mean p v / (q - 1)).

        Needs q > 1 (a finite population mean); NaN otherwise.
        """
        p, q, v = self.params_
        x, m = _as_arrays(frequency, monetary_value)
        m = np.where(x > 0, m, 0.0)
        if q <= 1:
            return np.full(len(x), np.nan)
        return p * (v + x * m) / (p * x + q - 1)


@dataclass(frozen=True)
class ValueModels:
    """A fitted BG/NBD and Gamma-Gamma pair, and the time unit their summaries were counted in."""

    purchases: BetaGeoModel
    spend: GammaGammaModel
    time_unit_days: int = 1


def fit_value_models(
    summary: pd.DataFrame, time_unit_days: int = 1, penalizer_coef: float = 0.0, min_repeat_buyers: int = 20
) -> ValueModels:
    """BG/NBD on every customer of ``summary``, Gamma-Gamma on its repeat buyers.

    Raises
    ------
    ValueError
        Fewer than ``min_repeat_buyers`` repeat buyers with a positive mean basket, or the
        Gamma-Gamma fit gives no finite population mean (q <= 1).
    RuntimeError
        A fit does not reach a finite likelihood.
    """
    repeat = summary.loc[(summary["frequency"] > 0) & (summary["monetary_value"] > 0)]
    if len(repeat) < min_repeat_buyers:
        raise ValueError(
            f"{len(repeat)} repeat buyer(s) with a positive basket, fewer than {min_repeat_buyers}: "
            "too few to fit BG/NBD and Gamma-Gamma"
        )
    purchases = BetaGeoModel(penalizer_coef).fit(summary["frequency"], summary["recency"], summary["T"])
    spend = GammaGammaModel(penalizer_coef).fit(repeat["frequency"], repeat["monetary_value"])
    if spend.q_ <= 1:
        raise ValueError(f"the Gamma-Gamma fit has q = {spend.q_:.3g} <= 1: no finite mean basket")
    return ValueModels(purchases=purchases, spend=spend, time_unit_days=time_unit_days)


def expected_value(
    models: ValueModels,
    summary: pd.DataFrame,
    horizon_days: float,
    if_alive: bool = False,
    monthly_discount_rate: float = 0.0,
) -> np.ndarray:
    """Expected spend over the next ``horizon_days`` per row of ``summary``.

    Expected purchases (BG/NBD) x expected basket (Gamma-Gamma). Undiscounted by default; with
    ``monthly_discount_rate`` d, the purchases expected in each month i of the horizon are worth
    1 / (1+d)^i (lifetimes' ``customer_lifetime_value`` in months; a last part-month counts as one).
    ``if_alive``: the purchases of a customer still active now (the spend lost if they leave now).
    """
    unit = models.time_unit_days
    basket = models.spend.expected_average_value(summary["frequency"], summary["monetary_value"])
    bg = models.purchases
    count = bg.expected_purchases_if_alive if if_alive else bg.expected_purchases
    args = (summary["frequency"], summary["recency"], summary["T"])
    if monthly_discount_rate == 0.0:
        return count(horizon_days / unit, *args) * basket
    ends = np.append(np.arange(DAYS_PER_MONTH, horizon_days, DAYS_PER_MONTH), horizon_days)
    total = np.zeros(len(summary))
    before = np.zeros(len(summary))
    for i, end in enumerate(ends, start=1):
        upto = count(end / unit, *args)
        total += (upto - before) / (1 + monthly_discount_rate) ** i
        before = upto
    return total * basket


def expected_value_table(
    events: pd.DataFrame,
    as_of: pd.Timestamp,
    horizon_days: int,
    time_unit_days: int = 1,
    penalizer_coef: float = 0.0,
    purchase_type: str | None = None,
    models: ValueModels | None = None,
) -> pd.DataFrame:
    """Per customer with a purchase on or before ``as_of``: expected purchases, P(alive), basket, value.

    Fits BG/NBD and Gamma-Gamma on the log up to ``as_of`` unless ``models`` are given.

    Returns
    -------
    pd.DataFrame
        :func:`purchase_summary` with ``expected_purchases`` (in the ``horizon_days`` after
        ``as_of``), ``probability_alive``, ``expected_average_value`` (Gamma-Gamma) and
        ``expected_value`` = expected purchases x expected average value (undiscounted).
    """
    summary = purchase_summary(events, as_of, time_unit_days, purchase_type)
    if models is None:
        models = fit_value_models(summary, time_unit_days, penalizer_coef)
    bg, unit = models.purchases, models.time_unit_days
    args = (summary["frequency"], summary["recency"], summary["T"])
    out = summary.copy()
    out["expected_purchases"] = bg.expected_purchases(horizon_days / unit, *args)
    out["probability_alive"] = bg.probability_alive(*args)
    out["expected_average_value"] = models.spend.expected_average_value(summary["frequency"], summary["monetary_value"])
    out["expected_value"] = out["expected_purchases"] * out["expected_average_value"]
    return out
