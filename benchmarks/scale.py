"""Scale benchmarks S1, S2 and S4 of PROTOCOLS.md, measured through the ``retain`` command line.

S1 batch score: ``retain score`` end to end (load and validate the four Parquet tables, text
inference, features, churn probabilities, reasons, ranking, the playbook, writing the list as
one published run) on synthetic worlds of 100,000 and 1,000,000 customers, each in its own
process: wall seconds and that process's peak RSS, per stage as the run logged them to MLflow,
and the ratio of the two wall times. Reasons agreement: on 2,000 customers drawn from those the
1,000,000-customer list explains (the top ``scoring.reasons_top_share`` by value at risk), the
share whose top-3 reason signals are the same, in the same order, as when every customer's
exact attributions are computed and the reasons read against all of them.

S2 incremental text (measured in S1's process, written to its own results file): after S1's
run, 1% new feedback (copies of existing comments, reworded, with new ids and dated on the last
day) is added and the list is scored again: the seconds the
text models spend in the rerun against the seconds they spent in the first run (text cache
empty), from the runs' own counts (``texts_inference_seconds`` in MLflow), and the whole text
stage (cache read, hashing and lookup included) beside it.

S4 spark (measured in S1's process too, its own results file): S1's 1,000,000-customer world
scored by ``retain score --engine spark`` on ``local[2]``: whether the list equals S1's (same ids
in the same order, probabilities within 1e-9, every other column equal) and the wall seconds.

The champion scored with is what ``retain demo`` trains on its 20,000-customer world (TF-IDF
text models, LightGBM churn model), as PROTOCOLS.md's S1 names. Worlds, champion and outputs
live in a temporary directory (``RETAIN_BENCH_WORK`` to keep them elsewhere).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.harness import (
    NO_ANCHOR,
    REPO_ROOT,
    BenchmarkRun,
    CliRun,
    Goal,
    benchmark,
    run_retain,
    smoke_requested,
)

SIZES = (100_000, 1_000_000)
SMOKE_SIZES = (3_000, 30_000)
S1_SECONDS_GOAL = Goal("<=", 90.0)
S1_MEMORY_GOAL = Goal("<=", 8 * 1024.0)
S1_SCALING_GOAL = Goal("<=", 11.0)
S1_AGREEMENT_GOAL = Goal(">=", 0.90)
S2_GOAL = Goal("<=", 0.05)
AGREEMENT_SAMPLE = 2_000
SPARK_PARTITIONS = 32
SPARK_DRIVER_MEMORY = "6g"
NEW_FEEDBACK_SHARE = 0.01
TUNED_ON = (
    "nothing tuned: the champion `retain demo` trains on its own 20,000-customer world (seed 0) "
    "with package defaults; scoring with configs/score.yaml's settings"
)


def run_cli(args: list[str], cwd: Path) -> CliRun:
    """``retain <args>`` in ``cwd`` against the MLflow store there (:func:`benchmarks.harness.run_retain`)."""
    log = cwd / f"{args[0]}-{int(time.time() * 1000)}.log"
    # the store in cwd; an empty RETAIN_DATABASE_URL overrides nothing (the configs name their database)
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{cwd / 'mlflow.db'}", "RETAIN_DATABASE_URL": ""}
    return run_retain(args, cwd=cwd, log=log, shown="retain " + " ".join(args), env=env)


def workspace() -> Path:
    """A fresh directory for the worlds, the champion's store and the outputs."""
    parent = os.environ.get("RETAIN_BENCH_WORK")
    if parent:
        Path(parent).mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="retain-scale-", dir=parent))


def train_champion(work: Path) -> CliRun:
    """``retain demo`` in ``work``: its world, its MLflow store (work/mlflow.db), its champion."""
    shutil.copytree(REPO_ROOT / "configs", work / "configs")
    return run_cli(["demo", "-q"], work)


def sizes() -> tuple[int, int]:
    """The two world sizes (a smoke run: small ones, a plumbing check and never a figure)."""
    return SMOKE_SIZES if smoke_requested() else SIZES


