"""Point-in-time feedback scores: the text models behind a date never saw later feedback."""

from __future__ import annotations

import logging
import random
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retain.config import TextModelConfig
from retain.text import point_in_time
from retain.text.inputs import theme_indicators
from retain.text.point_in_time import point_in_time_feedback_scores, text_model_cuts
from retain.text.scoring import (
    SENTIMENT_COLUMNS,
    feedback_score_columns,
    score_feedback,
    theme_column,
)
from retain.text.tfidf import make_sentiment_model, make_theme_model

THEME_IDS = ["billing", "slow_support", "product_bugs"]
CONFIG = TextModelConfig(min_df=2, max_features=2000, char_ngrams=False)
START = pd.Timestamp("2024-01-01")
AS_OF = pd.Timestamp("2024-05-01")
LATER_AS_OF = pd.Timestamp("2024-08-01")
# A word no base text contains: planted feedback teaches it one way or the other.
PLANTED_TOKEN = "zorblax"

PROBLEMS = {
    "billing": ["I was charged twice", "the invoice is wrong", "my refund never arrived"],
    "slow_support": ["I waited hours for a reply", "nobody answers the phone", "no callback"],
    "product_bugs": ["the app keeps crashing", "my data was lost", "the sync error is back"],
}
POSITIVE = ["Love the product", "Great service, thanks", "Excellent and friendly team"]
NEUTRAL = ["How do I change my email", "What are your opening hours", "Where is my statement"]


def make_feedback(n_days: int = 240, seed: int = 0) -> pd.DataFrame:
    """One labelled feedback row a day from START, at a distinct time of day; a third negative."""
    rng = random.Random(seed)
    rows = []
    for day in range(n_days):
        kind = day % 3
        if kind == 0:
            theme = rng.choice(list(PROBLEMS))
            text, sentiment, themes = f"Awful: {rng.choice(PROBLEMS[theme])}.", "negative", theme
        elif kind == 1:
            text, sentiment, themes = rng.choice(POSITIVE), "positive", ""
        else:
            text, sentiment, themes = f"{rng.choice(NEUTRAL)}?", "neutral", ""
        rows.append(
            {
                "feedback_id": f"f{day:04d}",
                "created_at": START + pd.Timedelta(days=day, minutes=rng.randrange(1, 1439)),
                "text": text,
                "sentiment": sentiment,
                "themes": themes,
            }
        )
    return pd.DataFrame(rows)


def planted_feedback(n: int, after: pd.Timestamp, sentiment: str, themes: str) -> pd.DataFrame:
    """``n`` labelled rows created after ``after``, all containing the planted token."""
    return pd.DataFrame(
        {
            "feedback_id": [f"planted{i:03d}" for i in range(n)],
            "created_at": [after + pd.Timedelta(hours=1 + 7 * i) for i in range(n)],
            "text": [f"{PLANTED_TOKEN} {PLANTED_TOKEN} again" for _ in range(n)],
            "sentiment": sentiment,
            "themes": themes,
        }
    )


def with_probe(feedback: pd.DataFrame) -> pd.DataFrame:
    """Adds unlabelled rows before AS_OF that mention the planted token: they are scored."""
    probe = pd.DataFrame(
        {
            "feedback_id": ["probe1", "probe2"],
            "created_at": [AS_OF - pd.Timedelta(hours=5), AS_OF - pd.Timedelta(days=3)],
            "text": [f"{PLANTED_TOKEN} again", f"about {PLANTED_TOKEN}"],
            "sentiment": [None, None],
            "themes": [None, None],
        }
    )
    return pd.concat([feedback, probe], ignore_index=True)


def pit_scores(feedback: pd.DataFrame, dates=(AS_OF, LATER_AS_OF), **kwargs):
    with warnings.catch_warnings():
        # A theme without positives before an early cut: scikit-learn warns, the model says 0.
        warnings.filterwarnings("ignore", message="Label not .* is present in all training")
        return point_in_time_feedback_scores(feedback, list(dates), THEME_IDS, CONFIG, **kwargs)


@pytest.fixture(scope="module")
def base() -> pd.DataFrame:
    return with_probe(make_feedback())


@pytest.fixture(scope="module")
def base_scores(base: pd.DataFrame):
    return pit_scores(base)


