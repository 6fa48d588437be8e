"""The text evaluation report on tiny arrays with hand-checked numbers."""

from __future__ import annotations

import base64
import re

import numpy as np
import pytest

from retain.config import TextModelConfig
from retain.text.report import (
    evaluate_text_models,
    expected_calibration_error,
    reliability_table,
    sentiment_confusion,
    sentiment_errors,
    text_report,
    theme_errors,
    theme_scores,
)
from retain.text.tfidf import make_sentiment_model

THEMES = ["billing", "staff"]
TEXTS = ["charged twice", "<b>rude</b> agent, refund late", "nice staff", "ok"]
Y_TRUE = np.array([[1, 0], [1, 1], [0, 1], [0, 0]])
P_THEMES = np.array([[0.9, 0.2], [0.3, 0.8], [0.6, 0.7], [0.1, 0.3]])
# at 0.5: billing TP row 0, FN row 1, FP row 2; staff TP rows 1 and 2
CLASSES = ["negative", "neutral", "positive"]
SENTIMENT_TRUE = ["negative", "positive", "neutral", "positive"]
P_SENTIMENT = np.array(
    [[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.6, 0.3, 0.1], [0.05, 0.9, 0.05]]
)  # predicted: negative (right), positive (right), negative (wrong), neutral (wrong)


def test_theme_scores_per_theme() -> None:
    Y_pred = (P_THEMES >= 0.5).astype(int)
    table = theme_scores(Y_TRUE, Y_pred, THEMES).set_index("theme")
    assert table.loc["billing", ["precision", "recall", "f1"]].tolist() == [0.5, 0.5, 0.5]
    assert table.loc["staff", ["precision", "recall", "f1"]].tolist() == [1.0, 1.0, 1.0]
    assert table["support"].tolist() == [2, 2]
    assert table["predicted"].tolist() == [2, 2]
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        theme_scores(Y_TRUE[:, :1], Y_pred[:, :1], THEMES)


def test_sentiment_confusion_counts_true_rows_against_predicted_columns() -> None:
    predicted = ["negative", "positive", "negative", "neutral"]
    table = sentiment_confusion(SENTIMENT_TRUE, predicted, CLASSES)
    assert table.index.name == "true"
    assert table.to_numpy().tolist() == [[1, 0, 0], [1, 0, 0], [0, 1, 1]]


def test_reliability_and_ece() -> None:
    correct = [1, 1, 0, 0]
    confidence = [0.7, 0.8, 0.6, 0.9]
    # one bin [0.5, 1]: mean confidence 0.75, accuracy 0.5
    assert expected_calibration_error(correct, confidence, n_bins=2) == pytest.approx(0.25)
    # ten bins, one prediction each: gaps 0.3, 0.2, 0.6, 0.9
    table = reliability_table(correct, confidence, n_bins=10)
    assert table["count"].tolist() == [1, 1, 1, 1]
    assert table["mean_probability"].tolist() == pytest.approx([0.6, 0.7, 0.8, 0.9])
    assert table["observed"].tolist() == [0.0, 1.0, 1.0, 0.0]
    assert expected_calibration_error(correct, confidence, n_bins=10) == pytest.approx(0.5)
    # a probability of exactly 1 falls in the last bin, not past it
    assert reliability_table([1], [1.0], n_bins=4)["upper"].tolist() == [1.0]
    assert np.isnan(expected_calibration_error([], []))


def test_errors_are_the_most_confident_wrong_predictions() -> None:
    sentiment = sentiment_errors(TEXTS, SENTIMENT_TRUE, P_SENTIMENT, CLASSES, k=5)
    assert sentiment["text"].tolist() == ["ok", "nice staff"]
    assert sentiment["predicted"].tolist() == ["neutral", "negative"]
    assert sentiment["probability"].tolist() == pytest.approx([0.9, 0.6])
    themes = theme_errors(TEXTS, Y_TRUE, P_THEMES, THEMES, 0.5, k=1)
    # missed billing at p=0.3 (0.7 sure it is absent) beats the false positive at 0.6
    assert themes.to_dict("records") == [
        {"text": TEXTS[1], "theme": "billing", "error": "missed", "probability": 0.3}
    ]


