"""What the API and the page read: the current list with filters, one customer, the choices.

Every read goes through the ``current_run`` pointer inside one transaction, so a page of the
list, its total and a customer's detail all describe the same run even while a new one is
published. Runs never change once published, which is why counts can be cached per run.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.ext.compiler import compiles

from retain.serve.db import (
    current_run,
    evidence,
    outreach_log,
    outreach_reports,
    score_runs,
    scored_customers,
)

#: Sort keys the list accepts, and the column each sorts by (ties by rank, so order is stable).
SORTS: dict[str, str] = {
    "rank": "rank",
    "churn_probability": "churn_probability",
    "value_at_risk": "value_at_risk",
    "monthly_value": "monthly_value",
    "last_contacted_at": "last_contacted_at",
}

#: Columns of a list row, in the order of the CSV export.
LIST_COLUMNS = (
    "rank", "customer_id", "churn_probability", "monthly_value", "value_at_risk", "risk_tier",
    "segment", "region", "plan", "owner", "recommended_action", "outreach_status", "reasons",
    "themes", "last_contacted_at",
)

MAX_PAGE_SIZE = 500
#: The highest page number asked for (beyond, the row offset overflows a 64-bit integer).
MAX_PAGE = 1_000_000_000


class NoCurrentRun(LookupError):
    """Nothing has been published yet."""


@dataclass(frozen=True)
class ListFilters:
    """The list's filters; None (or False) means "any"."""

    tier: str | None = None
    segment: str | None = None
    region: str | None = None
    theme: str | None = None
    reason: str | None = None
    owner: str | None = None
    min_value: float | None = None
    not_contacted: bool = False

    def key(self) -> tuple[Any, ...]:
        return tuple(asdict(self).values())


@dataclass(frozen=True)
class Page:
    run_id: int
    total: int
    items: list[dict[str, Any]]


def _last_contact() -> sa.Subquery:
    return (
        sa.select(outreach_log.c.customer_id, sa.func.max(outreach_log.c.at).label("logged_at"))
        .where(outreach_log.c.control.is_(False))
        .group_by(outreach_log.c.customer_id)
        .subquery("last_contact")
    )


def current_run_id(conn: Connection) -> int:
    """The current run's id, or :class:`NoCurrentRun`."""
    run_id = conn.execute(sa.select(current_run.c.run_id)).scalar_one_or_none()
    if run_id is None:
        raise NoCurrentRun("no list has been published yet: run `retain score --publish`")
    return int(run_id)


class _Holds(sa.sql.expression.FunctionElement[bool]):
    """``_Holds(text, part)``: ``part`` occurs in ``text``, case and all (no LIKE wildcards)."""

    type = sa.Boolean()
    inherit_cache = True


@compiles(_Holds)
def _holds_default(element: _Holds, compiler: Any, **kw: Any) -> str:
    return f"(strpos({compiler.process(element.clauses, **kw)}) > 0)"


@compiles(_Holds, "sqlite")
def _holds_sqlite(element: _Holds, compiler: Any, **kw: Any) -> str:
    return f"(instr({compiler.process(element.clauses, **kw)}) > 0)"


def _json_holds(column: sa.ColumnElement[Any], fragment: str) -> sa.ColumnElement[bool]:
    """``column`` (JSON) holds ``fragment`` in its JSON text.

    The text is what ``json.dumps`` wrote (SQLAlchemy's JSON type and the bulk insert of
    :mod:`retain.serve.runs` both use it): strings in double quotes, non-ASCII as ``\\uXXXX``,
    ``", "`` and ``": "`` between items. A fragment built with ``json.dumps`` therefore matches
    exactly (SQLite's LIKE would ignore case and miss every accented theme).
    """
    return _Holds(sa.cast(column, sa.Text), sa.literal(fragment, sa.Text))


def _contacted_at(last: sa.Subquery) -> sa.ColumnElement[Any]:
    """The latest contact: logged through the API since, else the one known when the run was scored."""
    return sa.func.coalesce(last.c.logged_at, scored_customers.c.last_contacted_at)


