"""Sentiment per theme: clause splitting, clause-level scoring, the wide view and the pair route."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

from retain.config import TextModelConfig
from retain.text.aspects import (
    ASPECT_COLUMNS,
    MIXED,
    ThemeInteractions,
    aspect_feedback_scores,
    aspect_sentiment,
    aspect_sentiment_wide,
    joined_pairs,
    make_pair_model,
    pair_columns,
    pair_sentiment,
    parse_theme_polarities,
    split_clauses,
    theme_pairs,
    theme_thresholds,
)
from retain.text.tfidf import make_sentiment_model, make_theme_model

THEMES = ["billing", "staff_attitude"]


class KeywordSentiment:
    """A fitted sentiment model stub: fixed probabilities from keywords, classes in odd order."""

    classes_ = np.array(["positive", "negative", "neutral"])
    words: ClassVar[dict[str, list[float]]] = {"lovely": [0.9, 0.05, 0.05], "mess": [0.05, 0.9, 0.05], "fine": [0.2, 0.2, 0.6]}

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        out = np.tile([0.2, 0.2, 0.6], (len(texts), 1))
        for i, text in enumerate(texts):
            hits = [p for w, p in self.words.items() if w in text.lower()]
            if hits:
                out[i] = np.mean(hits, axis=0)
        return out


class KeywordThemes:
    """A fitted theme model stub: 0.9 for a theme whose keyword appears, else 0.1."""

    classes_ = np.array([0, 1])
    keywords = ("billing", "staff")

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        return np.array(
            [[0.9 if k in t.lower() else 0.1 for k in self.keywords] for t in texts]
        )


# --------------------------------------------------------------------------------------------
# split_clauses


@pytest.mark.parametrize(
    ("text", "clauses"),
    [
        (
            "the staff were lovely but billing was a mess",
            ["the staff were lovely", "but billing was a mess"],
        ),
        (
            "Although the food was good, the service was slow.",
            ["Although the food was good", "the service was slow."],
        ),
        (
            "Great app! Crashes daily; support never replies - awful.",
            ["Great app!", "Crashes daily", "support never replies", "awful."],
        ),
        ("It was fine, however, the wait was long", ["It was fine", "however, the wait was long"]),
        ("Good food even though the room was loud", ["Good food", "even though the room was loud"]),
        ("I love it\u2014but it is slow", ["I love it", "but it is slow"]),
        ("Fees went up whereas the plan shrank", ["Fees went up", "whereas the plan shrank"]),
        ("Line one\nline two", ["Line one", "line two"]),
    ],
)
def test_split_clauses_splits_at_punctuation_and_contrastive_connectives(
    text: str, clauses: list[str]
) -> None:
    assert split_clauses(text) == clauses


@pytest.mark.parametrize(
    "text",
    [
        "The bug is not yet fixed",  # "not yet" is no contrast
        "The pasta, though, was cold.",  # parenthetical "though"
        "We waited for a while and left",  # "a while" is a noun
        "butter is nice and the buttons work",  # connectives only as whole words
        "But the staff was so horrible to us.",  # nothing before the connective
        "Price 3.5 dollars per month",  # a decimal point ends no sentence
    ],
)
def test_split_clauses_leaves_non_contrastive_uses_whole(text: str) -> None:
    assert split_clauses(text) == [text]


def test_split_clauses_of_empty_or_punctuation_only_text_is_empty() -> None:
    assert split_clauses("") == []
    assert split_clauses(" ; - ") == []


# --------------------------------------------------------------------------------------------
# aspect_sentiment with stub models (hand-checked outputs)


def test_each_theme_gets_the_sentiment_of_the_clause_that_raises_it() -> None:
    out = aspect_sentiment(
        ["the staff were lovely but billing was a mess"],
        KeywordSentiment(),
        KeywordThemes(),
        THEMES,
        feedback_ids=["f1"],
    )
    assert list(out.columns) == list(ASPECT_COLUMNS)
    by_theme = out.set_index("theme")
    assert by_theme.loc["staff_attitude", "sentiment"] == "positive"
    assert by_theme.loc["billing", "sentiment"] == "negative"
    # the clause's own probabilities, mapped by class name (the stub lists positive first)
    assert by_theme.loc["billing", "sentiment_negative"] == pytest.approx(0.9)
    assert by_theme.loc["billing", "sentiment_positive"] == pytest.approx(0.05)
    assert by_theme.loc["billing", "theme_probability"] == pytest.approx(0.9)
    assert set(out["source"]) == {"clauses"}
    assert list(out["clauses"]) == [1, 1]
    assert list(out["feedback_id"]) == ["f1", "f1"]
    assert list(out["theme"]) == ["billing", "staff_attitude"]  # taxonomy order


def test_whole_text_sentiment_alone_would_blur_both_themes() -> None:
    """The point of clauses: the same stub scoring whole texts gives both themes one polarity."""
    sentiment = KeywordSentiment()
    whole = sentiment.predict_proba(["the staff were lovely but billing was a mess"])[0]
    assert whole[0] == pytest.approx(whole[1])  # p(positive) == p(negative): no answer


def test_all_texts_and_clauses_are_scored_in_one_batch() -> None:
    sentiment = KeywordSentiment()
    aspect_sentiment(
        ["staff lovely", "the staff were lovely but billing was a mess", "billing was a mess"],
        sentiment,
        KeywordThemes(),
        THEMES,
    )
    assert len(sentiment.calls) == 1
    # three texts plus the two clauses of the only multi-clause text
    assert len(sentiment.calls[0]) == 5


def test_clauses_that_disagree_strongly_make_the_theme_mixed() -> None:
    out = aspect_sentiment(
        ["billing looked lovely. But billing was a mess"],
        KeywordSentiment(),
        KeywordThemes(),
        THEMES,
    )
    assert len(out) == 1
    row = out.iloc[0]
    assert row["theme"] == "billing"
    assert row["sentiment"] == MIXED
    assert row["clauses"] == 2
    # equal theme weights: the plain average of the two clauses
    assert row["sentiment_negative"] == pytest.approx((0.9 + 0.05) / 2)
    no_conflict = aspect_sentiment(
        ["billing looked lovely. But billing was a mess"],
        KeywordSentiment(),
        KeywordThemes(),
        THEMES,
        conflict=0.95,
    )
    assert no_conflict.iloc[0]["sentiment"] != MIXED


def test_a_theme_raised_only_by_the_whole_text_takes_the_whole_texts_sentiment() -> None:
    class WholeTextThemes:
        classes_ = np.array([0, 1])

        def predict_proba(self, texts: list[str]) -> np.ndarray:
            # only the full text (both clauses together) reaches the billing threshold
            return np.array([[0.8 if " but " in t else 0.3, 0.0] for t in texts])

    out = aspect_sentiment(
        ["it was fine but a mess"], KeywordSentiment(), WholeTextThemes(), THEMES
    )
    assert len(out) == 1
    row = out.iloc[0]
    assert (row["theme"], row["source"], row["clauses"]) == ("billing", "text", 0)
    whole = KeywordSentiment().predict_proba(["it was fine but a mess"])[0]
    assert row["sentiment_negative"] == pytest.approx(whole[1])
    assert row["theme_probability"] == pytest.approx(0.8)


def test_single_clause_texts_use_the_text_and_texts_without_themes_have_no_rows() -> None:
    out = aspect_sentiment(
        ["billing was a mess", "nothing to say here"],
        KeywordSentiment(),
        KeywordThemes(),
        THEMES,
        feedback_ids=["a", "b"],
    )
    assert list(out["feedback_id"]) == ["a"]
    assert out.iloc[0]["source"] == "text"
    assert out.iloc[0]["sentiment"] == "negative"


def test_thresholds_come_from_the_argument_then_the_model_then_half() -> None:
    model = KeywordThemes()
    assert list(theme_thresholds(model, 2)) == [0.5, 0.5]
    model.thresholds_ = np.array([0.95, 0.2])  # type: ignore[attr-defined]
    assert list(theme_thresholds(model, 2)) == [0.95, 0.2]
    assert list(theme_thresholds(model, 2, 0.3)) == [0.3, 0.3]
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        theme_thresholds(model, 2, 1.5)
    # billing (0.9) no longer clears its model threshold of 0.95
    out = aspect_sentiment(["billing was a mess"], KeywordSentiment(), model, THEMES)
    assert out.empty


def test_wide_view_has_one_row_per_text_with_labels_and_negative_probabilities() -> None:
    ids = ["f1", "f2", "f3"]
    long = aspect_sentiment(
        ["the staff were lovely but billing was a mess", "no themes", "staff lovely"],
        KeywordSentiment(),
        KeywordThemes(),
        THEMES,
        feedback_ids=ids,
    )
    wide = aspect_sentiment_wide(long, ids, THEMES)
    assert list(wide["feedback_id"]) == ids
    assert list(wide["aspect_billing_label"]) == ["negative", None, None]
    assert list(wide["aspect_staff_attitude_label"]) == ["positive", None, "positive"]
    assert wide["aspect_billing_negative"].tolist() == pytest.approx([0.9, 0.0, 0.0])


def test_aspect_feedback_scores_follow_the_feedback_rows_and_are_nan_without_a_model() -> None:
    feedback = pd.DataFrame(
        {"feedback_id": ["x", "y"], "text": ["billing was a mess", None]}, index=[10, 11]
    )
    scores = aspect_feedback_scores(feedback, KeywordSentiment(), KeywordThemes(), THEMES)
    assert list(scores.columns) == [
        "feedback_id", "aspect_billing_negative", "aspect_staff_attitude_negative"
    ]
    assert list(scores.index) == [10, 11]
    assert scores["aspect_billing_negative"].tolist() == pytest.approx([0.9, 0.0])
    missing = aspect_feedback_scores(feedback, None, KeywordThemes(), THEMES)
    assert missing["aspect_billing_negative"].isna().all()


def test_aspect_sentiment_works_with_fitted_tfidf_models() -> None:
    texts = [
        "billing was a mess",
        "the invoice charge was wrong",
        "billing was wrong again",
        "the staff were lovely",
        "staff were kind and lovely",
        "lovely helpful staff",
        "the staff were rude",
        "billing was lovely and clear",
    ] * 3
    sentiments = ["negative", "negative", "negative", "positive", "positive", "positive",
                  "negative", "positive"] * 3
    Y = np.array([[1, 0], [1, 0], [1, 0], [0, 1], [0, 1], [0, 1], [0, 1], [1, 0]] * 3)
    config = TextModelConfig(char_ngrams=False, min_df=2)
    sentiment = make_sentiment_model(config).fit(texts, np.array(sentiments))
    themes = make_theme_model(config).fit(texts, Y)
    out = aspect_sentiment(
        ["the staff were lovely but billing was a mess"], sentiment, themes, THEMES
    ).set_index("theme")
    assert out.loc["billing", "sentiment"] == "negative"
    assert out.loc["staff_attitude", "sentiment"] == "positive"
    probabilities = out[["sentiment_negative", "sentiment_neutral", "sentiment_positive"]]
    assert np.allclose(probabilities.sum(axis=1), 1.0)


def test_feedback_ids_must_match_the_texts() -> None:
    with pytest.raises(ValueError, match="2 feedback_ids for 1 texts"):
        aspect_sentiment(
            ["x"], KeywordSentiment(), KeywordThemes(), THEMES, feedback_ids=["a", "b"]
        )


def test_pair_sentiment_answers_for_given_themes_and_scores_each_text_once() -> None:
    sentiment = KeywordSentiment()
    text = "the staff were lovely but billing was a mess"
    out = pair_sentiment(
        [text, text, "it was fine"],
        ["staff_attitude", "billing", "billing"],
        sentiment,
        KeywordThemes(),
        THEMES,
    )
    assert out["sentiment"].tolist() == ["positive", "negative", "neutral"]
    # the third text does not raise billing (0.1): its whole-text sentiment, not no answer
    assert out["source"].tolist() == ["clauses", "clauses", "text"]
    assert out["theme_probability"].tolist() == pytest.approx([0.9, 0.9, 0.1])
    assert len(sentiment.calls) == 1 and len(sentiment.calls[0]) == 2 + 2  # 2 texts, 2 clauses
    with pytest.raises(ValueError, match="not in theme_ids: food"):
        pair_sentiment(["x"], ["food"], sentiment, KeywordThemes(), THEMES)


# --------------------------------------------------------------------------------------------
# Pairs for a pair classifier


def test_parse_theme_polarities() -> None:
    assert parse_theme_polarities("food:positive|anecdotes/miscellaneous:negative") == {
        "food": "positive",
        "anecdotes/miscellaneous": "negative",
    }
    assert parse_theme_polarities(np.nan) == {}
    assert parse_theme_polarities("") == {}
    with pytest.raises(ValueError, match="theme:polarity"):
        parse_theme_polarities("food")


def test_theme_pairs_make_one_item_per_labelled_theme() -> None:
    pairs, labels = theme_pairs(
        ["Great food, slow service.", "Nice place."],
        [{"food": "positive", "service": "negative"}, {"anecdotes/miscellaneous": "positive"}],
        theme_names={"service": "Service and staff"},
        feedback_ids=[7, 8],
    )
    assert list(pairs.columns[:2]) == ["text", "theme"]
    assert pairs["theme"].tolist() == ["food", "Service and staff", "anecdotes miscellaneous"]
    assert pairs["feedback_id"].tolist() == [7, 7, 8]
    assert pairs["theme_id"].tolist() == ["food", "service", "anecdotes/miscellaneous"]
    assert labels.tolist() == ["positive", "negative", "positive"]
    assert joined_pairs(pairs)[1] == "Great food, slow service. [theme] Service and staff"


def test_a_tfidf_model_over_joined_pairs_learns_polarity_per_theme() -> None:
    """The data side of the supervised route, with TF-IDF standing in for a pair transformer."""
    texts = ["food good service bad", "food bad service good"] * 6
    polarities = [{"food": "positive", "service": "negative"},
                  {"food": "negative", "service": "positive"}] * 6
    pairs, labels = theme_pairs(texts, polarities)
    config = TextModelConfig(char_ngrams=False, min_df=2, ngram_max=3)
    model = make_sentiment_model(config).fit(joined_pairs(pairs), labels)
    test_pairs, test_labels = theme_pairs(texts[:2], polarities[:2])
    assert list(model.predict(joined_pairs(test_pairs))) == list(test_labels)


def test_pair_model_reads_polarity_per_theme_where_a_text_model_cannot() -> None:
    texts = ["food good service bad", "food bad service good"] * 6
    polarities = [{"food": "positive", "service": "negative"},
                  {"food": "negative", "service": "positive"}] * 6
    pairs, labels = theme_pairs(texts, polarities)
    config = TextModelConfig(char_ngrams=False, min_df=2)
    model = make_pair_model(config).fit(pairs[["text", "theme"]], labels)
    assert list(model.predict(pairs[["text", "theme"]])) == list(labels)
    # an (n, 2) array works as well as the DataFrame
    both = np.array([["food good service bad", "food"], ["food good service bad", "service"]],
                    dtype=object)
    assert list(model.predict(both)) == ["positive", "negative"]
    # the whole-text model sees the same words for both themes: it cannot tell them apart
    text_only = make_sentiment_model(config).fit(pairs["text"].tolist(), labels)
    assert len(set(text_only.predict(["food good service bad"] * 2))) == 1


def test_theme_interactions_blocks() -> None:
    pairs = pd.DataFrame({"text": ["a b", "b c", "a c"], "theme": ["x", "y", "x"]})
    from sklearn.feature_extraction.text import CountVectorizer

    features = ThemeInteractions(CountVectorizer(token_pattern=r"\w+")).fit(pairs)
    assert features.themes_.tolist() == ["x", "y"]
    X = features.transform(pairs).toarray()
    assert X.shape == (3, 3 * 3)  # shared block + one per theme, 3 words each
    np.testing.assert_array_equal(X[0], [1, 1, 0, 1, 1, 0, 0, 0, 0])  # "a b" about x
    np.testing.assert_array_equal(X[1], [0, 1, 1, 0, 0, 0, 0, 1, 1])  # "b c" about y
    unseen = features.transform(pd.DataFrame({"text": ["a"], "theme": ["z"]})).toarray()
    np.testing.assert_array_equal(unseen[0], [1, 0, 0, 0, 0, 0, 0, 0, 0])
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        pair_columns(np.array(["a", "b"]))


class SoftmaxThemes:
    """A single-label theme model stub: a softmax over five themes that never reaches 0.5."""

    classes_ = np.array(["billing", "staff_attitude", "app", "delivery", "price"])
    keywords = ("billing", "staff", "app", "delivery", "price")

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        out = np.full((len(texts), 5), 0.15)
        for i, text in enumerate(texts):
            hits = [j for j, k in enumerate(self.keywords) if k in text.lower()]
            if hits:
                out[i, hits[0]] = 0.4  # the most probable theme, well under 0.5
        return out / out.sum(axis=1, keepdims=True)


def test_a_single_label_theme_model_raises_its_most_probable_theme_not_a_threshold() -> None:
    themes = list(SoftmaxThemes.classes_)
    texts = ["billing was a mess", "the staff were lovely but billing was a mess"]
    read_at_half = aspect_sentiment(texts, KeywordSentiment(), SoftmaxThemes(), themes)
    assert read_at_half.empty  # what churn features saw before: no theme raised at all

    single = aspect_sentiment(texts, KeywordSentiment(), SoftmaxThemes(), themes, single_label=True)
    raised = set(zip(single["feedback_id"], single["theme"], single["sentiment"], strict=True))
    # text 0: its one theme; text 1: the text's top theme (staff, first keyword) and each
    # clause's own top theme, each with its clause's polarity
    assert raised == {
        (0, "billing", "negative"),
        (1, "staff_attitude", "positive"),
        (1, "billing", "negative"),
    }
    wide = aspect_feedback_scores(
        pd.DataFrame({"feedback_id": ["a", "b"], "text": texts}),
        KeywordSentiment(), SoftmaxThemes(), themes, single_label=True,
    )
    assert wide["aspect_billing_negative"].gt(0.5).tolist() == [True, True]
    assert wide["aspect_price_negative"].eq(0).all()
