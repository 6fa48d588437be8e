"""``retain.scoring.score_world`` on its success path: a small synthetic world, small fitted text
models and a small fitted ChurnClassifier, scored at one ``as_of``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from retain.churn.features import FEATURE_SIGNALS, build_features, build_training_table
from retain.churn.model import ChurnClassifier
from retain.churn.reasons import signal_contributions
from retain.config import FeatureConfig, Playbook, PlaybookRule, ScoringConfig, TextModelConfig
from retain.contracts import World
from retain.scoring import ScoringModels, score_world
from retain.synth import THEMES, generate_world
from retain.text.inputs import theme_indicators
from retain.text.scoring import score_feedback
from retain.text.tfidf import make_sentiment_model, make_theme_model

AS_OF = pd.Timestamp("2025-03-01")
THEME_IDS = list(THEMES)
FEATURES = FeatureConfig()
SCORING = ScoringConfig(top_reasons=3)
PLAYBOOK = Playbook(
    default_action="check in",
    rules=(PlaybookRule(signal="open_tickets", action="chase the ticket"),),
)
JOINED_AT_AS_OF = "C-JOINED-AT-AS-OF"


@dataclass(frozen=True)
class Scored:
    world: World
    models: ScoringModels
    ranked: pd.DataFrame
    churned_at_as_of: str


def _with_boundary_customers(world: World) -> tuple[World, str]:
    """Add a customer who signs up exactly at as_of (active: in the list) and make an active
    customer churn exactly at as_of (gone: not in the list)."""
    customers = world.customers.copy()
    active = customers.loc[
        (customers["signup_at"] < AS_OF - pd.Timedelta(days=200)) & customers["churned_at"].isna()
    ]
    leaver = active["customer_id"].iloc[0]
    customers.loc[customers["customer_id"] == leaver, "churned_at"] = AS_OF
    joined = customers.iloc[[0]].assign(
        customer_id=JOINED_AT_AS_OF, signup_at=AS_OF, churned_at=pd.NaT, monthly_value=55.0
    )
    world = World(
        customers=pd.concat([customers, joined], ignore_index=True),
        events=world.events,
        tickets=world.tickets,
        feedback=world.feedback,
    )
    return world, leaver


def _scoring_models(world: World) -> ScoringModels:
    text_config = TextModelConfig(char_ngrams=False, min_df=2, max_features=2000)
    labelled = world.feedback.loc[world.feedback["created_at"] < AS_OF]
    texts = labelled["text"].tolist()
    sentiment = make_sentiment_model(text_config).fit(texts, labelled["sentiment"])
    themes = make_theme_model(text_config).fit(texts, theme_indicators(labelled["themes"], THEME_IDS))
    scores = score_feedback(world.feedback, sentiment, themes, THEME_IDS)
    dates = [AS_OF - pd.Timedelta(days=d) for d in (270, 210, 150)]
    table = build_training_table(world, dates, scores, THEME_IDS, FEATURES.windows_days, 90)
    columns = [c for c in table.columns if c not in ("customer_id", "as_of", "churned")]
    churn = ChurnClassifier(n_estimators=30, min_child_samples=5, n_jobs=1).fit(
        table[columns], table["churned"], groups=table["customer_id"]
    )
    return ScoringModels(sentiment=sentiment, themes=themes, churn=churn, versions={"churn": "1"})


def _score(world: World, models: ScoringModels) -> pd.DataFrame:
    return score_world(world, AS_OF, models, THEME_IDS, FEATURES, SCORING, PLAYBOOK)


@pytest.fixture(scope="module")
def scored() -> Scored:
    world, leaver = _with_boundary_customers(
        generate_world(300, seed=2, start="2024-01-01", end="2025-06-30")
    )
    models = _scoring_models(world)
    return Scored(world, models, _score(world, models), leaver)


def _features_at_as_of(scored: Scored) -> pd.DataFrame:
    feedback = scored.world.feedback.loc[scored.world.feedback["created_at"] <= AS_OF]
    text_scores = score_feedback(feedback, scored.models.sentiment, scored.models.themes, THEME_IDS)
    table = build_features(scored.world, AS_OF, text_scores, THEME_IDS, FEATURES.windows_days)
    return table.set_index("customer_id")[list(scored.models.churn.feature_names_in_)]


def test_one_row_per_active_customer(scored: Scored) -> None:
    customers = scored.world.customers
    active = customers.loc[
        (customers["signup_at"] <= AS_OF)
        & (customers["churned_at"].isna() | (customers["churned_at"] > AS_OF))
    ]
    ranked = scored.ranked
    assert ranked["customer_id"].is_unique
    assert sorted(ranked["customer_id"]) == sorted(active["customer_id"])


def test_customers_at_the_as_of_boundary(scored: Scored) -> None:
    """Signed up exactly at as_of: listed. Churned exactly at as_of: already gone."""
    listed = set(scored.ranked["customer_id"])
    assert JOINED_AT_AS_OF in listed
    churned_at = scored.world.customers.set_index("customer_id")["churned_at"]
    assert churned_at.loc[scored.churned_at_as_of] == AS_OF
    assert scored.churned_at_as_of not in listed


def test_ranks_follow_value_at_risk(scored: Scored) -> None:
    ranked = scored.ranked
    assert ranked["rank"].tolist() == list(range(1, len(ranked) + 1))
    assert ranked["value_at_risk"].is_monotonic_decreasing
    np.testing.assert_allclose(
        ranked["value_at_risk"], ranked["churn_probability"] * ranked["monthly_value"]
    )
    monthly_value = scored.world.customers.set_index("customer_id")["monthly_value"]
    np.testing.assert_allclose(
        ranked["monthly_value"], monthly_value.loc[ranked["customer_id"]].to_numpy()
    )
    assert set(ranked["risk_tier"]) <= {"high", "medium", "low"}
    assert ranked["recommended_action"].isin(["check in", "chase the ticket"]).all()


def test_probabilities_are_the_churn_model_on_the_features_at_as_of(scored: Scored) -> None:
    X = _features_at_as_of(scored)
    expected = pd.Series(scored.models.churn.predict_proba(X)[:, 1], index=X.index)
    ranked = scored.ranked.set_index("customer_id")
    np.testing.assert_allclose(
        ranked["churn_probability"].to_numpy(), expected.loc[ranked.index].to_numpy()
    )
    assert expected.nunique() > 5  # the model does tell customers apart


def test_reasons_are_positive_signals_strongest_first(scored: Scored) -> None:
    X = _features_at_as_of(scored)
    contributions = signal_contributions(
        scored.models.churn.feature_attributions(X), FEATURE_SIGNALS
    )
    ranked = scored.ranked.set_index("customer_id")
    k = SCORING.top_reasons
    signal_columns = [f"reason_{i}_signal" for i in range(1, k + 1)]
    n_with_reasons = 0
    for customer, row in ranked.iterrows():
        positive = contributions.loc[customer]
        positive = positive[positive > 0].sort_values(ascending=False, kind="stable")
        signals = [s for s in row[signal_columns] if isinstance(s, str)]
        # only signals that raise the risk, the strongest first, up to k; the risky-side rule
        # (retain.churn.reasons) may pass over a positive signal whose figure is not risky
        assert set(signals) <= set(positive.index), customer
        assert signals == sorted(signals, key=lambda s: -positive[s]), customer
        assert len(signals) <= min(k, len(positive)), customer
        assert "value" not in signals, customer
        for i, signal in enumerate(signals, start=1):
            assert isinstance(row[f"reason_{i}"], str) and row[f"reason_{i}"], (customer, signal)
        for i in range(len(signals) + 1, k + 1):
            assert pd.isna(row[f"reason_{i}"]) and pd.isna(row[f"reason_{i}_signal"])
        n_with_reasons += bool(signals)
    assert n_with_reasons > len(ranked) // 2
    # some customers have fewer positive signals than k: the rule above is not vacuous
    assert ranked[signal_columns[-1]].isna().any()


def test_the_list_carries_its_as_of(scored: Scored) -> None:
    assert list(scored.ranked.columns[:3]) == ["rank", "as_of", "customer_id"]
    assert (scored.ranked["as_of"] == AS_OF).all()


def test_data_dated_after_as_of_does_not_change_the_list(scored: Scored) -> None:
    world = scored.world
    later = [AS_OF + pd.Timedelta(seconds=1), AS_OF + pd.Timedelta(hours=12), AS_OF + pd.Timedelta(days=20)]
    ids = scored.ranked["customer_id"].head(10).tolist()  # the customers at the top of the list
    rows = [(c, t) for c in ids for t in later]
    events = pd.DataFrame(
        {
            "customer_id": [c for c, _ in rows],
            "occurred_at": [t for _, t in rows],
            "event_type": ["login", "usage", "purchase"] * (len(rows) // 3),
            "amount": 99.0,
        }
    )
    tickets = pd.DataFrame(
        {
            "ticket_id": [f"T-LATE-{i}" for i in range(len(rows))],
            "customer_id": [c for c, _ in rows],
            "opened_at": [t for _, t in rows],
            "first_response_at": pd.NaT,
            "resolved_at": pd.NaT,
            "channel": "email",
            "reopened_count": 0,
            "csat": np.nan,
            "escalated": True,
        }
    )
    feedback = pd.DataFrame(
        {
            "feedback_id": [f"F-LATE-{i}" for i in range(len(rows))],
            "customer_id": [c for c, _ in rows],
            "created_at": [t for _, t in rows],
            "source": "review",
            "text": "terrible, charged twice, cancelling now",
            "rating": 1.0,
            "nps": 0.0,
            "ces": 7.0,
        }
    )
    newcomer = world.customers.iloc[[0]].assign(
        customer_id="C-LATE", signup_at=later[0], churned_at=pd.NaT
    )
    # customers who churn after as_of are still active at as_of
    customers = world.customers.copy()
    customers.loc[customers["customer_id"].isin(ids[:3]), "churned_at"] = later[1]
    grown = World(
        customers=pd.concat([customers, newcomer], ignore_index=True),
        events=pd.concat([world.events, events], ignore_index=True),
        tickets=pd.concat([world.tickets, tickets], ignore_index=True),
        feedback=pd.concat([world.feedback, feedback], ignore_index=True),
    )
    pd.testing.assert_frame_equal(_score(grown, scored.models), scored.ranked)


def test_the_list_carries_customer_attributes_control_and_outreach(scored: Scored) -> None:
    ranked = scored.ranked
    customers = scored.world.customers.set_index("customer_id")
    for column in ("segment", "region", "plan"):
        assert ranked[column].tolist() == customers.loc[ranked["customer_id"], column].tolist()
    # 10% of each risk decile held out; they use no capacity and get no contact
    assert ranked["control"].dtype == bool
    assert abs(ranked["control"].mean() - 0.1) < 0.02
    assert set(ranked.loc[ranked["control"], "outreach_status"]) <= {"held_out", "queued", "cooldown"}
    assert set(ranked.loc[~ranked["control"], "outreach_status"]) == {"assigned"}  # no team limit here
    assert ranked["team"].eq("customer_success").all()


def test_contacts_within_the_cooldown_take_customers_off_today_s_outreach(scored: Scored) -> None:
    top = scored.ranked.loc[~scored.ranked["control"], "customer_id"].head(2).tolist()
    contacts = pd.DataFrame(
        {"customer_id": top, "contacted_at": [AS_OF - pd.Timedelta(days=3), AS_OF - pd.Timedelta(days=45)]}
    )
    again = score_world(
        scored.world, AS_OF, scored.models, THEME_IDS, FEATURES, SCORING, PLAYBOOK, contacts=contacts
    ).set_index("customer_id")
    assert again.loc[top[0], "outreach_status"] == "cooldown"
    assert again.loc[top[1], "outreach_status"] == "assigned"  # 45 days ago: outside the 30-day cooldown


def test_the_published_list_leaves_the_control_group_out_and_the_plan_keeps_it(scored: Scored, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from retain.scoring import summarise, write_scores

    ranked = scored.ranked
    summary = summarise(ranked, {})
    assert summary["control_customers"] == int(ranked["control"].sum())
    assert sum(summary["outreach"].values()) == len(ranked)
    paths = write_scores(ranked, tmp_path / "out", summary)
    listed = pd.read_parquet(paths["parquet"])
    plan = pd.read_parquet(paths["plan"])
    assert not listed["control"].any() and len(listed) == (~ranked["control"]).sum()
    assert listed["rank"].tolist() == list(range(1, len(listed) + 1))
    assert listed["customer_id"].tolist() == ranked.loc[~ranked["control"], "customer_id"].tolist()
    assert sorted(plan["customer_id"]) == sorted(ranked["customer_id"]) and plan["control"].sum() > 0
    flagged = pd.read_parquet(write_scores(ranked, tmp_path / "out2", summary, include_control=True)["parquet"])
    assert len(flagged) == len(ranked) and flagged["control"].sum() == ranked["control"].sum()


# --------------------------------------------------------------------------------------------
# Reasons for the top of the list only (scoring.reasons_for: top), scoring in parts


REASON_COLUMNS = [f"reason_{i}{suffix}" for i in (1, 2, 3) for suffix in ("", "_signal", "_evidence")]


def _score_with(scored: Scored, **settings: object) -> pd.DataFrame:
    config = SCORING.model_copy(update=settings)
    return score_world(scored.world, AS_OF, scored.models, THEME_IDS, FEATURES, config, PLAYBOOK)


def test_small_runs_explain_everyone_by_default(scored: Scored) -> None:
    assert scored.ranked["explained"].all()


def test_reasons_for_the_top_share_only(scored: Scored) -> None:
    """The top 30% by value at risk get exactly the reasons a run explaining everyone gives them
    (the reference sample is the whole population here); the rest get none."""
    top = _score_with(
        scored, reasons_for="top", reasons_all_up_to=0, reasons_top_share=0.3, reasons_reference_sample=10_000
    )
    everyone = scored.ranked
    n = int(np.ceil(0.3 * len(top)))
    assert top["explained"].sum() == n
    assert top.loc[top["explained"], "rank"].tolist() == list(range(1, n + 1))
    pd.testing.assert_frame_equal(top.iloc[:n][REASON_COLUMNS], everyone.iloc[:n][REASON_COLUMNS])
    assert top.iloc[n:][REASON_COLUMNS].isna().all().all()
    assert top.iloc[:n]["reason_1"].notna().any()
    # the rest of the list is unchanged: order, probabilities, tiers
    pd.testing.assert_frame_equal(
        top[["customer_id", "churn_probability", "value_at_risk", "risk_tier"]],
        everyone[["customer_id", "churn_probability", "value_at_risk", "risk_tier"]],
    )


def test_reasons_from_a_reference_sample_read_against_the_whole_population(scored: Scored) -> None:
    """With a small reference sample the medians quoted are still the whole population's."""
    top = _score_with(
        scored, reasons_for="top", reasons_all_up_to=0, reasons_top_share=0.5, reasons_reference_sample=100
    )
    phrases = top.loc[top["explained"], "reason_1"].dropna()
    assert len(phrases)
    # a phrase quoting a median quotes the same median as the run explaining everyone
    medians = {p.split("median")[-1] for p in scored.ranked["reason_1"].dropna() if "median" in p}
    assert {p.split("median")[-1] for p in phrases if "median" in p} <= medians


