"""Monitoring between trainings: input drift, theme surges, score drift, performance before labels.

Pure functions: DataFrames and arrays in, numbers and DataFrames out, settings as arguments.
``retain score`` (``jobs.run_score``) calls :func:`monitor_run` with the reference saved at
training (:func:`drift_reference`, stored beside the registered churn model) and the run's
feature table, probabilities and feedback scores; docs/monitoring.md has every formula.

- **Feature drift** (:func:`feature_drift`): the population stability index (PSI) of each model
  input against the reference rows, on quantile bins of the reference (numeric) or on levels
  (categorical), a missing value being a bin of its own; and for numeric features the
  two-sample Kolmogorov-Smirnov statistic (``scipy.stats.ks_2samp``).
- **Score drift**: the PSI of the churn probabilities against the reference probabilities.
- **Theme surges** (:func:`theme_surge`): a theme's share of the feedback in the latest complete
  week against its share in the weeks before.
- **Performance before labels** (:func:`estimated_roc_auc`): confidence-based performance
  estimation (CBPE, as NannyML's): each calibrated probability is the chance its label is 1,
  and the ROC-AUC expected under those labels is computed from the probabilities alone.
- **Realised performance** (:func:`realised_performance`): once an earlier run's horizon has
  passed, its probabilities against the labels the data now shows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

#: Shares below this are raised to it before the PSI's logarithm (an empty bin would be infinite).
PSI_EPSILON = 1e-4
#: The reference probabilities' column in a reference table.
PROBABILITY = "churn_probability"
_MISSING = "__missing__"


# --- drift of one column ---------------------------------------------------------------------


def _is_categorical(values: pd.Series) -> bool:
    return isinstance(values.dtype, pd.CategoricalDtype) or values.dtype == object or pd.api.types.is_bool_dtype(
        values.dtype
    ) or pd.api.types.is_string_dtype(values.dtype)


def _bin_labels(reference: pd.Series, current: pd.Series, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Bin codes of both samples: quantile bins of the reference, or levels; missing is its own bin."""
    if _is_categorical(reference) or _is_categorical(current):
        ref = reference.astype(object).where(reference.notna(), _MISSING).astype(str).to_numpy()
        cur = current.astype(object).where(current.notna(), _MISSING).astype(str).to_numpy()
        levels = np.unique(np.concatenate([ref, cur]))
        return np.searchsorted(levels, ref), np.searchsorted(levels, cur)
    ref_values = reference.to_numpy(dtype=float)
    cur_values = current.to_numpy(dtype=float)
    known = ref_values[~np.isnan(ref_values)]
    # Interior edges at the reference's quantiles; ties collapse (a count that is mostly 0 has few bins).
    edges = np.unique(np.quantile(known, np.linspace(0, 1, bins + 1)[1:-1])) if known.size else np.empty(0)

    def codes(values: np.ndarray) -> np.ndarray:
        out = np.searchsorted(edges, values, side="right")
        return np.where(np.isnan(values), edges.size + 1, out)

    return codes(ref_values), codes(cur_values)


def _psi_of_codes(reference: np.ndarray, current: np.ndarray, epsilon: float) -> float:
    n = int(max(reference.max(initial=-1), current.max(initial=-1))) + 1
    ref_share = np.bincount(reference, minlength=n) / max(reference.size, 1)
    cur_share = np.bincount(current, minlength=n) / max(current.size, 1)
    ref_share = np.maximum(ref_share, epsilon)
    cur_share = np.maximum(cur_share, epsilon)
    return float(np.sum((cur_share - ref_share) * np.log(cur_share / ref_share)))


def population_stability_index(
    reference: pd.Series | np.ndarray | Sequence[Any],
    current: pd.Series | np.ndarray | Sequence[Any],
    bins: int = 10,
    epsilon: float = PSI_EPSILON,
) -> float:
    """The population stability index of ``current`` against ``reference``.

    ``PSI = sum_b (c_b - r_b) * ln(c_b / r_b)`` over bins ``b``, where ``r_b`` and ``c_b`` are
    the shares of the reference and current values in the bin (each raised to ``epsilon`` at
    least). Numeric values are binned at the reference's ``bins``-quantiles (ties merge bins);
    categorical values (pandas category, object, string, bool) by level; a missing value is a bin
    of its own in both cases.

    Parameters
    ----------
    reference, current
        The two samples of one variable.
    bins
        Quantile bins of the reference for numeric values.
    epsilon
        Floor of a bin's share.

    Returns
    -------
    float
        0 for identical distributions; about 0.1 is a moderate shift, 0.2 and above a large one.
    """
    ref = pd.Series(reference)
    cur = pd.Series(current)
    if ref.empty or cur.empty:
        return math.nan
    codes_ref, codes_cur = _bin_labels(ref, cur, bins)
    return _psi_of_codes(codes_ref, codes_cur, epsilon)


