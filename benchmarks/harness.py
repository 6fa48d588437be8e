"""Registry, record format and runner shared by every benchmark family.

A benchmark is a function registered with ``@benchmark(id, slug, data=[...])``. It receives a
:class:`BenchmarkRun`, measures the package through its public API and calls
:meth:`BenchmarkRun.record` once per (model, metric). The runner checks the data files, runs each
benchmark in its own spawned process (so ``peak_rss_mb`` is that benchmark's peak, not the
harness's), with seeds at 0 and at most two threads, then writes the records.

The record format is the one in ``../shared/benchmarks/PROTOCOLS.md``; extra keys
(``met``, ``other_anchors``, ``folds``, ...) come after the protocol keys.
"""

from __future__ import annotations

import json
import logging
import os
import random
import resource
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import import_module
from multiprocessing import get_context
from pathlib import Path
from typing import Any, TypeVar

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
HISTORY_FILE = "history.jsonl"
DEFAULT_DATA_DIR = "../shared/data"
SEED = 0
THREADS = 2
# One module per benchmark family; adding a family is one module and one line here.
FAMILY_MODULES = (
    "benchmarks.text", "benchmarks.churn", "benchmarks.zero_label", "benchmarks.throughput", "benchmarks.scale",
    "benchmarks.insight",
    "benchmarks.monitoring",
)
# Native thread pools read these when they start; set before a benchmark process is spawned.
THREAD_ENV_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)

#: Set (to anything but 0) for a plumbing check on a subsample: never a recorded figure.
SMOKE_ENV = "RETAIN_BENCH_SMOKE"
#: A record's key naming the results file it belongs in, when not its benchmark's own.
RESULTS_FILE_KEY = "results_file"

T = TypeVar("T")


def smoke_requested() -> bool:
    """Whether ``RETAIN_BENCH_SMOKE`` asks for a small plumbing check instead of the protocol."""
    return os.environ.get(SMOKE_ENV, "").strip() not in ("", "0")


# --- anchors and goals -----------------------------------------------------------------------


@dataclass(frozen=True)
class Anchor:
    """A reference figure: ``source`` is "here", "published" or "same run" (as PROTOCOLS.md)."""

    name: str
    value: float | None
    source: str

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "value": _plain(self.value), "source": self.source}


NO_ANCHOR = Anchor("none in PROTOCOLS.md", None, "")


@dataclass(frozen=True)
class Goal:
    """A target such as ``>= 0.85``; written into records as that string."""

    op: str
    value: float

    def __post_init__(self) -> None:
        if self.op not in (">=", "<="):
            raise ValueError(f"goal operator must be '>=' or '<=', got {self.op!r}")

    def __str__(self) -> str:
        return f"{self.op} {self.value}"

    def is_met(self, value: float) -> bool:
        return value >= self.value if self.op == ">=" else value <= self.value


# --- the registry ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunContext:
    """What every benchmark of one harness run shares; pickled into the benchmark process."""

    data_dir: Path
    commit: str
    date: str
    seed: int = SEED
    threads: int = THREADS


@dataclass(frozen=True)
class Benchmark:
    """One protocol of PROTOCOLS.md: its id, slug, required data files and the function."""

    id: str
    slug: str
    data: tuple[str, ...]
    measure: Callable[[BenchmarkRun], None]

    @property
    def name(self) -> str:
        return f"{self.id} {self.slug}"

    @property
    def results_file(self) -> str:
        return f"{self.id}-{self.slug}.json"

    def missing_data(self, data_dir: Path) -> list[str]:
        return [rel for rel in self.data if not (data_dir / rel).exists()]


REGISTRY: dict[str, Benchmark] = {}


def benchmark(
    id: str, slug: str, *, data: Sequence[str]
) -> Callable[[Callable[[BenchmarkRun], None]], Callable[[BenchmarkRun], None]]:
    """Register ``measure(run)`` as benchmark ``id``; ``data`` are paths under the data dir."""

    def register(measure: Callable[[BenchmarkRun], None]) -> Callable[[BenchmarkRun], None]:
        if id in REGISTRY:
            raise ValueError(f"benchmark {id} registered twice")
        REGISTRY[id] = Benchmark(id=id, slug=slug, data=tuple(data), measure=measure)
        return measure

    return register


def load_families() -> dict[str, Benchmark]:
    """Import the family modules (which fill the registry) and return it in protocol order."""
    for module in FAMILY_MODULES:
        import_module(module)
    return dict(sorted(REGISTRY.items(), key=lambda item: _protocol_order(item[0])))


def _protocol_order(bench_id: str) -> tuple[int, int]:
    family = "TCSI".find(bench_id[0])
    return (family if family >= 0 else 99, int(bench_id[1:]) if bench_id[1:].isdigit() else 0)


# --- measuring -----------------------------------------------------------------------------


