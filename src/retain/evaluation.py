"""Metrics and plots for the churn and text models: arrays in, dicts of floats or figures out.

Metric names are those of the benchmark protocols (``../shared/benchmarks/PROTOCOLS.md``):
``accuracy``, ``macro_f1``, ``micro_f1``, ``roc_auc``, ``pr_auc``, ``lift_at_10``, ``brier``.

Figures are :class:`matplotlib.figure.Figure` objects built without pyplot, so no global backend
or figure registry is touched (nothing to close, safe in notebooks and threads); they render
through the Agg canvas with ``fig.savefig`` or ``mlflow.log_figure``, and show as PNG when a
notebook cell returns one. matplotlib is imported inside the plotting functions only, so
``import retain.evaluation`` stays light.
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    confusion_matrix,
    f1_score,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

logger = logging.getLogger(__name__)

_FIGSIZE = (6.0, 5.0)


def _binary_arrays(y_true: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true).astype(float).ravel()
    s = np.asarray(scores, dtype=float).ravel()
    if y.shape != s.shape:
        raise ValueError(f"y_true has {y.size} values but scores has {s.size}")
    if y.size == 0:
        raise ValueError("no rows to evaluate")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("y_true must be 0/1")
    if np.isnan(s).any():
        raise ValueError("scores contain NaN")
    return y, s


def lift_at(y_true: Any, scores: Any, fraction: float = 0.1) -> float:
    """Lift in the top ``fraction`` by score: its churn rate divided by the overall churn rate.

    The top group holds ``ceil(fraction * n)`` rows. Rows tied with the score at the cut-off
    count pro rata (the expected value over random tie-breaking), so the result does not depend
    on row order, which matters for step-shaped (e.g. isotonic-calibrated) scores.

    Parameters
    ----------
    y_true
        0/1 outcomes.
    scores
        Risk scores; higher means more likely to churn.
    fraction
        Share of rows in the top group, in ``(0, 1]``.

    Returns
    -------
    float
        The lift; 1.0 means no better than random, NaN if there is no positive at all.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    y, s = _binary_arrays(y_true, scores)
    base_rate = y.mean()
    if base_rate == 0:
        return math.nan
    k = max(1, math.ceil(fraction * y.size - 1e-9))
    cutoff = np.sort(s)[::-1][k - 1]
    above = s > cutoff
    tied = s == cutoff
    n_from_ties = k - int(above.sum())
    positives = y[above].sum() + n_from_ties * y[tied].mean()
    return float(positives / k / base_rate)


def churn_metrics(y_true: Any, probabilities: Any) -> dict[str, float]:
    """Ranking, calibration and targeting quality of churn probabilities.

    Parameters
    ----------
    y_true
        0/1 outcomes.
    probabilities
        Predicted churn probabilities in ``[0, 1]``.

    Returns
    -------
    dict
        ``roc_auc``, ``pr_auc`` (average precision), ``brier``, ``lift_at_10``, ``base_rate``
        and ``n``. Ranking metrics are NaN when ``y_true`` holds a single class.
    """
    y, p = _binary_arrays(y_true, probabilities)
    one_class = np.unique(y).size < 2
    if one_class:
        logger.warning("Only one class in y_true: roc_auc and pr_auc are undefined (NaN)")
    return {
        "roc_auc": math.nan if one_class else float(roc_auc_score(y, p)),
        "pr_auc": math.nan if one_class else float(average_precision_score(y, p)),
        "brier": float(brier_score_loss(y, p)),
        "lift_at_10": lift_at(y, p, 0.1),
        "base_rate": float(y.mean()),
        "n": float(y.size),
    }


def sentiment_metrics(y_true: Any, y_pred: Any) -> dict[str, float]:
    """Accuracy and macro-F1 of single-label predictions, plus F1 per class as ``f1_<class>``.

    Classes are those present in ``y_true`` or ``y_pred``.
    """
    y_true = np.asarray(y_true).astype(str)
    y_pred = np.asarray(y_pred).astype(str)
    labels = np.unique(np.concatenate([y_true, y_pred]))
    per_class = f1_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
    metrics = {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(
            f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)
        ),
    }
    metrics.update({f"f1_{label}": float(f) for label, f in zip(labels, per_class)})
    return metrics


def macro_f1_of_labels(truth: np.ndarray, predicted: np.ndarray) -> float:
    """Macro-F1 over the labels present in either array (``zero_division=0``), without sklearn's
    per-call overhead: the statistic of :func:`paired_bootstrap` over thousands of resamples."""
    labels = np.union1d(truth, predicted)
    f1 = []
    for label in labels:
        t, p = truth == label, predicted == label
        tp = np.count_nonzero(t & p)
        denominator = np.count_nonzero(t) + np.count_nonzero(p)
        f1.append(2 * tp / denominator if denominator else 0.0)
    return float(np.mean(f1)) if f1 else 0.0


def micro_f1_of_indicators(truth: np.ndarray, predicted: np.ndarray) -> float:
    """Micro-F1 of two 0/1 indicator matrices (``zero_division=0``)."""
    tp = np.count_nonzero((truth == 1) & (predicted == 1))
    denominator = np.count_nonzero(truth == 1) + np.count_nonzero(predicted == 1)
    return 2 * tp / denominator if denominator else 0.0


def accuracy_of_labels(truth: np.ndarray, predicted: np.ndarray) -> float:
    """Share of rows predicted exactly (labels, or whole rows of an indicator matrix)."""
    truth, predicted = np.asarray(truth), np.asarray(predicted)
    equal = truth == predicted
    return float(np.mean(equal.all(axis=1) if equal.ndim > 1 else equal))


def paired_bootstrap(
    truth: Any,
    ours: Any,
    theirs: Any,
    metric: Callable[[np.ndarray, np.ndarray], float],
    draws: int = 1000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """``metric(ours) - metric(theirs)`` and its paired bootstrap 95% interval.

    Rows are resampled with replacement ``draws`` times; each resample scores both predictions
    on the same rows (a paired comparison), so what the two models share cancels out.

    Parameters
    ----------
    truth, ours, theirs
        The true labels and the two models' predictions, row for row (1-d labels or 0/1
        indicator matrices).
    metric
        ``metric(truth, predicted) -> float``, e.g. :func:`macro_f1_of_labels`.
    draws, seed
        Resamples and the seed of the resampling.

    Returns
    -------
    tuple of float
        ``(difference on all rows, 2.5th percentile, 97.5th percentile)``.

    Examples
    --------
    >>> truth = np.array([0, 1, 1, 0, 1, 0, 1, 1])
    >>> difference, low, high = paired_bootstrap(truth, truth, 1 - truth, accuracy_of_labels)
    >>> difference, low, high
    (1.0, 1.0, 1.0)
    """
    truth, ours, theirs = np.asarray(truth), np.asarray(ours), np.asarray(theirs)
    if not len(truth) == len(ours) == len(theirs):
        raise ValueError(f"row counts differ: truth {len(truth)}, ours {len(ours)}, theirs {len(theirs)}")
    rng = np.random.default_rng(seed)
    n = len(truth)
    diffs = np.empty(draws)
    for b in range(draws):
        idx = rng.integers(0, n, n)
        diffs[b] = metric(truth[idx], ours[idx]) - metric(truth[idx], theirs[idx])
    low, high = np.percentile(diffs, [2.5, 97.5])
    return float(metric(truth, ours) - metric(truth, theirs)), float(low), float(high)


def theme_metrics(Y_true: Any, Y_pred: Any, theme_ids: Sequence[str]) -> dict[str, float]:
    """Micro- and macro-F1 of multi-label theme predictions, plus ``f1_<id>`` per theme.

    Parameters
    ----------
    Y_true, Y_pred
        0/1 indicator matrices ``(n, n_themes)``, columns in ``theme_ids`` order.
    theme_ids
        The taxonomy's theme ids.

    Notes
    -----
    A theme absent from both truth and prediction has F1 0 (scikit-learn's ``zero_division=0``),
    as in the benchmark protocols, so macro-F1 on a sample where some themes never occur is low.
    """
    Y_true = np.asarray(Y_true).astype(int)
    Y_pred = np.asarray(Y_pred).astype(int)
    if Y_true.shape != Y_pred.shape or Y_true.ndim != 2 or Y_true.shape[1] != len(theme_ids):
        raise ValueError(
            f"expected two indicator matrices of shape (n, {len(theme_ids)}), "
            f"got {Y_true.shape} and {Y_pred.shape}"
        )
    per_theme = f1_score(Y_true, Y_pred, average=None, zero_division=0)
    metrics = {
        "micro_f1": float(f1_score(Y_true, Y_pred, average="micro", zero_division=0)),
        "macro_f1": float(f1_score(Y_true, Y_pred, average="macro", zero_division=0)),
    }
    metrics.update({f"f1_{t}": float(f) for t, f in zip(theme_ids, per_theme)})
    return metrics


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def _figure(title: str, xlabel: str, ylabel: str) -> tuple[Figure, Axes]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=_FIGSIZE, layout="constrained")
    # Figures made without pyplot are unknown to IPython's inline backend; this lets a notebook
    # show one as a PNG when it is a cell's value, with no backend switch or pyplot state.
    fig._repr_png_ = partial(_png, fig)  # type: ignore[attr-defined]
    ax = fig.add_subplot()
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    return fig, ax


