"""The database the ranked list is published to: tables, opening, migrations.

SQLite by default (a file, no set-up), PostgreSQL by URL (``postgresql+psycopg://...``). The
tables are SQLAlchemy Core; the schema is created and upgraded by the alembic migrations in
``retain/serve/migrations`` (run by :func:`open_database`, no ``alembic.ini`` needed), so an
upgrade of retain never drops the outreach log.

==================  ===========================================================================
table               one row per
==================  ===========================================================================
score_runs          published scoring run: as_of, model versions, status, summary
current_run         (a single row) the run readers are shown
scored_customers    customer of a run: probability, value at risk, tier, reasons, action
evidence            ticket or feedback behind a customer's reasons in a run
outreach_log        contact with a customer (outlives the runs: never pruned)
api_tokens          API token: name, role and the sha256 of the token (never the token)
outreach_reports    measured effect of outreach (``retain outreach report --publish``)
==================  ===========================================================================

A run's rows are written first and the run becomes current in one short transaction
(``retain.serve.runs``), so a reader that reads through ``current_run`` sees one whole list.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

logger = logging.getLogger(__name__)

DEFAULT_URL = "sqlite:///outputs/retain.db"
RUN_STATUSES = ("pending", "published", "superseded", "rolled_back")
EVIDENCE_KINDS = ("ticket", "feedback")
MIGRATIONS = Path(__file__).with_name("migrations")
# Any constant works: it only has to be the same for every retain process on one server.
_PG_MIGRATION_LOCK = 0x7265_7461_696E  # "retain"

metadata = sa.MetaData()

score_runs = sa.Table(
    "score_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("as_of", sa.DateTime, nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("model_versions", sa.JSON, nullable=False),
    sa.Column("customers", sa.Integer, nullable=False),
    sa.Column("value_basis", sa.String(200)),
    sa.Column("summary", sa.JSON),
    sa.CheckConstraint(
        "status IN ('pending', 'published', 'superseded', 'rolled_back')", name="ck_score_runs_status"
    ),
    # Never reuse a pruned run's id on SQLite: outreach log rows keep the id they were logged
    # against, and a reused id would attach them to a different list.
    sqlite_autoincrement=True,
)

current_run = sa.Table(
    "current_run",
    metadata,
    # One row: the CHECK keeps a second pointer from ever existing.
    sa.Column("id", sa.Integer, sa.CheckConstraint("id = 1", name="ck_current_run_single"), primary_key=True),
    sa.Column("run_id", sa.Integer, sa.ForeignKey("score_runs.id"), nullable=False),
    sa.Column("switched_at", sa.DateTime, nullable=False),
)

scored_customers = sa.Table(
    "scored_customers",
    metadata,
    sa.Column("run_id", sa.Integer, sa.ForeignKey("score_runs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("customer_id", sa.String(200), primary_key=True),
    sa.Column("rank", sa.Integer, nullable=False),
    sa.Column("churn_probability", sa.Float, nullable=False),
    sa.Column("monthly_value", sa.Float, nullable=False),
    sa.Column("value_at_risk", sa.Float, nullable=False),
    sa.Column("risk_tier", sa.String(50), nullable=False),
    # [{phrase, signal, evidence_kind, evidence_ids}], strongest first.
    sa.Column("reasons", sa.JSON, nullable=False),
    sa.Column("recommended_action", sa.Text, nullable=False),
    sa.Column("owner", sa.String(200)),
    sa.Column("team", sa.String(200)),
    # The outreach plan of the run (retain.outreach.playbook): status, the control flag, last contact.
    sa.Column("outreach_status", sa.String(20)),
    sa.Column("control", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("last_contacted_at", sa.DateTime),
    sa.Column("segment", sa.String(200)),
    sa.Column("region", sa.String(200)),
    sa.Column("plan", sa.String(200)),
    sa.Column("themes", sa.JSON),
    sa.Index("ix_scored_customers_run_rank", "run_id", "rank", unique=True),
    sa.Index("ix_scored_customers_run_tier", "run_id", "risk_tier", "rank"),
    sa.Index("ix_scored_customers_customer", "customer_id", "run_id"),
)

evidence = sa.Table(
    "evidence",
    metadata,
    sa.Column("run_id", sa.Integer, sa.ForeignKey("score_runs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("customer_id", sa.String(200), primary_key=True),
    sa.Column("kind", sa.String(16), primary_key=True),
    sa.Column("evidence_id", sa.String(200), primary_key=True),
    sa.Column("occurred_at", sa.DateTime, nullable=False),
    sa.Column("channel", sa.String(100)),  # a ticket's channel or a feedback's source
    sa.Column("status", sa.String(50)),  # a ticket's state at as_of
    sa.Column("sentiment", sa.String(20)),
    sa.Column("themes", sa.JSON),
    sa.Column("csat", sa.Float),
    sa.Column("nps", sa.Float),
    sa.Column("ces", sa.Float),
    sa.Column("rating", sa.Float),
    # The feedback text a lead reads; stored, never logged.
    sa.Column("text", sa.Text),
    sa.CheckConstraint("kind IN ('ticket', 'feedback')", name="ck_evidence_kind"),
)

outreach_log = sa.Table(
    "outreach_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("customer_id", sa.String(200), nullable=False, index=True),
    # No foreign key: the log outlives the runs that pruning deletes.
    sa.Column("run_id", sa.Integer),
    sa.Column("at", sa.DateTime, nullable=False),
    sa.Column("contacted_by", sa.String(200), nullable=False),
    sa.Column("channel", sa.String(50), nullable=False),
    sa.Column("outcome", sa.String(100)),
    sa.Column("notes", sa.Text),
    sa.Column("action", sa.Text),
    sa.Column("control", sa.Boolean, nullable=False, server_default=sa.false()),
)

api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("role", sa.String(50), nullable=False),
    sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("revoked_at", sa.DateTime),
    # A name is unique among live tokens: a revoked token's name can be given to a new one.
    sa.Index(
        "ux_api_tokens_live_name", "name", unique=True,
        sqlite_where=sa.text("revoked_at IS NULL"), postgresql_where=sa.text("revoked_at IS NULL"),
    ),
)


outreach_reports = sa.Table(
    "outreach_reports",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("created_at", sa.DateTime, nullable=False),
    # The date outcomes were observed up to, and the report itself (retain.outreach.effect).
    sa.Column("observed_until", sa.DateTime, nullable=False),
    sa.Column("report", sa.JSON, nullable=False),
)


def utcnow() -> datetime:
    """Now, as the tables store time: tz-naive UTC, like every timestamp in retain."""
    return datetime.now(UTC).replace(tzinfo=None)


class DatabaseError(RuntimeError):
    """The database cannot be opened, migrated or written; the message names it (password masked)."""


def masked(url: str | sa.URL) -> str:
    """``url`` as text with any password replaced by ``***``."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", str(url))


