"""Per-stage wall time and memory of a job: what a nightly run's log and summary report.

A job opens a :func:`stage_clock` and names its stages with :func:`stage`; code that is called
outside a clock (a notebook, a test) times nothing. After each stage the clock reads the
process's peak resident memory so far, so the stage where the peak rose is the one that set it::

    with stage_clock(show_progress=True) as clock:
        with stage("load"):
            ...
    clock.summary()   # [{"stage": "load", "seconds": 1.2, "peak_rss_mb": 410.0}, ...]
    format_stages(clock.summary(), seconds)   # the same as a table
"""

from __future__ import annotations

import logging
import resource
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)


def peak_rss_mb() -> float:
    """The process's peak resident memory so far, in MiB (children not counted)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB elsewhere


@dataclass
class StageTime:
    stage: str
    seconds: float
    peak_rss_mb: float


@dataclass
class StageClock:
    """The stages timed so far, in the order they ended; a progress bar over them if shown."""

    show_progress: bool = False
    stages: list[StageTime] = field(default_factory=list)
    _bar: Any = None

    def summary(self) -> list[dict[str, Any]]:
        """One record per stage: ``stage``, ``seconds``, ``peak_rss_mb`` (rounded for reading)."""
        return [
            {"stage": s.stage, "seconds": round(s.seconds, 3), "peak_rss_mb": round(s.peak_rss_mb, 1)}
            for s in self.stages
        ]


def format_stages(stages: list[dict[str, Any]], seconds: float) -> str:
    """:meth:`StageClock.summary` as aligned lines: name, seconds, share of the ``seconds`` of the
    whole run, peak memory after the stage; then the total."""
    total = max(seconds, 1e-9)
    width = max((len(s["stage"]) for s in stages), default=5)
    lines = [f"  {'stage':<{width}}  {'seconds':>8}  {'share':>6}  {'peak MiB':>9}"]
    for s in stages:
        lines.append(f"  {s['stage']:<{width}}  {s['seconds']:8.2f}  {s['seconds'] / total:6.0%}  {s['peak_rss_mb']:9.0f}")
    peak = max((s["peak_rss_mb"] for s in stages), default=peak_rss_mb())
    lines.append(f"  {'total':<{width}}  {seconds:8.2f}  {1:6.0%}  {peak:9.0f}")
    return "\n".join(lines)


_CLOCK: ContextVar[StageClock | None] = ContextVar("retain_stage_clock", default=None)


@contextmanager
def stage_clock(
    show_progress: bool = False, stages: int | None = None, desc: str = "Scoring"
) -> Iterator[StageClock]:
    """Time the stages run inside the block; ``stages`` (if known) sizes the progress bar."""
    from tqdm.auto import tqdm

    clock = StageClock(show_progress=show_progress)
    token = _CLOCK.set(clock)
    with tqdm(total=stages, desc=desc, unit="stage", disable=not show_progress, leave=False) as bar:
        clock._bar = bar
        try:
            yield clock
        finally:
            clock._bar = None
            _CLOCK.reset(token)


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Time the block as stage ``name`` of the current clock (nothing without one)."""
    clock = _CLOCK.get()
    if clock is None:
        yield
        return
    if clock._bar is not None:
        clock._bar.set_description(name)
    started = time.perf_counter()
    yield
    seconds = time.perf_counter() - started
    clock.stages.append(StageTime(name, seconds, peak_rss_mb()))
    logger.debug("stage %s: %.2f s, peak %.0f MiB", name, seconds, clock.stages[-1].peak_rss_mb)
    if clock._bar is not None:
        clock._bar.update(1)
