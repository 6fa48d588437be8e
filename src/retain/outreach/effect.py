"""The measured effect of outreach: churn of contacted customers against the control group.

Pure functions of an outreach plan (``outreach_plan.parquet`` of a scoring run), the churn
outcomes once the horizon has passed, and optionally who was actually contacted; where those
come from (files, a database) is the caller's business. ``docs/outreach.md`` says how to read
the table.
"""

from __future__ import annotations

import math
from collections.abc import Collection

import numpy as np
import pandas as pd
from scipy.stats import norm

from retain.outreach.playbook import ASSIGNED, HELD_OUT

ALL_ACTIONS = "(all actions)"
INTENTION_TO_TREAT = "intention_to_treat"
PER_PROTOCOL = "per_protocol"
EFFECT_COLUMNS = (
    "action", "analysis", "n_treated", "churned_treated", "churn_rate_treated",
    "n_control", "churned_control", "churn_rate_control", "difference", "ci_low", "ci_high",
)


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion (NaN, NaN for ``n == 0``)."""
    if n == 0:
        return math.nan, math.nan
    z = float(norm.ppf(0.5 + confidence / 2))
    p = successes / n
    denominator = 1 + z**2 / n
    centre = (p + z**2 / (2 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe_interval(
    x1: int, n1: int, x2: int, n2: int, confidence: float = 0.95
) -> tuple[float, float, float]:
    """Difference ``x1/n1 - x2/n2`` of two independent proportions with Newcombe's hybrid score interval.

    Newcombe (1998), method 10: the Wilson intervals of each proportion combined. Better than the
    Wald interval for small groups and rates near 0 or 1, as churn rates are. NaN when a
    group is empty.
    """
    if n1 == 0 or n2 == 0:
        return math.nan, math.nan, math.nan
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = wilson_interval(x1, n1, confidence)
    l2, u2 = wilson_interval(x2, n2, confidence)
    d = p1 - p2
    return d, d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


def outreach_effect(
    plan: pd.DataFrame,
    outcomes: pd.Series,
    contacted: Collection[str] | None = None,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Churn of treated against control customers, overall and per playbook action.

    Only customers the teams would have contacted that day are compared: ``assigned``
    (treated) against ``held_out`` (control customers who would have been assigned). The
    control group was drawn at random within risk deciles, so within that set the two groups
    differ only by the outreach; queued and cooled-down customers were not going to be
    contacted and are left out of both.

    Two analyses:

    - **intention to treat**: every assigned customer, contacted or not, against control. The
      effect of *planning* outreach this way; unbiased, diluted by customers never reached.
    - **per protocol** (only when ``contacted`` is given): assigned customers who were actually
      contacted against control. Larger when outreach works, but the customers who were
      reached may differ from those who were not (a customer who picks up the phone may be
      less likely to leave anyway), so read it beside the first.

    Parameters
    ----------
    plan:
        One scoring run's plan: ``customer_id``, ``control``, ``outreach_status``,
        ``recommended_action``.
    outcomes:
        ``churned`` (0/1) indexed by ``customer_id``, for customers whose horizon has passed;
        customers missing or NaN here are left out.
    contacted:
        Ids of the customers actually contacted for this plan (e.g. contact log entries between
        the plan's date and the end of its horizon); None: no per-protocol rows.
    confidence:
        Of the intervals.

    Returns
    -------
    pd.DataFrame
        :data:`EFFECT_COLUMNS`: one row per (action, analysis), all actions first. ``difference``
        is treated minus control churn rate: negative means fewer customers left after outreach.
    """
    churned = pd.Series(outcomes, dtype=float).reindex(plan["customer_id"].astype(str).to_numpy()).to_numpy()
    known = ~np.isnan(churned)
    status = plan["outreach_status"].to_numpy()
    control = plan["control"].to_numpy(dtype=bool)
    frame = pd.DataFrame(
        {
            "action": plan["recommended_action"].to_numpy(),
            "treated": (status == ASSIGNED) & ~control & known,
            "held_out": (status == HELD_OUT) & control & known,
            "churned": np.nan_to_num(churned).astype(int),
        }
    )
    if contacted is not None:
        ids = set(map(str, contacted))
        frame["reached"] = frame["treated"] & plan["customer_id"].astype(str).isin(ids).to_numpy()
    rows = []
    groups = [(ALL_ACTIONS, frame)] + [(str(a), g) for a, g in frame.groupby("action", sort=True)]
    for action, group in groups:
        if not (group["treated"].any() or group["held_out"].any()):
            continue
        analyses = [(INTENTION_TO_TREAT, "treated")] + ([(PER_PROTOCOL, "reached")] if contacted is not None else [])
        for analysis, column in analyses:
            x1, n1 = int(group.loc[group[column], "churned"].sum()), int(group[column].sum())
            x2, n2 = int(group.loc[group["held_out"], "churned"].sum()), int(group["held_out"].sum())
            difference, low, high = newcombe_interval(x1, n1, x2, n2, confidence)
            rows.append(
                {
                    "action": action, "analysis": analysis,
                    "n_treated": n1, "churned_treated": x1, "churn_rate_treated": x1 / n1 if n1 else math.nan,
                    "n_control": n2, "churned_control": x2, "churn_rate_control": x2 / n2 if n2 else math.nan,
                    "difference": difference, "ci_low": low, "ci_high": high,
                }
            )
    return pd.DataFrame(rows, columns=list(EFFECT_COLUMNS))


def effect_figure(effect: pd.DataFrame, title: str):  # type: ignore[no-untyped-def]
    """A forest plot of the differences with their intervals, one line per (action, analysis)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = effect.dropna(subset=["difference"]).iloc[::-1]
    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.45 * max(len(shown), 1)))
    y = np.arange(len(shown))
    labels = [
        f"{a[:60]}{'...' if len(a) > 60 else ''} ({'ITT' if k == INTENTION_TO_TREAT else 'PP'}, n={n}/{m})"
        for a, k, n, m in zip(shown["action"], shown["analysis"], shown["n_treated"], shown["n_control"], strict=True)
    ]
    ax.errorbar(
        shown["difference"], y,
        xerr=[shown["difference"] - shown["ci_low"], shown["ci_high"] - shown["difference"]],
        fmt="o", color="tab:blue", capsize=3,
    )
    ax.axvline(0.0, color="grey", linestyle="--", linewidth=1)
    ax.set_yticks(y, labels, fontsize=8)
    ax.set_xlabel("churn rate, treated minus control (below 0: fewer left after outreach)")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig
