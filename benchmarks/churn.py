"""Churn benchmarks (C1-C5 of PROTOCOLS.md).

Implemented: C1. Every churn benchmark also runs the package's logistic baseline on the same
folds in the same process, first, so each figure has a same-run comparison and the baseline's
``peak_rss_mb`` is not inflated by the main model. The package, pandas and scikit-learn are
imported inside functions (see ``benchmarks.text``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.harness import (
    NO_ANCHOR,
    Anchor,
    BenchmarkRun,
    Goal,
    as_metric_dict,
    benchmark,
    process_peak_rss_mb,
    seeded,
    timed,
)

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

TELCO = "ibm_telco_churn/Telco-Customer-Churn.csv"
N_FOLDS = 5
CHURN_METRICS = ("roc_auc", "pr_auc", "lift_at_10", "brier")
MAIN_MODEL = "retain ChurnClassifier (churn_model.ChurnClassifier)"
BASELINE_MODEL = "logistic baseline"

C1_ROC_AUC_ANCHORS = [
    Anchor("LR", 0.845, "here"),
    Anchor("tuned HGB", 0.846, "here"),
    Anchor("rank blend of LR and tuned HGB", 0.849, "here"),
    Anchor("several GBMs, low end of range", 0.843, "published"),
    Anchor("several GBMs, high end of range", 0.861, "published"),
]
C1_GOALS = {"roc_auc": Goal(">=", 0.86), "lift_at_10": Goal(">=", 3.0)}


@dataclass(frozen=True)
class CrossValidated:
    """Per-fold metrics and timings of one model over fixed folds."""

    model: str
    folds: list[dict[str, float]]
    seconds_train: float  # mean per fold
    seconds_predict: float  # mean per fold
    peak_rss_mb: float  # process peak when this model finished

    def mean(self, metric: str) -> float:
        return sum(fold[metric] for fold in self.folds) / len(self.folds)

    def per_fold(self, metric: str) -> list[float]:
        return [round(fold[metric], 6) for fold in self.folds]


def stratified_folds(y: np.ndarray, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The C1/C3/C4 folds: ``StratifiedKFold(5, shuffle=True, random_state=0)``."""
    import numpy as np
    from sklearn.model_selection import StratifiedKFold

    splitter = StratifiedKFold(n_splits=N_FOLDS, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(y)), y))


def cross_validate_churn(
    name: str,
    make_model: Callable[[], Any],
    X: pd.DataFrame,
    y: np.ndarray,
    folds: Sequence[tuple[np.ndarray, np.ndarray]],
    seed: int,
) -> CrossValidated:
    """Fit a fresh model per fold and score the held-out rows with ``retain.evaluation``."""
    import logging

    from retain.evaluation import churn_metrics

    log = logging.getLogger(__name__)
    fold_metrics, train_s, predict_s = [], [], []
    for i, (train_idx, test_idx) in enumerate(folds):
        model = seeded(make_model(), seed)
        _, seconds = timed(model.fit, X.iloc[train_idx], y[train_idx])
        train_s.append(seconds)
        proba, seconds = timed(model.predict_proba, X.iloc[test_idx])
        predict_s.append(seconds)
        churn_column = list(model.classes_).index(1)
        metrics = as_metric_dict(churn_metrics(y[test_idx], proba[:, churn_column]))
        fold_metrics.append(metrics)
        log.info("%s fold %d: roc_auc %.4f", name, i, metrics["roc_auc"])
    return CrossValidated(
        model=name,
        folds=fold_metrics,
        seconds_train=sum(train_s) / len(train_s),
        seconds_predict=sum(predict_s) / len(predict_s),
        peak_rss_mb=process_peak_rss_mb(),
    )


def record_cross_validated(
    run: BenchmarkRun,
    result: CrossValidated,
    *,
    dataset: str,
    anchors: dict[str, list[Anchor]],
    goals: dict[str, Goal],
    **extra: Any,
) -> None:
    """One record per churn metric: the mean over folds, the folds kept in ``folds``."""
    for metric in CHURN_METRICS:
        anchor, *others = anchors.get(metric) or [NO_ANCHOR]
        run.record(
            dataset=dataset,
            metric=metric,
            value=result.mean(metric),
            model=result.model,
            anchor=anchor,
            other_anchors=others,
            goal=goals.get(metric),
            seconds_train=result.seconds_train,
            seconds_predict=result.seconds_predict,
            peak_rss_mb=result.peak_rss_mb,
            folds=result.per_fold(metric),
            **extra,
        )


def with_same_run_baseline(
    anchors: dict[str, list[Anchor]], baseline: CrossValidated
) -> dict[str, list[Anchor]]:
    """The main model's anchors: the protocol's first, then the same-run baseline.

    Where the protocol names no anchor for a metric, the same-run baseline is the anchor.
    """
    merged = {}
    for metric in CHURN_METRICS:
        same_run = Anchor(BASELINE_MODEL, round(baseline.mean(metric), 6), "same run")
        merged[metric] = [*anchors.get(metric, []), same_run]
    return merged


def load_telco(path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """Telco features and 0/1 label: customerID dropped, blank TotalCharges -> missing."""
    import pandas as pd

    telco = pd.read_csv(path)
    y = (telco["Churn"] == "Yes").astype(int).to_numpy()
    X = telco.drop(columns=["customerID", "Churn"])
    X["TotalCharges"] = pd.to_numeric(X["TotalCharges"], errors="coerce")  # " " -> NaN
    return X, y


@benchmark("C1", "telco", data=[TELCO])
def telco(run: BenchmarkRun) -> None:
    """IBM Telco, 5-fold stratified CV: ChurnClassifier and the logistic baseline, same folds."""
    from retain.churn.model import ChurnClassifier, make_logistic_baseline

    X, y = load_telco(run.data_path(TELCO))
    folds = stratified_folds(y, run.seed)
    anchors = {"roc_auc": C1_ROC_AUC_ANCHORS}
    extra = {"n_rows": len(y), "n_folds": N_FOLDS}

    baseline = cross_validate_churn(BASELINE_MODEL, make_logistic_baseline, X, y, folds, run.seed)
    ours = cross_validate_churn(MAIN_MODEL, ChurnClassifier, X, y, folds, run.seed)

    record_cross_validated(
        run,
        ours,
        dataset=TELCO,
        anchors=with_same_run_baseline(anchors, baseline),
        goals=C1_GOALS,
        model_params=seeded(ChurnClassifier(), run.seed).get_params(),
        **extra,
    )
    record_cross_validated(run, baseline, dataset=TELCO, anchors=anchors, goals=C1_GOALS, **extra)
