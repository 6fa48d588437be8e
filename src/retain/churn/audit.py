"""Leakage audit: find feature columns that give the label away before a model is trained.

A churn model that reads a column written *because* the customer left (a complaint flag filled in
at exit, a status code, a closure date, another model's score trained on the label) looks
excellent offline and is useless on the day it is needed. :func:`audit_features` looks at the
training features and the label and reports four kinds of finding:

``separates_label``
    One column on its own nearly separates the label: its single-feature discrimination
    (ROC AUC, see below) is at least ``separation_auc`` (default 0.95). Excluded by default.
``outcome_name``
    The column's name reads like an outcome (status, reason, score, complain, churn, cancel,
    exit, attrition, closed, ...). A name alone proves nothing (``CreditScore`` is a legitimate
    input), so the finding is a warning (``excluded=False``) unless the column also separates the
    label unusually well: at least ``outcome_name_auc`` (default 0.90). Then it is excluded.
``dated_after_cutoff``
    A date column holds values after ``cutoff`` (the ``as_of`` of the training table): it was
    written after the moment the prediction is made for. Excluded by default.
``train_test_duplicates``
    Test rows whose feature values exactly equal a training row. A row-level finding
    (``column=None``), reported with the count and never excluding anything.

A column named in ``keep`` is still reported, with ``excluded=False`` and "kept by config".

Single-feature discrimination
-----------------------------
For every column the audit computes a statistic in ``[0.5, 1]`` (0.5 = no information, 1 = the
column alone separates the classes):

- numeric, boolean and date columns: the rank ROC AUC of the raw values, as ``max(auc, 1 - auc)``
  so that direction does not matter. Missing values are a bin of their own: the AUC is computed
  with them ranked below and above every value, and the larger separation is kept (a field that is
  only filled in for leavers is a leak too). Columns with more distinct values than ``n_bins`` are
  also cut into ``n_bins`` quantile bins and scored like a category (below), which catches a
  non-monotone leak such as a code whose middle values mean "left";
- text and categorical columns (and numeric columns with at most ``n_bins`` distinct values):
  the AUC of an *out-of-fold* target encoding. Each row gets the smoothed churn rate of its
  category computed on the other folds only, so an identifier column (every value unique) gets
  the prior for every row and scores 0.5 instead of memorising the label.

The statistic of a column is the largest of those it has.

Why these thresholds
--------------------
Measured on the public sets in ``$RETAIN_DATA_DIR`` (see ``docs/audit.md`` for the table), the
known leaks score 0.998 (bank ``Complain``) and 1.000 (credit card ``Naive_Bayes_Classifier_*``),
while the strongest honest single features of four churn sets stay at or below 0.85: credit card
``Total_Trans_Amt`` 0.85 and ``Total_Trans_Ct`` 0.83, bank ``Age`` 0.74 and ``NumOfProducts``
0.71, Telco ``tenure`` 0.74 and ``Contract`` 0.73, BigML ``Total day minutes`` 0.69. Churn is not
predictable from one honest field, so ``separation_auc = 0.95`` sits in the wide gap between the
two groups, with room above the strongest honest feature seen. A column whose *name* already
reads like an outcome needs less evidence, so it is excluded from ``outcome_name_auc = 0.90``:
still above every honest single feature measured, and far above the outcome-named legitimate
columns (bank ``CreditScore`` 0.52 and ``Satisfaction Score`` 0.50, credit card
``Marital_Status`` 0.51), which stay warnings.

On very small tables (a few dozen rows) a statistic this high can happen by chance; the audit
is meant for training tables of hundreds of rows or more.

The audit is cheap (well under a second on 10,000 rows x 25 columns): one sort per numeric column
and one pass of ``np.bincount`` per fold per categorical column.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import rankdata

logger = logging.getLogger(__name__)

__all__ = [
    "AuditFinding",
    "AuditResult",
    "audit_features",
    "outcome_like_name",
    "single_feature_separation",
]

CHECK_SEPARATES_LABEL = "separates_label"
CHECK_OUTCOME_NAME = "outcome_name"
CHECK_DATED_AFTER_CUTOFF = "dated_after_cutoff"
CHECK_TRAIN_TEST_DUPLICATES = "train_test_duplicates"

# Name tokens that read like an outcome. Exact tokens are matched whole; stems match the start of
# a token ("complaint", "complained", "churned", "cancelled", "cancellation", "attrited").
_OUTCOME_TOKENS = frozenset(
    {
        "status",
        "reason",
        "reasons",
        "score",
        "exit",
        "exited",
        "closed",
        "closure",
        "outcome",
        "target",
        "label",
        "left",
        "lost",
        "retained",
    }
)
_OUTCOME_STEMS = ("complain", "churn", "cancel", "attrit", "terminat", "defect")
_DATE_NAME = re.compile(r"(date|time|_at$|_on$)", re.IGNORECASE)


@dataclass(frozen=True)
class AuditFinding:
    """One thing the audit noticed about one column (or about rows, for duplicates).

    Attributes
    ----------
    column
        The feature column, or ``None`` for a row-level finding (train/test duplicates).
    check
        Which check fired: ``"separates_label"``, ``"outcome_name"``, ``"dated_after_cutoff"``
        or ``"train_test_duplicates"``.
    detail
        A plain-language sentence naming the column, the statistic and why it matters.
    statistic
        The number behind the finding (single-feature AUC, share of dates after the cutoff,
        number of duplicated test rows), or ``None``.
    excluded
        ``True`` when the column is removed from training by default.
    """

    column: str | None
    check: str
    detail: str
    statistic: float | None
    excluded: bool

    def to_dict(self) -> dict[str, Any]:
        """The finding as a JSON-able dict."""
        return {
            "column": self.column,
            "check": self.check,
            "detail": self.detail,
            "statistic": None if self.statistic is None else float(self.statistic),
            "excluded": bool(self.excluded),
        }


@dataclass(frozen=True)
class AuditResult:
    """All findings of one audit, plus the single-feature statistic of every column.

    Attributes
    ----------
    findings
        Every finding, in column order; row-level findings last.
    separation
        Single-feature separation (``max(auc, 1 - auc)``-style, in ``[0.5, 1]``) of every audited
        column, for the record; empty when the label has a single class.
    """

    findings: tuple[AuditFinding, ...]
    separation: tuple[tuple[str, float], ...] = ()

    @property
    def excluded_columns(self) -> list[str]:
        """Columns to drop before training, in the order they were found, each once."""
        seen: dict[str, None] = {}
        for finding in self.findings:
            if finding.excluded and finding.column is not None:
                seen.setdefault(finding.column, None)
        return list(seen)

    @property
    def warnings(self) -> list[AuditFinding]:
        """Findings that do not exclude anything (kept by config, weak outcome names, duplicates)."""
        return [finding for finding in self.findings if not finding.excluded]

    def summary(self) -> str:
        """Lines a person reads in the run log: what was excluded, what was only noted, and why."""
        if not self.findings:
            return "Leakage audit: no findings."
        excluded = self.excluded_columns
        lines = [
            f"Leakage audit: {len(self.findings)} finding(s); "
            + (f"excluded {', '.join(excluded)}." if excluded else "nothing excluded.")
        ]
        for finding in self.findings:
            tag = "EXCLUDED" if finding.excluded else "note"
            lines.append(f"  [{tag}] {finding.detail}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able record (for MLflow or ``metrics.json``)."""
        return {
            "excluded_columns": self.excluded_columns,
            "findings": [finding.to_dict() for finding in self.findings],
            "separation": {column: float(value) for column, value in self.separation},
        }


