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

import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from retain.churn.evidence import EVIDENCE_RECORD_COLUMNS, EVIDENCE_SEPARATOR, evidence_kind
from retain.serve.db import current_run as current_table
from retain.serve.db import evidence as evidence_table
from retain.serve.db import outreach_log, score_runs, scored_customers

logger = logging.getLogger(__name__)

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
    wanted = [c for c in ATTRIBUTES if customers is not None and c in customers.columns and c not in ranked]
    if not wanted:
        return ranked
    assert customers is not None
    attributes = customers.drop_duplicates("customer_id").set_index(
        customers["customer_id"].drop_duplicates().astype(str).to_numpy()
    )[wanted]
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
        optionally ``segment``, ``region``, ``plan``, ``owner``, ``team``.
    summary:
        The run's summary (``scoring.summarise``): ``as_of``, ``model_versions``,
        ``value_basis`` are read from it; the whole is stored.
    evidence:
        The rows behind the reasons (``churn.evidence.evidence_records``), or None.
    chunk_rows:
        Rows per ``executemany``.
    """
    as_of = _as_of(ranked, summary)
    customers = list(_customer_rows(ranked, evidence))
    evidence_rows = list(_evidence_rows(evidence)) if evidence is not None else []
    now = _utcnow()
    with engine.begin() as conn:
        run_id = conn.execute(
            score_runs.insert().returning(score_runs.c.id),
            {
                "as_of": as_of, "created_at": now, "status": "pending",
                "model_versions": dict(summary.get("model_versions", {})),
                "customers": len(customers), "value_basis": summary.get("value_basis"),
                "summary": _plain(summary),
            },
        ).scalar_one()
    try:
        with engine.begin() as conn:
            for table, rows in ((scored_customers, customers), (evidence_table, evidence_rows)):
                for chunk in _chunks(rows, chunk_rows):
                    conn.execute(table.insert(), [{**row, "run_id": run_id} for row in chunk])
        with engine.begin() as conn:
            _switch(conn, run_id, previous_status="superseded")
    except BaseException:
        with engine.begin() as conn:
            _delete_runs(conn, [run_id])
        raise
    logger.info("published run %d: %d customers, %d evidence rows", run_id, len(customers), len(evidence_rows))
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
    stale = _utcnow() - timedelta(days=1)
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
                "at": at or _utcnow(), "run_id": run_id, "outcome": outcome, "notes": notes,
                "action": action, "control": control,
            },
        ).scalar_one()


def _switch(conn: Connection, run_id: int, previous_status: str) -> None:
    """In the caller's transaction: the current run gets ``previous_status``, ``run_id`` becomes current."""
    previous = conn.execute(sa.select(current_table.c.run_id).with_for_update()).scalar_one_or_none()
    now = _utcnow()
    if previous is not None:
        conn.execute(
            score_runs.update().where(score_runs.c.id == previous).values(status=previous_status)
        )
        conn.execute(current_table.update().where(current_table.c.id == 1).values(run_id=run_id, switched_at=now))
    else:
        conn.execute(current_table.insert(), {"id": 1, "run_id": run_id, "switched_at": now})
    conn.execute(score_runs.update().where(score_runs.c.id == run_id).values(status="published"))


def _delete_runs(conn: Connection, ids: Sequence[int]) -> None:
    if not ids:
        return
    for table in (evidence_table, scored_customers):
        conn.execute(table.delete().where(table.c.run_id.in_(ids)))
    conn.execute(score_runs.delete().where(score_runs.c.id.in_(ids)))


def _customer_rows(ranked: pd.DataFrame, evidence: pd.DataFrame | None) -> Iterator[dict[str, Any]]:
    numbers = sorted(
        int(c.split("_")[1]) for c in ranked.columns if c.startswith("reason_") and c.endswith("_signal")
    )
    themes = _themes_by_customer(ranked, evidence, numbers)
    optional = [c for c in (*ATTRIBUTES, "owner", "team") if c in ranked.columns]
    columns = {
        name: ranked[name].to_numpy(dtype=object).tolist()
        for name in (
            "rank", "customer_id", "churn_probability", "monthly_value", "value_at_risk",
            "risk_tier", "recommended_action", *optional,
        )
    }
    reasons = {
        i: (
            ranked[f"reason_{i}"].to_numpy(dtype=object).tolist(),
            ranked[f"reason_{i}_signal"].to_numpy(dtype=object).tolist(),
            (
                ranked[f"reason_{i}_evidence"].to_numpy(dtype=object).tolist()
                if f"reason_{i}_evidence" in ranked
                else [None] * len(ranked)
            ),
        )
        for i in numbers
    }
    for row in range(len(ranked)):
        customer = str(columns["customer_id"][row])
        listed = []
        for phrases, signals, ids in reasons.values():
            if _missing(phrases[row]):
                continue
            signal = None if _missing(signals[row]) else str(signals[row])
            listed.append(
                {
                    "phrase": str(phrases[row]),
                    "signal": signal,
                    "evidence_kind": evidence_kind(signal) if signal else None,
                    "evidence_ids": [] if _missing(ids[row]) else str(ids[row]).split(EVIDENCE_SEPARATOR),
                }
            )
        yield {
            "rank": int(columns["rank"][row]),
            "customer_id": customer,
            "churn_probability": float(columns["churn_probability"][row]),
            "monthly_value": float(columns["monthly_value"][row]),
            "value_at_risk": float(columns["value_at_risk"][row]),
            "risk_tier": str(columns["risk_tier"][row]),
            "reasons": listed,
            "recommended_action": str(columns["recommended_action"][row]),
            **{c: None for c in (*ATTRIBUTES, "owner", "team")},
            **{c: None if _missing(columns[c][row]) else str(columns[c][row]) for c in optional},
            "themes": themes.get(customer),
        }


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


def _evidence_rows(evidence: pd.DataFrame) -> Iterator[dict[str, Any]]:
    present = [c for c in EVIDENCE_RECORD_COLUMNS if c in evidence.columns]
    columns = {c: evidence[c].to_numpy(dtype=object).tolist() for c in present}
    for row in range(len(evidence)):
        record: dict[str, Any] = {c: None for c in EVIDENCE_RECORD_COLUMNS}
        for c in present:
            value = columns[c][row]
            if c == "themes":
                record[c] = None if value is None or (isinstance(value, float) and math.isnan(value)) else [
                    str(t) for t in value
                ]
            elif c == "occurred_at":
                record[c] = pd.Timestamp(value).to_pydatetime()
            elif _missing(value):
                record[c] = None
            elif c in ("csat", "nps", "ces", "rating"):
                record[c] = float(value)
            else:
                record[c] = str(value)
        yield record


def _as_of(ranked: pd.DataFrame, summary: dict[str, Any]) -> datetime:
    if "as_of" in ranked.columns and len(ranked):
        return pd.Timestamp(ranked["as_of"].iloc[0]).to_pydatetime()
    if summary.get("as_of"):
        return pd.Timestamp(summary["as_of"]).to_pydatetime()
    raise ValueError("the ranked list has no as_of (an empty list needs summary['as_of'])")


def _chunks(rows: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def _missing(value: object) -> bool:
    return value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and math.isnan(value))


def _plain(value: Any) -> Any:
    """``value`` with numpy scalars and timestamps made JSON-ready."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, pd.Timestamp | datetime):
        return value.isoformat()
    return value


def _utcnow() -> datetime:
    # Columns are tz-naive UTC, like every timestamp in retain.
    return datetime.now(UTC).replace(tzinfo=None)
