"""Hypothesis fuzz of the loaders: random tables inside and outside the contract.

Whatever the cells hold (infinities, huge numbers, null-like ids, dates in any order, the future,
junk), a loader either returns data that keeps the contract, with every input row used or
quarantined once, or stops with a ``ContractError``: never another exception."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retain.config import DataConfig, FlatLayout, TextColumns, TextDataConfig
from retain.contracts import (
    CONTRACTS,
    MAX_MAGNITUDE,
    NULL_LIKE_IDS,
    TIME_COLUMNS,
    ContractError,
    validate_table,
)
from retain.data import load_flat, load_text_table, load_world

EXPORTED = pd.Timestamp("2030-01-01")
FUZZ = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])

HOSTILE = [
    "", " ", "inf", "-inf", "Infinity", "1e400", "1e20", "-1", "0", "2.5", "3", "1001", "1001.0",
    "NaN", "nan", "null", "None", "N/A", "-", "C1", "C2", " C1 ", "04/03/2021", "13/03/2021",
    "03/13/2021", "2099-01-01", "2024-02-30", "2024-01-01", "2024-03-01T10:00:00+02:00",
    "20240105", "email", "phone", "review", "survey", "login", "purchase", "true", "no",
    "negative", "positive", "billing|pricing", "é ü", "x" * 40,
]
cells = st.one_of(
    st.sampled_from(HOSTILE), st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=12)
)


@st.composite
def raw_tables(draw: st.DrawFn, table: str) -> pd.DataFrame:
    """A table for ``table``: some contract columns (perhaps not all), maybe an extra one."""
    contract = CONTRACTS[table]
    n = draw(st.integers(0, 8))
    columns = [c.name for c in contract.columns if c.required or draw(st.booleans())]
    if draw(st.integers(0, 9)) == 0 and columns:
        columns.remove(draw(st.sampled_from(columns)))  # a required column missing
    extra = draw(st.sampled_from(["", "cast", "segmnt", "notes", "occured_at"]))
    if extra and extra not in columns:
        columns.append(extra)
    return pd.DataFrame({c: draw(st.lists(cells, min_size=n, max_size=n)) for c in columns}, dtype=object)


def _assert_keeps_the_contract(validated, raw: pd.DataFrame) -> None:  # type: ignore[no-untyped-def]
    contract = CONTRACTS[validated.table]
    rows = sorted([*validated.valid_rows.tolist(), *validated.rejected["source_row"].tolist()])
    assert rows == list(range(1, len(raw) + 1))
    valid = validated.valid
    for col in contract.columns:
        values = valid[col.name]
        if col.kind in ("float", "int"):
            numbers = values.to_numpy(dtype="float64", na_value=np.nan)
            present = numbers[~np.isnan(numbers)]
            assert np.isfinite(present).all() and (np.abs(present) <= MAX_MAGNITUDE).all(), col.name
            if col.kind == "int" and not col.nullable:
                assert values.dtype == np.int64
        if col.kind == "id":
            # astype(object): the events table's ids are a category (map would map its categories).
            ids = values.astype(object)
            assert ids.map(lambda v: isinstance(v, str) and v != "" and v.lower() not in NULL_LIKE_IDS).all()
        if col.kind == "timestamp":
            assert not (values > EXPORTED).any(), col.name
    for earlier, later in contract.order:
        assert not (valid[later] < valid[earlier]).any()


@FUZZ
@given(data=st.data(), table=st.sampled_from(list(CONTRACTS)))
def test_validate_table_keeps_the_contract_or_raises_contract_error(data: st.DataObject, table: str) -> None:
    raw = data.draw(raw_tables(table))
    try:
        validated = validate_table(raw, CONTRACTS[table], f"{table}.csv", export_time=EXPORTED)
    except ContractError:
        return
    _assert_keeps_the_contract(validated, raw)


@FUZZ
@given(
    customers=raw_tables("customers"),
    other=st.sampled_from(["events", "tickets", "feedback"]),
    data=st.data(),
    share=st.sampled_from([0.0, 0.05, 1.0]),
    parquet=st.booleans(),
)
def test_load_world_returns_a_world_or_raises_contract_error(
    customers: pd.DataFrame, other: str, data: st.DataObject, share: float, parquet: bool
) -> None:
    table = data.draw(raw_tables(other))
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory)
        customers.to_csv(path / "customers.csv", index=False)
        if parquet and "customer_id" in table.columns:
            # A Parquet file with numeric ids (ints written as floats, NaN, infinity).
            ids = data.draw(st.lists(st.one_of(st.integers(-5, 2000).map(float), st.sampled_from([np.nan, np.inf])),
                                     min_size=len(table), max_size=len(table)))
            table.assign(customer_id=ids).astype({c: str for c in table.columns if c != "customer_id"}).to_parquet(
                path / f"{other}.parquet"
            )
        else:
            table.to_csv(path / f"{other}.csv", index=False)
        try:
            loaded = load_world(DataConfig(path=path, export_time=EXPORTED, max_quarantine_share=share))
        except ContractError:
            return
        for name, report in loaded.reports.items():
            assert report.n_input == len(pd.read_parquet(path / f"{name}.parquet") if (path / f"{name}.parquet").exists()
                                        else pd.read_csv(path / f"{name}.csv", dtype=str))
            assert len(report.rejected) <= share * report.n_input
            valid = report.valid
            assert not (valid[TIME_COLUMNS[name]] > EXPORTED).any()
        known = set(loaded.world.customers["customer_id"])
        assert set(loaded.world.tables()[other]["customer_id"]) <= known


@FUZZ
@given(data=st.data())
def test_load_flat_returns_a_table_or_raises_contract_error(data: st.DataObject) -> None:
    n = data.draw(st.integers(0, 8))
    frame = pd.DataFrame(
        {c: data.draw(st.lists(cells, min_size=n, max_size=n)) for c in ("id", "label", "value", "snapshot", "tenure")}
    )
    with tempfile.TemporaryDirectory() as directory:
        frame.to_csv(Path(directory) / "flat.csv", index=False)
        config = DataConfig(
            path=directory, layout="flat", max_quarantine_share=data.draw(st.sampled_from([0.05, 1.0])),
            flat=FlatLayout(file="flat.csv", id_column="id", label_column="label", value_column="value",
                            snapshot_column="snapshot"),
        )
        try:
            flat = load_flat(config, write_quarantine=False)
        except ContractError:
            return
    values = flat.frame["monthly_value"].to_numpy(dtype="float64")
    assert np.isfinite(values[~np.isnan(values)]).all()
    assert flat.frame["customer_id"].map(lambda v: str(v).lower() not in NULL_LIKE_IDS).all()
    assert len(flat.frame) + len(flat.report.rejected) == n


@FUZZ
@given(data=st.data())
def test_load_text_table_returns_texts_or_raises_contract_error(data: st.DataObject) -> None:
    n = data.draw(st.integers(0, 8))
    frame = pd.DataFrame({c: data.draw(st.lists(cells, min_size=n, max_size=n)) for c in ("id", "text", "date", "label")})
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "texts.csv"
        frame.to_csv(path, index=False)
        config = TextDataConfig(
            path=path, columns=TextColumns(text="text", id="id", created_at="date", sentiment="label")
        )
        try:
            table = load_text_table(config)
        except ContractError:
            return
    assert table.frame["id"].map(lambda v: isinstance(v, str) and v.lower() not in NULL_LIKE_IDS).all()
    assert table.n_read == n