def synth(work: Path, customers: int) -> tuple[Path, CliRun]:
    out = work / "worlds" / f"w{customers}"
    return out, run_cli(["synth", "--out", str(out), "--customers", str(customers), "--format", "parquet", "-q"], work)


def score_config(work: Path, world: Path, name: str) -> Path:
    """configs/score.yaml with the world's tables and outputs of its own."""
    import yaml

    config = yaml.safe_load((REPO_ROOT / "configs" / "score.yaml").read_text(encoding="utf-8"))
    config["data"]["path"] = str(world)
    config["data"]["quarantine_dir"] = str(work / f"quarantine_{name}")
    config["scoring"]["output_dir"] = str(work / f"out_{name}")
    config["scoring"]["playbook"] = str(work / "configs" / "playbook.yaml")
    config["scoring"]["publish"] = False
    config.setdefault("tracking", {})["tracking_uri"] = f"sqlite:///{work / 'mlflow.db'}"
    if smoke_requested():  # small worlds: explain the top only, as the large run does
        config["scoring"]["reasons_all_up_to"] = 1_000
    path = work / f"score_{name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def last_score_run(work: Path) -> dict[str, Any]:
    """The metrics of the newest ``score`` run the CLI logged to MLflow in ``work``."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{work / 'mlflow.db'}")
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments, "tags.`retain.job` = 'score'", order_by=["attributes.start_time DESC"], max_results=1)
    if not runs:
        raise RuntimeError("the scoring run logged nothing to MLflow")
    return dict(runs[0].data.metrics)


def stage_seconds(metrics: dict[str, Any]) -> dict[str, float]:
    return {
        key.removeprefix("stage_").removesuffix("_seconds"): round(value, 3)
        for key, value in metrics.items()
        if key.startswith("stage_") and key.endswith("_seconds")
    }


def machine() -> dict[str, Any]:
    import platform

    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def reasons_agreement(config: Path | str, plan: Path | str, seed: int) -> dict[str, Any]:
    """Top-3 reasons of the list (fast path) against exact attributions of every customer.

    Scores the world of ``config`` again in this process up to the features, computes exact
    attributions of every customer and their reasons as a run explaining everyone would, and
    compares them with the reasons the run wrote (``plan``: every scored customer) on
    :data:`AGREEMENT_SAMPLE` customers drawn at random from those it explained.
    """
    import numpy as np
    import pandas as pd

    from retain import data, jobs
    from retain.config import ScoreConfig, load_config
    from retain.scoring import explain_reasons, model_inputs, score_customers

    cfg = load_config(Path(config), ScoreConfig)
    models, theme_ids = jobs.load_scoring_models(cfg.tracking)
    loaded = data.load_world(cfg.data, write_quarantine=False)
    when = jobs.default_score_date(jobs.observed_until(loaded.world))
    scores = score_customers(loaded.world, when, models, theme_ids, cfg.features, cfg.label)
    X = model_inputs(scores.table, models.churn, when)
    started = time.perf_counter()
    everyone = cfg.scoring.model_copy(update={"reasons_for": "all"})
    exact = explain_reasons(X, np.ones(len(X), bool), models.churn, everyone, ("monthly_value",), scores.table["customer_id"])
    exact_seconds = time.perf_counter() - started
    exact.index = scores.table["customer_id"].astype(str).to_numpy()
    listed = pd.read_parquet(plan)
    explained = listed.loc[listed["explained"].astype(bool), "customer_id"].astype(str)
    sample = explained.sample(n=min(AGREEMENT_SAMPLE, len(explained)), random_state=seed).to_numpy()
    signals = [f"reason_{i}_signal" for i in (1, 2, 3)]
    fast = listed.set_index(listed["customer_id"].astype(str)).loc[sample, signals]
    slow = exact.loc[sample, signals]

    def as_tuples(frame: pd.DataFrame) -> list[tuple[Any, ...]]:
        return [tuple(v if isinstance(v, str) else None for v in row) for row in frame.itertuples(index=False)]

    fast_rows, slow_rows = as_tuples(fast), as_tuples(slow)
    same_order = float(np.mean([a == b for a, b in zip(fast_rows, slow_rows, strict=True)]))
    same_set = float(np.mean([set(a) == set(b) for a, b in zip(fast_rows, slow_rows, strict=True)]))
    first = float(np.mean([a[0] == b[0] for a, b in zip(fast_rows, slow_rows, strict=True)]))
    return {
        "same_order": same_order, "same_set": same_set, "same_first": first, "sample": len(sample),
        "explained": len(explained), "scored": len(listed), "exact_all_seconds": round(exact_seconds, 1),
    }


def add_new_feedback(world: Path, out: Path, share: float, seed: int) -> int:
    """A copy of ``world`` with ``share`` more feedback: reworded copies, new ids, on the last day."""
    import numpy as np
    import pandas as pd

    shutil.copytree(world, out)
    feedback = pd.read_parquet(out / "feedback.parquet")
    rng = np.random.default_rng(seed)
    n = round(share * len(feedback))
    new = feedback.iloc[rng.choice(len(feedback), n, replace=False)].copy()
    last = feedback["created_at"].max()
    customers = pd.read_parquet(out / "customers.parquet", columns=["customer_id", "signup_at", "churned_at"])
    active = customers.loc[customers["churned_at"].isna() & (customers["signup_at"] < last), "customer_id"]
    new["customer_id"] = rng.choice(active.to_numpy(), n)
    new["feedback_id"] = [f"NEW{i:08d}" for i in range(n)]
    new["created_at"] = last
    new["text"] = new["text"].astype(str) + " Following up on this again."
    pd.concat([feedback, new], ignore_index=True).to_parquet(out / "feedback.parquet", index=False)
    return n


@benchmark("S1", "batch-score", data=())
def batch_score(run: BenchmarkRun) -> None:
    work = workspace()
    try:
        champion = train_champion(work)
        runs: dict[int, CliRun] = {}
        metrics: dict[int, dict[str, Any]] = {}
        worlds: dict[int, Path] = {}
        for size in sizes():
            worlds[size], _ = synth(work, size)
            config = score_config(work, worlds[size], str(size))
            runs[size] = run_cli(["score", "-c", str(config), "-q"], work)
            metrics[size] = last_score_run(work)
        small, big = sizes()
        common = {
            "dataset": f"synthetic world, {big:,} customers (seed 0), retain synth --format parquet",
            "anchor": NO_ANCHOR,
            "seconds_train": champion.seconds,
            "tuned_on": TUNED_ON,
            "machine": machine(),
        }
        for size in sizes():
            m = metrics[size]
            run.record(
                **{**common, "dataset": f"synthetic world, {size:,} customers (seed 0)"},
                metric="wall_seconds", value=runs[size].seconds, model="retain score (CLI, demo champion)",
                goal=S1_SECONDS_GOAL if size == big else None, seconds_predict=runs[size].seconds,
                peak_rss_mb=runs[size].peak_rss_mb, command=runs[size].command,
                customers_scored=int(m.get("customers_scored", 0)), customers_explained=int(m.get("customers_explained", 0)),
                stages_seconds=stage_seconds(m), texts_scored=int(m.get("texts_scored", 0)),
            )
        run.record(
            **common, metric="peak_rss_mb", value=runs[big].peak_rss_mb, model="retain score (CLI, demo champion)",
            goal=S1_MEMORY_GOAL, seconds_predict=runs[big].seconds, peak_rss_mb=runs[big].peak_rss_mb,
        )
        run.record(
            **common, metric="time_ratio_10x_customers", value=runs[big].seconds / runs[small].seconds,
            model="retain score (CLI, demo champion)", goal=S1_SCALING_GOAL, seconds_predict=None,
            peak_rss_mb=runs[big].peak_rss_mb, sizes=list(sizes()),
        )
        config = work / f"score_{big}.yaml"
        agreement = in_child("reasons_agreement", str(config), str(work / f"out_{big}" / "latest" / "outreach_plan.parquet"), run.seed)
        run.record(
            **common, metric="reasons_agreement", value=agreement["same_order"],
            model="reasons for the top 10% by value at risk, directions from a 20,000-customer reference sample",
            goal=S1_AGREEMENT_GOAL, seconds_predict=None, peak_rss_mb=None, **{f"agreement_{k}": v for k, v in agreement.items()},
            definition="share of 2,000 explained customers whose top-3 reason signals are the same and in the same "
            "order as with exact attributions of every customer and reasons read against all of them",
        )
        incremental(run, work, worlds[big], big, metrics[big], common)
        on_spark(run, work, worlds[big], big, common)
    finally:
        if not os.environ.get("RETAIN_BENCH_KEEP"):
            shutil.rmtree(work, ignore_errors=True)


def incremental(
    run: BenchmarkRun, work: Path, world: Path, size: int, first: dict[str, Any], common: dict[str, Any]
) -> None:
    """S2, recorded from S1's process (it reuses S1's world, champion and text cache)."""
    grown = work / "worlds" / "grown"
    added = add_new_feedback(world, grown, NEW_FEEDBACK_SHARE, run.seed)
    config = score_config(work, grown, "grown")
    # the grown world's run starts from the first run's text cache, as the next night's run would
    (work / "out_grown").mkdir(parents=True, exist_ok=True)
    shutil.copy(work / f"out_{size}" / "text_cache.parquet", work / "out_grown" / "text_cache.parquet")
    rerun = run_cli(["score", "-c", str(config), "-q"], work)
    again = last_score_run(work)
    ratio = again["texts_inference_seconds"] / first["texts_inference_seconds"]
    every_text = in_child("all_feedback_inference_seconds", str(work / f"score_{size}.yaml"))
    record = {
        **common,
        "dataset": f"S1's {size:,}-customer world plus {added:,} new feedback texts ({NEW_FEEDBACK_SHARE:.0%})",
        "model": "retain score with the text cache (CLI, demo champion)",
        "seconds_predict": rerun.seconds,
        "peak_rss_mb": rerun.peak_rss_mb,
        "first_run_text_inference_seconds": first["texts_inference_seconds"],
        "rerun_text_inference_seconds": again["texts_inference_seconds"],
        "first_run_text_stage_seconds": first.get("stage_text_seconds"),
        "rerun_text_stage_seconds": again.get("stage_text_seconds"),
        "rerun_texts_scored": int(again.get("texts_scored", 0)),
        "rerun_texts_from_cache": int(again.get("texts_from_cache", 0)),
        "rerun_wall_seconds": rerun.seconds,
        "first_run_texts_scored": int(first.get("texts_scored", 0)),
        "all_feedback_inference_seconds": every_text["seconds"],
        "all_feedback_texts": every_text["texts"],
        "rerun_share_of_all_feedback_inference": again["texts_inference_seconds"] / every_text["seconds"],
        "note": "the first run scores only the feedback its features read (the longest window, 90 days); "
        "all_feedback_* is the text models on every comment ever written, as runs did before that",
    }
    harness_record_for(run, "S2", "incremental-text", metric="text_inference_share", value=ratio, goal=S2_GOAL, **record)
    stage_ratio = again["stage_text_seconds"] / first["stage_text_seconds"]
    harness_record_for(run, "S2", "incremental-text", metric="text_stage_share", value=stage_ratio, goal=None, **record)


def on_spark(run: BenchmarkRun, work: Path, world: Path, size: int, common: dict[str, Any]) -> None:
    """S4: S1's world scored by ``retain score --engine spark`` on local[2], compared with S1's list."""
    import numpy as np
    import pandas as pd
    import yaml

    config = score_config(work, world, "spark")
    settings = yaml.safe_load(config.read_text(encoding="utf-8"))
    # A partition is validated and scored in one pandas call on a worker: at a million customers
    # 32 partitions keep each one's rows well inside a worker's memory.
    settings["scoring"]["spark"] = {
        "master": "local[2]", "partitions": SPARK_PARTITIONS, "conf": {"spark.driver.memory": SPARK_DRIVER_MEMORY},
    }
    config.write_text(yaml.safe_dump(settings, sort_keys=False), encoding="utf-8")
    spark = run_cli(["score", "-c", str(config), "--engine", "spark", "-q"], work)
    listed = pd.read_parquet(work / f"out_{size}" / "latest" / "ranked_customers.parquet")
    on_cluster = pd.read_parquet(work / "out_spark" / "latest" / "ranked_customers.parquet")
    same_ids = listed["customer_id"].tolist() == on_cluster["customer_id"].tolist()
    difference = (
        float(np.max(np.abs(listed["churn_probability"].to_numpy() - on_cluster["churn_probability"].to_numpy())))
        if same_ids else float("nan")
    )
    others = [c for c in listed.columns if c != "churn_probability"]
    identical = same_ids and listed[others].equals(on_cluster[others]) and difference <= 1e-9
    harness_record_for(
        run, "S4", "spark", metric="identical_list", value=float(identical), goal=Goal(">=", 1.0),
        **{**common, "model": "retain score --engine spark (local[2], CLI, demo champion)"},
        seconds_predict=spark.seconds, peak_rss_mb=spark.peak_rss_mb, command=spark.command,
        same_ids_same_order=same_ids, max_probability_difference=difference, customers_listed=len(listed),
        other_columns_equal=bool(same_ids and listed[others].equals(on_cluster[others])),
        partitions=SPARK_PARTITIONS, driver_memory=SPARK_DRIVER_MEMORY,
        peak_rss_note="the driver's Python process only; the JVM is its child and not counted",
    )
    harness_record_for(
        run, "S4", "spark", metric="wall_seconds", value=spark.seconds, goal=None,
        **{**common, "model": "retain score --engine spark (local[2], CLI, demo champion)"},
        seconds_predict=spark.seconds, peak_rss_mb=spark.peak_rss_mb, command=spark.command,
    )


def all_feedback_inference_seconds(config: Path | str) -> dict[str, Any]:
    """Seconds the text models take on every feedback text of ``config``'s world, for context."""
    import pandas as pd

    from retain import jobs
    from retain.config import ScoreConfig, load_config
    from retain.scoring import feedback_scores

    cfg = load_config(Path(config), ScoreConfig)
    models, theme_ids = jobs.load_scoring_models(cfg.tracking)
    feedback = pd.read_parquet(cfg.data.path / "feedback.parquet", columns=["feedback_id", "text"])
    started = time.perf_counter()
    feedback_scores(feedback, models, theme_ids, cfg.features)
    return {"seconds": time.perf_counter() - started, "texts": len(feedback)}