def test_reference_sample_does_not_depend_on_order() -> None:
    from retain.scoring import reference_rows

    ids = pd.Series([f"C{i:05d}" for i in range(1000)])
    chosen = set(ids.iloc[reference_rows(ids, 50)])
    shuffled = ids.sample(frac=1.0, random_state=3).reset_index(drop=True)
    assert len(chosen) == 50
    assert set(shuffled.iloc[reference_rows(shuffled, 50)]) == chosen


def test_scoring_in_parts_gives_the_same_customer_scores(scored: Scored) -> None:
    """Stage one is per customer: two halves of the customers, concatenated, score as the whole."""
    from retain.scoring import CustomerScores, score_customers

    whole = score_customers(scored.world, AS_OF, scored.models, THEME_IDS, FEATURES)
    ids = scored.world.customers["customer_id"]
    halves = []
    for part in (ids.iloc[::2], ids.iloc[1::2]):
        keep = {name: frame.loc[frame["customer_id"].isin(part)] for name, frame in scored.world.tables().items()}
        halves.append(score_customers(World(**keep), AS_OF, scored.models, THEME_IDS, FEATURES))
    parts = CustomerScores.concat(halves)
    order = parts.table["customer_id"].argsort().to_numpy()
    expected = whole.table["customer_id"].argsort().to_numpy()
    pd.testing.assert_frame_equal(
        parts.table.iloc[order].reset_index(drop=True), whole.table.iloc[expected].reset_index(drop=True)
    )
    np.testing.assert_allclose(parts.probability[order], whole.probability[expected], rtol=0, atol=1e-12)


