"""Scoring runs in the database: publish one, list them, roll back, prune.

A run is published in two steps. Its rows (the ranked customers and the evidence behind their
reasons) are inserted in chunks under a ``pending`` run that no reader is pointed at; then one
short transaction marks the current run ``superseded``, the new one ``published`` and moves the
``current_run`` pointer. A reader that reads the list through the pointer (in one statement or
one transaction) therefore sees the old list or the new one, never a mix; a publish that fails
half-way leaves the old list current and deletes its own rows.

Pruning deletes old runs' customers and evidence but never the outreach log, whose rows keep the
run id they were logged against.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import PurePath
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from retain.churn.evidence import EVIDENCE_RECORD_COLUMNS, EVIDENCE_SEPARATOR, evidence_kind
from retain.serve.db import current_run as current_table
from retain.serve.db import evidence as evidence_table
from retain.serve.db import outreach_log, score_runs, scored_customers, utcnow

logger = logging.getLogger(__name__)
RowT = TypeVar("RowT")

CHUNK_ROWS = 5_000
ATTRIBUTES = ("segment", "region", "plan")


class RunError(ValueError):
    """A run id that does not exist or cannot be made current."""


@dataclass(frozen=True)
class RunInfo:
    """One scoring run as listed by ``retain runs``."""

    id: int
    as_of: datetime
    created_at: datetime
    status: str
    customers: int
    model_versions: dict[str, str]
    value_basis: str | None
    current: bool


def with_customer_attributes(ranked: pd.DataFrame, customers: pd.DataFrame | None) -> pd.DataFrame:
    """``ranked`` with the customers' ``segment``, ``region`` and ``plan`` where the table has them.

    Columns ``ranked`` already holds are kept as they are; ``ranked`` is not modified.
    """
    if customers is None:
        return ranked
    wanted = [c for c in ATTRIBUTES if c in customers.columns and c not in ranked.columns]
    if not wanted:
        return ranked
    by_id = customers.assign(customer_id=customers["customer_id"].astype(str))
    attributes = by_id.drop_duplicates("customer_id").set_index("customer_id")[wanted]
    joined = attributes.reindex(ranked["customer_id"].astype(str).to_numpy())
    out = ranked.copy()
    for column in wanted:
        out[column] = joined[column].astype(object).to_numpy()
    return out


def publish_run(
    engine: Engine,
    ranked: pd.DataFrame,
    summary: dict[str, Any],
    evidence: pd.DataFrame | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> int:
    """Write a scored list as a new run and make it the current one; return its id.

    Parameters
    ----------
    engine:
        From :func:`retain.serve.db.open_database`.
    ranked:
        The ranked list (``scoring.score_world``): ``rank``, ``as_of``, ``customer_id``,
        ``churn_probability``, ``monthly_value``, ``value_at_risk``, ``risk_tier``,
        ``reason_i``/``reason_i_signal``/``reason_i_evidence``, ``recommended_action``, and
        optionally ``segment``, ``region``, ``plan``, ``owner``, and the outreach plan's
        ``team``, ``outreach_status``, ``control``, ``last_contacted_at``.
    summary:
        The run's summary (``scoring.summarise``): ``as_of``, ``model_versions``,
        ``value_basis`` are read from it; the whole is stored.
    evidence:
        The rows behind the reasons (``churn.evidence.evidence_records``), or None.
    chunk_rows:
        Rows per ``executemany``.
    """
    as_of = _as_of(ranked, summary)
    customers = _customer_columns(ranked, evidence)
    evidence_rows = _evidence_columns(evidence) if evidence is not None and len(evidence) else {}
    now = utcnow()
    with engine.begin() as conn:
        run_id = conn.execute(
            score_runs.insert().returning(score_runs.c.id),
            {
                "as_of": as_of, "created_at": now, "status": "pending",
                "model_versions": dict(summary.get("model_versions", {})),
                "customers": len(ranked), "value_basis": summary.get("value_basis"),
                "summary": _plain(summary),
            },
        ).scalar_one()
    try:
        with engine.begin() as conn:
            for table, columns in ((scored_customers, customers), (evidence_table, evidence_rows)):
                _insert(conn, table, run_id, columns, chunk_rows)
        with engine.begin() as conn:
            _switch(conn, run_id, previous_status="superseded")
    except BaseException:
        with engine.begin() as conn:
            _delete_runs(conn, [run_id])
        raise
    logger.info(
        "published run %d: %d customers, %d evidence rows",
        run_id, len(ranked), 0 if evidence is None else len(evidence),
    )
    return run_id


def current_run(engine: Engine) -> RunInfo | None:
    """The run readers are shown, or None before the first publish."""
    return next((run for run in list_runs(engine) if run.current), None)


def list_runs(engine: Engine) -> list[RunInfo]:
    """Every run kept, newest first, the current one marked."""
    query = (
        sa.select(score_runs, (current_table.c.run_id.is_not(None)).label("is_current"))
        .select_from(score_runs.outerjoin(current_table, current_table.c.run_id == score_runs.c.id))
        .order_by(score_runs.c.id.desc())
    )
    with engine.connect() as conn:
        return [
            RunInfo(
                id=row.id, as_of=row.as_of, created_at=row.created_at, status=row.status,
                customers=row.customers, model_versions=dict(row.model_versions or {}),
                value_basis=row.value_basis, current=bool(row.is_current),
            )
            for row in conn.execute(query)
        ]


def rollback(engine: Engine, run_id: int) -> RunInfo:
    """Make an earlier run current again, in one transaction; the run left is ``rolled_back``.

    Raises
    ------
    RunError
        No such run, a run still being written, or the run that is already current.
    """
    with engine.begin() as conn:
        status = conn.execute(
            sa.select(score_runs.c.status).where(score_runs.c.id == run_id)
        ).scalar_one_or_none()
        if status is None:
            raise RunError(f"there is no run {run_id} (retain runs lists the runs kept)")
        if status == "pending":
            raise RunError(f"run {run_id} is still being written (or its publish failed)")
        if conn.execute(sa.select(current_table.c.run_id)).scalar_one_or_none() == run_id:
            raise RunError(f"run {run_id} is already the current run")
        _switch(conn, run_id, previous_status="rolled_back")
    logger.info("rolled back to run %d", run_id)
    run = next(r for r in list_runs(engine) if r.id == run_id)
    return run


def prune_runs(engine: Engine, keep: int) -> list[int]:
    """Delete all but the newest ``keep`` runs (the current one always stays); return their ids.

    Their customers and evidence go with them; the outreach log is never touched. A ``pending``
    run may be a publish in progress: it is deleted only once it is a day old (a publish that
    was killed; one that fails cleans up after itself).
    """
    if keep < 1:
        raise ValueError(f"keep must be at least 1, got {keep}")
    stale = utcnow() - timedelta(days=1)
    with engine.begin() as conn:
        current = conn.execute(sa.select(current_table.c.run_id)).scalar_one_or_none()
        listed = conn.execute(
            sa.select(score_runs.c.id, score_runs.c.status, score_runs.c.created_at)
            .order_by(score_runs.c.id.desc())
        ).all()
        done = [row.id for row in listed if row.status != "pending" and row.id != current]
        doomed = done[keep - 1 :] + [
            row.id for row in listed if row.status == "pending" and row.created_at < stale
        ]
        _delete_runs(conn, doomed)
    if doomed:
        logger.info("pruned %d run(s): %s", len(doomed), doomed)
    return doomed


def log_outreach(
    engine: Engine,
    customer_id: str,
    contacted_by: str,
    channel: str,
    at: datetime | None = None,
    run_id: int | None = None,
    outcome: str | None = None,
    notes: str | None = None,
    action: str | None = None,
    control: bool = False,
) -> int:
    """Record one contact with a customer; return its id."""
    with engine.begin() as conn:
        return conn.execute(
            outreach_log.insert().returning(outreach_log.c.id),
            {
                "customer_id": customer_id, "contacted_by": contacted_by, "channel": channel,
                "at": at or utcnow(), "run_id": run_id, "outcome": outcome, "notes": notes,
                "action": action, "control": control,
            },
        ).scalar_one()


def logged_contacts(engine: Engine) -> pd.DataFrame:
    """Every contact of the outreach log (not control-group entries): ``customer_id``,
    ``contacted_at``, ``channel``, ``outcome``, ``action``, ``run_id``; oldest first."""
    c = outreach_log.c
    query = (
        sa.select(c.customer_id, c.at.label("contacted_at"), c.channel, c.outcome, c.action, c.run_id)
        .where(c.control.is_(False))
        .order_by(c.at, c.id)
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    frame = pd.DataFrame(rows, columns=["customer_id", "contacted_at", "channel", "outcome", "action", "run_id"])
    frame["customer_id"] = frame["customer_id"].astype(object)
    frame["contacted_at"] = pd.to_datetime(frame["contacted_at"]).astype("datetime64[ns]")
    return frame


def store_outreach_report(engine: Engine, observed_until: datetime, report: dict[str, Any]) -> int:
    """Keep a measured effect of outreach (``retain outreach report --publish``) for the API."""
    from retain.serve.db import outreach_reports

    with engine.begin() as conn:
        return conn.execute(
            outreach_reports.insert().returning(outreach_reports.c.id),
            {"created_at": utcnow(), "observed_until": observed_until, "report": _plain(report)},
        ).scalar_one()


def _insert(
    conn: Connection, table: sa.Table, run_id: int, columns: dict[str, list[Any]], chunk_rows: int
) -> None:
    """Insert a run's rows, given column by column, in the caller's transaction.

    PostgreSQL with psycopg: one ``COPY ... FROM STDIN``. SQLite: the driver's ``executemany``
    in chunks, values already in the form SQLAlchemy stores (JSON text, its DATETIME text).
    Elsewhere: SQLAlchemy's ``executemany``. Turning values into parameters one by one is most
    of a large publish's time through SQLAlchemy; the first two paths convert whole columns.
    """
    if not columns:
        return
    n = len(next(iter(columns.values())))
    values = {"run_id": [run_id] * n, **columns}
    dialect = conn.dialect
    if not _bulk_path(dialect):
        names = list(values)
        for chunk in _chunks(list(zip(*values.values(), strict=True)), chunk_rows):
            conn.execute(table.insert(), [dict(zip(names, row, strict=True)) for row in chunk])
        return
    for name, column in values.items():
        if isinstance(table.c[name].type, sa.JSON):
            values[name] = [None if v is None else json.dumps(v) for v in column]
        elif dialect.name == "sqlite" and isinstance(table.c[name].type, sa.DateTime):
            # SQLAlchemy's SQLite DATETIME text, so its reads parse what was written here.
            values[name] = [None if v is None else v.strftime("%Y-%m-%d %H:%M:%S.%f") for v in column]
    rows = list(zip(*values.values(), strict=True))
    names = ", ".join(f'"{c}"' for c in values)
    if dialect.name == "postgresql":
        sql = f'COPY "{table.name}" ({names}) FROM STDIN'
        try:
            with conn.connection.driver_connection.cursor() as cursor, cursor.copy(sql) as copy:  # type: ignore[union-attr]
                for row in rows:
                    copy.write_row(row)
        except dialect.dbapi.Error as exc:  # type: ignore[union-attr]
            raise sa.exc.DBAPIError.instance(sql, None, exc, dialect.dbapi.Error) from None  # type: ignore[union-attr]
    else:
        sql = f'INSERT INTO "{table.name}" ({names}) VALUES ({", ".join("?" * len(values))})'
        for chunk in _chunks(rows, chunk_rows):
            conn.exec_driver_sql(sql, chunk)


def _bulk_path(dialect: sa.Dialect) -> bool:
    """Whether :func:`_insert` may bypass SQLAlchemy's parameters (SQLite, PostgreSQL via psycopg)."""
    return dialect.name == "sqlite" or (dialect.name, dialect.driver) == ("postgresql", "psycopg")


