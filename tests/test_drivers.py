"""Churn drivers: named indicators, raw rates and lift, the adjusted view, the planted structure."""

from __future__ import annotations

import dataclasses
import itertools
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from retain.config import (
    DriversConfig,
    FeatureConfig,
    LabelConfig,
    Taxonomy,
    TextModelConfig,
    load_config,
)
from retain.contracts import World
from retain.insight.drivers import (
    REPORT_COLUMNS,
    DriverTable,
    adjusted_effects,
    channel_ticket_counts,
    driver_dates,
    driver_effects,
    driver_indicators,
    drivers_report,
    raw_effects,
    theme_mention_counts,
)

REPO = Path(__file__).resolve().parents[1]
AS_OF = pd.Timestamp("2024-06-01")
DAY = pd.Timedelta(days=1)


def _driver_table(rows: pd.DataFrame, drivers: list[str], reference: tuple[str, ...] = ()) -> DriverTable:
    catalogue = pd.DataFrame({
        "driver": drivers,
        "label": [d.replace("_", " ") for d in drivers],
        "group": "test",
        "reference": [d in reference for d in drivers],
    })
    return DriverTable(rows=rows, drivers=catalogue, value_source="monthly_value")


# ---------------------------------------------------------------------------- the indicators


def test_feature_columns_become_named_drivers_with_their_thresholds() -> None:
    table = pd.DataFrame({
        "customer_id": ["a", "b", "c", "d"],
        "tickets_90d": [0.0, 1.0, 2.0, 3.0],
        # b answered after exactly 24 h (not slow); c after 25 h; d still waiting after 30 h
        "first_response_hours_max_90d": [np.nan, 24.0, 25.0, 2.0],
        "awaiting_first_response_hours_max": [np.nan, np.nan, np.nan, 30.0],
        "open_tickets": [0.0, 0.0, 0.0, 1.0],
        "csat_min_90d": [np.nan, 2.0, 3.0, 1.0],
        "theme_billing_negative_90d": [0.0, 0.49, 0.5, 1.7],
        "theme_billing_not_negative": [0.6, 0.0, 0.0, 0.0],
        "channel_email_tickets": [0.0, 1.0, 2.0, 0.0],
        "segment": pd.Categorical(["smb", "consumer", "consumer", "enterprise"]),
    })
    on, drivers = driver_indicators(table, 90, ["billing"], {"billing": "Billing errors"})
    assert on["any_ticket"].tolist() == [False, True, True, True]
    assert on["repeated_contacts"].tolist() == [False, False, True, True]
    assert on["many_contacts"].tolist() == [False, False, False, True]
    assert on["slow_first_response"].tolist() == [False, False, True, True]
    assert on["open_ticket"].tolist() == [False, False, False, True]
    assert on["low_csat"].tolist() == [False, True, False, True]
    assert on["negative_billing"].tolist() == [False, False, True, True]
    assert on["theme_billing"].tolist() == [True, False, False, False]
    assert on["channel_email"].tolist() == [False, True, True, False]
    assert on["segment_consumer"].tolist() == [False, True, True, False]
    labels = drivers.set_index("driver")["label"]
    assert labels["negative_billing"] == "negative feedback on Billing errors in the last 90 days"
    assert labels["theme_billing"] == "neutral or positive feedback on Billing errors in the last 90 days"
    assert labels["slow_first_response"].startswith("slow first response (a ticket first answered after 24 h)")
    # the most common level of an attribute is the reference of the adjusted view
    reference = drivers.set_index("driver")["reference"]
    assert reference["segment_consumer"] and not reference["segment_smb"]
    # absent tables give no driver (no reopened, rating or NPS columns here)
    assert "reopened_ticket" not in on.columns and "nps_detractor" not in on.columns


