"""The `retain` command end to end on a small synthetic world, with a real MLflow SQLite store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
RETAIN = [sys.executable, "-m", "retain.cli"]

pytestmark = pytest.mark.slow


def run_retain(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*RETAIN, *args], check=False, cwd=REPO, capture_output=True, text=True, env=env, timeout=900
    )


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("e2e")
    store = f"sqlite:///{root / 'mlflow.db'}"
    demo = root / "demo.yaml"
    demo.write_text(
        f"synth: {{customers: 2500, seed: 3}}\nworkdir: {root / 'demo'}\n"
        f"tracking: {{tracking_uri: '{store}'}}\nscoring: {{output_dir: {root / 'outputs'}}}\n"
    )
    score = root / "score.yaml"
    score.write_text(
        f"data: {{path: {root / 'demo' / 'world'}}}\n"
        f"tracking: {{tracking_uri: '{store}'}}\nscoring: {{output_dir: {root / 'rescored'}}}\n"
    )
    train = root / "train.yaml"
    train.write_text(
        f"data: {{path: {root / 'demo' / 'world'}}}\n"
        f"tracking: {{tracking_uri: '{store}'}}\nreports_dir: {root / 'reports'}\n"
    )
    demo_score = root / "demo_score.yaml"  # the demo's own outputs, for the outreach report
    demo_score.write_text(
        f"data: {{path: {root / 'demo' / 'world'}}}\n"
        f"tracking: {{tracking_uri: '{store}'}}\nscoring: {{output_dir: {root / 'outputs'}}}\n"
    )
    return {"root": root, "demo": demo, "score": score, "train": train, "demo_score": demo_score}


@pytest.fixture(scope="module")
def demo_run(workspace: dict[str, Path]) -> subprocess.CompletedProcess[str]:
    result = run_retain("demo", "--config", str(workspace["demo"]), "--quiet")
    assert result.returncode == 0, result.stderr
    return result


def test_demo_prints_metrics_top_ten_and_outputs(demo_run: subprocess.CompletedProcess[str], workspace: dict[str, Path]) -> None:
    out = demo_run.stdout
    assert "feature families: customer attributes, behaviour, support, feedback, text" in out
    assert "Leakage audit: nothing excluded" in out
    assert "Churn model evaluated by backtest on 3 date(s)" in out
    assert "settings chosen on validation as_of" in out
    assert "ROC-AUC" in out and "95% interval" in out and "logistic baseline" in out
    assert "gradient boosting vs logistic baseline: paired roc_auc difference" in out
    assert "per split ROC-AUC:" in out
    assert "retain-churn version 1: champion" in out
    assert "sentiment  accuracy" in out and "themes     micro-F1" in out
    assert "Top 10 by value at risk" in out
    assert "  1. C" in out and " 10. C" in out
    assert str(workspace["root"] / "outputs" / "latest" / "ranked_customers.parquet") in out


def test_demo_ends_with_how_to_open_the_page_and_a_token_that_opens_it(
    demo_run: subprocess.CompletedProcess[str], workspace: dict[str, Path]
) -> None:
    from fastapi.testclient import TestClient

    from retain.serve.api import create_app
    from retain.serve.db import open_database

    lines = demo_run.stdout.splitlines()
    serve = next(line for line in lines if "retain serve --database-url" in line)
    url, report = serve.split("--database-url", 1)[1].split(" --report ")
    token = lines[-1].rsplit(" ", 1)[1]
    assert token.startswith("rtn_") and "http://localhost:8000/" in demo_run.stdout
    assert Path(report.strip()) == workspace["root"] / "demo" / "report" / "report.html"
    engine = open_database(url.strip())
    with TestClient(create_app(engine, Path(report.strip()))) as client:
        listed = client.get("/api/customers", headers={"Authorization": f"Bearer {token}"})
        assert listed.status_code == 200 and listed.json()["total"] > 0
        me = client.get("/api/me", headers={"Authorization": f"Bearer {token}"}).json()
        assert me["role"] == "lead"
        assert client.get("/api/report/status", headers={"Authorization": f"Bearer {token}"}).json()["available"]
        page = client.get("/api/report", headers={"Authorization": f"Bearer {token}"})
        assert page.status_code == 200 and '<section id="service">' in page.text
    engine.dispose()


def test_the_report_covers_kpis_themes_drivers_and_the_model_and_is_logged_to_mlflow(
    demo_run: subprocess.CompletedProcess[str], workspace: dict[str, Path]
) -> None:
    import re

    import mlflow

    assert "report written to" in demo_run.stdout
    config = workspace["root"] / "report.yaml"
    config.write_text(
        workspace["demo_score"].read_text() + f"report: {{output_dir: {workspace['root'] / 'report'}, months: 12}}\n"
    )
    result = run_retain("report", "-c", str(config), "--quiet")
    assert result.returncode == 0, result.stderr
    page = (workspace["root"] / "report" / "report.html").read_text()
    sections = re.findall(r'<section id="([a-z_]+)"', page)
    assert sections[:5] == ["overview", "service", "customers", "themes", "drivers"]
    assert "model" in sections and "monitoring" in sections
    assert "<script" not in page and 'src="http' not in page
    for table in ("service", "service_by_segment", "service_by_channel", "customers", "themes", "drivers"):
        assert (workspace["root"] / "report" / f"{table}.csv").is_file()
    run_id = re.search(r"logged to MLflow as run ([0-9a-f]+)", result.stdout).group(1)
    mlflow.set_tracking_uri(f"sqlite:///{workspace['root'] / 'mlflow.db'}")
    artifacts = [a.path for a in mlflow.MlflowClient().list_artifacts(run_id, "reports")]
    assert artifacts == ["reports/report.html"]


def test_no_model_is_stored_as_a_pickle(demo_run: subprocess.CompletedProcess[str], workspace: dict[str, Path]) -> None:
    """Issue 7: `retain train` stored the churn model as model.pkl; every model is skops now."""
    artifacts = workspace["root"] / "mlartifacts"
    assert len(list(artifacts.rglob("model.skops"))) >= 3  # churn, its baseline, the text models
    assert not list(artifacts.rglob("*.pkl"))


def test_ranked_list_is_complete_and_ordered(demo_run: subprocess.CompletedProcess[str], workspace: dict[str, Path]) -> None:
    ranked = pd.read_parquet(workspace["root"] / "outputs" / "ranked_customers.parquet")
    plan = pd.read_parquet(workspace["root"] / "outputs" / "outreach_plan.parquet")
    customers = pd.read_parquet(workspace["root"] / "demo" / "world" / "customers.parquet")
    # every customer active at the end of the data is scored, once: in the list or held out as control
    as_of = ranked["as_of"].iloc[0]
    active = customers[(customers["signup_at"] <= as_of) & ~(customers["churned_at"] <= as_of)]
    assert sorted(plan["customer_id"]) == sorted(active["customer_id"])
    assert not ranked["control"].any() and plan["control"].any()
    assert sorted(ranked["customer_id"]) == sorted(plan.loc[~plan["control"], "customer_id"])
    assert ranked["churn_probability"].between(0, 1).all()
    assert ranked["value_at_risk"].is_monotonic_decreasing
    assert ranked["rank"].tolist() == list(range(1, len(ranked) + 1))
    # A reason must raise this customer's risk and sit on the risky side of the population, so a
    # low-tier customer near the top only for their value may legitimately have none; a high- or
    # medium-tier customer always has one, and every reason's evidence column is present.
    at_risk = ranked.loc[ranked["risk_tier"].isin(["high", "medium"])]
    assert len(at_risk) > 0
    assert at_risk["reason_1"].notna().all(), "every high- or medium-tier customer has a reason"
    assert {"reason_1_evidence", "reason_1_signal"} <= set(ranked.columns)
    assert ranked["reason_1_signal"].notna().eq(ranked["reason_1"].notna()).all()
    assert ranked["recommended_action"].str.len().gt(0).all()
    # the top of the list gets actions that follow its own reasons, not one action for all
    from retain.config import Playbook, load_config

    playbook = load_config(REPO / "configs" / "playbook.yaml", Playbook)
    signal_of = {r.action: r.signal for r in playbook.rules}
    top = ranked.head(10)
    assert top["recommended_action"].nunique() >= 2
    for row in top.itertuples(index=False):
        signal = signal_of.get(row.recommended_action)
        assert signal is None or signal in {row.reason_1_signal, row.reason_2_signal, row.reason_3_signal}
    assert set(ranked["outreach_status"]) <= {"assigned", "queued", "cooldown"}
    assert ranked["outreach_status"].head(10).eq("assigned").all()
    csv = pd.read_csv(workspace["root"] / "outputs" / "ranked_customers.csv")
    assert csv["customer_id"].tolist() == ranked["customer_id"].tolist()


def test_the_effect_report_waits_for_the_horizon(demo_run: subprocess.CompletedProcess[str], workspace: dict[str, Path]) -> None:
    result = run_retain("outreach", "report", "--config", str(workspace["demo_score"]), "--quiet")
    assert result.returncode == 3
    assert "has a horizon that the data" in result.stderr and "ready after" in result.stderr


def test_rescoring_is_idempotent(demo_run: subprocess.CompletedProcess[str], workspace: dict[str, Path]) -> None:
    first = run_retain("score", "--config", str(workspace["score"]), "--quiet")
    assert first.returncode == 0, first.stderr
    csv = workspace["root"] / "rescored" / "ranked_customers.csv"
    before = csv.read_bytes()
    second = run_retain("score", "--config", str(workspace["score"]), "--quiet")
    assert second.returncode == 0, second.stderr
    assert csv.read_bytes() == before
    demo_csv = (workspace["root"] / "outputs" / "ranked_customers.csv").read_bytes()
    assert before == demo_csv, "the score command and the demo rank the same way"


def test_a_rerun_takes_its_texts_from_the_cache_and_logs_its_stages(
    demo_run: subprocess.CompletedProcess[str], workspace: dict[str, Path]
) -> None:
    """Scoring twice: the second run scores no text (the cache), prints its stages and logs
    them to MLflow as a 'score' run."""
    import re

    from mlflow.tracking import MlflowClient

    for _ in range(2):
        result = run_retain("score", "--config", str(workspace["score"]), "--quiet")
        assert result.returncode == 0, result.stderr
    texts = re.search(r"Texts: ([\d,]+) scored .*, ([\d,]+) taken from the text cache", result.stdout)
    assert texts is not None, result.stdout
    assert texts.group(1) == "0" and int(texts.group(2).replace(",", "")) > 0
    assert "Stages (" in result.stdout and "reasons" in result.stdout
    client = MlflowClient(tracking_uri=f"sqlite:///{workspace['root'] / 'mlflow.db'}")
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments, "tags.`retain.job` = 'score'", order_by=["attributes.start_time DESC"])
    assert len(runs) >= 2
    metrics = runs[0].data.metrics
    assert metrics["texts_scored"] == 0 and metrics["texts_from_cache"] > 0
    assert {"stage_load_data_seconds", "stage_text_seconds", "stage_reasons_seconds", "peak_rss_mb"} <= set(metrics)
    # an earlier run (the first on this output directory) scored what the last one took from the cache
    assert metrics["texts_from_cache"] in [r.data.metrics.get("texts_scored") for r in runs[1:]]


def test_explain_gives_a_listed_customers_reasons(demo_run: subprocess.CompletedProcess[str], workspace: dict[str, Path]) -> None:
    ranked = pd.read_parquet(workspace["root"] / "outputs" / "ranked_customers.parquet")
    first = ranked.iloc[0]
    result = run_retain("explain", first["customer_id"], "--config", str(workspace["demo_score"]), "--quiet")
    assert result.returncode == 0, result.stderr
    assert f"{first['customer_id']}  p={first['churn_probability']:.2f}" in result.stdout
    for i in (1, 2, 3):
        if isinstance(first[f"reason_{i}"], str):
            assert first[f"reason_{i}"] in result.stdout
    missing = run_retain("explain", "NO-SUCH-CUSTOMER", "--config", str(workspace["demo_score"]), "--quiet")
    assert missing.returncode == 3 and "NO-SUCH-CUSTOMER" in missing.stderr


def test_retraining_on_the_same_data_does_not_replace_the_champion(
    demo_run: subprocess.CompletedProcess[str], workspace: dict[str, Path]
) -> None:
    result = run_retain("train", "--config", str(workspace["train"]), "--quiet")
    assert result.returncode == 0, result.stderr
    assert "retain-churn version 2: not promoted" in result.stdout
    assert (workspace["root"] / "reports" / "metrics.json").exists()
    assert (workspace["root"] / "reports" / "calibration.png").exists()


def test_churn_run_records_the_text_model_versions(demo_run: subprocess.CompletedProcess[str], workspace: dict[str, Path]) -> None:
    from retain import tracking
    from retain.config import TrackingConfig

    track = TrackingConfig(tracking_uri=f"sqlite:///{workspace['root'] / 'mlflow.db'}")
    used = tracking.text_models_used(track, track.churn_model, "1")
    assert used == {track.sentiment_model: "1", track.theme_model: "1"}


def test_score_without_champion_exits_4(tmp_path: Path) -> None:
    config = tmp_path / "score.yaml"
    config.write_text(f"data: {{path: {tmp_path}}}\ntracking: {{tracking_uri: 'sqlite:///{tmp_path / 'm.db'}'}}\n")
    result = run_retain("score", "--config", str(config))
    assert result.returncode == 4
    assert "run `retain train` first" in result.stderr


def test_bad_config_key_exits_2_naming_it(tmp_path: Path) -> None:
    config = tmp_path / "train.yaml"
    config.write_text("data: {path: x}\nchurn: {learning_rat: 0.1}\n")
    result = run_retain("train", "--config", str(config))
    assert result.returncode == 2
    assert "churn.learning_rat" in result.stderr and str(config) in result.stderr


def test_unusable_data_exits_3_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "world").mkdir()
    pd.DataFrame({"customer_id": ["C1"]}).to_csv(tmp_path / "world" / "customers.csv", index=False)
    config = tmp_path / "train.yaml"
    config.write_text(f"data: {{path: {tmp_path / 'world'}}}\n")
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'm.db'}"}
    result = run_retain("train", "--config", str(config), env=env)
    assert result.returncode == 3
    assert "customers.csv" in result.stderr and "'signup_at'" in result.stderr


def test_help_explains_every_command() -> None:
    result = run_retain("--help")
    assert result.returncode == 0
    for command in ("synth", "train", "score", "demo"):
        assert command in result.stdout
    score_help = run_retain("score", "--help")
    assert "--as-of" in score_help.stdout and "atomically" in score_help.stdout


def test_bad_dates_and_format_exit_2_naming_the_option(tmp_path: Path) -> None:
    config = tmp_path / "score.yaml"
    config.write_text(f"data: {{path: {tmp_path}}}\ntracking: {{tracking_uri: 'sqlite:///{tmp_path / 'm.db'}'}}\n")
    result = run_retain("score", "--config", str(config), "--as-of", "2025-13-01")
    assert result.returncode == 2, result.stderr
    assert "--as-of" in result.stderr and "Traceback" not in result.stderr
    for option, value in (("--start", "soon"), ("--end", "2025-02-30"), ("--format", "xlsx")):
        result = run_retain("synth", "--out", str(tmp_path / "w"), "--customers", "10", option, value)
        assert result.returncode == 2, (option, result.stderr)
        assert option in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "w").exists()


def test_scoring_uses_the_text_models_the_churn_champion_was_trained_with(
    demo_run: subprocess.CompletedProcess[str], workspace: dict[str, Path]
) -> None:
    from mlflow import MlflowClient

    from retain import jobs, tracking
    from retain.config import TrackingConfig

    track = TrackingConfig(tracking_uri=f"sqlite:///{workspace['root'] / 'mlflow.db'}")
    client = MlflowClient(tracking_uri=track.tracking_uri, registry_uri=track.tracking_uri)
    first = client.get_model_version(track.sentiment_model, "1")
    newer = tracking.register_model(track, first.source, track.sentiment_model)
    client.set_registered_model_alias(track.sentiment_model, track.champion_alias, newer)
    try:
        assert tracking.champion_version(track, track.sentiment_model) == newer != "1"
        models, theme_ids = jobs.load_scoring_models(track)
        assert models.versions[track.sentiment_model] == "1"
        assert models.versions[track.theme_model] == "1"
        assert "billing" in theme_ids
    finally:
        client.set_registered_model_alias(track.sentiment_model, track.champion_alias, "1")


# --- real data shapes: a purchase log without support or feedback, and a flat table ---------


def _purchase_log(directory: Path, n_customers: int = 400, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Customers and their purchases 2024-01-01 .. 2025-06-30, as CSV files in ``directory``.

    Everyone buys every week or two and now and then pauses. Customers aged 30 to 45 never come
    back from a pause; the others come back after 30 to 100 days. So a customer silent for a
    month or two churns or not by age band: a bump a logistic baseline cannot draw, and the
    gradient-boosted model wins the paired test and becomes champion (else `retain score` has
    no model to load). A few customers never buy, and some first buy after the scoring date,
    so the scored population is not everyone.
    """
    rng = np.random.default_rng(seed)
    start, end = pd.Timestamp("2024-01-01"), pd.Timestamp("2025-06-30")
    span = (end - start).days
    customers, events = [], []
    for i in range(n_customers):
        cid = f"P{i:04d}"
        signup = start + pd.Timedelta(days=int(rng.integers(0, span - 30)))
        age = int(rng.integers(18, 80))
        customers.append({"customer_id": cid, "signup_at": signup, "age": age})
        if i % 25 == 0:
            continue  # signed up, never bought
        gap = float(rng.uniform(4, 12))
        day = signup + pd.Timedelta(days=float(rng.uniform(0, gap)))
        while day <= end:
            events.append(
                {"customer_id": cid, "occurred_at": day.floor("min"), "amount": round(float(rng.gamma(2, 20)), 2)}
            )
            day += pd.Timedelta(days=float(rng.exponential(gap)))
            if rng.random() < gap / 90:  # a pause, about once a quarter
                if 30 <= age <= 45:
                    break
                day += pd.Timedelta(days=float(rng.uniform(30, 100)))
    customers_frame, events_frame = pd.DataFrame(customers), pd.DataFrame(events)
    directory.mkdir(parents=True)
    customers_frame.to_csv(directory / "customers.csv", index=False)
    events_frame.to_csv(directory / "purchases.csv", index=False)
    return customers_frame, events_frame


