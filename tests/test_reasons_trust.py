"""Reasons a support lead can trust: risky side only, figure and reference, never value, evidence."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from retain.churn.evidence import reason_evidence
from retain.churn.features import FEATURE_SIGNALS
from retain.churn.reasons import risky_directions, signal_of, top_reasons
from retain.outreach.ranking import rank_customers

IDS = ["A", "B", "C", "D", "E"]


def _buyers() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Five customers: fewer purchases go with more risk, and every attribution is positive."""
    features = pd.DataFrame(
        {
            "purchases_30d": [0.0, 2.0, 3.0, 5.0, 4.0],
            "purchases_180d": [2.0, 7.0, 7.0, 12.0, 9.0],
            "monthly_value": [10.0, 20.0, 30.0, 400.0, 50.0],
        },
        index=IDS,
    )
    attributions = pd.DataFrame(
        {
            "purchases_30d": [0.0, 0.0, 0.0, 0.0, 0.0],
            "purchases_180d": [0.6, 0.1, 0.1, 0.05, 0.08],
            "monthly_value": [0.9, 0.9, 0.9, 0.9, 0.9],
            "baseline": [-2.0] * 5,
        },
        index=IDS,
    )
    return features, attributions


def test_an_above_average_buyer_never_gets_the_purchases_reason() -> None:
    features, attributions = _buyers()
    reasons = top_reasons(attributions, features, FEATURE_SIGNALS, k=2)
    # median of purchases_180d is 7; the longest window present (180) is quoted
    assert reasons.loc["A", "reason_1"] == "2 purchase(s) in the last 180 days; median customer: 7"
    assert reasons.loc["A", "reason_1_signal"] == "purchases"
    for buyer in ["B", "C", "D", "E"]:  # at or above the median, despite positive attribution
        assert reasons.loc[buyer].isna().all(), buyer


def test_the_risky_direction_is_read_from_the_data() -> None:
    features, attributions = _buyers()
    directions = risky_directions(attributions, features)
    assert directions["purchases_180d"] == -1
    assert directions["purchases_30d"] == 0  # constant attribution: cannot tell
    assert directions["monthly_value"] == 0


def test_a_model_that_reads_a_figure_backwards_gives_no_reason_quoting_it() -> None:
    """If more purchases raised risk, "12 purchases ..." would read as nonsense: no reason."""
    features, attributions = _buyers()
    backwards = attributions.assign(purchases_180d=[0.01, 0.1, 0.1, 0.6, 0.3])
    reasons = top_reasons(backwards, features, FEATURE_SIGNALS, k=2)
    assert reasons["reason_1"].isna().all()


def test_value_is_never_a_reason() -> None:
    features, attributions = _buyers()
    reasons = top_reasons(attributions, features, FEATURE_SIGNALS, k=3)
    signals = reasons.filter(like="_signal").stack().dropna().tolist()
    assert "value" not in signals
    assert not reasons.filter(regex=r"^reason_\d$").stack().dropna().str.contains("Pays").any()


def _telco() -> tuple[pd.DataFrame, pd.DataFrame]:
    features = pd.DataFrame(
        {
            "Contract": ["Month-to-month", "Month-to-month", "Two year", "One year"],
            "tenure": [2.0, 29.0, 40.0, 29.0],
            "SeniorCitizen": [1, 0, 0, 0],
            "MonthlyCharges": [99.5, 20.0, 70.0, 50.0],
        },
        index=["c1", "c2", "c3", "c4"],
    )
    attributions = pd.DataFrame(
        {
            "Contract": [0.5, 0.4, -0.6, -0.2],
            "tenure": [0.45, 0.1, -0.3, 0.1],
            "SeniorCitizen": [0.3, -0.05, -0.05, -0.05],
            "MonthlyCharges": [2.0, -0.1, 0.3, 0.1],
            "baseline": [-1.0] * 4,
        },
        index=features.index,
    )
    return features, attributions


def test_flat_columns_are_their_own_signals() -> None:
    lookup = signal_of(FEATURE_SIGNALS)
    assert lookup("Contract") == "column:Contract"
    assert lookup("logins_90d") == "engagement"