def test_only_feedback_the_features_read_is_scored(scored: Scored) -> None:
    """Text scoring reads the longest feature window; features are the same as scoring it all."""
    from retain.scoring import score_customers

    seen: list[pd.DataFrame] = []

    def scorer(frame: pd.DataFrame) -> pd.DataFrame:
        seen.append(frame)
        return score_feedback(frame, scored.models.sentiment, scored.models.themes, THEME_IDS)

    windowed = score_customers(scored.world, AS_OF, scored.models, THEME_IDS, FEATURES, text_scorer=scorer)
    written = seen[0]["created_at"]
    assert written.max() <= AS_OF and written.min() > AS_OF - pd.Timedelta(days=max(FEATURES.windows_days))
    assert len(seen[0]) < (scored.world.feedback["created_at"] <= AS_OF).sum()
    features = _features_at_as_of(scored)
    got = windowed.table.set_index("customer_id")[features.columns].loc[features.index]
    pd.testing.assert_frame_equal(got, features)


# --------------------------------------------------------------------------------------------
# The text cache of scoring runs: a rerun scores only new or edited feedback


def _versioned(models: ScoringModels, **versions: str) -> ScoringModels:
    from dataclasses import replace

    return replace(models, text_versions=versions)


def test_text_cache_scores_only_new_or_edited_feedback(scored: Scored) -> None:
    from retain.scoring import cached_feedback_scores, feedback_scores

    models = _versioned(scored.models, sentiment="1", themes="1")
    feedback = scored.world.feedback.iloc[:200]
    first = cached_feedback_scores(feedback, models, THEME_IDS, FEATURES, None)
    assert (first.n_cached, first.n_scored) == (0, 200)
    fresh = feedback_scores(feedback, models, THEME_IDS, FEATURES)
    pd.testing.assert_frame_equal(first.scores, fresh)

    again = cached_feedback_scores(feedback, models, THEME_IDS, FEATURES, first.cache)
    assert (again.n_cached, again.n_scored) == (200, 0)
    pd.testing.assert_frame_equal(again.scores, fresh, check_dtype=False)

    edited = feedback.copy()
    edited.iloc[3, edited.columns.get_loc("text")] = "The invoice was wrong again and nobody answers."
    grown = pd.concat([edited, scored.world.feedback.iloc[200:205]])
    rerun = cached_feedback_scores(grown, models, THEME_IDS, FEATURES, again.cache)
    assert (rerun.n_cached, rerun.n_scored) == (199, 6)  # one edited text, five new ones
    pd.testing.assert_frame_equal(rerun.scores, feedback_scores(grown, models, THEME_IDS, FEATURES), check_dtype=False)


