"""The scoring job: champion models applied to the data as of a date, into a ranked list.

``score_world`` is pure (a world and fitted models in, the ranked list out); ``write_scores``
publishes it as one run: Parquet and CSV beside a small JSON summary, in a run directory that
``<output_dir>/latest`` points at. Running it twice on the same
data and models gives the same files.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from retain import data
from retain.churn import features
from retain.churn.evidence import reason_evidence
from retain.churn.reasons import top_reasons
from retain.config import FeatureConfig, LabelConfig, Playbook, ScoringConfig
from retain.contracts import World
from retain.insight.value import (
    DAYS_PER_MONTH,
    ValueModels,
    expected_value,
    fit_value_models,
    purchase_summary,
)
from retain.outreach.control import control_group
from retain.outreach.playbook import assign_outreach
from retain.outreach.ranking import CUSTOMER_ATTRIBUTES, rank_customers
from retain.text.aspects import add_aspect_scores
from retain.text.cache import CachedScores
from retain.text.inputs import as_texts
from retain.text.scoring import score_feedback
from retain.timing import stage

logger = logging.getLogger(__name__)

RANKED_LIST = "ranked_customers"
OUTREACH_PLAN = "outreach_plan.parquet"
PLAN_ARCHIVE = "outreach_plans"
"""Under the output directory: every run's plan by scoring date, kept after its run is pruned,
so its effect can be measured once the horizon has passed (``retain outreach report``)."""
SUMMARY = "score_summary.json"
RECENT_SPEND = "purchases (average monthly spend over the last 365 days)"


class ScoringError(ValueError):
    """The models and the data do not fit together; the message says how."""


@dataclass(frozen=True)
class ScoringModels:
    """The fitted models a scoring run uses, and their registry versions."""

    sentiment: Any
    themes: Any
    churn: Any
    versions: dict[str, str]
    #: The theme model gives each text one theme: per-theme sentiment reads its most probable one.
    single_label_themes: bool = False
    #: Registry name -> version of the text models among ``versions`` (what cached text scores key on).
    text_versions: dict[str, str] = field(default_factory=dict)
    #: What monitoring compares a run with (``insight.monitoring.DriftReference``), saved with the
    #: churn model at training; None when not loaded or when the model has none.
    reference: Any = None


@dataclass(frozen=True)
class PurchaseValue:
    """How customers without a contracted monthly value are valued from their purchases.

    Fitted once on the whole purchase log to ``as_of`` (:func:`fit_purchase_value`) and handed
    to every part of the customers (:func:`score_customers`), so scoring in parts gives what
    scoring everyone does.
    """

    #: What the value is, as the run's summary says it (``value_basis``).
    basis: str = RECENT_SPEND
    #: BG/NBD and Gamma-Gamma fitted on the log to ``as_of``; None: recent spend.
    models: ValueModels | None = None
    #: The horizon of the expected spend.
    horizon_days: int = 90


@dataclass
class CustomerScores:
    """Stage one of scoring: what each customer's own rows give, so it can run per partition.

    Every field is a function of one customer's rows (and the fitted models) only: scoring the
    customers in parts and concatenating them (:meth:`concat`) gives what scoring them together
    does. Stage two (:func:`rank_scored`) needs the whole population: value at risk ranks,
    reference medians for the reasons, the control group's risk deciles.
    """

    #: The feature table (``features.build_features``): ``customer_id``, ``as_of``, features.
    table: pd.DataFrame
    #: The churn model's probability per row of ``table``.
    probability: np.ndarray
    #: Monthly value from purchases (``purchase_basis``) where the data has purchase amounts, else None.
    purchase_value: np.ndarray | None
    #: ``segment``, ``region``, ``plan`` as the customers table has them, same index as ``table``.
    attributes: pd.DataFrame
    #: Text scores of the feedback the features read (None without text models).
    text_scores: pd.DataFrame | None = None
    #: What ``purchase_value`` is (:attr:`PurchaseValue.basis`).
    purchase_basis: str = RECENT_SPEND

    def monthly_value(self) -> tuple[np.ndarray, str]:
        """Each customer's monthly value and what it is based on (:func:`_monthly_value`)."""
        return _monthly_value(self.table, self.purchase_value, self.purchase_basis)

    @classmethod
    def concat(cls, parts: Sequence[CustomerScores]) -> CustomerScores:
        """The scores of disjoint sets of customers as one, in the order given."""
        if not parts:
            raise ValueError("no customer scores to concatenate")
        table = pd.concat([p.table for p in parts], ignore_index=True)
        values = [p.purchase_value for p in parts]
        texts = [p.text_scores for p in parts if p.text_scores is not None]
        return cls(
            table=table,
            probability=np.concatenate([p.probability for p in parts]),
            purchase_value=None if any(v is None for v in values) else np.concatenate(values),
            attributes=pd.concat([p.attributes for p in parts], ignore_index=True).set_index(table.index),
            text_scores=pd.concat(texts, ignore_index=True) if texts else None,
            purchase_basis=parts[0].purchase_basis,
        )