def test_channel_and_theme_counts_read_the_window_only() -> None:
    tickets = pd.DataFrame({
        "customer_id": ["a", "a", "a", "b", "b"],
        "opened_at": [AS_OF, AS_OF - 89 * DAY, AS_OF - 90 * DAY, AS_OF + DAY, AS_OF - DAY],
        "channel": ["email", "email", "email", "phone", "phone"],
    })
    counts = channel_ticket_counts(tickets, ["a", "b", "c"], AS_OF, 90, ["phone", "email"])
    # a: at as_of and 89 days before count, 90 days before does not; b: the ticket after as_of does not
    assert counts.to_dict("list") == {"channel_phone_tickets": [0.0, 1.0, 0.0], "channel_email_tickets": [2.0, 0.0, 0.0]}

    feedback = pd.DataFrame({
        "feedback_id": ["f1", "f2", "f3", "f4"],
        "customer_id": ["a", "a", "b", "b"],
        "created_at": [AS_OF - DAY, AS_OF - 10 * DAY, AS_OF + DAY, AS_OF - 100 * DAY],
    })
    scores = pd.DataFrame({
        "feedback_id": ["f1", "f2", "f3", "f4"],
        "sentiment_negative": [0.2, 0.5, 0.0, 0.0],
        "theme_billing": [0.9, 0.4, 1.0, 1.0],
    })
    mentions = theme_mention_counts(feedback, scores, ["a", "b"], AS_OF, 90, ["billing"])
    # a: 0.9 * 0.8 + 0.4 * 0.5; b: one text after as_of, one before the window
    np.testing.assert_allclose(mentions["theme_billing_not_negative"], [0.92, 0.0])


def test_dates_are_monthly_and_every_label_window_is_observed() -> None:
    customers = pd.DataFrame({
        "customer_id": ["a"], "signup_at": [pd.Timestamp("2023-01-01")], "churned_at": [pd.NaT],
    })
    events = pd.DataFrame({
        "customer_id": ["a", "a"],
        "occurred_at": [pd.Timestamp("2024-01-01 10:00"), pd.Timestamp("2024-12-31 09:00")],
        "event_type": ["login", "login"],
    })
    world = World(customers=customers, events=events)
    dates = driver_dates(world, horizon_days=90, every_days=30)
    assert dates[-1] == pd.Timestamp("2024-12-31") - 90 * DAY
    assert all(b - a == 30 * DAY for a, b in itertools.pairwise(dates))
    assert dates[0] >= pd.Timestamp("2024-01-01") + 90 * DAY > dates[0] - 30 * DAY
    assert driver_dates(world, 90, 30, max_dates=2) == dates[-2:]


# ---------------------------------------------------------------------------- raw effects


def _hand_table() -> pd.DataFrame:
    """Ten customer-dates of six customers; hand-checked below."""
    return pd.DataFrame({
        "customer_id": ["a", "a", "b", "c", "c", "d", "e", "e", "f", "f"],
        "as_of": pd.to_datetime(["2024-01-01", "2024-02-01"] * 5),
        "churned": [0, 1, 1, 0, 0, 0, 1, 0, 0, 0],
        "value": [10.0, 10.0, 20.0, 5.0, 5.0, 40.0, 8.0, 8.0, 2.0, 2.0],
        "log_value": 0.0,
        "log_tenure": 0.0,
        "slow": [True, True, True, False, True, False, False, False, False, False],
    })


def test_rates_lift_wilson_and_churned_value_by_hand() -> None:
    table = _driver_table(_hand_table(), ["slow"])
    raw = raw_effects(table, DriversConfig(bootstrap=50)).set_index("driver").loc["slow"]
    # with: rows a, a, b, c(2nd): churned 2 of 4; without: 6 rows, churned 1 (e)
    assert raw["rows_with"] == 4 and raw["customers_with"] == 3
    assert raw["rate_with"] == 0.5 and raw["rate_without"] == pytest.approx(1 / 6)
    assert raw["lift"] == pytest.approx(3.0) and raw["difference"] == pytest.approx(1 / 3)
    # Wilson 95% for 2 of 4, written out: centre (p + z^2/2n) / (1 + z^2/n), half-width below
    z = 1.959963984540054
    n, p = 4, 0.5
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z / (1 + z**2 / n) * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    assert raw["rate_with_low"] == pytest.approx(centre - half)  # 0.1500
    assert raw["rate_with_high"] == pytest.approx(centre + half)  # 0.8500
    assert raw["rate_with_low"] == pytest.approx(0.15003, abs=1e-4)
    # churned value with the driver: a (10) + b (20) over 2 dates; excess = 1/3 * (10+10+20+5) / 2
    assert raw["churned_value_with"] == pytest.approx(15.0)
    assert raw["excess_churned_value"] == pytest.approx(45 / 6)
    assert raw["lift_low"] <= raw["lift"] <= raw["lift_high"]


