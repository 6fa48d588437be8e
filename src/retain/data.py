"""Reading and writing tables: the only module that touches data files.

Input tables are CSV or Parquet files in one directory, named after the table
(``customers.parquet`` or ``customers.csv``...) unless the config names the file. Columns are
renamed from the user's names to the contract's, validated, and split into usable and rejected
rows; rejected rows are written to a quarantine directory with the reason for each, and every
count is logged, so that each input row is either used or reported.

Outputs are written atomically: to a temporary file in the target directory, then renamed over
the target, so a crash leaves the previous output intact.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from retain.config import DataConfig
from retain.contracts import (
    CONTRACTS,
    ContractError,
    TableContract,
    Validated,
    World,
    validate_table,
)

logger = logging.getLogger(__name__)

TABLE_NAMES = ("customers", "events", "tickets", "feedback")
_SUFFIXES = (".parquet", ".csv")


@dataclass(frozen=True)
class LoadedWorld:
    """A validated world and, per table, what was used and what was rejected."""

    world: World
    reports: dict[str, Validated]

    @property
    def n_rejected(self) -> int:
        return sum(len(r.rejected) for r in self.reports.values())

    def summary(self) -> str:
        return "\n".join(r.summary() for r in self.reports.values())


def table_path(config: DataConfig, table: str) -> Path:
    """The file that holds ``table``: the configured name, else ``<table>.parquet`` or ``.csv``."""
    if table in config.files:
        return config.path / config.files[table]
    for suffix in _SUFFIXES:
        candidate = config.path / f"{table}{suffix}"
        if candidate.exists():
            return candidate
    raise ContractError(
        f"{config.path}: no file for table '{table}' (looked for {table}.parquet and {table}.csv; "
        "name it in the config's data.files section)"
    )


def read_frame(path: Path) -> pd.DataFrame:
    """Read a CSV or Parquet file as it is (CSV cells as strings; typing is the contract's job)."""
    if not path.exists():
        raise ContractError(f"{path}: file not found")
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        if path.suffix in (".csv", ".txt"):
            return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    except (OSError, ValueError) as exc:
        raise ContractError(f"{path}: cannot be read: {exc}") from exc
    raise ContractError(f"{path}: unsupported file type '{path.suffix}' (use .csv or .parquet)")


def load_table(config: DataConfig, contract: TableContract) -> Validated:
    """Read one table, map its columns onto the contract and validate it."""
    path = table_path(config, contract.name)
    raw = read_frame(path)
    mapping = config.columns.get(contract.name, {})  # type: ignore[call-overload]
    unknown = [ours for ours in mapping if ours not in contract.column_names]
    if unknown:
        raise ContractError(
            f"config data.columns.{contract.name}: unknown contract column(s) {unknown}; "
            f"the contract has {contract.column_names}"
        )
    absent = [theirs for theirs in mapping.values() if theirs not in raw.columns]
    if absent:
        raise ContractError(
            f"{path}: column(s) {absent} named in data.columns.{contract.name} are not in the file "
            f"({len(raw)} rows not read). Found columns: {', '.join(map(str, raw.columns))}"
        )
    raw = raw.rename(columns={theirs: ours for ours, theirs in mapping.items()})
    if contract.name == "feedback" and path.suffix != ".parquet":
        raw = _csv_labelled_without_theme(raw)
    return validate_table(raw, contract, source=str(path))


def _csv_labelled_without_theme(raw: pd.DataFrame) -> pd.DataFrame:
    """Read an empty ``themes`` cell of a sentiment-labelled CSV row as ``""`` (no theme).

    CSV cannot tell ``""`` (labelled, no theme) from a missing value: both are an empty cell, which
    reads as missing (unlabelled). Left so, every labelled text without a theme would drop out of
    training. When the file carries theme labels at all, an empty cell on a row that has a
    sentiment label is taken as "no theme".
    """
    if not {"themes", "sentiment"} <= set(raw.columns):
        return raw

    def filled(column: pd.Series) -> pd.Series:
        return column.notna() & (column.astype("string").str.strip() != "")

    themes = raw["themes"]
    no_theme = filled(raw["sentiment"]) & ~filled(themes)
    if not filled(themes).any() or not no_theme.any():
        return raw
    return raw.assign(themes=themes.where(~no_theme, ""))


def load_world(config: DataConfig, write_quarantine: bool = True) -> LoadedWorld:
    """Load and validate the four tables; quarantine unusable rows.

    Rows of events, tickets and feedback whose ``customer_id`` is not a valid customer are
    rejected too ("unknown customer"), so that every input row is either used or reported.
    """
    reports = {name: load_table(config, CONTRACTS[name]) for name in TABLE_NAMES}
    known = set(reports["customers"].valid["customer_id"])
    for name in ("events", "tickets", "feedback"):
        reports[name] = _reject_unknown_customers(reports[name], known)
    for report in reports.values():
        log = logger.warning if len(report.rejected) else logger.info
        log("%s", report.summary())
    loaded = LoadedWorld(
        world=World(**{name: reports[name].valid for name in TABLE_NAMES}), reports=reports
    )
    if write_quarantine:
        qdir = config.quarantine_dir or config.path / "quarantine"
        for name, report in reports.items():
            path = qdir / f"{name}.csv"
            if len(report.rejected):
                atomic_write(path, lambda p, r=report: r.rejected.to_csv(p, index=False))
            else:
                path.unlink(missing_ok=True)  # a file from an earlier load would describe old data
        if loaded.n_rejected:
            logger.warning("%d rejected rows written to %s", loaded.n_rejected, qdir)
    return loaded


def _reject_unknown_customers(report: Validated, known: set[str]) -> Validated:
    unknown = ~report.valid["customer_id"].isin(known)
    if not unknown.any():
        return report
    bad = report.valid.loc[unknown].copy()
    bad.insert(0, "reason", "column 'customer_id': unknown customer")
    rows = report.valid_rows
    bad.insert(0, "source_row", rows[unknown.to_numpy()] if rows is not None else pd.NA)
    rejected = pd.concat([report.rejected, bad], ignore_index=True) if len(report.rejected) else bad
    return Validated(
        table=report.table,
        source=report.source,
        valid=report.valid.loc[~unknown].reset_index(drop=True),
        rejected=rejected.sort_values("source_row", kind="stable").reset_index(drop=True),
        valid_rows=rows[~unknown.to_numpy()] if rows is not None else None,
    )


def write_world(world: World, directory: Path, file_format: str = "parquet") -> dict[str, Path]:
    """Write the four tables as ``<table>.<format>`` in ``directory`` (atomically, each)."""
    if file_format not in ("parquet", "csv"):
        raise ValueError(f"file_format must be 'parquet' or 'csv', not {file_format!r}")
    paths = {}
    for name, frame in world.tables().items():
        path = directory / f"{name}.{file_format}"
        atomic_write(path, _frame_writer(frame, file_format))
        paths[name] = path
    return paths


def write_frame(frame: pd.DataFrame, path: Path) -> Path:
    """Write a DataFrame as Parquet or CSV (by suffix), atomically."""
    atomic_write(path, _frame_writer(frame, path.suffix.lstrip(".")))
    return path


def write_json(payload: dict[str, Any], path: Path) -> Path:
    atomic_write(path, lambda p: p.write_text(json.dumps(payload, indent=2, default=str) + "\n"))
    return path


def _frame_writer(frame: pd.DataFrame, file_format: str) -> Callable[[Path], None]:
    if file_format == "parquet":
        return lambda p: frame.to_parquet(p, index=False)
    if file_format == "csv":
        return lambda p: frame.to_csv(p, index=False)
    raise ValueError(f"unsupported output format {file_format!r}")


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with _temporary_sibling(path) as tmp:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)


def _umask() -> int:
    # mkstemp creates files readable by the owner only; outputs should get the usual permissions.
    current = os.umask(0)
    os.umask(current)
    return current


@contextmanager
def _temporary_sibling(path: Path) -> Iterator[Path]:
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


def write_figures(figures: Mapping[str, Any], directory: Path) -> dict[str, Path]:
    """Save matplotlib figures as ``<name>.png`` in ``directory`` (atomically, each)."""
    paths = {}
    for name, figure in figures.items():
        path = directory / f"{name}.png"
        atomic_write(path, lambda p, f=figure: f.savefig(p, format="png", dpi=110, bbox_inches="tight"))
        paths[name] = path
    return paths
