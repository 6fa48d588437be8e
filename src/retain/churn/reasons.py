"""Plain-language reasons: per-customer feature attributions grouped back to the original signal.

A churn model sees many features built from one signal (``first_response_hours_mean_90d`` and
``first_response_hours_max_90d`` are both "slow first responses"). Attributions (log-odds
contributions, one column per feature) are summed per signal with ``features.FEATURE_SIGNALS``;
the signals that push a customer's risk up the most become that customer's reasons, each phrased
with the customer's own figures ("Waited 31 h on average for a first reply in the last 90 days").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Signal:
    """A reason signal: a short label and, where the figures exist, a phrase with them."""

    label: str
    template: str | None = None
    columns: tuple[str, ...] = ()
    formats: tuple[Callable[[float], str], ...] = ()
    first_choice: Signal | None = None

    def describe(self, features: pd.DataFrame) -> pd.Series:
        """One phrase per row of ``features``.

        ``first_choice``'s phrase where its figures exist and are non-zero, else this template
        where its figures exist, else the label. With ``formats``, each figure is turned into text
        by its function and the template takes plain ``{}`` fields.
        """
        phrases = pd.Series(self.label, index=features.index, dtype=object)
        if self.template is not None and all(c in features.columns for c in self.columns):
            values = features[list(self.columns)].astype(float)
            known = values.notna().all(axis=1)
            if known.any():
                rows = values.loc[known].to_numpy()
                if self.formats:
                    rows = [[f(v) for f, v in zip(self.formats, r, strict=True)] for r in rows]
                phrases.loc[known] = [self.template.format(*r) for r in rows]
        if self.first_choice is not None and all(c in features.columns for c in self.first_choice.columns):
            figures = features[list(self.first_choice.columns)].astype(float)
            preferred = (figures.notna() & (figures != 0)).all(axis=1)
            if preferred.any():
                phrases.loc[preferred] = self.first_choice.describe(features.loc[preferred]).to_numpy()
        return phrases


def _duration(hours: float) -> str:
    """Hours as a person would say them: "30 h" under two days, "12 days" from then on."""
    return f"{hours:.0f} h" if hours < 48 else f"{hours / 24:.0f} days"


def _count(value: float) -> str:
    return f"{value:.0f}"


def _theme(name: str) -> Signal:
    return Signal(f"Negative feedback about {name}")


SIGNALS: dict[str, Signal] = {
    "slow_first_response": Signal(
        "Slow first responses to support tickets",
        "Waited up to {:.0f} h for a first reply to tickets (last 90 days)",
        ("first_response_hours_max_90d",),
        first_choice=Signal(
            "Waiting for a first reply",
            "{} ticket(s) still waiting for a first reply, the oldest for {}",
            ("awaiting_first_response", "awaiting_first_response_hours_max"),
            formats=(_count, _duration),
        ),
    ),
    "slow_resolution": Signal(
        "Slow ticket resolution",
        "Tickets took {:.0f} h on average to resolve (last 90 days)",
        ("resolution_hours_mean_90d",),
    ),
    "open_tickets": Signal(
        "Unresolved tickets open now",
        "{} ticket(s) still open, the oldest for {}",
        ("open_tickets", "oldest_open_ticket_hours"),
        formats=(_count, _duration),
    ),
    "repeated_contacts": Signal(
        "Repeated contacts with support",
        "Contacted support {:.0f} times in the last 90 days",
        ("tickets_90d",),
    ),
    "reopened_tickets": Signal(
        "Tickets reopened after being marked solved",
        "{:.0f} ticket reopening(s) in the last 90 days",
        ("reopened_90d",),
    ),
    "escalations": Signal(
        "Escalated tickets", "{:.0f} escalated ticket(s) in the last 90 days", ("escalated_90d",)
    ),
    "low_csat": Signal(
        "Low satisfaction with support",
        "Rated support {:.1f}/5 on average (last 90 days)",
        ("csat_mean_90d",),
    ),
    "low_nps": Signal("Low likelihood to recommend", "Last NPS answer: {:.0f}/10", ("nps_last",)),
    "high_effort": Signal(
        "High effort to get things done",
        "Customer effort score {:.1f}/7 (last 90 days)",
        ("ces_mean_90d",),
    ),
    "negative_feedback": Signal(
        "Negative feedback",
        "{:.0%} of recent feedback is negative (last 90 days)",
        ("negative_feedback_share_90d",),
    ),
    "declining_usage": Signal(
        "Usage is declining",
        "Usage in the last 30 days is {:.0%} of the earlier rate",
        ("usage_trend",),
    ),
    "inactivity": Signal(
        "Inactive recently", "No activity for {:.0f} days", ("days_since_last_event",)
    ),
    "engagement": Signal("Low engagement"),
    "purchases": Signal("Few or small purchases"),
    "tenure": Signal("New customer", "Customer for {:.0f} days", ("tenure_days",)),
    "value": Signal("Low monthly value", "Pays {:.0f} a month", ("monthly_value",)),
    "plan": Signal("Plan type"),
    "segment": Signal("Customer segment"),
    "region": Signal("Region"),
    "theme_billing": _theme("billing errors"),
    "theme_pricing": _theme("price and value"),
    "theme_slow_support": _theme("slow support"),
    "theme_unresolved_issue": _theme("an unresolved problem"),
    "theme_product_bugs": _theme("bugs and reliability"),
    "theme_usability": _theme("ease of use"),
    "theme_missing_features": _theme("missing features"),
    "theme_staff_attitude": _theme("staff attitude"),
}


def signal_of(feature_signals: Mapping[str, str]) -> Callable[[str], str]:
    """A lookup from feature column to signal id; unknown features are their own signal."""
    return lambda column: feature_signals.get(column, column)


def signal_contributions(
    attributions: pd.DataFrame, feature_signals: Mapping[str, str]
) -> pd.DataFrame:
    """Sum feature attributions per signal (columns = signal ids, index = attributions' index)."""
    feature_cols = [c for c in attributions.columns if c != "baseline"]
    lookup = signal_of(feature_signals)
    groups = pd.Series([lookup(c) for c in feature_cols], index=feature_cols)
    return attributions[feature_cols].T.groupby(groups.values, sort=True).sum().T


def top_reasons(
    attributions: pd.DataFrame,
    features: pd.DataFrame,
    feature_signals: Mapping[str, str],
    k: int = 3,
) -> pd.DataFrame:
    """The ``k`` signals that raise each customer's risk most, phrased with their figures.

    Parameters
    ----------
    attributions:
        Per-row feature contributions to the churn log-odds (``ChurnClassifier.feature_attributions``).
    features:
        The feature rows the attributions explain (same index), for the figures in the phrases.
    feature_signals:
        Feature column -> signal id.
    k:
        Reasons per customer. Only signals with a positive contribution become reasons, so a
        customer may have fewer than ``k`` (the rest are missing).

    Returns
    -------
    pd.DataFrame
        Columns ``reason_1..k`` (phrases) and ``reason_1_signal..k`` (signal ids), same index.
    """
    contributions = signal_contributions(attributions, feature_signals)
    values = contributions.to_numpy()
    order = np.argsort(-values, axis=1, kind="stable")[:, :k]
    top_values = np.take_along_axis(values, order, axis=1)
    names = contributions.columns.to_numpy()[order]
    names = np.where(top_values > 0, names, None)

    out = pd.DataFrame(index=attributions.index)
    for i in range(k):
        out[f"reason_{i + 1}"] = pd.Series(None, index=out.index, dtype=object)
    for i in range(k):
        out[f"reason_{i + 1}_signal"] = names[:, i] if len(out) else pd.Series(dtype=object)
        for signal_id in pd.unique(names[:, i]):
            if signal_id is None:
                continue
            rows = names[:, i] == signal_id
            signal = SIGNALS.get(signal_id, Signal(signal_id.replace("_", " ").capitalize()))
            out.loc[rows, f"reason_{i + 1}"] = signal.describe(features.loc[rows]).to_numpy()
    return out
