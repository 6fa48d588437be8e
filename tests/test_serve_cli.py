"""`retain score --publish`, `retain runs` and `retain runs rollback` on a small synthetic world.

Trained once per module with a temporary MLflow store; each test publishes to its own SQLite
file or PostgreSQL schema (``database_url``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from retain.serve import db

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def retain(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    path = os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])
    environment = {k: v for k, v in os.environ.items() if k != "RETAIN_DATABASE_URL"}
    environment.update({"PYTHONPATH": path, "OMP_NUM_THREADS": "1", **(env or {})})
    return subprocess.run(
        [sys.executable, "-m", "retain.cli", *args], cwd=REPO, env=environment,
        capture_output=True, text=True, timeout=900, check=False,
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("serve-cli")
    made = retain(
        "synth", "--out", str(root / "world"), "--customers", "600", "--seed", "2",
        "--start", "2024-01-01", "--end", "2025-06-30", "-q",
    )
    assert made.returncode == 0, made.stderr
    (root / "train.yaml").write_text(
        f"data: {{path: {root / 'world'}}}\n"
        f"tracking: {{tracking_uri: 'sqlite:///{root / 'mlflow.db'}'}}\n"
        "churn: {search_budget_s: 0, n_estimators: 40, train_periods: 4, backtest_dates: 1}\n"
        f"reports_dir: {root / 'reports'}\n"
    )
    result = retain("train", "-c", str(root / "train.yaml"), "-q")
    assert result.returncode == 0, result.stderr
    return root


def score_config(root: Path, url: str, name: str) -> Path:
    path = root / name
    path.write_text(
        f"data: {{path: {root / 'world'}}}\n"
        f"tracking: {{tracking_uri: 'sqlite:///{root / 'mlflow.db'}'}}\n"
        f"scoring: {{output_dir: {root / name.removesuffix('.yaml')}, database: {{url: '{url}', keep_runs: 5}}}}\n"
    )
    return path


def second_list(root: Path, config: Path) -> pd.DataFrame:
    """The list the files hold for the latest scoring with ``config``."""
    return pd.read_parquet(root / config.stem / "latest" / "ranked_customers.parquet")


def test_score_publish_then_runs_then_rollback(trained: Path, database_url: str) -> None:
    config = score_config(trained, database_url, f"score-{abs(hash(database_url))}.yaml")
    first = retain("score", "-c", str(config), "--publish", "-q", "--as-of", "2025-06-15")
    assert first.returncode == 0, first.stderr
    assert "Published run 1 to" in first.stdout and "it is now the current list" in first.stdout
    n_listed = len(second_list(trained, config))
    scored = len(pd.read_parquet(trained / config.stem / "latest" / "outreach_plan.parquet"))
    assert scored > n_listed  # the control group is scored, not listed, and the message says so
    assert f": {n_listed:,} customers (the {scored - n_listed:,} of the control group are left out" in first.stdout
    second = retain("score", "-c", str(config), "--publish", "-q")
    assert second.returncode == 0, second.stderr
    assert "Published run 2 to" in second.stdout
    unpublished = retain("score", "-c", str(config), "-q")  # without --publish: files only
    assert unpublished.returncode == 0 and "Published run" not in unpublished.stdout

    listed = retain("runs", "-c", str(config))
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].startswith("Runs in ")
    newest, oldest = lines[2].split(), lines[3].split()
    assert newest[:3] == ["*", "2", "2025-07-01"] and newest[5:7] == ["published", str(len(second_list(trained, config)))]
    assert oldest[:2] == ["1", "2025-06-15"] and oldest[4] == "superseded"
    assert "retain-churn v1" in lines[2]

    back = retain("runs", "rollback", "1", "-c", str(config))
    assert back.returncode == 0, back.stderr
    assert "Run 1 (as of 2025-06-15" in back.stdout and "current list again" in back.stdout
    listed = retain("runs", "--database-url", database_url).stdout.splitlines()
    assert listed[2].split()[:1] == ["2"] and "rolled_back" in listed[2]
    assert listed[3].split()[:2] == ["*", "1"]

    # What the database holds for the current run is the list the files hold for that date.
    engine = db.open_database(database_url)
    with engine.connect() as conn:
        rows = pd.read_sql(
            sa.select(db.scored_customers).where(db.scored_customers.c.run_id == 1)
            .order_by(db.scored_customers.c.rank), conn,
        )
        evidence = pd.read_sql(sa.select(db.evidence).where(db.evidence.c.run_id == 1), conn)
    customers = pd.read_parquet(trained / "world" / "customers.parquet")
    assert len(rows) > 100 and rows["rank"].tolist() == list(range(1, len(rows) + 1))
    assert rows["value_at_risk"].is_monotonic_decreasing
    segment = customers.set_index("customer_id")["segment"].astype(str)
    assert (rows["segment"] == segment.reindex(rows["customer_id"]).to_numpy()).all()
    named = {
        (c, reason["evidence_kind"], i)
        for c, reasons in zip(rows["customer_id"], rows["reasons"], strict=True)
        for reason in reasons
        for i in reason["evidence_ids"]
    }
    assert named, "some reason of the synthetic world points at tickets or feedback"
    assert set(zip(evidence["customer_id"], evidence["kind"], evidence["evidence_id"], strict=True)) == named
    feedback = evidence.loc[evidence["kind"] == "feedback"]
    assert feedback["sentiment"].isin(["negative", "neutral", "positive"]).all()
    assert feedback["text"].str.len().gt(0).all()
    engine.dispose()


def test_a_database_that_cannot_be_reached_exits_8(trained: Path) -> None:
    config = score_config(trained, "postgresql+psycopg://retain:hunter2@127.0.0.1:1/none", "bad.yaml")
    result = retain("score", "-c", str(config), "--publish", "-q")
    assert result.returncode == 8, result.stderr
    assert "error: database postgresql+psycopg://retain:***@127.0.0.1:1/none" in result.stderr
    assert "hunter2" not in result.stderr + result.stdout
    missing = retain("runs", "--database-url", f"sqlite:///{trained / 'typo.db'}")
    assert missing.returncode == 8 and "no such file (nothing published there yet?)" in missing.stderr
    assert not (trained / "typo.db").exists()
    not_a_directory = trained / "train.yaml"
    listed = retain("runs", "--database-url", f"sqlite:///{not_a_directory}/y.db")
    assert listed.returncode == 8, listed.stderr
    assert f"error: database sqlite:///{not_a_directory}/y.db" in listed.stderr


def test_the_environment_names_the_database(trained: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'from-env.db'}"
    config = score_config(trained, f"sqlite:///{tmp_path / 'from-file.db'}", "env.yaml")
    result = retain("score", "-c", str(config), "--publish", "-q", env={"RETAIN_DATABASE_URL": url})
    assert result.returncode == 0, result.stderr
    assert f"Published run 1 to {url}" in result.stdout
    assert (tmp_path / "from-env.db").exists() and not (tmp_path / "from-file.db").exists()


def test_help_lists_exit_8_and_the_publish_flag() -> None:
    from typer.testing import CliRunner

    from retain.cli import EXIT_DATABASE, app

    assert EXIT_DATABASE == 8
    runner = CliRunner()
    top = " ".join(runner.invoke(app, ["--help"]).output.split())
    assert "8 the database the list is published to cannot be opened or written" in top
    assert "--publish" in runner.invoke(app, ["score", "--help"]).output
    assert "rollback" in runner.invoke(app, ["runs", "--help"]).output


def test_the_outreach_loop_through_the_database(trained: Path, database_url: str) -> None:
    """Act, follow up, measure: a contact logged through the API puts the customer in cooldown
    on the next list, counts as contacted in the effect report, and the report reaches the API."""
    from fastapi.testclient import TestClient

    from retain.serve import auth
    from retain.serve.api import create_app

    config = score_config(trained, database_url, f"loop-{abs(hash(database_url))}.yaml")
    # A list far enough back that the data covers its 90-day horizon.
    first = retain("score", "-c", str(config), "--publish", "-q", "--as-of", "2025-03-01", "--force-as-of")
    assert first.returncode == 0, first.stderr
    engine = db.open_database(database_url)
    with engine.begin() as conn:
        token = auth.create_token(conn, "lead-1", "lead")
    headers = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(engine)) as client:
        top = client.get("/api/customers", headers=headers, params={"page_size": 3}).json()["items"]
        chosen = top[0]["customer_id"]
        logged = client.post(
            f"/api/customers/{chosen}/outreach", headers=headers,
            json={"channel": "phone", "outcome": "reached", "contacted_at": "2025-03-02T10:00:00"},
        )
        assert logged.status_code == 201, logged.text
        before = client.get("/api/outreach/effect", headers=headers).json()
        assert before["rows"] == [] and "retain outreach report" in before["message"]

    again = retain("score", "-c", str(config), "--publish", "-q", "--as-of", "2025-03-15", "--force-as-of")
    assert again.returncode == 0, again.stderr
    plan = pd.read_parquet(trained / config.stem / "latest" / "outreach_plan.parquet")
    assert plan.set_index("customer_id").loc[chosen, "outreach_status"] == "cooldown"

    report = retain("outreach", "report", "-c", str(config), "--as-of", "2025-03-01", "--publish", "-q")
    assert report.returncode == 0, report.stderr
    assert "intention to treat only" not in report.stdout  # the logged contact was read
    with TestClient(create_app(engine)) as client:
        effect = client.get("/api/outreach/effect", headers=headers).json()
    assert effect["as_of"].startswith("2025-03-01") and effect["per_protocol"] is True
    assert {r["analysis"] for r in effect["rows"]} == {"intention_to_treat", "per_protocol"}
    engine.dispose()