def _filtered(run_id: int, filters: ListFilters, last: sa.Subquery) -> sa.Select[Any]:
    c = scored_customers.c
    query = (
        sa.select(*[col for col in scored_customers.c if col.name != "last_contacted_at"],
                  _contacted_at(last).label("last_contacted_at"))
        .select_from(scored_customers.outerjoin(last, last.c.customer_id == c.customer_id))
        .where(c.run_id == run_id)
    )
    if filters.tier:
        query = query.where(c.risk_tier == filters.tier)
    if filters.segment:
        query = query.where(c.segment == filters.segment)
    if filters.region:
        query = query.where(c.region == filters.region)
    if filters.owner:
        query = query.where(sa.func.coalesce(c.owner, c.team) == filters.owner)
    if filters.min_value is not None:
        query = query.where(c.value_at_risk >= filters.min_value)
    if filters.theme:  # an item of the list of themes
        query = query.where(_json_holds(c.themes, json.dumps(filters.theme)))
    if filters.reason:  # a reason's signal (not its phrase, evidence kind or evidence ids)
        query = query.where(_json_holds(c.reasons, '"signal": ' + json.dumps(filters.reason)))
    if filters.not_contacted:
        query = query.where(_contacted_at(last).is_(None))
    return query


class _PerRun:
    """Answers per run (its id and creation time) and question: a published run never changes,
    so a count or the choices of its filters stay true."""

    def __init__(self, size: int = 2048) -> None:
        self._lock = threading.Lock()
        self._cache: dict[tuple[Any, ...], Any] = {}
        self._size = size

    def get(self, key: tuple[Any, ...]) -> Any:
        with self._lock:
            return self._cache.get(key)

    def put(self, key: tuple[Any, ...], value: Any) -> None:
        with self._lock:
            if len(self._cache) >= self._size:
                self._cache.clear()
            self._cache[key] = value


_counts = _PerRun()
_choices = _PerRun(size=64)


def _run_key(conn: Connection, run_id: int) -> tuple[int, datetime | None]:
    """A run's id and creation time: SQLite gives a deleted newest run's id to the next run."""
    created = conn.execute(sa.select(score_runs.c.created_at).where(score_runs.c.id == run_id)).scalar_one_or_none()
    return run_id, created


def customer_page(
    conn: Connection,
    filters: ListFilters,
    sort: str = "rank",
    descending: bool = False,
    page: int = 1,
    page_size: int = 50,
) -> Page:
    """One page of the current run's list.

    The total is cached per run and filters unless ``not_contacted`` is set (outreach changes
    it while the run stays the same).
    """
    if sort not in SORTS:
        raise ValueError(f"sort must be one of {', '.join(SORTS)}, got {sort!r}")
    page, page_size = max(1, page), min(max(1, page_size), MAX_PAGE_SIZE)
    run_id = current_run_id(conn)
    last = _last_contact()
    query = _filtered(run_id, filters, last)
    key = (*_run_key(conn, run_id), *filters.key())
    total = None if filters.not_contacted else _counts.get(key)
    if total is None:
        total = int(conn.execute(sa.select(sa.func.count()).select_from(query.subquery())).scalar_one())
        if not filters.not_contacted:
            _counts.put(key, total)
    rows = conn.execute(
        query.order_by(*_order(sort, descending, last)).offset((page - 1) * page_size).limit(page_size)
    ).mappings()
    return Page(run_id=run_id, total=total, items=[_list_row(r) for r in rows])


def export_rows(conn: Connection, filters: ListFilters, sort: str = "rank", descending: bool = False,
                chunk: int = 5000) -> Iterator[dict[str, Any]]:
    """Every row of the current run's filtered list, in order (for the CSV export)."""
    if sort not in SORTS:
        raise ValueError(f"sort must be one of {', '.join(SORTS)}, got {sort!r}")
    run_id = current_run_id(conn)
    last = _last_contact()
    result = conn.execution_options(yield_per=chunk).execute(
        _filtered(run_id, filters, last).order_by(*_order(sort, descending, last))
    ).mappings()
    for row in result:
        yield _list_row(row)


def _order(sort: str, descending: bool, last: sa.Subquery) -> tuple[sa.ColumnElement[Any], ...]:
    """The list's order: by ``sort``, ties by rank; customers never contacted last either way."""
    column = _contacted_at(last) if sort == "last_contacted_at" else scored_customers.c[SORTS[sort]]
    order = column.desc() if descending else column.asc()
    if sort == "last_contacted_at":  # the databases differ on where NULL goes
        order = sa.nulls_last(order)
    return order, scored_customers.c.rank