def ks_statistic(reference: pd.Series | np.ndarray, current: pd.Series | np.ndarray) -> float:
    """The two-sample Kolmogorov-Smirnov statistic of the known (non-missing) numeric values.

    The largest distance between the two empirical distribution functions
    (``scipy.stats.ks_2samp``); NaN when either sample has no known value.
    """
    from scipy.stats import ks_2samp

    ref = np.asarray(reference, dtype=float)
    cur = np.asarray(current, dtype=float)
    ref, cur = ref[~np.isnan(ref)], cur[~np.isnan(cur)]
    if not ref.size or not cur.size:
        return math.nan
    return float(ks_2samp(ref, cur).statistic)


def feature_drift(
    reference_table: pd.DataFrame,
    current_table: pd.DataFrame,
    features: Sequence[str],
    bins: int = 10,
    psi_warn: float = 0.2,
    ks_warn: float | None = None,
) -> pd.DataFrame:
    """PSI (and KS for numeric features) of each feature, current against reference.

    Returns
    -------
    pandas.DataFrame
        One row per feature in ``features`` order: ``feature``, ``psi``, ``ks`` (NaN for a
        categorical feature), ``flag`` (``psi > psi_warn``, or ``ks > ks_warn`` when given).
        A feature missing from either table is left out.
    """
    rows = []
    for name in features:
        if name not in reference_table.columns or name not in current_table.columns:
            continue
        ref, cur = reference_table[name], current_table[name]
        psi = population_stability_index(ref, cur, bins)
        ks = math.nan if _is_categorical(ref) or _is_categorical(cur) else ks_statistic(ref, cur)
        flag = bool(psi > psi_warn) or bool(ks_warn is not None and not math.isnan(ks) and ks > ks_warn)
        rows.append({"feature": name, "psi": psi, "ks": ks, "flag": flag})
    return pd.DataFrame(rows, columns=["feature", "psi", "ks", "flag"])


# --- themes ------------------------------------------------------------------------------------


def weekly_theme_shares(scores: pd.DataFrame, as_of: pd.Timestamp, weeks: int) -> pd.DataFrame:
    """Each theme's share of the feedback per week, for the ``weeks + 1`` weeks up to ``as_of``.

    Week 0 is ``(as_of - 7 days, as_of]`` (the latest complete week: ``as_of`` is a midnight and
    a row at exactly ``as_of`` is known then), week 1 the seven days before, and so on. A theme's
    share in a week is the mean of its probability (``theme_<id>`` columns) over that week's
    rows: the expected share of the feedback that raises it (themes are not exclusive, so the
    shares need not sum to 1). Rows after ``as_of`` or older than the oldest week are ignored.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``week`` (0 = latest), columns ``n`` (rows) and one per theme id; weeks with
        no row have ``n`` 0 and NaN shares.
    """
    themes = [c for c in scores.columns if c.startswith("theme_")]
    as_of = pd.Timestamp(as_of)
    created = pd.to_datetime(scores["created_at"])
    age_days = (as_of - created) / pd.Timedelta(days=1)
    # age in [0, 7) days is (as_of - 7 days, as_of]: week 0
    week = np.floor(age_days.to_numpy(dtype=float) / 7.0)
    keep = (age_days.to_numpy(dtype=float) >= 0) & (week <= weeks)
    frame = scores.loc[keep, themes].astype(float).assign(week=week[keep].astype(int))
    grouped = frame.groupby("week")
    shares = grouped[themes].mean().rename(columns=lambda c: c.removeprefix("theme_"))
    shares.insert(0, "n", grouped.size())
    return shares.reindex(pd.RangeIndex(weeks + 1, name="week")).assign(n=lambda s: s["n"].fillna(0).astype(int))