def test_the_bootstrap_draws_customers_not_rows() -> None:
    """Seeing every customer-date three times more (same customers) changes no interval of the
    bootstrap, which resamples customers; Wilson's, which counts rows, narrows."""
    rng = np.random.default_rng(3)
    n = 400
    rows = pd.DataFrame({
        "customer_id": [f"c{i}" for i in range(n)],
        "as_of": pd.Timestamp("2024-01-01"),
        "value": 1.0, "log_value": 0.0, "log_tenure": 0.0,
        "driver": rng.random(n) < 0.3,
    })
    rows["churned"] = (rng.random(n) < np.where(rows["driver"], 0.3, 0.1)).astype(int)
    once = raw_effects(_driver_table(rows, ["driver"]), DriversConfig(bootstrap=100)).iloc[0]
    thrice = raw_effects(
        _driver_table(pd.concat([rows] * 3, ignore_index=True), ["driver"]), DriversConfig(bootstrap=100)
    ).iloc[0]
    for column in ("lift", "lift_low", "lift_high", "difference_low", "difference_high"):
        assert thrice[column] == pytest.approx(once[column])
    assert thrice["rate_with_high"] - thrice["rate_with_low"] < 0.7 * (once["rate_with_high"] - once["rate_with_low"])


def _travelling_drivers(seed: int, n_customers: int = 3000, dates: int = 3) -> pd.DataFrame:
    """``cause`` raises churn; ``companion`` comes with it 80% of the time and does nothing."""
    rng = np.random.default_rng(seed)
    n = n_customers * dates
    cause = rng.random(n) < 0.25
    companion = np.where(cause, rng.random(n) < 0.8, rng.random(n) < 0.05)
    value = np.exp(rng.normal(3, 0.5, n))
    churned = rng.random(n) < 1 / (1 + np.exp(-(-2.8 + 1.2 * cause)))
    return pd.DataFrame({
        "customer_id": np.repeat([f"c{i}" for i in range(n_customers)], dates),
        "as_of": np.tile(pd.date_range("2024-01-01", periods=dates, freq="MS"), n_customers),
        "churned": churned.astype(int),
        "value": value,
        "log_value": np.log1p(value),
        "log_tenure": 0.0,
        "cause": cause,
        "companion": companion,
    })


def test_the_adjusted_view_does_not_credit_a_driver_that_only_travels_with_another() -> None:
    table = _driver_table(_travelling_drivers(seed=1), ["cause", "companion"])
    effects = driver_effects(table, DriversConfig(bootstrap=100)).set_index("driver")
    # raw: both go with churn, the companion almost as strongly
    assert effects.loc["cause", "lift_low"] > 1.5 and effects.loc["companion", "lift_low"] > 1.5
    assert effects.loc["companion", "excess_churned_value"] > 0.5 * effects.loc["cause", "excess_churned_value"]
    # adjusted: only the cause
    assert effects.loc["cause", "adjusted_excludes_zero"]
    assert effects.loc["cause", "coefficient_low"] > 0.8
    assert not effects.loc["companion", "adjusted_excludes_zero"]
    assert abs(effects.loc["companion", "adjusted_churned_value"]) < 0.2 * effects.loc["cause", "adjusted_churned_value"]
    assert effects.index[0] == "cause" and effects["rank"].tolist() == [1, 2]


def test_adjusted_churned_value_is_the_fitted_churn_the_driver_adds() -> None:
    rows = _travelling_drivers(seed=2)
    adjusted = adjusted_effects(_driver_table(rows, ["cause", "companion"])).set_index("driver")
    coefficient = adjusted.loc["cause", "coefficient"]
    # an odds ratio about e^1.2 applied at the base rate, times the value of those with it
    assert coefficient == pytest.approx(1.2, abs=0.25)
    assert adjusted.loc["cause", "odds_ratio"] == pytest.approx(np.exp(coefficient))
    base = rows.loc[~rows["cause"] & ~rows["companion"], "churned"].mean()
    lifted = 1 / (1 + (1 - base) / base * np.exp(-coefficient))
    value_with = rows.loc[rows["cause"], "value"].sum() / 3
    assert adjusted.loc["cause", "adjusted_churned_value"] == pytest.approx((lifted - base) * value_with, rel=0.15)
    assert (
        adjusted.loc["cause", "adjusted_churned_value_low"]
        < adjusted.loc["cause", "adjusted_churned_value"]
        < adjusted.loc["cause", "adjusted_churned_value_high"]
    )


def test_the_adjusted_intervals_count_customers_not_rows() -> None:
    """The sandwich covariance sums scores per customer: the same customers seen three times as
    often give the same coefficient intervals, not intervals sqrt(3) narrower."""
    rows = _travelling_drivers(seed=5, dates=1)
    unpenalised = DriversConfig(l2_penalty=1e-8)  # the penalty would weigh less on 3x the rows
    once = adjusted_effects(_driver_table(rows, ["cause", "companion"]), unpenalised).set_index("driver")
    thrice = adjusted_effects(
        _driver_table(pd.concat([rows] * 3, ignore_index=True), ["cause", "companion"]), unpenalised
    ).set_index("driver")
    width_once = once["coefficient_high"] - once["coefficient_low"]
    width_thrice = thrice["coefficient_high"] - thrice["coefficient_low"]
    np.testing.assert_allclose(thrice["coefficient"], once["coefficient"], atol=1e-3)
    np.testing.assert_allclose(width_thrice, width_once, rtol=0.01)


