"""The published list in a database: migrations, publish, current run, rollback, prune.

Every test runs on a SQLite file and on PostgreSQL (``database_url`` in conftest).
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from retain.serve import db, runs

REPO = Path(__file__).resolve().parents[1]


def ranked_list(n: int, as_of: str = "2025-06-01", seed: int = 0) -> pd.DataFrame:
    """A ranked list shaped like ``scoring.score_world``'s, with ``n`` customers."""
    rng = np.random.default_rng(seed)
    probability = np.sort(rng.uniform(0, 1, n))[::-1]
    value = np.full(n, 100.0)
    frame = pd.DataFrame(
        {
            "rank": np.arange(1, n + 1),
            "as_of": pd.Timestamp(as_of),
            "customer_id": [f"C{i:06d}" for i in range(n)],
            "churn_probability": probability,
            "monthly_value": value,
            "value_at_risk": probability * value,
            "risk_tier": np.where(probability >= 0.5, "high", "low"),
            "reason_1": "3 tickets in the last 90 days",
            "reason_1_signal": "repeated_contacts",
            "reason_1_evidence": [f"T{i}a|T{i}b" for i in range(n)],
            "reason_2": [("negative about billing" if i % 2 == 0 else None) for i in range(n)],
            "reason_2_signal": [("theme_billing" if i % 2 == 0 else None) for i in range(n)],
            "reason_2_evidence": [(f"F{i}" if i % 2 == 0 else None) for i in range(n)],
            "recommended_action": "call",
        }
    )
    frame.attrs["value_basis"] = "monthly_value"
    return frame


def summary_of(ranked: pd.DataFrame) -> dict[str, object]:
    return {
        "as_of": str(ranked["as_of"].iloc[0].date()),
        "customers_scored": len(ranked),
        "value_basis": "monthly_value",
        "model_versions": {"retain-churn": "1"},
    }


