"""Text models: sentiment and theme Pipelines, feedback scores, out-of-fold scores.

Point-in-time scores are tested in test_text_point_in_time.py.
"""

from __future__ import annotations

import logging
import random

import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyClassifier

from retain.config import TextModelConfig
from retain.text.inputs import as_texts, theme_indicators, theme_lists
from retain.text.point_in_time import out_of_fold_feedback_scores
from retain.text.scoring import SENTIMENT_COLUMNS, feedback_score_columns, score_feedback
from retain.text.tfidf import make_sentiment_model, make_theme_model

# "pricing" never occurs in the corpus: the theme model must cope with a theme without examples.
THEME_IDS = ["billing", "slow_support", "product_bugs", "usability", "pricing"]
CONFIG = TextModelConfig(min_df=2, max_features=5000)

PROBLEMS = {
    "billing": [
        "I was charged twice this month",
        "the invoice amount is wrong",
        "my refund never arrived",
    ],
    "slow_support": [
        "I waited hours for a reply",
        "nobody answers the support line",
        "still no callback after days",
    ],
    "product_bugs": [
        "the app keeps crashing",
        "my data was lost after the update",
        "the sync error is back",
    ],
    "usability": [
        "the settings screen is confusing",
        "it is hard to find the export button",
        "setup was a maze",
    ],
}
NEGATIVE_FRAMES = [
    "Terrible. {p}.",
    "{p} and I am furious.",
    "Very disappointed: {p}.",
    "Awful, {p}, fix it.",
]
POSITIVE = [
    "Love the product, works great",
    "Thank you, excellent and friendly team",
    "Great service, very happy",
    "Fantastic update, I love it",
    "Brilliant support, thanks a lot",
    "Really happy with everything, great job",
    "Excellent value, love using it",
    "Wonderful experience, thank you so much",
]
NEUTRAL = [
    "How do I change my email address",
    "What are your opening hours",
    "Please update my postal address",
    "Can I add a second user to the account",
    "Where can I download last month's statement",
    "Is there a mobile version of the dashboard",
    "Which plan includes the reporting module",
    "When does my contract renew",
]


def make_corpus(seed: int) -> pd.DataFrame:
    """About 60 labelled feedback rows: negatives mention one or two problem themes."""
    rng = random.Random(seed)
    rows: list[tuple[str, str, str]] = []
    themes = list(PROBLEMS)
    for i in range(30):
        picked = sorted(rng.sample(themes, 2 if i % 3 == 0 else 1), key=themes.index)
        problem = " and ".join(rng.choice(PROBLEMS[t]) for t in picked)
        rows.append((rng.choice(NEGATIVE_FRAMES).format(p=problem), "negative", "|".join(picked)))
    for i in range(15):
        rows.append((f"{rng.choice(POSITIVE)}{'!' * (i % 3)}", "positive", ""))
        rows.append((f"{rng.choice(NEUTRAL)}?", "neutral", ""))
    rng.shuffle(rows)
    frame = pd.DataFrame(rows, columns=["text", "sentiment", "themes"])
    frame.insert(0, "feedback_id", [f"f{seed}-{i}" for i in range(len(frame))])
    return frame


@pytest.fixture(scope="module")
def train() -> pd.DataFrame:
    return make_corpus(seed=0)


@pytest.fixture(scope="module")
def test() -> pd.DataFrame:
    return make_corpus(seed=1)


@pytest.fixture(scope="module")
def sentiment_model(train: pd.DataFrame):
    return make_sentiment_model(CONFIG).fit(train["text"], train["sentiment"])


@pytest.fixture(scope="module")
def theme_model(train: pd.DataFrame):
    with pytest.warns(UserWarning, match="present in all training examples"):
        return make_theme_model(CONFIG).fit(
            train["text"], theme_indicators(train["themes"], THEME_IDS)
        )


def test_as_texts_turns_missing_values_into_empty_strings() -> None:
    texts = pd.Series(["a", None, np.nan, pd.NA, 3], dtype=object)
    assert as_texts(texts) == ["a", "", "", "", "3"]
    assert as_texts(np.array([["x"], [None]], dtype=object)) == ["x", ""]
    assert as_texts(pd.DataFrame({"text": ["y", None]})) == ["y", ""]
    with pytest.raises(TypeError):
        as_texts("one string")


def test_theme_indicators_follow_taxonomy_order(caplog: pytest.LogCaptureFixture) -> None:
    themes = pd.Series(["usability|billing", "", None, "billing|nonsense", "pricing"])
    with caplog.at_level(logging.WARNING, logger="retain.text.inputs"):
        Y = theme_indicators(themes, THEME_IDS)
    expected = np.array(
        [[1, 0, 0, 1, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0], [1, 0, 0, 0, 0], [0, 0, 0, 0, 1]]
    )
    np.testing.assert_array_equal(Y, expected)
    assert "nonsense" in caplog.text