def test_train_and_score_on_customers_and_a_purchase_log_only(tmp_path: Path) -> None:
    customers, purchases = _purchase_log(tmp_path / "shop")
    config = tmp_path / "shop.yaml"
    config.write_text(
        f"data:\n  path: {tmp_path / 'shop'}\n"
        "  files: {events: purchases.csv}\n"
        "  constants: {events: {event_type: purchase}}\n"
        "label: {definition: inactivity}\n"
        "features: {windows_days: [30, 90], horizon_days: 60, attributes: [age]}\n"
        "churn: {train_every_days: 30, train_periods: 4, backtest_dates: 2, search_budget_s: 0,"
        " n_estimators: 100}\n"
        f"tracking: {{tracking_uri: 'sqlite:///{tmp_path / 'm.db'}'}}\n"
        f"scoring: {{output_dir: {tmp_path / 'outputs'}}}\n"
        f"reports_dir: {tmp_path / 'reports'}\n"
    )
    trained = run_retain("train", "-c", str(config), "--quiet")
    assert trained.returncode == 0, trained.stderr
    data_line = next(line for line in trained.stdout.splitlines() if line.startswith("Data:"))
    assert "churn definition: inactivity" in data_line
    families = data_line.split("feature families:")[1]
    assert "behaviour" in families
    assert "support" not in families and "feedback" not in families and "text" not in families
    assert "Text models: none" in trained.stdout
    assert "retain-churn version 1" in trained.stdout

    as_of = "2025-03-31"
    scored = run_retain("score", "-c", str(config), "--as-of", as_of, "--force-as-of", "--quiet")
    assert scored.returncode == 0, scored.stderr
    assert f"as of {as_of}" in scored.stdout
    ranked = pd.read_csv(tmp_path / "outputs" / "ranked_customers.csv")
    plan = pd.read_parquet(tmp_path / "outputs" / "outreach_plan.parquet")  # the list and the control group
    bought = purchases.loc[pd.to_datetime(purchases["occurred_at"]) <= pd.Timestamp(as_of), "customer_id"]
    assert 0 < bought.nunique() < len(customers)  # the check below can tell who is left out
    assert sorted(plan["customer_id"]) == sorted(bought.unique())
    assert sorted(ranked["customer_id"]) == sorted(plan.loc[~plan["control"], "customer_id"])
    assert ranked["churn_probability"].between(0, 1).all()
    # no tickets or feedback: no reason can point at a ticket or a feedback text
    assert ranked.filter(like="_evidence").isna().all().all()


