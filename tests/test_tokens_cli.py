"""`retain tokens create | list | revoke` through the CLI on a real database file."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from retain.cli import app
from retain.serve.api import create_app
from retain.serve.db import open_database


def retain(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def test_a_token_is_printed_once_listed_without_it_and_revoked(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'retain.db'}"
    made = retain("tokens", "create", "--role", "lead", "--name", "alice", "--database-url", url)
    assert made.exit_code == 0, made.output
    token = made.stdout.strip().splitlines()[0]
    assert token.startswith("rtn_") and len(token) > 40

    listed = retain("tokens", "list", "--database-url", url)
    assert listed.exit_code == 0 and "alice" in listed.stdout and "lead" in listed.stdout
    assert token not in listed.stdout and "active" in listed.stdout

    engine = open_database(url)
    with TestClient(create_app(engine)) as client:
        me = client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200 and me.json()["name"] == "alice"
        assert retain("tokens", "revoke", "alice", "--database-url", url).exit_code == 0
        assert client.get("/api/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    engine.dispose()
    assert "revoked" in retain("tokens", "list", "--database-url", url).stdout


def test_bad_role_and_unknown_name_are_usage_errors(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'retain.db'}"
    bad = retain("tokens", "create", "--role", "owner", "--name", "bob", "--database-url", url)
    assert bad.exit_code == 2 and "unknown role 'owner'" in bad.output and "viewer" in bad.output
    assert retain("tokens", "create", "--role", "viewer", "--name", "bob", "--database-url", url).exit_code == 0
    twice = retain("tokens", "create", "--role", "viewer", "--name", "bob", "--database-url", url)
    assert twice.exit_code == 2 and "revoke it first" in twice.output
    missing = retain("tokens", "revoke", "carol", "--database-url", url)
    assert missing.exit_code == 2 and "no active token named 'carol'" in missing.output