def outcome_like_name(name: str) -> bool:
    """Whether a column name reads like an outcome of churn rather than an input to it.

    The name is split into lowercase words at non-letters and camelCase boundaries
    (``"CreditScore"`` -> ``credit``, ``score``); it matches when a word is one of status, reason,
    score, exit(ed), closed, closure, outcome, target, label, left, lost, retained, or starts with
    complain, churn, cancel, attrit, terminat or defect.

    Parameters
    ----------
    name
        The column name.

    Returns
    -------
    bool
    """
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", str(name))
    tokens = [token for token in re.split(r"[^a-zA-Z]+", spaced.lower()) if token]
    return any(token in _OUTCOME_TOKENS or token.startswith(_OUTCOME_STEMS) for token in tokens)


def single_feature_separation(
    x: pd.Series,
    y: np.ndarray,
    *,
    folds: np.ndarray,
    n_bins: int = 20,
    smoothing: float = 10.0,
) -> float:
    """How well one column on its own separates a binary label, in ``[0.5, 1]``.

    Parameters
    ----------
    x
        The column (numeric, boolean, date, text or categorical; missing values allowed).
    y
        The label as a 0/1 integer array of the same length.
    folds
        Fold number of every row, for the out-of-fold encodings.
    n_bins
        Numeric columns with more distinct values are also scored on this many quantile bins;
        those with at most this many are scored as categories.
    smoothing
        Pseudo-count of the prior in the out-of-fold category rates.

    Returns
    -------
    float
        0.5 when the column carries no information, 1.0 when it separates the classes.
        See the module docstring for the method.
    """
    values = _as_numeric(x)
    if values is None:
        codes = pd.factorize(x, use_na_sentinel=False)[0]
        return max(0.5, _oof_auc(codes, y, folds, smoothing))
    best = _rank_separation(values, y)
    observed = values[~np.isnan(values)]
    n_distinct = np.unique(observed).size
    if n_distinct <= n_bins:
        codes = pd.factorize(pd.Series(values), use_na_sentinel=False)[0]
    else:
        edges = np.unique(np.quantile(observed, np.linspace(0.0, 1.0, n_bins + 1)[1:-1]))
        codes = np.where(np.isnan(values), -1, np.searchsorted(edges, values, side="right")) + 1
    return max(best, _oof_auc(codes, y, folds, smoothing))


