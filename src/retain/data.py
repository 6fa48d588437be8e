"""Reading and writing tables: the only module that touches data files.

Input tables are CSV or Parquet files in one directory, named after the table
(``customers.parquet`` or ``customers.csv``...) unless the config names the file. Columns are
renamed from the user's names to the contract's, validated, and split into usable and rejected
rows; rejected rows are written to a quarantine directory with the reason for each, and every
count is logged, so that each input row is either used or reported.

Outputs are written atomically: to a temporary file in the target directory, then renamed over
the target, so a crash leaves the previous output intact; outputs made of several files are
published as one run (:func:`publish_run`: a run directory, then one symlink switched). Every file
is created private (0600, 0640 with ``$RETAIN_GROUP_READABLE=1``): it may hold customer data.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from retain.config import DataConfig, ReadOptions, TextDataConfig, relative_path_hint
from retain.contracts import (
    CONTRACTS,
    MAX_MAGNITUDE,
    SENTIMENTS,
    THEME_SEPARATOR,
    TIME_COLUMNS,
    ContractError,
    TableContract,
    Validated,
    World,
    ambiguous_dates,
    is_null_like_id,
    near_misses,
    normalise_ids,
    parse_timestamps,
    stripped_strings,
    validate_table,
)

logger = logging.getLogger(__name__)

TABLE_NAMES = ("customers", "events", "tickets", "feedback")
OPTIONAL_TABLES = ("events", "tickets", "feedback")
_SUFFIXES = (".parquet", ".csv")
_TEXT_SUFFIXES = (".csv", ".txt", ".tsv", ".dat")


@dataclass(frozen=True)
class LoadedWorld:
    """A validated world and, per table present, what was used and what was rejected."""

    world: World
    reports: dict[str, Validated]
    notes: tuple[str, ...] = ()
    #: What a person should know before trusting the run: rows quarantined or amended, empty
    #: tables. The run summary repeats them; ``data.warnings_fatal`` makes them errors.
    warnings: tuple[str, ...] = ()

    @property
    def n_rejected(self) -> int:
        return sum(len(r.rejected) for r in self.reports.values())

    @property
    def tables_present(self) -> list[str]:
        return list(self.world.tables())

    def summary(self) -> str:
        lines = [*(r.summary() for r in self.reports.values()), *self.notes]
        return "\n".join(lines + [w for w in self.warnings if w not in lines])


def table_path(config: DataConfig, table: str, required: bool = True) -> Path | None:
    """The file that holds ``table``: the configured name, else ``<table>.parquet`` or ``.csv``.

    A table named in ``data.files`` must exist. Otherwise a missing optional table gives ``None``
    (its features are left out; the caller says so); a missing required one is an error.
    """
    if table in config.files:
        path = config.path / config.files[table]  # type: ignore[index]
        if not path.exists():
            hint = " ($RETAIN_DATA_DIR is not set)" if "RETAIN_DATA_DIR" not in os.environ and "shared/data" in str(path) else ""
            raise ContractError(
                f"{path}: file not found (named in data.files.{table}){hint or relative_path_hint(path)}"
            )
        return path
    for suffix in _SUFFIXES:
        candidate = config.path / f"{table}{suffix}"
        if candidate.exists():
            return candidate
    if not required:
        return None
    if not config.path.exists():
        raise ContractError(
            f"{config.path}: data directory not found (data.path){relative_path_hint(config.path)}"
        )
    raise ContractError(
        f"{config.path}: no file for table '{table}' (looked for {table}.parquet and {table}.csv; "
        "name it in the config's data.files section)"
    )


def read_frame(path: Path, options: ReadOptions | None = None) -> pd.DataFrame:
    """Read a CSV/text or Parquet file as it is (text cells as strings; typing is the contract's job).

    ``.txt``, ``.tsv`` and ``.dat`` files are read as whitespace- or tab-separated unless
    ``options.sep`` says otherwise.
    """
    options = options or ReadOptions()
    if not path.exists():
        hint = (
            " (the data directory comes from $RETAIN_DATA_DIR, default ../shared/data: set it to "
            "where the public data sets are)"
            if "RETAIN_DATA_DIR" not in os.environ and "shared/data" in str(path)
            else relative_path_hint(path)
        )
        raise ContractError(f"{path}: file not found{hint}")
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        if path.suffix in _TEXT_SUFFIXES:
            sep = options.sep or {".tsv": "\t", ".txt": r"\s+", ".dat": r"\s+"}.get(path.suffix, ",")
            frame = pd.read_csv(
                path,
                sep=sep,
                dtype=str,
                keep_default_na=False,
                na_values=[""],
                encoding=options.encoding,
                engine="python" if len(sep) > 1 else "c",
            )
            frame.columns = [str(c).strip().lstrip("\ufeff") for c in frame.columns]
            return frame
    except UnicodeDecodeError as exc:
        line, offset, sample = _first_undecodable_line(path, options.encoding)
        raise ContractError(
            f"{path}: line {line} (byte {offset} of the file) is not {options.encoding} text: "
            f"{sample!r}; set the file's encoding in the config (data.read.<table>.encoding, or "
            "data.read.encoding for `retain text`), e.g. latin-1 or cp1252"
        ) from exc
    except (OSError, ValueError) as exc:
        raise ContractError(f"{path}: cannot be read: {exc}") from exc
    raise ContractError(f"{path}: unsupported file type '{path.suffix}' (use .csv, .txt or .parquet)")


def _first_undecodable_line(path: Path, encoding: str) -> tuple[int, int, bytes]:
    """The 1-based line (header included), file offset and bytes of the first undecodable line."""
    offset = 0
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                raw.decode(encoding)
            except UnicodeDecodeError as exc:
                return number, offset + exc.start, raw.rstrip(b"\r\n")[:80]
            offset += len(raw)
    return 0, offset, b""


def export_time(config: DataConfig) -> pd.Timestamp:
    """``data.export_time`` as naive UTC, or now: no row may be dated after it."""
    if config.export_time is None:
        return pd.Timestamp.now(tz="UTC").tz_localize(None)
    stamp = pd.Timestamp(config.export_time)
    return stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo is not None else stamp


def load_table(
    config: DataConfig,
    contract: TableContract,
    path: Path | None = None,
    exported: pd.Timestamp | None = None,
) -> Validated:
    """Read one table, map its columns onto the contract and validate it.

    ``exported``: rows dated after it are rejected (default :func:`export_time` of the config).
    A column that is not the contract's but looks like an optional column the file lacks (``cast``
    for ``csat``) is an error, unless ``data.extra_columns`` lists it.
    """
    path = path or table_path(config, contract.name)
    assert path is not None
    options = config.read.get(contract.name)  # type: ignore[call-overload]
    raw = read_frame(path, options)
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
    for column, value in config.constants.get(contract.name, {}).items():  # type: ignore[call-overload]
        if column not in contract.column_names:
            raise ContractError(
                f"config data.constants.{contract.name}: unknown contract column {column!r}; "
                f"the contract has {contract.column_names}"
            )
        if column in raw.columns:
            raise ContractError(
                f"{path}: column {column!r} is in the file and also set in "
                f"data.constants.{contract.name}; remove one"
            )
        raw[column] = value
    if contract.name == "feedback" and path.suffix != ".parquet":
        raw = _csv_labelled_without_theme(raw)
    _refuse_near_misses(raw, contract, path, config.extra_columns.get(contract.name, ()))  # type: ignore[call-overload]
    if contract.name == "customers":
        extra = [c for c in raw.columns if c not in contract.column_names]
        raw = infer_types(raw, extra)
    ranges = {"rating": config.rating_scale} if contract.name == "feedback" else None
    report = validate_table(
        raw, contract, source=str(path), ranges=ranges,
        date_format=options.date_format if options else None,
        export_time=exported if exported is not None else export_time(config),
    )
    if contract.name == "feedback":
        low, high = config.rating_scale
        report.valid["rating"] = (report.valid["rating"] - low) / (high - low)
    return report


def _refuse_near_misses(
    raw: pd.DataFrame, contract: TableContract, path: Path, allowed: Sequence[str]
) -> None:
    """A column that looks like an optional contract column the file lacks is an error.

    Left alone, ``cast`` (for ``csat``) would be an unused extra column and the satisfaction
    scores silently missing.
    """
    lacking = [c.name for c in contract.columns if not c.required and c.name not in raw.columns]
    extra = [str(c) for c in raw.columns if c not in contract.column_names and c not in allowed]
    found = near_misses(lacking, extra)
    if found:
        theirs, ours = next(iter(found.items()))
        listed = ", ".join(f"{t!r} looks like {o!r}" for t, o in found.items())
        raise ContractError(
            f"{path}: column(s) not in the contract of table '{contract.name}' look like optional "
            f"contract column(s) the file lacks: {listed}. Rename the column, map it "
            f"(data.columns.{contract.name}.{ours}: {theirs}), or list it in "
            f"data.extra_columns.{contract.name} to keep it out of the contract"
        )


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


def load_world(
    config: DataConfig, write_quarantine: bool = True, until: pd.Timestamp | None = None
) -> LoadedWorld:
    """Load and validate ``customers`` and whichever of events, tickets, feedback exist.

    Rows of events, tickets and feedback whose ``customer_id`` is not a valid customer are
    rejected too ("unknown customer"), so that every input row is either used or reported.
    A table with no file is absent (``None`` in the world) and the notes say so. With
    ``data.customers_from_events``, customers are derived from the events (one per id, signed
    up at their first event). With ``until``, rows dated after it are not read at all (as if the
    data ended then); the notes count them.

    Rows dated after the export time (``data.export_time``, default now), and rows of events,
    tickets and feedback dated before their customer's signup day, are rejected too.

    Raises
    ------
    ContractError
        When a table cannot be used at all; when more than ``data.max_quarantine_share`` of a
        table's rows are rejected (after the quarantine files are written, so they can be
        read); with ``data.warnings_fatal``, when there is any warning.
    """
    if config.layout != "tables":
        raise ContractError(f"data.layout is {config.layout!r}: use load_flat for a flat table")
    reports: dict[str, Validated] = {}
    notes: list[str] = []
    exported = export_time(config)
    for name in OPTIONAL_TABLES:
        path = table_path(config, name, required=False)
        if path is None:
            notes.append(f"no {name} table in {config.path}: its features are left out")
            continue
        reports[name] = load_table(config, CONTRACTS[name], path, exported)
    if until is not None:
        notes += _drop_after(reports, until)
    customers_path = table_path(config, "customers", required=not config.customers_from_events)
    if customers_path is not None:
        reports = {"customers": load_table(config, CONTRACTS["customers"], customers_path, exported), **reports}
        if until is not None:
            customers = {"customers": reports["customers"]}
            notes += _drop_after(customers, until)
            reports["customers"] = customers["customers"]
    else:
        if "events" not in reports:
            raise ContractError(
                f"{config.path}: data.customers_from_events is set but there is no events table"
            )
        reports = {"customers": _customers_from_events(reports["events"]), **reports}
        notes.append(
            f"customers derived from {reports['events'].source}: "
            f"{len(reports['customers'].valid)} customers, signed up at their first event"
        )
    customers = reports["customers"].valid
    # An object index as the ids are: looking up ids of another dtype in it converts nothing.
    ids = pd.Index(customers["customer_id"].to_numpy(), dtype=object)
    signups = pd.Series(customers["signup_at"].to_numpy(), index=ids)
    for name in OPTIONAL_TABLES:
        if name in reports:
            reports[name] = _reject_by_customer(reports[name], signups)
    warnings = table_warnings(reports)
    for note in notes:
        logger.info("%s", note)
    loaded = LoadedWorld(
        world=World(**{name: report.valid for name, report in reports.items()}),
        reports=reports,
        notes=tuple(notes),
        warnings=tuple(warnings),
    )
    qdir = config.quarantine_dir or config.path / "quarantine"
    if write_quarantine:
        write_quarantine_files(reports, qdir)
    check_quarantine_share(reports, config.max_quarantine_share, qdir if write_quarantine else None)
    if config.warnings_fatal and warnings:
        raise ContractError(
            "data warnings (data.warnings_fatal is set):\n  " + "\n  ".join(warnings)
        )
    return loaded


def table_warnings(reports: Mapping[str, Validated]) -> list[str]:
    """Log each table's validation summary; return the warnings: rows rejected or amended, empty files."""
    warnings = []
    for report in reports.values():
        log = logger.warning if len(report.rejected) or len(report.amended) else logger.info
        log("%s", report.summary())
        if len(report.rejected) or len(report.amended):
            warnings.append(report.summary())
        elif report.n_input == 0:
            warnings.append(
                f"{report.source}: the file has no rows (a header only): nothing of table "
                f"'{report.table}' is known for any customer"
            )
            logger.warning("%s", warnings[-1])
    return warnings