def open_database(url: str, create: bool = True) -> Engine:
    """An engine on ``url`` whose schema is at the latest migration.

    With ``create=False`` a SQLite file that does not exist is an error rather than a new empty
    database (``retain runs`` on a misspelled path says so instead of listing nothing).

    A SQLite file (and its directory) is created if missing, readable by its owner only (0600;
    0640 with ``$RETAIN_GROUP_READABLE=1``, as every file retain writes), in WAL mode (readers
    never wait for a publish) with foreign keys on. The migrations run under a lock (a file
    lock beside a SQLite file, an advisory lock on PostgreSQL), so processes opening a new
    database at the same time do not collide. The engine's errors never list a statement's
    values (``hide_parameters``): those are customer ids and text, and errors end up in logs.

    Raises
    ------
    DatabaseError
        The URL is malformed, its driver missing, the server unreachable, or a migration fails.
    """
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise DatabaseError(f"database URL {masked(url)} is not a valid URL: {exc}") from None
    name = masked(parsed)
    file = _sqlite_file(parsed) if parsed.get_backend_name() == "sqlite" else None
    if not create and file is not None and not file.exists():
        raise DatabaseError(f"database {name}: no such file (nothing published there yet?)")
    try:
        if parsed.get_backend_name() == "sqlite":
            engine = _sqlite_engine(parsed)
        else:
            engine = sa.create_engine(parsed, pool_pre_ping=True, hide_parameters=True)
        with _migration_lock(engine, parsed):
            _upgrade(engine)
    except sa.exc.NoSuchModuleError:
        raise DatabaseError(
            f"database {name}: no such database kind or driver in SQLAlchemy "
            "(use sqlite:///path or postgresql+psycopg://user@host/db)"
        ) from None
    except (sa.exc.SQLAlchemyError, OSError) as exc:
        raise DatabaseError(f"database {name}: {_first_line(exc, parsed)}") from None
    except ModuleNotFoundError as exc:
        raise DatabaseError(f"database {name}: its driver is not installed ({exc.name})") from None
    logger.debug("database %s open at the latest migration", name)
    return engine


