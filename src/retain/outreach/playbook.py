"""Who gets which action today: playbook rules, team capacity, cooldown, the control group.

:func:`assign_outreach` is pure: the ranked list (value-at-risk order), the playbook and the
history of contacts in, the same list with an action, a team and a status per customer out.
The rules are documented in ``docs/outreach.md``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from retain.config import Playbook, PlaybookRule

logger = logging.getLogger(__name__)

ASSIGNED = "assigned"
"""Gets the action today, within the team's daily capacity."""
QUEUED = "queued"
"""Matched a rule, but the team's capacity for the day was used by customers of higher value at risk."""
COOLDOWN = "cooldown"
"""Contacted within the playbook's cooldown_days before as_of: not contacted again yet."""
HELD_OUT = "held_out"
"""In the control group and would have been assigned: held out of outreach, to measure its effect."""
STATUSES = (ASSIGNED, QUEUED, COOLDOWN, HELD_OUT)

OUTREACH_COLUMNS = ("recommended_action", "team", "outreach_status", "last_contacted_at")


def matching_rule(
    signals: Sequence[object], tier_rank: int, segment: object, playbook: Playbook, rank_of: dict[str, int]
) -> PlaybookRule | None:
    """The rule that decides one customer's action, or None for the default action.

    Rules are tried in the playbook's order and the first whose conditions all hold wins:
    its ``signal`` is one of the customer's reasons (any of them, not only the first), the
    customer's tier is ``min_tier`` or higher, their segment is one of ``segment``. The order
    of the rules is the playbook's priority: specific causes (a slow first reply, a billing
    error) before symptoms (many contacts) that often come with them, so the action treats
    the cause.
    """
    reasons = {s for s in signals if isinstance(s, str)}
    for rule in playbook.rules:
        if rule.signal is not None and rule.signal not in reasons:
            continue
        if rule.min_tier is not None and tier_rank > rank_of.get(rule.min_tier, len(rank_of)):
            continue
        segments = rule.segments
        if segments is not None and not (isinstance(segment, str) and segment in segments):
            continue
        return rule
    return None


def last_contacts(history: pd.DataFrame | None, as_of: pd.Timestamp) -> pd.Series:
    """The latest contact at or before ``as_of`` per customer id (an empty Series without history)."""
    if history is None or history.empty:
        return pd.Series(dtype="datetime64[ns]", index=pd.Index([], dtype=object))
    known = history.loc[history["contacted_at"] <= as_of]
    return known.groupby(known["customer_id"].astype(str))["contacted_at"].max()