def check_quarantine_share(
    reports: Mapping[str, Validated], max_share: float, qdir: Path | None = None
) -> None:
    """Stop when more than ``max_share`` of a table's rows were rejected.

    Raises
    ------
    ContractError
        Naming each such table, its main reasons with counts and example rows, and the
        quarantine file to read.
    """
    problems = []
    for name, report in reports.items():
        n, bad = report.n_input, len(report.rejected)
        if n == 0 or bad / n <= max_share:
            continue
        counts = report.rejected["reason"].value_counts()
        reasons = "; ".join(
            f"{count} rows {reason} (e.g. {_rows(report.rejected.loc[report.rejected['reason'] == reason, 'source_row'].to_numpy(), 3)})"
            for reason, count in counts.head(3).items()
        )
        more = f"; {len(counts) - 3} more reasons" if len(counts) > 3 else ""
        where = f"; every row and its reason: {qdir / f'{name}.csv'}" if qdir is not None else ""
        problems.append(
            f"{report.source}: {bad} of {n} rows ({bad / n:.1%}) quarantined, more than "
            f"data.max_quarantine_share ({max_share:.0%}): {reasons}{more}{where}"
        )
    if problems:
        raise ContractError("\n".join(problems))


def write_quarantine_files(reports: Mapping[str, Validated], qdir: Path) -> None:
    """One CSV per table with its rejected and amended rows; stale files removed."""
    n = 0
    for name in TABLE_NAMES:
        path = qdir / f"{name}.csv"
        report = reports.get(name)
        rows = report.quarantine() if report is not None else pd.DataFrame()
        if len(rows):
            atomic_write(path, lambda p, r=rows: r.to_csv(p, index=False))
            n += len(rows)
        elif path.exists():
            path.unlink()  # a file from an earlier load would describe old data
    if n:
        logger.warning("%d quarantined rows written to %s", n, qdir)


