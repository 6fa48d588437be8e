"""Real processes: scoring killed at random points, and trainings started together on a new store.

Issue 7: a kill just after the Parquet was replaced left files of two different dates, and two
`retain train` runs at once on a new store crashed with `duplicate column name: step`.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
OUTPUTS = ("ranked_customers.parquet", "ranked_customers.csv", "score_summary.json")

pytestmark = pytest.mark.slow

# Scoring as `retain score` does it, with the registered churn version (a small world's model may
# not pass the champion rule). Writing a run's files is slowed down, and announced on stdout, so
# that kills land between the output files too, not only before and after them.
_SCORE = """
import sys, time
from datetime import date
from pathlib import Path
import pandas as pd

def slowed(write):
    def wrapper(self, path, *args, **kwargs):
        if "runs" in Path(path).parts:
            print("writing", flush=True)
            time.sleep(0.25)
            write(self, path, *args, **kwargs)
            time.sleep(0.25)
        else:
            write(self, path, *args, **kwargs)
    return wrapper

pd.DataFrame.to_parquet = slowed(pd.DataFrame.to_parquet)
pd.DataFrame.to_csv = slowed(pd.DataFrame.to_csv)

from retain import jobs
from retain.config import ScoreConfig, load_config

config = load_config(Path(sys.argv[1]), ScoreConfig)
jobs.run_score(config, date.fromisoformat(sys.argv[2]), churn_version="1", force_as_of=True)
print("done", flush=True)
"""


def _env() -> dict[str, str]:
    path = os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _retain(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "retain.cli", *args], cwd=REPO, env=_env(),
        capture_output=True, text=True, timeout=900, check=False,
    )


def _config(root: Path, store: Path, name: str, output: Path, reports: Path) -> Path:
    path = root / name
    path.write_text(
        f"data: {{path: {root / 'world'}}}\n"
        f"tracking: {{tracking_uri: 'sqlite:///{store}'}}\n"
        "churn: {search_budget_s: 2}\n"
        f"reports_dir: {reports}\n"
        f"scoring: {{output_dir: {output}, keep_runs: 3}}\n"
    )
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("kill")
    made = _retain(
        "synth", "--out", str(root / "world"), "--customers", "800", "--seed", "1",
        "--start", "2024-01-01", "--end", "2025-06-30", "-q",
    )
    assert made.returncode == 0, made.stderr
    return root


def _start_scoring(config: Path, as_of: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _SCORE, str(config), as_of], cwd=REPO, env=_env(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _score(config: Path, as_of: str) -> float:
    started = time.perf_counter()
    child = _start_scoring(config, as_of)
    out, err = child.communicate(timeout=600)
    assert child.returncode == 0 and "done" in out, err[-3000:]
    return time.perf_counter() - started


def _published(output: Path) -> dict[str, bytes]:
    """What a reader sees: `latest` resolved once, then each file of that run."""
    run = Path(os.path.realpath(output / "latest"))
    files = {name: (run / name).read_bytes() for name in OUTPUTS}
    ranked = pd.read_parquet(run / OUTPUTS[0])
    summary = json.loads(files["score_summary.json"])
    assert summary["customers_listed"] == len(ranked) == len(pd.read_csv(run / OUTPUTS[1]))
    # everyone scored is in the plan; the list leaves the control group out
    assert summary["customers_scored"] == len(pd.read_parquet(run / "outreach_plan.parquet"))
    assert summary["as_of"] == str(ranked["as_of"].iloc[0].date())
    return files


def _leftovers(output: Path) -> list[str]:
    return [p.name for d in (output, output / "runs") for p in d.iterdir() if p.name.endswith(".tmp")]


def test_scoring_killed_at_random_points_never_shows_a_mix_and_the_rerun_is_the_same(
    world: Path,
) -> None:
    store = world / "store" / "mlflow.db"
    store.parent.mkdir()
    output = world / "outputs"
    config = _config(world, store, "score.yaml", output, world / "reports")
    trained = _retain("train", "-c", str(config), "-q")
    assert trained.returncode == 0, trained.stderr[-3000:]
    old_date, new_date = "2025-04-01", "2025-06-01"

    seconds = _score(config, new_date)  # the uninterrupted run the rerun must equal
    new = _published(output)
    _score(config, old_date)  # what a reader sees until a run as of new_date completes
    old = _published(output)
    assert old["score_summary.json"] != new["score_summary.json"]

    rng = random.Random(20261202)
    kills_while_writing = 0
    for attempt in range(22):
        child = _start_scoring(config, new_date)
        if attempt % 2:
            # Wait until the run's files are being written, then kill somewhere among them.
            assert child.stdout is not None
            line = child.stdout.readline()
            assert line.strip() == "writing", child.stderr.read() if child.stderr else ""
            time.sleep(rng.uniform(0.0, 1.5))
            kills_while_writing += 1
        else:
            time.sleep(rng.uniform(0.0, seconds))
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=60)
        seen = _published(output)
        assert seen in (old, new), f"kill {attempt}: the files of `latest` mix two runs"
    assert kills_while_writing >= 10

    _score(config, new_date)
    assert _published(output) == new
    assert _leftovers(output) == []
    published = [p for p in (output / "runs").iterdir()]
    assert all(not p.name.startswith(".") for p in published) and len(published) <= 3


def test_two_trainings_started_together_on_a_new_store_both_succeed(world: Path) -> None:
    store = world / "new-store" / "mlflow.db"
    store.parent.mkdir()
    configs = [
        _config(world, store, f"train{i}.yaml", world / f"out{i}", world / f"reports{i}") for i in (1, 2)
    ]
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "retain.cli", "train", "-c", str(c), "-q"], cwd=REPO, env=_env(),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for c in configs
    ]
    for child in children:
        out, err = child.communicate(timeout=900)
        assert child.returncode == 0, err[-3000:]
        assert "retain-churn version" in out
    from retain import tracking
    from retain.config import TrackingConfig

    track = TrackingConfig(tracking_uri=f"sqlite:///{store}")
    versions = {tracking.model_version_tags(track, track.churn_model, v).get("layout") for v in ("1", "2")}
    assert versions == {"tables"}