def audit_features(
    X: pd.DataFrame,
    y: Sequence[Any] | np.ndarray | pd.Series,
    *,
    keep: Sequence[str] = (),
    test_X: pd.DataFrame | None = None,
    cutoff: pd.Timestamp | None = None,
    separation_auc: float = 0.95,
    outcome_name_auc: float = 0.90,
    n_folds: int = 5,
    n_bins: int = 20,
    smoothing: float = 10.0,
    random_state: int = 0,
) -> AuditResult:
    """Audit training features for label leakage before a model is fitted.

    Parameters
    ----------
    X
        Training feature columns (no label column, no identifiers needed). Not modified.
    y
        Binary label, 0/1 or boolean, one value per row of ``X`` (matched by position).
    keep
        Columns the configuration keeps even when flagged: still reported, with
        ``excluded=False`` and "kept by config" in the detail. Every name must be a column of
        ``X`` (a misspelt name is an error rather than a silently excluded feature).
    test_X
        Test features, when a split exists: test rows whose values exactly equal a training row
        are counted (over the columns both frames share).
    cutoff
        The ``as_of`` of the training table. Date columns with values after it are excluded.
        Date columns are those of a datetime dtype, and text columns whose name reads like a date
        (``date``, ``time``, ``*_at``, ``*_on``) and whose values nearly all parse as dates.
        Time zones are compared in UTC; a naive side is taken to be UTC.
    separation_auc
        Single-feature separation from which a column is excluded whatever its name
        (default 0.95; see the module docstring for why).
    outcome_name_auc
        Separation from which a column with an outcome-like name is excluded (default 0.90).
        Below it, the name alone gives a warning that excludes nothing.
    n_folds
        Folds of the out-of-fold category encoding.
    n_bins
        Quantile bins for numeric columns (see :func:`single_feature_separation`).
    smoothing
        Pseudo-count of the prior in the out-of-fold category rates.
    random_state
        Seed of the fold assignment; the audit is deterministic given it.

    Returns
    -------
    AuditResult
        The findings; ``result.excluded_columns`` are the columns to drop.

    Raises
    ------
    ValueError
        If ``y`` is not binary or its length differs from ``X``, or ``keep`` names a column
        that ``X`` does not have.
    """
    y_array = _binary_label(y, len(X))
    unknown = [column for column in keep if column not in X.columns]
    if unknown:
        raise ValueError(f"Leakage audit: keep names column(s) not in the features: {unknown}")
    kept = set(keep)

    separation: dict[str, float] = {}
    if np.unique(y_array).size == 2:
        folds = _fold_ids(y_array, n_folds, random_state)
        for column in X.columns:
            separation[str(column)] = single_feature_separation(
                X[column], y_array, folds=folds, n_bins=n_bins, smoothing=smoothing
            )
    else:
        logger.warning("Leakage audit: the label has a single class; separation not checked")

    findings: list[AuditFinding] = []
    for column in X.columns:
        name = str(column)
        stat = separation.get(name)
        named_like_outcome = outcome_like_name(name)
        if stat is not None and stat >= separation_auc:
            also = "; its name also reads like an outcome" if named_like_outcome else ""
            findings.append(
                _finding(
                    name,
                    CHECK_SEPARATES_LABEL,
                    f"'{name}' alone separates the label (single-feature AUC {stat:.3f} >= "
                    f"{separation_auc:.2f}): it probably records the outcome rather than "
                    f"predicting it{also}",
                    stat,
                    kept,
                )
            )
        elif named_like_outcome:
            strong = stat is not None and stat >= outcome_name_auc
            shown = "not computed" if stat is None else f"{stat:.3f}"
            if strong:
                why = (
                    f"'{name}' is named like an outcome and separates the label strongly "
                    f"(single-feature AUC {shown} >= {outcome_name_auc:.2f})"
                )
            else:
                why = (
                    f"'{name}' is named like an outcome; alone it separates the label only "
                    f"weakly (single-feature AUC {shown} < {outcome_name_auc:.2f}), so it "
                    "stays in: check it is known before the cutoff"
                )
            findings.append(_finding(name, CHECK_OUTCOME_NAME, why, stat, kept, exclude=strong))
        if cutoff is not None:
            dated = _dated_after(X[column], name, cutoff)
            if dated is not None:
                share, count, total, latest = dated
                findings.append(
                    _finding(
                        name,
                        CHECK_DATED_AFTER_CUTOFF,
                        f"'{name}' has {count} of {total} dates ({share:.1%}) after the cutoff "
                        f"{pd.Timestamp(cutoff).isoformat()} (latest {latest.isoformat()}): "
                        "it was written after the prediction is made",
                        share,
                        kept,
                    )
                )

    if test_X is not None:
        duplicate = _train_test_duplicates(X, test_X)
        if duplicate is not None:
            findings.append(duplicate)

    result = AuditResult(findings=tuple(findings), separation=tuple(separation.items()))
    logger.debug("%s", result.summary())
    return result