def _drop_after(reports: dict[str, Validated], until: pd.Timestamp) -> list[str]:
    """Remove rows dated after ``until`` (as if the data ended then); later stamps are masked."""
    notes = []
    for name, report in reports.items():
        stamp = report.valid[TIME_COLUMNS[name]]
        later = (stamp > until).to_numpy()
        valid = report.valid.loc[~later].reset_index(drop=True)
        if name == "tickets":
            # A response or resolution after `until` had not happened yet.
            for column in ("first_response_at", "resolved_at"):
                valid[column] = valid[column].where(valid[column] <= until)
        if name == "customers" and "churned_at" in valid.columns:
            valid["churned_at"] = valid["churned_at"].where(valid["churned_at"] <= until)
        rows = report.valid_rows[~later] if report.valid_rows is not None else None
        reports[name] = Validated(
            table=report.table, source=report.source, valid=valid, rejected=report.rejected,
            valid_rows=rows, amended=report.amended,
        )
        if later.any():
            notes.append(f"{report.source}: {int(later.sum())} rows dated after {until.date()} not read (--until)")
    return notes


def _customers_from_events(events: Validated) -> Validated:
    first = events.valid.groupby("customer_id", sort=True, observed=True)["occurred_at"].min()
    customers = pd.DataFrame({"customer_id": first.index.astype(object), "signup_at": first.to_numpy()})
    for column in CONTRACTS["customers"].column_names:
        if column not in customers.columns:
            customers[column] = pd.Series(None, index=customers.index, dtype=object)
    customers["churned_at"] = pd.Series(pd.NaT, index=customers.index, dtype="datetime64[ns]")
    customers["monthly_value"] = customers["monthly_value"].astype("float64")
    return Validated(table="customers", source=f"{events.source} (derived)", valid=customers)


def _reject_by_customer(report: Validated, signups: pd.Series) -> Validated:
    """Reject rows of customers not in the customers table, or dated before their signup day."""
    customer = report.valid["customer_id"]
    position = _positions(customer, signups.index)
    unknown = position < 0
    stamp_column = TIME_COLUMNS[report.table]
    # Signups are often a date alone: a row on the signup day itself is fine. (Each customer's
    # day is found once; position -1, an unknown customer, picks the NaT appended.)
    days = pd.Series(signups.to_numpy()).astype("datetime64[ns]").dt.normalize().to_numpy()
    signup_day = np.append(days, np.datetime64("NaT", "ns"))[position]
    stamps = report.valid[stamp_column].to_numpy(dtype="datetime64[ns]")
    early = ~unknown & ~np.isnat(signup_day) & (stamps < signup_day)
    if not (unknown.any() or early.any()):
        return report
    reason = pd.Series("column 'customer_id': unknown customer", index=report.valid.index)
    reason[early] = f"column '{stamp_column}': before the customer's signup_at"
    unknown = pd.Series(unknown, index=report.valid.index)
    unknown = unknown | early
    bad = report.valid.loc[unknown].copy()
    # Quarantined rows hold plain values, as read, whatever dtype the table keeps (category ids).
    bad = bad.astype({c: object for c in bad.columns if isinstance(bad[c].dtype, pd.CategoricalDtype)})
    bad.insert(0, "reason", reason[unknown])
    rows = report.valid_rows
    bad.insert(0, "source_row", rows[unknown.to_numpy()] if rows is not None else pd.NA)
    rejected = pd.concat([report.rejected, bad], ignore_index=True) if len(report.rejected) else bad
    return Validated(
        table=report.table,
        source=report.source,
        valid=report.valid.loc[~unknown].reset_index(drop=True),
        rejected=rejected.sort_values("source_row", kind="stable").reset_index(drop=True),
        valid_rows=rows[~unknown.to_numpy()] if rows is not None else None,
        amended=_amended_still_used(report, rows[unknown.to_numpy()] if rows is not None else None),
    )


def _positions(ids: pd.Series, index: pd.Index) -> np.ndarray:
    """Position of each row's id in ``index`` (-1 where it is not there).

    Each distinct id is looked up once (the codes of a ``category`` column, else factorised), not
    each of millions of rows.
    """
    if isinstance(ids.dtype, pd.CategoricalDtype):
        codes, distinct = ids.cat.codes.to_numpy(), ids.cat.categories
    else:
        codes, distinct = pd.factorize(ids)
    return np.append(index.get_indexer(distinct), -1)[codes]  # code -1 (missing) picks the -1


def _amended_still_used(report: Validated, now_rejected: Any) -> pd.DataFrame:
    """Amended rows minus those rejected since (their rejection says it all)."""
    if report.amended.empty or now_rejected is None:
        return report.amended
    return report.amended.loc[~report.amended["source_row"].isin(now_rejected)].reset_index(drop=True)


def write_world(world: World, directory: Path, file_format: str = "parquet") -> dict[str, Path]:
    """Write the four tables as ``<table>.<format>`` in ``directory`` (atomically, each)."""
    if file_format not in ("parquet", "csv"):
        raise ValueError(f"file_format must be 'parquet' or 'csv', not {file_format!r}")
    paths = {}
    for name, frame in world.tables().items():
        path = directory / f"{name}.{file_format}"
        atomic_write(path, frame_writer(frame, file_format))
        paths[name] = path
    return paths