def _switch(conn: Connection, run_id: int, previous_status: str) -> None:
    """In the caller's transaction: the current run gets ``previous_status``, ``run_id`` becomes current.

    The first statement writes, so the transaction holds the write lock (SQLite) before the
    current run is read; on PostgreSQL the pointer row is read ``FOR UPDATE``. Two publishes
    at once thus switch one after the other, and only the last is left ``published``.
    """
    conn.execute(score_runs.update().where(score_runs.c.id == run_id).values(status="published"))
    previous = conn.execute(sa.select(current_table.c.run_id).with_for_update()).scalar_one_or_none()
    now = utcnow()
    if previous is None:
        conn.execute(current_table.insert(), {"id": 1, "run_id": run_id, "switched_at": now})
        return
    if previous != run_id:
        conn.execute(score_runs.update().where(score_runs.c.id == previous).values(status=previous_status))
    conn.execute(current_table.update().where(current_table.c.id == 1).values(run_id=run_id, switched_at=now))


def _delete_runs(conn: Connection, ids: Sequence[int]) -> None:
    if not ids:
        return
    for table in (evidence_table, scored_customers):
        conn.execute(table.delete().where(table.c.run_id.in_(ids)))
    conn.execute(score_runs.delete().where(score_runs.c.id.in_(ids)))


