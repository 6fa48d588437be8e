"""Metrics (hand-checked on tiny arrays) and figures."""

from __future__ import annotations

import io
import math
import subprocess
import sys

import numpy as np
import pytest

from retain.evaluation import (
    churn_figures,
    churn_metrics,
    lift_at,
    sentiment_metrics,
    text_figures,
    theme_metrics,
)

Y10 = np.array([1, 0, 1, 0, 0, 0, 0, 0, 0, 1])
S10 = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05])


@pytest.mark.parametrize(
    ("fraction", "expected"),
    [
        (0.1, 1 / 0.3),  # top 1 row: 1 churner of 1; base rate 3/10
        (0.2, 0.5 / 0.3),  # top 2: 1 of 2
        (0.3, (2 / 3) / 0.3),  # top 3: 2 of 3
        (0.25, (2 / 3) / 0.3),  # ceil(2.5) = 3 rows
        (1.0, 1.0),
    ],
)
def test_lift_at_hand_checked(fraction: float, expected: float) -> None:
    assert lift_at(Y10, S10, fraction) == pytest.approx(expected)


def test_lift_at_counts_ties_at_the_cutoff_pro_rata() -> None:
    y = np.array([0, 1, 0, 0, 1, 0, 0, 0, 0, 0])
    s = np.array([0.9, 0.5, 0.5, 0.5, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1])
    # top 2 = the 0.9 row (no churner) + one of three tied rows (1 churner in 3): 1/3 of 2 rows.
    expected = (1 / 3) / 2 / 0.2
    assert lift_at(y, s, 0.2) == pytest.approx(expected)
    order = np.random.default_rng(0).permutation(10)
    assert lift_at(y[order], s[order], 0.2) == pytest.approx(expected)


def test_lift_at_edge_cases() -> None:
    assert math.isnan(lift_at([0, 0, 0], [0.1, 0.2, 0.3]))
    assert lift_at([1, 1], [0.2, 0.1]) == 1.0
    with pytest.raises(ValueError, match="fraction"):
        lift_at(Y10, S10, 0.0)
    with pytest.raises(ValueError, match="0/1"):
        lift_at([0, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match="values"):
        lift_at([0, 1], [0.1])


def test_churn_metrics_hand_checked() -> None:
    metrics = churn_metrics([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    assert metrics == pytest.approx(
        {
            "roc_auc": 0.75,  # 3 of 4 (churner, stayer) pairs ordered right
            "pr_auc": 0.5 * 1 + 0.5 * 2 / 3,  # precision 1 at recall 0.5, 2/3 at recall 1
            "brier": (0.1**2 + 0.4**2 + 0.65**2 + 0.2**2) / 4,
            "lift_at_10": 2.0,  # top ceil(0.4) = 1 row is a churner; base rate 0.5
            "base_rate": 0.5,
            "n": 4.0,
        }
    )


def test_churn_metrics_with_one_class() -> None:
    metrics = churn_metrics([0, 0, 0], [0.1, 0.2, 0.3])
    assert math.isnan(metrics["roc_auc"]) and math.isnan(metrics["pr_auc"])
    assert metrics["brier"] == pytest.approx((0.01 + 0.04 + 0.09) / 3)


def test_sentiment_metrics_hand_checked() -> None:
    metrics = sentiment_metrics(
        ["negative", "negative", "positive", "neutral"],
        ["negative", "positive", "positive", "neutral"],
    )
    assert metrics["accuracy"] == pytest.approx(0.75)
    assert metrics["f1_negative"] == pytest.approx(2 / 3)  # precision 1, recall 1/2
    assert metrics["f1_positive"] == pytest.approx(2 / 3)  # precision 1/2, recall 1
    assert metrics["f1_neutral"] == pytest.approx(1.0)
    assert metrics["macro_f1"] == pytest.approx(7 / 9)


def test_theme_metrics_hand_checked() -> None:
    Y_true = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 0]])
    Y_pred = np.array([[1, 0, 0], [0, 1, 0], [0, 1, 0]])
    metrics = theme_metrics(Y_true, Y_pred, ["billing", "pricing", "usability"])
    assert metrics == pytest.approx(
        {
            "micro_f1": 2 / 3,  # 2 true positives, 1 false positive, 1 false negative
            "macro_f1": (2 / 3 + 2 / 3 + 0) / 3,  # a theme never seen nor predicted counts 0
            "f1_billing": 2 / 3,
            "f1_pricing": 2 / 3,
            "f1_usability": 0.0,
        }
    )
    with pytest.raises(ValueError, match="shape"):
        theme_metrics(Y_true, Y_pred, ["billing"])


def _texts(fig) -> list[str]:
    ax = fig.axes[0]
    legend = ax.get_legend()
    return [ax.get_title(), ax.get_xlabel(), ax.get_ylabel()] + (
        [t.get_text() for t in legend.get_texts()] if legend else []
    )


def test_churn_figures_compare_models() -> None:
    import matplotlib

    backend = matplotlib.get_backend()
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    good = np.clip(0.3 + 0.4 * y + rng.normal(0, 0.2, 300), 0, 1)
    noise = rng.random(300)
    figures = churn_figures(y, {"lightgbm": good, "baseline": noise})
    assert set(figures) == {"roc", "precision_recall", "calibration", "lift"}
    auc = churn_metrics(y, good)["roc_auc"]
    assert f"lightgbm (AUC = {auc:.3f})" in _texts(figures["roc"])
    for name, fig in figures.items():
        title, xlabel, ylabel, *legend = _texts(fig)
        assert title and xlabel and ylabel, name
        assert any(t.startswith("lightgbm (") for t in legend), name
        assert any(t.startswith("baseline (") for t in legend), name
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        assert buffer.getvalue().startswith(b"\x89PNG")
    assert matplotlib.get_backend() == backend  # no global backend switch
    # A notebook cell returning a figure shows it (IPython calls _repr_png_).
    assert figures["roc"]._repr_png_().startswith(b"\x89PNG")


def test_text_figures() -> None:
    figures = text_figures(
        sentiment_true=["negative", "neutral", "positive", "negative"],
        sentiment_pred=["negative", "positive", "positive", "negative"],
        themes_true=np.array([[1, 0], [0, 1], [1, 1]]),
        themes_pred=np.array([[1, 0], [0, 0], [1, 1]]),
        theme_ids=["billing", "pricing"],
    )
    assert set(figures) == {"sentiment_confusion", "theme_f1"}
    assert "accuracy 0.750" in figures["sentiment_confusion"].axes[0].get_title()
    for fig in figures.values():
        fig.savefig(io.BytesIO(), format="png")
    assert set(text_figures(sentiment_true=["a", "b"], sentiment_pred=["a", "a"])) == {
        "sentiment_confusion"
    }


def test_importing_evaluation_does_not_import_matplotlib() -> None:
    code = "import sys, retain.evaluation; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
