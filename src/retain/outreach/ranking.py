"""The ranked at-risk list: value at risk, risk tiers, order (actions: ``outreach.playbook``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from retain.config import RiskTier

RANKED_COLUMNS = (
    "rank",
    "customer_id",
    "churn_probability",
    "monthly_value",
    "value_at_risk",
    "risk_tier",
)
CUSTOMER_ATTRIBUTES = ("segment", "region", "plan")
"""Customer attributes carried into the list where the data has them (to filter it by)."""


def risk_tiers(probabilities: pd.Series, tiers: Sequence[RiskTier]) -> pd.Series:
    """Name each probability's tier: the first tier (highest first) whose minimum it reaches."""
    names = np.array([t.name for t in tiers], dtype=object)
    thresholds = np.array([t.min_probability for t in tiers])
    # tiers descend, so the first threshold met is the count of thresholds strictly above p
    index = (probabilities.to_numpy()[:, None] < thresholds[None, :]).sum(axis=1)
    index = np.minimum(index, len(tiers) - 1)
    return pd.Series(names[index], index=probabilities.index, dtype=object)


def rank_customers(
    scored: pd.DataFrame,
    reasons: pd.DataFrame,
    tiers: Sequence[RiskTier],
) -> pd.DataFrame:
    """Rank customers by value at risk (churn probability x monthly value), highest first.

    Parameters
    ----------
    scored:
        ``customer_id``, ``churn_probability`` and ``monthly_value``, one row per customer,
        optionally the customer attributes ``segment``, ``region``, ``plan``.
    reasons:
        ``reason_1..k`` and ``reason_1_signal..k`` (``reasons.top_reasons``), optionally
        ``reason_1_evidence..k`` (``evidence.reason_evidence``) and ``explained`` (whether
        reasons were computed for the row), same index as ``scored``.
    tiers:
        From the scoring config, highest first.

    Returns
    -------
    pd.DataFrame
        ``rank`` (1 = act first), ``customer_id``, ``churn_probability``, ``monthly_value``,
        ``value_at_risk``, ``risk_tier``, the customer attributes present, and the reasons
        (phrases, signals, evidence). Ties in value at risk are broken by probability, then customer
        id, so the order is reproducible.
    """
    attributes = [c for c in CUSTOMER_ATTRIBUTES if c in scored.columns]
    out = scored[["customer_id", "churn_probability", "monthly_value"]].copy()
    out["value_at_risk"] = out["churn_probability"] * out["monthly_value"]
    out["risk_tier"] = risk_tiers(out["churn_probability"], tiers)
    for column in attributes:
        out[column] = scored[column].astype(object)
    signal_cols = [c for c in reasons.columns if c.endswith("_signal")]
    evidence_cols = [c for c in reasons.columns if c.endswith("_evidence")]
    flags = [c for c in ("explained",) if c in reasons.columns]
    reason_cols = [c for c in reasons.columns if c not in {*signal_cols, *evidence_cols, *flags}]
    out = out.join(reasons[reason_cols + signal_cols + evidence_cols + flags])
    out = out.sort_values(
        ["value_at_risk", "churn_probability", "customer_id"],
        ascending=[False, False, True],
        kind="stable",
    ).reset_index(drop=True)
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    return out
