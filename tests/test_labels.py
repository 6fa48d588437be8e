"""The two churn definitions of ``retain.churn.labels``, at their boundaries, and their law:
only data on or before ``as_of`` decides who is in the population."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retain.churn.labels import labels, lapsed_at, last_activity, population
from retain.config import LabelConfig

AS_OF = pd.Timestamp("2024-06-01")
HORIZON = 30
END = AS_OF + pd.Timedelta(days=HORIZON)  # 2024-07-01
SECOND = pd.Timedelta(seconds=1)
CONTRACTUAL = LabelConfig(definition="contractual")
INACTIVITY = LabelConfig(definition="inactivity")


def _customers(**churned_at: pd.Timestamp | None) -> pd.DataFrame:
    """One customer per keyword, all signed up 2024-01-01, with the given ``churned_at``."""
    return pd.DataFrame(
        {
            "customer_id": list(churned_at),
            "signup_at": pd.Timestamp("2024-01-01"),
            "churned_at": pd.to_datetime(list(churned_at.values())),
        }
    )


def _events(*rows: tuple[str, pd.Timestamp, str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["customer_id", "occurred_at", "event_type"])


# --- contractual ----------------------------------------------------------------------------


def test_contractual_boundaries() -> None:
    customers = _customers(
        at_as_of=AS_OF,  # left at as_of: already churned, not in the population
        second_after=AS_OF + SECOND,  # in, churns
        at_window_end=END,  # in, churns (the window is closed on the right)
        after_window=END + SECOND,  # in, stays within the horizon
        never=None,  # in, stays
        before=AS_OF - pd.Timedelta(days=3),  # gone before as_of
    )
    members = population(customers, None, AS_OF, CONTRACTUAL)
    assert members["customer_id"].tolist() == ["second_after", "at_window_end", "after_window", "never"]
    churned = labels(customers, None, AS_OF, HORIZON, CONTRACTUAL)
    assert churned.to_dict() == {"second_after": 1, "at_window_end": 1, "after_window": 0, "never": 0}
    assert churned.name == "churned" and churned.dtype == "int64"


def test_contractual_signup_at_as_of_is_in_and_a_second_later_is_not() -> None:
    customers = pd.DataFrame(
        {
            "customer_id": ["on", "later"],
            "signup_at": [AS_OF, AS_OF + SECOND],
            "churned_at": pd.to_datetime([None, None]),
        }
    )
    assert population(customers, None, AS_OF)["customer_id"].tolist() == ["on"]


NO_CHURNED_AT_BUG = (
    "labels.population: without a churned_at column `already` is the Python bool False and "
    "`signed_up & ~already` is `signed_up & -1`, an int array, so .loc picks rows by position "
    "(here B, B, A) instead of masking"
)


def test_contractual_without_churned_at_column_nobody_churns() -> None:
    customers = pd.DataFrame(
        {
            "customer_id": ["A", "B", "late"],
            "signup_at": [AS_OF, AS_OF, AS_OF + SECOND],
        }
    )
    assert population(customers, None, AS_OF)["customer_id"].tolist() == ["A", "B"]
    assert labels(customers, None, AS_OF, HORIZON).to_dict() == {"A": 0, "B": 0}


def test_horizon_must_be_positive() -> None:
    with pytest.raises(ValueError, match="horizon_days"):
        labels(_customers(a=None), None, AS_OF, 0)


# --- inactivity -----------------------------------------------------------------------------


def test_inactivity_boundaries() -> None:
    customers = _customers(
        active_at_as_of=None, second_after_as_of=None, at_window_end=None, after_window=None, silent=None
    )
    events = _events(
        # an event exactly at as_of is activity: in the population
        ("active_at_as_of", AS_OF, "purchase"),
        ("active_at_as_of", AS_OF + pd.Timedelta(days=5), "purchase"),
        # first event a second after as_of: not in the population yet
        ("second_after_as_of", AS_OF + SECOND, "purchase"),
        # an event exactly at as_of + horizon is in the window: stays
        ("at_window_end", AS_OF - pd.Timedelta(days=10), "purchase"),
        ("at_window_end", END, "purchase"),
        # one second past the window: churned
        ("after_window", AS_OF - pd.Timedelta(days=10), "purchase"),
        ("after_window", END + SECOND, "purchase"),
        # nothing after as_of at all: churned
        ("silent", AS_OF - pd.Timedelta(days=200), "purchase"),
    )
    members = population(customers, events, AS_OF, INACTIVITY)
    assert members["customer_id"].tolist() == ["active_at_as_of", "at_window_end", "after_window", "silent"]
    churned = labels(customers, events, AS_OF, HORIZON, INACTIVITY)
    assert churned.to_dict() == {"active_at_as_of": 0, "at_window_end": 0, "after_window": 1, "silent": 1}


def test_inactivity_an_event_at_as_of_is_not_in_the_window() -> None:
    """The window is (as_of, as_of + horizon]: the event at as_of itself does not keep anyone."""
    customers = _customers(a=None)
    events = _events(("a", AS_OF, "purchase"))
    assert labels(customers, events, AS_OF, HORIZON, INACTIVITY).to_dict() == {"a": 1}


MAX_SILENCE_BUG = (
    "labels.population: with max_silence_days, `active = last.notna().to_numpy()` is a "
    "read-only view under pandas copy-on-write, so `active &= ...` raises ValueError "
    "'output array is read-only': max_silence_days cannot be used at all"
)


def test_inactivity_max_silence_boundary() -> None:
    silence = 60
    definition = LabelConfig(definition="inactivity", max_silence_days=silence)
    customers = _customers(exactly=None, a_second_more=None)
    events = _events(
        ("exactly", AS_OF - pd.Timedelta(days=silence), "purchase"),
        ("a_second_more", AS_OF - pd.Timedelta(days=silence) - SECOND, "purchase"),
    )
    assert population(customers, events, AS_OF, definition)["customer_id"].tolist() == ["exactly"]
    # without the silence limit both are in
    assert len(population(customers, events, AS_OF, INACTIVITY)) == 2


def test_inactivity_event_types_filter_activity_and_population() -> None:
    definition = LabelConfig(definition="inactivity", event_types=("purchase",))
    customers = _customers(buyer=None, browser=None, lapsed=None)
    events = _events(
        ("buyer", AS_OF - pd.Timedelta(days=1), "purchase"),
        ("buyer", AS_OF + pd.Timedelta(days=1), "purchase"),
        ("browser", AS_OF - pd.Timedelta(days=1), "login"),  # a login is not activity here
        ("browser", AS_OF + pd.Timedelta(days=1), "login"),
        ("lapsed", AS_OF - pd.Timedelta(days=1), "purchase"),
        ("lapsed", AS_OF + pd.Timedelta(days=1), "login"),  # only logins after: churned
    )
    assert population(customers, events, AS_OF, definition)["customer_id"].tolist() == ["buyer", "lapsed"]
    assert labels(customers, events, AS_OF, HORIZON, definition).to_dict() == {"buyer": 0, "lapsed": 1}
    # every type counts by default
    assert labels(customers, events, AS_OF, HORIZON, INACTIVITY).to_dict() == {
        "buyer": 0, "browser": 0, "lapsed": 0,
    }


def test_last_activity_reads_only_up_to_as_of() -> None:
    events = _events(
        ("a", AS_OF - pd.Timedelta(days=2), "purchase"),
        ("a", AS_OF, "purchase"),
        ("a", AS_OF + SECOND, "purchase"),
    )
    last = last_activity(events, pd.Index(["a", "b"]), AS_OF)
    assert last["a"] == AS_OF
    assert pd.isna(last["b"])


def test_inactivity_without_events_is_an_empty_population() -> None:
    assert population(_customers(a=None), None, AS_OF, INACTIVITY).empty


# --- the law: only data on or before as_of decides the population ----------------------------

_IDS = [f"C{i}" for i in range(6)]
_TYPES = ["purchase", "login"]
# offsets in hours from as_of: <= 0 is on or before as_of, > 0 after
_before = st.integers(min_value=-24 * 200, max_value=0)
_after = st.integers(min_value=1, max_value=24 * 200)


def _event_rows(offsets: st.SearchStrategy[int]) -> st.SearchStrategy[list[tuple[str, int, str]]]:
    return st.lists(st.tuples(st.sampled_from(_IDS), offsets, st.sampled_from(_TYPES)), max_size=15)


def _frame(rows: list[tuple[str, int, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": pd.Series([r[0] for r in rows], dtype=object),
            "occurred_at": pd.Series(
                [AS_OF + pd.Timedelta(hours=r[1]) for r in rows], dtype="datetime64[ns]"
            ),
            "event_type": pd.Series([r[2] for r in rows], dtype=object),
        }
    )


@st.composite
def _worlds(draw: st.DrawFn) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(customers, events) twice: the same on or before as_of, anything after it."""
    signup = draw(st.lists(st.integers(-24 * 300, 24 * 10), min_size=len(_IDS), max_size=len(_IDS)))
    churn_before = draw(
        st.lists(st.one_of(st.none(), _before), min_size=len(_IDS), max_size=len(_IDS))
    )

    def churned_at() -> list[pd.Timestamp]:
        # a customer who left on or before as_of keeps that date; the others may get any
        # (or no) date after as_of, independently in the two versions
        later = draw(st.lists(st.one_of(st.none(), _after), min_size=len(_IDS), max_size=len(_IDS)))
        hours = [b if b is not None else a for b, a in zip(churn_before, later, strict=True)]
        return [pd.NaT if h is None else AS_OF + pd.Timedelta(hours=h) for h in hours]

    def customers(churn: list[pd.Timestamp]) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "customer_id": _IDS,
                "signup_at": [AS_OF + pd.Timedelta(hours=h) for h in signup],
                "churned_at": pd.Series(churn, dtype="datetime64[ns]"),
            }
        )

    early = draw(_event_rows(_before))
    late_a, late_b = draw(_event_rows(_after)), draw(_event_rows(_after))
    rows_a = draw(st.permutations(early + late_a))
    rows_b = draw(st.permutations(early + late_b))
    return customers(churned_at()), _frame(rows_a), customers(churned_at()), _frame(rows_b)