def text_window(feedback: pd.DataFrame, as_of: pd.Timestamp, feature_config: FeatureConfig) -> pd.DataFrame:
    """The feedback the features read at ``as_of``: written in the longest window up to it.

    Every text feature (``features.feedback_features``) reads rows in ``(as_of - longest window,
    as_of]``; reasons' evidence reads the same window. Older feedback never shapes a score, so
    it is not scored.
    """
    window = pd.Timedelta(days=max(int(w) for w in feature_config.windows_days))
    created = feedback["created_at"]
    return feedback.loc[(created <= as_of) & (created > as_of - window)]


def score_customers(
    world: World,
    as_of: pd.Timestamp,
    models: ScoringModels,
    theme_ids: list[str],
    feature_config: FeatureConfig,
    label_config: LabelConfig | None = None,
    text_scorer: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
    purchase_value: PurchaseValue | None = None,
) -> CustomerScores:
    """Stage one: text scores, features, churn probability and purchase value of each customer.

    ``text_scorer`` scores a feedback frame (default: the models, :func:`feedback_scores`); a
    caller may pass one that reads a cache of earlier runs. ``purchase_value``: how purchases are
    valued, fitted on the whole log (:func:`fit_purchase_value`; default recent spend).

    Raises
    ------
    ScoringError
        When the churn model expects features the data does not produce.
    """
    text_scores = None
    with stage("text"):
        if world.feedback is not None and (models.sentiment is not None or models.themes is not None):
            feedback = text_window(world.feedback, as_of, feature_config)
            scorer = text_scorer or (lambda frame: feedback_scores(frame, models, theme_ids, feature_config))
            text_scores = scorer(feedback)
    with stage("features"):
        table = features.build_features(
            world, as_of, text_scores, theme_ids, windows_days=feature_config.windows_days,
            definition=label_config, attributes=feature_config.attributes,
            theme_sentiment_comments=feature_config.theme_sentiment_comments,
        )
        customers = world.customers.drop_duplicates("customer_id").set_index("customer_id")
        attributes = customers[[c for c in CUSTOMER_ATTRIBUTES if c in customers.columns]]
        attributes = attributes.reindex(table["customer_id"].to_numpy()).set_index(table.index)
        valuation = purchase_value or PurchaseValue()
        value = value_from_purchases(world, table, as_of, valuation)
    with stage("churn probability"):
        probability = churn_probability(table, models.churn, as_of)
    return CustomerScores(
        table=table,
        probability=probability,
        purchase_value=None if value is None else value.to_numpy(dtype=float),
        attributes=attributes,
        text_scores=text_scores,
        purchase_basis=valuation.basis,
    )


def feedback_scores(
    feedback: pd.DataFrame, models: ScoringModels, theme_ids: list[str], feature_config: FeatureConfig
) -> pd.DataFrame:
    """Sentiment and theme scores per feedback row, with per-theme sentiment where features read it."""
    scores = score_feedback(feedback, models.sentiment, models.themes, theme_ids)
    if feature_config.theme_sentiment_comments > 0:
        scores = add_aspect_scores(
            scores, feedback, models.sentiment, models.themes, theme_ids,
            single_label=models.single_label_themes,
        )
    return scores


def text_model_key(models: ScoringModels, feature_config: FeatureConfig) -> str:
    """What a cached text score depends on: the text models' versions and the per-theme sentiment setting."""
    versions = ";".join(f"{name}={v}" for name, v in sorted(models.text_versions.items()))
    aspects = feature_config.theme_sentiment_comments > 0
    return f"{versions or 'unversioned'}|aspects={aspects}|single_label={models.single_label_themes}"