def test_flat_table_reasons_name_the_column_and_the_value() -> None:
    features, attributions = _telco()
    reasons = top_reasons(
        attributions, features, FEATURE_SIGNALS, k=3, never_reasons=["MonthlyCharges"]
    )
    assert reasons.loc["c1", ["reason_1", "reason_2", "reason_3"]].tolist() == [
        "Contract: Month-to-month (50% of customers)",
        "tenure: 2 (median customer: 29)",
        "SeniorCitizen: 1 (25% of customers)",
    ]
    assert reasons.loc["c1", "reason_1_signal"] == "column:Contract"
    # c2's tenure (29) is the median: typical, not a reason; Month-to-month is risky
    assert reasons.loc["c2", "reason_1"] == "Contract: Month-to-month (50% of customers)"
    assert pd.isna(reasons.loc["c2", "reason_2"])
    # the value column named by the caller is never a reason, even with the largest attribution
    assert "column:MonthlyCharges" not in reasons.filter(like="_signal").stack().dropna().tolist()
    assert reasons.loc["c3"].isna().all()


def _population(seed: int = 7, n: int = 60) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Engineered features with attributions shaped the way a churn model's are."""
    rng = np.random.default_rng(seed)
    risky_up = {  # column -> values; higher is riskier
        "first_response_hours_max_90d": rng.gamma(2.0, 8.0, n),
        "resolution_hours_mean_90d": rng.gamma(2.0, 20.0, n),
        "tickets_90d": rng.poisson(2.0, n).astype(float),
        "open_tickets": rng.poisson(0.7, n).astype(float),
        "oldest_open_ticket_hours": rng.gamma(2.0, 30.0, n),
        "days_since_last_event": rng.gamma(2.0, 6.0, n),
        "negative_feedback_share_90d": rng.uniform(0, 1, n),
        "theme_billing_negative_90d": rng.gamma(1.0, 0.5, n),
    }
    risky_down = {  # lower is riskier
        "logins_30d": rng.poisson(8.0, n).astype(float),
        "logins_90d": rng.poisson(25.0, n).astype(float),
        "purchases_90d": rng.poisson(3.0, n).astype(float),
        "csat_mean_90d": rng.uniform(1, 5, n),
        "nps_last": rng.integers(0, 11, n).astype(float),
        "tenure_days": rng.uniform(10, 1000, n),
        "usage_trend": rng.uniform(0, 2, n),
    }
    features = pd.DataFrame({**risky_up, **risky_down})
    features["monthly_value"] = rng.uniform(5, 500, n)
    features["plan"] = pd.Categorical(rng.choice(["basic", "pro"], n))
    standard = (features[list(risky_up) + list(risky_down)] - features.mean(numeric_only=True)) / (
        features.std(numeric_only=True)
    )
    standard = standard[list(risky_up) + list(risky_down)]
    attributions = 0.3 * standard
    attributions[list(risky_down)] *= -1
    attributions["monthly_value"] = 0.5
    attributions["plan"] = np.where(features["plan"] == "basic", 0.2, -0.2)
    attributions["baseline"] = -2.0
    return features, attributions


def test_every_phrase_quotes_the_customers_figure_and_a_reference() -> None:
    features, attributions = _population()
    reasons = top_reasons(attributions, features, FEATURE_SIGNALS, k=3)
    phrases = reasons.filter(regex=r"^reason_\d$").stack().dropna()
    assert len(phrases) > 60  # most customers have reasons
    reference = re.compile(r"\d.*; median customer: \d|^\w+: .+ \(\d+% of customers\)$")
    assert phrases.map(lambda p: bool(reference.search(p))).all(), phrases[
        ~phrases.map(lambda p: bool(reference.search(p)))
    ]
    assert "value" not in reasons.filter(like="_signal").stack().dropna().tolist()
    # the figure quoted for engagement is the customer's own logins in the longest window
    for i in range(1, 4):
        engaged = reasons[f"reason_{i}_signal"] == "engagement"
        for row in reasons.index[engaged]:
            logins = features.loc[row, "logins_90d"]
            assert reasons.loc[row, f"reason_{i}"].startswith(
                f"{logins:.0f} login(s) in the last 90"
            )
            assert logins < features["logins_90d"].median()


# --------------------------------------------------------------------------------------------
# Evidence

AS_OF = pd.Timestamp("2024-06-30")