def test_reference_levels_and_rare_drivers() -> None:
    rows = _travelling_drivers(seed=4)
    rows["segment_smb"] = np.arange(len(rows)) % 3 == 0
    rows["segment_consumer"] = ~rows["segment_smb"]
    rows["rare"] = np.arange(len(rows)) < 5
    table = _driver_table(rows, ["cause", "companion", "segment_smb", "segment_consumer", "rare"], ("segment_consumer",))
    effects = driver_effects(table, DriversConfig(bootstrap=50, min_rows=30))
    assert list(effects.columns) == list(REPORT_COLUMNS)
    assert "rare" not in set(effects["driver"]) and effects.attrs["left_out"] == ["rare"]
    reference = effects.set_index("driver").loc["segment_consumer"]
    assert reference["reference"] and np.isnan(reference["coefficient"]) and not reference["adjusted_excludes_zero"]
    assert effects["driver"].iloc[-1] == "segment_consumer"  # no adjusted value: ranked last


def test_a_small_world_without_text_models() -> None:
    from retain.synth import generate_world

    world = generate_world(1500, seed=3)
    report = drivers_report(world, FeatureConfig(), LabelConfig(), None, DriversConfig(bootstrap=50))
    assert list(report.columns) == list(REPORT_COLUMNS)
    assert report["rank"].tolist() == list(range(1, len(report) + 1))
    assert {"open_ticket", "slow_first_response", "low_csat", "channel_email", "nps_detractor"} <= set(report["driver"])
    assert not any(d.startswith(("theme_", "negative_")) for d in report["driver"])  # no text models
    ranked = report.loc[~report["reference"], "adjusted_churned_value"]
    assert ranked.is_monotonic_decreasing
    assert report.attrs["value_source"] == "monthly_value" and len(report.attrs["dates"]) >= 12
    # only customers and events: nothing to derive a driver from, an empty table that says so
    bare = World(customers=world.customers[["customer_id", "signup_at", "churned_at"]], events=world.events)
    assert drivers_report(bare, FeatureConfig(), LabelConfig(), None).empty


def test_text_models_or_their_scores_give_the_same_table() -> None:
    from types import SimpleNamespace

    from retain.synth import generate_world
    from retain.text.inputs import theme_indicators
    from retain.text.scoring import score_feedback
    from retain.text.tfidf import make_sentiment_model, make_theme_model

    world = generate_world(1500, seed=4)
    taxonomy = load_config(REPO / "configs" / "themes.yaml", Taxonomy)
    texts = world.feedback["text"].tolist()
    models = SimpleNamespace(  # the shape of scoring.ScoringModels: no theme_ids of its own
        sentiment=make_sentiment_model().fit(texts, world.feedback["sentiment"].to_numpy()),
        themes=make_theme_model().fit(texts, theme_indicators(world.feedback["themes"], taxonomy.ids)),
    )
    config = DriversConfig(bootstrap=30)
    from_models = drivers_report(world, FeatureConfig(), None, models, config, taxonomy)
    scores = score_feedback(world.feedback, models.sentiment, models.themes, taxonomy.ids)
    from_scores = drivers_report(world, FeatureConfig(), None, None, config, taxonomy, feedback_scores=scores)
    pd.testing.assert_frame_equal(from_models, from_scores)
    assert "negative_billing" in set(from_models["driver"])
    label = from_models.set_index("driver").loc["negative_billing", "label"]
    assert label == "negative feedback on Billing errors in the last 90 days"


def test_unknown_config_keys_are_refused() -> None:
    with pytest.raises(ValidationError, match="bootstraps"):
        DriversConfig(bootstraps=10)  # type: ignore[call-arg]


# ---------------------------------------------------------------------------- on the synthetic world

PLANTED = (
    "slow_first_response", "open_ticket", "repeated_contacts", "low_csat",
    "negative_billing", "negative_slow_support", "negative_unresolved_issue", "negative_product_bugs",
)
UNPLANTED_THEMES = ("pricing", "usability", "missing_features", "staff_attitude")
TEXT_CUT = pd.Timestamp("2024-10-01")