def theme_surge(
    scores: pd.DataFrame,
    as_of: pd.Timestamp,
    weeks: int = 8,
    sd: float = 3.0,
    min_increase: float = 0.02,
    min_feedback: int = 20,
    min_weeks: int = 4,
) -> pd.DataFrame:
    """Themes whose share of the latest complete week is above their recent range.

    The recent range of a theme is the ``weeks`` weeks before the latest (:func:`weekly_theme_shares`):
    a surge is a latest share above ``mean + sd * standard deviation`` of those weekly shares
    **and** at least ``min_increase`` (absolute) above their mean, when the latest week has at
    least ``min_feedback`` rows and at least ``min_weeks`` earlier weeks have feedback. The
    absolute floor keeps a theme whose share barely moves (standard deviation near 0) from
    flagging on noise.

    Parameters
    ----------
    scores
        One row per feedback: ``created_at`` and ``theme_<id>`` probabilities (the text scores
        of the scoring run joined to the feedback's dates); only rows dated ``<= as_of`` count.

    Returns
    -------
    pandas.DataFrame
        One row per theme: ``theme``, ``share`` (latest week), ``recent_mean``, ``recent_sd``,
        ``upper`` (the larger of the two bounds), ``n_latest``, ``weeks_used``, ``surge``
        (bool; False when not evaluated).
    """
    shares = weekly_theme_shares(scores, as_of, weeks)
    themes = [c for c in shares.columns if c != "n"]
    latest, before = shares.loc[0], shares.loc[1:]
    before = before.loc[before["n"] > 0]
    rows = []
    for theme in themes:
        recent = before[theme].to_numpy(dtype=float)
        mean = float(recent.mean()) if recent.size else math.nan
        spread = float(recent.std(ddof=1)) if recent.size > 1 else math.nan
        upper = max(mean + sd * spread, mean + min_increase) if recent.size > 1 else math.nan
        share = float(latest[theme])
        evaluated = int(latest["n"]) >= min_feedback and recent.size >= min_weeks
        rows.append(
            {
                "theme": theme, "share": share, "recent_mean": mean, "recent_sd": spread, "upper": upper,
                "n_latest": int(latest["n"]), "weeks_used": int(recent.size),
                "surge": bool(evaluated and share > upper),
            }
        )
    return pd.DataFrame(
        rows, columns=["theme", "share", "recent_mean", "recent_sd", "upper", "n_latest", "weeks_used", "surge"]
    )


# --- performance -------------------------------------------------------------------------------


def estimated_roc_auc(probabilities: np.ndarray | Sequence[float]) -> float:
    """The ROC-AUC expected when each label is 1 with its (calibrated) probability (CBPE).

    With labels drawn ``y_i ~ Bernoulli(p_i)`` and scores ``s_i = p_i``, the expected number of
    correctly ordered (positive, negative) pairs of distinct customers over the expected number
    of such pairs:

    ``sum_{i != j} p_i (1 - p_j) [s_i > s_j] + 1/2 [s_i = s_j]``  over
    ``sum_i p_i * sum_j (1 - p_j) - sum_i p_i (1 - p_i)``.

    Computed as NannyML's CBPE does, in ``O(n log n)``: the expected ROC curve
    ``tpr(t) = sum_{s >= t} p / sum p``, ``fpr(t) = sum_{s >= t} (1 - p) / sum (1 - p)``
    (tied scores one step) integrated with the trapezoid rule, which also counts each customer
    paired with itself as half a correct pair; that term is taken out of both sums.
    Trustworthy only when the probabilities are calibrated on the population scored.

    Returns
    -------
    float
        NaN with fewer than two customers or when every probability is 0 or every one is 1.
    """
    p = np.clip(np.asarray(probabilities, dtype=float), 0.0, 1.0)
    if p.size < 2:
        return math.nan
    order = np.argsort(-p, kind="stable")
    ordered = p[order]
    # one step per distinct score, highest first
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    positives = np.add.reduceat(ordered, starts)
    negatives = np.add.reduceat(1.0 - ordered, starts)
    total_pos, total_neg = positives.sum(), negatives.sum()
    self_pairs = float(np.sum(p * (1.0 - p)))
    pairs = total_pos * total_neg - self_pairs
    if pairs <= 0:
        return math.nan
    tp = np.r_[0.0, np.cumsum(positives)]
    fp = np.r_[0.0, np.cumsum(negatives)]
    # trapezoid area in counts: sum over steps of (fp step) * (tp before + tp after) / 2
    area = float(np.sum(np.diff(fp) * (tp[1:] + tp[:-1]) / 2.0))
    return (area - 0.5 * self_pairs) / pairs


