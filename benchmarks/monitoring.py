"""Benchmark I2 of PROTOCOLS.md: the churn model's ROC-AUC estimated before labels vs the realised one.

Through the ``retain`` command line on the synthetic world (20,000 customers, seed 0, 2024-01-01
to 2025-12-31): ``retain train -c configs/train.yaml --until 2025-04-30`` (the data read as if
it ended then), then ``retain score --as-of D --force-as-of`` at six monthly dates D after it
(2025-05-01 .. 2025-10-01; the last one's 90-day horizon closes before the data ends). Each
run's ``score_summary.json`` holds the ROC-AUC estimated from its probabilities alone
(``monitoring.estimated_roc_auc``, CBPE). A final ``retain score`` at the day after the data
ends reports every earlier run's realised performance (``monitoring.realised``); the benchmark
also computes the realised ROC-AUC itself from the archived outreach plans and the labels the
data shows (``retain.churn.labels.labels``), with a bootstrap interval over customers.
``estimate_error`` is the mean over the six dates of |estimated - realised|.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.harness import NO_ANCHOR, REPO_ROOT, BenchmarkRun, Goal, benchmark, smoke_requested
from benchmarks.scale import run_cli, workspace

GOAL = Goal("<=", 0.02)
CUSTOMERS = 20_000
SMOKE_CUSTOMERS = 3_000
TRAIN_UNTIL = "2025-04-30"
SCORING_DATES = ("2025-05-01", "2025-06-01", "2025-07-01", "2025-08-01", "2025-09-01", "2025-10-01")
BOOTSTRAP = 1000
TUNED_ON = (
    "nothing tuned on these dates: configs/train.yaml's package defaults (sigmoid calibration, the churn "
    "model's settings chosen by `retain train` on its own validation date before its backtest, all data up to "
    f"{TRAIN_UNTIL}); the six scoring dates and their labels were used once, for this figure"
)


def config_for(work: Path, world: Path) -> Path:
    """configs/train.yaml with the world's tables, and a store, outputs and reports in ``work``."""
    import yaml

    config = yaml.safe_load((REPO_ROOT / "configs" / "train.yaml").read_text(encoding="utf-8"))
    config["data"]["path"] = str(world)
    config["text"]["taxonomy"] = str(REPO_ROOT / "configs" / "themes.yaml")
    config["tracking"]["tracking_uri"] = f"sqlite:///{work / 'mlflow.db'}"
    config["reports_dir"] = str(work / "reports")
    config["scoring"] = {
        "output_dir": str(work / "outputs"), "playbook": str(REPO_ROOT / "configs" / "playbook.yaml"),
        "keep_runs": 10, "publish": False,
    }
    path = work / "train.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def realised_with_interval(
    plan: pd.DataFrame, churned: pd.Series, seed: int, draws: int = BOOTSTRAP
) -> dict[str, Any]:
    """ROC-AUC of a plan's probabilities against its customers' labels, with a bootstrap 95% interval."""
    from sklearn.metrics import roc_auc_score

    truth = churned.copy()
    truth.index = truth.index.astype(str)
    y = truth.reindex(plan["customer_id"].astype(str).to_numpy())
    known = y.notna().to_numpy()
    y_known = y.to_numpy()[known].astype(int)
    p = plan["churn_probability"].to_numpy(dtype=float)[known]
    rng = np.random.default_rng(seed)
    aucs = []
    for _ in range(draws):
        rows = rng.integers(0, len(p), len(p))
        if np.unique(y_known[rows]).size == 2:
            aucs.append(roc_auc_score(y_known[rows], p[rows]))
    low, high = np.percentile(aucs, [2.5, 97.5])
    return {
        "realised_roc_auc": float(roc_auc_score(y_known, p)), "realised_low": float(low), "realised_high": float(high),
        "customers": int(known.sum()), "churn_rate": float(y_known.mean()), "mean_probability": float(p.mean()),
    }


@benchmark("I2", "performance-estimate", data=[])
def performance_estimate(run: BenchmarkRun) -> None:
    from retain.churn.labels import labels
    from retain.config import TrainConfig, load_config
    from retain.data import load_world

    customers = SMOKE_CUSTOMERS if smoke_requested() else CUSTOMERS
    work = workspace()
    try:
        world = work / "world"
        run_cli(["synth", "--out", str(world), "--customers", str(customers), "--seed", str(run.seed), "-q"], work)
        config = config_for(work, world)
        trained = run_cli(["train", "-c", str(config), "--until", TRAIN_UNTIL, "-q"], work)
        estimates: dict[str, float] = {}
        checks: dict[str, dict[str, Any]] = {}
        seconds_scoring = 0.0
        for day in SCORING_DATES:
            scored = run_cli(["score", "-c", str(config), "--as-of", day, "--force-as-of", "-q"], work)
            seconds_scoring += scored.seconds
            summary = json.loads((work / "outputs" / "latest" / "score_summary.json").read_text(encoding="utf-8"))
            section = summary["monitoring"]
            estimates[day] = section["estimated_roc_auc"]
            # the run's other checks on a world without planted drift, for context (false alarms)
            checks[day] = {
                "score_psi": section["score_psi"], "feature_psi_max": max(f["psi"] for f in section["features"]),
                "breaches": section["breaches"], "themes_checked": section.get("themes_checked"),
            }
        run_cli(["score", "-c", str(config), "-q"], work)  # after the data: every earlier run's labels observed
        final = json.loads((work / "outputs" / "latest" / "score_summary.json").read_text(encoding="utf-8"))
        reported = {r["as_of"]: r for r in final["monitoring"]["realised"]}

        settings = load_config(config, TrainConfig)
        loaded = load_world(settings.data, write_quarantine=False)
        per_date = []
        for day in SCORING_DATES:
            plan = pd.read_parquet(work / "outputs" / "outreach_plans" / f"plan_{day}.parquet")
            churned = labels(
                loaded.world.customers, loaded.world.events, pd.Timestamp(day), settings.features.horizon_days,
                settings.label,
            )
            found = realised_with_interval(plan, churned, run.seed)
            per_date.append(
                {
                    "as_of": day, "estimated_roc_auc": estimates[day], **found,
                    "error": estimates[day] - found["realised_roc_auc"],
                    "realised_in_retain_summary": reported.get(day, {}).get("roc_auc"),
                    "monitoring": checks[day],
                }
            )
        errors = np.abs([d["error"] for d in per_date])
        run.record(
            dataset=f"synthetic world, {customers:,} customers (seed {run.seed}), 2024-01-01 to 2025-12-31",
            metric="estimate_error", value=float(errors.mean()), model="retain score monitoring (CBPE on the "
            "sigmoid-calibrated LightGBM churn model's probabilities)",
            anchor=NO_ANCHOR, goal=GOAL, seconds_train=trained.seconds, seconds_predict=seconds_scoring,
            peak_rss_mb=trained.peak_rss_mb, tuned_on=TUNED_ON, trained_until=TRAIN_UNTIL,
            per_date=per_date, max_abs_error=float(errors.max()),
            mean_signed_error=float(np.mean([d["error"] for d in per_date])),
            training_roc_auc=(final["monitoring"].get("reference") or {}).get("roc_auc_in_training"),
            commands=[trained.command, "retain score -c <config> --as-of D --force-as-of (D in the six dates)"],
            smoke=smoke_requested() or None,
        )
    finally:
        if not os.environ.get("RETAIN_BENCH_KEEP"):
            shutil.rmtree(work, ignore_errors=True)