def in_child(function: str, *args: Any) -> dict[str, Any]:
    """``function(*args)`` of this module in a Python process of its own, its JSON result.

    This process starts the ``retain`` processes whose peak memory is measured; a child's peak
    starts from its parent's size (Linux keeps ``ru_maxrss`` across fork and exec), so the heavy
    steps measured here run elsewhere and this process stays small.
    """
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(REPO_ROOT / "src"), str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    code = f"import json, sys; from benchmarks import scale; print(json.dumps(scale.{function}(*json.loads(sys.argv[1]))))"
    done = subprocess.run([sys.executable, "-c", code, json.dumps(list(args))], env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{function} failed:\n" + "\n".join(done.stderr.strip().splitlines()[-15:]))
    return json.loads(done.stdout.strip().splitlines()[-1])


def harness_record_for(run: BenchmarkRun, bench_id: str, slug: str, **record: Any) -> None:
    """A record of benchmark ``bench_id`` measured in this one's process, into its own results file."""
    from benchmarks.harness import RESULTS_FILE_KEY

    run.record(**record)
    run.records[-1]["benchmark"] = f"{bench_id} {slug}"
    run.records[-1][RESULTS_FILE_KEY] = f"{bench_id}-{slug}.json"


if __name__ == "__main__":  # pragma: no cover - `python -m benchmarks --only S1`
    print(json.dumps(machine()))
