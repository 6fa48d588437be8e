"""The example configs in configs/examples/ work as a new user would run them: the CLI, the YAML.

The configs are validated everywhere; the real data sets they read are in ``$RETAIN_DATA_DIR``
(default ``../shared/data``), and where they are absent the runs are skipped with a message.
Each run gets its own MLflow store, outputs and reports in a temporary directory (a copy of
the config with those keys pointed there), so the user's store is never touched.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from retain.config import ScoreConfig, TrainConfig, load_config

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "configs" / "examples"
DATA_DIR = Path(os.environ.get("RETAIN_DATA_DIR", REPO.parent / "shared" / "data"))
SETS = {
    "telco": "ibm_telco_churn",
    "bigml": "telecom_churn_bigml",
    "bank": "bank_churn_records",
    "credit_card": "credit_card_churners",
    "cdnow": "cdnow_transactions",
}


def test_every_data_set_has_an_example_config() -> None:
    churn = [p.stem for p in EXAMPLES.glob("*.yaml") if not p.stem.startswith("text_")]
    assert sorted(churn) == sorted(SETS)  # text_*.yaml: retain text configs (test_text_job.py)


@pytest.mark.parametrize("name", sorted(SETS))
def test_example_configs_validate_and_resolve_their_data_through_retain_data_dir(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RETAIN_DATA_DIR", "/somewhere/data")
    config = load_config(EXAMPLES / f"{name}.yaml", TrainConfig)
    assert config.data.path == Path("/somewhere/data") / SETS[name]
    assert config.tracking.churn_model != "retain-churn"  # each set keeps its own registry name
    # and its own database: runs of different data sets are not one list's history, and the
    # outreach log (cooldown, the effect report) is keyed by customer id
    monkeypatch.delenv("RETAIN_DATABASE_URL", raising=False)
    url = load_config(EXAMPLES / f"{name}.yaml", ScoreConfig).scoring.database.url
    assert url == f"sqlite:///outputs/{name}/retain.db"


def _isolated_config(name: str, root: Path) -> Path:
    raw = yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text())
    raw["data"]["quarantine_dir"] = str(root / "quarantine")
    raw.setdefault("tracking", {})["tracking_uri"] = f"sqlite:///{root / 'mlflow.db'}"
    raw.setdefault("scoring", {})["output_dir"] = str(root / "outputs")
    raw["reports_dir"] = str(root / "reports")
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _retain(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RETAIN_DATA_DIR": str(DATA_DIR)}
    return subprocess.run(
        [sys.executable, "-m", "retain.cli", *args, "--quiet"],
        cwd=REPO, capture_output=True, text=True, env=env, timeout=1800, check=False,
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "flagged"),
    [
        ("telco", []),
        ("bigml", []),
        ("bank", ["Complain"]),
        ("credit_card", ["Naive_Bayes_Classifier_"]),
    ],
)
def test_flat_example_from_raw_file_to_ranked_list(name: str, flagged: list[str], tmp_path: Path) -> None:
    if not (DATA_DIR / SETS[name]).exists():
        pytest.skip(f"{DATA_DIR / SETS[name]} not found: set RETAIN_DATA_DIR")
    config = _isolated_config(name, tmp_path)
    trained = _retain("train", "-c", str(config))
    assert trained.returncode == 0, trained.stderr[-3000:]
    audit_line = next(line for line in trained.stdout.splitlines() if line.startswith("Leakage audit:"))
    if flagged:
        assert all(f in audit_line for f in flagged), audit_line
    else:
        assert "nothing excluded" in audit_line
    assert "95% interval" in trained.stdout and "champion" in trained.stdout
    scored = _retain("score", "-c", str(config))
    assert scored.returncode == 0, scored.stderr[-3000:]
    ranked = pd.read_parquet(tmp_path / "outputs" / "ranked_customers.parquet")
    assert len(ranked) > 0 and ranked["rank"].tolist() == list(range(1, len(ranked) + 1))
    assert ranked["reason_1"].notna().any()
    for column in flagged:
        assert not ranked["reason_1_signal"].astype(str).str.contains(column).any()


@pytest.mark.slow
def test_cdnow_until_then_score_covers_every_buyer_and_beats_recency(tmp_path: Path) -> None:
    from sklearn.metrics import roc_auc_score

    if not (DATA_DIR / SETS["cdnow"]).exists():
        pytest.skip(f"{DATA_DIR / SETS['cdnow']} not found: set RETAIN_DATA_DIR")
    config = _isolated_config("cdnow", tmp_path)
    trained = _retain("train", "-c", str(config), "--until", "1997-12-31")
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert "churn definition: inactivity" in trained.stdout
    scored = _retain("score", "-c", str(config), "--as-of", "1997-12-31", "--force-as-of")
    assert scored.returncode == 0, scored.stderr[-3000:]
    ranked = pd.read_parquet(tmp_path / "outputs" / "outreach_plan.parquet")  # the list and the control group

    log = pd.read_csv(
        DATA_DIR / SETS["cdnow"] / "CDNOW_master.txt", sep=r"\s+", dtype={"customer_id": str}
    )
    log["date"] = pd.to_datetime(log["date"].astype(str), format="%Y%m%d")
    as_of = pd.Timestamp("1997-12-31")
    before = log.loc[log["date"] <= as_of]
    buyers = set(before["customer_id"])
    assert set(ranked["customer_id"]) == buyers  # every customer with a purchase by then

    window = (log["date"] > as_of) & (log["date"] <= as_of + pd.Timedelta(days=180))
    active_after = set(log.loc[window, "customer_id"])
    churned = (~ranked["customer_id"].isin(active_after)).astype(int)
    recency = (as_of - before.groupby("customer_id")["date"].max()).dt.days
    retain_auc = roc_auc_score(churned, ranked["churn_probability"])
    recency_auc = roc_auc_score(churned, recency.reindex(ranked["customer_id"]).to_numpy())
    assert retain_auc >= recency_auc, (retain_auc, recency_auc)