def _customer_columns(ranked: pd.DataFrame, evidence: pd.DataFrame | None) -> dict[str, list[Any]]:
    """The ``scored_customers`` columns of a ranked list, as lists of plain values."""
    numbers = sorted(
        int(c.split("_")[1]) for c in ranked.columns if c.startswith("reason_") and c.endswith("_signal")
    )
    customers = ranked["customer_id"].astype(str).tolist()
    themes = _themes_by_customer(ranked, evidence, numbers)
    columns: dict[str, list[Any]] = {
        "customer_id": customers,
        "rank": ranked["rank"].astype("int64").tolist(),
        **{c: ranked[c].astype("float64").tolist() for c in ("churn_probability", "monthly_value", "value_at_risk")},
        "risk_tier": ranked["risk_tier"].astype(str).tolist(),
        "reasons": _reasons(ranked, numbers),
        "recommended_action": ranked["recommended_action"].astype(str).tolist(),
    }
    for name in (*ATTRIBUTES, "owner", "team", "outreach_status"):
        columns[name] = _texts(ranked[name]) if name in ranked.columns else [None] * len(ranked)
    columns["control"] = (
        ranked["control"].fillna(False).astype(bool).tolist() if "control" in ranked.columns else [False] * len(ranked)
    )
    columns["last_contacted_at"] = (
        [None if pd.isna(t) else t.to_pydatetime() for t in pd.to_datetime(ranked["last_contacted_at"])]
        if "last_contacted_at" in ranked.columns
        else [None] * len(ranked)
    )
    columns["themes"] = [themes.get(c) for c in customers]
    return columns