def read_contacts(path: Path) -> pd.DataFrame:
    """The outreach contact log: ``customer_id`` (string) and ``contacted_at`` (timestamp), one row a contact.

    Other columns (the action, the agent) are kept. Rows without an id or a readable date are an
    error naming how many, since a silently dropped contact would let a customer be called twice.
    """
    frame = read_frame(path)
    missing = [c for c in ("customer_id", "contacted_at") if c not in frame.columns]
    if missing:
        raise ContractError(f"{path}: the outreach history needs column(s) {missing}; it has {list(frame.columns)}")
    frame = frame.copy()
    frame["customer_id"] = stripped_strings(frame["customer_id"])
    when = pd.to_datetime(frame["contacted_at"], errors="coerce", utc=True, format="mixed").dt.tz_localize(None)
    bad = frame["customer_id"].isna() | when.isna()
    if bad.any():
        raise ContractError(
            f"{path}: {int(bad.sum())} row(s) of the outreach history have no customer_id or no "
            f"readable contacted_at (first at row {int(np.flatnonzero(bad.to_numpy())[0]) + 1})"
        )
    frame["contacted_at"] = when.astype("datetime64[ns]")
    return frame


def dated_files(directory: Path, prefix: str, suffix: str = ".parquet") -> dict[pd.Timestamp, Path]:
    """The files ``<prefix><YYYY-MM-DD><suffix>`` in ``directory`` by date, oldest first (none: empty)."""
    if not directory.is_dir():
        return {}
    found = {}
    for path in directory.glob(f"{prefix}*{suffix}"):
        stamp = path.name.removeprefix(prefix).removesuffix(suffix)
        try:
            found[pd.Timestamp(stamp)] = path
        except ValueError:
            logger.warning("%s: not named %s<YYYY-MM-DD>%s; ignored", path, prefix, suffix)
    return dict(sorted(found.items()))


def write_frame(frame: pd.DataFrame, path: Path) -> Path:
    """Write a DataFrame as Parquet or CSV (by suffix), atomically."""
    atomic_write(path, frame_writer(frame, path.suffix.lstrip(".")))
    return path


def write_json(payload: dict[str, Any], path: Path) -> Path:
    """Write ``payload`` as JSON atomically (see :func:`dump_json`)."""
    atomic_write(path, lambda p: dump_json(payload, p))
    return path


def dump_json(payload: dict[str, Any], path: Path) -> None:
    """Write ``payload`` as indented JSON (dates and paths as text) to ``path``.

    JSON has no NaN or Infinity (Python's ``json`` would write them, and other readers then
    refuse the file), so a non-finite number is written as ``null`` and ``allow_nan=False``
    catches any left.
    """
    text = json.dumps(json_safe(payload), indent=2, default=str, allow_nan=False)
    path.write_text(text + "\n")


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float (NaN, inf, also numpy's) replaced by ``None``."""
    if isinstance(value, Mapping):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; empty when the file is not there (e.g. no scoring run yet)."""
    if not path.exists():
        return {}
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise OutputError(f"{path}: cannot be read as JSON ({exc})") from exc
    return loaded if isinstance(loaded, dict) else {}


def write_text_file(text: str, path: Path) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically, e.g. a taxonomy from theme discovery."""
    atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))
    return path


def frame_writer(frame: pd.DataFrame, file_format: str) -> Callable[[Path], None]:
    """A function writing ``frame`` as ``parquet`` or ``csv`` to the path it is given."""
    if file_format == "parquet":
        return lambda p: frame.to_parquet(p, index=False)
    if file_format == "csv":
        return lambda p: write_csv(frame, p)
    raise ValueError(f"unsupported output format {file_format!r}")


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    """``frame`` as CSV (no index) with Arrow's multi-threaded writer: a 700,000-row list in about
    a second instead of ten.

    Text values are quoted; dates and booleans are written as pandas writes them
    (``2026-01-01``, ``True``), missing values as empty fields, so ``pd.read_csv`` reads back
    what ``DataFrame.to_csv`` would give.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    columns: dict[str, Any] = {}
    for name, column in frame.items():
        if pd.api.types.is_datetime64_any_dtype(column.dtype) or pd.api.types.is_bool_dtype(column.dtype):
            # Few distinct values: format each once, as pandas would, and spread them.
            codes, distinct = pd.factorize(column)
            if pd.api.types.is_bool_dtype(column.dtype):
                texts = np.array([str(bool(v)) for v in distinct], dtype=object)
            else:
                texts = np.asarray(pd.Index(distinct).astype(str), dtype=object)
            texts = np.append(texts, None)  # code -1 (missing) picks None
            columns[str(name)] = texts[codes]
        else:
            columns[str(name)] = column.to_numpy()
    try:
        table = pa.Table.from_pandas(pd.DataFrame(columns, index=None), preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # a column of mixed Python objects: pandas writes it
        frame.to_csv(path, index=False)
        return
    pacsv.write_csv(table, str(path), pacsv.WriteOptions(quoting_style="needed"))


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it over ``path``.

    The file is created private (:func:`private_file_mode`). Temporary files left beside
    ``path`` by a process that died (killed between writing and renaming) are removed first.
    """
    directory = make_output_dir(path.parent)
    sweep_temporaries(directory, prefix=f".{path.name}.")
    with _temporary_sibling(path) as tmp:
        write(tmp)
        _seal(tmp)
        os.replace(tmp, path)


class OutputError(OSError):
    """An output cannot be written where the config says; the message names the path and the fix."""


#: Set to 1 to create output files group-readable (0640) instead of owner-only (0600).
GROUP_READABLE_ENV = "RETAIN_GROUP_READABLE"


def private_file_mode() -> int:
    """The mode of every file retain writes: 0600, or 0640 with ``$RETAIN_GROUP_READABLE=1``.

    Outputs, quarantine files (raw feedback text), caches and reports hold customer data, so they
    are not readable by other users whatever the umask.
    """
    group = os.environ.get(GROUP_READABLE_ENV, "").strip().lower() in ("1", "true", "yes")
    return 0o640 if group else 0o600


def private_dir_mode() -> int:
    """The mode of a directory retain creates to hold private files: 0700, or 0750 for the group."""
    return 0o750 if private_file_mode() & 0o040 else 0o700


