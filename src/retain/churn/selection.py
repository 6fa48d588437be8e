"""Choosing ChurnClassifier settings on validation rows, within a time budget.

:func:`select_churn_settings` tries a short, fixed list of :class:`ChurnClassifier` settings in
order, scores each by ROC-AUC on validation rows (inner folds of the training rows, or one
explicit split such as a later ``as_of`` date), and returns the best. Each candidate's number of
trees is chosen on the same validation rows from one fit (the score after every twentieth of its
trees), which is early stopping without a second fit. Test rows are never passed in: the caller
selects on training rows only and then refits ``ChurnClassifier(**result.params)`` on all of
them.

The candidates go from the regularised (small trees, slow learning, for tables where churn is
close to additive, such as IBM Telco) to the flexible (31 leaves, learning rate 0.1, like
scikit-learn's ``HistGradientBoostingClassifier`` defaults, for tables with strong interactions,
such as BigML's telecom table). Neither end wins everywhere, so the choice is made per table.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from retain.churn.model import ChurnClassifier

logger = logging.getLogger(__name__)

DEFAULT_CANDIDATES: tuple[Mapping[str, Any], ...] = (
    # The regularised setting: slow learning, small smooth trees.
    {"learning_rate": 0.02, "n_estimators": 400, "num_leaves": 8, "min_child_samples": 40},
    # Like HistGradientBoostingClassifier's defaults: interactions up to 31 leaves deep.
    {"learning_rate": 0.1, "n_estimators": 300, "num_leaves": 31, "min_child_samples": 20},
    # In between.
    {"learning_rate": 0.05, "n_estimators": 400, "num_leaves": 16, "min_child_samples": 20},
    # Near-additive: stumps-like trees of 4 leaves, for tables where a logistic model is hard
    # to beat.
    {"learning_rate": 0.02, "n_estimators": 600, "num_leaves": 4, "min_child_samples": 80},
)
"""Settings tried in this order; the first two are always tried, the rest while time remains."""

CHECKPOINTS = 20
"""How many tree counts per candidate are scored: every twentieth of its ``n_estimators``."""

N_TREES_TOLERANCE = 0.0001
"""The fewest trees whose mean validation ROC-AUC is within this of the best are chosen.