def _reasons(ranked: pd.DataFrame, numbers: Sequence[int]) -> list[list[dict[str, Any]]]:
    """Per customer: [{phrase, signal, evidence_kind, evidence_ids}], strongest first, no empty ones."""
    listed: list[list[dict[str, Any]]] = [[] for _ in range(len(ranked))]
    for i in numbers:
        phrases = _texts(ranked[f"reason_{i}"])
        signals = _texts(ranked[f"reason_{i}_signal"])
        ids = _texts(ranked[f"reason_{i}_evidence"]) if f"reason_{i}_evidence" in ranked else [None] * len(ranked)
        for row, (phrase, signal, joined) in enumerate(zip(phrases, signals, ids, strict=True)):
            if phrase is None:
                continue
            listed[row].append(
                {
                    "phrase": phrase,
                    "signal": signal,
                    "evidence_kind": evidence_kind(signal) if signal else None,
                    "evidence_ids": joined.split(EVIDENCE_SEPARATOR) if joined else [],
                }
            )
    return listed


def _texts(values: pd.Series) -> list[str | None]:
    """A column as strings, None where missing."""
    return [None if _missing(v) else str(v) for v in values.to_numpy(dtype=object)]


def _numbers(values: pd.Series) -> list[float | None]:
    """A column as floats, None where missing."""
    floats = pd.to_numeric(values, errors="coerce").astype("float64")
    return [None if math.isnan(v) else v for v in floats.tolist()]


def _themes_by_customer(
    ranked: pd.DataFrame, evidence: pd.DataFrame | None, numbers: Sequence[int]
) -> dict[str, list[str]]:
    """Per customer, the themes of their reasons (``theme_<id>`` signals) and of their evidence."""
    found: dict[str, set[str]] = {}
    ids = ranked["customer_id"].astype(str).to_numpy()
    for i in numbers:
        signals = ranked[f"reason_{i}_signal"].to_numpy(dtype=object)
        for customer, signal in zip(ids, signals, strict=True):
            if isinstance(signal, str) and signal.startswith("theme_"):
                found.setdefault(customer, set()).add(signal.removeprefix("theme_"))
    if evidence is not None and "themes" in evidence.columns:
        for customer, themes in zip(
            evidence["customer_id"].astype(str).to_numpy(), evidence["themes"].to_numpy(dtype=object),
            strict=True,
        ):
            if isinstance(themes, list | tuple | np.ndarray) and len(themes):
                found.setdefault(customer, set()).update(str(t) for t in themes)
    return {customer: sorted(themes) for customer, themes in found.items()}


def _evidence_columns(evidence: pd.DataFrame) -> dict[str, list[Any]]:
    """The ``evidence`` columns of ``churn.evidence.evidence_records``, as lists of plain values."""
    columns: dict[str, list[Any]] = {}
    for name in EVIDENCE_RECORD_COLUMNS:
        if name not in evidence.columns:
            columns[name] = [None] * len(evidence)
        elif name == "occurred_at":
            columns[name] = [t.to_pydatetime() for t in pd.to_datetime(evidence[name])]
        elif name == "themes":
            columns[name] = [
                [str(t) for t in v] if isinstance(v, list | tuple | np.ndarray) else None
                for v in evidence[name].to_numpy(dtype=object)
            ]
        elif name in ("csat", "nps", "ces", "rating"):
            columns[name] = _numbers(evidence[name])
        else:
            columns[name] = _texts(evidence[name])
    return columns


def _as_of(ranked: pd.DataFrame, summary: dict[str, Any]) -> datetime:
    if "as_of" in ranked.columns and len(ranked):
        return pd.Timestamp(ranked["as_of"].iloc[0]).to_pydatetime()
    if summary.get("as_of"):
        return pd.Timestamp(summary["as_of"]).to_pydatetime()
    raise ValueError("the ranked list has no as_of (an empty list needs summary['as_of'])")


def _chunks(rows: list[RowT], size: int) -> Iterator[list[RowT]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def _missing(value: object) -> bool:
    return value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and math.isnan(value))


def _plain(value: Any) -> Any:
    """``value`` with numpy scalars, timestamps and paths made JSON-ready; NaN as null."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, pd.Timestamp | datetime):
        return value.isoformat()
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