def _tickets() -> pd.DataFrame:
    t = pd.to_datetime
    return pd.DataFrame(
        {
            "ticket_id": ["T1", "T2", "T3", "T4", "T5", "T6"],
            "customer_id": ["A", "A", "A", "A", "A", "B"],
            "opened_at": t(
                ["2024-06-01", "2024-03-01", "2024-06-20", "2024-07-05", "2024-06-25", "2024-06-10"]
            ),
            "first_response_at": t(
                ["2024-06-02", "2024-03-02", None, "2024-07-06", "2024-06-26", "2024-06-10"]
            ),
            "resolved_at": t(["2024-06-03", "2024-03-05", None, None, "2024-07-02", "2024-06-11"]),
            "channel": ["email"] * 6,
            "reopened_count": [0, 0, 0, 0, 2, 1],
            "csat": [2.0, 1.0, np.nan, np.nan, 1.0, np.nan],
            "escalated": [False, True, False, True, True, True],
        }
    )


def _feedback() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "feedback_id": ["F1", "F2", "F3", "F4", "F5"],
            "customer_id": ["A", "A", "A", "A", "A"],
            "created_at": pd.to_datetime(
                ["2024-06-15", "2024-05-01", "2024-07-01", "2024-01-01", "2024-06-20"]
            ),
            "text": ["x"] * 5,
            "nps": [np.nan, np.nan, 1.0, 3.0, 8.0],
            "ces": [np.nan, 6.0, 7.0, np.nan, np.nan],
        }
    )


def _scores() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "feedback_id": ["F1", "F2", "F3", "F4", "F5"],
            "sentiment_negative": [0.9, 0.2, 0.9, 0.9, 0.1],
            "theme_billing": [0.8, 0.9, 0.9, 0.9, 0.1],
        }
    )


SIGNALS = [
    "repeated_contacts",
    "open_tickets",
    "slow_first_response",
    "slow_resolution",
    "low_csat",
    "reopened_tickets",
    "escalations",
    "negative_feedback",
    "theme_billing",
    "low_nps",
    "high_effort",
    "tenure",
    "column:Contract",
]


def _reason_rows(customer: str) -> tuple[pd.DataFrame, list[str]]:
    rows = pd.DataFrame({"reason_1_signal": SIGNALS + [None]})
    return rows, [customer] * len(rows)


def test_evidence_is_the_rows_in_the_window_and_nothing_after_as_of() -> None:
    rows, customers = _reason_rows("A")
    evidence = reason_evidence(
        rows, customers, AS_OF, _tickets(), _feedback(), (30, 90), feedback_scores=_scores()
    )
    got = dict(zip(SIGNALS + ["none"], evidence["reason_1_evidence"], strict=True))
    # window (2024-04-01, 2024-06-30]: T2 is older, T4 opened after as_of; T5 resolves after
    assert got["repeated_contacts"] == "T1|T3|T5"
    assert got["open_tickets"] == "T3|T5"
    assert got["slow_first_response"] == "T1|T3|T5"  # T1, T5 answered; T3 still waiting
    assert got["slow_resolution"] == "T1"
    assert got["low_csat"] == "T1"  # T5's csat comes after as_of
    assert got["reopened_tickets"] is None  # T5's reopening is not known at as_of
    assert got["escalations"] is None
    assert got["negative_feedback"] == "F1"  # F2 scored positive; F3 after as_of
    assert got["theme_billing"] == "F2|F1"  # in time order; F4 outside the window
    assert got["low_nps"] == "F5"  # the latest answer on/before as_of, not F3 after it
    assert got["high_effort"] == "F2"
    assert got["tenure"] is None and got["column:Contract"] is None and got["none"] is None

    rows_b, customers_b = _reason_rows("B")
    evidence_b = reason_evidence(rows_b, customers_b, AS_OF, _tickets(), _feedback(), (30, 90))
    got_b = dict(zip(SIGNALS + ["none"], evidence_b["reason_1_evidence"], strict=True))
    assert got_b["escalations"] == "T6" and got_b["reopened_tickets"] == "T6"
    assert got_b["negative_feedback"] is None  # B left no feedback