def cached_feedback_scores(
    feedback: pd.DataFrame,
    models: ScoringModels,
    theme_ids: list[str],
    feature_config: FeatureConfig,
    cache: pd.DataFrame | None,
    show_progress: bool = False,
) -> CachedScores:
    """:func:`feedback_scores` of every row, taking texts scored by the same models from ``cache``.

    A cache entry holds when its feedback id, the sha256 of its text and the text models'
    versions (:func:`text_model_key`) are all the same as now; anything else is scored afresh.
    Returns the scores (``feedback_id`` first, ``feedback``'s index), the cache to write back
    and how many texts were taken from it or scored.
    """
    from retain.text.cache import score_with_cache

    def predict(texts: list[str]) -> pd.DataFrame:
        frame = pd.DataFrame({"feedback_id": np.arange(len(texts)), "text": texts})
        return feedback_scores(frame, models, theme_ids, feature_config).drop(columns="feedback_id")

    columns = list(predict([""]).columns)
    result = score_with_cache(
        feedback["feedback_id"].astype(str).tolist(),
        as_texts(feedback["text"]),
        predict,
        columns,
        cache,
        text_model_key(models, feature_config),
        batch_size=8192,
        show_progress=show_progress,
    )
    scores = result.scores.set_index(feedback.index)
    scores.insert(0, "feedback_id", feedback["feedback_id"])
    return CachedScores(
        scores=scores, cache=result.cache, n_cached=result.n_cached, n_scored=result.n_scored,
        inference_seconds=result.inference_seconds,
    )


def churn_probability(table: pd.DataFrame, churn: Any, as_of: pd.Timestamp) -> np.ndarray:
    """The churn model's probability per row of a feature table (empty table: none)."""
    if table.empty:
        return np.empty(0)
    return churn.predict_proba(model_inputs(table, churn, as_of))[:, 1]


def model_inputs(table: pd.DataFrame, churn: Any, as_of: pd.Timestamp) -> pd.DataFrame:
    """The columns of ``table`` the churn model was fitted on, in its order.

    Raises
    ------
    ScoringError
        When the churn model expects features the data does not produce.
    """
    expected = list(churn.feature_names_in_)
    missing = [c for c in expected if c not in table.columns]
    if missing:
        raise ScoringError(
            f"the churn model expects feature(s) {missing} that the data as of {as_of.date()} "
            "does not produce (a table, column or theme taxonomy changed since training?)"
        )
    return table[expected]