def test_text_report_metrics_are_the_hand_checked_numbers() -> None:
    report = text_report(
        texts=TEXTS,
        sentiment_true=SENTIMENT_TRUE,
        sentiment_probabilities=P_SENTIMENT,
        sentiment_classes=CLASSES,
        themes_true=Y_TRUE,
        theme_probabilities=P_THEMES,
        theme_ids=THEMES,
        n_bins=2,
    )
    m = report.metrics
    assert m["themes_micro_f1"] == pytest.approx(0.75)  # TP 3, FP 1, FN 1
    assert m["themes_macro_f1"] == pytest.approx(0.75)
    assert m["theme_billing_precision"] == 0.5
    assert m["theme_staff_support"] == 2
    # theme cells: [0, 0.5) mean p 0.225 vs observed 0.25; [0.5, 1] 0.75 vs 0.75
    assert m["themes_ece"] == pytest.approx(4 * 0.025 / 8)
    assert m["sentiment_accuracy"] == 0.5
    assert m["sentiment_macro_f1"] == pytest.approx((2 / 3 + 0 + 2 / 3) / 3)
    assert m["sentiment_ece"] == pytest.approx(0.25)
    assert set(report.tables) == {
        "theme_scores", "theme_reliability", "theme_errors",
        "sentiment_confusion", "sentiment_reliability", "sentiment_errors",
    }


def test_text_report_html_is_self_contained_with_every_section() -> None:
    report = text_report(
        texts=TEXTS,
        sentiment_true=SENTIMENT_TRUE,
        sentiment_probabilities=P_SENTIMENT,
        sentiment_classes=CLASSES,
        themes_true=Y_TRUE,
        theme_probabilities=P_THEMES,
        theme_ids=THEMES,
    )
    page = report.html
    assert page.startswith("<!DOCTYPE html>")
    for section in ("overview", "themes", "sentiment", "calibration", "errors"):
        assert f'<section id="{section}">' in page
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 3  # theme F1, confusion matrix, reliability curve
    assert all(base64.b64decode(i).startswith(b"\x89PNG") for i in images)
    assert "&lt;b&gt;rude&lt;/b&gt;" in page and "<b>rude</b>" not in page  # texts escaped
    assert "src=\"http" not in page and "<script" not in page


def test_text_report_with_sentiment_only_and_per_theme_thresholds() -> None:
    only_sentiment = text_report(
        sentiment_true=SENTIMENT_TRUE,
        sentiment_probabilities=P_SENTIMENT,
        sentiment_classes=CLASSES,
    )
    assert not any(k.startswith("theme") for k in only_sentiment.metrics)
    assert '<section id="themes">' not in only_sentiment.html
    assert "No texts were given" in only_sentiment.html
    strict = text_report(
        themes_true=Y_TRUE, theme_probabilities=P_THEMES, theme_ids=THEMES,
        theme_thresholds=[0.95, 0.5],
    )
    assert strict.metrics["theme_billing_recall"] == 0.0
    assert strict.metrics["theme_staff_f1"] == 1.0
    with pytest.raises(ValueError, match="nothing to report"):
        text_report()


def test_each_task_can_have_its_own_texts() -> None:
    report = text_report(
        sentiment_texts=["a", "b", "c", "d"],
        sentiment_true=SENTIMENT_TRUE,
        sentiment_probabilities=P_SENTIMENT,
        sentiment_classes=CLASSES,
        theme_texts=["w", "x", "y", "z"],
        themes_true=Y_TRUE,
        theme_probabilities=P_THEMES,
        theme_ids=THEMES,
    )
    assert report.tables["sentiment_errors"]["text"].tolist()[:1] == ["d"]
    assert report.tables["theme_errors"]["text"].tolist()[:1] == ["x"]


class FixedThemes:
    """A fitted theme model stub: fixed probabilities, per-theme thresholds."""

    classes_ = np.array([0, 1])
    thresholds_ = np.array([0.95, 0.5])

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        return P_THEMES[: len(texts)]


def test_evaluate_text_models_scores_fitted_models() -> None:
    texts = ["good staff", "bad bill", "good service", "bad charge"] * 4
    labels = np.array(["positive", "negative", "positive", "negative"] * 4)
    config = TextModelConfig(char_ngrams=False, min_df=2)
    sentiment = make_sentiment_model(config).fit(texts, labels)
    report = evaluate_text_models(
        sentiment_model=sentiment,
        sentiment_texts=texts[:4],
        sentiment_true=labels[:4],
        theme_model=FixedThemes(),
        theme_texts=TEXTS,
        themes_true=Y_TRUE,
        theme_ids=THEMES,
    )
    assert report.metrics["sentiment_accuracy"] == 1.0
    # the model's thresholds_ are used: billing needs 0.95, so it is never predicted
    assert report.metrics["theme_billing_recall"] == 0.0
    assert report.metrics["theme_staff_f1"] == 1.0
    override = evaluate_text_models(
        theme_model=FixedThemes(), theme_texts=TEXTS, themes_true=Y_TRUE, theme_ids=THEMES,
        theme_threshold=0.5, n_bins=2,
    )
    assert override.metrics["themes_micro_f1"] == pytest.approx(0.75)
    assert "sentiment_accuracy" not in override.metrics
