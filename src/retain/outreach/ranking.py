"""The ranked at-risk list: value at risk, risk tiers, recommended actions, order."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from retain.config import Playbook, RiskTier

RANKED_COLUMNS = (
    "rank",
    "customer_id",
    "churn_probability",
    "monthly_value",
    "value_at_risk",
    "risk_tier",
)


def risk_tiers(probabilities: pd.Series, tiers: Sequence[RiskTier]) -> pd.Series:
    """Name each probability's tier: the first tier (highest first) whose minimum it reaches."""
    names = np.array([t.name for t in tiers], dtype=object)
    thresholds = np.array([t.min_probability for t in tiers])
    # tiers descend, so the first threshold met is the count of thresholds strictly above p
    index = (probabilities.to_numpy()[:, None] < thresholds[None, :]).sum(axis=1)
    index = np.minimum(index, len(tiers) - 1)
    return pd.Series(names[index], index=probabilities.index, dtype=object)


def recommended_actions(
    reason_signals: pd.DataFrame, tiers: pd.Series, playbook: Playbook, tier_order: Sequence[str]
) -> pd.Series:
    """The playbook action for each customer: the first of its reasons (in order) that has a rule.

    A rule with ``min_tier`` applies only to customers in that tier or a higher one
    (``tier_order`` lists tier names from highest to lowest).
    """
    rank_of = {name: i for i, name in enumerate(tier_order)}
    tier_rank = tiers.map(rank_of).to_numpy()
    actions = pd.Series(playbook.default_action, index=reason_signals.index, dtype=object)
    decided = np.zeros(len(actions), dtype=bool)
    for column in reason_signals.columns:
        signals = reason_signals[column].to_numpy()
        for rule in playbook.rules:
            match = (signals == rule.signal) & ~decided
            if rule.min_tier is not None:
                match &= tier_rank <= rank_of.get(rule.min_tier, len(tier_order))
            actions[match] = rule.action
            decided |= match
    return actions


def rank_customers(
    scored: pd.DataFrame,
    reasons: pd.DataFrame,
    playbook: Playbook,
    tiers: Sequence[RiskTier],
) -> pd.DataFrame:
    """Rank customers by value at risk (churn probability x monthly value), highest first.

    Parameters
    ----------
    scored:
        ``customer_id``, ``churn_probability`` and ``monthly_value``, one row per customer.
    reasons:
        ``reason_1..k`` and ``reason_1_signal..k`` (``reasons.top_reasons``), optionally
        ``reason_1_evidence..k`` (``evidence.reason_evidence``), same index as ``scored``.
    playbook, tiers:
        From ``configs/playbook.yaml`` and the scoring config.

    Returns
    -------
    pd.DataFrame
        ``rank`` (1 = act first), ``customer_id``, ``churn_probability``, ``monthly_value``,
        ``value_at_risk``, ``risk_tier``, the reasons (phrases, signals, evidence), and
        ``recommended_action``. Ties in value at risk are broken by probability, then customer
        id, so the order is reproducible.
    """
    out = scored[["customer_id", "churn_probability", "monthly_value"]].copy()
    out["value_at_risk"] = out["churn_probability"] * out["monthly_value"]
    out["risk_tier"] = risk_tiers(out["churn_probability"], tiers)
    signal_cols = [c for c in reasons.columns if c.endswith("_signal")]
    evidence_cols = [c for c in reasons.columns if c.endswith("_evidence")]
    reason_cols = [c for c in reasons.columns if c not in {*signal_cols, *evidence_cols}]
    out = out.join(reasons[reason_cols + signal_cols + evidence_cols])
    out["recommended_action"] = recommended_actions(
        reasons[signal_cols], out["risk_tier"], playbook, [t.name for t in tiers]
    )
    out = out.sort_values(
        ["value_at_risk", "churn_probability", "customer_id"],
        ascending=[False, False, True],
        kind="stable",
    ).reset_index(drop=True)
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    return out