def _list_row(row: Any) -> dict[str, Any]:
    return {
        "rank": row["rank"],
        "customer_id": row["customer_id"],
        "churn_probability": row["churn_probability"],
        "monthly_value": row["monthly_value"],
        "value_at_risk": row["value_at_risk"],
        "risk_tier": row["risk_tier"],
        "segment": row["segment"],
        "region": row["region"],
        "plan": row["plan"],
        "owner": row["owner"] or row["team"],
        "recommended_action": row["recommended_action"],
        "outreach_status": row["outreach_status"],
        "control": bool(row["control"]),
        "reasons": [{"phrase": r.get("phrase"), "signal": r.get("signal")} for r in row["reasons"] or []],
        "themes": list(row["themes"] or []),
        "last_contacted_at": _iso(row["last_contacted_at"]),
    }


def filter_choices(conn: Connection) -> dict[str, list[str]]:
    """The values each filter can take in the current run (for the page's drop-downs).

    Cached per run: reading them scans the run's rows (a second on a million customers).
    """
    run_id = current_run_id(conn)
    key = _run_key(conn, run_id)
    cached = _choices.get(key)
    if cached is None:
        cached = _filter_choices(conn, run_id)
        _choices.put(key, cached)
    return {name: list(values) for name, values in cached.items()}


def _filter_choices(conn: Connection, run_id: int) -> dict[str, list[str]]:
    c = scored_customers.c
    out: dict[str, list[str]] = {}
    for name, column in (("tier", c.risk_tier), ("segment", c.segment), ("region", c.region),
                         ("owner", sa.func.coalesce(c.owner, c.team))):
        values = conn.execute(
            sa.select(column).where(c.run_id == run_id, column.is_not(None)).distinct().order_by(column)
        ).scalars()
        out[name] = [str(v) for v in values]
    reasons: set[str] = set()
    themes: set[str] = set()
    # Reasons and themes live in JSON lists: every row is read (once per run, then cached), not
    # the top of the list: a list ranked by value at risk can start with thousands of customers
    # no reason stands out for (CDNOW's big spenders), and the filter would hide the rest.
    rows = conn.execution_options(yield_per=5000).execute(
        sa.select(c.reasons, c.themes).where(c.run_id == run_id)
    )
    for reason_list, theme_list in rows:
        reasons.update(r["signal"] for r in reason_list or [] if r.get("signal"))
        themes.update(theme_list or [])
    out["reason"] = sorted(reasons)
    out["theme"] = sorted(themes)
    return out


def customer_detail(conn: Connection, customer_id: str) -> dict[str, Any] | None:
    """The current run's row for a customer with its reasons' evidence, score history and outreach.

    None when the customer is in no kept run and has no outreach.
    """
    run_id = current_run_id(conn)
    c = scored_customers.c
    row = conn.execute(
        sa.select(scored_customers).where(c.run_id == run_id, c.customer_id == customer_id)
    ).mappings().first()
    history = [
        {"run_id": h.run_id, "as_of": _iso(h.as_of), "churn_probability": h.churn_probability,
         "rank": h.rank, "risk_tier": h.risk_tier, "value_at_risk": h.value_at_risk}
        for h in conn.execute(
            sa.select(c.run_id, score_runs.c.as_of, c.churn_probability, c.rank, c.risk_tier, c.value_at_risk)
            .select_from(scored_customers.join(score_runs, score_runs.c.id == c.run_id))
            .where(c.customer_id == customer_id, score_runs.c.status != "pending")
            .order_by(score_runs.c.as_of, c.run_id)
        )
    ]
    outreach = [
        {"id": o.id, "contacted_at": _iso(o.at), "contacted_by": o.contacted_by, "channel": o.channel,
         "outcome": o.outcome, "notes": o.notes, "action": o.action, "run_id": o.run_id}
        for o in conn.execute(
            sa.select(outreach_log).where(outreach_log.c.customer_id == customer_id)
            .order_by(outreach_log.c.at.desc(), outreach_log.c.id.desc())
        )
    ]
    if row is None and not history and not outreach:
        return None
    customer: dict[str, Any] | None = None
    if row is not None:
        found = {
            (e["kind"], e["evidence_id"]): e
            for e in conn.execute(
                sa.select(evidence).where(evidence.c.run_id == run_id, evidence.c.customer_id == customer_id)
            ).mappings()
        }
        reasons = []
        for reason in row["reasons"] or []:
            kind = reason.get("evidence_kind")
            items = [
                _evidence_item(found[(kind, i)]) for i in reason.get("evidence_ids") or [] if (kind, i) in found
            ]
            items.sort(key=lambda e: e["occurred_at"] or "", reverse=True)
            reasons.append({"phrase": reason.get("phrase"), "signal": reason.get("signal"), "evidence": items})
        latest = outreach[0]["contacted_at"] if outreach else _iso(row["last_contacted_at"])
        customer = {**_list_row({**row, "last_contacted_at": latest}),
                    "reasons": reasons, "team": row["team"], "run_id": run_id,
                    "reasons_computed": _reasons_computed(conn, run_id, row["rank"])}
    return {"customer": customer, "history": history, "outreach": outreach}