def realised_performance(probabilities: np.ndarray, churned: np.ndarray) -> dict[str, float]:
    """ROC-AUC, PR-AUC (average precision) and Brier score of probabilities against their labels.

    Also the CBPE estimate of the same probabilities (:func:`estimated_roc_auc`) and its error
    (``estimate_error`` = estimated - realised), the churn rate and the count.
    """
    from retain.evaluation import churn_metrics

    metrics = churn_metrics(np.asarray(churned), np.asarray(probabilities, dtype=float))
    estimate = estimated_roc_auc(probabilities)
    return {
        "roc_auc": metrics["roc_auc"],
        "pr_auc": metrics["pr_auc"],
        "brier": metrics["brier"],
        "churn_rate": metrics["base_rate"],
        "estimated_roc_auc": estimate,
        "estimate_error": estimate - metrics["roc_auc"],
        "customers": int(metrics["n"]),
    }


# --- the reference and one run's monitoring ----------------------------------------------------


@dataclass(frozen=True)
class DriftReference:
    """What a scoring run's inputs and scores are compared with: saved when the model is trained.

    ``rows`` holds the model's input features and :data:`PROBABILITY` for a fixed sample of the
    customers of ``as_of`` (:func:`drift_reference`); ``roc_auc`` is the model's ROC-AUC in
    training's evaluation (the backtest), the yardstick of the estimated ROC-AUC.
    """

    rows: pd.DataFrame
    as_of: str | None
    roc_auc: float | None

    def describe(self) -> dict[str, Any]:
        """The reference as the summary records it (no rows)."""
        return {"as_of": self.as_of, "rows": len(self.rows), "roc_auc_in_training": _number(self.roc_auc)}


def drift_reference(
    table: pd.DataFrame,
    features: Sequence[str],
    probabilities: np.ndarray,
    max_rows: int = 5000,
) -> pd.DataFrame:
    """A capped sample of the reference rows: the features (as the model reads them) and probabilities.

    The rows are drawn by a hash of ``customer_id`` (the same customers whatever the order) when
    ``table`` has more than ``max_rows``; the result has no customer id.
    """
    frame = table.loc[:, list(features)].reset_index(drop=True)
    frame[PROBABILITY] = np.asarray(probabilities, dtype=float)
    if len(frame) > max_rows:
        ids = table["customer_id"].astype(str).reset_index(drop=True) if "customer_id" in table else pd.Series(
            np.arange(len(table)).astype(str)
        )
        hashed = pd.util.hash_pandas_object(ids, index=False).to_numpy()
        frame = frame.iloc[np.sort(np.argsort(hashed, kind="stable")[:max_rows])].reset_index(drop=True)
    return frame


@dataclass
class MonitoringResult:
    """One scoring run's monitoring: what goes into the summary, and the breaches as lines."""

    section: dict[str, Any]
    breaches: list[str] = field(default_factory=list)


