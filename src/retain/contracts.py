"""Data contracts: the four tables retain reads, their columns and types, and their validation.

Every table is a pandas DataFrame with the columns below. Timestamps are timezone-naive UTC
(``datetime64[ns]``); identifiers are strings (the events table's ids and event types: a
``category`` of strings, see ``TableContract.categorical``). ``validate_table`` coerces a raw frame to the
contract and splits it into the rows that can be used and the rows that cannot, each rejected
row carrying the reason, so that nothing is dropped silently.

Feedback themes are stored as one string per row, theme ids joined by ``|`` (``"billing|pricing"``);
an empty string means "labelled, no theme", a missing value means "not labelled".
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import pandas as pd

ColumnKind = Literal["id", "timestamp", "float", "int", "bool", "category", "text"]

THEME_SEPARATOR = "|"
SENTIMENTS = ("negative", "neutral", "positive")
EVENT_TYPES = ("login", "usage", "purchase")
CHANNELS = ("phone", "email", "chat", "social")
FEEDBACK_SOURCES = ("review", "survey", "ticket_comment")

#: Cell values that mean "no value" in some exporter or other; never accepted as an identifier.
NULL_LIKE_IDS = frozenset({"nan", "null", "none", "na", "n/a", "<na>", "nat", "nil", "-", "?"})
#: Every number beyond this magnitude is out of range (beyond it a float no longer holds integers
#: exactly; no count or amount of retain's tables comes near it).
MAX_MAGNITUDE = 1e15
#: An id cell that is an integer written as a float ("1001.0", from a float column) reads as "1001".
_FLOAT_INTEGER_ID = re.compile(r"^([+-]?\d+)\.0*$")
#: A date written day and month first in either order: 04/03/2021, 13.03.21, 3-4-2021.
_SLASHED_DATE = r"^\s*(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{2,4})\b"


@dataclass(frozen=True)
class Column:
    """One column of a table contract."""

    name: str
    kind: ColumnKind
    required: bool = True
    nullable: bool = False
    allowed: tuple[str, ...] | None = None
    min_value: float | None = None
    max_value: float | None = None
    description: str = ""


@dataclass(frozen=True)
class TableContract:
    """The columns of one table and its primary key."""

    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    description: str = ""
    #: (earlier, later) timestamp columns: a row whose ``later`` comes before its ``earlier`` is
    #: rejected (a ticket resolved before it was opened would give a negative duration).
    order: tuple[tuple[str, str], ...] = ()
    #: Columns typed ``category`` (of strings) instead of one ``object`` string per row: ids and
    #: types repeated over millions of rows, where a string each would take gigabytes and every
    #: reader would hash them all again. The values are the same.
    categorical: tuple[str, ...] = ()

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


CUSTOMERS = TableContract(
    name="customers",
    key=("customer_id",),
    description="One row per customer.",
    order=(("signup_at", "churned_at"),),
    columns=(
        Column("customer_id", "id", description="Unique customer identifier."),
        Column("signup_at", "timestamp", description="When the customer signed up."),
        Column(
            "segment", "category", required=False, nullable=True,
            description="Customer segment, e.g. consumer, smb, enterprise.",
        ),
        Column("plan", "category", required=False, nullable=True, description="Subscription plan."),
        Column("region", "category", required=False, nullable=True, description="Sales region."),
        Column(
            "monthly_value", "float", required=False, nullable=True, min_value=0.0,
            description="Recurring revenue per month (value at risk); optional.",
        ),
        Column(
            "churned_at", "timestamp", required=False, nullable=True,
            description="When the customer left; missing while active. Used only for labels.",
        ),
    ),
)

EVENTS = TableContract(
    name="events",
    key=(),
    description="Behaviour: one row per event.",
    categorical=("customer_id", "event_type"),
    columns=(
        Column("customer_id", "id"),
        Column("occurred_at", "timestamp"),
        Column("event_type", "category", description="login, usage, purchase, or any other type."),
        Column("amount", "float", required=False, nullable=True, description="Money, for purchases."),
    ),
)

TICKETS = TableContract(
    name="tickets",
    key=("ticket_id",),
    description="Support history: one row per ticket.",
    order=(("opened_at", "first_response_at"), ("opened_at", "resolved_at")),
    columns=(
        Column("ticket_id", "id"),
        Column("customer_id", "id"),
        Column("opened_at", "timestamp"),
        Column("first_response_at", "timestamp", nullable=True, description="Missing if never answered."),
        Column("resolved_at", "timestamp", nullable=True, description="Missing while unresolved."),
        Column("channel", "category", allowed=CHANNELS),
        Column(
            "reopened_count", "int", required=False, min_value=0, max_value=1000,
            description="How often the ticket was reopened.",
        ),
        Column(
            "csat", "float", required=False, nullable=True, min_value=1, max_value=5,
            description="Satisfaction survey 1-5, returned when the ticket is resolved.",
        ),
        Column("escalated", "bool", required=False, description="true/false; an empty cell reads as false."),
    ),
)

FEEDBACK = TableContract(
    name="feedback",
    key=("feedback_id",),
    description="Text feedback: reviews, survey answers, ticket comments.",
    columns=(
        Column("feedback_id", "id"),
        Column("customer_id", "id"),
        Column("created_at", "timestamp"),
        Column("source", "category", allowed=FEEDBACK_SOURCES),
        Column("text", "text"),
        Column(
            "rating", "float", required=False, nullable=True, min_value=1, max_value=5,
            description="Star rating on the scale of data.rating_scale (default 1-5); stored 0-1.",
        ),
        Column("nps", "float", required=False, nullable=True, min_value=0, max_value=10),
        Column("ces", "float", required=False, nullable=True, min_value=1, max_value=7),
        Column(
            "sentiment", "category", required=False, nullable=True, allowed=SENTIMENTS,
            description="Training label; missing if unlabelled.",
        ),
        Column(
            "themes", "text", required=False, nullable=True,
            description="Training label: theme ids joined by '|'; '' = no theme; missing if unlabelled.",
        ),
    ),
)

#: The column that dates each table's rows (what "as of" and "until" cut on).
TIME_COLUMNS: dict[str, str] = {
    "customers": "signup_at",
    "events": "occurred_at",
    "tickets": "opened_at",
    "feedback": "created_at",
}

CONTRACTS: dict[str, TableContract] = {
    c.name: c for c in (CUSTOMERS, EVENTS, TICKETS, FEEDBACK)
}

_BOOL_TRUE = {"true", "1", "yes", "y", "t"}
_BOOL_FALSE = {"false", "0", "no", "n", "f", ""}


@dataclass(frozen=True)
class World:
    """The tables that describe a customer base at one moment.

    ``customers`` is always there; ``events``, ``tickets`` and ``feedback`` are ``None`` when the
    data has no such table (their feature families are then absent, not zeros).
    """

    customers: pd.DataFrame
    events: pd.DataFrame | None = None
    tickets: pd.DataFrame | None = None
    feedback: pd.DataFrame | None = None

    def tables(self) -> dict[str, pd.DataFrame]:
        """The tables present, by name, in contract order."""
        tables = {
            "customers": self.customers,
            "events": self.events,
            "tickets": self.tickets,
            "feedback": self.feedback,
        }
        return {name: frame for name, frame in tables.items() if frame is not None}


class ContractError(ValueError):
    """A table cannot be used at all (a required column is missing, the file is unreadable...)."""


@dataclass
class Validated:
    """The result of validating one table: usable rows and rejected rows with reasons."""

    table: str
    source: str
    valid: pd.DataFrame
    rejected: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: The input row number (1-based, header not counted) of each valid row, for later rejections.
    valid_rows: np.ndarray | None = None
    #: Kept rows whose optional field was out of range and set missing (source_row, reason, row).
    amended: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def n_input(self) -> int:
        return len(self.valid) + len(self.rejected)

    def summary(self) -> str:
        text = f"{self.source}: {len(self.valid)} rows used"
        if not self.rejected.empty:
            counts = self.rejected["reason"].value_counts()
            parts = "; ".join(f"{n} rows {reason}" for reason, n in counts.items())
            text = (
                f"{self.source}: {len(self.valid)} of {self.n_input} rows used, "
                f"{len(self.rejected)} rejected ({parts})"
            )
        if not self.amended.empty:
            counts = self.amended["reason"].value_counts()
            text += "; kept with a field set missing: " + "; ".join(
                f"{n} rows {reason}" for reason, n in counts.items()
            )
        return text

    def quarantine(self) -> pd.DataFrame:
        """Rejected and amended rows in input order, with ``action`` saying what happened."""
        parts = []
        if not self.rejected.empty:
            parts.append(self.rejected.assign(action="row rejected"))
        if not self.amended.empty:
            parts.append(self.amended.assign(action="field set missing, row kept"))
        if not parts:
            return pd.DataFrame()
        out = pd.concat(parts, ignore_index=True).sort_values("source_row", kind="stable")
        columns = ["source_row", "action", "reason"] + [
            c for c in out.columns if c not in ("source_row", "action", "reason")
        ]
        return out[columns].reset_index(drop=True)


def split_themes(themes: pd.Series) -> list[list[str]]:
    """Turn the ``|``-joined theme column into lists of theme ids (missing -> empty list)."""
    return [
        [t for t in str(v).split(THEME_SEPARATOR) if t] if isinstance(v, str) else []
        for v in themes
    ]


def join_themes(theme_lists: list[list[str]]) -> list[str]:
    """Inverse of :func:`split_themes`."""
    return [THEME_SEPARATOR.join(ts) for ts in theme_lists]


def validate_table(
    raw: pd.DataFrame,
    contract: TableContract,
    source: str,
    *,
    ranges: dict[str, tuple[float, float]] | None = None,
    date_format: str | None = None,
    export_time: pd.Timestamp | None = None,
) -> Validated:
    """Coerce ``raw`` to ``contract`` and split usable rows from rejected ones.

    Parameters
    ----------
    raw:
        The table as read, already renamed to the contract's column names.
    contract:
        The table's contract.
    source:
        Where the table came from (a file path), used in every message.
    ranges:
        Per column, a (min, max) that replaces the contract's (e.g. a 1-10 rating scale).
    date_format:
        strftime format of the timestamp columns; default: inferred, the same for every value of
        a column (dates written day and month first read in the order the column itself shows).
    export_time:
        When the data was exported (naive UTC): a row with a timestamp after it is rejected.
        ``None``: no such check.

    Returns
    -------
    Validated
        ``valid`` holds the typed, usable rows in contract column order (plus any extra columns
        the input had); ``rejected`` holds the original rows that cannot be used, with a
        ``reason`` column naming the column and the problem. An optional, nullable field out
        of its range is set missing and the row kept; ``amended`` records it.

    Numbers must be finite and within the column's range (at most ``MAX_MAGNITUDE`` in size),
    checked before any cast; identifiers are strings, an integer written as a float (``1001.0``)
    reads as ``1001`` and a null-like cell (``NaN``, ``null``, ``None``...) is rejected.

    Raises
    ------
    ContractError
        If a required column is missing (nothing in the table could be used), or the dates of a
        column are written in an order that cannot be told (``04/03/2021``) or in both orders.
    """
    missing = [c.name for c in contract.columns if c.required and c.name not in raw.columns]
    if missing:
        hints = near_misses(missing, [str(c) for c in raw.columns if c not in contract.column_names])
        hint = "".join(f" Column {theirs!r} looks like {ours!r}." for theirs, ours in hints.items())
        raise ContractError(
            f"{source}: table '{contract.name}' is missing required column(s) "
            f"{', '.join(repr(m) for m in missing)} ({len(raw)} rows not read). "
            f"Found columns: {', '.join(map(str, raw.columns))}.{hint} "
            "Map your own names onto these in the config's data.columns section."
        )
    raw = raw.reset_index(drop=True)
    typed: dict[str, pd.Series] = {}
    reasons = _Reasons(len(raw))
    reject = reasons.reject
    amended: list[pd.DataFrame] = []
    ranges = ranges or {}

    def out_of_range(col: Column, mask: np.ndarray, reason: str) -> None:
        if col.required or not col.nullable:
            reject(mask, reason)
            return
        # An optional field: the row is still useful, so keep it without the value and say so.
        if mask.any():
            amended.append(raw.loc[mask].assign(reason=f"{reason} (set missing)"))
            typed[col.name] = typed[col.name].mask(mask, np.nan)

    for col in contract.columns:
        if col.name not in raw.columns:
            # Absent optional columns read as missing (customer attributes that are entirely
            # missing are left out of the features, not used as data).
            typed[col.name] = _default_column(col, len(raw))
            continue
        if col.kind == "timestamp":
            problem = ambiguous_dates(raw[col.name]) if date_format is None else None
            if problem:
                raise ContractError(
                    f"{source}: column '{col.name}' {problem} ({len(raw)} rows not read); set "
                    f"data.read.{contract.name}.date_format, e.g. '%d/%m/%Y' or '%m/%d/%Y'"
                )
        cells = _read_cells(raw[col.name], col, date_format, col.name in contract.categorical)
        values = cells.values
        typed[col.name] = values
        if col.kind == "id":
            reject(cells.null_like, f"column '{col.name}': a null-like value is not an id")
        if col.kind in ("float", "int"):
            infinite = values.notna().to_numpy() & ~np.isfinite(values.to_numpy(dtype="float64", na_value=np.nan))
            out_of_range(col, infinite, f"column '{col.name}': not a finite number")
            values = values.where(~infinite)
        reject(cells.bad & cells.present, f"column '{col.name}': not a valid {col.kind}")
        if not col.nullable:
            reject(values.isna().to_numpy(), f"column '{col.name}': missing value")
        if col.allowed is not None and col.kind == "category":
            outside = values.notna() & ~values.isin(col.allowed)
            reject(outside.to_numpy(dtype=bool), f"column '{col.name}': not one of {', '.join(col.allowed)}")
        low, high = ranges.get(col.name, (col.min_value, col.max_value))
        if col.kind in ("float", "int"):
            low = -MAX_MAGNITUDE if low is None else low
            high = MAX_MAGNITUDE if high is None else high
        if low is not None:
            below = (values.notna() & (values < low)).to_numpy()
            out_of_range(col, below, f"column '{col.name}': below {low:g}")
        if high is not None:
            above = (values.notna() & (values > high)).to_numpy()
            out_of_range(col, above, f"column '{col.name}': above {high:g}")
        if col.kind == "timestamp" and export_time is not None:
            later = (values.notna() & (values > export_time)).to_numpy()
            reject(later, f"column '{col.name}': after the export time {export_time:%Y-%m-%d %H:%M:%S}")

    for earlier, later in contract.order:
        if earlier in raw.columns and later in raw.columns:
            before = typed[later].notna() & typed[earlier].notna() & (typed[later] < typed[earlier])
            reject(before.to_numpy(), f"column '{later}': before {earlier}")

    if contract.key:
        # Among the rows usable so far: a row rejected for another reason does not claim its key.
        usable = reasons.ok()
        keys = pd.DataFrame({k: typed[k] for k in contract.key}).loc[usable]
        dup = np.zeros(len(raw), dtype=bool)
        dup[usable] = keys.duplicated(keep="first").to_numpy()
        reject(dup, f"column(s) {', '.join(contract.key)}: duplicate key")

    for c in raw.columns:
        if c not in typed:
            typed[c] = raw[c]
    ok = reasons.ok()
    rejected = raw.loc[~ok].copy()
    rejected.insert(0, "reason", pd.Series(reasons.of_rejected(), index=rejected.index, dtype=object).astype(str))
    rejected.insert(0, "source_row", rejected.index + 1)
    table = pd.DataFrame(typed, index=raw.index, copy=False)
    # Every row used (the usual case): no copy of a table that may hold millions of rows.
    valid = table.reset_index(drop=True) if ok.all() else table.loc[ok].reset_index(drop=True)
    for col in contract.columns:
        if col.kind == "int" and not col.nullable and col.name in valid.columns:
            valid[col.name] = valid[col.name].astype("int64")
    kept = pd.concat(amended) if amended else pd.DataFrame()
    if len(kept):
        kept = kept.loc[kept.index.isin(raw.index[ok])]
        kept.insert(0, "source_row", kept.index + 1)
        kept = kept.sort_values("source_row", kind="stable").reset_index(drop=True)
    return Validated(
        table=contract.name,
        source=source,
        valid=valid,
        rejected=rejected.reset_index(drop=True),
        valid_rows=np.flatnonzero(ok) + 1,
        amended=kept,
    )


class _Reasons:
    """Why each row is rejected: the first reason given to a row is the one it keeps."""

    def __init__(self, n: int) -> None:
        self._which = np.zeros(n, dtype=np.int32)  # 0: no reason (yet); k: self._texts[k - 1]
        self._texts: list[str] = []

    def reject(self, mask: np.ndarray, reason: str) -> None:
        mask = np.asarray(mask, dtype=bool) & (self._which == 0)
        if mask.any():
            self._texts.append(reason)
            self._which[mask] = len(self._texts)

    def ok(self) -> np.ndarray:
        return self._which == 0

    def of_rejected(self) -> np.ndarray:
        """The reason of each rejected row, in row order."""
        texts = np.array([""] + self._texts, dtype=object)
        return texts[self._which[self._which != 0]]


def _default_column(col: Column, n: int) -> pd.Series:
    if col.kind == "timestamp":
        return pd.Series(pd.NaT, index=range(n), dtype="datetime64[ns]")
    if col.kind == "int":
        return pd.Series(0, index=range(n), dtype="int64")
    if col.kind == "bool":
        return pd.Series(False, index=range(n), dtype="bool")
    if col.kind == "float":
        return pd.Series(np.nan, index=range(n), dtype="float64")
    return pd.Series(pd.NA, index=range(n), dtype="object")


@dataclass(frozen=True)
class _Cells:
    """One input column read as its contract kind, with what validation needs of each cell."""

    #: The typed column.
    values: pd.Series
    #: Cells that hold something (not missing, not blank).
    present: np.ndarray
    #: Cells that do not convert to the kind (rejected when present).
    bad: np.ndarray
    #: Id cells that spell "no value" (``NaN``, ``null``...); their typed value is missing.
    null_like: np.ndarray


def _read_cells(
    values: pd.Series, col: Column, date_format: str | None = None, categorical: bool = False
) -> _Cells:
    """Type one column; ``categorical``: as ``category``, reading each distinct string once."""
    if not categorical or col.kind not in ("id", "category"):
        return _typed_cells(values, col, date_format)
    if not _only_strings(values):
        cells = _typed_cells(values, col, date_format)
        return replace(cells, values=pd.Series(pd.Categorical(cells.values.to_numpy()), index=values.index))
    # Millions of rows, a few distinct values: type each distinct value once and spread the
    # results by code. The extra last value stands for a missing cell (code -1 picks it).
    codes, distinct = pd.factorize(values)
    each = _typed_cells(pd.Series(distinct).reindex(range(len(distinct) + 1)), col, date_format)
    typed = pd.Categorical(each.values.to_numpy())
    return _Cells(
        values=pd.Series(
            pd.Categorical.from_codes(typed.codes[codes], dtype=typed.dtype), index=values.index, name=values.name
        ),
        present=each.present[codes],
        bad=each.bad[codes],
        null_like=each.null_like[codes],
    )


def _typed_cells(values: pd.Series, col: Column, date_format: str | None = None) -> _Cells:
    plain = _never_blank(values.dtype)
    # Text ops are done once per column (the stripped text serves every check that needs it).
    stripped = None if plain and col.kind not in ("id", "category") else _stripped_text(values)
    if plain:
        present = values.notna().to_numpy()
    else:
        present = (values.notna() & (stripped != "")).fillna(False).to_numpy(dtype=bool)
    typed, bad = _coerce(values, col, date_format, stripped)
    null_like = np.zeros(len(values), dtype=bool)
    if col.kind == "id":
        null_like = present & _spells_null(stripped).to_numpy()
        if null_like.any():
            typed = typed.mask(null_like, None)
    return _Cells(values=typed, present=present, bad=bad.to_numpy(dtype=bool), null_like=null_like)


def _never_blank(dtype: object) -> bool:
    """Numbers, booleans and datetimes: a present cell is never blank text (no need to look)."""
    return isinstance(dtype, pd.DatetimeTZDtype) or (isinstance(dtype, np.dtype) and dtype.kind in "biufcmM")


def _only_strings(values: pd.Series) -> bool:
    """Whether every present cell is a ``str``: equal cells are then the same text (``1 == 1.0``)."""
    if isinstance(values.dtype, pd.StringDtype):
        return True
    return values.dtype == object and pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty")


def _coerce(
    values: pd.Series, col: Column, date_format: str | None = None, stripped: pd.Series | None = None
) -> tuple[pd.Series, pd.Series]:
    """Return the typed column and a mask of values that failed to convert.

    ``stripped``: ``values`` as stripped text, when the caller has it already.
    """
    if col.kind == "timestamp":
        typed = parse_timestamps(values, date_format)
        return typed, typed.isna()
    if col.kind in ("float", "int"):
        typed = pd.to_numeric(values, errors="coerce").astype("float64")
        bad = typed.isna()
        if col.kind == "int":
            finite = np.isfinite(typed.to_numpy(dtype="float64", na_value=np.nan))
            bad = bad | (typed.notna() & finite & (typed != np.round(typed)))
        return typed, bad
    if col.kind == "bool":
        if values.dtype == bool:
            return values, pd.Series(False, index=values.index)
        text = (_stripped_text(values) if stripped is None else stripped).str.lower()
        typed = text.isin(_BOOL_TRUE)
        bad = ~(text.isin(_BOOL_TRUE) | text.isin(_BOOL_FALSE)) & text.notna()
        return typed.astype(bool), bad
    if col.kind == "id":
        text = _stripped_text(values) if stripped is None else stripped
        return _strings(_integer_floats_unfloated(text)), pd.Series(False, index=values.index)
    # category, text: strings; missing stays missing
    if col.kind == "text":
        typed = values.astype("string")
        typed = typed.astype(object).where(typed.notna(), None)
        return pd.Series(typed, index=values.index, dtype=object), pd.Series(False, index=values.index)
    return _strings(_stripped_text(values) if stripped is None else stripped), pd.Series(False, index=values.index)


def normalise_ids(values: pd.Series) -> pd.Series:
    """Identifiers as stripped strings, the same whatever the file's column type.

    An integer written as a float reads as the integer (``1001.0`` from a float column, or from a
    CSV a float column was written to, is ``"1001"``), so ids match across tables whatever type
    each file gave them. Empty cells are missing (``None``).
    """
    return _strings(_integer_floats_unfloated(_stripped_text(values)))


def stripped_strings(values: pd.Series) -> pd.Series:
    """Stripped strings, object dtype; empty cells missing (``None``); numbers become their text."""
    return _strings(_stripped_text(values))


def is_null_like_id(values: pd.Series) -> pd.Series:
    """Cells that spell "no value" (``NaN``, ``null``, ``None``, ``N/A``...)."""
    return _spells_null(_stripped_text(values))


def _stripped_text(values: pd.Series) -> pd.Series:
    """Cells as text (``string`` dtype, vectorised), stripped; missing stays missing."""
    return values.astype("string").str.strip()


def _spells_null(text: pd.Series) -> pd.Series:
    return text.str.lower().isin(NULL_LIKE_IDS).fillna(False).astype(bool)


def _integer_floats_unfloated(text: pd.Series) -> pd.Series:
    """Stripped text with an integer written as a float (``1001.0``) as the integer (``1001``)."""
    # Only a cell with a dot can be one: the per-cell regex runs on those alone.
    dotted = text.str.contains(".", regex=False).fillna(False).to_numpy(dtype=bool)
    if not dotted.any():
        return text
    fixed = text[dotted].str.replace(_FLOAT_INTEGER_ID, lambda m: m.group(1), regex=True)
    return text.where(~dotted, fixed)


def _strings(text: pd.Series) -> pd.Series:
    """Stripped text as ``object`` strings, blank or missing cells ``None``."""
    keep = (text.notna() & (text != "")).fillna(False).to_numpy(dtype=bool)
    out = text.to_numpy(dtype=object, na_value=None)
    out[~keep] = None
    return pd.Series(out, index=text.index, name=text.name, dtype=object)


def ambiguous_dates(values: pd.Series) -> str | None:
    """Why the dates of a text column cannot be read one way, or None when they can.

    Dates written with the day and month first (``04/03/2021``) are read in the order the column
    itself shows: day first if some first number is above 12, month first if some second one
    is. A column where neither is ever above 12 cannot be told; one where both are mixes orders.
    """
    if pd.api.types.is_datetime64_any_dtype(values.dtype) or isinstance(values.dtype, pd.DatetimeTZDtype):
        return None
    parts = values.astype("string").str.extract(_SLASHED_DATE)
    parts = parts.dropna()
    if parts.empty:
        return None
    first, second = parts[0].astype(int), parts[1].astype(int)
    day_first, month_first = (first > 12), (second > 12)
    if day_first.any() and month_first.any():
        a = values[day_first[day_first].index[0]]
        b = values[month_first[month_first].index[0]]
        return f"mixes day-first dates ({a!r}) and month-first dates ({b!r})"
    if not day_first.any() and not month_first.any():
        example = values[parts.index[0]]
        return f"has dates like {example!r} that read as either day or month first"
    return None


def parse_timestamps(values: pd.Series, date_format: str | None = None) -> pd.Series:
    """Text or datetimes as naive UTC ``datetime64[ns]``; what does not parse is ``NaT``.

    With ``date_format`` every value is read with it. Without, the format is inferred; dates
    written day and month first are read day first when the column shows it (see
    :func:`ambiguous_dates`, which callers check first), so no two rows read differently.
    """
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC").dt.tz_localize(None).astype("datetime64[ns]")
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        return values.astype("datetime64[ns]")
    day_first = False
    if date_format is None:
        parts = values.astype("string").str.extract(_SLASHED_DATE).dropna()
        day_first = bool(len(parts)) and bool((parts[0].astype(int) > 12).any())
    typed = pd.to_datetime(
        values.astype("string") if date_format else values,
        errors="coerce",
        utc=True,
        format=date_format or "mixed",
        dayfirst=day_first,
    ).dt.tz_localize(None)
    # A year like 1001 or -1 parses but does not fit nanoseconds: not a usable timestamp.
    outside = typed.notna() & ((typed < pd.Timestamp.min) | (typed > pd.Timestamp.max))
    return typed.where(~outside).astype("datetime64[ns]")


def near_misses(wanted: list[str], found: list[str], cutoff: float = 0.75) -> dict[str, str]:
    """Found column names that look like a wanted one (``cast`` for ``csat``): found -> wanted."""
    out: dict[str, str] = {}
    for name in found:
        close = difflib.get_close_matches(name.strip().lower(), wanted, n=1, cutoff=cutoff)
        if close:
            out[name] = close[0]
    return out


def contracts_markdown() -> str:
    """The data contracts as a Markdown document (``docs/data_contracts.md`` is generated from it)."""
    lines = [
        "# Data contracts",
        "",
        "<!-- Generated by retain.contracts.contracts_markdown(); a test keeps it in sync. -->",
        "",
        "retain reads four tables, each a CSV or Parquet file named after the table",
        "(`customers.parquet`, `events.csv`, ...) in one directory. A config maps your own column",
        "names onto these (`data.columns.<table>.<contract column>: <your column>`). Timestamps",
        "may carry a time zone (converted to UTC) or not (taken as UTC). Rows that break the",
        "contract are not dropped silently: they are written to `<data dir>/quarantine/<table>.csv`",
        "with a `reason` column, and counted in the log. In a CSV file an empty cell is missing;",
        "as CSV cannot write `''` apart from missing, an empty `themes` cell on a row with a",
        "`sentiment` label reads as `''` (no theme) when the file's `themes` column holds any label.",
        "",
        "Rules every table follows (a row that breaks one is quarantined with the reason):",
        "",
        "- **Time.** No timestamp may lie after the export time (`data.export_time`, default the",
        "  time of the run). Events, tickets and feedback may not be dated before their",
        "  customer's signup day; a ticket may not be answered or resolved before it was opened,",
        "  nor a customer churn before signing up. Dates written day and month first",
        "  (`04/03/2021`) are read in the order the column shows (day first if some first number",
        "  is above 12, month first if some second one is); a column that never shows it, or",
        "  shows both, is an error until `data.read.<table>.date_format` is set.",
        "- **Numbers** must be finite and within the column's range (and at most 1e15 in size),",
        "  checked before any cast; an optional number that breaks this is set missing and the",
        "  row kept (`field set missing` in the quarantine file).",
        "- **Identifiers** are strings: `1001.0` (an integer from a float column) reads as",
        "  `1001`; a null-like id (`NaN`, `null`, `None`, `N/A`, `-`...) is rejected.",
        "- **Nothing silently unused.** A column that is not in the contract but looks like an",
        "  optional column the file lacks (`cast` for `csat`) is an error naming both (map it in",
        "  `data.columns`, or list it in `data.extra_columns`). A header-only file is a warning",
        "  the run summary repeats (`data.warnings_fatal: true` makes every data warning an",
        "  error). When more than `data.max_quarantine_share` (default 5%) of a table's rows is",
        "  quarantined, the run stops with exit code 3, naming the main reasons with counts and",
        "  example rows.",
        "",
    ]
    for contract in CONTRACTS.values():
        key = ", ".join(contract.key) if contract.key else "none"
        lines += [f"## {contract.name}", "", f"{contract.description} Key: {key}.", ""]
        lines += ["| column | type | required | may be empty | rule | meaning |", "|---|---|---|---|---|---|"]
        for c in contract.columns:
            rules = []
            if c.allowed:
                rules.append("one of " + ", ".join(c.allowed))
            if c.min_value is not None:
                rules.append(f">= {c.min_value:g}")
            if c.max_value is not None:
                rules.append(f"<= {c.max_value:g}")
            lines.append(
                f"| `{c.name}` | {c.kind} | {'yes' if c.required else 'no'} | "
                f"{'yes' if c.nullable else 'no'} | {'; '.join(rules)} | {c.description} |"
            )
        lines.append("")
    return "\n".join(lines)
