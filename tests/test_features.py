"""Point-in-time features: hand-checked values on a tiny world, and the no-future-leakage law."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retain.churn.features import (
    FEATURE_SIGNALS,
    behaviour_features,
    build_features,
    build_training_table,
    churn_labels,
    churn_population,
    feature_columns,
    feature_signal,
    feedback_features,
    support_features,
)
from retain.config import Playbook, Taxonomy, load_config
from retain.contracts import World

AS_OF = pd.Timestamp("2024-06-01")
THEMES = ["billing", "slow_support"]
T = pd.Timestamp
NaT = pd.NaT


def _world() -> tuple[World, pd.DataFrame]:
    """Six customers; c1, c2, c3, c5 are in the population at AS_OF.

    c3 signed up exactly at AS_OF (in), c6 the day after (out), c4 churned exactly at AS_OF (out).
    """
    customers = pd.DataFrame(
        {
            "customer_id": ["c1", "c2", "c3", "c4", "c5", "c6"],
            "signup_at": [
                T("2024-01-01"),
                T("2024-03-01"),
                T("2024-06-01"),
                T("2023-06-01"),
                T("2024-02-01"),
                T("2024-06-02"),
            ],
            "segment": ["enterprise", "smb", "smb", "consumer", "smb", "smb"],
            "plan": ["pro", "basic", "basic", "basic", "pro", "pro"],
            "region": ["eu", "us", "us", "eu", "apac", "us"],
            "monthly_value": [100.0, 20.0, 10.0, 5.0, 50.0, 1.0],
            # c1 churns exactly at AS_OF + 90 days (label 1), c5 after the horizon (0).
            "churned_at": [T("2024-08-30"), NaT, NaT, T("2024-06-01"), T("2024-09-15"), NaT],
        }
    )
    events = pd.DataFrame(
        [
            ("c1", T("2024-06-01"), "login", np.nan),  # exactly at as_of: known
            ("c1", T("2024-05-31"), "login", np.nan),
            ("c1", T("2024-05-20"), "login", np.nan),
            ("c1", T("2024-04-15"), "login", np.nan),
            ("c1", T("2024-05-25"), "usage", np.nan),
            ("c1", T("2024-05-02"), "usage", np.nan),  # 30 days before: in 90d, not in 30d
            ("c1", T("2024-04-01"), "usage", np.nan),
            ("c1", T("2024-03-20"), "usage", np.nan),
            ("c1", T("2024-05-10"), "purchase", 50.0),
            ("c1", T("2024-01-15"), "purchase", 30.0),
            ("c1", T("2024-06-05"), "purchase", 999.0),  # future
            ("c2", T("2024-05-17"), "usage", np.nan),
            ("c2", T("2024-05-11"), "usage", np.nan),
            ("c5", T("2024-04-22"), "login", np.nan),
            ("c4", T("2024-05-01"), "login", np.nan),  # not in the population
            ("zz", T("2024-05-01"), "login", np.nan),  # unknown customer
        ],
        columns=["customer_id", "occurred_at", "event_type", "amount"],
    )
    tickets = pd.DataFrame(
        [
            # id, customer, opened, first response, resolved, reopened, csat, escalated
            ("t1", "c1", T("2024-05-20"), T("2024-05-20 04:00"), T("2024-05-21"), 1, 2.0, True),
            # resolved after as_of: open at as_of; its reopens, csat, escalation are not known yet
            ("t2", "c1", T("2024-05-30"), T("2024-05-30 10:00"), T("2024-06-03"), 2, 1.0, True),
            # answered after as_of: awaiting first response, waiting 12 h
            ("t3", "c1", T("2024-05-31 12:00"), T("2024-06-01 06:00"), NaT, 0, np.nan, False),
            ("t4", "c1", T("2024-03-01"), T("2024-03-01 02:00"), T("2024-03-02"), 0, 5.0, False),
            ("t5", "c1", T("2024-06-02"), T("2024-06-02 01:00"), T("2024-06-03"), 3, 1.0, True),
            ("t6", "c1", T("2024-04-01"), T("2024-04-01 08:00"), T("2024-04-03"), 0, 4.0, False),
            ("t7", "c2", T("2024-05-01"), NaT, T("2024-05-05"), 0, np.nan, False),
        ],
        columns=[
            "ticket_id",
            "customer_id",
            "opened_at",
            "first_response_at",
            "resolved_at",
            "reopened_count",
            "csat",
            "escalated",
        ],
    )
    tickets["channel"] = "email"
    feedback = pd.DataFrame(
        [
            ("f1", "c1", T("2024-05-25"), "review", 2.0, np.nan, np.nan),
            ("f2", "c1", T("2024-04-10"), "survey", np.nan, 3.0, 6.0),
            ("f3", "c1", T("2024-05-28"), "survey", np.nan, 9.0, 2.0),
            ("f4", "c1", T("2024-06-10"), "survey", np.nan, 0.0, 7.0),  # future
            ("f5", "c2", T("2024-05-30"), "survey", np.nan, 4.0, np.nan),
            ("f6", "c2", T("2024-05-30"), "survey", np.nan, 6.0, np.nan),  # same time: nps averaged
        ],
        columns=["feedback_id", "customer_id", "created_at", "source", "rating", "nps", "ces"],
    )
    feedback["text"] = "some text"
    scores = pd.DataFrame(
        {  # f6 has no scores on purpose
            "feedback_id": ["f1", "f2", "f3", "f4", "f5"],
            "sentiment_negative": [0.8, 0.4, 0.1, 1.0, 0.5],
            "sentiment_neutral": [0.1, 0.3, 0.2, 0.0, 0.25],
            "sentiment_positive": [0.1, 0.3, 0.7, 0.0, 0.25],
            "theme_billing": [0.5, 0.0, 0.2, 1.0, 0.0],
            "theme_slow_support": [0.1, 1.0, 0.0, 1.0, 0.0],
        }
    )
    return World(customers=customers, events=events, tickets=tickets, feedback=feedback), scores


@pytest.fixture
def world() -> World:
    return _world()[0]


@pytest.fixture
def scores() -> pd.DataFrame:
    return _world()[1]


# ---------------------------------------------------------------------------------------------
# Population and labels


def test_population_excludes_not_yet_signed_up_and_already_churned(world: World) -> None:
    population = churn_population(world.customers, AS_OF)
    assert population["customer_id"].tolist() == ["c1", "c2", "c3", "c5"]


def test_labels_count_churn_in_the_half_open_horizon(world: World) -> None:
    labels = churn_labels(world.customers, AS_OF, horizon_days=90)
    assert labels.to_dict() == {"c1": 1, "c2": 0, "c3": 0, "c5": 0}
    assert labels.name == "churned" and labels.dtype == "int64"
    # one day shorter: c1 (at exactly as_of + 90 days) drops out
    assert churn_labels(world.customers, AS_OF, horizon_days=89)["c1"] == 0
    assert churn_labels(world.customers, AS_OF, horizon_days=120).to_dict() == {
        "c1": 1,
        "c2": 0,
        "c3": 0,
        "c5": 1,
    }


# ---------------------------------------------------------------------------------------------
# Hand-checked values


def test_behaviour_features_by_hand(world: World) -> None:
    f = behaviour_features(world.events, ["c1", "c2", "c3", "c5"], AS_OF)
    assert f.index.name == "customer_id"
    c1 = f.loc["c1"]
    assert c1["days_since_last_event"] == 0
    assert c1["days_since_last_login"] == 0
    assert c1["days_since_last_purchase"] == 22
    assert (c1["events_30d"], c1["events_90d"]) == (5, 9)
    assert (c1["logins_30d"], c1["logins_90d"]) == (3, 4)
    assert (c1["usage_30d"], c1["usage_90d"]) == (1, 4)
    assert (c1["purchases_30d"], c1["purchases_90d"]) == (1, 1)
    assert (c1["purchase_amount_30d"], c1["purchase_amount_90d"]) == (50, 50)
    # usage: 1 in 30 days vs 3 in the 60 before -> (1/30) / (3/60)
    assert c1["usage_trend"] == pytest.approx(2 / 3)
    # logins: 3 in 30 days vs 1 in the 60 before -> (3/30) / (1/60)
    assert c1["login_trend"] == pytest.approx(6.0)

    c2 = f.loc["c2"]
    assert c2["days_since_last_event"] == 15
    assert np.isnan(c2["days_since_last_login"]) and np.isnan(c2["days_since_last_purchase"])
    assert np.isnan(c2["usage_trend"])  # history starts 21 days ago: no previous period

    c3 = f.loc["c3"]
    assert c3["events_90d"] == 0 and np.isnan(c3["days_since_last_event"])
    assert np.isnan(c3["usage_trend"]) and np.isnan(c3["login_trend"])

    c5 = f.loc["c5"]
    # first event 40 days ago: 10 days of earlier history, less than the 30-day window
    assert np.isnan(c5["login_trend"]) and np.isnan(c5["usage_trend"])
    assert (f.dtypes == "float64").all()


def test_support_features_by_hand(world: World) -> None:
    f = support_features(world.tickets, ["c1", "c2", "c3"], AS_OF)
    c1 = f.loc["c1"]
    assert (c1["tickets_30d"], c1["tickets_90d"]) == (
        3,
        4,
    )  # t1 t2 t3 (+ t6); t4 too old; t5 future
    # answered by as_of: t1 4h, t2 10h (t3's answer comes after as_of), + t6 8h in 90d
    assert c1["first_response_hours_mean_30d"] == pytest.approx(7.0)
    assert c1["first_response_hours_max_30d"] == 10
    assert c1["first_response_hours_mean_90d"] == pytest.approx(22 / 3)
    assert c1["first_response_hours_max_90d"] == 10
    # resolved by as_of: t1 24h (+ t6 48h)
    assert c1["resolution_hours_mean_30d"] == 24
    assert c1["resolution_hours_mean_90d"] == 36
    # t2's reopens, csat 1 and escalation only come with its resolution after as_of
    assert (c1["reopened_30d"], c1["reopened_90d"]) == (1, 1)
    assert (c1["escalated_30d"], c1["escalated_90d"]) == (1, 1)
    assert (c1["csat_mean_30d"], c1["csat_min_30d"]) == (2, 2)
    assert (c1["csat_mean_90d"], c1["csat_min_90d"]) == (3, 2)
    assert c1["open_tickets"] == 2  # t2, t3
    assert c1["oldest_open_ticket_hours"] == 48
    assert c1["awaiting_first_response"] == 1  # t3
    assert c1["awaiting_first_response_hours_max"] == 12

    c2 = f.loc["c2"]
    assert (c2["tickets_30d"], c2["tickets_90d"]) == (0, 1)
    assert np.isnan(c2["first_response_hours_mean_90d"])  # never answered
    assert c2["resolution_hours_mean_90d"] == 96
    assert c2["open_tickets"] == 0 and np.isnan(c2["oldest_open_ticket_hours"])
    assert np.isnan(c2["csat_mean_90d"])

    c3 = f.loc["c3"]
    assert c3[["tickets_90d", "open_tickets", "reopened_90d", "escalated_90d"]].eq(0).all()
    assert c3[["first_response_hours_mean_90d", "csat_min_90d"]].isna().all()


def test_feedback_features_by_hand(world: World, scores: pd.DataFrame) -> None:
    f = feedback_features(world.feedback, scores, ["c1", "c2", "c3"], AS_OF, THEMES)
    c1 = f.loc["c1"]
    assert (c1["feedback_30d"], c1["feedback_90d"]) == (2, 3)
    assert (c1["rating_mean_30d"], c1["rating_mean_90d"]) == (2, 2)
    assert (c1["ces_mean_30d"], c1["ces_mean_90d"]) == (2, 4)
    assert c1["nps_last"] == 9  # f3; f4 (nps 0) is after as_of
    assert c1["negative_feedback_30d"] == pytest.approx(0.9)
    assert c1["negative_feedback_90d"] == pytest.approx(1.3)
    assert c1["negative_feedback_share_30d"] == pytest.approx(0.45)
    assert c1["negative_feedback_share_90d"] == pytest.approx(1.3 / 3)
    assert c1["theme_billing_negative_30d"] == pytest.approx(0.8 * 0.5 + 0.1 * 0.2)
    assert c1["theme_billing_negative_90d"] == pytest.approx(0.42)
    assert c1["theme_slow_support_negative_30d"] == pytest.approx(0.08)
    assert c1["theme_slow_support_negative_90d"] == pytest.approx(0.48)

    c2 = f.loc["c2"]
    assert c2["feedback_30d"] == 2
    assert c2["nps_last"] == 5  # two answers at the same moment: averaged
    assert c2["negative_feedback_30d"] == pytest.approx(0.5)  # f6 is unscored
    assert c2["negative_feedback_share_30d"] == pytest.approx(0.5)

    c3 = f.loc["c3"]
    assert c3["feedback_90d"] == 0 and c3["negative_feedback_90d"] == 0
    assert np.isnan(c3["negative_feedback_share_90d"]) and np.isnan(c3["nps_last"])


def test_text_features_are_absent_without_scores(world: World) -> None:
    f = feedback_features(world.feedback, None, ["c1"], AS_OF, THEMES)
    assert "nps_last" in f.columns and "feedback_90d" in f.columns
    assert not any(c.startswith(("negative_feedback", "theme_")) for c in f.columns)


def test_build_features_table(world: World, scores: pd.DataFrame) -> None:
    table = build_features(world, AS_OF, scores, THEMES, horizon_days=90)
    assert table["customer_id"].tolist() == ["c1", "c2", "c3", "c5"]
    assert list(table.columns[:2]) == ["customer_id", "as_of"] and table.columns[-1] == "churned"
    assert (table["as_of"] == AS_OF).all() and table["as_of"].dtype == "datetime64[ns]"
    assert table["churned"].tolist() == [1, 0, 0, 0]
    row = table.set_index("customer_id").loc["c1"]
    assert row["tenure_days"] == 152 and row["monthly_value"] == 100
    assert table.set_index("customer_id").loc["c3", "tenure_days"] == 0
    for name in ("segment", "plan", "region"):
        assert isinstance(table[name].dtype, pd.CategoricalDtype)
    # categories come from the whole customers table, so every as_of has the same dtype
    assert list(table["segment"].cat.categories) == ["consumer", "enterprise", "smb"]
    features = feature_columns(table)
    assert "churned" not in features and "customer_id" not in features
    numeric = [c for c in features if c not in ("segment", "plan", "region")]
    assert (table[numeric].dtypes == "float64").all()
    assert "churned" not in build_features(world, AS_OF, scores, THEMES).columns


def test_training_table_stacks_dates_and_keeps_categories(
    world: World, scores: pd.DataFrame
) -> None:
    dates = [T("2024-04-01"), AS_OF]
    table = build_training_table(world, dates, scores, THEMES, horizon_days=90)
    singles = [build_features(world, d, scores, THEMES, horizon_days=90) for d in dates]
    pd.testing.assert_frame_equal(table, pd.concat(singles, ignore_index=True))
    assert isinstance(table["region"].dtype, pd.CategoricalDtype)
    assert table.groupby("as_of").size().to_dict() == {
        T("2024-04-01"): 4,
        AS_OF: 4,
    }  # c1 c2 c4 c5, then c1 c2 c3 c5


def test_categorical_ids_give_the_same_features(world: World, scores: pd.DataFrame) -> None:
    encoded = World(
        customers=world.customers,
        events=world.events.astype({"customer_id": "category", "event_type": "category"}),
        tickets=world.tickets.astype({"customer_id": "category"}),
        feedback=world.feedback.astype({"customer_id": "category"}),
    )
    pd.testing.assert_frame_equal(
        build_features(encoded, AS_OF, scores, THEMES), build_features(world, AS_OF, scores, THEMES)
    )


def test_inputs_are_not_mutated(world: World, scores: pd.DataFrame) -> None:
    before = {name: frame.copy(deep=True) for name, frame in world.tables().items()}
    scores_before = scores.copy(deep=True)
    build_training_table(world, [T("2024-04-01"), AS_OF], scores, THEMES)
    for name, frame in world.tables().items():
        pd.testing.assert_frame_equal(frame, before[name])
    pd.testing.assert_frame_equal(scores, scores_before)


def test_empty_population_gives_empty_table_with_all_columns(
    world: World, scores: pd.DataFrame
) -> None:
    table = build_features(world, T("2020-01-01"), scores, THEMES, horizon_days=90)
    full = build_features(world, AS_OF, scores, THEMES, horizon_days=90)
    assert len(table) == 0 and list(table.columns) == list(full.columns)


def test_other_windows(world: World) -> None:
    f = behaviour_features(world.events, ["c1"], AS_OF, windows_days=(7,))
    assert "logins_7d" in f.columns and "logins_30d" not in f.columns
    # one window: the previous period is the 7 days before it; usage 0 vs 1 (exactly 7 days ago)
    assert f.loc["c1", "usage_7d"] == 0 and f.loc["c1", "usage_trend"] == 0
    with pytest.raises(ValueError):
        behaviour_features(world.events, ["c1"], AS_OF, windows_days=())


# ---------------------------------------------------------------------------------------------
# Signals


def test_every_feature_column_has_a_signal(world: World, scores: pd.DataFrame) -> None:
    table = build_features(world, AS_OF, scores, THEMES, windows_days=(7, 30, 90))
    signals = {c: FEATURE_SIGNALS[c] for c in feature_columns(table)}
    assert all(signals.values())
    assert signals["first_response_hours_mean_90d"] == "slow_first_response"
    assert signals["theme_slow_support_negative_7d"] == "theme_slow_support"
    assert FEATURE_SIGNALS.get("customer_id") is None
    listed = dict(FEATURE_SIGNALS)  # the default-window columns, every key resolvable
    assert listed["logins_30d"] == "engagement" and listed["open_tickets"] == "open_tickets"
    assert set(listed) == set(feature_columns(build_features(world, AS_OF, scores, [])))
    with pytest.raises(KeyError):
        feature_signal("churned")


def test_playbook_signals_are_produced(world: World) -> None:
    taxonomy = load_config("configs/themes.yaml", Taxonomy)
    playbook = load_config("configs/playbook.yaml", Playbook)
    scores = pd.DataFrame({"feedback_id": world.feedback["feedback_id"], "sentiment_negative": 0.5})
    for theme in taxonomy.ids:
        scores[f"theme_{theme}"] = 0.5
    table = build_features(world, AS_OF, scores, taxonomy.ids)
    produced = {feature_signal(c) for c in feature_columns(table)}
    assert {rule.signal for rule in playbook.rules if rule.signal is not None} <= produced


# ---------------------------------------------------------------------------------------------
# The point-in-time law

_CUSTOMERS = ["a", "b", "c", "d"]
_HOURS = st.integers(min_value=-150 * 24, max_value=60 * 24)  # hours relative to AS_OF
_MAYBE_DELAY = st.one_of(st.none(), st.integers(min_value=0, max_value=30 * 24))


def _at(hours: int | None) -> pd.Timestamp:
    return NaT if hours is None else AS_OF + pd.Timedelta(hours=hours)


@st.composite
def worlds(draw: st.DrawFn) -> tuple[World, pd.DataFrame]:
    customers = pd.DataFrame(
        {
            "customer_id": _CUSTOMERS,
            "signup_at": [_at(draw(st.integers(-200 * 24, 10 * 24))) for _ in _CUSTOMERS],
            "segment": ["smb", "smb", "enterprise", "consumer"],
            "plan": ["basic", "pro", "pro", "basic"],
            "region": ["eu", "us", "us", "eu"],
            "monthly_value": [10.0, 20.0, 30.0, 40.0],
            "churned_at": [_at(draw(st.one_of(st.none(), _HOURS))) for _ in _CUSTOMERS],
        }
    )
    customer = st.sampled_from(_CUSTOMERS)
    events = draw(
        st.lists(
            st.tuples(
                customer, _HOURS, st.sampled_from(["login", "usage", "purchase"]), st.floats(0, 100)
            ),
            max_size=40,
        )
    )
    events = pd.DataFrame(
        [(c, _at(h), kind, amount) for c, h, kind, amount in events],
        columns=["customer_id", "occurred_at", "event_type", "amount"],
    ).astype({"customer_id": object, "event_type": object, "occurred_at": "datetime64[ns]"})
    tickets = []
    for i, (c, opened, response, resolution, reopened, csat, escalated) in enumerate(
        draw(
            st.lists(
                st.tuples(
                    customer,
                    _HOURS,
                    _MAYBE_DELAY,
                    _MAYBE_DELAY,
                    st.integers(0, 3),
                    st.one_of(st.none(), st.integers(1, 5)),
                    st.booleans(),
                ),
                max_size=15,
            )
        )
    ):
        answered = None if response is None else opened + response
        resolved = (
            None
            if resolution is None
            else (answered if answered is not None else opened) + resolution
        )
        tickets.append(
            (
                f"t{i}",
                c,
                _at(opened),
                _at(answered),
                _at(resolved),
                reopened,
                np.nan if csat is None else float(csat),
                escalated,
            )
        )
    tickets = pd.DataFrame(
        tickets,
        columns=[
            "ticket_id",
            "customer_id",
            "opened_at",
            "first_response_at",
            "resolved_at",
            "reopened_count",
            "csat",
            "escalated",
        ],
    ).astype(
        {
            "customer_id": object,
            "opened_at": "datetime64[ns]",
            "first_response_at": "datetime64[ns]",
            "resolved_at": "datetime64[ns]",
        }
    )
    nps = st.one_of(st.none(), st.integers(0, 10))
    feedback = draw(
        st.lists(
            st.tuples(customer, _HOURS, nps, st.one_of(st.none(), st.integers(1, 7))), max_size=15
        )
    )
    feedback = pd.DataFrame(
        [
            (
                f"f{i}",
                c,
                _at(h),
                np.nan if n is None else float(n),
                np.nan if e is None else float(e),
            )
            for i, (c, h, n, e) in enumerate(feedback)
        ],
        columns=["feedback_id", "customer_id", "created_at", "nps", "ces"],
    ).astype({"customer_id": object, "created_at": "datetime64[ns]"})
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    scores = pd.DataFrame(
        {"feedback_id": feedback["feedback_id"], "sentiment_negative": rng.random(len(feedback))}
    )
    for theme in THEMES:
        scores[f"theme_{theme}"] = rng.random(len(feedback))
    return World(customers=customers, events=events, tickets=tickets, feedback=feedback), scores


def _rewrite_future(world: World, scores: pd.DataFrame, seed: int) -> tuple[World, pd.DataFrame]:
    """Drop some rows dated after AS_OF, add others, and move every after-AS_OF timestamp elsewhere
    after AS_OF (or to missing); scramble what only becomes known after AS_OF."""
    rng = np.random.default_rng(seed)

    def later(n: int) -> pd.Series:
        hours = rng.integers(1, 60 * 24, size=n)
        stamps = pd.Series(AS_OF + pd.to_timedelta(hours, unit="h"), dtype="datetime64[ns]")
        return stamps.where(rng.random(n) < 0.8, NaT)

    def move_future(frame: pd.DataFrame, column: str) -> pd.DataFrame:
        future = (frame[column] > AS_OF).to_numpy()
        values = frame[column].copy()
        values[future] = later(int(future.sum())).to_numpy()
        return frame.assign(**{column: values})

    def reshape_rows(frame: pd.DataFrame, column: str, extra: pd.DataFrame) -> pd.DataFrame:
        keep = ~((frame[column] > AS_OF).to_numpy() & (rng.random(len(frame)) < 0.5))
        combined = pd.concat([frame[keep], extra], ignore_index=True)
        return combined.sample(frac=1.0, random_state=int(rng.integers(2**31))).reset_index(
            drop=True
        )

    customers = move_future(world.customers, "churned_at")

    n_extra = int(rng.integers(0, 5))
    extra_events = pd.DataFrame(
        {
            "customer_id": rng.choice(_CUSTOMERS, n_extra).astype(object),
            "occurred_at": (
                AS_OF + pd.to_timedelta(rng.integers(1, 900, n_extra), unit="h")
            ).astype("datetime64[ns]"),
            "event_type": rng.choice(["login", "usage", "purchase"], n_extra).astype(object),
            "amount": rng.random(n_extra) * 100,
        }
    )
    events = reshape_rows(world.events, "occurred_at", extra_events)

    tickets = move_future(move_future(world.tickets, "first_response_at"), "resolved_at")
    unresolved = ~(tickets["resolved_at"] <= AS_OF).to_numpy()
    tickets = tickets.assign(
        reopened_count=np.where(
            unresolved, rng.integers(0, 5, len(tickets)), tickets["reopened_count"]
        ),
        csat=np.where(unresolved, rng.integers(1, 6, len(tickets)).astype(float), tickets["csat"]),
        escalated=np.where(unresolved, rng.random(len(tickets)) < 0.5, tickets["escalated"]),
    )
    extra_tickets = pd.DataFrame(
        {
            "ticket_id": [f"x{i}" for i in range(n_extra)],
            "customer_id": rng.choice(_CUSTOMERS, n_extra).astype(object),
            "opened_at": later(n_extra).fillna(AS_OF + pd.Timedelta(hours=1)),
            "first_response_at": later(n_extra),
            "resolved_at": later(n_extra),
            "reopened_count": rng.integers(0, 5, n_extra),
            "csat": rng.integers(1, 6, n_extra).astype(float),
            "escalated": rng.random(n_extra) < 0.5,
        }
    )
    tickets = reshape_rows(tickets, "opened_at", extra_tickets)

    extra_feedback = pd.DataFrame(
        {
            "feedback_id": [f"x{i}" for i in range(n_extra)],
            "customer_id": rng.choice(_CUSTOMERS, n_extra).astype(object),
            "created_at": (AS_OF + pd.to_timedelta(rng.integers(1, 900, n_extra), unit="h")).astype(
                "datetime64[ns]"
            ),
            "nps": rng.integers(0, 11, n_extra).astype(float),
            "ces": rng.integers(1, 8, n_extra).astype(float),
        }
    )
    feedback = reshape_rows(world.feedback, "created_at", extra_feedback)

    future_ids = set(world.feedback.loc[world.feedback["created_at"] > AS_OF, "feedback_id"])
    scores = scores.assign(
        sentiment_negative=np.where(
            scores["feedback_id"].isin(future_ids),
            rng.random(len(scores)),
            scores["sentiment_negative"],
        )
    )
    extra_scores = pd.DataFrame(
        {"feedback_id": extra_feedback["feedback_id"], "sentiment_negative": rng.random(n_extra)}
    )
    for theme in THEMES:
        extra_scores[f"theme_{theme}"] = rng.random(n_extra)
    scores = pd.concat([scores, extra_scores], ignore_index=True)
    return World(customers=customers, events=events, tickets=tickets, feedback=feedback), scores


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=worlds(), seed=st.integers(0, 2**32 - 1))
def test_features_ignore_everything_after_as_of(
    data: tuple[World, pd.DataFrame], seed: int
) -> None:
    world, scores = data
    rewritten, rewritten_scores = _rewrite_future(world, scores, seed)
    expected = build_features(world, AS_OF, scores, THEMES)
    actual = build_features(rewritten, AS_OF, rewritten_scores, THEMES)
    pd.testing.assert_frame_equal(actual, expected, check_exact=False, rtol=1e-9, atol=1e-12)


def test_trend_rates_use_only_the_history_a_customer_has() -> None:
    def usage(customer: str, days_ago: list[int]) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "customer_id": customer,
                "occurred_at": [AS_OF - pd.Timedelta(days=d) for d in days_ago],
                "event_type": "usage",
            }
        )

    events = pd.concat(
        [
            usage("new", [45, 10]),  # 15 days of history before the 30-day window: too little
            usage("young", [70, 50, 5]),  # 40 days before the window, 2 events: 1/20 a day
            usage("gone", [80, 60]),  # nothing in the last 30 days
        ],
        ignore_index=True,
    )
    trend = behaviour_features(events, ["new", "young", "gone"], AS_OF)["usage_trend"]
    assert np.isnan(trend["new"])
    assert trend["young"] == pytest.approx((1 / 30) / (2 / 40))
    assert trend["gone"] == 0
