"""Churn features and reasons from sentiment per theme: "negative about billing in 3 of the last 5"."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from retain.churn.features import FEATURE_SIGNALS, build_features, feedback_features
from retain.churn.reasons import top_reasons
from retain.config import FeatureConfig, LabelConfig, TextModelConfig
from retain.contracts import World
from retain.text.point_in_time import point_in_time_feedback_scores

AS_OF = pd.Timestamp("2024-06-01")
THEMES = ["billing", "slow_support"]


def _day(days_before: float) -> pd.Timestamp:
    return AS_OF - pd.Timedelta(days=days_before)


def _tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    """c1: six comments in the window (+1 after as_of); c2: two in the window, one older, one
    unscored; c3: none."""
    rows = [
        # id, customer, days before as_of, p(negative about billing), about slow support
        ("a1", "c1", 1, 0.9, 0.0),
        ("a2", "c1", 2, 0.8, 0.6),
        ("a3", "c1", 3, 0.1, 0.0),
        ("a4", "c1", 4, 0.5, 0.0),  # exactly the cut-off: counts as negative
        ("a5", "c1", 5, 0.0, 0.0),
        ("a6", "c1", 6, 0.95, 0.0),  # sixth newest: not among the last 5
        ("a7", "c1", -3, 1.0, 1.0),  # after as_of
        ("b1", "c2", 10, 0.7, 0.2),
        ("b2", "c2", 20, 0.0, 0.0),
        ("b3", "c2", 120, 0.9, 0.9),  # outside the longest (90-day) window
        ("b4", "c2", 0, np.nan, np.nan),  # no score row at all (dropped below)
    ]
    feedback = pd.DataFrame(
        {
            "feedback_id": [r[0] for r in rows],
            "customer_id": [r[1] for r in rows],
            "created_at": [_day(r[2]) for r in rows],
            "text": "some text",
        }
    )
    scored = [r for r in rows if r[0] != "b4"]
    scores = pd.DataFrame(
        {
            "feedback_id": [r[0] for r in scored],
            "sentiment_negative": 0.5,
            "sentiment_neutral": 0.25,
            "sentiment_positive": 0.25,
            "theme_billing": 0.5,
            "theme_slow_support": 0.5,
            "aspect_billing_negative": [r[3] for r in scored],
            "aspect_slow_support_negative": [r[4] for r in scored],
        }
    )
    return feedback, scores


def test_last_n_comments_negative_about_each_theme_by_hand() -> None:
    feedback, scores = _tables()
    f = feedback_features(
        feedback, scores, ["c1", "c2", "c3"], AS_OF, THEMES, theme_sentiment_comments=5
    )
    assert f["recent_comments"].tolist() == [5.0, 2.0, 0.0]
    # c1's newest five: a1 0.9, a2 0.8, a3 0.1, a4 0.5, a5 0.0 -> 3 negative about billing
    assert f["theme_billing_negative_recent"].tolist() == [3.0, 1.0, 0.0]
    assert f["theme_slow_support_negative_recent"].tolist() == [1.0, 0.0, 0.0]
    np.testing.assert_allclose(
        f["theme_billing_negative_recent_share"], [3 / 5, 1 / 2, np.nan]
    )
    assert f.loc["c3", "theme_slow_support_negative_recent_share"] != 0  # NaN, not 0


def test_fewer_comments_read_with_a_smaller_n_and_a_shorter_window() -> None:
    feedback, scores = _tables()
    f = feedback_features(
        feedback, scores, ["c1", "c2"], AS_OF, THEMES, windows_days=(3, 15),
        theme_sentiment_comments=2,
    )
    assert f["recent_comments"].tolist() == [2.0, 1.0]  # c2: only b1 is within 15 days
    assert f["theme_billing_negative_recent"].tolist() == [2.0, 1.0]


def test_features_are_off_by_default_and_without_per_theme_scores() -> None:
    feedback, scores = _tables()
    off = feedback_features(feedback, scores, ["c1"], AS_OF, THEMES)
    assert not any("recent" in c for c in off.columns)
    plain = scores.drop(columns=["aspect_billing_negative", "aspect_slow_support_negative"])
    without = feedback_features(
        feedback, plain, ["c1"], AS_OF, THEMES, theme_sentiment_comments=5
    )
    assert list(without.columns) == list(off.columns)


def test_feedback_after_as_of_changes_nothing() -> None:
    feedback, scores = _tables()
    before = feedback_features(
        feedback, scores, ["c1", "c2"], AS_OF, THEMES, theme_sentiment_comments=5
    )
    later = pd.DataFrame(
        {"feedback_id": ["z1", "z2"], "customer_id": ["c1", "c2"],
         "created_at": [_day(-1), _day(-0.5)], "text": "x"}
    )
    later_scores = scores.iloc[:2].assign(
        feedback_id=["z1", "z2"], aspect_billing_negative=1.0, aspect_slow_support_negative=1.0
    )
    after = feedback_features(
        pd.concat([feedback, later], ignore_index=True),
        pd.concat([scores, later_scores], ignore_index=True),
        ["c1", "c2"],
        AS_OF,
        THEMES,
        theme_sentiment_comments=5,
    )
    pd.testing.assert_frame_equal(before, after)


def test_build_features_passes_the_setting_through() -> None:
    feedback, scores = _tables()
    customers = pd.DataFrame(
        {"customer_id": ["c1", "c2"], "signup_at": [_day(400), _day(400)]}
    )
    table = build_features(
        World(customers=customers, feedback=feedback), AS_OF, scores, THEMES,
        theme_sentiment_comments=5,
    )
    assert table["theme_billing_negative_recent"].tolist() == [3.0, 1.0]


def test_new_columns_have_reason_signals() -> None:
    assert FEATURE_SIGNALS["theme_billing_negative_recent"] == "theme_billing"
    assert FEATURE_SIGNALS["theme_slow_support_negative_recent_share"] == "theme_slow_support"
    assert FEATURE_SIGNALS["recent_comments"] == "engagement"


def test_config_switch() -> None:
    assert FeatureConfig().theme_sentiment_comments == 0
    assert FeatureConfig(theme_sentiment_comments=5).theme_sentiment_comments == 5
    with pytest.raises(ValidationError):
        FeatureConfig(theme_sentiment_comments=-1)


def test_reason_quotes_negative_comments_about_a_theme_out_of_the_last_n() -> None:
    features = pd.DataFrame(
        {
            "theme_billing_negative_recent": [3.0, 0.0, 0.0, 1.0, 0.0],
            "recent_comments": [5.0, 4.0, 0.0, 2.0, 1.0],
            "theme_billing_negative_90d": [2.1, 0.1, 0.0, 0.6, 0.0],
        },
        index=[1, 2, 3, 4, 5],
    )
    attributions = pd.DataFrame(
        {
            "theme_billing_negative_recent": [0.6, -0.1, -0.1, 0.2, -0.1],
            "recent_comments": [0.0, 0.0, 0.0, 0.0, 0.0],
            "theme_billing_negative_90d": [0.2, -0.05, -0.05, 0.1, -0.05],
            "baseline": -2.0,
        },
        index=features.index,
    )
    reasons = top_reasons(attributions, features, FEATURE_SIGNALS, k=1)
    assert reasons.loc[1, "reason_1_signal"] == "theme_billing"
    assert reasons.loc[1, "reason_1"] == (
        "Negative about billing errors in 3 of the last 5 comment(s); median customer: 0"
    )
    assert reasons.loc[4, "reason_1"] == (
        "Negative about billing errors in 1 of the last 2 comment(s); median customer: 0"
    )
    assert reasons.loc[2, "reason_1"] is None


def test_point_in_time_scores_carry_sentiment_per_theme_from_the_cuts_models() -> None:
    texts = {
        "negative": ["billing charged me twice", "wrong invoice charge", "slow support reply"],
        "positive": ["great support thanks", "billing was clear", "lovely helpful staff"],
    }
    themes = {
        "billing charged me twice": "billing", "wrong invoice charge": "billing",
        "slow support reply": "slow_support", "great support thanks": "slow_support",
        "billing was clear": "billing", "lovely helpful staff": "",
    }
    rows = []
    for k in range(8):
        for sentiment, items in texts.items():
            for text in items:
                rows.append((f"f{len(rows)}", _day(200 - 10 * k), text, sentiment, themes[text]))
    feedback = pd.DataFrame(
        rows, columns=["feedback_id", "created_at", "text", "sentiment", "themes"]
    )
    feedback.loc[len(feedback)] = [
        "mixed", _day(1), "great support thanks but billing charged me twice", None, None
    ]
    scores = point_in_time_feedback_scores(
        feedback, [AS_OF], THEMES, TextModelConfig(min_df=2), min_labelled=10, aspects=True
    ).scores_for(AS_OF)
    assert scores is not None
    assert {"aspect_billing_negative", "aspect_slow_support_negative"} <= set(scores.columns)
    mixed = scores.set_index("feedback_id").loc["mixed"]
    assert mixed["aspect_billing_negative"] > 0.5 > mixed["aspect_slow_support_negative"]
    plain = point_in_time_feedback_scores(
        feedback, [AS_OF], THEMES, TextModelConfig(min_df=2), min_labelled=10
    ).scores_for(AS_OF)
    assert plain is not None and "aspect_billing_negative" not in plain.columns


def test_training_table_gets_the_features_from_point_in_time_models_when_switched_on() -> None:
    from retain.config import ChurnModelConfig
    from retain.synth import THEMES as SYNTH_THEMES
    from retain.synth import generate_world
    from retain.training import build_training_table, plan_evaluation

    world = generate_world(150, seed=2, start="2024-01-01", end="2025-03-31")
    churn = ChurnModelConfig(train_every_days=60, train_periods=3, backtest_dates=1)
    text = TextModelConfig(char_ngrams=False, min_df=2, max_features=2000)
    on = FeatureConfig(horizon_days=60, theme_sentiment_comments=3)
    plan = plan_evaluation(world, on, churn)
    table = build_training_table(
        world, plan, list(SYNTH_THEMES), on, LabelConfig(), text, use_text=True
    )
    recent = [c for c in table.columns if c.endswith("_negative_recent")]
    assert len(recent) == len(SYNTH_THEMES)
    # dates before enough labelled feedback have no text scores: NaN, like every text feature
    scored = table.loc[table["recent_comments"].notna()]
    assert len(scored) > 0
    assert scored["recent_comments"].max() <= 3
    assert (scored[recent].to_numpy() <= scored[["recent_comments"]].to_numpy()).all()
    assert scored[recent].to_numpy().sum() > 0  # some comment is negative about some theme
    off = build_training_table(
        world, plan, list(SYNTH_THEMES), FeatureConfig(horizon_days=60), LabelConfig(), text,
        use_text=True,
    )
    assert "recent_comments" not in off.columns
    assert set(table.columns) - set(off.columns) == {
        "recent_comments", *recent, *(f"{c}_share" for c in recent)
    }