def evidence_of(ranked: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for i, customer in enumerate(ranked["customer_id"]):
        rows += [
            {"customer_id": customer, "kind": "ticket", "evidence_id": f"T{i}a",
             "occurred_at": pd.Timestamp("2025-05-01"), "channel": "email", "status": "resolved",
             "sentiment": None, "themes": None, "csat": 2.0, "nps": np.nan, "ces": np.nan,
             "rating": np.nan, "text": None},
            {"customer_id": customer, "kind": "feedback", "evidence_id": f"F{i}",
             "occurred_at": pd.Timestamp("2025-05-02"), "channel": "survey", "status": None,
             "sentiment": "negative", "themes": ["billing", "pricing"], "csat": np.nan,
             "nps": 3.0, "ces": np.nan, "rating": np.nan, "text": "the invoice was wrong"},
        ]
    return pd.DataFrame(rows)


def publish(engine: sa.Engine, n: int, as_of: str = "2025-06-01", **kwargs: object) -> int:
    ranked = ranked_list(n, as_of)
    return runs.publish_run(engine, ranked, summary_of(ranked), evidence_of(ranked), **kwargs)  # type: ignore[arg-type]


def count(engine: sa.Engine, table: sa.Table, run_id: int | None = None) -> int:
    query = sa.select(sa.func.count()).select_from(table)
    if run_id is not None:
        query = query.where(table.c.run_id == run_id)
    with engine.connect() as conn:
        return conn.execute(query).scalar_one()


def test_migrations_create_the_schema_of_the_tables_and_are_idempotent(database_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    engine = db.open_database(database_url)
    with engine.connect() as conn:
        assert db.schema_revision(conn) == db.head_revision()
        names = set(sa.inspect(conn).get_table_names())
        assert {t.name for t in db.metadata.sorted_tables} <= names
        # The migration (a frozen copy) and the tables the code queries agree.
        assert compare_metadata(MigrationContext.configure(conn), db.metadata) == []
        indexes = {i["name"] for i in sa.inspect(conn).get_indexes("scored_customers")}
        assert {"ix_scored_customers_run_rank", "ix_scored_customers_run_tier",
                "ix_scored_customers_customer"} <= indexes
    again = db.open_database(database_url)
    with again.connect() as conn:
        assert db.schema_revision(conn) == db.head_revision()
        assert count(again, db.score_runs) == 0


def test_sqlite_file_is_private_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "retain.db"
    engine = db.open_database(f"sqlite:///{path}")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        with pytest.raises(sa.exc.IntegrityError):  # the pointer must name a run
            conn.execute(db.current_run.insert(), {"id": 1, "run_id": 99, "switched_at": datetime(2025, 1, 1)})


def test_concurrent_first_opens_all_succeed(database_url: str) -> None:
    script = "import sys; from retain.serve.db import open_database; open_database(sys.argv[1]); print('ok')"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    children = [
        subprocess.Popen([sys.executable, "-c", script, database_url], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0 and out.strip() == "ok", err[-2000:]
    engine = db.open_database(database_url)
    with engine.connect() as conn:
        assert db.schema_revision(conn) == db.head_revision()


def test_publish_makes_a_run_current_with_its_customers_and_evidence(database_url: str) -> None:
    engine = db.open_database(database_url)
    assert runs.current_run(engine) is None
    ranked = runs.with_customer_attributes(
        ranked_list(4),
        pd.DataFrame({"customer_id": ["C000001", "C000000", "C000009"], "segment": ["smb", "enterprise", "x"],
                      "region": ["emea", None, "x"]}),
    )
    ranked = ranked.assign(
        team=["retention", None, "support", "support"],
        outreach_status=["assigned", "queued", "held_out", "cooldown"],
        control=[False, False, True, False],
        last_contacted_at=[pd.NaT, pd.NaT, pd.NaT, pd.Timestamp("2025-05-20")],
    )
    run_id = runs.publish_run(engine, ranked, summary_of(ranked), evidence_of(ranked), chunk_rows=3)
    current = runs.current_run(engine)
    assert current is not None and current.id == run_id and current.status == "published"
    assert current.customers == 4 and current.as_of == datetime(2025, 6, 1)
    assert current.model_versions == {"retain-churn": "1"} and current.value_basis == "monthly_value"
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(db.scored_customers).where(db.scored_customers.c.run_id == run_id)
            .order_by(db.scored_customers.c.rank)
        ).mappings().all()
        stored = conn.execute(
            sa.select(db.evidence).where(db.evidence.c.customer_id == "C000000", db.evidence.c.kind == "feedback")
        ).mappings().one()
    assert [r["customer_id"] for r in rows] == ["C000000", "C000001", "C000002", "C000003"]
    first = rows[0]
    assert first["segment"] == "enterprise" and first["region"] is None and first["plan"] is None
    assert rows[1]["segment"] == "smb" and rows[1]["region"] == "emea" and rows[2]["segment"] is None
    assert [(r["team"], r["outreach_status"], r["control"]) for r in rows] == [
        ("retention", "assigned", False), (None, "queued", False), ("support", "held_out", True),
        ("support", "cooldown", False),
    ]
    assert rows[3]["last_contacted_at"] == datetime(2025, 5, 20) and rows[0]["last_contacted_at"] is None
    assert first["reasons"] == [
        {"phrase": "3 tickets in the last 90 days", "signal": "repeated_contacts",
         "evidence_kind": "ticket", "evidence_ids": ["T0a", "T0b"]},
        {"phrase": "negative about billing", "signal": "theme_billing",
         "evidence_kind": "feedback", "evidence_ids": ["F0"]},
    ]
    assert len(rows[1]["reasons"]) == 1  # no second reason: not listed as an empty one
    # themes: the reason's theme and the evidence's themes
    assert first["themes"] == ["billing", "pricing"]
    assert first["churn_probability"] == pytest.approx(ranked["churn_probability"].iloc[0])
    assert stored["sentiment"] == "negative" and stored["themes"] == ["billing", "pricing"]
    assert stored["text"] == "the invoice was wrong" and stored["nps"] == 3.0 and stored["csat"] is None
    assert stored["occurred_at"] == datetime(2025, 5, 2) and stored["channel"] == "survey"
    assert count(engine, db.evidence, run_id) == 8


def test_the_generic_insert_path_stores_the_same_rows(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = db.open_database(database_url)
    fast = publish(engine, 6)
    monkeypatch.setattr(runs, "_bulk_path", lambda dialect: False)  # SQLAlchemy's executemany
    generic = publish(engine, 6)

    def stored(table: sa.Table, run_id: int) -> list[dict[str, object]]:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(table).where(table.c.run_id == run_id).order_by(*table.primary_key.columns)
            ).mappings().all()
        return [{k: v for k, v in row.items() if k != "run_id"} for row in rows]

    for table in (db.scored_customers, db.evidence):
        assert stored(table, fast) == stored(table, generic) != []


def test_a_new_publish_supersedes_and_rollback_restores(database_url: str) -> None:
    engine = db.open_database(database_url)
    first = publish(engine, 5, "2025-05-01")
    second = publish(engine, 7, "2025-06-01")
    listed = runs.list_runs(engine)
    assert [(r.id, r.status, r.current, r.customers) for r in listed] == [
        (second, "published", True, 7), (first, "superseded", False, 5)
    ]
    back = runs.rollback(engine, first)
    assert back.id == first and back.current and back.status == "published"
    statuses = {r.id: (r.status, r.current) for r in runs.list_runs(engine)}
    assert statuses == {first: ("published", True), second: ("rolled_back", False)}
    with pytest.raises(runs.RunError, match="already the current run"):
        runs.rollback(engine, first)
    with pytest.raises(runs.RunError, match="there is no run 999"):
        runs.rollback(engine, 999)
    # and forward again to the newer run
    assert runs.rollback(engine, second).id == second


def test_prune_keeps_the_newest_and_the_current_and_never_the_outreach_log(database_url: str) -> None:
    engine = db.open_database(database_url)
    ids = [publish(engine, 3, f"2025-0{m}-01") for m in range(1, 6)]
    runs.rollback(engine, ids[0])  # the current run is the oldest one
    runs.log_outreach(engine, "C000000", "ana", "phone", run_id=ids[1], outcome="reached", notes="will stay")
    runs.log_outreach(engine, "C000001", "ben", "email", run_id=ids[0], control=True)
    pruned = runs.prune_runs(engine, keep=2)
    assert sorted(pruned) == ids[1:4]
    assert [r.id for r in runs.list_runs(engine)] == [ids[4], ids[0]]
    assert runs.current_run(engine).id == ids[0]  # type: ignore[union-attr]
    assert count(engine, db.scored_customers) == 6 and count(engine, db.evidence) == 12
    assert runs.prune_runs(engine, keep=2) == []
    # The log keeps every row, with the run id it was logged against, through a reopen
    # (which checks and runs the migrations again).
    reopened = db.open_database(database_url)
    with reopened.connect() as conn:
        log = conn.execute(sa.select(db.outreach_log).order_by(db.outreach_log.c.id)).mappings().all()
    assert [(r["customer_id"], r["run_id"], r["control"], r["notes"]) for r in log] == [
        ("C000000", ids[1], False, "will stay"), ("C000001", ids[0], True, None)
    ]


def test_a_failed_publish_leaves_the_current_run_and_no_rows(database_url: str) -> None:
    engine = db.open_database(database_url)
    first = publish(engine, 4)
    ranked = ranked_list(6)
    ranked.loc[3, "customer_id"] = ranked.loc[2, "customer_id"]  # a duplicate key fails the insert
    with pytest.raises(sa.exc.IntegrityError):
        runs.publish_run(engine, ranked, summary_of(ranked), None, chunk_rows=2)
    assert [r.id for r in runs.list_runs(engine)] == [first]
    assert runs.current_run(engine).id == first  # type: ignore[union-attr]
    assert count(engine, db.scored_customers) == 4


def test_a_reader_during_a_publish_sees_the_old_list_or_the_new_never_a_mix(database_url: str) -> None:
    engine = db.open_database(database_url)
    publish(engine, 300)
    seen: list[tuple[int, int]] = []
    stop = threading.Event()
    query = sa.text(
        "SELECT r.customers, (SELECT count(*) FROM scored_customers s WHERE s.run_id = c.run_id) "
        "FROM current_run c JOIN score_runs r ON r.id = c.run_id"
    )

    def read() -> None:
        with engine.connect() as conn:
            while not stop.is_set():
                seen.append(tuple(conn.execute(query).one()))  # type: ignore[arg-type]
                conn.rollback()

    reader = threading.Thread(target=read)
    reader.start()
    try:
        publish(engine, 500, chunk_rows=20)
        runs.rollback(engine, 1)
        publish(engine, 400, chunk_rows=20)
    finally:
        stop.set()
        reader.join(timeout=60)
    assert len(seen) > 10
    assert all(listed == counted for listed, counted in seen), "a reader saw a partial list"
    assert {counted for _, counted in seen} <= {300, 400, 500}
    assert seen[0][1] == 300


def test_publishes_at_the_same_time_leave_one_current_run(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = db.open_database(database_url)
    publish(engine, 50)
    failures: list[BaseException] = []
    clock = runs.utcnow

    def slow_clock() -> datetime:
        # Widens the switch (it reads the clock between reading the pointer and moving it), so
        # the three switches below overlap unless the transaction holds the lock throughout.
        time.sleep(0.3)
        return clock()

    monkeypatch.setattr(runs, "utcnow", slow_clock)

    def publish_one(n: int) -> None:
        try:
            publish(engine, n, chunk_rows=10)
        except Exception as exc:  # noqa: BLE001  (reported below)
            failures.append(exc)

    threads = [threading.Thread(target=publish_one, args=(n,)) for n in (200, 200, 200)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert failures == []
    listed = runs.list_runs(engine)
    assert [r.status for r in listed if r.current] == ["published"]
    assert sorted(r.status for r in listed) == ["published", "superseded", "superseded", "superseded"]


def test_a_bad_url_is_a_database_error_with_the_password_masked() -> None:
    with pytest.raises(db.DatabaseError) as caught:
        db.open_database("postgresql+psycopg://retain:s3cret@127.0.0.1:1/none")
    message = str(caught.value)
    assert "s3cret" not in message and "retain:***@127.0.0.1:1/none" in message
    assert "refused" in message or "failed" in message
    with pytest.raises(db.DatabaseError, match="not a valid URL"):
        db.open_database("not a url")
    with pytest.raises(db.DatabaseError, match="no such database kind or driver"):
        db.open_database("mysql+nosuchdriver://u@h/x")
    with pytest.raises(db.DatabaseError, match=r"driver is not installed \(MySQLdb\)"):
        db.open_database("mysql://u@h/x")


def test_the_token_names_migration_keeps_the_tokens(database_url: str) -> None:
    """A database made before 0003 keeps its tokens (live and revoked) through the upgrade."""
    from alembic import command

    from retain.serve import auth

    engine = sa.create_engine(database_url)
    with engine.begin() as conn:
        config = db._alembic_config()
        config.attributes["connection"] = conn
        command.upgrade(config, "0002")
    with engine.begin() as conn:
        live = auth.create_token(conn, "ana", "lead")
        auth.create_token(conn, "ben", "viewer")
        auth.revoke_token(conn, "ben")
    engine.dispose()
    upgraded = db.open_database(database_url)
    with upgraded.begin() as conn:
        assert db.schema_revision(conn) == db.head_revision()
        assert auth.principal_for(conn, live).name == "ana"
        assert [(t["name"], t["revoked_at"] is None) for t in auth.list_tokens(conn)] == [("ben", False), ("ana", True)]
        auth.create_token(conn, "ben", "viewer")  # a revoked token's name is free again
        with pytest.raises(ValueError, match="exists"):
            auth.create_token(conn, "ana", "viewer")
    with pytest.raises(sa.exc.IntegrityError), upgraded.begin() as conn:  # never two live tokens named alike
        conn.execute(db.api_tokens.insert(), {"name": "ana", "role": "lead", "token_sha256": "x" * 64,
                                              "created_at": datetime(2025, 1, 1)})
    upgraded.dispose()


def test_database_errors_never_carry_the_values_written(database_url: str) -> None:
    """A failed write's error (what a server logs) does not list the values written.

    (PostgreSQL's own message may quote the row: the API logs only the error's type.)
    """
    secret = "she mentioned her divorce"
    engine = db.open_database(database_url)
    with pytest.raises(sa.exc.IntegrityError) as raised, engine.begin() as conn:
        conn.execute(db.outreach_log.insert(), {"customer_id": "C000001", "contacted_by": "ana", "channel": "phone",
                                                "at": None, "notes": secret})
    assert "outreach_log" in str(raised.value) and "parameters hidden" in str(raised.value)
    if engine.dialect.name == "sqlite":
        assert secret not in str(raised.value)
    engine.dispose()


def test_a_pruned_run_id_is_never_reused(database_url: str) -> None:
    """Outreach log rows keep the run id they were logged against: after the newest runs are
    rolled back from and pruned, a new publish must get a new id, not a deleted one."""
    engine = db.open_database(database_url)
    ids = [publish(engine, 3, f"2025-0{m}-01") for m in range(1, 4)]
    runs.log_outreach(engine, "C000000", "ana", "phone", run_id=ids[2])
    runs.rollback(engine, ids[0])
    runs.prune_runs(engine, keep=1)  # deletes the newest two: the current run is the oldest
    assert [r.id for r in runs.list_runs(engine)] == [ids[0]]
    assert publish(engine, 3, "2025-07-01") > ids[2]