class BenchmarkRun:
    """Handed to a benchmark function: where its data is, and where its records go."""

    def __init__(self, bench: Benchmark, context: RunContext) -> None:
        self.bench = bench
        self.context = context
        self.records: list[dict[str, Any]] = []
        # Timings on a shared machine are only comparable at similar load; keep it with them.
        self.load_avg_1m = os.getloadavg()[0]

    @property
    def seed(self) -> int:
        return self.context.seed

    def data_path(self, relative: str) -> Path:
        return self.context.data_dir / relative

    def record(
        self,
        *,
        dataset: str,
        metric: str,
        value: float,
        model: str,
        anchor: Anchor,
        goal: Goal | None,
        seconds_train: float | None,
        seconds_predict: float | None,
        peak_rss_mb: float | None = None,
        other_anchors: Iterable[Anchor] = (),
        **extra: Any,
    ) -> None:
        """Add one record (one metric of one model); ``peak_rss_mb`` defaults to the peak so far."""
        value = float(value)
        record: dict[str, Any] = {
            "benchmark": self.bench.name,
            "dataset": dataset,
            "metric": metric,
            "value": round(value, 6),
            "anchor": anchor.as_dict(),
            "goal": None if goal is None else str(goal),
            "model": model,
            "seconds_train": _round(seconds_train, 3),
            "seconds_predict": _round(seconds_predict, 3),
            "peak_rss_mb": _round(
                peak_rss_mb if peak_rss_mb is not None else process_peak_rss_mb(), 1
            ),
            "commit": self.context.commit,
            "date": self.context.date,
            "met": None if goal is None else goal.is_met(value),
            "load_avg_1m": round(self.load_avg_1m, 2),
        }
        others = [a.as_dict() for a in other_anchors]
        if others:
            record["other_anchors"] = others
        record.update({key: _plain(item) for key, item in extra.items()})
        self.records.append(record)


def timed(fn: Callable[..., T], *args: Any, **kwargs: Any) -> tuple[T, float]:
    """``fn(*args, **kwargs)`` and its wall-clock seconds."""
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


@dataclass(frozen=True)
class CliRun:
    """One ``retain`` process: its command (as a user would type it), wall time and its own peak RSS."""

    command: str
    seconds: float
    peak_rss_mb: float | None


def run_retain(args: Sequence[str], *, cwd: Path, log: Path, shown: str, env: Mapping[str, str] | None = None) -> CliRun:
    """Run ``python -m retain.cli <args>`` in ``cwd`` with this checkout's code; output into ``log``.

    The peak RSS is the process's own (``os.wait4``), not the largest child so far. Note that
    Linux starts a child's peak at its parent's size (``ru_maxrss`` survives fork and exec): keep
    the benchmark process small before the runs it measures.

    Raises
    ------
    RuntimeError
        The command failed; the message holds ``shown`` and the tail of its output.
    """
    import sys

    environment = {
        **os.environ,
        **(env or {}),
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO_ROOT / "src"), os.environ.get("PYTHONPATH", "")) if p),
    }
    started = time.perf_counter()
    with log.open("w", encoding="utf-8") as out:
        child = subprocess.Popen(
            [sys.executable, "-m", "retain.cli", *args], cwd=cwd, env=environment, stdout=out, stderr=subprocess.STDOUT
        )
        _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        tail = "\n".join(log.read_text(encoding="utf-8").strip().splitlines()[-20:])
        raise RuntimeError(f"`{shown}` exited with {child.returncode}:\n{tail}")
    return CliRun(command=shown, seconds=seconds, peak_rss_mb=usage.ru_maxrss / 1024)