@pytest.fixture(scope="module")
def base_scores_at_as_of(base: pd.DataFrame):
    return pit_scores(base, dates=[AS_OF])


# --------------------------------------------------------------------------------------------
# No leak from the future


def test_scores_at_as_of_ignore_planted_later_feedback(base: pd.DataFrame, base_scores) -> None:
    planted = planted_feedback(40, AS_OF, "negative", "billing")
    leaky_world = pd.concat([base, planted], ignore_index=True)
    scores = pit_scores(leaky_world).scores_for(AS_OF)
    pd.testing.assert_frame_equal(scores, base_scores.scores_for(AS_OF))
    assert not scores["feedback_id"].str.startswith("planted").any()

    # The plant has teeth: models that saw it score the probe rows very differently.
    leaky = _fit_on_everything(leaky_world)
    probes = scores.loc[scores["feedback_id"].str.startswith("probe")]
    leaked = leaky.loc[leaky["feedback_id"].str.startswith("probe")]
    assert (
        leaked["sentiment_negative"].to_numpy() > probes["sentiment_negative"].to_numpy() + 0.2
    ).all()
    assert (leaked["theme_billing"].to_numpy() > probes["theme_billing"].to_numpy() + 0.2).all()


def test_later_dates_do_see_the_planted_feedback(base: pd.DataFrame, base_scores) -> None:
    planted = planted_feedback(40, AS_OF, "negative", "billing")
    scores = pit_scores(pd.concat([base, planted], ignore_index=True)).scores_for(LATER_AS_OF)
    before = base_scores.scores_for(LATER_AS_OF)
    probe = scores["feedback_id"] == "probe1"
    assert (
        scores.loc[probe, "sentiment_negative"].iloc[0]
        > before.loc[before["feedback_id"] == "probe1", "sentiment_negative"].iloc[0] + 0.2
    )


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    drop=st.sets(st.integers(0, 239), max_size=40),
    relabel=st.sets(st.integers(0, 239), max_size=40),
    n_planted=st.integers(0, 30),
    planted_sentiment=st.sampled_from(["negative", "neutral", "positive"]),
    planted_themes=st.sampled_from(["", "billing", "slow_support|product_bugs"]),
)
def test_scores_at_as_of_do_not_change_with_later_feedback(
    base: pd.DataFrame,
    base_scores_at_as_of,
    drop: set[int],
    relabel: set[int],
    n_planted: int,
    planted_sentiment: str,
    planted_themes: str,
) -> None:
    """Adding, removing or relabelling feedback created after AS_OF leaves its scores alone."""
    later = base["created_at"] > AS_OF
    changed = base.copy()
    rows = changed.index[:240]
    relabelled = rows[[i in relabel for i in range(240)]]
    relabelled = relabelled[later[relabelled].to_numpy()]
    changed.loc[relabelled, "sentiment"] = "positive"
    changed.loc[relabelled, "themes"] = "product_bugs"
    dropped = rows[[i in drop for i in range(240)]]
    changed = changed.drop(index=dropped[later[dropped].to_numpy()])
    if n_planted:
        planted = planted_feedback(n_planted, AS_OF, planted_sentiment, planted_themes)
        changed = pd.concat([planted, changed], ignore_index=True)
    scores = pit_scores(changed, dates=[AS_OF]).scores_for(AS_OF)
    expected = base_scores_at_as_of.scores_for(AS_OF)
    pd.testing.assert_frame_equal(scores.reset_index(drop=True), expected.reset_index(drop=True))