def _finding(
    column: str,
    check: str,
    why: str,
    statistic: float | None,
    kept: set[str],
    *,
    exclude: bool = True,
) -> AuditFinding:
    if exclude and column in kept:
        return AuditFinding(column, check, f"{why}; kept by config", statistic, False)
    suffix = "; excluded" if exclude else ""
    return AuditFinding(column, check, f"{why}{suffix}", statistic, exclude)


def _binary_label(y: Sequence[Any] | np.ndarray | pd.Series, n_rows: int) -> np.ndarray:
    values = np.asarray(y)
    if values.ndim != 1 or values.shape[0] != n_rows:
        raise ValueError(
            f"Leakage audit: y has shape {values.shape}, expected ({n_rows},) like the features"
        )
    if values.dtype == bool:
        return values.astype(np.int8)
    if pd.isna(values).any():
        raise ValueError("Leakage audit: y has missing values; audit labelled rows only")
    distinct = set(pd.unique(values).tolist())
    if not distinct <= {0, 1}:
        raise ValueError(f"Leakage audit: y must be binary 0/1, found values {sorted(distinct)}")
    return values.astype(np.int8)


def _fold_ids(y: np.ndarray, n_folds: int, random_state: int) -> np.ndarray:
    """Stratified fold number of each row (each class spread evenly over the folds)."""
    rng = np.random.default_rng(random_state)
    folds = np.empty(y.shape[0], dtype=np.int64)
    for label in (0, 1):
        rows = np.flatnonzero(y == label)
        folds[rng.permutation(rows)] = np.arange(rows.size) % n_folds
    return folds


def _as_numeric(x: pd.Series) -> np.ndarray | None:
    """Float values (NaN for missing) of a numeric, boolean or date column; None otherwise."""
    dtype = x.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return None
    if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype):
        return x.to_numpy(dtype="float64", na_value=np.nan)
    if pd.api.types.is_datetime64_any_dtype(dtype):
        if getattr(x.dt, "tz", None) is not None:
            x = x.dt.tz_convert("UTC").dt.tz_localize(None)
        values = x.to_numpy(dtype="datetime64[ns]").view("int64").astype("float64")
        values[x.isna().to_numpy()] = np.nan
        return values
    if pd.api.types.is_timedelta64_dtype(dtype):
        return x.dt.total_seconds().to_numpy(dtype="float64", na_value=np.nan)
    return None


def _auc_from_ranks(ranks: np.ndarray, y: np.ndarray) -> float:
    n_pos = int(y.sum())
    n_neg = y.shape[0] - n_pos
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _rank_separation(values: np.ndarray, y: np.ndarray) -> float:
    """max(auc, 1 - auc) of the raw values, with missing values ranked lowest or highest."""
    missing = np.isnan(values)
    best = 0.5
    for fill in (-np.inf, np.inf) if missing.any() else (0.0,):
        filled = np.where(missing, fill, values)
        auc = _auc_from_ranks(rankdata(filled), y)
        best = max(best, auc, 1.0 - auc)
    return best


