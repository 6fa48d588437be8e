"""The synthetic world: contracts, determinism, time rules, rates, planted causes and texts."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from retain.config import Taxonomy, load_config
from retain.contracts import (
    CHANNELS,
    CONTRACTS,
    EVENT_TYPES,
    FEEDBACK_SOURCES,
    SENTIMENTS,
    World,
    split_themes,
    validate_table,
)
from retain.synth import CHURN_THEMES, PLANS, REGIONS, SEGMENTS, THEMES, generate_world

REPO = Path(__file__).resolve().parents[1]
DAY = pd.Timedelta(days=1)
START, END = pd.Timestamp("2024-01-01"), pd.Timestamp("2025-12-31")
END_EXCLUSIVE = END + DAY  # the end day is part of the span


@pytest.fixture(scope="module")
def world() -> World:
    return generate_world(3000, seed=11)


@pytest.fixture(scope="module")
def big_world() -> World:
    """Large enough for rates and causal contrasts to be measured (about half a second)."""
    return generate_world(20_000, seed=5)


@pytest.fixture(scope="module")
def panel(big_world: World) -> pd.DataFrame:
    """One row per (active customer, monthly as_of): 90-day churn label and what was known."""
    customers = big_world.customers.set_index("customer_id")
    tickets, feedback = big_world.tickets, big_world.feedback
    response_h = (tickets["first_response_at"] - tickets["opened_at"]) / pd.Timedelta(hours=1)
    tickets = tickets.assign(slow=(response_h > 24) | tickets["first_response_at"].isna())
    churn_theme = feedback["themes"].map(lambda t: bool(set(t.split("|")) & set(CHURN_THEMES)))
    feedback = feedback.assign(negative_churn=(feedback["sentiment"] == "negative") & churn_theme)
    parts = []
    for as_of in pd.date_range("2024-03-01", "2025-09-01", freq="MS"):
        active = customers[(customers["signup_at"] <= as_of) & ~(customers["churned_at"] <= as_of)]

        def count(rows: pd.DataFrame, index: pd.Index = active.index) -> pd.Series:
            return rows.groupby("customer_id").size().reindex(index, fill_value=0)

        known = tickets[tickets["opened_at"] <= as_of]
        recent = known[known["opened_at"] > as_of - 60 * DAY]
        rated = recent[recent["resolved_at"] <= as_of]
        created = feedback["created_at"]
        said = feedback[(created <= as_of) & (created > as_of - 60 * DAY)]
        churned_at = active["churned_at"]
        parts.append(pd.DataFrame({
            "churned": (churned_at > as_of) & (churned_at <= as_of + 90 * DAY),
            "tenure_years": (as_of - active["signup_at"]) / (365.25 * DAY),
            "monthly_value": active["monthly_value"],
            "tickets": count(recent),
            # a response is known to be slow once 24 hours have passed
            "slow": count(recent[recent["slow"] & (recent["opened_at"] + DAY <= as_of)]),
            "open": count(known[known["resolved_at"].isna() | (known["resolved_at"] > as_of)]),
            "low_csat": count(rated[rated["csat"] <= 2]),
            "high_csat": count(rated[rated["csat"] >= 4]),
            "feedback": count(said),
            "negative_churn_feedback": count(said[said["negative_churn"]]),
        }))
    return pd.concat(parts)


def _churn_rate(panel: pd.DataFrame, mask: pd.Series) -> float:
    assert mask.sum() >= 200, "too few rows to compare churn rates"
    return float(panel.loc[mask, "churned"].mean())


# ---------------------------------------------------------------------------- contracts


def test_theme_ids_match_the_taxonomy_file() -> None:
    taxonomy = load_config(REPO / "configs" / "themes.yaml", Taxonomy)
    assert THEMES == tuple(taxonomy.ids)
    assert CHURN_THEMES == tuple(t.id for t in taxonomy.themes if t.churn_relevant)


@pytest.mark.parametrize("table", ["customers", "events", "tickets", "feedback"])
def test_every_table_meets_its_contract_exactly(world: World, table: str) -> None:
    frame = world.tables()[table]
    contract = CONTRACTS[table]
    assert list(frame.columns) == contract.column_names
    validated = validate_table(frame, contract, "synthetic")
    assert len(validated.rejected) == 0, validated.summary()
    # already in the contract's types: validation changes nothing (columns the contract reads as
    # category hold the same strings)
    for column in contract.categorical:
        assert isinstance(validated.valid[column].dtype, pd.CategoricalDtype)
    as_values = {column: object for column in contract.categorical}
    pd.testing.assert_frame_equal(validated.valid.astype(as_values), frame.astype(as_values))
    for column in contract.columns:
        if column.kind == "timestamp":
            assert frame[column.name].dtype == np.dtype("datetime64[ns]")


def test_ids_and_categories_look_like_real_exports(world: World) -> None:
    patterns = {
        ("customers", "customer_id"): r"C\d{7}",
        ("events", "customer_id"): r"C\d{7}",
        ("tickets", "ticket_id"): r"T\d{8}",
        ("feedback", "feedback_id"): r"F\d{8}",
    }
    for (table, column), pattern in patterns.items():
        values = world.tables()[table][column]
        assert values.map(lambda v, p=pattern: re.fullmatch(p, str(v)) is not None).all()
        assert values.map(type).eq(str).all()
    customers = world.customers
    assert set(customers["segment"]) == set(SEGMENTS)
    assert set(customers["plan"]) == set(PLANS)
    assert set(customers["region"]) == set(REGIONS)
    assert set(world.events["event_type"]) == set(EVENT_TYPES)
    assert set(world.tickets["channel"]) == set(CHANNELS)
    assert set(world.feedback["source"]) == set(FEEDBACK_SOURCES)
    assert set(world.events["customer_id"]) <= set(customers["customer_id"])


def test_same_seed_gives_the_same_world_and_another_seed_does_not() -> None:
    a, b = generate_world(300, seed=7), generate_world(300, seed=7)
    for table in ("customers", "events", "tickets", "feedback"):
        pd.testing.assert_frame_equal(a.tables()[table], b.tables()[table])
    c = generate_world(300, seed=8)
    for table in ("customers", "events", "tickets", "feedback"):
        assert not a.tables()[table].equals(c.tables()[table])


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="n_customers"):
        generate_world(0)
    with pytest.raises(ValueError, match="before start"):
        generate_world(10, start="2024-06-01", end="2024-01-01")


def test_progress_bar_over_the_weeks(capsys: pytest.CaptureFixture[str]) -> None:
    generate_world(50, seed=1, start="2024-01-01", end="2024-03-31", show_progress=True)
    assert "synthetic weeks" in capsys.readouterr().err


# ---------------------------------------------------------------------------- time rules


def _owner_bounds(world: World, frame: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    customers = world.customers.set_index("customer_id")
    signup = customers["signup_at"].reindex(frame["customer_id"]).to_numpy()
    churned = customers["churned_at"].reindex(frame["customer_id"]).to_numpy()
    return pd.Series(signup, index=frame.index), pd.Series(churned, index=frame.index)


@pytest.mark.parametrize(
    ("table", "column"),
    [("events", "occurred_at"), ("tickets", "opened_at"), ("feedback", "created_at")],
)
def test_rows_lie_between_signup_churn_and_the_end(world: World, table: str, column: str) -> None:
    frame = world.tables()[table]
    when = frame[column]
    signup, churned = _owner_bounds(world, frame)
    assert when.notna().all()
    assert (when >= signup).all()
    assert (when >= START).all() and (when < END_EXCLUSIVE).all()
    assert not (when >= churned).any()  # NaT compares False: only churners are tested


def test_customer_and_ticket_timestamps_are_consistent(world: World) -> None:
    customers, tickets = world.customers, world.tickets
    assert (customers["signup_at"] < END_EXCLUSIVE).all()
    assert (customers["signup_at"] < START).any()  # an existing base...
    assert (customers["signup_at"] >= START - pd.Timedelta(days=3 * 366)).all()  # ...of <= 3 years
    churned = customers["churned_at"].dropna()
    assert (churned > customers.loc[churned.index, "signup_at"]).all()
    assert (churned >= START).all() and (churned < END_EXCLUSIVE).all()
    answered, resolved = tickets["first_response_at"], tickets["resolved_at"]
    assert (answered.dropna() >= tickets.loc[answered.notna(), "opened_at"]).all()
    assert (resolved.dropna() >= answered[resolved.notna()]).all()
    assert answered[resolved.notna()].notna().all()
    assert (answered.dropna() < END_EXCLUSIVE).all() and (resolved.dropna() < END_EXCLUSIVE).all()
    assert tickets["csat"].isna()[resolved.isna()].all()  # CSAT only for resolved tickets


def test_a_custom_span_is_respected() -> None:
    w = generate_world(400, seed=3, start=date(2023, 3, 1), end="2023-08-31")
    first, stop = pd.Timestamp("2023-03-01"), pd.Timestamp("2023-09-01")
    for frame, column in [
        (w.events, "occurred_at"), (w.tickets, "opened_at"), (w.feedback, "created_at"),
        (w.tickets, "resolved_at"), (w.customers, "churned_at"),
    ]:
        when = frame[column].dropna()
        assert len(when) > 0
        assert (when >= first).all() and (when < stop).all()


def test_timestamps_are_spread_over_days_and_hours(big_world: World) -> None:
    when = big_world.events["occurred_at"]
    assert (when == when.dt.normalize()).mean() < 0.01  # not all at midnight
    hours = when.dt.hour.value_counts(normalize=True)
    assert len(hours) == 24 and hours.loc[10] > 3 * hours.loc[3]  # daytime busier than night
    weekday = when.dt.day_of_week.value_counts()
    assert weekday.loc[[5, 6]].mean() < 0.8 * weekday.loc[[0, 1, 2, 3]].mean()


# ---------------------------------------------------------------------------- volumes and rates


def test_volumes_per_customer_match_the_benchmark_world(big_world: World) -> None:
    n = len(big_world.customers)
    assert 15 <= len(big_world.events) / n <= 28
    assert 1.4 <= len(big_world.tickets) / n <= 2.6
    assert 0.7 <= len(big_world.feedback) / n <= 1.3


def test_purchases_carry_heavy_tailed_amounts(big_world: World) -> None:
    events = big_world.events
    purchase = events["event_type"] == "purchase"
    amounts = events.loc[purchase, "amount"]
    assert amounts.notna().all() and (amounts > 0).all()
    assert events.loc[~purchase, "amount"].isna().all()
    assert amounts.quantile(0.99) > 10 * amounts.median()
    value = big_world.customers["monthly_value"]
    assert value.quantile(0.99) > 10 * value.median()


def test_support_times_and_csat_look_plausible(big_world: World) -> None:
    tickets = big_world.tickets
    response_h = (tickets["first_response_at"] - tickets["opened_at"]) / pd.Timedelta(hours=1)
    assert 0.005 < tickets["first_response_at"].isna().mean() < 0.06  # a few never answered
    assert 0.03 < tickets["resolved_at"].isna().mean() < 0.2
    by_channel = response_h.groupby(tickets["channel"]).median()
    assert by_channel["email"] > 5 * by_channel["phone"]  # slower on some channels
    resolved = tickets["resolved_at"].notna()
    assert 0.3 < tickets.loc[resolved, "csat"].notna().mean() < 0.5
    assert set(tickets["csat"].dropna().unique()) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    fast = tickets.loc[response_h < 1, "csat"].mean()
    slow = tickets.loc[response_h > 24, "csat"].mean()
    assert fast - slow > 0.4
    assert tickets["reopened_count"].ge(1).mean() > 0.05
    assert 0.02 < tickets["escalated"].mean() < 0.2


def test_incidents_make_ticket_bursts(big_world: World) -> None:
    """Weekly tickets per region jump far beyond Poisson noise in some weeks.

    Expected tickets = the region's median weekly rate per active customer x its active
    customers that week. With incidents switched off the median over regions of the largest
    weekly z-score is 3.5-4.5 (seeds 5-8); with them 7-11.
    """
    customers, tickets = big_world.customers, big_world.tickets
    week_starts = pd.date_range(START, END, freq="7D")[:-1]  # full weeks only
    largest_z = []
    for region in REGIONS:
        members = customers[customers["region"] == region]
        signup = np.sort(members["signup_at"].to_numpy())
        churned = np.sort(members["churned_at"].dropna().to_numpy())
        starts = week_starts.to_numpy()
        active = np.searchsorted(signup, starts + np.timedelta64(7, "D")) - np.searchsorted(
            churned, starts, side="right"
        )
        opened = tickets.loc[tickets["customer_id"].isin(members["customer_id"]), "opened_at"]
        week = ((opened - START) // pd.Timedelta(days=7)).to_numpy()
        per_week = np.bincount(week, minlength=len(starts))[: len(starts)]
        expected = np.median(per_week / active) * active
        largest_z.append(((per_week - expected) / np.sqrt(expected)).max())
    assert np.median(largest_z) > 6


def test_churn_rates_are_in_a_realistic_range(big_world: World) -> None:
    customers = big_world.customers
    base = customers[customers["signup_at"] < START]
    within_a_year = (base["churned_at"] < START + pd.Timedelta(days=365)).mean()
    assert 0.15 <= within_a_year <= 0.30
    for as_of in (pd.Timestamp("2024-06-01"), pd.Timestamp("2025-04-01")):
        active = customers[(customers["signup_at"] <= as_of) & ~(customers["churned_at"] <= as_of)]
        churned_at = active["churned_at"]
        in_90_days = ((churned_at > as_of) & (churned_at <= as_of + 90 * DAY)).mean()
        assert 0.04 <= in_90_days <= 0.12


# ---------------------------------------------------------------------------- planted causes


def test_customers_with_slow_first_responses_churn_more(panel: pd.DataFrame) -> None:
    with_tickets = panel["tickets"] > 0
    slow = _churn_rate(panel, with_tickets & (panel["slow"] > 0))
    fast = _churn_rate(panel, with_tickets & (panel["slow"] == 0))
    assert slow > 1.5 * fast
    assert _churn_rate(panel, panel["open"] > 0) > 2 * _churn_rate(panel, panel["open"] == 0)


def test_long_tenure_and_high_value_customers_churn_less(panel: pd.DataFrame) -> None:
    quiet = panel["tickets"] == 0  # compare like with like: no recent support contact
    long_tenure = _churn_rate(panel, quiet & (panel["tenure_years"] >= 2))
    new = _churn_rate(panel, quiet & (panel["tenure_years"] < 0.5))
    assert long_tenure < 0.85 * new
    low, high = panel["monthly_value"].quantile([0.25, 0.75])
    assert _churn_rate(panel, quiet & (panel["monthly_value"] >= high)) < 0.7 * _churn_rate(
        panel, quiet & (panel["monthly_value"] <= low)
    )


def test_each_planted_driver_has_its_own_effect(panel: pd.DataFrame) -> None:
    """A joint logistic regression separates the correlated drivers.

    Marginal contrasts alone would still pass with one driver switched off, because slow
    responses, open tickets, low CSAT and angry feedback come together. With one planted
    coefficient set to zero its fitted one falls to 0.0-0.2 (about 0.7 for open tickets and 0.25
    for repeated contacts, which feed each other); the thresholds sit between.
    """
    from sklearn.linear_model import LogisticRegression

    drivers = pd.DataFrame({
        "slow_first_response": panel["slow"] > 0,
        "open_ticket": panel["open"] > 0,
        "repeated_contacts": panel["tickets"] >= 2,
        "any_ticket": panel["tickets"] > 0,
        "low_csat": panel["low_csat"] > 0,
        "negative_churn_feedback": panel["negative_churn_feedback"] > 0,
        "any_feedback": panel["feedback"] > 0,
        "log_value": np.log(panel["monthly_value"]),
        "log_tenure": np.log1p(panel["tenure_years"]),
    }).astype(float)
    model = LogisticRegression(C=1e4, max_iter=2000).fit(drivers, panel["churned"])
    coef = dict(zip(drivers.columns, model.coef_[0], strict=True))
    assert coef["slow_first_response"] > 0.4
    assert coef["open_ticket"] > 1.0
    assert coef["repeated_contacts"] > 0.6
    assert coef["low_csat"] > 0.35
    assert coef["negative_churn_feedback"] > 0.45
    assert coef["log_value"] < -0.2
    assert coef["log_tenure"] < -0.15


def test_engagement_falls_in_the_weeks_before_churn(big_world: World) -> None:
    customers = big_world.customers.set_index("customer_id")
    churned = customers["churned_at"].dropna()
    long_known = customers.loc[churned.index, "signup_at"] < START
    churned = churned[(churned > pd.Timestamp("2024-07-01")) & long_known]
    events = big_world.events[big_world.events["customer_id"].isin(churned.index)]
    days_before = (churned.reindex(events["customer_id"]).to_numpy() - events["occurred_at"]) / DAY
    last_4_weeks = ((days_before > 0) & (days_before <= 28)).sum()
    weeks_16_to_20 = ((days_before > 112) & (days_before <= 140)).sum()
    assert last_4_weeks < 0.75 * weeks_16_to_20


# ---------------------------------------------------------------------------- feedback texts


def test_feedback_labels_use_the_taxonomy(big_world: World) -> None:
    feedback = big_world.feedback
    assert feedback["sentiment"].isin(SENTIMENTS).all()
    assert feedback["themes"].map(lambda t: isinstance(t, str)).all()  # labelled: "" = no theme
    themes = split_themes(feedback["themes"])
    assert {t for ts in themes for t in ts} == set(THEMES)
    assert all(len(ts) == len(set(ts)) for ts in themes)
    n_themes = pd.Series([len(ts) for ts in themes])
    assert 0.2 < (n_themes == 0).mean() < 0.6
    assert (n_themes >= 2).mean() > 0.05
    assert set(feedback["sentiment"]) == set(SENTIMENTS)


def test_every_text_is_non_empty_and_varied(big_world: World) -> None:
    text = big_world.feedback["text"]
    assert text.map(lambda t: isinstance(t, str) and t.strip() != "").all()
    assert text.nunique() > 0.5 * len(text)


def test_scores_belong_to_their_sources(big_world: World) -> None:
    feedback = big_world.feedback
    by_source = feedback[["rating", "nps", "ces"]].notna().groupby(feedback["source"]).mean()
    assert by_source.loc["survey", "nps"] == 1.0 and by_source.loc["survey", "ces"] == 1.0
    assert by_source.loc["review", "rating"] == 1.0 and by_source.loc["review", "nps"] == 0.0
    assert by_source.loc["ticket_comment", "nps"] == 0.0
    assert by_source.loc["ticket_comment", "ces"] > 0.3
    nps = feedback.groupby("sentiment")["nps"].mean()
    assert nps["negative"] < nps["neutral"] < nps["positive"]
    ces = feedback.groupby("sentiment")["ces"].mean()  # 1-7, high = hard
    assert ces["negative"] > ces["positive"]


def test_texts_are_learnable_but_not_trivially(big_world: World) -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MultiLabelBinarizer

    feedback = big_world.feedback
    cut = int(0.8 * len(feedback))
    train, test = feedback.iloc[:cut], feedback.iloc[cut:]

    def tfidf() -> TfidfVectorizer:
        return TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)

    sentiment = make_pipeline(tfidf(), LogisticRegression(C=4.0, max_iter=1000))
    sentiment.fit(train["text"], train["sentiment"])
    sentiment_f1 = f1_score(test["sentiment"], sentiment.predict(test["text"]), average="macro")
    binarizer = MultiLabelBinarizer(classes=list(THEMES))
    y_train = binarizer.fit_transform(split_themes(train["themes"]))
    y_test = binarizer.transform(split_themes(test["themes"]))
    themes = make_pipeline(tfidf(), OneVsRestClassifier(LogisticRegression(C=4.0, max_iter=1000)))
    themes.fit(train["text"], y_train)
    themes_f1 = f1_score(y_test, themes.predict(test["text"]), average="macro", zero_division=0)
    assert 0.8 <= sentiment_f1 <= 0.97
    assert 0.8 <= themes_f1 <= 0.97
