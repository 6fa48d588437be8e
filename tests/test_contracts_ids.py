"""Ids and text cells read fast give what the plain, per-row reading gave.

``validate_table`` strips each text column once, runs the float-id regex only on cells with a dot,
and reads the events table's ids and types once per distinct value into a ``category``. These tests
hold that to the straightforward reading (kept here as the reference) on tricky cells: whitespace,
numeric-looking ids, null-like spellings, missing values, mixed Python types.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retain.config import DataConfig
from retain.contracts import (
    _FLOAT_INTEGER_ID,
    EVENTS,
    NULL_LIKE_IDS,
    is_null_like_id,
    normalise_ids,
    stripped_strings,
    validate_table,
)
from retain.data import load_world

EXPORTED = pd.Timestamp("2030-01-01")
TRICKY = [
    "", " ", "C1", " C1 ", "c1", "\tC1\n", "1001", "1001.0", " 1001.00 ", "+7.0", "-3.", ".0", "1.5",
    "1e3", "\u0661\u0660.0", "NaN", "nan", " null ", "None", "N/A", "<NA>", "NIL", "-", "?", "\u00a0x\u00a0",
    "login", " usage", "LOGIN", "purchase ",
]
cells = st.one_of(
    st.sampled_from(TRICKY),
    st.text(max_size=5),
    st.none(),
    st.just(np.nan),
    st.integers(-3, 1002),
    st.sampled_from([1001.0, 2.5, float("inf"), -0.0]),
    st.booleans(),
)
RELAXED = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _reference_stripped_strings(values: pd.Series) -> pd.Series:
    text = values.astype("string").str.strip()
    return text.where(text != "").astype(object).where(text.notna() & (text != ""), None)


def _reference_normalise_ids(values: pd.Series) -> pd.Series:
    text = values.astype("string").str.strip()
    return _reference_stripped_strings(text.str.replace(_FLOAT_INTEGER_ID, lambda m: m.group(1), regex=True))


def _reference_is_null_like_id(values: pd.Series) -> pd.Series:
    return values.astype("string").str.strip().str.lower().isin(NULL_LIKE_IDS).fillna(False).astype(bool)


def _column(values: list[object], dtype: str) -> pd.Series:
    column = pd.Series(values, dtype=object)
    if dtype == "float":
        return pd.to_numeric(column, errors="coerce").astype("float64")
    if dtype in ("str", "string"):
        return column.map(lambda v: v if v is None or isinstance(v, str) else str(v)).astype(dtype)
    return column


@RELAXED
@given(st.lists(cells, max_size=12), st.sampled_from(["object", "str", "string", "float"]))
def test_id_helpers_match_the_per_row_reading(values: list[object], dtype: str) -> None:
    column = _column(values, dtype)
    for fast, reference in (
        (normalise_ids, _reference_normalise_ids),
        (stripped_strings, _reference_stripped_strings),
        (is_null_like_id, _reference_is_null_like_id),
    ):
        got, want = fast(column), reference(column)
        pd.testing.assert_series_equal(got, want, obj=fast.__name__)
        assert [type(v) for v in got] == [type(v) for v in want], fast.__name__  # None, not NaN


def _events(ids: list[object], types: list[object], dtype: str) -> pd.DataFrame:
    n = len(ids)
    raw = pd.DataFrame(
        {
            "customer_id": _column(ids, dtype),
            "occurred_at": pd.Series(pd.Timestamp("2024-01-01"), index=range(n)) + pd.to_timedelta(range(n), "h"),
            "event_type": _column(types, dtype),
            "amount": np.linspace(0.0, 1.0, n),
        }
    )
    return pd.concat([raw, raw.iloc[::-1]], ignore_index=True)  # every value seen twice


@RELAXED
@given(st.data(), st.sampled_from(["object", "str", "string", "float"]))
def test_events_read_per_distinct_value_match_the_per_row_reading(data: st.DataObject, dtype: str) -> None:
    n = data.draw(st.integers(0, 8))
    raw = _events(data.draw(st.lists(cells, min_size=n, max_size=n)), data.draw(st.lists(cells, min_size=n, max_size=n)), dtype)
    per_row = dataclasses.replace(EVENTS, categorical=())
    got = validate_table(raw, EVENTS, "events.csv", export_time=EXPORTED)
    want = validate_table(raw, per_row, "events.csv", export_time=EXPORTED)
    for column in EVENTS.categorical:
        assert isinstance(got.valid[column].dtype, pd.CategoricalDtype)
    as_objects = got.valid.assign(
        **{c: got.valid[c].astype(object).where(got.valid[c].notna(), None) for c in EVENTS.categorical}
    )
    pd.testing.assert_frame_equal(as_objects, want.valid)
    pd.testing.assert_frame_equal(got.rejected, want.rejected)
    np.testing.assert_array_equal(got.valid_rows, want.valid_rows)
    assert got.summary() == want.summary()


def test_events_ids_hand_checked() -> None:
    raw = pd.DataFrame(
        {
            "customer_id": [" C2 ", "1001.0", "NaN", None, "C2", "c2", "", "1001", " null "],
            "occurred_at": ["2024-01-01"] * 9,
            "event_type": [" login", "usage", "login ", "login", "", "purchase", "usage", "usage", "usage"],
        },
        dtype=object,
    )
    result = validate_table(raw, EVENTS, "events.csv", export_time=EXPORTED)
    valid = result.valid
    assert valid["customer_id"].astype(object).tolist() == ["C2", "1001", "c2", "1001"]
    assert valid["event_type"].astype(object).tolist() == ["login", "usage", "purchase", "usage"]
    assert valid["customer_id"].cat.categories.tolist() == ["1001", "C2", "c2"]  # sorted, as astype("category")
    assert result.valid_rows.tolist() == [1, 2, 6, 8]
    assert result.rejected[["source_row", "reason"]].values.tolist() == [
        [3, "column 'customer_id': a null-like value is not an id"],
        [4, "column 'customer_id': missing value"],
        [5, "column 'event_type': missing value"],
        [7, "column 'customer_id': missing value"],
        [9, "column 'customer_id': a null-like value is not an id"],
    ]
    # Rejected rows are the input as it was.
    assert result.rejected["customer_id"].tolist() == ["NaN", None, "C2", "", " null "]


def test_events_rejected_by_customer_are_quarantined_as_plain_values(tmp_path: Path) -> None:
    pd.DataFrame({"customer_id": ["C1", "C2"], "signup_at": ["2024-01-01", "2024-02-01"]}).to_csv(
        tmp_path / "customers.csv", index=False
    )
    pd.DataFrame(
        {
            "customer_id": ["C1", "C9", " C2 ", "C2"],
            "occurred_at": ["2024-01-05", "2024-01-05", "2024-01-20", "2024-03-01"],
            "event_type": ["login", "login", "usage", "purchase"],
        }
    ).to_csv(tmp_path / "events.csv", index=False)
    loaded = load_world(DataConfig(path=tmp_path, max_quarantine_share=1.0, export_time="2025-01-01"))
    events = loaded.reports["events"]
    assert isinstance(events.valid["customer_id"].dtype, pd.CategoricalDtype)
    assert events.valid["customer_id"].astype(object).tolist() == ["C1", "C2"]
    assert events.rejected[["source_row", "reason"]].values.tolist() == [
        [2, "column 'customer_id': unknown customer"],
        [3, "column 'occurred_at': before the customer's signup_at"],
    ]
    assert events.rejected["customer_id"].dtype == object
    assert events.rejected["customer_id"].tolist() == ["C9", "C2"]
    quarantined = pd.read_csv(tmp_path / "quarantine" / "events.csv", dtype=str)
    assert quarantined["customer_id"].tolist() == ["C9", "C2"]