def process_peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (``ru_maxrss`` is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def seeded(estimator: T, seed: int) -> T:
    """Set every ``random_state`` parameter of a scikit-learn estimator (nested ones too) to ``seed``.

    The protocols fix seeds at 0; estimators without such a parameter are returned unchanged.
    """
    params = estimator.get_params(deep=True)  # type: ignore[attr-defined]
    names = {k: seed for k in params if k == "random_state" or k.endswith("__random_state")}
    if names:
        estimator.set_params(**names)  # type: ignore[attr-defined]
    return estimator


def as_metric_dict(result: Any) -> dict[str, float]:
    """Metrics returned by ``retain.evaluation`` as a plain dict (mapping, Series or dataclass)."""
    if isinstance(result, Mapping):
        return {str(k): float(v) for k, v in result.items()}
    if hasattr(result, "to_dict"):
        return {str(k): float(v) for k, v in result.to_dict().items()}
    if hasattr(result, "__dataclass_fields__"):
        return {k: float(getattr(result, k)) for k in result.__dataclass_fields__}
    raise TypeError(f"cannot read metrics from {type(result).__name__}")


# --- running -------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What happened to one benchmark in a harness run."""

    bench: Benchmark
    status: str  # "ok", "skipped" or "failed"
    records: list[dict[str, Any]] = field(default_factory=list)
    message: str = ""
    wall_s: float = 0.0


def run_benchmarks(
    benches: Sequence[Benchmark], context: RunContext, *, isolated: bool = True
) -> list[Outcome]:
    """Run each benchmark (skipping those whose data is missing); failures do not stop the rest."""
    limit_thread_env(context.threads)
    outcomes = []
    for bench in benches:
        missing = bench.missing_data(context.data_dir)
        if missing:
            message = f"data not found under {context.data_dir}: {', '.join(missing)} (set RETAIN_DATA_DIR)"
            outcomes.append(Outcome(bench, "skipped", message=message))
            continue
        logger.info("running %s", bench.name)
        start = time.perf_counter()
        try:
            records = _run_isolated(bench, context) if isolated else measure(bench.id, context)
        except Exception as error:  # a broken benchmark is reported, the others still run
            logger.exception("%s failed", bench.name)
            outcomes.append(
                Outcome(
                    bench,
                    "failed",
                    message=f"{type(error).__name__}: {error}",
                    wall_s=time.perf_counter() - start,
                )
            )
            continue
        outcomes.append(Outcome(bench, "ok", records=records, wall_s=time.perf_counter() - start))
    return outcomes


def measure(bench_id: str, context: RunContext) -> list[dict[str, Any]]:
    """Run one registered benchmark in this process, seeded and limited to ``context.threads``."""
    import numpy as np
    from threadpoolctl import threadpool_limits

    bench = load_families()[bench_id]
    random.seed(context.seed)
    np.random.seed(context.seed)
    run = BenchmarkRun(bench, context)
    with threadpool_limits(limits=context.threads):
        bench.measure(run)
    if not run.records:
        raise RuntimeError(f"{bench.name} produced no records")
    return run.records


def _measure_in_child(bench_id: str, context: RunContext) -> list[dict[str, Any]]:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    return measure(bench_id, context)


def _run_isolated(bench: Benchmark, context: RunContext) -> list[dict[str, Any]]:
    # A fresh spawned interpreter per benchmark: its ru_maxrss is this benchmark's peak alone.
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(_measure_in_child, bench.id, context).result()


def limit_thread_env(threads: int) -> None:
    for name in THREAD_ENV_VARS:
        os.environ[name] = str(threads)


# --- the run's environment -------------------------------------------------------------------


def resolve_data_dir() -> Path:
    """``$RETAIN_DATA_DIR`` (default ``../shared/data``); a relative path is taken from the repo root."""
    path = Path(os.environ.get("RETAIN_DATA_DIR") or DEFAULT_DATA_DIR).expanduser()
    return (path if path.is_absolute() else REPO_ROOT / path).resolve()


def git_commit(repo: Path = REPO_ROOT) -> str:
    """``git rev-parse HEAD``, suffixed ``-dirty`` when the tree (results aside) has changes.

    ``uncommitted`` when there is no git or no commit yet.
    """
    try:
        sha = _git(repo, "rev-parse", "HEAD")
        status = _git(repo, "status", "--porcelain", "--", ".", ":(exclude)benchmarks/results")
    except (OSError, subprocess.CalledProcessError):
        return "uncommitted"
    return f"{sha}-dirty" if status else sha


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# --- writing and showing -----------------------------------------------------------------------


def write_results(outcomes: Iterable[Outcome], results_dir: Path) -> list[Path]:
    """Overwrite ``<id>-<slug>.json`` for every benchmark that ran; append all records to history."""
    ran = [outcome for outcome in outcomes if outcome.status == "ok"]
    if not ran:
        return []
    results_dir.mkdir(parents=True, exist_ok=True)
    written = []
    # A benchmark may also measure another that needs its state (S1 measures S2): such records
    # name their own results file.
    files: dict[str, list[dict[str, Any]]] = {}
    for outcome in ran:
        files.setdefault(outcome.bench.results_file, [])
        for record in outcome.records:
            files.setdefault(record.pop(RESULTS_FILE_KEY, outcome.bench.results_file), []).append(record)
    with open(results_dir / HISTORY_FILE, "a", encoding="utf-8") as history:
        for name, records in files.items():
            path = results_dir / name
            path.write_text(json.dumps(records, indent=2) + "\n", encoding="utf-8")
            written.append(path)
            history.writelines(json.dumps(record) + "\n" for record in records)
    return written


TABLE_COLUMNS = ("benchmark", "model", "metric", "value", "anchor", "goal", "met?")


def table_rows(records: Iterable[Mapping[str, Any]]) -> list[tuple[str, ...]]:
    rows = []
    for r in records:
        anchor = r["anchor"]
        anchor_text = (
            "-"
            if anchor["value"] is None
            else f"{anchor['value']:.3f} ({anchor['name']}, {anchor['source']})"
        )
        met = {True: "yes", False: "no", None: "-"}[r.get("met")]
        rows.append(
            (
                r["benchmark"],
                r["model"],
                r["metric"],
                f"{r['value']:.3f}",
                anchor_text,
                r["goal"] or "-",
                met,
            )
        )
    return rows


def format_table(records: Iterable[Mapping[str, Any]], *, markdown: bool = False) -> str:
    rows = table_rows(records)
    if markdown:
        lines = ["| " + " | ".join(TABLE_COLUMNS) + " |", "|" + "---|" * len(TABLE_COLUMNS)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(TABLE_COLUMNS)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(TABLE_COLUMNS, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in rows]
    return "\n".join(lines)


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(float(value), digits)


def _plain(value: Any) -> Any:
    """numpy scalars and arrays to JSON-ready Python values."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return value