def assign_outreach(
    ranked: pd.DataFrame,
    playbook: Playbook,
    history: pd.DataFrame | None,
    as_of: pd.Timestamp,
    tier_order: Sequence[str],
) -> pd.DataFrame:
    """Give each customer at most one action, within each team's capacity for the day.

    Customers are taken in the order of ``ranked`` (value at risk, highest first). For each:

    1. **Action and team**: from the first matching rule (:func:`matching_rule`), else the
       playbook's ``default_action`` and ``default_team``. Every customer gets the action
       that fits them in ``recommended_action``, whatever their status, so a queued customer
       can be picked up on a later day with the same action.
    2. **Cooldown**: a customer whose last contact in ``history`` is within ``cooldown_days``
       before ``as_of`` (``contacted_at > as_of - cooldown_days``) gets status ``cooldown`` and
       uses no capacity.
    3. **Capacity**: the team's ``daily_capacity`` customers of highest value at risk get status
       ``assigned``; the others matched to that team get status ``queued``. They stay in the
       list with their action and team: a full team's customers are *not* moved to the default
       team (whose people may not be able to do that action); raise the capacity, or act on
       them the next day.
    4. **Control group**: a customer with ``control`` true who would have been assigned gets
       status ``held_out`` and uses no capacity, so holding customers out costs no contacts.
       A control customer who would have been queued or cooled down keeps that status. The
       effect of outreach compares ``assigned`` with ``held_out`` customers: both are the
       customers the teams would have contacted, split at random (see ``outreach.effect``).

    Parameters
    ----------
    ranked:
        The ranked list (``rank_customers``): ``customer_id``, ``risk_tier``, ``reason_i_signal``
        columns in reason order, optionally ``segment`` and ``control`` (bool; missing: nobody
        is held out).
    playbook:
        Rules, teams and their capacity, ``cooldown_days``.
    history:
        Past contacts, ``customer_id`` and ``contacted_at`` (one row per contact), or None.
        Contacts after ``as_of`` are ignored.
    as_of:
        The day the list is for.
    tier_order:
        Tier names from highest to lowest (for ``min_tier``).

    Returns
    -------
    pd.DataFrame
        ``ranked`` (not modified) with ``recommended_action``, ``team``, ``outreach_status``
        (one of :data:`STATUSES`) and ``last_contacted_at`` (NaT without a known contact).
    """
    rank_of = {name: i for i, name in enumerate(tier_order)}
    signal_cols = [c for c in ranked.columns if c.startswith("reason_") and c.endswith("_signal")]
    signals = ranked[signal_cols].to_numpy(dtype=object) if signal_cols else np.empty((len(ranked), 0), dtype=object)
    tier_ranks = ranked["risk_tier"].map(rank_of).fillna(len(rank_of)).astype(int).to_numpy()
    segments = ranked["segment"].astype(object).to_numpy() if "segment" in ranked.columns else np.full(len(ranked), None)
    control = ranked["control"].to_numpy(dtype=bool) if "control" in ranked.columns else np.zeros(len(ranked), bool)

    last = last_contacts(history, as_of)
    last_contacted = last.reindex(ranked["customer_id"].astype(str).to_numpy()).to_numpy(dtype="datetime64[ns]")
    cooled = last_contacted > np.datetime64(as_of - pd.Timedelta(days=playbook.cooldown_days))
    if playbook.cooldown_days == 0:
        cooled[:] = False

    # Customers with the same reasons, tier and segment match the same rule: decide each
    # combination once (a large list has few of them), then spread to the customers.
    keys = pd.DataFrame(signals, columns=[f"s{j}" for j in range(signals.shape[1])]).astype(object)
    keys["tier"] = tier_ranks
    keys["segment"] = pd.Series(segments, dtype=object).where(pd.Series([isinstance(v, str) for v in segments]))
    combination, distinct = pd.MultiIndex.from_frame(keys.fillna("\x00")).factorize()
    rules = [
        matching_rule(
            [v for v in key[:-2] if v != "\x00"], int(key[-2]), None if key[-1] == "\x00" else key[-1],
            playbook, rank_of,
        )
        for key in distinct
    ]
    rule_teams = np.array([playbook.team_of(rule) for rule in rules] or [""], dtype=object)
    rule_actions = np.array(
        [rule.action if rule is not None else playbook.default_action for rule in rules] or [""], dtype=object
    )
    teams = rule_teams[combination]
    actions = rule_actions[combination]
    statuses = np.full(len(ranked), ASSIGNED, dtype=object)
    statuses[control] = HELD_OUT
    # Only assigned customers use capacity: taken in list order, the first `capacity` of a team's
    # customers who are neither cooled down nor in control are assigned; from then on the team's
    # customers (control ones too) are queued.
    eligible = ~cooled & ~control
    for team in pd.unique(teams):
        capacity = playbook.capacity(team)
        if capacity is None:
            continue
        members = np.flatnonzero(teams == team)
        before = np.cumsum(eligible[members]) - eligible[members]  # eligible members ahead in the list
        statuses[members[before >= capacity]] = QUEUED
    statuses[cooled] = COOLDOWN
    out = ranked.copy()
    out["recommended_action"] = pd.Series(actions, index=out.index, dtype=object)
    out["team"] = pd.Series(teams, index=out.index, dtype=object)
    out["outreach_status"] = pd.Series(statuses, index=out.index, dtype=object)
    out["last_contacted_at"] = last_contacted
    counts = out["outreach_status"].value_counts()
    logger.info(
        "outreach as of %s: %d assigned, %d queued (team capacity), %d in cooldown, %d held out (control)",
        as_of.date(), counts.get(ASSIGNED, 0), counts.get(QUEUED, 0), counts.get(COOLDOWN, 0), counts.get(HELD_OUT, 0),
    )
    return out
