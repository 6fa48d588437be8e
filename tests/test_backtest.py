"""Intervals and paired comparisons of ``retain.churn.backtest`` on hand-made prediction frames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from retain.churn.backtest import metrics_with_interval, paired_comparison, split_metrics


def _hand_made() -> pd.DataFrame:
    """Two splits with hand-checked ROC-AUCs, and a one-class split that is skipped.

    Split a: positives score 0.35 and 0.8, negatives 0.1 and 0.4: 3 of 4 pairs ordered, 0.75.
    Split b: every positive above every negative, 1.0. Mean over splits 0.875.
    """
    return pd.DataFrame(
        {
            "split": ["a"] * 4 + ["b"] * 4 + ["one class"] * 2,
            "churned": [0, 0, 1, 1, 0, 1, 0, 1, 0, 0],
            "p": [0.1, 0.4, 0.35, 0.8, 0.2, 0.9, 0.3, 0.6, 0.5, 0.7],
        }
    )


def _noisy(n_per_split: int, seed: int = 0, splits: int = 2) -> pd.DataFrame:
    """Splits of ``n_per_split`` rows: ``good`` separates the label well, ``noise`` not at all."""
    rng = np.random.default_rng(seed)
    parts = []
    for k in range(splits):
        y = rng.integers(0, 2, n_per_split)
        y[:2] = [0, 1]
        parts.append(
            pd.DataFrame(
                {
                    "split": f"s{k}",
                    "churned": y,
                    "good": 1 / (1 + np.exp(-(2.5 * y - 1.25 + rng.normal(0, 1, n_per_split)))),
                    "noise": rng.uniform(0, 1, n_per_split),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def test_split_metrics_on_the_hand_made_frame() -> None:
    per_split = split_metrics(_hand_made(), "p")
    assert per_split["split"].tolist() == ["a", "b"]  # the one-class split is left out
    assert per_split["roc_auc"].tolist() == pytest.approx([0.75, 1.0])


def test_metrics_with_interval_hand_checked() -> None:
    metrics = metrics_with_interval(_hand_made(), "p")
    assert metrics["roc_auc"] == pytest.approx(0.875)
    assert metrics["splits"] == 2
    assert metrics["n"] == 10  # every row, the one-class split included
    assert metrics["base_rate"] == pytest.approx(0.4)
    assert {"pr_auc", "brier", "lift_at_10", "roc_auc_low", "roc_auc_high"} <= set(metrics)
    assert 0.0 <= metrics["roc_auc_low"] <= metrics["roc_auc"] <= metrics["roc_auc_high"] <= 1.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_interval_contains_the_point_estimate(seed: int) -> None:
    metrics = metrics_with_interval(_noisy(150, seed), "good")
    assert metrics["roc_auc_low"] < metrics["roc_auc"] < metrics["roc_auc_high"]


def test_interval_narrows_with_more_rows() -> None:
    small = metrics_with_interval(_noisy(60), "good")
    # the same rows four times over: same point estimate, half the standard error
    big = metrics_with_interval(pd.concat([_noisy(60)] * 4, ignore_index=True), "good")
    assert big["roc_auc"] == pytest.approx(small["roc_auc"])
    width_small = small["roc_auc_high"] - small["roc_auc_low"]
    width_big = big["roc_auc_high"] - big["roc_auc_low"]
    assert width_big < 0.7 * width_small
    # and a genuinely larger sample is narrower too
    larger = metrics_with_interval(_noisy(1000), "good")
    assert larger["roc_auc_high"] - larger["roc_auc_low"] < width_small


def test_interval_is_reproducible() -> None:
    frame = _noisy(100)
    assert metrics_with_interval(frame, "good") == metrics_with_interval(frame, "good")


def test_no_split_with_both_classes_is_an_error() -> None:
    frame = pd.DataFrame({"split": ["a", "a"], "churned": [0, 0], "p": [0.1, 0.2]})
    with pytest.raises(ValueError, match="both churners and non-churners"):
        metrics_with_interval(frame, "p")


# --- paired comparison ------------------------------------------------------------------------


def test_identical_columns_differ_by_zero_and_are_not_better() -> None:
    frame = _noisy(200).assign(copy=lambda f: f["good"])
    comparison = paired_comparison(frame, "good", "copy")
    assert comparison.difference == 0.0
    assert comparison.low == 0.0 and comparison.high == 0.0
    assert not comparison.better
    assert comparison.p_not_better == 1.0


def test_a_clearly_better_column_is_better() -> None:
    frame = _noisy(300)
    comparison = paired_comparison(frame, "good", "noise")
    assert comparison.candidate == "good" and comparison.reference == "noise"
    assert comparison.metric == "roc_auc"
    assert comparison.better
    assert comparison.low > 0
    assert comparison.low < comparison.difference < comparison.high
    assert comparison.p_not_better < 0.01
    good, noise = metrics_with_interval(frame, "good"), metrics_with_interval(frame, "noise")
    assert comparison.difference == pytest.approx(good["roc_auc"] - noise["roc_auc"])


def test_sign_convention_is_candidate_minus_reference() -> None:
    frame = _noisy(300)
    forward = paired_comparison(frame, "good", "noise")
    backward = paired_comparison(frame, "noise", "good")
    assert forward.difference > 0 > backward.difference
    assert backward.difference == pytest.approx(-forward.difference)
    assert backward.high < 0
    assert not backward.better
    assert backward.p_not_better > 0.99
    assert "noise vs good" in backward.describe()


def test_hand_made_difference() -> None:
    """On the hand-made frame, ``p`` (0.875) against its reverse (0.125): +0.75."""
    frame = _hand_made().assign(reverse=lambda f: 1 - f["p"])
    comparison = paired_comparison(frame, "p", "reverse")
    assert comparison.difference == pytest.approx(0.75)
    assert comparison.to_dict()["difference"] == pytest.approx(0.75)