def score_world(
    world: World,
    as_of: pd.Timestamp,
    models: ScoringModels,
    theme_ids: list[str],
    feature_config: FeatureConfig,
    scoring_config: ScoringConfig,
    playbook: Playbook,
    label_config: LabelConfig | None = None,
    contacts: pd.DataFrame | None = None,
    text_scorer: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """Score every customer in the population at ``as_of``, rank them by value at risk, assign outreach.

    :func:`score_customers` (per customer) then :func:`rank_scored` (the population).
    ``contacts`` (``customer_id``, ``contacted_at``) are the past outreach contacts the
    playbook's cooldown reads.

    Returns
    -------
    pd.DataFrame
        One row per population customer at ``as_of``: ``rank``, ``as_of``, ``customer_id``,
        ``churn_probability``, ``monthly_value``, ``value_at_risk``, ``risk_tier``,
        the customer attributes ``segment``, ``region``, ``plan`` where the customers table has
        them, ``reason_1..k`` with their ``reason_i_signal`` ids and ``reason_i_evidence`` (ticket
        and feedback ids behind each reason, ``|``-joined), ``explained`` (whether reasons were
        computed for the customer: ``scoring.reasons_for``), ``control`` (held out of outreach to
        measure its effect), and the playbook's ``recommended_action``, ``team``,
        ``outreach_status``, ``last_contacted_at`` (``outreach.playbook.assign_outreach``). Every
        customer is here, control ones too; :func:`outreach_list` is the list people act on.
    """
    return score_and_rank(
        world, as_of, models, theme_ids, feature_config, scoring_config, playbook, label_config, contacts, text_scorer
    )[1]


def score_and_rank(
    world: World,
    as_of: pd.Timestamp,
    models: ScoringModels,
    theme_ids: list[str],
    feature_config: FeatureConfig,
    scoring_config: ScoringConfig,
    playbook: Playbook,
    label_config: LabelConfig | None = None,
    contacts: pd.DataFrame | None = None,
    text_scorer: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
) -> tuple[CustomerScores, pd.DataFrame]:
    """:func:`score_world`, also returning stage one's :class:`CustomerScores` (what monitoring reads)."""
    with stage("purchase value"):
        valuation = fit_purchase_value(world, as_of, scoring_config, feature_config)
    scores = score_customers(
        world, as_of, models, theme_ids, feature_config, label_config, text_scorer, purchase_value=valuation
    )
    ranked = rank_scored(scores, as_of, models, feature_config, scoring_config, playbook, world, contacts=contacts)
    return scores, ranked


def rank_scored(
    scores: CustomerScores,
    as_of: pd.Timestamp,
    models: ScoringModels,
    feature_config: FeatureConfig,
    scoring_config: ScoringConfig,
    playbook: Playbook,
    world: World,
    contacts: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Stage two: value at risk, reasons with their evidence, ranks, tiers, control group, outreach.

    ``world`` gives the tickets and feedback behind the reasons (only the explained customers'
    rows are read).
    """
    table = scores.table
    if table.empty:
        signups = world.customers["signup_at"]
        raise ScoringError(
            f"no customer is in the population as of {as_of.date()} (signed up on or before it and "
            f"not churned or lost by then); the customers signed up from {signups.min()} to {signups.max()}"
        )

    def evidence(reasons: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
        return _evidence(reasons, rows["customer_id"], as_of, world, feature_config, scores.text_scores)

    return _rank(
        table, as_of, models, scoring_config, playbook, scores.purchase_value, evidence,
        attributes=scores.attributes, contacts=contacts, probabilities=scores.probability,
        purchase_basis=scores.purchase_basis,
    )


def explain_customers(
    scores: CustomerScores,
    customer_ids: Sequence[str],
    as_of: pd.Timestamp,
    models: ScoringModels,
    feature_config: FeatureConfig,
    scoring_config: ScoringConfig,
    world: World,
) -> pd.DataFrame:
    """Reasons, with their evidence, for the customers named, read against the whole population.

    What a scoring run gives a customer it explains: when the run would explain everyone
    (``scoring.reasons_for``), the same computation over the population; otherwise exact
    attributions of the customers named against the run's reference sample and medians.

    Returns
    -------
    pd.DataFrame
        One row per customer named, in the order named: ``customer_id``, ``churn_probability``,
        ``monthly_value``, ``value_at_risk``, ``rank`` (by value at risk, control group included),
        ``reason_1..k`` with ``reason_i_signal`` and ``reason_i_evidence``.

    Raises
    ------
    ScoringError
        When a customer named is not in the population at ``as_of``.
    """
    table = scores.table
    ids = table["customer_id"].astype(str)
    named = [str(c) for c in customer_ids]
    missing = [c for c in named if c not in set(ids)]
    if missing:
        raise ScoringError(
            f"{len(missing)} customer(s) not in the population as of {as_of.date()} (unknown, not signed "
            f"up yet, or churned by then): {', '.join(missing[:10])}"
        )
    X = model_inputs(table, models.churn, as_of)
    value, _ = scores.monthly_value()
    at_risk = scores.probability * value
    wanted = ids.isin(set(named)).to_numpy()
    everyone = explained_rows(table["customer_id"], scores.probability, value, scoring_config).all()
    reasons = explain_reasons(
        X, np.ones(len(X), bool) if everyone else wanted, models.churn, scoring_config, ("monthly_value",),
        table["customer_id"],
    ).loc[wanted]
    rows = table.loc[wanted]
    found = _evidence(reasons, rows["customer_id"], as_of, world, feature_config, scores.text_scores)
    order = list_order(table["customer_id"], scores.probability, value)
    rank = np.empty(len(order), dtype=int)
    rank[order] = np.arange(1, len(order) + 1)
    out = pd.DataFrame(
        {
            "customer_id": rows["customer_id"].astype(str).to_numpy(),
            "churn_probability": scores.probability[wanted],
            "monthly_value": value[wanted],
            "value_at_risk": at_risk[wanted],
            "rank": rank[wanted],
        },
        index=rows.index,
    ).join(reasons).join(found)
    return out.set_index("customer_id").loc[named].reset_index()


def _evidence(
    reasons: pd.DataFrame,
    customer_ids: pd.Series,
    as_of: pd.Timestamp,
    world: World,
    feature_config: FeatureConfig,
    text_scores: pd.DataFrame | None,
) -> pd.DataFrame:
    """The tickets and feedback behind the reasons of ``customer_ids`` (their rows only)."""
    return reason_evidence(
        reasons,
        customer_ids,
        as_of,
        tickets=_rows_of(world.tickets, customer_ids),
        feedback=_rows_of(world.feedback, customer_ids),
        windows_days=feature_config.windows_days,
        feedback_scores=text_scores,
    )


def _rows_of(frame: pd.DataFrame | None, customer_ids: pd.Series) -> pd.DataFrame | None:
    """The rows of ``frame`` that belong to ``customer_ids``."""
    if frame is None:
        return None
    wanted = frame["customer_id"].astype(str).isin(pd.Index(customer_ids.astype(str).unique()))
    return frame.loc[wanted]


def score_flat(
    frame: pd.DataFrame,
    models: ScoringModels,
    scoring_config: ScoringConfig,
    playbook: Playbook,
    as_of: pd.Timestamp | None = None,
    value_column: str | None = None,
    contacts: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Score the customers of a flat table who have not churned (label not 1), ranked.

    ``as_of`` is the snapshot date (the table's, else the day it is scored). The value column
    may be a feature but is never a reason.
    """
    active = frame.loc[frame["churned"].fillna(0) != 1].reset_index(drop=True)
    if active.empty:
        raise ScoringError("every row of the flat table is labelled churned: nobody to score")
    snapshot = active["as_of"].max() if active["as_of"].notna().any() else None
    when = pd.Timestamp(as_of or snapshot or pd.Timestamp.now().normalize())
    never = (value_column,) if value_column else ()
    attributes = active[[c for c in CUSTOMER_ATTRIBUTES if c in active.columns]]
    return _rank(
        active, when, models, scoring_config, playbook, None, None, never, attributes=attributes, contacts=contacts
    )


def _rank(
    table: pd.DataFrame,
    as_of: pd.Timestamp,
    models: ScoringModels,
    scoring_config: ScoringConfig,
    playbook: Playbook,
    purchase_value: np.ndarray | None,
    evidence: Callable[[pd.DataFrame, pd.DataFrame], pd.DataFrame] | None = None,
    never_reasons: tuple[str, ...] = (),
    attributes: pd.DataFrame | None = None,
    contacts: pd.DataFrame | None = None,
    probabilities: np.ndarray | None = None,
    purchase_basis: str = RECENT_SPEND,
) -> pd.DataFrame:
    X = model_inputs(table, models.churn, as_of)
    if probabilities is None:
        with stage("churn probability"):
            probabilities = models.churn.predict_proba(X)[:, 1]
    value, basis = _monthly_value(table, purchase_value, purchase_basis)
    explain = explained_rows(table["customer_id"], probabilities, value, scoring_config)
    with stage("reasons"):
        reasons = explain_reasons(
            X, explain, models.churn, scoring_config, ("monthly_value", *never_reasons), table["customer_id"]
        )
    k = scoring_config.top_reasons
    evidence_columns = [f"reason_{i}_evidence" for i in range(1, k + 1)]
    with stage("evidence"):
        if evidence is not None and explain.any():
            found = evidence(reasons.loc[explain], table.loc[explain])
            reasons = reasons.join(found.reindex(reasons.index).astype(object).where(found.notna(), None))
        else:  # a flat table has no tickets or feedback behind its reasons
            for column in evidence_columns:
                reasons[column] = None
    reasons["explained"] = explain
    scored = pd.DataFrame(
        {
            "customer_id": table["customer_id"].to_numpy(),
            "churn_probability": probabilities,
            "monthly_value": value,
        },
        index=X.index,
    )
    if attributes is not None:
        scored = scored.join(attributes)
    with stage("rank and outreach"):
        ranked = rank_customers(scored, reasons, scoring_config.tiers)
        ranked.insert(1, "as_of", as_of)
        ranked["control"] = control_group(
            ranked["customer_id"], ranked["churn_probability"], playbook.control_share, playbook.control_seed
        )
        ranked = assign_outreach(ranked, playbook, contacts, as_of, [t.name for t in scoring_config.tiers])
    ranked.attrs["value_basis"] = basis
    return ranked


def _monthly_value(
    table: pd.DataFrame, purchase_value: np.ndarray | None, purchase_basis: str = RECENT_SPEND
) -> tuple[np.ndarray, str]:
    """Each customer's monthly value (0 where unknown) and what it is based on."""
    value = (
        table["monthly_value"].to_numpy(dtype=float)
        if "monthly_value" in table.columns
        else np.full(len(table), np.nan)
    )
    basis = "monthly_value"
    if purchase_value is not None and np.isnan(value).any():
        value = np.where(np.isnan(value), np.asarray(purchase_value, dtype=float), value)
        basis = purchase_basis
    if np.isnan(value).all():
        logger.info("no monthly value or purchase amounts: the list is ranked by churn probability")
        return np.ones(len(table)), "none (ranked by churn probability)"
    return np.nan_to_num(value, nan=0.0), basis


def explained_rows(
    customer_ids: pd.Series, probabilities: np.ndarray, value: np.ndarray, scoring_config: ScoringConfig
) -> np.ndarray:
    """Which customers get reasons (``scoring.reasons_for``), as a mask over the rows.

    Everyone with ``all``, or when at most ``reasons_all_up_to`` customers are scored; otherwise
    the top ``reasons_top_share`` of the list by value at risk, in the list's order (value at
    risk, then probability, then customer id).
    """
    n = len(customer_ids)
    if scoring_config.reasons_for == "all" or n <= scoring_config.reasons_all_up_to:
        return np.ones(n, dtype=bool)
    top = int(np.ceil(scoring_config.reasons_top_share * n))
    explain = np.zeros(n, dtype=bool)
    explain[list_order(customer_ids, probabilities, value)[:top]] = True
    return explain


def list_order(customer_ids: pd.Series, probabilities: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Row positions in the list's order: value at risk, then probability (highest first), then
    customer id, as ``outreach.ranking.rank_customers`` sorts."""
    return np.lexsort((customer_ids.astype(str).to_numpy(), -probabilities, -(probabilities * value)))


def explained_customers(scores: CustomerScores, scoring_config: ScoringConfig) -> pd.Series:
    """The ids of the customers :func:`rank_scored` gives reasons to (:func:`explained_rows`).

    An engine that holds the tickets and feedback elsewhere fetches only theirs for the evidence.
    """
    value, _ = scores.monthly_value()
    explain = explained_rows(scores.table["customer_id"], scores.probability, value, scoring_config)
    return scores.table.loc[explain, "customer_id"]


def reference_rows(customer_ids: pd.Series, size: int) -> np.ndarray:
    """Positions of a fixed sample of ``size`` customers, chosen by a hash of their id.

    The same customers are chosen whatever order or partition they are scored in, so two runs
    (or two engines) read the same reference.
    """
    if len(customer_ids) <= size:
        return np.arange(len(customer_ids))
    hashed = pd.util.hash_pandas_object(customer_ids.astype(str).reset_index(drop=True), index=False).to_numpy()
    return np.sort(np.argsort(hashed, kind="stable")[:size])


def explain_reasons(
    X: pd.DataFrame,
    explain: np.ndarray,
    churn: Any,
    scoring_config: ScoringConfig,
    never_reasons: tuple[str, ...],
    customer_ids: pd.Series,
) -> pd.DataFrame:
    """``reason_1..k`` and their signals for the explained rows; None for the others.

    Exact attributions of the explained rows. When not every row is explained, the risky
    direction of each feature (and whether a category raises risk) is read from the exact
    attributions of a fixed sample of the population (:func:`reference_rows`), and the medians
    the phrases quote from every row, so a customer's reasons read against the whole population.
    """
    k = scoring_config.top_reasons
    if explain.all():
        return top_reasons(
            churn.feature_attributions(X), X, features.FEATURE_SIGNALS, k=k, never_reasons=never_reasons
        )
    out = pd.DataFrame(index=X.index)
    for i in range(1, k + 1):
        out[f"reason_{i}"] = pd.Series(None, index=X.index, dtype=object)
    for i in range(1, k + 1):
        out[f"reason_{i}_signal"] = pd.Series(None, index=X.index, dtype=object)
    rows = np.flatnonzero(explain)
    if not len(rows):
        return out
    sample = X.iloc[reference_rows(customer_ids, scoring_config.reasons_reference_sample)]
    explained = X.iloc[rows]
    found = top_reasons(
        churn.feature_attributions(explained), explained, features.FEATURE_SIGNALS, k=k,
        never_reasons=never_reasons,
        reference=(churn.feature_attributions(sample), sample), population=X,
    )
    out.loc[found.index, found.columns] = found
    return out


def outreach_list(ranked: pd.DataFrame, include_control: bool = False) -> pd.DataFrame:
    """The list people act on: the ranked customers without the control group, ranks renumbered.

    With ``include_control`` (the playbook's setting) control customers stay in, flagged by
    ``control`` and with status ``held_out`` where they would have been contacted.
    """
    held_out = ranked["control"].to_numpy(dtype=bool) if "control" in ranked.columns else np.zeros(len(ranked), bool)
    listed = ranked if include_control else ranked.loc[~held_out]
    listed = listed.reset_index(drop=True)
    listed["rank"] = np.arange(1, len(listed) + 1)
    listed.attrs = dict(ranked.attrs)
    return listed


def needs_purchase_value(customers: pd.DataFrame) -> bool:
    """Whether some customer has no contracted monthly value, so purchases must value them."""
    return "monthly_value" not in customers.columns or bool(customers["monthly_value"].isna().any())


def purchase_histories(world: World, as_of: pd.Timestamp) -> pd.DataFrame | None:
    """Each buyer's purchases to ``as_of`` as BG/NBD reads them (``insight.value.purchase_summary``,
    days), or None when the events carry no amount. Per customer: a part of the customers gives
    its own rows of the whole."""
    if world.events is None or "amount" not in world.events.columns:
        return None
    return purchase_summary(world.events, as_of)


def fit_purchase_value(
    world: World, as_of: pd.Timestamp, scoring_config: ScoringConfig, feature_config: FeatureConfig
) -> PurchaseValue:
    """How this run values purchases (``scoring.purchase_value``), fitted on the whole log to ``as_of``."""
    if not needs_purchase_value(world.customers) or scoring_config.purchase_value == "recent_spend":
        return PurchaseValue(horizon_days=_value_horizon(scoring_config, feature_config))
    return purchase_value_model(purchase_histories(world, as_of), scoring_config, feature_config)


def purchase_value_model(
    histories: pd.DataFrame | None, scoring_config: ScoringConfig, feature_config: FeatureConfig
) -> PurchaseValue:
    """BG/NBD x Gamma-Gamma fitted on every buyer's history (:func:`purchase_histories`), or recent
    spend, saying why, when ``scoring.purchase_value`` asks for it or the models cannot be fitted."""
    horizon = _value_horizon(scoring_config, feature_config)
    if scoring_config.purchase_value == "recent_spend" or histories is None:
        return PurchaseValue(horizon_days=horizon)
    try:
        models = fit_value_models(histories)
    except (ValueError, RuntimeError) as exc:
        logger.warning("purchase value: BG/NBD and Gamma-Gamma not fitted (%s); using recent spend", exc)
        return PurchaseValue(
            basis=f"{RECENT_SPEND[:-1]}; the probabilistic value could not be fitted)", horizon_days=horizon
        )
    logger.info(
        "purchase value: BG/NBD (r=%.3g, alpha=%.3g, a=%.3g, b=%.3g) and Gamma-Gamma (p=%.3g, q=%.3g, "
        "v=%.3g) fitted on %d buyers",
        *models.purchases.params_, *models.spend.params_, len(histories),
    )
    basis = f"purchases (expected spend over the next {horizon} days if still active, per month: BG/NBD x Gamma-Gamma)"
    return PurchaseValue(basis=basis, models=models, horizon_days=horizon)


def _value_horizon(scoring_config: ScoringConfig, feature_config: FeatureConfig) -> int:
    return scoring_config.purchase_value_horizon_days or feature_config.horizon_days


def value_from_purchases(
    world: World, table: pd.DataFrame, as_of: pd.Timestamp, valuation: PurchaseValue | None = None
) -> pd.Series | None:
    """Each customer's monthly value from their purchases to ``as_of``, where there is no monthly value.

    For customers without a contracted value (purchase logs), so the list ranks by expected spend
    lost rather than by probability alone. With fitted models (``valuation.models``): the spend
    BG/NBD x Gamma-Gamma expect over ``valuation.horizon_days`` if the customer is still active at
    ``as_of`` (``insight.value.expected_value(..., if_alive=True)``: the churn probability beside
    it says how likely they are to leave), per month; a customer with no purchase is worth 0.
    Otherwise the average monthly spend of the 365 days to ``as_of``. None without amounts.
    """
    if world.events is None or "amount" not in world.events.columns:
        return None
    events = world.events
    ids = table["customer_id"].astype(object).astype(str)
    if valuation is not None and valuation.models is not None:
        histories = purchase_summary(events, as_of, valuation.models.time_unit_days)
        if histories.empty:
            return None
        spend = expected_value(valuation.models, histories, valuation.horizon_days, if_alive=True)
        monthly = pd.Series(spend / (valuation.horizon_days / DAYS_PER_MONTH), index=histories.index)
        return pd.Series(monthly.reindex(ids.to_numpy()).fillna(0.0).to_numpy(), index=table.index)
    recent = events.loc[
        (events["occurred_at"] <= as_of) & (events["occurred_at"] > as_of - pd.Timedelta(days=365))
        & events["amount"].notna()
    ]
    if recent.empty:
        return None
    spend = recent.groupby(recent["customer_id"].astype(object), observed=True)["amount"].sum() / 12.0
    return pd.Series(spend.reindex(table["customer_id"].astype(object)).fillna(0.0).to_numpy(), index=table.index)


def write_scores(
    ranked: pd.DataFrame,
    output_dir: Path,
    summary: dict[str, Any],
    keep_runs: int = 5,
    include_control: bool = False,
) -> dict[str, Path]:
    """Publish the ranked list (Parquet, CSV), the outreach plan and the summary (JSON) as one run.

    The list is :func:`outreach_list` (control customers left out unless ``include_control``);
    the outreach plan (``outreach_plan.parquet``) is every scored customer, control ones
    included, with their status: what ``retain outreach report`` reads once the horizon has
    passed; a copy is kept under ``output_dir/outreach_plans/`` (:func:`plan_archive_path`),
    which run pruning does not touch. The files go into a new ``output_dir/runs/<id>/`` and ``output_dir/latest`` is then
    switched to it in one rename (:func:`retain.data.publish_run`), so a reader sees the previous
    list or this one, never a mix. Returns the stable paths under ``latest`` and ``run``, the
    run directory.
    """
    names = {
        "parquet": f"{RANKED_LIST}.parquet", "csv": f"{RANKED_LIST}.csv", "plan": OUTREACH_PLAN, "summary": SUMMARY,
    }
    listed_customers = outreach_list(ranked, include_control)
    # Stable paths only: the files of two runs on the same data and models stay byte-identical.
    listed = {kind: str(output_dir / data.LATEST / name) for kind, name in names.items() if kind != "summary"}
    payload = {**summary, "customers_listed": len(listed_customers), "outputs": listed}
    published = data.publish_run(
        output_dir,
        {
            names["parquet"]: data.frame_writer(listed_customers, "parquet"),
            names["csv"]: data.frame_writer(listed_customers, "csv"),
            names["plan"]: data.frame_writer(ranked, "parquet"),
            names["summary"]: lambda p: data.dump_json(payload, p),
        },
        keep_runs=keep_runs,
    )
    paths = {kind: published.files[name] for kind, name in names.items()}
    paths["run"] = published.run_dir
    if len(ranked):
        paths["plans"] = data.write_frame(ranked, plan_archive_path(output_dir, ranked["as_of"].iloc[0]))
    return paths


def plan_archive_path(output_dir: Path, as_of: pd.Timestamp) -> Path:
    """Where the outreach plan of the list dated ``as_of`` is kept (a rescore of that date replaces it)."""
    return output_dir / PLAN_ARCHIVE / f"plan_{pd.Timestamp(as_of):%Y-%m-%d}.parquet"


def reasons_coverage(listed: pd.DataFrame) -> dict[str, Any]:
    """Who on a list has reasons: how many, and the rank down to which everyone has them.

    Reasons go to the top of the list by value at risk (``scoring.reasons_for``), so the
    explained customers are ranks 1 to ``through_rank``.
    """
    explained = listed["explained"].to_numpy(dtype=bool) if "explained" in listed.columns else np.ones(len(listed), bool)
    ranks = listed["rank"].to_numpy()[explained]
    return {
        "explained": int(explained.sum()),
        "of": len(listed),
        "through_rank": int(ranks.max()) if len(ranks) else 0,
    }


def summarise(ranked: pd.DataFrame, versions: dict[str, str]) -> dict[str, Any]:
    """Counts a person wants to see after a scoring run."""
    as_of = ranked["as_of"].iloc[0] if len(ranked) else None
    return {
        "as_of": str(as_of.date()) if as_of is not None else None,
        "customers_scored": len(ranked),
        "tiers": {str(k): int(v) for k, v in ranked["risk_tier"].value_counts().items()},
        "control_customers": int(ranked["control"].sum()) if "control" in ranked.columns else 0,
        "outreach": (
            {str(k): int(v) for k, v in ranked["outreach_status"].value_counts().items()}
            if "outreach_status" in ranked.columns
            else {}
        ),
        "value_at_risk_total": float(ranked["value_at_risk"].sum()),
        "value_basis": ranked.attrs.get("value_basis", "monthly_value"),
        "model_versions": versions,
    }
