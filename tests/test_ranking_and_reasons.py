from __future__ import annotations

import numpy as np
import pandas as pd

from retain.churn.reasons import signal_contributions, top_reasons
from retain.config import Playbook, PlaybookRule, RiskTier
from retain.outreach.playbook import assign_outreach
from retain.outreach.ranking import rank_customers, risk_tiers

TIERS = (
    RiskTier(name="high", min_probability=0.5),
    RiskTier(name="medium", min_probability=0.2),
    RiskTier(name="low", min_probability=0.0),
)
FEATURE_SIGNALS = {
    "first_response_hours_mean_90d": "slow_first_response",
    "first_response_hours_max_90d": "slow_first_response",
    "open_tickets": "open_tickets",
    "oldest_open_ticket_hours": "open_tickets",
    "tenure_days": "tenure",
}


def _attributions() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "first_response_hours_mean_90d": [0.4, -0.1, 0.0],
            "first_response_hours_max_90d": [0.3, -0.2, 0.0],
            "open_tickets": [0.1, 0.5, -0.3],
            "oldest_open_ticket_hours": [0.2, 0.1, 0.0],
            "tenure_days": [-0.5, 0.2, -0.1],
            "baseline": [-2.0, -2.0, -2.0],
        },
        index=[10, 11, 12],
    )


def _features() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "first_response_hours_mean_90d": [31.2, 2.0, np.nan],
            "first_response_hours_max_90d": [60.0, 3.0, np.nan],
            "open_tickets": [1.0, 2.0, 0.0],
            "oldest_open_ticket_hours": [50.0, 48.0, np.nan],
            "tenure_days": [400.0, 20.0, 900.0],
            "awaiting_first_response": [0.0, 1.0, 0.0],
            "awaiting_first_response_hours_max": [np.nan, 30.0, np.nan],
        },
        index=[10, 11, 12],
    )


def test_contributions_are_summed_per_signal() -> None:
    sums = signal_contributions(_attributions(), FEATURE_SIGNALS)
    assert list(sums.columns) == ["open_tickets", "slow_first_response", "tenure"]
    np.testing.assert_allclose(sums["slow_first_response"], [0.7, -0.3, 0.0])
    np.testing.assert_allclose(sums["open_tickets"], [0.3, 0.6, -0.3])


def test_top_reasons_keep_only_risk_raising_signals_with_figures() -> None:
    reasons = top_reasons(_attributions(), _features(), FEATURE_SIGNALS, k=3)
    assert reasons.loc[10, "reason_1_signal"] == "slow_first_response"
    # median of the known maxima (60, 3) is 31.5 h
    assert (
        reasons.loc[10, "reason_1"]
        == "Waited up to 2.5 days for a first reply (last 90 days); median customer: 1.3 days"
    )
    # 10 has 1 open ticket, the median customer 1 too, so the open ticket is quoted by its age
    assert reasons.loc[10, "reason_2_signal"] == "open_tickets"
    assert (
        reasons.loc[10, "reason_2"]
        == "Oldest open ticket has been open for 2.1 days; median customer: 2 days"
    )
    assert reasons.loc[10, "reason_3_signal"] is None  # tenure lowers this customer's risk
    assert reasons.loc[11, "reason_1_signal"] == "open_tickets"
    assert (
        reasons.loc[11, "reason_1"]
        == "2 ticket(s) still open, the oldest for 2 days; median customer: 1"
    )
    assert reasons.loc[11, "reason_2"] == "Customer for 20 days; median customer: 400 days"
    assert pd.isna(reasons.loc[11, "reason_3"])  # slow_first_response lowers 11's risk
    assert reasons.loc[12].isna().all()  # nothing raises customer 12's risk


def test_tiers_by_probability() -> None:
    tiers = risk_tiers(pd.Series([0.9, 0.5, 0.49, 0.2, 0.0]), TIERS)
    assert tiers.tolist() == ["high", "high", "medium", "medium", "low"]


