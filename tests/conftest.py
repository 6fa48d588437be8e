"""Fixtures shared by several test modules."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding a tiny random BERT and tokenizer (see ``text_fixtures.build_tiny_bert``)."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from text_fixtures import build_tiny_bert

    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database URL of its own for one test: a SQLite file, or a fresh PostgreSQL schema.

    PostgreSQL is read from ``$RETAIN_TEST_POSTGRES_URL`` (default a local server, database
    ``test``); the test gets a new schema (through ``search_path``), dropped afterwards. The
    PostgreSQL case is skipped, saying why, only when no server answers there.
    """
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'retain.db'}"
        return
    import sqlalchemy as sa

    base = sa.make_url(os.environ.get("RETAIN_TEST_POSTGRES_URL", POSTGRES_URL))
    shown = base.render_as_string(hide_password=True)
    try:
        admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except (sa.exc.OperationalError, ModuleNotFoundError) as exc:
        pytest.skip(f"no PostgreSQL server answers at {shown} (set RETAIN_TEST_POSTGRES_URL): {exc}")
    schema = f"retain_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield base.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
            hide_password=False
        )
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