def test_text_cache_is_not_read_for_another_model_version(scored: Scored) -> None:
    from retain.scoring import cached_feedback_scores

    feedback = scored.world.feedback.iloc[:50]
    old = cached_feedback_scores(feedback, _versioned(scored.models, themes="1"), THEME_IDS, FEATURES, None)
    new = cached_feedback_scores(feedback, _versioned(scored.models, themes="2"), THEME_IDS, FEATURES, old.cache)
    assert (new.n_cached, new.n_scored) == (0, 50)
    aspects = FEATURES.model_copy(update={"theme_sentiment_comments": 0 if FEATURES.theme_sentiment_comments else 5})
    other = cached_feedback_scores(feedback, _versioned(scored.models, themes="2"), THEME_IDS, aspects, new.cache)
    assert other.n_scored == 50  # the per-theme sentiment setting changes what is scored


def test_explain_gives_the_reasons_the_list_gives(scored: Scored) -> None:
    from retain.scoring import explain_customers, score_customers

    scores = score_customers(scored.world, AS_OF, scored.models, THEME_IDS, FEATURES)
    listed = scored.ranked.set_index("customer_id")
    named = listed.index[[0, 5, 40]].tolist()
    explained = explain_customers(scores, named, AS_OF, scored.models, FEATURES, SCORING, scored.world)
    assert explained["customer_id"].tolist() == named
    for column in REASON_COLUMNS:
        assert explained[column].tolist() == listed.loc[named, column].tolist()
    np.testing.assert_allclose(explained["churn_probability"], listed.loc[named, "churn_probability"])
    assert explained["rank"].tolist() == listed.loc[named, "rank"].tolist()