def test_evidence_without_text_scores_is_all_feedback_in_the_window() -> None:
    rows, customers = _reason_rows("A")
    evidence = reason_evidence(rows, customers, AS_OF, _tickets(), _feedback(), (30, 90))
    got = dict(zip(SIGNALS + ["none"], evidence["reason_1_evidence"], strict=True))
    assert got["negative_feedback"] == "F2|F1|F5"
    assert got["theme_billing"] == "F2|F1|F5"


def test_evidence_uses_the_longest_window() -> None:
    rows, customers = _reason_rows("A")
    evidence = reason_evidence(rows, customers, AS_OF, _tickets(), None, (30, 180))
    assert evidence.loc[0, "reason_1_evidence"] == "T2|T1|T3|T5"


@pytest.mark.parametrize("tickets, feedback", [(None, None), ("empty", "empty")])
def test_missing_tables_give_empty_evidence(tickets: str | None, feedback: str | None) -> None:
    rows, customers = _reason_rows("A")
    t = _tickets().iloc[:0] if tickets == "empty" else None
    f = _feedback().iloc[:0] if feedback == "empty" else None
    evidence = reason_evidence(rows, customers, AS_OF, t, f, (30, 90), feedback_scores=_scores())
    assert list(evidence.columns) == ["reason_1_evidence"]
    assert evidence["reason_1_evidence"].isna().all()


def test_the_ranked_list_carries_the_evidence_after_the_signals() -> None:
    scored = pd.DataFrame(
        {"customer_id": ["A", "B"], "churn_probability": [0.9, 0.1], "monthly_value": [1.0, 1.0]}
    )
    reasons = pd.DataFrame(
        {
            "reason_1": ["r", None],
            "reason_1_signal": ["open_tickets", None],
            "reason_1_evidence": ["T3|T5", None],
        }
    )
    ranked = rank_customers(scored, reasons, _tiers())
    assert list(ranked.columns[-3:]) == ["reason_1", "reason_1_signal", "reason_1_evidence"]
    assert ranked.loc[0, "reason_1_evidence"] == "T3|T5"


def _tiers() -> tuple:
    from retain.config import RiskTier

    return (RiskTier(name="high", min_probability=0.5), RiskTier(name="low", min_probability=0.0))


def test_a_figure_that_prints_like_the_reference_is_no_reason() -> None:
    features = pd.DataFrame({"theme_pricing_negative_90d": [0.04, 0.01, 0.02, 0.03, 0.6]})
    attributions = pd.DataFrame({"theme_pricing_negative_90d": [0.1, -0.2, -0.1, 0.0, 0.5]})
    reasons = top_reasons(attributions, features, FEATURE_SIGNALS, k=1)
    # 0.04 is above the median 0.03, but "0.0; median customer: 0.0" would read as typical
    assert pd.isna(reasons.loc[0, "reason_1"])
    assert reasons.loc[4, "reason_1"] == (
        "0.6 negative comment(s) about price and value in the last 90 days; median customer: 0.0"
    )


def test_one_fact_behind_two_signals_is_quoted_once() -> None:
    """A purchase log: every event is a purchase, so days since the last event and since the
    last purchase are one column of numbers; the signal raising the risk more quotes it."""
    days = [500.0, 100.0, 90.0, 80.0, 70.0]
    features = pd.DataFrame({"days_since_last_event": days, "days_since_last_purchase": days}, index=IDS)
    attributions = pd.DataFrame(
        {"days_since_last_event": [0.3, -0.1, -0.1, -0.2, -0.2],
         "days_since_last_purchase": [0.5, -0.1, -0.1, -0.2, -0.2], "baseline": [-1.0] * 5},
        index=IDS,
    )
    reasons = top_reasons(attributions, features, FEATURE_SIGNALS, k=3)
    assert reasons.loc["A", "reason_1"] == "Last purchase 500 days ago; median customer: 90 days"
    assert reasons.loc["A", "reason_1_signal"] == "purchases"
    assert reasons.loc["A", ["reason_2", "reason_3"]].isna().all()

    # different numbers are different facts: both are quoted
    features["days_since_last_event"] = [400.0, 100.0, 90.0, 80.0, 70.0]
    reasons = top_reasons(attributions, features, FEATURE_SIGNALS, k=3)
    assert reasons.loc["A", "reason_2"] == "No activity for 400 days; median customer: 90 days"