def test_train_and_score_on_a_flat_csv(tmp_path: Path) -> None:
    # Churn peaks at 3 to 5 support calls (a bump the logistic baseline cannot draw), so the
    # gradient-boosted model wins the paired test and becomes the champion `retain score` loads.
    rng = np.random.default_rng(1)
    n = 600
    tenure = rng.integers(1, 72, n)
    contract = rng.choice(["Month-to-month", "One year", "Two year"], n, p=[0.5, 0.3, 0.2])
    charges = rng.uniform(20, 110, n).round(2)
    calls = rng.integers(0, 10, n)
    logit = -2.5 - 0.02 * tenure + 0.8 * (contract == "Month-to-month") + 3.0 * ((calls >= 3) & (calls <= 5))
    churned = rng.random(n) < 1 / (1 + np.exp(-logit))
    (tmp_path / "flat").mkdir()
    pd.DataFrame(
        {
            "id": [f"F{i:04d}" for i in range(n)],
            "tenure": tenure,
            "Contract": contract,
            "MonthlyCharges": charges,
            "SupportCalls": calls,
            "Churn": np.where(churned, "Yes", "No"),
        }
    ).to_csv(tmp_path / "flat" / "customers.csv", index=False)
    config = tmp_path / "flat.yaml"
    config.write_text(
        f"data:\n  layout: flat\n  path: {tmp_path / 'flat'}\n"
        "  flat: {file: customers.csv, id_column: id, label_column: Churn, churned_values: ['Yes'],"
        " value_column: MonthlyCharges}\n"
        "churn: {cv_folds: 3, search_budget_s: 0, n_estimators: 100}\n"
        f"tracking: {{tracking_uri: 'sqlite:///{tmp_path / 'm.db'}'}}\n"
        f"scoring: {{output_dir: {tmp_path / 'outputs'}}}\n"
        f"reports_dir: {tmp_path / 'reports'}\n"
    )
    trained = run_retain("train", "-c", str(config), "--quiet")
    assert trained.returncode == 0, trained.stderr
    assert "Data: flat layout" in trained.stdout
    assert "3-fold stratified cross-validation" in trained.stdout
    assert "retain-churn version 1" in trained.stdout

    scored = run_retain("score", "-c", str(config), "--as-of", "2025-06-30", "--quiet")
    assert scored.returncode == 0, scored.stderr
    ranked = pd.read_csv(tmp_path / "outputs" / "ranked_customers.csv")
    plan = pd.read_parquet(tmp_path / "outputs" / "outreach_plan.parquet")  # the list and the control group
    stayed = [f"F{i:04d}" for i in np.flatnonzero(~churned)]
    assert sorted(plan["customer_id"]) == stayed
    assert sorted(ranked["customer_id"]) == sorted(plan.loc[~plan["control"], "customer_id"])
    assert ranked["value_at_risk"].is_monotonic_decreasing
    # what a customer pays is why they matter, never a reason
    signals = ranked.filter(regex=r"^reason_\d_signal$").stack()
    assert not signals.str.contains("MonthlyCharges").any()