def test_theme_lists_apply_the_threshold_in_taxonomy_order() -> None:
    probabilities = np.array([[0.9, 0.1, 0.5, 0.2, 0.7], [0.0, 0.0, 0.0, 0.0, 0.0]])
    assert theme_lists(probabilities, THEME_IDS, 0.5) == [
        ["billing", "product_bugs", "pricing"],
        [],
    ]
    with pytest.raises(ValueError, match="shape"):
        theme_lists(probabilities[:, :3], THEME_IDS, 0.5)


def test_sentiment_model_learns_the_corpus(sentiment_model, test: pd.DataFrame) -> None:
    assert list(sentiment_model.classes_) == ["negative", "neutral", "positive"]
    accuracy = np.mean(sentiment_model.predict(test["text"]) == test["sentiment"].to_numpy())
    assert accuracy >= 0.8  # chance is 1/3 to 1/2


def test_theme_model_learns_the_corpus(theme_model, test: pd.DataFrame) -> None:
    Y_true = theme_indicators(test["themes"], THEME_IDS)
    probabilities = theme_model.predict_proba(test["text"])
    assert probabilities.shape == (len(test), len(THEME_IDS))
    Y_pred = (probabilities >= 0.5).astype(int)
    true_positives = (Y_true & Y_pred).sum()
    micro_f1 = 2 * true_positives / (Y_true.sum() + Y_pred.sum())
    assert micro_f1 >= 0.7


def test_theme_without_examples_gets_zero_probability(theme_model, test: pd.DataFrame) -> None:
    probabilities = theme_model.predict_proba(test["text"])
    np.testing.assert_array_equal(probabilities[:, THEME_IDS.index("pricing")], 0.0)


def test_models_fit_and_predict_missing_texts() -> None:
    texts = pd.Series(["good service", None, "bad service", np.nan, "good", "bad"], dtype=object)
    labels = ["positive", "neutral", "negative", "neutral", "positive", "negative"]
    model = make_sentiment_model(CONFIG).fit(texts, labels)
    probabilities = model.predict_proba(pd.Series([None, "good"], dtype=object))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    Y = np.array([[1, 0], [0, 0], [0, 1], [0, 0], [1, 0], [0, 1]])
    themes = make_theme_model(CONFIG).fit(texts, Y)
    assert themes.predict_proba([None, "bad"]).shape == (2, 2)