def _reasons_computed(conn: Connection, run_id: int, rank: int) -> bool:
    """Whether the run computed reasons for the customer at ``rank`` (the top of a large list only)."""
    summary = conn.execute(sa.select(score_runs.c.summary).where(score_runs.c.id == run_id)).scalar() or {}
    through = (summary.get("reasons") or {}).get("through_rank")
    return through is None or rank <= through


def _evidence_item(e: Any) -> dict[str, Any]:
    themes = list(e["themes"] or [])
    return {
        "id": e["evidence_id"], "kind": e["kind"], "occurred_at": _iso(e["occurred_at"]),
        "channel": e["channel"], "status": e["status"], "sentiment": e["sentiment"],
        "theme": ", ".join(themes) if themes else None, "themes": themes,
        "csat": e["csat"], "nps": e["nps"], "ces": e["ces"], "rating": e["rating"], "text": e["text"],
    }


def record_outreach(
    conn: Connection,
    customer_id: str,
    contacted_by: str,
    channel: str,
    outcome: str | None,
    notes: str | None,
    at: datetime,
) -> dict[str, Any]:
    """Log a contact against the current run (the action the list recommended is kept with it).

    Raises LookupError when the customer is not in the current list.
    """
    run_id = current_run_id(conn)
    row = conn.execute(
        sa.select(scored_customers.c.recommended_action).where(
            scored_customers.c.run_id == run_id, scored_customers.c.customer_id == customer_id
        )
    ).first()
    if row is None:
        raise LookupError(f"customer {customer_id!r} is not in the current list (run {run_id})")
    values = {"customer_id": customer_id, "contacted_by": contacted_by, "channel": channel,
              "outcome": outcome, "notes": notes, "at": at, "run_id": run_id,
              "action": row.recommended_action, "control": False}
    new_id = conn.execute(outreach_log.insert().returning(outreach_log.c.id), values).scalar_one()
    return {"id": int(new_id), **{k: _iso(v) if isinstance(v, datetime) else v for k, v in values.items()}}


def run_row(conn: Connection, run_id: int | None = None) -> dict[str, Any] | None:
    """One run (the current one by default) as JSON-ready fields."""
    if run_id is None:
        run_id = conn.execute(sa.select(current_run.c.run_id)).scalar_one_or_none()
        if run_id is None:
            return None
    row = conn.execute(sa.select(score_runs).where(score_runs.c.id == run_id)).mappings().first()
    if row is None:
        return None
    return {"id": row["id"], "as_of": _iso(row["as_of"]), "created_at": _iso(row["created_at"]),
            "status": row["status"], "customers": row["customers"],
            "model_versions": dict(row["model_versions"] or {}), "value_basis": row["value_basis"]}


def latest_effect(conn: Connection) -> dict[str, Any]:
    """The newest outreach report (``retain outreach report --publish``), or a message saying none yet."""
    row = conn.execute(
        sa.select(outreach_reports).order_by(outreach_reports.c.id.desc()).limit(1)
    ).mappings().first()
    if row is None:
        return {
            "message": "No effect measured yet: once customers contacted from a published list have "
            "passed their horizon, run `retain outreach report --publish`.",
            "rows": [],
        }
    return {**dict(row["report"]), "created_at": _iso(row["created_at"]),
            "observed_until": _iso(row["observed_until"])}


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)