def _fit_on_everything(feedback: pd.DataFrame) -> pd.DataFrame:
    labelled = feedback.loc[feedback["sentiment"].notna()]
    sentiment = make_sentiment_model(CONFIG).fit(labelled["text"], labelled["sentiment"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        themes = make_theme_model(CONFIG).fit(
            labelled["text"], theme_indicators(labelled["themes"], THEME_IDS)
        )
    return score_feedback(feedback, sentiment, themes, THEME_IDS)


# --------------------------------------------------------------------------------------------
# Where the cuts are and what each one fits and scores


def test_cuts_are_on_a_grid_anchored_on_the_latest_date_and_never_after_their_as_of() -> None:
    dates = pd.date_range("2024-01-01", periods=10, freq="MS")
    cut_of = text_model_cuts(list(dates), refit_every_days=90)
    assert cut_of[dates[-1]] == dates[-1]
    for as_of, cut in cut_of.items():
        assert cut <= as_of
        assert as_of - cut < pd.Timedelta(days=90)
        assert (dates[-1] - cut) % pd.Timedelta(days=90) == pd.Timedelta(0)
    # 2024-10-01 back in 90-day steps: 07-03, 04-04, 01-05 and 2023-10-07 (for 2024-01-01).
    assert sorted(set(cut_of.values())) == list(
        pd.to_datetime(["2023-10-07", "2024-01-05", "2024-04-04", "2024-07-03", "2024-10-01"])
    )
    # Every date its own cut when the grid is one day.
    assert text_model_cuts(list(dates), refit_every_days=1) == {d: d for d in dates}


def test_cuts_reject_bad_arguments() -> None:
    with pytest.raises(ValueError, match="empty"):
        text_model_cuts([], 90)
    with pytest.raises(ValueError, match="refit_every_days"):
        text_model_cuts([AS_OF], 0)


def test_one_fit_per_distinct_cut(base: pd.DataFrame, monkeypatch: pytest.MonkeyPatch) -> None:
    fits = {"sentiment": 0, "themes": 0}

    def counting(factory, name):
        def make(config):
            fits[name] += 1
            return factory(config)

        return make

    monkeypatch.setattr(
        point_in_time, "make_sentiment_model", counting(make_sentiment_model, "sentiment")
    )
    monkeypatch.setattr(point_in_time, "make_theme_model", counting(make_theme_model, "themes"))
    dates = pd.date_range("2024-03-01", "2024-08-01", freq="MS")
    scores = pit_scores(base, dates=dates, refit_every_days=60)

    distinct = set(text_model_cuts(list(dates), 60).values())
    # Anchor 2024-08-01, then 06-02, 04-03, 02-03 (2024 is a leap year): Mar-Apr, May-Jun, Jul and Aug.
    assert sorted(distinct) == list(
        pd.to_datetime(["2024-02-03", "2024-04-03", "2024-06-02", "2024-08-01"])
    )
    assert [c.cut for c in scores.cuts] == sorted(distinct)
    assert scores.n_fits == len(distinct)
    assert fits == {"sentiment": len(distinct), "themes": len(distinct)}


def test_each_cut_fits_on_labelled_rows_strictly_before_it_and_scores_up_to_its_as_of(
    base: pd.DataFrame,
) -> None:
    # One labelled row exactly at the cut: it is not a training row of that cut.
    at_cut = planted_feedback(1, AS_OF - pd.Timedelta(hours=1), "positive", "")
    at_cut["created_at"] = AS_OF
    feedback = pd.concat([base, at_cut], ignore_index=True)
    scores = pit_scores(feedback, dates=[AS_OF])
    (cut,) = scores.cuts
    assert cut.cut == AS_OF and cut.as_of_dates == (AS_OF,)
    labelled_before = int(((feedback["created_at"] < AS_OF) & feedback["sentiment"].notna()).sum())
    assert cut.sentiment_rows == cut.theme_rows == labelled_before

    table = scores.scores_for(AS_OF)
    assert list(table.columns) == feedback_score_columns(THEME_IDS)
    expected_ids = feedback.loc[feedback["created_at"] <= AS_OF, "feedback_id"]
    assert sorted(table["feedback_id"]) == sorted(expected_ids)
    assert cut.scored_rows == len(table)
    assert table["feedback_id"].is_unique
    np.testing.assert_allclose(table[list(SENTIMENT_COLUMNS)].sum(axis=1), 1.0, atol=1e-6)
    # The input's index is kept, so callers can join back to the feedback rows.
    assert (feedback.loc[table.index, "feedback_id"] == table["feedback_id"]).all()


def test_dates_sharing_a_cut_share_its_models(base: pd.DataFrame) -> None:
    early, late = pd.Timestamp("2024-04-10"), pd.Timestamp("2024-04-30")
    scores = pit_scores(base, dates=[early, late, AS_OF], refit_every_days=30)
    assert scores.cut_for(early).cut == scores.cut_for(late).cut == pd.Timestamp("2024-04-01")
    assert scores.n_fits == 2
    early_table = scores.scores_for(early)
    late_table = scores.scores_for(late)
    assert (
        early_table["feedback_id"].tolist()
        == late_table["feedback_id"].tolist()[: len(early_table)]
    )
    shared = late_table.iloc[: len(early_table)]
    pd.testing.assert_frame_equal(early_table, shared)
    assert len(early_table) == int((base["created_at"] <= early).sum())
    assert len(late_table) == int((base["created_at"] <= late).sum())


def test_scores_for_an_unknown_date_is_an_error(base_scores) -> None:
    with pytest.raises(KeyError, match="not one of the as_of dates"):
        base_scores.scores_for("2024-06-15")


# --------------------------------------------------------------------------------------------
# Partial labels and too few labels


def test_sentiment_only_labels(caplog: pytest.LogCaptureFixture) -> None:
    feedback = make_feedback().assign(themes=None)
    with caplog.at_level(logging.WARNING, logger="retain.text.point_in_time"):
        scores = pit_scores(feedback, dates=[AS_OF])
    table = scores.scores_for(AS_OF)
    assert scores.cuts[0].sentiment_fitted and not scores.cuts[0].themes_fitted
    assert table[list(SENTIMENT_COLUMNS)].notna().all().all()
    assert table[[theme_column(t) for t in THEME_IDS]].isna().all().all()
    assert "No theme model" in caplog.text

    # No themes column at all reads the same.
    again = pit_scores(feedback.drop(columns="themes"), dates=[AS_OF]).scores_for(AS_OF)
    pd.testing.assert_frame_equal(again, table)


def test_themes_only_labels(caplog: pytest.LogCaptureFixture) -> None:
    feedback = make_feedback().drop(columns="sentiment")
    with caplog.at_level(logging.WARNING, logger="retain.text.point_in_time"):
        scores = pit_scores(feedback, dates=[AS_OF])
    table = scores.scores_for(AS_OF)
    assert not scores.cuts[0].sentiment_fitted and scores.cuts[0].themes_fitted
    assert table[list(SENTIMENT_COLUMNS)].isna().all().all()
    themes = table[[theme_column(t) for t in THEME_IDS]]
    assert themes.notna().all().all()
    billing = table["feedback_id"].isin(
        feedback.loc[feedback["themes"] == "billing", "feedback_id"]
    )
    assert (
        themes.loc[billing, "theme_billing"].mean() > themes.loc[~billing, "theme_billing"].mean()
    )
    assert "No sentiment model" in caplog.text


def test_labels_on_different_rows_train_each_model_on_its_own_rows() -> None:
    feedback = make_feedback()
    odd = np.arange(len(feedback)) % 2 == 1
    feedback.loc[odd, "sentiment"] = None
    feedback.loc[~odd, "themes"] = None
    (cut,) = pit_scores(feedback, dates=[AS_OF]).cuts
    before = feedback["created_at"] < AS_OF
    assert cut.sentiment_rows == int((before & ~odd).sum())
    assert cut.theme_rows == int((before & odd).sum())
    assert cut.sentiment_fitted and cut.themes_fitted


def test_too_few_labels_before_the_cut_gives_no_scores(caplog: pytest.LogCaptureFixture) -> None:
    feedback = make_feedback()
    early = START + pd.Timedelta(days=10)  # 10 labelled rows before it
    with caplog.at_level(logging.WARNING, logger="retain.text.point_in_time"):
        scores = pit_scores(feedback, dates=[early, AS_OF], refit_every_days=30)
    assert scores.scores_for(early) is None
    assert scores.scores_for(AS_OF) is not None
    assert scores.unscored_dates == (early,)
    assert scores.n_fits == 1
    assert not scores.cut_for(early).fitted and scores.cut_for(early).scored_rows == 0
    assert "No text scores for as_of 2024-01-11" in caplog.text
    assert "fewer than min_labelled=20" in caplog.text
    assert "not fitted" in scores.summary()


def test_progress_bar_and_summary(base: pd.DataFrame) -> None:
    scores = pit_scores(base, dates=[AS_OF], show_progress=True)
    assert scores.summary().startswith("1 as_of dates, 1 cuts every 90 days, 1 fitted")