def make_output_dir(directory: Path) -> Path:
    """Create ``directory`` (and parents) for outputs, or raise :class:`OutputError` saying why not."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError(f"{directory}: cannot create the output directory, a file has that name") from None
    except NotADirectoryError:
        blocker = next((p for p in directory.parents if p.exists() and not p.is_dir()), directory)
        raise OutputError(
            f"{directory}: cannot create the output directory, {blocker} is a file; "
            "choose another path in the config"
        ) from None
    except OSError as exc:
        raise OutputError(f"{directory}: cannot create the output directory: {exc.strerror or exc}") from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise OutputError(f"{directory}: the output directory is not writable by this user")
    return directory


def _seal(path: Path) -> None:
    """Private mode, contents on disk: a file is complete before anything points at it."""
    os.chmod(path, private_file_mode())
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


@contextmanager
def _temporary_sibling(path: Path) -> Iterator[Path]:
    # The pid in the name lets a later run tell a dead writer's leftovers from a live one's.
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.pid{os.getpid()}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


_WRITER_PID = re.compile(r"\.pid(\d+)\.")


def sweep_temporaries(directory: Path, prefix: str = ".") -> list[Path]:
    """Remove ``<prefix>*.pid<pid>.*.tmp`` files and directories in ``directory`` whose writer died.

    A temporary whose process is still running (another retain writing the same output) is left.
    """
    removed = []
    for candidate in directory.glob(f"{prefix}*.tmp"):
        pid = _writer_pid(candidate.name)
        if pid is None or _alive(pid):
            continue
        if candidate.is_dir() and not candidate.is_symlink():
            shutil.rmtree(candidate, ignore_errors=True)
        else:
            candidate.unlink(missing_ok=True)
        removed.append(candidate)
    if removed:
        logger.info("removed %d temporary file(s) left by an interrupted run in %s", len(removed), directory)
    return removed


def _writer_pid(name: str) -> int | None:
    found = _WRITER_PID.search(name)
    return int(found.group(1)) if found else None


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


# --------------------------------------------------------------------------------------------
# Outputs published as one unit: a run directory, then one pointer switched atomically

LATEST = "latest"
RUNS = "runs"


@dataclass(frozen=True)
class PublishedRun:
    """Where a published run's files are: its own directory and the stable ``latest`` paths."""

    run_dir: Path
    latest: Path
    files: dict[str, Path]


def publish_run(
    output_dir: Path,
    writers: Mapping[str, Callable[[Path], None]],
    keep_runs: int = 5,
    unit: str = "",
) -> PublishedRun:
    """Write files into a new run directory, then switch ``output_dir/latest`` to it at once.

    A reader of ``output_dir/latest/<file>`` sees the previous run or this one, never a mix: the
    files are written and flushed in ``runs/.<id>.pid<pid>.tmp/``, the directory is renamed to
    ``runs/<id>/``, and only then the ``latest`` symlink is replaced (``os.replace``). A reader who
    needs several files of one run resolves ``latest`` once (``os.path.realpath``) and reads them
    from there. ``output_dir/<file>`` links to ``latest/<file>`` for readers of the old layout.
    Leftovers of a killed run are removed at the next start; the newest ``keep_runs`` runs stay.

    Parameters
    ----------
    output_dir
        The configured output directory.
    writers
        File name -> a function writing that file at the path it is given.
    keep_runs
        How many published runs to keep (the one ``latest`` points at is always kept).
    unit
        A name for outputs that share a directory with others (``retain text score`` writing
        ``scores.csv``): its runs go to ``<unit>.runs/`` and the pointer is ``<unit>.latest``.

    Raises
    ------
    OutputError
        The directory cannot be created or written (a file in the way, permissions, disk full).
    """
    runs_name, latest_name = _unit_names(unit)
    make_output_dir(output_dir)
    runs = make_output_dir(output_dir / runs_name)
    with exclusive_lock(output_dir / f".{unit + '.' if unit else ''}publish.lock"):
        sweep_temporaries(runs)
        sweep_temporaries(output_dir)
        run_id = _new_run_id(runs)
        staging = runs / f".{run_id}.pid{os.getpid()}.tmp"
        try:
            staging.mkdir()
            for name, write in writers.items():
                write(staging / name)
                _seal(staging / name)
            _fsync_dir(staging)
            run_dir = runs / run_id
            os.rename(staging, run_dir)
            _fsync_dir(runs)
            _point(output_dir / latest_name, Path(runs_name) / run_id)
            for name in writers:
                link = output_dir / name
                if not (link.is_symlink() and os.readlink(link) == str(Path(latest_name) / name)):
                    _point(link, Path(latest_name) / name)
            _fsync_dir(output_dir)
        except OSError as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise OutputError(f"{output_dir}: the outputs cannot be written: {exc.strerror or exc}") from exc
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        _prune_runs(runs, keep=max(keep_runs, 1), current=run_id)
    latest = output_dir / latest_name
    return PublishedRun(run_dir=run_dir, latest=latest, files={name: latest / name for name in writers})


def latest_run(output_dir: Path, unit: str = "") -> Path | None:
    """The run directory ``output_dir/latest`` points at (resolved once), or None before any run."""
    link = output_dir / _unit_names(unit)[1]
    return Path(os.path.realpath(link)) if link.is_symlink() else None


def _unit_names(unit: str) -> tuple[str, str]:
    return (f"{unit}.{RUNS}", f"{unit}.{LATEST}") if unit else (RUNS, LATEST)


def _new_run_id(runs: Path) -> str:
    from datetime import datetime

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    run_id, n = stamp, 1
    while (runs / run_id).exists():
        n += 1
        run_id = f"{stamp}-{n}"
    return run_id


def _point(link: Path, target: Path) -> None:
    """Make ``link`` a symlink to ``target``, replacing whatever is there in one rename."""
    tmp = link.parent / f".{link.name}.pid{os.getpid()}.link.tmp"
    tmp.unlink(missing_ok=True)
    os.symlink(target, tmp)
    os.replace(tmp, link)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _prune_runs(runs: Path, keep: int, current: str) -> None:
    published = sorted(p for p in runs.iterdir() if p.is_dir() and not p.name.startswith("."))
    for old in published[:-keep]:
        if old.name != current:
            shutil.rmtree(old, ignore_errors=True)


@contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created private) while the block runs."""
    import fcntl

    fd = os.open(path, os.O_RDWR | os.O_CREAT, private_file_mode())
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def write_figures(figures: Mapping[str, Any], directory: Path) -> dict[str, Path]:
    """Save matplotlib figures as ``<name>.png`` in ``directory`` (atomically, each)."""
    paths = {}
    for name, figure in figures.items():
        path = directory / f"{name}.png"
        atomic_write(path, lambda p, f=figure: f.savefig(p, format="png", dpi=110, bbox_inches="tight"))
        paths[name] = path
    return paths


_DATE_LIKE = r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2})?)?"


def infer_types(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Type extra text columns: numbers where every non-blank value is one, ISO dates likewise.

    Blank cells (empty or whitespace only, like IBM Telco's ``TotalCharges``) are missing.
    Anything else stays text and becomes a category feature.
    """
    out = frame.copy()
    for column in columns:
        values = out[column]
        if not (pd.api.types.is_object_dtype(values.dtype) or pd.api.types.is_string_dtype(values.dtype)):
            continue
        text = values.astype("string").str.strip()
        text = text.where(text != "")
        present = text.notna()
        if not present.any():
            out[column] = np.nan
            continue
        numbers = pd.to_numeric(text, errors="coerce")
        if numbers[present].notna().all():
            out[column] = numbers.astype("float64")
            continue
        if text[present].str.match(_DATE_LIKE).all():
            stamps = parse_timestamps(text)
            if stamps[present].notna().all():
                out[column] = stamps
                continue
        out[column] = text.astype(object).where(present, None)
    return out


def _like(test: pd.DataFrame, train: pd.DataFrame, columns: list[str], source: str) -> pd.DataFrame:
    """The test file's feature columns in the training file's types."""
    test = test.copy()
    for column in columns:
        want, have = train[column].dtype, test[column].dtype
        if want == have:
            continue
        if pd.api.types.is_numeric_dtype(want):
            converted = pd.to_numeric(test[column], errors="coerce")
            lost = int((converted.isna() & test[column].notna()).sum())
            if lost:
                logger.warning("%s: column %r: %d value(s) are not numbers as in the training file; read as missing", source, column, lost)
            test[column] = converted.astype("float64")
        elif pd.api.types.is_datetime64_any_dtype(want):
            test[column] = pd.to_datetime(test[column], errors="coerce", format="mixed")
        else:
            test[column] = test[column].astype("string").astype(object).where(test[column].notna(), None)
    return test


def _dates_as_ages(frame: pd.DataFrame, columns: list[str], reference: pd.DataFrame | None = None) -> pd.DataFrame:
    """Date columns as days before the row's snapshot (or before the column's latest date)."""
    dates = [c for c in columns if pd.api.types.is_datetime64_any_dtype(frame[c].dtype)]
    if not dates:
        return frame
    frame = frame.copy()
    for column in dates:
        base = reference if reference is not None else frame
        latest = base[column].max()
        anchor = pd.to_datetime(frame["as_of"]).fillna(latest).astype("datetime64[ns]")
        frame[column] = (anchor - frame[column].astype("datetime64[ns]")).dt.total_seconds() / 86400.0
    return frame


@dataclass(frozen=True)
class FlatTable:
    """A flat, one-row-per-customer table: ids, labels, value and candidate feature columns.

    ``frame`` has ``customer_id``, ``churned`` (1, 0, or NaN where the label is missing),
    ``monthly_value`` (NaN without a value column), ``as_of`` (the snapshot date or NaT), then the
    feature columns (their own names). ``test`` is the same for ``flat.test_file``, if any.
    """

    frame: pd.DataFrame
    feature_columns: list[str]
    report: Validated
    test: pd.DataFrame | None = None
    test_report: Validated | None = None

    def summary(self) -> str:
        lines = [self.report.summary()]
        if self.test_report is not None:
            lines.append(self.test_report.summary())
        return "\n".join(lines)


def load_flat(
    config: DataConfig, write_quarantine: bool = True, attributes: Any = None
) -> FlatTable:
    """Read a flat table (``data.layout: flat``): one row per customer with a churn label.

    Rows with a duplicated id are quarantined; a missing label leaves the row unlabelled (scored,
    not trained on). Every other column that is not the id, label, value, snapshot or in
    ``flat.drop`` is a candidate feature (or only those named in ``attributes``). Date columns
    become days before the row's snapshot date (or before the column's latest date). A test
    file's columns are read as the training file's types; cells that do not convert are missing
    and logged.
    """
    flat = config.flat
    if flat is None or config.layout != "flat":
        raise ContractError("data.layout is not 'flat'")
    frame, report = _read_flat(config, flat.file)
    test = test_report = None
    if flat.test_file is not None:
        test, test_report = _read_flat(config, flat.test_file)
    skip = {"customer_id", "churned", "monthly_value", "as_of"}
    features = [c for c in frame.columns if c not in skip]
    if attributes is not None and not isinstance(attributes, str) and len(attributes):
        unknown = [c for c in attributes if c not in features]
        if unknown:
            raise ContractError(
                f"{config.path / flat.file}: column(s) {unknown} named in features.attributes are not "
                f"candidate features; found {', '.join(features)}"
            )
        features = list(attributes)
    if test is not None:
        absent = [c for c in features if c not in test.columns]
        if absent:
            raise ContractError(
                f"{config.path / flat.test_file}: column(s) {absent} of {flat.file} are missing "
                f"({len(test)} rows not read)"
            )
        test = _like(test, frame, features, str(config.path / flat.test_file))
    if test is not None:
        test = _dates_as_ages(test, features, reference=frame)
    frame = _dates_as_ages(frame, features)
    qdir = config.quarantine_dir or config.path / "quarantine"
    if write_quarantine:
        reports = {"customers": report}
        write_quarantine_files(reports, qdir)
        if test_report is not None and len(test_report.quarantine()):
            rows = test_report.quarantine()
            atomic_write(qdir / "test.csv", lambda p: rows.to_csv(p, index=False))
    check_quarantine_share({"customers": report}, config.max_quarantine_share, qdir if write_quarantine else None)
    if test_report is not None:
        check_quarantine_share({"test": test_report}, config.max_quarantine_share, qdir if write_quarantine else None)
    return FlatTable(frame=frame, feature_columns=features, report=report, test=test, test_report=test_report)