def test_explain_refuses_a_customer_outside_the_population(scored: Scored) -> None:
    from retain.scoring import ScoringError, explain_customers, score_customers

    scores = score_customers(scored.world, AS_OF, scored.models, THEME_IDS, FEATURES)
    with pytest.raises(ScoringError, match="not in the population.*NOBODY"):
        explain_customers(scores, ["NOBODY"], AS_OF, scored.models, FEATURES, SCORING, scored.world)


def test_sentiment_and_themes_share_one_vectorisation_when_they_can(scored: Scored) -> None:
    from retain.text.scoring import SENTIMENTS, class_probabilities, shared_text_features

    sentiment, themes = scored.models.sentiment, scored.models.themes
    assert shared_text_features(sentiment, themes)  # fitted on the same texts, same settings
    feedback = scored.world.feedback.iloc[:300]
    together = score_feedback(feedback, sentiment, themes, THEME_IDS)
    texts = feedback["text"].fillna("").tolist()
    alone = np.hstack([
        class_probabilities(sentiment, texts, SENTIMENTS, "sentiment"),
        class_probabilities(themes, texts, THEME_IDS, "theme"),
    ])
    np.testing.assert_allclose(together.drop(columns="feedback_id").to_numpy(), alone, rtol=0, atol=1e-12)

    other = make_sentiment_model(TextModelConfig(char_ngrams=False, min_df=2, max_features=500)).fit(
        texts, feedback["sentiment"]
    )
    assert not shared_text_features(other, themes)