def monitor_run(
    probabilities: np.ndarray,
    settings: Any,
    reference: DriftReference | None = None,
    table: pd.DataFrame | None = None,
    features: Sequence[str] = (),
    feedback_scores: pd.DataFrame | None = None,
    as_of: pd.Timestamp | None = None,
    realised: Sequence[dict[str, Any]] = (),
    notes: Sequence[str] = (),
) -> MonitoringResult:
    """Every check of one scoring run against ``settings`` (``config.MonitoringConfig``).

    Parameters
    ----------
    probabilities
        The run's churn probabilities.
    reference
        Saved with the churn model at training; None for a model registered before monitoring
        existed: drift is then skipped and a note says so.
    table
        The run's feature table (model inputs), for feature drift.
    features
        The model's input features.
    feedback_scores
        ``created_at`` and ``theme_<id>`` probabilities of the feedback the run scored, for surges.
    realised
        Realised performance of earlier runs whose labels are now observed (one dict per run,
        :func:`realised_performance` plus ``as_of``), recorded as given.
    notes
        What could not be checked and why, recorded as given.

    Returns
    -------
    MonitoringResult
        ``section``: ``estimated_roc_auc``, ``reference``, ``score_psi``, ``features`` (every
        feature's ``psi``, ``ks``, ``flag``), ``drifted_features``, ``theme_surges``, ``realised``,
        ``breaches``, ``breach`` and ``notes``; rounded to 6 decimals so a rerun writes the same
        bytes.
    """
    notes = list(notes)
    breaches: list[str] = []
    estimate = estimated_roc_auc(probabilities)
    section: dict[str, Any] = {"estimated_roc_auc": _number(estimate), "reference": None, "score_psi": None}
    if settings.min_estimated_roc_auc is not None and not math.isnan(estimate) and estimate < settings.min_estimated_roc_auc:
        breaches.append(f"estimated ROC-AUC {estimate:.3f} < {settings.min_estimated_roc_auc}")
    drift = pd.DataFrame(columns=["feature", "psi", "ks", "flag"])
    if reference is None:
        notes.append("no drift reference saved with this churn model (trained before monitoring): drift not checked")
    else:
        section["reference"] = reference.describe()
        if reference.roc_auc is not None and settings.max_roc_auc_drop is not None and not math.isnan(estimate):
            drop = reference.roc_auc - estimate
            section["estimated_roc_auc_drop"] = _number(drop)
            if drop > settings.max_roc_auc_drop:
                breaches.append(
                    f"estimated ROC-AUC {estimate:.3f} is {drop:.3f} below training's {reference.roc_auc:.3f} "
                    f"(> {settings.max_roc_auc_drop})"
                )
        score_psi = population_stability_index(reference.rows[PROBABILITY], probabilities, settings.bins)
        section["score_psi"] = _number(score_psi)
        if score_psi > settings.score_psi_warn:
            breaches.append(f"score psi {score_psi:.3f} > {settings.score_psi_warn}")
        if table is not None:
            drift = feature_drift(reference.rows, table, features, settings.bins, settings.psi_warn, settings.ks_warn)
            for row in drift.itertuples():
                if row.psi > settings.psi_warn:
                    breaches.append(f"feature {row.feature} psi {row.psi:.3f} > {settings.psi_warn}")
                elif row.flag:
                    breaches.append(f"feature {row.feature} ks {row.ks:.3f} > {settings.ks_warn}")
    section["features"] = [
        {"feature": r.feature, "psi": _number(r.psi), "ks": _number(r.ks), "flag": bool(r.flag)}
        for r in drift.itertuples()
    ]
    section["drifted_features"] = [r.feature for r in drift.itertuples() if r.flag]
    surges: list[dict[str, Any]] = []
    if feedback_scores is not None and as_of is not None and any(c.startswith("theme_") for c in feedback_scores.columns):
        surge = settings.theme_surge
        found = theme_surge(
            feedback_scores, as_of, surge.weeks, surge.sd, surge.min_increase, surge.min_feedback, surge.min_weeks
        )
        for row in found.loc[found["surge"]].itertuples():
            surges.append(
                {"theme": row.theme, "share": _number(row.share), "recent_mean": _number(row.recent_mean),
                 "upper": _number(row.upper), "feedback_latest_week": int(row.n_latest)}
            )
            breaches.append(f"theme {row.theme} surge: share {row.share:.3f} > {row.upper:.3f} (recent range)")
        section["themes_checked"] = int((found["n_latest"] >= surge.min_feedback).sum()) if len(found) else 0
    section["theme_surges"] = surges
    section["realised"] = [{k: _number(v) if isinstance(v, float) else v for k, v in r.items()} for r in realised]
    section["breaches"] = breaches
    section["breach"] = bool(breaches)
    section["thresholds"] = {
        "psi": settings.psi_warn, "ks": settings.ks_warn, "score_psi": settings.score_psi_warn,
        "min_estimated_roc_auc": settings.min_estimated_roc_auc, "max_roc_auc_drop": settings.max_roc_auc_drop,
    }
    section["notes"] = notes
    return MonitoringResult(section=section, breaches=breaches)


def _number(value: Any) -> float | None:
    """A float rounded to 6 decimals, or None when missing or not finite (JSON has no NaN)."""
    if value is None:
        return None
    number = float(value)
    return round(number, 6) if math.isfinite(number) else None