DEFINITIONS = [
    CONTRACTUAL,
    INACTIVITY,
    LabelConfig(definition="inactivity", event_types=("purchase",)),
    LabelConfig(definition="inactivity", max_silence_days=30),
]


@pytest.mark.parametrize("definition", DEFINITIONS, ids=["contractual", "inactivity", "purchases", "silence30"])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(worlds=_worlds())
def test_only_data_up_to_as_of_decides_the_population(
    definition: LabelConfig, worlds: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]
) -> None:
    customers_a, events_a, customers_b, events_b = worlds
    members_a = population(customers_a, events_a, AS_OF, definition)["customer_id"].tolist()
    members_b = population(customers_b, events_b, AS_OF, definition)["customer_id"].tolist()
    assert members_a == members_b
    # labels are indexed by the same population
    assert labels(customers_b, events_b, AS_OF, HORIZON, definition).index.tolist() == members_a


def test_lapsed_at_is_the_last_purchase_once_the_horizon_has_passed_without_one() -> None:
    customers = pd.DataFrame({"customer_id": ["a", "b", "c"]}, index=[5, 6, 7])
    events = pd.DataFrame(
        {
            "customer_id": ["a", "a", "b", "b"],
            "occurred_at": pd.to_datetime(["2025-01-01", "2025-02-01", "2025-01-01", "2025-03-20"]),
            "event_type": ["purchase", "purchase", "purchase", "login"],
        }
    )
    lapsed = lapsed_at(customers, events, pd.Timestamp("2025-04-01"), 30, ["purchase"])
    assert list(lapsed.index) == [5, 6, 7]
    # a: last purchase 1 Feb, 30 days passed by 1 April; b: last purchase 1 Jan (the login does
    # not count); c: never bought, never lost
    assert lapsed[5] == pd.Timestamp("2025-02-01") and lapsed[6] == pd.Timestamp("2025-01-01")
    assert pd.isna(lapsed[7])
    # By 20 February a's silence is shorter than the horizon: not lost yet
    assert pd.isna(lapsed_at(customers, events, pd.Timestamp("2025-02-20"), 30, ["purchase"])[5])