def test_ranking_by_value_at_risk_with_playbook_actions() -> None:
    scored = pd.DataFrame(
        {
            "customer_id": ["A", "B", "C", "D"],
            "churn_probability": [0.9, 0.3, 0.6, 0.3],
            "monthly_value": [10.0, 100.0, 50.0, 100.0],
        }
    )
    reasons = pd.DataFrame(
        {
            "reason_1": ["r", "r", "r", None],
            "reason_2": [None, "r", None, None],
            "reason_1_signal": ["theme_pricing", "tenure", "theme_pricing", None],
            "reason_2_signal": [None, "open_tickets", None, None],
        }
    )
    playbook = Playbook(
        default_action="default",
        rules=(
            PlaybookRule(signal="theme_pricing", action="discount", min_tier="medium"),
            PlaybookRule(signal="open_tickets", action="escalate"),
        ),
    )
    ranked = assign_outreach(
        rank_customers(scored, reasons, TIERS), playbook, None, pd.Timestamp("2025-01-01"), ["high", "medium", "low"]
    )
    # value at risk: A 9, B 30, C 30, D 30 -> ties broken by probability, then id
    assert ranked["customer_id"].tolist() == ["C", "B", "D", "A"]
    assert ranked["rank"].tolist() == [1, 2, 3, 4]
    np.testing.assert_allclose(ranked["value_at_risk"], [30.0, 30.0, 30.0, 9.0])
    actions = dict(zip(ranked["customer_id"], ranked["recommended_action"], strict=True))
    # B's first reason has no rule, its second does; D has no reasons
    assert actions == {"C": "discount", "B": "escalate", "D": "default", "A": "discount"}


def test_min_tier_blocks_a_rule_below_it() -> None:
    scored = pd.DataFrame({"customer_id": ["L"], "churn_probability": [0.1], "monthly_value": [5.0]})
    reasons = pd.DataFrame({"reason_1": ["r"], "reason_1_signal": ["theme_pricing"]})
    playbook = Playbook(
        default_action="default",
        rules=(PlaybookRule(signal="theme_pricing", action="discount", min_tier="medium"),),
    )
    ranked = assign_outreach(
        rank_customers(scored, reasons, TIERS), playbook, None, pd.Timestamp("2025-01-01"), ["high", "medium", "low"]
    )
    assert ranked.loc[0, "recommended_action"] == "default"


def test_a_ticket_waiting_for_a_reply_is_named_before_past_waits() -> None:
    attributions = _attributions().assign(first_response_hours_mean_90d=[0.4, 0.9, 0.0])
    reasons = top_reasons(attributions, _features(), FEATURE_SIGNALS, k=1)
    assert (
        reasons.loc[11, "reason_1"]
        == "1 ticket(s) waiting for a first reply now, the oldest for 30 h; median customer: 0"
    )
    assert (
        reasons.loc[10, "reason_1"]
        == "Waited up to 2.5 days for a first reply (last 90 days); median customer: 1.3 days"
    )


def test_scoring_a_date_before_any_signup_names_the_problem() -> None:
    """A date with no active customer is a clear ScoringError, not a LightGBM crash."""
    import pytest

    from retain.config import FeatureConfig, ScoringConfig
    from retain.contracts import World
    from retain.scoring import ScoringError, ScoringModels, score_world

    def nothing(columns: dict[str, str]) -> pd.DataFrame:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in columns.items()})

    world = World(
        customers=pd.DataFrame(
            {
                "customer_id": ["A", "B"],
                "signup_at": pd.to_datetime(["2024-03-01", "2024-04-01"]),
                "segment": ["smb", "smb"],
                "plan": ["pro", "pro"],
                "region": ["eu", "eu"],
                "monthly_value": [10.0, 20.0],
                "churned_at": pd.to_datetime([pd.NaT, pd.NaT]),
            }
        ),
        events=nothing({"customer_id": "object", "occurred_at": "datetime64[ns]", "event_type": "object"}),
        tickets=nothing(
            {"customer_id": "object", "opened_at": "datetime64[ns]",
             "first_response_at": "datetime64[ns]", "resolved_at": "datetime64[ns]"}
        ),
        feedback=nothing(
            {"feedback_id": "object", "customer_id": "object", "created_at": "datetime64[ns]", "text": "object"}
        ),
    )
    from retain.churn.model import ChurnClassifier

    X = pd.DataFrame({"tenure_days": np.arange(40.0), "monthly_value": np.arange(40.0) % 7})
    churn = ChurnClassifier(n_estimators=5, min_child_samples=2, n_jobs=1).fit(X, np.arange(40) % 2)
    models = ScoringModels(sentiment=None, themes=None, churn=churn, versions={})
    with pytest.raises(ScoringError, match="no customer is in the population as of 2024-01-01"):
        score_world(
            world, pd.Timestamp("2024-01-01"), models, [], FeatureConfig(), ScoringConfig(),
            Playbook(default_action="call"),
        )