@contextlib.contextmanager
def database_errors(url: str | sa.URL, doing: str) -> Iterator[None]:
    """Turn a driver or SQLAlchemy error raised inside into a :class:`DatabaseError`.

    ``doing`` says what failed ("publishing run 3"); the URL is shown with its password masked.
    """
    try:
        yield
    except sa.exc.SQLAlchemyError as exc:
        raise DatabaseError(
            f"database {masked(url)}: {doing} failed: {_first_line(exc, sa.make_url(url))}"
        ) from None


def _sqlite_file(url: sa.URL) -> Path | None:
    """The file of a SQLite URL (None: in memory or a ``file:`` URI)."""
    path = url.database
    if path and path != ":memory:" and not path.startswith("file:"):
        return Path(path)
    return None


def _sqlite_engine(url: sa.URL) -> Engine:
    path = url.database
    file = _sqlite_file(url)
    if file is not None:
        from retain.data import private_file_mode

        file.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            # Private from the first byte (SQLite gives its -wal and -shm files the same mode).
            os.close(os.open(file, os.O_CREAT | os.O_EXCL | os.O_WRONLY, private_file_mode()))
            os.chmod(file, private_file_mode())
    engine = sa.create_engine(url, connect_args={"timeout": 30}, hide_parameters=True)

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        if path and path != ":memory:":
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()

    return engine


@contextlib.contextmanager
def _migration_lock(engine: Engine, url: sa.URL) -> Iterator[None]:
    """Serialise migrations between processes: one upgrades, the others then find it done."""
    backend = url.get_backend_name()
    if backend == "sqlite" and url.database and url.database != ":memory:":
        handle = os.open(f"{url.database}.migrate.lock", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield
        finally:
            os.close(handle)  # closing releases the lock
    elif backend == "postgresql":
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": _PG_MIGRATION_LOCK})
                conn.commit()
    else:
        yield


def _alembic_config():  # type: ignore[no-untyped-def]
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str:
    """The newest migration's revision id."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def schema_revision(conn: Connection) -> str | None:
    """The migration the database is at (None before the first)."""
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(conn).get_current_revision()


def _upgrade(engine: Engine) -> None:
    from alembic import command

    head = head_revision()
    with engine.connect() as conn:
        if schema_revision(conn) == head:
            return
    with engine.begin() as conn:
        config = _alembic_config()
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
    logger.info("database migrated to %s", head)


def _first_line(exc: BaseException, url: sa.URL) -> str:
    """The driver's message without SQLAlchemy's background link, any password masked."""
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if url.password:
        text = text.replace(str(url.password), "***")
    return text