def _read_flat(config: DataConfig, file_name: str) -> tuple[pd.DataFrame, Validated]:
    flat = config.flat
    assert flat is not None
    path = config.path / file_name
    raw = read_frame(path, config.read.get("customers"))
    named = {
        "flat.label_column": flat.label_column,
        "flat.id_column": flat.id_column,
        "flat.value_column": flat.value_column,
        "flat.snapshot_column": flat.snapshot_column,
    }
    for key, column in named.items():
        if column is not None and column not in raw.columns:
            raise ContractError(
                f"{path}: column {column!r} named in data.{key} is not in the file "
                f"({len(raw)} rows not read). Found columns: {', '.join(map(str, raw.columns))}"
            )
    unknown_drop = [c for c in flat.drop if c not in raw.columns]
    if unknown_drop:
        raise ContractError(f"{path}: column(s) {unknown_drop} named in data.flat.drop are not in the file")
    raw = raw.reset_index(drop=True)
    out = pd.DataFrame(index=raw.index)
    if flat.id_column is not None:
        out["customer_id"] = normalise_ids(raw[flat.id_column])
    else:
        out["customer_id"] = [str(i + 1) for i in range(len(raw))]
    label = raw[flat.label_column].astype("string").str.strip().str.lower()
    churned_values = {v.lower() for v in flat.churned_values}
    out["churned"] = np.where(label.isna() | (label == ""), np.nan, label.isin(churned_values).astype(float))
    amended = pd.DataFrame()
    if flat.value_column is not None:
        value = pd.to_numeric(raw[flat.value_column].astype("string").str.strip(), errors="coerce").astype("float64")
        # An infinite or negative value would put its customer at the top of every list.
        wrong = value.notna() & ~(np.isfinite(value) & (value >= 0) & (value <= MAX_MAGNITUDE))
        out["monthly_value"] = value.where(~wrong)
        if wrong.any():
            amended = raw.loc[wrong].assign(
                reason=f"column '{flat.value_column}': not a finite number from 0 to {MAX_MAGNITUDE:g} (set missing)"
            )
            amended.insert(0, "source_row", amended.index + 1)
    else:
        out["monthly_value"] = np.nan
    if flat.snapshot_column is not None:
        options = config.read.get("customers")
        date_format = options.date_format if options else None
        problem = ambiguous_dates(raw[flat.snapshot_column]) if date_format is None else None
        if problem:
            raise ContractError(
                f"{path}: column {flat.snapshot_column!r} (data.flat.snapshot_column) {problem}; "
                "set data.read.customers.date_format, e.g. '%d/%m/%Y' or '%m/%d/%Y'"
            )
        out["as_of"] = parse_timestamps(raw[flat.snapshot_column], date_format)
    else:
        out["as_of"] = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ns]")
    used = {flat.label_column, flat.id_column, flat.snapshot_column, *flat.drop} - {None}
    candidates = [c for c in raw.columns if c not in used]
    typed = infer_types(raw[candidates], candidates)
    for column in candidates:
        out[column] = typed[column]
    reasons = pd.Series(pd.NA, index=raw.index, dtype=object)
    missing_id = out["customer_id"].isna() | (out["customer_id"] == "")
    reasons[missing_id] = f"column '{flat.id_column}': missing id"
    if flat.id_column is not None:
        null_like = is_null_like_id(raw[flat.id_column]) & reasons.isna()
        reasons[null_like] = f"column '{flat.id_column}': a null-like value is not an id"
    duplicated = out["customer_id"].duplicated(keep="first") & reasons.isna()
    reasons[duplicated] = f"column '{flat.id_column}': duplicate id"
    n_labelled = int(out["churned"].notna().sum())
    if n_labelled == 0:
        logger.warning("%s: no row carries a label in %r; nothing to train on", path, flat.label_column)
    ok = reasons.isna().to_numpy()
    rejected = raw.loc[~ok].copy()
    rejected.insert(0, "reason", reasons[~ok].astype(str))
    rejected.insert(0, "source_row", rejected.index + 1)
    valid = out.loc[ok].reset_index(drop=True)
    if len(amended):
        amended = amended.loc[amended.index.isin(raw.index[ok])].reset_index(drop=True)
    report = Validated(
        table="customers", source=str(path), valid=valid, rejected=rejected.reset_index(drop=True),
        valid_rows=np.flatnonzero(ok) + 1, amended=amended,
    )
    log = logger.warning if len(rejected) else logger.info
    log("%s (%d labelled, churn rate %.3f)", report.summary(), n_labelled, float(valid["churned"].mean()))
    return valid, report


# --------------------------------------------------------------------------------------------
# Feedback text on its own (``retain text``)

TEXT_TABLE_COLUMNS = ("id", "text", "sentiment", "themes", "created_at", "source_row")


@dataclass(frozen=True)
class TextTable:
    """One feedback file read for ``retain text``: one row per text, labels where they exist.

    ``frame`` has ``id`` (string), ``text`` (string; a missing text reads as ``""``),
    ``sentiment`` (negative/neutral/positive or None), ``themes`` (theme ids joined by ``|``;
    ``""`` = labelled, no theme; None = not labelled), ``created_at`` (or NaT) and
    ``source_row`` (1-based row of the file, header not counted).
    """

    frame: pd.DataFrame
    source: str
    n_read: int
    n_duplicates: int = 0

    def summary(self) -> str:
        sentiment = int(self.frame["sentiment"].notna().sum())
        themes = int(self.frame["themes"].notna().sum())
        text = (
            f"{self.source}: {len(self.frame)} texts ({sentiment} with a sentiment label, "
            f"{themes} with theme labels)"
        )
        if self.n_duplicates:
            text += f"; {self.n_duplicates} rows with a repeated id left out (first kept)"
        return text