def _cumulative_gains(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Share of all churners captured (y) within the top share of customers (x)."""
    order = np.argsort(-p, kind="mergesort")
    captured = np.concatenate([[0.0], np.cumsum(y[order]) / max(y.sum(), 1.0)])
    contacted = np.arange(y.size + 1) / y.size
    return contacted, captured


def _reliability_curve(
    y: np.ndarray, p: np.ndarray, n_bins: int = 10
) -> tuple[np.ndarray, np.ndarray]:
    """Mean predicted probability vs observed churn rate in equal-count bins."""
    order = np.argsort(p, kind="mergesort")
    bins = [b for b in np.array_split(order, min(n_bins, y.size)) if b.size]
    return np.array([p[b].mean() for b in bins]), np.array([y[b].mean() for b in bins])


def churn_figures(y_true: Any, probabilities_by_model: Mapping[str, Any]) -> dict[str, Figure]:
    """ROC, precision-recall, reliability and cumulative-gains figures comparing churn models.

    Parameters
    ----------
    y_true
        0/1 outcomes.
    probabilities_by_model
        Model name -> predicted churn probabilities for the same rows.

    Returns
    -------
    dict
        ``roc``, ``precision_recall``, ``calibration``, ``lift``: one figure each, one line per
        model, with the model's ROC-AUC, average precision, Brier score or top-decile lift in
        the legend.
    """
    y = np.asarray(y_true).astype(float).ravel()
    scored = {name: _binary_arrays(y, p)[1] for name, p in probabilities_by_model.items()}
    base_rate = y.mean()

    roc, roc_ax = _figure("ROC curve", "False positive rate", "True positive rate")
    roc_ax.plot([0, 1], [0, 1], linestyle=":", color="grey", label="random (AUC = 0.500)")
    pr, pr_ax = _figure("Precision-recall curve", "Recall", "Precision")
    pr_ax.axhline(base_rate, linestyle=":", color="grey", label=f"base rate ({base_rate:.3f})")
    cal, cal_ax = _figure(
        "Reliability (calibration) curve", "Mean predicted probability", "Observed churn rate"
    )
    cal_ax.plot([0, 1], [0, 1], linestyle=":", color="grey", label="perfectly calibrated")
    gains, gains_ax = _figure(
        "Cumulative gains",
        "Share of customers contacted (highest risk first)",
        "Share of churners reached",
    )
    gains_ax.plot([0, 1], [0, 1], linestyle=":", color="grey", label="random (lift@10% = 1.00)")

    for name, p in scored.items():
        metrics = churn_metrics(y, p)
        if not math.isnan(metrics["roc_auc"]):
            fpr, tpr, _ = roc_curve(y, p)
            roc_ax.plot(fpr, tpr, label=f"{name} (AUC = {metrics['roc_auc']:.3f})")
            precision, recall, _ = precision_recall_curve(y, p)
            pr_ax.plot(
                recall,
                precision,
                drawstyle="steps-post",
                label=f"{name} (AP = {metrics['pr_auc']:.3f})",
            )
        mean_p, observed = _reliability_curve(y, p)
        cal_ax.plot(mean_p, observed, marker="o", label=f"{name} (Brier = {metrics['brier']:.4f})")
        contacted, captured = _cumulative_gains(y, p)
        gains_ax.plot(contacted, captured, label=f"{name} (lift@10% = {metrics['lift_at_10']:.2f})")

    for ax in (roc_ax, pr_ax, cal_ax, gains_ax):
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.legend(loc="lower right" if ax is not pr_ax else "upper right", fontsize="small")
    return {"roc": roc, "precision_recall": pr, "calibration": cal, "lift": gains}


def text_figures(
    sentiment_true: Any = None,
    sentiment_pred: Any = None,
    themes_true: Any = None,
    themes_pred: Any = None,
    theme_ids: Sequence[str] | None = None,
) -> dict[str, Figure]:
    """A sentiment confusion matrix and a per-theme F1 bar chart.

    Parameters
    ----------
    sentiment_true, sentiment_pred
        Sentiment labels; gives ``sentiment_confusion`` when both are given.
    themes_true, themes_pred
        0/1 theme indicator matrices; gives ``theme_f1`` when both and ``theme_ids`` are given.
    theme_ids
        The taxonomy's theme ids, in column order.

    Returns
    -------
    dict
        ``sentiment_confusion`` (row-normalised, with counts) and/or ``theme_f1``.
    """
    figures: dict[str, Figure] = {}
    if sentiment_true is not None and sentiment_pred is not None:
        y_true = np.asarray(sentiment_true).astype(str)
        y_pred = np.asarray(sentiment_pred).astype(str)
        labels = np.unique(np.concatenate([y_true, y_pred]))
        counts = confusion_matrix(y_true, y_pred, labels=labels)
        shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
        metrics = sentiment_metrics(y_true, y_pred)
        fig, ax = _figure(
            f"Sentiment confusion matrix\naccuracy {metrics['accuracy']:.3f}, "
            f"macro-F1 {metrics['macro_f1']:.3f}",
            "Predicted",
            "True",
        )
        ax.grid(False)
        image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
        fig.colorbar(image, ax=ax, label="Share of true class")
        ax.set_xticks(range(len(labels)), labels)
        ax.set_yticks(range(len(labels)), labels)
        for i in range(len(labels)):
            for j in range(len(labels)):
                ax.text(
                    j,
                    i,
                    f"{shares[i, j]:.2f}\n({counts[i, j]})",
                    ha="center",
                    va="center",
                    color="white" if shares[i, j] > 0.6 else "black",
                    fontsize="small",
                )
        figures["sentiment_confusion"] = fig
    if themes_true is not None and themes_pred is not None and theme_ids is not None:
        metrics = theme_metrics(themes_true, themes_pred, theme_ids)
        support = np.asarray(themes_true).astype(int).sum(axis=0)
        fig, ax = _figure(
            f"F1 per theme\nmicro-F1 {metrics['micro_f1']:.3f}, macro-F1 {metrics['macro_f1']:.3f}",
            "F1",
            "Theme",
        )
        positions = np.arange(len(theme_ids))
        values = [metrics[f"f1_{t}"] for t in theme_ids]
        ax.barh(positions, values)
        ax.set_yticks(positions, [f"{t} (n={n})" for t, n in zip(theme_ids, support)])
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        figures["theme_f1"] = fig
    return figures
