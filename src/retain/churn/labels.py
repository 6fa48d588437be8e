"""Who can churn at ``as_of`` and who did: the two churn definitions.

``contractual`` (subscriptions, contracts): a customer has a ``churned_at`` date when they leave.
The population at ``as_of`` is every customer who signed up on or before ``as_of`` and had not
churned by then; the label is 1 if ``churned_at`` falls in ``(as_of, as_of + horizon]``.

``inactivity`` (purchase or usage logs, where nobody announces leaving): the population at
``as_of`` is every customer with at least one qualifying event on or before ``as_of`` (and, with
``max_silence_days``, one in the last ``max_silence_days`` days: a customer silent for longer is
already counted as lost and not scored); the label is 1 if no qualifying event falls in
``(as_of, as_of + horizon]``.

The law both obey: **only data on or before** ``as_of`` **decides who is in the population**.
Labels, of course, read the window after ``as_of``; whether that window is observed is the
caller's decision.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from retain.config import LabelConfig

LABEL_COLUMN = "churned"


def population(
    customers: pd.DataFrame,
    events: pd.DataFrame | None,
    as_of: pd.Timestamp | str,
    definition: LabelConfig | None = None,
) -> pd.DataFrame:
    """The customers who can churn after ``as_of`` under ``definition``.

    Parameters
    ----------
    customers:
        The customers table (``customer_id``, ``signup_at``, optional ``churned_at``).
    events:
        The events table (``customer_id``, ``occurred_at``, ``event_type``); needed for
        ``inactivity``.
    as_of:
        The cutoff.
    definition:
        The churn definition; default contractual.

    Returns
    -------
    pandas.DataFrame
        The rows of ``customers`` in the population, in input order, with a fresh ``RangeIndex``.
    """
    definition = definition or LabelConfig()
    as_of = _timestamp(as_of)
    signed_up = _on_or_before(customers["signup_at"], as_of)
    if definition.definition == "contractual":
        if "churned_at" in customers.columns:
            already = _on_or_before(customers["churned_at"], as_of)
        else:
            already = np.zeros(len(customers), dtype=bool)
        return customers.loc[signed_up & ~already].reset_index(drop=True)
    last = last_activity(events, customers["customer_id"], as_of, definition.event_types)
    active = last.notna().to_numpy().copy()
    if definition.max_silence_days is not None:
        silence = (as_of - last).dt.total_seconds().to_numpy() / 86400.0
        active &= silence <= definition.max_silence_days
    return customers.loc[signed_up & active].reset_index(drop=True)


def labels(
    customers: pd.DataFrame,
    events: pd.DataFrame | None,
    as_of: pd.Timestamp | str,
    horizon_days: int,
    definition: LabelConfig | None = None,
) -> pd.Series:
    """Whether each population customer churns within ``horizon_days`` after ``as_of``.

    Returns
    -------
    pandas.Series
        ``int64`` named ``churned``, indexed by ``customer_id`` in :func:`population` order.
    """
    if horizon_days < 1:
        raise ValueError(f"horizon_days must be >= 1, got {horizon_days}")
    definition = definition or LabelConfig()
    as_of = _timestamp(as_of)
    members = population(customers, events, as_of, definition)
    index = pd.Index(members["customer_id"], name="customer_id")
    end = as_of + pd.Timedelta(days=horizon_days)
    if definition.definition == "contractual":
        if "churned_at" in members.columns:
            churned_at = members["churned_at"]
            churned = ((churned_at > as_of) & (churned_at <= end)).to_numpy()
        else:
            churned = np.zeros(len(members), dtype=bool)
    else:
        active_in_window = _active_between(events, index, as_of, end, definition.event_types)
        churned = ~active_in_window
    return pd.Series(np.asarray(churned, dtype="int64"), index=index, name=LABEL_COLUMN)


def last_activity(
    events: pd.DataFrame | None,
    customer_ids: pd.Series | pd.Index,
    as_of: pd.Timestamp,
    event_types: Sequence[str] | None = None,
) -> pd.Series:
    """Each customer's last qualifying event on or before ``as_of`` (NaT if none)."""
    ids = pd.Index(customer_ids)
    if events is None or events.empty:
        return pd.Series(pd.NaT, index=ids, dtype="datetime64[ns]")
    rows = _qualifying(events, event_types) & _on_or_before(events["occurred_at"], as_of)
    last = events.loc[rows].groupby("customer_id", observed=True, sort=False)["occurred_at"].max()
    last.index = last.index.astype(object)
    return last.reindex(ids.astype(object))


def lapsed_at(
    customers: pd.DataFrame,
    events: pd.DataFrame | None,
    observed_until: pd.Timestamp,
    horizon_days: int,
    event_types: Sequence[str] | None = None,
) -> pd.Series:
    """When each customer was lost under the inactivity definition, for churn-rate KPIs.

    The date of their last qualifying event, once ``horizon_days`` after it have been observed
    (by ``observed_until``) without another; NaT while the customer is active or the silence is
    still shorter than the horizon. Aligned with ``customers``' index.
    """
    last = last_activity(events, customers["customer_id"], pd.Timestamp(observed_until), event_types)
    stamps = pd.Series(last.to_numpy(), index=customers.index, dtype="datetime64[ns]")
    return stamps.where(stamps + pd.Timedelta(days=horizon_days) <= pd.Timestamp(observed_until))


def _active_between(
    events: pd.DataFrame | None,
    ids: pd.Index,
    start: pd.Timestamp,
    end: pd.Timestamp,
    event_types: Sequence[str] | None,
) -> np.ndarray:
    """Whether each customer has a qualifying event in ``(start, end]``."""
    if events is None or events.empty:
        return np.zeros(len(ids), dtype=bool)
    stamps = events["occurred_at"]
    rows = _qualifying(events, event_types) & (stamps > start).to_numpy() & (stamps <= end).to_numpy()
    active = pd.Index(events.loc[rows, "customer_id"].astype(object).unique())
    return ids.astype(object).isin(active)


def _qualifying(events: pd.DataFrame, event_types: Sequence[str] | None) -> np.ndarray:
    if event_types is None:
        return np.ones(len(events), dtype=bool)
    return events["event_type"].astype(object).isin(list(event_types)).to_numpy()


def _on_or_before(stamps: pd.Series, as_of: pd.Timestamp) -> np.ndarray:
    return (stamps <= as_of).fillna(False).to_numpy(dtype=bool)


def _timestamp(value: pd.Timestamp | str) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo is not None else ts
