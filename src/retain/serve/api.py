"""The HTTP API and the support leads' page, one FastAPI app (``retain serve`` runs it).

Every ``/api`` route but health and readiness needs ``Authorization: Bearer <token>``; each
names the permission it needs and :data:`retain.serve.auth.ROLES` says which roles have it.
The page (``/``) is static HTML and JavaScript calling the same API with the token the user
pastes; nothing is built. Requests are logged as method, route template, status and time:
never a customer id, a query string, a body or a token.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the routes' annotations at run
# time, and those that name closures (the ``Depends(principal)`` of each route) must be objects.

import csv
import io
import json
import logging
import secrets
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.engine import Engine

from retain.serve import auth, queries
from retain.serve.auth import AuthError, Principal
from retain.serve.db import utcnow

logger = logging.getLogger(__name__)

WEB = Path(__file__).with_name("web")
#: How far ahead of the server's clock a logged contact may be dated (clocks differ a little).
FUTURE_TOLERANCE = timedelta(minutes=10)


class OutreachIn(BaseModel):
    """One contact with a customer, as a lead records it."""

    model_config = ConfigDict(extra="forbid")

    channel: Literal["phone", "email", "meeting", "chat", "other"]
    outcome: Literal["reached", "no_answer", "saved", "declined", "churned", "other"] | None = None
    notes: str | None = Field(default=None, max_length=2000)
    contacted_at: datetime | None = Field(
        default=None, description="When the contact happened (UTC); default now."
    )


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    role: Literal["viewer", "lead", "publisher", "admin"]


def create_app(engine: Engine, report_path: Path | None = None) -> FastAPI:
    """The API and page on ``engine`` (from :func:`retain.serve.db.open_database`).

    ``report_path`` is the ``report.html`` of ``retain report``: served at ``/api/report`` to
    anyone who may read the list, and linked from the page while the file exists.
    """
    from fastapi_offline import FastAPIOffline

    # The API docs page with Swagger UI's files served from the package, not a CDN: it works
    # offline, and no third-party script runs on the origin where the page keeps its token.
    app = FastAPIOffline(
        title="retain",
        summary="Customers at risk of churning, why, and what to do; the outreach log.",
        version="1",
        docs_url="/api/docs",
        openapi_url="/api/openapi.json",
        redoc_url=None,
        static_url="/api/docs-static",
    )

    def principal(request: Request) -> Principal:
        token = auth.bearer_token(request.headers.get("authorization"))
        with engine.connect() as conn:
            return auth.principal_for(conn, token)

    def needs(permission: str) -> Callable[..., Principal]:
        def check(who: Annotated[Principal, Depends(principal)]) -> Principal:
            if not who.may(permission):
                raise AuthError(f"the role {who.role!r} may not do this (needs {permission!r})", 403)
            return who

        return check

    @app.exception_handler(AuthError)
    def _auth_error(_request: Request, exc: AuthError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse({"detail": str(exc)}, status_code=exc.status, headers=headers)

    @app.exception_handler(queries.NoCurrentRun)
    def _no_run(_request: Request, exc: queries.NoCurrentRun) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.middleware("http")
    async def _log_requests(request: Request, call_next):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        try:
            response = await call_next(request)
        except Exception as exc:  # noqa: BLE001 - answered here, so no server logs its message
            # An error's text can quote customer data (a database's "Failing row contains (...)",
            # a value that failed to parse): log its type only, never its message or traceback.
            logger.error("%s %s failed: %s", request.method, _route_template(request), type(exc).__name__)
            response = JSONResponse({"detail": "internal error (the server log names its type)"}, status_code=500)
        # The route's template, never the path itself: paths hold customer ids.
        logger.info(
            "%s %s %d %.1f ms", request.method, _route_template(request),
            response.status_code, 1000 * (time.perf_counter() - started),
        )
        return response

    # --- health ---------------------------------------------------------------------------

    @app.get("/api/health", tags=["health"])
    def health() -> dict[str, str]:
        """The process is up (no database access)."""
        return {"status": "ok"}

    @app.get("/api/ready", tags=["health"])
    def ready() -> JSONResponse:
        """The database answers and a list is published (503 otherwise)."""
        try:
            with engine.connect() as conn:
                run = queries.run_row(conn)
        except Exception as exc:  # noqa: BLE001 - any database failure means not ready
            logger.warning("readiness: database unavailable (%s)", type(exc).__name__)
            return JSONResponse({"status": "database unavailable"}, status_code=503)
        if run is None:
            return JSONResponse({"status": "no list published yet"}, status_code=503)
        return JSONResponse({"status": "ready", "run_id": run["id"], "as_of": run["as_of"]})

    @app.get("/api/me", tags=["auth"])
    def me(who: Annotated[Principal, Depends(principal)]) -> dict[str, Any]:
        """The token's holder, role and what it may do."""
        return {"name": who.name, "role": who.role, "permissions": sorted(auth.ROLES[who.role])}

    # --- the list -------------------------------------------------------------------------

    def list_filters(
        tier: str | None = None,
        segment: str | None = None,
        region: str | None = None,
        theme: str | None = None,
        reason: Annotated[str | None, Query(description="A reason's signal id, e.g. tickets_open")] = None,
        owner: Annotated[str | None, Query(description="The owner or team assigned")] = None,
        min_value: Annotated[float | None, Query(ge=0, description="Minimum value at risk")] = None,
        not_contacted: Annotated[bool, Query(description="Only customers with no outreach logged")] = False,
    ) -> queries.ListFilters:
        return queries.ListFilters(tier, segment, region, theme, reason, owner, min_value, not_contacted)

    Filters = Annotated[queries.ListFilters, Depends(list_filters)]
    Sort = Annotated[Literal["rank", "churn_probability", "value_at_risk", "monthly_value",
                             "last_contacted_at"], Query()]

    @app.get("/api/customers", tags=["list"])
    def customers(
        _who: Annotated[Principal, Depends(needs("read_list"))],
        filters: Filters,
        sort: Sort = "rank",
        order: Literal["asc", "desc"] = "asc",
        page: Annotated[int, Query(ge=1, le=queries.MAX_PAGE)] = 1,
        page_size: Annotated[int, Query(ge=1, le=queries.MAX_PAGE_SIZE)] = 50,
    ) -> dict[str, Any]:
        """The current run's ranked list: filtered, sorted, one page."""
        with engine.connect() as conn:
            found = queries.customer_page(conn, filters, sort, order == "desc", page, page_size)
            run = queries.run_row(conn, found.run_id)
        return {"run": run, "total": found.total, "page": page, "page_size": page_size, "items": found.items}

    @app.get("/api/customers/export.csv", tags=["list"])
    def export(
        _who: Annotated[Principal, Depends(needs("export"))],
        filters: Filters,
        sort: Sort = "rank",
        order: Literal["asc", "desc"] = "asc",
    ) -> StreamingResponse:
        """The whole filtered list as CSV (reasons joined by ``; ``)."""
        with engine.connect() as conn:
            queries.current_run_id(conn)  # 404 before the stream starts when nothing is published

        def rows() -> Iterator[str]:
            buffer = io.StringIO()
            writer = csv.writer(buffer)
            writer.writerow(queries.LIST_COLUMNS)
            with engine.connect() as conn:
                for n, row in enumerate(queries.export_rows(conn, filters, sort, order == "desc"), 1):
                    row = {**row, "reasons": "; ".join(r["phrase"] or "" for r in row["reasons"]),
                           "themes": "|".join(row["themes"])}
                    writer.writerow([_csv_cell(row[c]) for c in queries.LIST_COLUMNS])
                    if n % 1000 == 0:
                        yield buffer.getvalue()
                        buffer.seek(0)
                        buffer.truncate()
            yield buffer.getvalue()

        return StreamingResponse(
            rows(), media_type="text/csv",
            headers={"Content-Disposition": 'attachment; filename="customers_at_risk.csv"'},
        )

    @app.get("/api/filters", tags=["list"])
    def filters_choices(_who: Annotated[Principal, Depends(needs("read_list"))]) -> dict[str, list[str]]:
        """The values each filter takes in the current run."""
        with engine.connect() as conn:
            return queries.filter_choices(conn)

    # ``:path``: a customer id may hold a slash (the page sends it as %2F, which arrives decoded).
    @app.get("/api/customers/{customer_id:path}", tags=["list"])
    def customer(
        customer_id: str, _who: Annotated[Principal, Depends(needs("read_customer"))]
    ) -> dict[str, Any]:
        """One customer: the current row with each reason's evidence, history across runs, outreach."""
        with engine.connect() as conn:
            found = queries.customer_detail(conn, customer_id)
        if found is None:
            raise HTTPException(404, "no such customer in the published runs")
        return found

    @app.post("/api/customers/{customer_id:path}/outreach", status_code=201, tags=["outreach"])
    def log_outreach(
        customer_id: str, body: OutreachIn, who: Annotated[Principal, Depends(needs("log_outreach"))]
    ) -> dict[str, Any]:
        """Record a contact with a customer of the current list (by the token's holder)."""
        now = utcnow()
        at = body.contacted_at or now
        if at.tzinfo is not None:
            at = at.astimezone(UTC).replace(tzinfo=None)
        if at > now + FUTURE_TOLERANCE:
            # A contact dated ahead would hold the customer in cooldown and out of "not yet
            # contacted" until then, and count in the wrong window of the effect report.
            raise HTTPException(422, "contacted_at is in the future: log a contact once it has happened (UTC)")
        try:
            with engine.begin() as conn:
                return queries.record_outreach(conn, customer_id, who.name, body.channel, body.outcome,
                                               body.notes, at)
        except LookupError as exc:
            raise HTTPException(404, str(exc)) from None

    # --- runs and the effect of outreach --------------------------------------------------

    @app.get("/api/runs", tags=["runs"])
    def runs(_who: Annotated[Principal, Depends(needs("read_runs"))]) -> list[dict[str, Any]]:
        """Every run kept, newest first."""
        from retain.serve.runs import list_runs

        return [_run_json(r) for r in list_runs(engine)]

    @app.get("/api/runs/current", tags=["runs"])
    def current(_who: Annotated[Principal, Depends(needs("read_runs"))]) -> dict[str, Any]:
        """The run the list shows."""
        with engine.connect() as conn:
            run = queries.run_row(conn)
        if run is None:
            raise HTTPException(404, "no list has been published yet: run `retain score --publish`")
        return run

    @app.post("/api/runs/{run_id}/current", tags=["runs"])
    def make_current(run_id: int, who: Annotated[Principal, Depends(needs("publish_runs"))]) -> dict[str, Any]:
        """Make an earlier run current again (a rollback)."""
        from retain.serve.runs import RunError, rollback

        try:
            run = rollback(engine, run_id)
        except RunError as exc:
            raise HTTPException(409, str(exc)) from None
        logger.info("run %d made current by token %d", run_id, who.token_id)
        return _run_json(run)

    @app.get("/api/outreach/effect", tags=["outreach"])
    def effect(_who: Annotated[Principal, Depends(needs("read_effect"))]) -> dict[str, Any]:
        """The latest measured effect of outreach (``retain outreach report --publish``)."""
        with engine.connect() as conn:
            return queries.latest_effect(conn)

    # --- tokens ---------------------------------------------------------------------------

    @app.get("/api/tokens", tags=["auth"])
    def tokens(_who: Annotated[Principal, Depends(needs("manage_tokens"))]) -> list[dict[str, Any]]:
        with engine.connect() as conn:
            return auth.list_tokens(conn)

    @app.post("/api/tokens", status_code=201, tags=["auth"])
    def new_token(body: TokenIn, _who: Annotated[Principal, Depends(needs("manage_tokens"))]) -> dict[str, str]:
        """Create a token; the response is the only time it is shown."""
        try:
            with engine.begin() as conn:
                token = auth.create_token(conn, body.name, body.role)
        except ValueError as exc:
            raise HTTPException(409, str(exc)) from None
        return {"name": body.name, "role": body.role, "token": token}

    @app.delete("/api/tokens/{name}", tags=["auth"])
    def revoke(name: str, _who: Annotated[Principal, Depends(needs("manage_tokens"))]) -> dict[str, int]:
        with engine.begin() as conn:
            revoked = auth.revoke_token(conn, name)
        if not revoked:
            raise HTTPException(404, "no live token with that name or id")
        return {"revoked": revoked}

    # --- the insight report ----------------------------------------------------------------

    @app.get("/api/report/status", tags=["report"])
    def report_status(_who: Annotated[Principal, Depends(needs("read_list"))]) -> dict[str, Any]:
        """Whether the insight report (`retain report`) is there to open, and when it was written."""
        if report_path is None or not report_path.is_file():
            return {"available": False, "written_at": None}
        written = datetime.fromtimestamp(report_path.stat().st_mtime, UTC)
        return {"available": True, "written_at": written.isoformat(timespec="seconds")}

    def report_page() -> HTMLResponse:
        if report_path is None or not report_path.is_file():
            raise HTTPException(
                404, "no report: run `retain report -c CONFIG`, then `retain serve -c CONFIG` (or --report PATH)"
            )
        return HTMLResponse(report_path.read_text(encoding="utf-8"), headers=REPORT_HEADERS)

    @app.get("/api/report", tags=["report"], response_class=HTMLResponse)
    def report(_who: Annotated[Principal, Depends(needs("read_list"))]) -> HTMLResponse:
        """The insight report: one self-contained HTML page (KPIs, themes, drivers, model, drift)."""
        return report_page()

    # A browser tab cannot send the bearer token, and a page made from a fetched blob would run
    # under the list page's policy (no inline styles): the page asks for a short-lived link.
    report_links: dict[str, float] = {}

    @app.post("/api/report/link", tags=["report"])
    def report_link(_who: Annotated[Principal, Depends(needs("read_list"))]) -> dict[str, Any]:
        """A link that opens the report in a browser tab without the token, for the next 5 minutes."""
        now = time.monotonic()
        for key in [k for k, expires in report_links.items() if expires < now]:
            del report_links[key]
        key = secrets.token_urlsafe(24)
        report_links[key] = now + REPORT_LINK_SECONDS
        return {"url": f"report/{key}", "expires_in_seconds": REPORT_LINK_SECONDS}

    @app.get("/report/{key}", include_in_schema=False)
    def report_by_link(key: str) -> HTMLResponse:
        expires = report_links.get(key)
        if expires is None or expires < time.monotonic():
            raise HTTPException(404, "this report link has expired: open the report from the page again")
        return report_page()

    # --- the page -------------------------------------------------------------------------

    app.mount("/static", StaticFiles(directory=WEB / "static"), name="static")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(WEB / "index.html", headers=PAGE_HEADERS)

    return app


def _route_template(request: Request) -> str:
    """The matched route's template without converters (``/api/customers/{customer_id}``)."""
    route = request.scope.get("route")
    return getattr(route, "path_format", None) or getattr(route, "path", None) or "(no route)"


#: The page runs only its own script and talks only to this server; no other site may frame it.
#: How long a link from ``POST /api/report/link`` opens the report.
REPORT_LINK_SECONDS = 300

#: The report is inert: inline styles and images, no script, nothing fetched, never framed.
REPORT_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; img-src data:; style-src 'unsafe-inline'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
}

PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _run_json(run: Any) -> dict[str, Any]:
    return {"id": run.id, "as_of": run.as_of.isoformat(), "created_at": run.created_at.isoformat(),
            "status": run.status, "customers": run.customers, "model_versions": run.model_versions,
            "value_basis": run.value_basis, "current": run.current}


def _csv_cell(value: Any) -> Any:
    """A CSV cell; text starting with = + - @ is prefixed with ' so spreadsheets never run it."""
    if value is None:
        return ""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return value