def test_customers_without_a_monthly_value_are_valued_from_their_purchases(scored: Scored) -> None:
    """A third of the customers lose their contracted value: the list values them with BG/NBD x
    Gamma-Gamma fitted on the whole log to as_of; the others keep theirs; the summary says so.

    The synthetic world's baskets are lognormal, heavier-tailed than Gamma-Gamma allows (its fit
    gives q <= 1, no finite mean): here they are redrawn from a Gamma."""
    from retain.scoring import fit_purchase_value, value_from_purchases

    customers = scored.world.customers.copy()
    unvalued = customers.index[::3]
    customers.loc[unvalued, "monthly_value"] = np.nan
    events = scored.world.events.copy()
    bought = events["amount"].notna().to_numpy()
    events.loc[bought, "amount"] = np.random.default_rng(0).gamma(6.0, 5.0, bought.sum())
    world = World(customers=customers, events=events, tickets=scored.world.tickets, feedback=scored.world.feedback)
    ranked = _score(world, scored.models)
    assert "BG/NBD x Gamma-Gamma" in ranked.attrs["value_basis"]
    valuation = fit_purchase_value(world, AS_OF, SCORING, FEATURES)
    assert valuation.models is not None
    table = ranked[["customer_id"]]
    expected = value_from_purchases(world, table, AS_OF, valuation)
    contracted = customers.set_index("customer_id")["monthly_value"].reindex(ranked["customer_id"]).to_numpy()
    np.testing.assert_allclose(
        ranked["monthly_value"], np.where(np.isnan(contracted), expected.to_numpy(), contracted), rtol=1e-12
    )
    assert np.isnan(contracted).sum() > 50
    recent_spend = SCORING.model_copy(update={"purchase_value": "recent_spend"})
    listed = score_world(world, AS_OF, scored.models, THEME_IDS, FEATURES, recent_spend, PLAYBOOK)
    assert listed.attrs["value_basis"] == "purchases (average monthly spend over the last 365 days)"