Only near-exact ties go to fewer trees: a looser 0.0005 chose tree counts that scored below the
candidate's full count on the very same validation rows of the credit-card churners (ROC-AUC
0.993, where 0.0005 is 7% of the remaining error)."""

Split = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class SelectionResult:
    """The chosen settings and how every candidate did on the validation rows.

    Attributes
    ----------
    params
        Keyword arguments for :class:`ChurnClassifier` (the chosen candidate, with its
        ``n_estimators`` as chosen on validation and ``random_state``).
    scores
        One row per candidate, in the order tried: ``candidate`` (its position), ``params``,
        ``evaluated`` (False once the time budget was spent), ``roc_auc`` (mean validation
        ROC-AUC at the chosen tree count), ``roc_auc_all_trees``, ``n_estimators`` (chosen),
        ``fold_roc_auc`` (per split) and ``seconds``.
    tuned_on
        What the validation rows were, for the record, e.g. ``"3 inner stratified folds of the
        training rows"``.
    """

    params: dict[str, Any]
    scores: pd.DataFrame
    tuned_on: str


def _validation_splits(
    y: np.ndarray,
    groups: np.ndarray | None,
    validation: int | Split | Sequence[Split],
    random_state: int,
) -> tuple[list[Split], str]:
    """The (fit rows, validation rows) pairs and a description of them."""
    if isinstance(validation, (int, np.integer)) and not isinstance(validation, bool):
        n_folds = int(validation)
        if n_folds < 2:
            raise ValueError(f"validation needs at least 2 inner folds, got {n_folds}")
        if groups is None:
            splitter = StratifiedKFold(n_folds, shuffle=True, random_state=random_state)
            splits = list(splitter.split(np.zeros(len(y)), y))
            return splits, f"{n_folds} inner stratified folds of the training rows"
        splitter = StratifiedGroupKFold(n_folds, shuffle=True, random_state=random_state)
        splits = list(splitter.split(np.zeros(len(y)), y, groups=groups))
        return splits, (
            f"{n_folds} inner stratified folds of the training rows, each group in one fold"
        )
    pairs = [validation] if isinstance(validation, tuple) else list(validation)
    splits = [(np.asarray(fit, dtype=int), np.asarray(val, dtype=int)) for fit, val in pairs]
    for fit_idx, val_idx in splits:
        if np.intersect1d(fit_idx, val_idx).size:
            raise ValueError("a validation split has rows on both its fit and validation side")
    n_val = sum(len(val) for _, val in splits)
    n_fit = sum(len(fit) for fit, _ in splits)
    what = "an explicit validation split" if len(splits) == 1 else f"{len(splits)} explicit splits"
    return splits, f"{what} ({n_fit} fit rows, {n_val} validation rows)"


def _rows(X: Any, idx: np.ndarray) -> Any:
    return X.iloc[idx] if isinstance(X, pd.DataFrame) else np.asarray(X)[idx]


def _checkpoint_scores(
    params: Mapping[str, Any],
    X: Any,
    y: np.ndarray,
    groups: np.ndarray | None,
    splits: list[Split],
) -> tuple[np.ndarray, np.ndarray]:
    """Tree counts and validation ROC-AUC at each (rows: splits, columns: tree counts)."""
    n_estimators = int(params["n_estimators"])
    counts = np.unique(np.linspace(n_estimators / CHECKPOINTS, n_estimators, CHECKPOINTS))
    counts = np.unique(np.maximum(1, np.round(counts).astype(int)))
    scores = np.empty((len(splits), counts.size))
    for i, (fit_idx, val_idx) in enumerate(splits):
        # Calibration is a monotone map and cannot change ROC-AUC (isotonic aside, which only
        # ties scores), so the booster is fitted alone: a quarter of the work.
        model = ChurnClassifier(**{**params, "calibration": None}).fit(
            _rows(X, fit_idx),
            y[fit_idx],
            groups=None if groups is None else groups[fit_idx],
        )
        X_val = _rows(X, val_idx)
        positive = y[val_idx] == model.classes_[1]
        if positive.all() or not positive.any():
            raise ValueError("a validation split holds only one class; ROC-AUC is undefined")
        for j, n_trees in enumerate(counts):
            scores[i, j] = roc_auc_score(positive, model.raw_margin(X_val, n_trees=int(n_trees)))
    return counts, scores


def select_churn_settings(
    X: Any,
    y: Any,
    *,
    groups: Any = None,
    validation: int | Split | Sequence[Split] = 3,
    candidates: Sequence[Mapping[str, Any]] | None = None,
    time_budget_s: float = 60,
    random_state: int = 0,
    n_jobs: int = 1,
    tuned_on: str | None = None,
) -> SelectionResult:
    """Choose ChurnClassifier settings by ROC-AUC on validation rows, within a time budget.

    Candidates are tried in their given order; after each one, the search stops if
    ``time_budget_s`` is spent, but the first two are always tried. Each candidate is fitted
    once per split; its tree count is chosen among every twentieth of its ``n_estimators`` (the
    fewest trees within 0.0001 of its best mean ROC-AUC). The candidate with the best mean
    ROC-AUC wins; ties go to the earlier one. Everything is deterministic for a given
    ``random_state`` (folds, boosters), whatever the time budget cuts off aside.

    Parameters
    ----------
    X
        Training rows only (DataFrame or array), as for :meth:`ChurnClassifier.fit`.
    y
        Their binary labels. Only rows in some split are read: with an explicit split, labels
        of other rows (e.g. the test rows, or NaN) are never looked at.
    groups
        Optional group per row (e.g. ``customer_id``). With inner folds, each group stays in
        one fold so a customer is never on both sides. An explicit split is the caller's and
        is used as given (for dated data a customer rightly appears at an earlier ``as_of`` on
        the fit side and a later one on the validation side). Candidates are scored without
        calibration, so groups play no other part here; pass them again to
        :meth:`ChurnClassifier.fit` when refitting.
    validation
        An int: that many stratified inner folds of all rows (shuffled with
        ``random_state``). Or one explicit ``(fit_idx, val_idx)`` pair of integer positions
        (e.g. earlier ``as_of`` dates to fit, a later one to validate, for dated data), or a
        list of such tuples.
    candidates
        ChurnClassifier keyword dicts, each with ``n_estimators`` (the most trees to try);
        default :data:`DEFAULT_CANDIDATES`.
    time_budget_s
        Seconds after which no further candidate is started (beyond the first two).
    random_state
        Seed for the inner folds and the candidates' ``random_state`` (unless they set one).
    n_jobs
        LightGBM threads per fit (unless a candidate sets it). One thread is the fastest on
        tables of thousands of rows, and far faster than two on a busy machine, where
        LightGBM's threads wait on each other; it is not part of the returned ``params``.
    tuned_on
        Description of the validation for the record (e.g. ``"validation as_of 2025-07-01"``);
        by default one is written from ``validation``.

    Returns
    -------
    SelectionResult
        The chosen parameters, every candidate's scores and seconds, and ``tuned_on``.
    """
    candidates = list(DEFAULT_CANDIDATES if candidates is None else candidates)
    if not candidates:
        raise ValueError("candidates is empty")
    y = np.asarray(y)
    groups = None if groups is None else np.asarray(groups)
    if groups is not None and len(groups) != len(y):
        raise ValueError(f"groups has {len(groups)} values for {len(y)} rows")
    splits, described = _validation_splits(y, groups, validation, random_state)

    rows: list[dict[str, Any]] = []
    best: tuple[float, dict[str, Any]] | None = None
    started = time.perf_counter()
    for position, candidate in enumerate(candidates):
        params = {"random_state": random_state, **candidate}
        fit_params = {"n_jobs": n_jobs, **params}
        spent = time.perf_counter() - started
        if position >= 2 and spent >= time_budget_s:
            rows.append({"candidate": position, "params": params, "evaluated": False})
            continue
        begun = time.perf_counter()
        counts, scores = _checkpoint_scores(fit_params, X, y, groups, splits)
        mean = scores.mean(axis=0)
        chosen = int(np.flatnonzero(mean >= mean.max() - N_TREES_TOLERANCE)[0])
        seconds = time.perf_counter() - begun
        rows.append(
            {
                "candidate": position,
                "params": params,
                "evaluated": True,
                "roc_auc": float(mean[chosen]),
                "roc_auc_all_trees": float(mean[-1]),
                "n_estimators": int(counts[chosen]),
                "fold_roc_auc": scores[:, chosen].round(6).tolist(),
                "seconds": round(seconds, 3),
            }
        )
        logger.info(
            "candidate %d %s: validation ROC-AUC %.4f with %d trees (%.1f s)",
            position, candidate, mean[chosen], counts[chosen], seconds,
        )
        if best is None or mean[chosen] > best[0]:
            best = (float(mean[chosen]), {**params, "n_estimators": int(counts[chosen])})
    assert best is not None  # the first candidate is always evaluated
    table = pd.DataFrame(rows).set_index("candidate")
    table["n_estimators"] = table["n_estimators"].astype("Int64")  # missing when not evaluated
    return SelectionResult(params=best[1], scores=table, tuned_on=tuned_on or described)
