"""Window and as_of boundaries of every windowed feature family, with hand-checked values.

A window of ``w`` days is ``(as_of - w days, as_of]``. Each customer below has its rows at one
offset from ``as_of``:

- ``at``: exactly at ``as_of`` (counts);
- ``inside_1s``: ``as_of - w days + 1 second`` (counts: the oldest instant inside the window);
- ``inside_1d``: ``as_of - (w - 1) days`` (counts: a window one day short would drop it);
- ``exactly_w``: ``as_of - w days`` (does not count: ``w`` days old is outside);
- ``after``: ``as_of + 1 second`` (does not count: not yet happened).

Checking only the excluded edge lets a window one day short survive; the inside rows catch it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from retain.churn.features import behaviour_features, feedback_features, support_features

AS_OF = pd.Timestamp("2025-06-30")
WINDOWS = (30, 90)
CUSTOMERS = ["at", "inside_1s", "inside_1d", "exactly_w", "after"]
COUNTED = {"at": True, "inside_1s": True, "inside_1d": True, "exactly_w": False, "after": False}


def _offsets(w: int) -> dict[str, pd.Timestamp]:
    day, second = pd.Timedelta(days=1), pd.Timedelta(seconds=1)
    return {
        "at": AS_OF,
        "inside_1s": AS_OF - w * day + second,
        "inside_1d": AS_OF - (w - 1) * day,
        "exactly_w": AS_OF - w * day,
        "after": AS_OF + second,
    }


def _assert_column(table: pd.DataFrame, column: str, expected: dict[str, float]) -> None:
    got = table.loc[CUSTOMERS, column].to_numpy(dtype=float)
    want = np.array([expected[c] for c in CUSTOMERS], dtype=float)
    np.testing.assert_allclose(got, want, err_msg=f"column {column}", equal_nan=True)


def _expect(w_value: float, outside: float) -> dict[str, float]:
    return {c: (w_value if COUNTED[c] else outside) for c in CUSTOMERS}


# --- behaviour -------------------------------------------------------------------------------


@pytest.mark.parametrize("w", WINDOWS)
def test_behaviour_windows_include_as_of_and_the_whole_last_day(w: int) -> None:
    """One login, one usage and one purchase of 12.5 per customer, all at the same instant."""
    rows = []
    for customer, when in _offsets(w).items():
        rows += [
            (customer, when, "login", np.nan),
            (customer, when, "usage", np.nan),
            (customer, when, "purchase", 12.5),
        ]
    events = pd.DataFrame(rows, columns=["customer_id", "occurred_at", "event_type", "amount"])
    table = behaviour_features(events, CUSTOMERS, AS_OF, WINDOWS)

    _assert_column(table, f"events_{w}d", _expect(3.0, 0.0))
    _assert_column(table, f"logins_{w}d", _expect(1.0, 0.0))
    _assert_column(table, f"usage_{w}d", _expect(1.0, 0.0))
    _assert_column(table, f"purchases_{w}d", _expect(1.0, 0.0))
    _assert_column(table, f"purchase_amount_{w}d", _expect(12.5, 0.0))


def test_behaviour_recency_at_the_edges() -> None:
    events = pd.DataFrame(
        {
            "customer_id": ["at", "inside_1d", "after"],
            "occurred_at": [AS_OF, AS_OF - pd.Timedelta(days=29), AS_OF + pd.Timedelta(seconds=1)],
            "event_type": ["login", "purchase", "login"],
        }
    )
    table = behaviour_features(events, ["at", "inside_1d", "after"], AS_OF, WINDOWS)
    assert table.loc["at", "days_since_last_event"] == 0.0
    assert table.loc["at", "days_since_last_login"] == 0.0
    assert table.loc["inside_1d", "days_since_last_purchase"] == 29.0
    assert np.isnan(table.loc["after", "days_since_last_event"])  # not happened yet
    assert table.loc["after", "logins_30d"] == 0.0


# --- support ---------------------------------------------------------------------------------


def _tickets_at(offsets: dict[str, pd.Timestamp]) -> pd.DataFrame:
    """One ticket per customer: answered after 1 h, resolved after 3 h, 2 reopens, escalated,
    CSAT 2. The ticket opened exactly at as_of is answered and resolved at that instant (0 h),
    so that its facts are known at as_of."""
    rows = []
    for customer, opened in offsets.items():
        instant = customer == "at"
        rows.append(
            {
                "ticket_id": f"T-{customer}",
                "customer_id": customer,
                "opened_at": opened,
                "first_response_at": opened + pd.Timedelta(hours=0 if instant else 1),
                "resolved_at": opened + pd.Timedelta(hours=0 if instant else 3),
                "reopened_count": 2,
                "csat": 2.0,
                "escalated": True,
            }
        )
    return pd.DataFrame(rows)


@pytest.mark.parametrize("w", WINDOWS)
def test_support_windows_count_tickets_opened_in_the_window(w: int) -> None:
    table = support_features(_tickets_at(_offsets(w)), CUSTOMERS, AS_OF, WINDOWS)
    nan = np.nan
    _assert_column(table, f"tickets_{w}d", _expect(1.0, 0.0))
    first_response = {"at": 0.0, "inside_1s": 1.0, "inside_1d": 1.0, "exactly_w": nan, "after": nan}
    _assert_column(table, f"first_response_hours_mean_{w}d", first_response)
    _assert_column(table, f"first_response_hours_max_{w}d", first_response)
    resolution = {"at": 0.0, "inside_1s": 3.0, "inside_1d": 3.0, "exactly_w": nan, "after": nan}
    _assert_column(table, f"resolution_hours_mean_{w}d", resolution)
    _assert_column(table, f"reopened_{w}d", _expect(2.0, 0.0))
    _assert_column(table, f"escalated_{w}d", _expect(1.0, 0.0))
    _assert_column(table, f"csat_mean_{w}d", _expect(2.0, nan))
    _assert_column(table, f"csat_min_{w}d", _expect(2.0, nan))


def test_resolved_exactly_at_as_of_counts_as_resolved() -> None:
    """``resolved_at == as_of``: resolved (not open), its resolution time, CSAT, reopens and
    escalation count. One second later: still open, and none of those facts are known yet."""
    opened = AS_OF - pd.Timedelta(hours=10)
    tickets = pd.DataFrame(
        {
            "ticket_id": ["T1", "T2"],
            "customer_id": ["resolved_at_as_of", "resolved_after"],
            "opened_at": [opened, opened],
            "first_response_at": [opened + pd.Timedelta(hours=1)] * 2,
            "resolved_at": [AS_OF, AS_OF + pd.Timedelta(seconds=1)],
            "reopened_count": [1, 1],
            "csat": [1.0, 1.0],
            "escalated": [True, True],
        }
    )
    table = support_features(tickets, ["resolved_at_as_of", "resolved_after"], AS_OF, WINDOWS)

    done = table.loc["resolved_at_as_of"]
    assert done["open_tickets"] == 0.0
    assert np.isnan(done["oldest_open_ticket_hours"])
    assert done["resolution_hours_mean_30d"] == 10.0
    assert done["csat_mean_30d"] == 1.0 and done["csat_min_30d"] == 1.0
    assert done["reopened_30d"] == 1.0 and done["escalated_30d"] == 1.0

    still_open = table.loc["resolved_after"]
    assert still_open["open_tickets"] == 1.0
    assert still_open["oldest_open_ticket_hours"] == 10.0
    assert np.isnan(still_open["resolution_hours_mean_30d"])
    assert np.isnan(still_open["csat_mean_30d"]) and np.isnan(still_open["csat_min_30d"])
    assert still_open["reopened_30d"] == 0.0 and still_open["escalated_30d"] == 0.0
    assert still_open["tickets_30d"] == 1.0
    # answered before as_of either way
    assert done["first_response_hours_mean_30d"] == still_open["first_response_hours_mean_30d"] == 1.0
    assert done["awaiting_first_response"] == still_open["awaiting_first_response"] == 0.0


def test_first_response_exactly_at_as_of_counts_as_answered() -> None:
    opened = AS_OF - pd.Timedelta(hours=6)
    tickets = pd.DataFrame(
        {
            "ticket_id": ["T1", "T2", "T3", "T4"],
            "customer_id": ["answered_at_as_of", "answered_after", "opened_at_as_of", "opened_after"],
            "opened_at": [opened, opened, AS_OF, AS_OF + pd.Timedelta(seconds=1)],
            "first_response_at": [AS_OF, AS_OF + pd.Timedelta(seconds=1), pd.NaT, pd.NaT],
            "resolved_at": [pd.NaT] * 4,
        }
    )
    ids = ["answered_at_as_of", "answered_after", "opened_at_as_of", "opened_after"]
    table = support_features(tickets, ids, AS_OF, WINDOWS)

    answered = table.loc["answered_at_as_of"]
    assert answered["awaiting_first_response"] == 0.0
    assert np.isnan(answered["awaiting_first_response_hours_max"])
    assert answered["first_response_hours_mean_30d"] == 6.0
    assert answered["first_response_hours_max_90d"] == 6.0
    assert answered["open_tickets"] == 1.0 and answered["oldest_open_ticket_hours"] == 6.0

    waiting = table.loc["answered_after"]
    assert waiting["awaiting_first_response"] == 1.0
    assert waiting["awaiting_first_response_hours_max"] == 6.0
    assert np.isnan(waiting["first_response_hours_mean_30d"])
    assert np.isnan(waiting["first_response_hours_max_30d"])

    just_opened = table.loc["opened_at_as_of"]
    assert just_opened["tickets_30d"] == 1.0
    assert just_opened["open_tickets"] == 1.0 and just_opened["oldest_open_ticket_hours"] == 0.0
    assert just_opened["awaiting_first_response"] == 1.0
    assert just_opened["awaiting_first_response_hours_max"] == 0.0

    not_yet = table.loc["opened_after"]
    assert not_yet["tickets_30d"] == 0.0 and not_yet["tickets_90d"] == 0.0
    assert not_yet["open_tickets"] == 0.0 and not_yet["awaiting_first_response"] == 0.0


# --- feedback --------------------------------------------------------------------------------


@pytest.mark.parametrize("w", WINDOWS)
def test_feedback_windows_include_as_of_and_the_whole_last_day(w: int) -> None:
    """One text per customer: rating 2, CES 6, NPS 3, p(negative) 0.8, p(billing) 0.5."""
    offsets = _offsets(w)
    feedback = pd.DataFrame(
        {
            "feedback_id": [f"F-{c}" for c in offsets],
            "customer_id": list(offsets),
            "created_at": list(offsets.values()),
            "rating": 2.0,
            "nps": 3.0,
            "ces": 6.0,
        }
    )
    scores = pd.DataFrame(
        {"feedback_id": feedback["feedback_id"], "sentiment_negative": 0.8, "theme_billing": 0.5}
    )
    table = feedback_features(feedback, scores, CUSTOMERS, AS_OF, ["billing"], WINDOWS)
    nan = np.nan
    _assert_column(table, f"feedback_{w}d", _expect(1.0, 0.0))
    _assert_column(table, f"rating_mean_{w}d", _expect(2.0, nan))
    _assert_column(table, f"ces_mean_{w}d", _expect(6.0, nan))
    _assert_column(table, f"negative_feedback_{w}d", _expect(0.8, 0.0))
    _assert_column(table, f"negative_feedback_share_{w}d", _expect(0.8, nan))
    _assert_column(table, f"theme_billing_negative_{w}d", _expect(0.4, 0.0))
    # the latest NPS on or before as_of, whatever its age; none for an answer after as_of
    _assert_column(
        table,
        "nps_last",
        {"at": 3.0, "inside_1s": 3.0, "inside_1d": 3.0, "exactly_w": 3.0, "after": nan},
    )


def test_windows_are_independent_of_each_other() -> None:
    """A row 30 days old is outside the 30-day window and inside the 90-day one."""
    when = AS_OF - pd.Timedelta(days=30)
    events = pd.DataFrame({"customer_id": ["c"], "occurred_at": [when], "event_type": ["login"]})
    table = behaviour_features(events, ["c"], AS_OF, WINDOWS)
    assert table.loc["c", "logins_30d"] == 0.0
    assert table.loc["c", "logins_90d"] == 1.0
    feedback = pd.DataFrame(
        {"feedback_id": ["f"], "customer_id": ["c"], "created_at": [when], "rating": [4.0]}
    )
    ftable = feedback_features(feedback, None, ["c"], AS_OF, [], WINDOWS)
    assert ftable.loc["c", "feedback_30d"] == 0.0 and ftable.loc["c", "feedback_90d"] == 1.0
    assert np.isnan(ftable.loc["c", "rating_mean_30d"]) and ftable.loc["c", "rating_mean_90d"] == 4.0
