"""Run the benchmarks: ``python benchmarks/run.py [--only T1 C1]`` from any directory.

Prints a table (benchmark, model, metric, value, anchor, goal, met?), overwrites
``benchmarks/results/<id>-<slug>.json`` for each benchmark that ran and appends its records to
``benchmarks/results/history.jsonl``. A benchmark whose data is missing is skipped with a message
(exit 0); a benchmark that fails is reported and makes the exit status 1.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script: make ``benchmarks`` importable as a package (here and in the spawned
    # benchmark processes, which inherit sys.path) instead of its modules as top-level names.
    _repo_root = str(Path(__file__).resolve().parents[1])
    sys.path[0] = _repo_root

from benchmarks import harness

logger = logging.getLogger("benchmarks")


def parse_args(argv: list[str] | None, known: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="benchmarks/run.py",
        description="Run retain's benchmarks (protocols: ../shared/benchmarks/PROTOCOLS.md).",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="ID",
        help=f"benchmark ids to run, space- or comma-separated (default all: {' '.join(known)})",
    )
    parser.add_argument(
        "--list", action="store_true", help="list the implemented benchmarks and exit"
    )
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=harness.RESULTS_DIR,
        help="where the JSON records go (default benchmarks/results)",
    )
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="run benchmarks in this process (for debugging; peak_rss_mb is then cumulative)",
    )
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    registry = harness.load_families()
    args = parse_args(argv, list(registry))

    if args.list:
        for bench in registry.values():
            print(f"{bench.name:28s} data: {', '.join(bench.data)}")
        return 0

    selected = [
        bench_id.strip().upper()
        for item in (args.only or registry)
        for bench_id in item.split(",")
        if bench_id.strip()
    ]
    unknown = [bench_id for bench_id in selected if bench_id not in registry]
    if unknown:
        print(
            f"not implemented: {' '.join(unknown)} (implemented: {' '.join(registry)})",
            file=sys.stderr,
        )
        return 2

    if harness.smoke_requested() and args.results_dir.resolve() == harness.RESULTS_DIR.resolve():
        print(
            f"{harness.SMOKE_ENV} is set: smoke runs are not figures; pass --results-dir "
            "<a temporary directory>",
            file=sys.stderr,
        )
        return 2

    context = harness.RunContext(
        data_dir=harness.resolve_data_dir(), commit=harness.git_commit(), date=harness.now_iso()
    )
    logger.info(
        "data %s, commit %s, %d threads, seed %d",
        context.data_dir,
        context.commit,
        context.threads,
        context.seed,
    )
    outcomes = harness.run_benchmarks(
        [registry[bench_id] for bench_id in selected], context, isolated=not args.in_process
    )
    written = harness.write_results(outcomes, args.results_dir)

    records = [record for outcome in outcomes for record in outcome.records]
    if records:
        print(harness.format_table(records, markdown=args.markdown))
    for outcome in outcomes:
        if outcome.status == "ok":
            print(f"ran      {outcome.bench.name} in {outcome.wall_s:.1f} s")
        else:
            print(f"{outcome.status:8s} {outcome.bench.name}: {outcome.message}")
    for path in written:
        print(f"wrote    {path}")
    return 1 if any(outcome.status == "failed" for outcome in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
