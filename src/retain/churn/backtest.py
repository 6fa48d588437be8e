"""Honest evaluation of churn models: evaluation splits, intervals and paired comparisons.

A single evaluation date is a noisy judge (the standard error of one date's ROC-AUC on ~13,000
customers is about 0.009), so retain evaluates on several splits and reports:

- per split and on average: ROC-AUC, PR-AUC, Brier, lift in the top decile;
- a 95% interval for the average ROC-AUC from a bootstrap that resamples customers within each
  split, a customer's rows together (:func:`metrics_with_interval`);
- for two models scored on the same rows, a paired bootstrap of their ROC-AUC difference
  (:func:`paired_comparison`): the mean difference, its 95% interval and the one-sided share
  of resamples in which the candidate is not better. A candidate "beats" another only when the
  lower end of that interval is above zero.

Splits are either dates (a *backtest*: each evaluation date is predicted by a model trained only
on dates whose label windows closed by then) or folds of customers (flat tables, or dated data
too short for a backtest).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from retain import evaluation

N_BOOTSTRAP = 400


@dataclass(frozen=True)
class Split:
    """One evaluation split: rows to fit on and rows to evaluate, as boolean masks."""

    name: str
    fit: np.ndarray
    evaluate: np.ndarray


@dataclass(frozen=True)
class Comparison:
    """A paired comparison of a candidate with a reference on the same evaluation rows."""

    candidate: str
    reference: str
    metric: str
    difference: float
    low: float
    high: float
    p_not_better: float

    @property
    def better(self) -> bool:
        """The candidate is better: the 95% interval of the difference lies above zero."""
        return self.low > 0

    def describe(self, names: bool = True) -> str:
        prefix = f"{self.candidate} vs {self.reference}: " if names else ""
        return (
            f"{prefix}paired {self.metric} difference {self.difference:+.4f}, 95% interval "
            f"{self.low:+.4f} to {self.high:+.4f} over the same customers and splits"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "candidate": self.candidate,
            "reference": self.reference,
            "metric": self.metric,
            "difference": self.difference,
            "low": self.low,
            "high": self.high,
            "p_not_better": self.p_not_better,
        }


def split_metrics(predictions: pd.DataFrame, column: str) -> pd.DataFrame:
    """Metrics of one model's ``column`` per split (``split``, ``churned`` columns)."""
    rows = []
    for name, part in predictions.groupby("split", sort=False):
        y = part["churned"].to_numpy()
        if np.unique(y).size < 2:
            continue
        rows.append({"split": name, **evaluation.churn_metrics(y, part[column].to_numpy())})
    return pd.DataFrame(rows)


def metrics_with_interval(
    predictions: pd.DataFrame, column: str, random_state: int = 0
) -> dict[str, float]:
    """Average metrics over splits, and a bootstrap 95% interval of the average ROC-AUC.

    Parameters
    ----------
    predictions:
        ``split``, ``churned`` and the probability ``column``, one row per evaluated customer.
    column:
        Which model's probabilities to judge.

    Returns
    -------
    dict
        ``roc_auc``, ``pr_auc``, ``brier``, ``lift_at_10`` (means over splits), ``roc_auc_low``,
        ``roc_auc_high`` (95% bootstrap interval), ``n`` (rows), ``base_rate`` and ``splits``.
    """
    per_split = split_metrics(predictions, column)
    if per_split.empty:
        raise ValueError("no evaluation split has both churners and non-churners")
    out = {
        key: float(per_split[key].mean())
        for key in ("roc_auc", "pr_auc", "brier", "lift_at_10")
    }
    draws = _bootstrap_auc(predictions, [column], random_state)[:, 0]
    out["roc_auc_low"], out["roc_auc_high"] = (float(v) for v in np.nanpercentile(draws, [2.5, 97.5]))
    out["n"] = float(len(predictions))
    out["base_rate"] = float(predictions["churned"].mean())
    out["splits"] = float(len(per_split))
    return out


def paired_comparison(
    predictions: pd.DataFrame,
    candidate: str,
    reference: str,
    random_state: int = 0,
) -> Comparison:
    """Paired bootstrap of the average-over-splits ROC-AUC difference ``candidate - reference``."""
    draws = _bootstrap_auc(predictions, [candidate, reference], random_state)
    diff = draws[:, 0] - draws[:, 1]
    point = _mean_auc(predictions, candidate) - _mean_auc(predictions, reference)
    low, high = np.nanpercentile(diff, [2.5, 97.5])
    return Comparison(
        candidate=candidate,
        reference=reference,
        metric="roc_auc",
        difference=float(point),
        low=float(low),
        high=float(high),
        p_not_better=float(np.nanmean(diff <= 0)),
    )


def _mean_auc(predictions: pd.DataFrame, column: str) -> float:
    aucs = [
        roc_auc_score(part["churned"], part[column])
        for _, part in predictions.groupby("split", sort=False)
        if part["churned"].nunique() == 2
    ]
    return float(np.mean(aucs))


def _bootstrap_auc(
    predictions: pd.DataFrame, columns: Sequence[str], random_state: int
) -> np.ndarray:
    """``N_BOOTSTRAP x len(columns)`` average ROC-AUCs, resampling customers within each split.

    The same resampled customers serve every column, so differences are paired. A customer with
    several rows in a split (customer-grouped folds over several dates) is drawn as a whole.
    """
    rng = np.random.default_rng(random_state)
    parts = []
    for _, part in predictions.groupby("split", sort=False):
        if part["churned"].nunique() != 2:
            continue
        ids = part["customer_id"].astype(str).to_numpy() if "customer_id" in part else np.arange(len(part))
        codes, uniques = pd.factorize(ids)
        parts.append((part["churned"].to_numpy(), part[list(columns)].to_numpy(dtype=float), codes, len(uniques)))
    out = np.full((N_BOOTSTRAP, len(columns)), np.nan)
    for b in range(N_BOOTSTRAP):
        aucs = []
        for y, scores, codes, n_customers in parts:
            if n_customers == len(y):
                idx = rng.integers(0, len(y), len(y))
                yb = y[idx]
                if yb.min() == yb.max():
                    continue
                aucs.append([_fast_auc(yb, scores[idx, j]) for j in range(len(columns))])
                continue
            weights = np.bincount(rng.integers(0, n_customers, n_customers), minlength=n_customers)[codes]
            keep = weights > 0
            if y[keep].min() == y[keep].max():
                continue
            aucs.append(
                [roc_auc_score(y[keep], scores[keep, j], sample_weight=weights[keep]) for j in range(len(columns))]
            )
        if aucs:
            out[b] = np.mean(aucs, axis=0)
    return out


def _fast_auc(y: np.ndarray, s: np.ndarray) -> float:
    """ROC-AUC by ranks (ties averaged): the Mann-Whitney statistic."""
    ranks = pd.Series(s).rank(method="average").to_numpy()
    positives = y == 1
    n_pos = positives.sum()
    n_neg = len(y) - n_pos
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