def _synthetic_drivers(n_customers: int, seed: int) -> pd.DataFrame:
    """The driver report of a synthetic world, themes and sentiment from TF-IDF models fitted on
    the feedback written before ``TEXT_CUT`` (labels read only there)."""
    from retain.synth import generate_world
    from retain.text.inputs import theme_indicators
    from retain.text.tfidf import make_sentiment_model, make_theme_model
    from retain.training import TextModels

    world = generate_world(n_customers, seed=seed)
    taxonomy = load_config(REPO / "configs" / "themes.yaml", Taxonomy)
    earlier = world.feedback[world.feedback["created_at"] < TEXT_CUT]
    config = TextModelConfig()
    text = TextModels(
        sentiment=make_sentiment_model(config).fit(earlier["text"].tolist(), earlier["sentiment"].to_numpy()),
        themes=make_theme_model(config).fit(earlier["text"].tolist(), theme_indicators(earlier["themes"], taxonomy.ids)),
        theme_ids=taxonomy.ids,
        metrics={},
        baseline_metrics={},
    )
    return drivers_report(world, FeatureConfig(), LabelConfig(), text, DriversConfig(), taxonomy)


#: Smallest adjusted coefficient of the planted service drivers. Measured on the 20,000-customer
#: world (seeds 5, 1, 2): slow first response 0.80-0.83, open ticket 1.21-1.32, repeated contacts
#: 0.55-0.57; with that planted term set to zero (seed 5): 0.22, 0.47 and 0.11. Their intervals
#: still exclude zero with the slow-response or open-ticket term off (those indicators also carry
#: older history and each other), so the sizes are checked too; the thresholds sit between.
PLANTED_AT_LEAST = {"slow_first_response": 0.45, "open_ticket": 0.9, "repeated_contacts": 0.3}


def _recovers_planted_structure(report: pd.DataFrame) -> list[str]:
    """What is wrong with the report against the planted structure (empty: recovered)."""
    table = report.set_index("driver")
    problems = [
        f"{d}: adjusted coefficient {table.loc[d, 'coefficient']:.2f} below {floor}"
        for d, floor in PLANTED_AT_LEAST.items()
        if table.loc[d, "coefficient"] < floor
    ]
    unplanted = [f"{kind}_{theme}" for theme in UNPLANTED_THEMES for kind in ("theme", "negative")]
    worst_planted = table.loc[list(PLANTED), "rank"].max()
    best_unplanted = table.loc[unplanted, "rank"].min()
    problems += [f"{d}: adjusted interval includes zero" for d in PLANTED if not table.loc[d, "adjusted_excludes_zero"]]
    if worst_planted >= best_unplanted:
        problems.append(f"a planted driver ranks {worst_planted}, an unplanted theme {best_unplanted}")
    return problems


@pytest.fixture(scope="module")
def planted_report() -> pd.DataFrame:
    return _synthetic_drivers(20_000, seed=5)


@pytest.mark.slow
def test_the_planted_drivers_are_recovered(planted_report: pd.DataFrame) -> None:
    assert _recovers_planted_structure(planted_report) == []
    table = planted_report.set_index("driver")
    # raw lift is high for unplanted themes too: they come with the planted experiences
    assert table.loc["negative_usability", "lift_low"] > 1.5
    assert planted_report.attrs["value_source"] == "monthly_value"


@pytest.mark.slow
def test_the_check_fails_when_a_planted_effect_is_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the low-CSAT term in the hazard, the same analysis no longer finds low CSAT."""
    from retain import synth

    monkeypatch.setattr(synth, "HAZARD", dataclasses.replace(synth.HAZARD, low_csat=0.0))
    problems = _recovers_planted_structure(_synthetic_drivers(20_000, seed=5))
    assert any(p.startswith("low_csat") for p in problems)


def test_low_rating_reads_the_stored_zero_to_one_scale() -> None:
    """Ratings are stored 0-1 (data.rating_scale mapped: 1 of 5 is 0, 2 of 5 is 0.25, 5 of 5 is 1),
    so a low rating (1-2 of 5) is a window mean of 0.25 or less, not of 2 or less (every rating)."""
    table = pd.DataFrame({"customer_id": list("abcde"), "rating_mean_90d": [0.0, 0.25, 0.5, 1.0, np.nan]})
    on, drivers = driver_indicators(table, 90)
    assert on["low_rating"].tolist() == [True, True, False, False, False]
    assert drivers.set_index("driver").loc["low_rating", "label"] == "low rating (1-2 of 5) in the last 90 days"