def _oof_auc(codes: np.ndarray, y: np.ndarray, folds: np.ndarray, smoothing: float) -> float:
    """AUC of an out-of-fold, smoothed target-rate encoding of category codes."""
    codes = np.asarray(codes, dtype=np.int64)
    n_categories = int(codes.max()) + 1 if codes.size else 0
    prior = float(y.mean())
    encoded = np.empty(y.shape[0], dtype=np.float64)
    for fold in np.unique(folds):
        held_out = folds == fold
        train = ~held_out
        counts = np.bincount(codes[train], minlength=n_categories)
        positives = np.bincount(codes[train], weights=y[train], minlength=n_categories)
        held_codes = codes[held_out]
        encoded[held_out] = (positives[held_codes] + smoothing * prior) / (
            counts[held_codes] + smoothing
        )
    return _auc_from_ranks(rankdata(encoded), y)


def _dated_after(
    x: pd.Series, name: str, cutoff: pd.Timestamp
) -> tuple[float, int, int, pd.Timestamp] | None:
    """(share, count, non-missing, latest) of dates after the cutoff; None if none or no dates."""
    dates = _as_dates(x, name)
    if dates is None:
        return None
    observed = dates.dropna()
    if observed.empty:
        return None
    limit = pd.Timestamp(cutoff)
    if limit.tzinfo is not None:
        limit = limit.tz_convert("UTC").tz_localize(None)
    after = observed > limit
    count = int(after.sum())
    if count == 0:
        return None
    return count / observed.size, count, int(observed.size), observed.max()


def _as_dates(x: pd.Series, name: str) -> pd.Series | None:
    """The column as naive UTC timestamps, or None when it is not a date column."""
    if pd.api.types.is_datetime64_any_dtype(x.dtype):
        dates = x
    elif (
        pd.api.types.is_object_dtype(x.dtype) or pd.api.types.is_string_dtype(x.dtype)
    ) and _DATE_NAME.search(name):
        observed = x.dropna()
        if observed.empty:
            return None
        parsed = pd.to_datetime(observed, errors="coerce", utc=True, format="mixed")
        if parsed.notna().mean() < 0.9:
            return None
        dates = pd.to_datetime(x, errors="coerce", utc=True, format="mixed")
    else:
        return None
    if getattr(dates.dt, "tz", None) is not None:
        dates = dates.dt.tz_convert("UTC").dt.tz_localize(None)
    return dates


def _train_test_duplicates(X: pd.DataFrame, test_X: pd.DataFrame) -> AuditFinding | None:
    shared = [column for column in X.columns if column in test_X.columns]
    if not shared or test_X.empty:
        return None
    # The same value must hash the same on both sides: an integer column that holds a missing
    # value on one side only is float there, so numeric columns are compared as floats.
    train_hashes = pd.util.hash_pandas_object(_comparable(X[shared]), index=False).to_numpy()
    test_hashes = pd.util.hash_pandas_object(_comparable(test_X[shared]), index=False).to_numpy()
    duplicated = np.isin(test_hashes, train_hashes)
    count = int(duplicated.sum())
    if count == 0:
        return None
    return AuditFinding(
        column=None,
        check=CHECK_TRAIN_TEST_DUPLICATES,
        detail=(
            f"{count} of {len(test_X)} test rows ({count / len(test_X):.1%}) exactly duplicate a "
            f"training row over {len(shared)} feature columns: the test score may be optimistic"
        ),
        statistic=float(count),
        excluded=False,
    )


def _comparable(frame: pd.DataFrame) -> pd.DataFrame:
    """Numeric and boolean columns as float64 (NaN for missing), others unchanged; a new frame."""
    columns = {}
    for column in frame.columns:
        values = frame[column]
        if not isinstance(values.dtype, pd.CategoricalDtype) and (
            pd.api.types.is_bool_dtype(values.dtype) or pd.api.types.is_numeric_dtype(values.dtype)
        ):
            values = pd.Series(
                values.to_numpy(dtype="float64", na_value=np.nan), index=frame.index, name=column
            )
        columns[column] = values
    return pd.DataFrame(columns, index=frame.index)