def load_text_table(
    config: TextDataConfig,
    theme_ids: Sequence[str] | None = None,
    path: Path | None = None,
    *,
    labels: bool = True,
) -> TextTable:
    """Read a feedback file for ``retain text``: map its columns, check and normalise labels.

    Parameters
    ----------
    config
        The ``data`` section of a text job: path, read options, column names, label mappings.
    theme_ids
        The taxonomy's theme ids; theme labels must be among them (checked when given).
    path
        Read this file instead of ``config.path`` (``retain text score --input``), with the same
        column names and read options.
    labels
        Read the label columns. ``False`` (scoring): they are ignored and need not exist.

    Returns
    -------
    TextTable

    Raises
    ------
    ContractError
        Naming the file, the column (and the config key that named it) and the rows, when a
        named column is missing, a label value is not understood, a theme id is not in the
        taxonomy or an id is missing.
    """
    path = Path(path or config.path)
    raw = read_frame(path, config.read).reset_index(drop=True)
    columns = config.columns
    named = {"text": columns.text, "id": columns.id}
    if labels:
        # Scoring reads texts only: label and date columns need not exist in a file to score.
        named |= {
            "sentiment": config.columns.sentiment,
            "themes": config.columns.themes,
            "created_at": columns.created_at,
        }
    for key, column in named.items():
        if column is not None and column not in raw.columns:
            raise ContractError(
                f"{path}: column {column!r} named in data.columns.{key} is not in the file "
                f"({len(raw)} rows not read). Found columns: {', '.join(map(str, raw.columns))}"
            )
    rows = np.arange(1, len(raw) + 1)
    out = pd.DataFrame(index=raw.index)
    if config.columns.id is not None:
        ids = normalise_ids(raw[config.columns.id])
        missing = ids.isna() | is_null_like_id(raw[config.columns.id])
        if missing.any():
            raise ContractError(
                f"{path}: column {config.columns.id!r} (data.columns.id) is empty or null-like on "
                f"{int(missing.sum())} rows ({_rows(rows[missing.to_numpy()])}); "
                "every text needs an id"
            )
        out["id"] = ids
    else:
        out["id"] = [str(r) for r in rows]
    out["text"] = raw[config.columns.text].astype("string").fillna("").astype(object)
    sentiment_column = config.columns.sentiment if labels else None
    themes_column = config.columns.themes if labels else None
    out["sentiment"] = (
        _sentiment_labels(raw[sentiment_column], config, path, rows)
        if sentiment_column is not None
        else pd.Series(None, index=raw.index, dtype=object)
    )
    out["themes"] = (
        _theme_labels(raw[themes_column], config, path, rows, theme_ids)
        if themes_column is not None
        else pd.Series(None, index=raw.index, dtype=object)
    )
    if config.columns.created_at is not None and config.columns.created_at in raw.columns:
        stamps = raw[config.columns.created_at]
        problem = ambiguous_dates(stamps) if config.read.date_format is None else None
        if problem:
            raise ContractError(
                f"{path}: column {config.columns.created_at!r} (data.columns.created_at) "
                f"{problem}; set data.read.date_format, e.g. '%d/%m/%Y' or '%m/%d/%Y'"
            )
        out["created_at"] = parse_timestamps(stamps, config.read.date_format)
        # A date that does not parse would silently drop out of `train_until`, letting churn
        # features use a text model that saw later texts: refuse it, like an empty date.
        bad = out["created_at"].isna().to_numpy()
        if labels and bad.any():
            shown = ", ".join(repr(v) for v in stamps[bad].astype(str).unique()[:5])
            raise ContractError(
                f"{path}: column {config.columns.created_at!r} (data.columns.created_at) has "
                f"{int(bad.sum())} rows that are empty or not dates ({_rows(rows[bad])}), e.g. "
                f"{shown}; fix them, set data.read.date_format, or leave created_at out (the "
                "model is then used for churn features only at scoring time)"
            )
    else:
        out["created_at"] = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ns]")
    out["source_row"] = rows
    duplicated = out["id"].duplicated(keep="first").to_numpy()
    if duplicated.any():
        logger.warning(
            "%s: %d rows repeat an earlier id in column %r (%s); the first of each is used",
            path, int(duplicated.sum()), config.columns.id, _rows(rows[duplicated]),
        )
    table = TextTable(
        frame=out.loc[~duplicated].reset_index(drop=True),
        source=str(path),
        n_read=len(raw),
        n_duplicates=int(duplicated.sum()),
    )
    logger.info("%s", table.summary())
    return table


def _rows(rows: np.ndarray, limit: int = 5) -> str:
    shown = ", ".join(str(int(r)) for r in rows[:limit])
    more = f" and {len(rows) - limit} more" if len(rows) > limit else ""
    return f"row{'s' if len(rows) > 1 else ''} {shown}{more}; header not counted"


def _sentiment_labels(
    values: pd.Series, config: TextDataConfig, path: Path, rows: np.ndarray
) -> pd.Series:
    raw = stripped_strings(values)
    mapping = config.sentiment_values
    if mapping:
        known = raw.isin(list(mapping)) | raw.isna()
        labels = raw.map(lambda v: mapping.get(v) if isinstance(v, str) else None)
        where = "data.sentiment_values"
    else:
        lowered = raw.str.lower() if raw.notna().any() else raw
        known = lowered.isin(SENTIMENTS) | raw.isna()
        labels = lowered
        where = "data.sentiment_values (e.g. {'1': positive, '0': negative})"
    if not known.all():
        bad = raw[~known]
        shown = ", ".join(repr(v) for v in list(dict.fromkeys(bad))[:5])
        raise ContractError(
            f"{path}: column {values.name!r} (data.columns.sentiment) holds {shown} on "
            f"{len(bad)} rows ({_rows(rows[(~known).to_numpy()])}), not one of "
            f"{', '.join(SENTIMENTS)}; map the values in {where}"
        )
    return labels.astype(object).where(labels.notna(), None)


def _theme_labels(
    values: pd.Series,
    config: TextDataConfig,
    path: Path,
    rows: np.ndarray,
    theme_ids: Sequence[str] | None,
) -> pd.Series:
    raw = stripped_strings(values)
    mapping = config.theme_values
    out: list[str | None] = []
    unknown: dict[str, list[int]] = {}
    allowed = set(theme_ids) if theme_ids is not None else None
    for row, cell in zip(rows, raw):
        if cell is None:
            out.append("" if config.empty_themes == "no_theme" else None)
            continue
        parts = [p.strip() for p in cell.split(config.theme_separator) if p.strip()]
        ids: list[str] = []
        unlabelled = False
        for part in parts:
            if mapping:
                if part not in mapping:
                    unknown.setdefault(part, []).append(int(row))
                    continue
                mapped = mapping[part]
                if mapped is None:
                    unlabelled = True
                elif mapped:
                    ids.append(mapped)
            elif allowed is not None and part not in allowed:
                unknown.setdefault(part, []).append(int(row))
            else:
                ids.append(part)
        out.append(None if unlabelled else THEME_SEPARATOR.join(dict.fromkeys(ids)))
    if unknown:
        shown = "; ".join(
            f"{value!r} ({_rows(np.asarray(found))})" for value, found in list(unknown.items())[:5]
        )
        fix = (
            "add them to data.theme_values (a theme id, '' for no theme, null for unlabelled)"
            if mapping
            else "use the taxonomy's theme ids, or map the values in data.theme_values"
        )
        raise ContractError(
            f"{path}: column {values.name!r} (data.columns.themes) holds theme values that are "
            f"not known: {shown}; {fix}"
        )
    if mapping and allowed is not None:
        wrong = sorted({t for t in mapping.values() if t and t not in allowed})
        if wrong:
            raise ContractError(
                f"data.theme_values maps to {wrong}, not theme ids of the taxonomy "
                f"({', '.join(sorted(allowed))})"
            )
    return pd.Series(out, index=values.index, dtype=object)


def read_text_cache(path: Path) -> pd.DataFrame | None:
    """The inference cache of ``retain text score``, or None when there is none yet."""
    if not path.exists():
        return None
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        logger.warning(
            "%s: the text cache cannot be read (%s); every text is scored afresh", path, exc
        )
        return None