def test_score_feedback_columns_and_index(sentiment_model, theme_model, test: pd.DataFrame) -> None:
    feedback = test.set_index(pd.Index(range(100, 100 + len(test))))
    feedback.loc[feedback.index[0], "text"] = None
    scores = score_feedback(feedback, sentiment_model, theme_model, THEME_IDS)
    assert list(scores.columns) == feedback_score_columns(THEME_IDS)
    assert list(scores.columns[:4]) == ["feedback_id", *SENTIMENT_COLUMNS]
    pd.testing.assert_index_equal(scores.index, feedback.index)
    assert (scores["feedback_id"] == feedback["feedback_id"]).all()
    np.testing.assert_allclose(scores[list(SENTIMENT_COLUMNS)].sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(
        scores["sentiment_negative"], sentiment_model.predict_proba(feedback["text"])[:, 0]
    )


class FixedModel:
    """Any estimator with ``classes_`` and ``predict_proba``: constant probabilities."""

    def __init__(self, classes: list, row: list[float]) -> None:
        self.classes_ = np.array(classes)
        self.row = np.array(row)

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        return np.tile(self.row, (len(texts), 1))


def test_score_feedback_maps_columns_by_class_name(test: pd.DataFrame) -> None:
    sentiment = FixedModel(["positive", "negative", "neutral"], [0.7, 0.2, 0.1])
    themes = FixedModel(
        ["pricing", "usability", "product_bugs", "slow_support", "billing"],
        [0.5, 0.4, 0.3, 0.2, 0.1],
    )
    scores = score_feedback(test.head(3), sentiment, themes, THEME_IDS)
    first = scores.iloc[0]
    assert (
        first["sentiment_negative"],
        first["sentiment_neutral"],
        first["sentiment_positive"],
    ) == (
        0.2,
        0.1,
        0.7,
    )
    assert [first[f"theme_{t}"] for t in THEME_IDS] == [0.1, 0.2, 0.3, 0.4, 0.5]


def test_score_feedback_gives_zero_to_classes_a_model_does_not_know(
    theme_model, test: pd.DataFrame
) -> None:
    # A DummyClassifier fitted without "neutral" has classes_ [negative, positive].
    dummy = DummyClassifier(strategy="prior").fit(
        np.zeros((4, 1)), ["positive", "negative", "negative", "negative"]
    )
    scores = score_feedback(test.head(2), dummy, theme_model, THEME_IDS)
    np.testing.assert_allclose(scores["sentiment_negative"], 0.75)
    np.testing.assert_allclose(scores["sentiment_positive"], 0.25)
    np.testing.assert_allclose(scores["sentiment_neutral"], 0.0)


def test_score_feedback_on_no_rows(sentiment_model, theme_model, test: pd.DataFrame) -> None:
    scores = score_feedback(test.head(0), sentiment_model, theme_model, THEME_IDS)
    assert scores.empty
    assert list(scores.columns) == feedback_score_columns(THEME_IDS)


def test_score_feedback_without_a_model_leaves_its_columns_nan(
    sentiment_model, test: pd.DataFrame
) -> None:
    scores = score_feedback(test.head(3), sentiment_model, None, THEME_IDS)
    assert list(scores.columns) == feedback_score_columns(THEME_IDS)
    assert scores[list(SENTIMENT_COLUMNS)].notna().all().all()
    assert scores[[f"theme_{t}" for t in THEME_IDS]].isna().all().all()
    scores = score_feedback(test.head(3), None, None, THEME_IDS)
    assert scores.drop(columns="feedback_id").isna().all().all()


@pytest.fixture(scope="module")
def oof_scores(train: pd.DataFrame) -> pd.DataFrame:
    feedback = train.copy()
    feedback.loc[feedback.index[:3], "sentiment"] = None  # unlabelled rows are still scored
    with pytest.warns(UserWarning, match="present in all training examples"):
        return out_of_fold_feedback_scores(feedback, CONFIG, THEME_IDS, n_folds=3)


def test_out_of_fold_scores_cover_every_row_in_order(oof_scores, train: pd.DataFrame) -> None:
    assert list(oof_scores.columns) == feedback_score_columns(THEME_IDS)
    pd.testing.assert_index_equal(oof_scores.index, train.index)
    assert (oof_scores["feedback_id"] == train["feedback_id"]).all()
    assert not oof_scores.isna().any().any()
    np.testing.assert_allclose(oof_scores[list(SENTIMENT_COLUMNS)].sum(axis=1), 1.0, atol=1e-6)


def test_out_of_fold_scores_differ_from_in_sample_scores(
    oof_scores, train: pd.DataFrame, sentiment_model, theme_model
) -> None:
    in_sample = score_feedback(train, sentiment_model, theme_model, THEME_IDS)
    numeric = oof_scores.columns[1:]
    assert not np.allclose(oof_scores[numeric], in_sample[numeric])
    # Models that saw a text are more confident about its true label than models that did not.
    truth = [f"sentiment_{s}" for s in train["sentiment"]]
    rows = np.arange(len(train))
    assert (
        in_sample[numeric].to_numpy()[rows, in_sample.columns[1:].get_indexer(truth)].mean()
        > oof_scores[numeric].to_numpy()[rows, oof_scores.columns[1:].get_indexer(truth)].mean()
    )


def test_out_of_fold_scores_are_reproducible(oof_scores, train: pd.DataFrame) -> None:
    feedback = train.copy()
    feedback.loc[feedback.index[:3], "sentiment"] = None
    with pytest.warns(UserWarning):
        again = out_of_fold_feedback_scores(feedback, CONFIG, THEME_IDS, n_folds=3)
    pd.testing.assert_frame_equal(again, oof_scores)


def test_out_of_fold_scores_with_a_single_sentiment_class(train: pd.DataFrame) -> None:
    feedback = train.head(12).assign(sentiment="negative")
    with pytest.warns(UserWarning):
        scores = out_of_fold_feedback_scores(feedback, CONFIG, THEME_IDS, n_folds=2)
    np.testing.assert_allclose(scores["sentiment_negative"], 1.0)
    np.testing.assert_allclose(scores[["sentiment_neutral", "sentiment_positive"]], 0.0)


def test_one_theme_taxonomy() -> None:
    texts = ["charged twice again", "love the product", "charged twice, wrong invoice", "love the support"]
    model = make_theme_model(CONFIG).fit(texts, np.array([[1], [0], [1], [0]]))
    feedback = pd.DataFrame({"feedback_id": ["a", "b"], "text": ["charged twice", "love it"]})
    sentiment = FixedModel(["negative", "neutral", "positive"], [0.5, 0.3, 0.2])
    scores = score_feedback(feedback, sentiment, model, ["billing"])
    assert list(scores.columns) == feedback_score_columns(["billing"])
    np.testing.assert_allclose(scores["theme_billing"], model.predict_proba(feedback["text"])[:, 1])
    assert scores["theme_billing"].iloc[0] > scores["theme_billing"].iloc[1]
