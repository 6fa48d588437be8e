"""The text evaluation report: per-theme precision/recall/F1, sentiment confusion, calibration, errors.

:func:`text_report` takes held-out labels and a model's probabilities (sentiment, themes or
both; :func:`evaluate_text_models` computes them from fitted models) and returns a :class:`TextReport`: a dict of metrics, the tables behind them, and one
self-contained HTML page (figures embedded as base64 PNG, no external file or script) that a
job logs to MLflow with :meth:`retain.tracking.TrackedRun.log_html`.

Calibration: for sentiment, *top-label* calibration (the predicted class's probability against
whether it was right); for themes, every (text, theme) probability against whether the theme
is there. The expected calibration error (ECE) is the count-weighted mean gap between mean
probability and observed frequency over equal-width probability bins.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from retain import htmlpage
from retain.evaluation import sentiment_metrics, text_figures, theme_metrics
from retain.text.inputs import as_texts

if TYPE_CHECKING:
    from matplotlib.figure import Figure

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TextReport:
    """A text evaluation: metrics, the tables behind them, and the HTML page."""

    metrics: dict[str, float]
    tables: dict[str, pd.DataFrame] = field(repr=False)
    html: str = field(repr=False)


# --------------------------------------------------------------------------------------------
# Tables


def theme_scores(
    themes_true: Any, themes_pred: Any, theme_ids: Sequence[str]
) -> pd.DataFrame:
    """Precision, recall, F1, support and predicted count per theme.

    Parameters
    ----------
    themes_true, themes_pred
        0/1 indicator matrices ``(n, n_themes)``, columns in ``theme_ids`` order.
    theme_ids
        The taxonomy's theme ids.

    Returns
    -------
    pandas.DataFrame
        One row per theme (taxonomy order): ``theme``, ``precision``, ``recall``, ``f1``
        (0 where undefined, as scikit-learn's ``zero_division=0``), ``support`` (true
        mentions) and ``predicted`` (predicted mentions).
    """
    Y_true, Y_pred = _indicators(themes_true, themes_pred, theme_ids)
    if Y_true.shape[1] == 1:
        # One theme: scikit-learn reads a single column as binary labels, so score class 1 only.
        precision, recall, f1, support = precision_recall_fscore_support(
            Y_true.ravel(), Y_pred.ravel(), labels=[1], average=None, zero_division=0
        )
    else:
        precision, recall, f1, support = precision_recall_fscore_support(
            Y_true, Y_pred, average=None, zero_division=0
        )
    return pd.DataFrame(
        {
            "theme": list(theme_ids),
            "precision": precision.astype(float),
            "recall": recall.astype(float),
            "f1": f1.astype(float),
            "support": support.astype(int),
            "predicted": Y_pred.sum(axis=0).astype(int),
        }
    )


def sentiment_confusion(
    sentiment_true: Any, sentiment_pred: Any, labels: Sequence[str] | None = None
) -> pd.DataFrame:
    """Counts of true (rows) against predicted (columns) sentiment labels.

    ``labels`` fixes the order (default: the sorted labels seen in either).
    """
    y_true = np.asarray(sentiment_true).astype(str)
    y_pred = np.asarray(sentiment_pred).astype(str)
    if labels is None:
        labels = list(np.unique(np.concatenate([y_true, y_pred])))
    counts = confusion_matrix(y_true, y_pred, labels=list(labels))
    return pd.DataFrame(
        counts,
        index=pd.Index(list(labels), name="true"),
        columns=pd.Index(list(labels), name="predicted"),
    )


def reliability_table(outcomes: Any, probabilities: Any, n_bins: int = 10) -> pd.DataFrame:
    """Equal-width probability bins: how often what was predicted with probability p happened.

    Parameters
    ----------
    outcomes
        0/1: whether the predicted event happened (the class was right, the theme was there).
    probabilities
        The predicted probability of that event, in ``[0, 1]``.
    n_bins
        Bins ``[0, 1/n), [1/n, 2/n), ..., [(n-1)/n, 1]``.

    Returns
    -------
    pandas.DataFrame
        The non-empty bins: ``lower``, ``upper``, ``count``, ``mean_probability``,
        ``observed`` (share of outcomes that happened).
    """
    y = np.asarray(outcomes, dtype=float).ravel()
    p = np.asarray(probabilities, dtype=float).ravel()
    if y.shape != p.shape:
        raise ValueError(f"{y.size} outcomes for {p.size} probabilities")
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1, got {n_bins}")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, n_bins - 1)
    count = np.bincount(bins, minlength=n_bins)
    filled = count > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.bincount(bins, weights=p, minlength=n_bins) / count
        observed = np.bincount(bins, weights=y, minlength=n_bins) / count
    return pd.DataFrame(
        {
            "lower": edges[:-1][filled],
            "upper": edges[1:][filled],
            "count": count[filled].astype(int),
            "mean_probability": mean_p[filled],
            "observed": observed[filled],
        }
    )


def expected_calibration_error(outcomes: Any, probabilities: Any, n_bins: int = 10) -> float:
    """Count-weighted mean of ``|mean probability - observed|`` over :func:`reliability_table` bins.

    NaN when there is nothing to measure.
    """
    table = reliability_table(outcomes, probabilities, n_bins)
    if table.empty:
        return float("nan")
    gaps = (table["mean_probability"] - table["observed"]).abs()
    return float((gaps * table["count"]).sum() / table["count"].sum())


def sentiment_errors(
    texts: Any,
    sentiment_true: Any,
    probabilities: Any,
    classes: Sequence[str],
    k: int = 10,
) -> pd.DataFrame:
    """The ``k`` wrong sentiment predictions made with the highest probability.

    Returns
    -------
    pandas.DataFrame
        ``text``, ``true``, ``predicted``, ``probability`` (of the predicted class), most
        confident first (ties in input order).
    """
    texts = as_texts(texts)
    y_true = np.asarray(sentiment_true).astype(str)
    proba = np.asarray(probabilities, dtype=float)
    predicted = np.asarray(classes, dtype=object)[proba.argmax(axis=1)].astype(str)
    confidence = proba.max(axis=1)
    wrong = np.flatnonzero(predicted != y_true)
    order = wrong[np.argsort(-confidence[wrong], kind="stable")][:k]
    return pd.DataFrame(
        {
            "text": [texts[i] for i in order],
            "true": y_true[order],
            "predicted": predicted[order],
            "probability": confidence[order],
        }
    )


def theme_errors(
    texts: Any,
    themes_true: Any,
    probabilities: Any,
    theme_ids: Sequence[str],
    thresholds: float | Sequence[float] = 0.5,
    k: int = 10,
    themes_pred: Any = None,
) -> pd.DataFrame:
    """The ``k`` most confident wrong theme decisions.

    A false positive (theme predicted, not there) is as confident as its probability; a missed
    theme (there, not predicted) as ``1 - probability``. The decisions are ``themes_pred`` when
    given (e.g. the most probable theme of a single-label model), else the probabilities at or
    above ``thresholds``.

    Returns
    -------
    pandas.DataFrame
        ``text``, ``theme``, ``error`` (``"false positive"`` or ``"missed"``), ``probability``
        (of the theme), most confident first.
    """
    texts = as_texts(texts)
    P = np.asarray(probabilities, dtype=float)
    Y_true, _ = _indicators(themes_true, np.zeros_like(P, dtype=int), theme_ids)
    limits = np.broadcast_to(np.asarray(thresholds, dtype=float), (len(theme_ids),))
    Y_pred = (P >= limits).astype(int) if themes_pred is None else np.asarray(themes_pred)
    rows, cols = np.nonzero(Y_pred != Y_true)
    false_positive = Y_pred[rows, cols] == 1
    confidence = np.where(false_positive, P[rows, cols], 1.0 - P[rows, cols])
    order = np.argsort(-confidence, kind="stable")[:k]
    return pd.DataFrame(
        {
            "text": [texts[rows[i]] for i in order],
            "theme": [theme_ids[cols[i]] for i in order],
            "error": np.where(false_positive[order], "false positive", "missed"),
            "probability": P[rows[order], cols[order]],
        }
    )


def _indicators(
    themes_true: Any, themes_pred: Any, theme_ids: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    Y_true = np.asarray(themes_true).astype(int)
    Y_pred = np.asarray(themes_pred).astype(int)
    if Y_true.shape != Y_pred.shape or Y_true.ndim != 2 or Y_true.shape[1] != len(theme_ids):
        raise ValueError(
            f"expected two matrices of shape (n, {len(theme_ids)}), "
            f"got {Y_true.shape} and {Y_pred.shape}"
        )
    return Y_true, Y_pred


# --------------------------------------------------------------------------------------------
# The report


def text_report(
    *,
    texts: Any = None,
    sentiment_texts: Any = None,
    theme_texts: Any = None,
    sentiment_true: Any = None,
    sentiment_probabilities: Any = None,
    sentiment_classes: Sequence[str] | None = None,
    themes_true: Any = None,
    theme_probabilities: Any = None,
    theme_ids: Sequence[str] | None = None,
    theme_thresholds: float | Sequence[float] = 0.5,
    single_label_themes: bool = False,
    n_bins: int = 10,
    n_examples: int = 10,
    title: str = "Text model evaluation",
) -> TextReport:
    """Evaluate sentiment and/or theme predictions on held-out texts, as metrics and HTML.

    Parameters
    ----------
    texts
        The evaluated texts, for the error examples (no examples without them), when sentiment
        and themes are evaluated on the same texts.
    sentiment_texts, theme_texts
        The texts of each task when they differ (e.g. rows labelled for one task only);
        default ``texts``.
    sentiment_true, sentiment_probabilities, sentiment_classes
        True labels, ``(n, n_classes)`` probabilities and the classes of their columns (a
        model's ``classes_``); the sentiment sections need all three.
    themes_true, theme_probabilities, theme_ids
        0/1 indicator matrix, ``(n, n_themes)`` probabilities (columns in ``theme_ids`` order)
        and the theme ids; the theme sections need all three.
    theme_thresholds
        Probability at which a theme counts as predicted, one number or one per theme (e.g. a
        model's ``thresholds_``).
    single_label_themes
        Each text has one theme and is predicted its most probable one (thresholds unused):
        adds ``themes_accuracy``, and ``themes_macro_f1`` is that of the predicted theme over
        the themes in truth or prediction, as in the text job's figures.
    n_bins
        Calibration bins.
    n_examples
        Error examples per task.
    title
        The page title.

    Returns
    -------
    TextReport
        ``metrics``: ``sentiment_accuracy``, ``sentiment_macro_f1``, ``sentiment_f1_<class>``,
        ``sentiment_ece``; ``themes_micro_f1``, ``themes_macro_f1``, ``themes_ece`` and
        ``theme_<id>_precision`` / ``_recall`` / ``_f1`` / ``_support``. ``tables``:
        ``theme_scores``, ``sentiment_confusion``, ``sentiment_reliability``,
        ``theme_reliability``, ``sentiment_errors``, ``theme_errors`` (those that apply).
        ``html``: the page.
    """
    has_sentiment = (
        sentiment_true is not None
        and sentiment_probabilities is not None
        and sentiment_classes is not None
    )
    has_themes = (
        themes_true is not None and theme_probabilities is not None and theme_ids is not None
    )
    if not (has_sentiment or has_themes):
        raise ValueError("nothing to report: give sentiment and/or theme labels and probabilities")
    sentiment_texts = texts if sentiment_texts is None else sentiment_texts
    theme_texts = texts if theme_texts is None else theme_texts
    metrics: dict[str, float] = {}
    tables: dict[str, pd.DataFrame] = {}
    figures: dict[str, Figure] = {}
    sections: list[str] = []

    if has_themes:
        assert theme_ids is not None
        theme_ids = list(theme_ids)
        P = np.asarray(theme_probabilities, dtype=float)
        limits = np.broadcast_to(np.asarray(theme_thresholds, dtype=float), (len(theme_ids),))
        decided = (P >= limits).astype(int)
        if single_label_themes:  # the most probable theme, whatever its probability
            decided = np.zeros_like(decided)
            decided[np.arange(len(P)), P.argmax(axis=1)] = 1
        Y_true, Y_pred = _indicators(themes_true, decided, theme_ids)
        scores = theme_scores(Y_true, Y_pred, theme_ids)
        summary = theme_metrics(Y_true, Y_pred, theme_ids)
        metrics["themes_micro_f1"] = summary["micro_f1"]
        metrics["themes_macro_f1"] = summary["macro_f1"]
        if single_label_themes:
            top = np.asarray(theme_ids, dtype=object)
            labels = sentiment_metrics(top[Y_true.argmax(axis=1)], top[Y_pred.argmax(axis=1)])
            metrics["themes_accuracy"] = labels["accuracy"]
            metrics["themes_macro_f1"] = labels["macro_f1"]
        for row in scores.itertuples(index=False):
            for name in ("precision", "recall", "f1", "support"):
                metrics[f"theme_{row.theme}_{name}"] = float(getattr(row, name))
        tables["theme_scores"] = scores
        tables["theme_reliability"] = reliability_table(Y_true, P, n_bins)
        metrics["themes_ece"] = expected_calibration_error(Y_true, P, n_bins)
        figures.update(text_figures(themes_true=Y_true, themes_pred=Y_pred, theme_ids=theme_ids))
        if theme_texts is not None:
            tables["theme_errors"] = theme_errors(
                theme_texts, Y_true, P, theme_ids, limits, n_examples, themes_pred=Y_pred
            )

    if has_sentiment:
        assert sentiment_classes is not None
        classes = [str(c) for c in sentiment_classes]
        proba = np.asarray(sentiment_probabilities, dtype=float)
        if proba.ndim != 2 or proba.shape[1] != len(classes):
            raise ValueError(
                f"sentiment probabilities of shape {proba.shape} for {len(classes)} classes"
            )
        y_true = np.asarray(sentiment_true).astype(str)
        y_pred = np.asarray(classes, dtype=object)[proba.argmax(axis=1)].astype(str)
        labels = list(dict.fromkeys([*classes, *np.unique(y_true)]))
        for name, value in sentiment_metrics(y_true, y_pred).items():
            metrics[f"sentiment_{name}"] = value
        correct = (y_pred == y_true).astype(float)
        confidence = proba.max(axis=1)
        tables["sentiment_confusion"] = sentiment_confusion(y_true, y_pred, labels)
        tables["sentiment_reliability"] = reliability_table(correct, confidence, n_bins)
        metrics["sentiment_ece"] = expected_calibration_error(correct, confidence, n_bins)
        figures.update(text_figures(sentiment_true=y_true, sentiment_pred=y_pred))
        if sentiment_texts is not None:
            tables["sentiment_errors"] = sentiment_errors(
                sentiment_texts, y_true, proba, classes, n_examples
            )

    figures["calibration"] = _reliability_figure(tables)
    sections.append(_overview(metrics, has_sentiment, has_themes))
    if has_themes:
        sections.append(
            htmlpage.section(
                "themes",
                "Themes: precision, recall and F1 per theme",
                htmlpage.table(tables["theme_scores"], floats=3) + htmlpage.image(figures["theme_f1"]),
            )
        )
    if has_sentiment:
        sections.append(
            htmlpage.section(
                "sentiment",
                "Sentiment: confusion matrix",
                "<p>Rows: true label; columns: predicted label (counts).</p>"
                + htmlpage.table(tables["sentiment_confusion"], index=True)
                + htmlpage.image(figures["sentiment_confusion"]),
            )
        )
    sections.append(_calibration_section(tables, metrics, figures["calibration"]))
    sections.append(_errors_section(tables))
    for figure in figures.values():
        figure.clear()
    page = htmlpage.page(title, sections)
    logger.info("text report: %s", ", ".join(f"{k}={v:.3f}" for k, v in _headline(metrics)))
    return TextReport(metrics=metrics, tables=tables, html=page)


def evaluate_text_models(
    *,
    sentiment_model: Any = None,
    sentiment_texts: Any = None,
    sentiment_true: Any = None,
    theme_model: Any = None,
    theme_texts: Any = None,
    themes_true: Any = None,
    theme_ids: Sequence[str] | None = None,
    theme_threshold: float | Sequence[float] | None = None,
    single_label_themes: bool = False,
    **options: Any,
) -> TextReport:
    """:func:`text_report` for fitted models on held-out labelled texts.

    Parameters
    ----------
    sentiment_model, sentiment_texts, sentiment_true
        A fitted sentiment model (``predict_proba``, ``classes_``), the texts and their labels;
        the sentiment sections need all three.
    theme_model, theme_texts, themes_true, theme_ids
        A fitted theme model (``(n, n_themes)`` probabilities, classes the positions or the
        theme ids), the texts, their 0/1 indicator matrix and the theme ids.
    theme_threshold
        As :func:`retain.text.aspects.theme_thresholds`: this, else the model's
        ``thresholds_``, else 0.5.
    single_label_themes
        Each text gets its most probable theme (see :func:`text_report`).
    **options
        Passed on to :func:`text_report` (``n_bins``, ``n_examples``, ``title``).
    """
    from retain.text.aspects import theme_thresholds
    from retain.text.scoring import class_probabilities

    arguments: dict[str, Any] = {}
    if sentiment_model is not None and sentiment_texts is not None and sentiment_true is not None:
        texts = as_texts(sentiment_texts)
        arguments.update(
            sentiment_texts=texts,
            sentiment_true=sentiment_true,
            sentiment_probabilities=np.asarray(sentiment_model.predict_proba(texts)),
            sentiment_classes=[str(c) for c in sentiment_model.classes_],
        )
    if (
        theme_model is not None
        and theme_texts is not None
        and themes_true is not None
        and theme_ids is not None
    ):
        texts = as_texts(theme_texts)
        arguments.update(
            theme_texts=texts,
            themes_true=themes_true,
            theme_probabilities=class_probabilities(theme_model, texts, list(theme_ids), "theme"),
            theme_ids=list(theme_ids),
            theme_thresholds=theme_thresholds(theme_model, len(theme_ids), theme_threshold),
            single_label_themes=single_label_themes,
        )
    return text_report(**arguments, **options)


def _headline(metrics: dict[str, float]) -> list[tuple[str, float]]:
    keys = (
        "sentiment_accuracy", "sentiment_macro_f1", "sentiment_ece",
        "themes_accuracy", "themes_micro_f1", "themes_macro_f1", "themes_ece",
    )
    return [(k, metrics[k]) for k in keys if k in metrics]


def _overview(metrics: dict[str, float], has_sentiment: bool, has_themes: bool) -> str:
    rows = pd.DataFrame(_headline(metrics), columns=["metric", "value"])
    parts = []
    if has_sentiment:
        parts.append("sentiment")
    if has_themes:
        parts.append("themes")
    return htmlpage.section(
        "overview", "Overview", f"<p>Evaluated: {' and '.join(parts)}.</p>" + htmlpage.table(rows)
    )


def _reliability_figure(tables: dict[str, pd.DataFrame]) -> Figure:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.0, 4.5), layout="constrained")
    ax = fig.add_subplot()
    ax.set_title("Reliability (calibration) curve")
    ax.set_xlabel("Mean predicted probability")
    ax.set_ylabel("Observed frequency")
    ax.grid(True, alpha=0.3)
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey", label="perfectly calibrated")
    for key, label in (
        ("sentiment_reliability", "sentiment (predicted class)"),
        ("theme_reliability", "themes (every text x theme)"),
    ):
        if key in tables and not tables[key].empty:
            table = tables[key]
            ax.plot(table["mean_probability"], table["observed"], marker="o", label=label)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.legend(loc="upper left", fontsize="small")
    return fig


def _calibration_section(
    tables: dict[str, pd.DataFrame], metrics: dict[str, float], figure: Figure
) -> str:
    explanation = (
        "<p>Expected calibration error (ECE): the count-weighted mean gap between the mean "
        "predicted probability and the observed frequency in each probability bin.</p>"
    )
    parts = [explanation, htmlpage.image(figure)]
    for key, name, metric in (
        ("sentiment_reliability", "Sentiment (top label)", "sentiment_ece"),
        ("theme_reliability", "Themes", "themes_ece"),
    ):
        if key in tables:
            parts.append(f"<h3>{name}: ECE {metrics[metric]:.3f}</h3>" + htmlpage.table(tables[key]))
    return htmlpage.section("calibration", "Calibration", "\n".join(parts))


def _errors_section(tables: dict[str, pd.DataFrame]) -> str:
    if "sentiment_errors" not in tables and "theme_errors" not in tables:
        return htmlpage.section("errors", "Errors", "<p>No texts were given, so no examples.</p>")
    parts = []
    for key, name in (
        ("sentiment_errors", "Sentiment: most confident wrong predictions"),
        ("theme_errors", "Themes: most confident wrong decisions"),
    ):
        if key in tables:
            table = tables[key]
            body = htmlpage.table(table) if not table.empty else "<p>No errors.</p>"
            parts.append(f"<h3>{name}</h3>{body}")
    return htmlpage.section("errors", "Examples of errors", "\n".join(parts))
