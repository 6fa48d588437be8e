"""The scoring job: champion models applied to the data as of a date, into a ranked list.

``score_world`` is pure (a world and fitted models in, the ranked list out); ``write_scores``
writes it atomically: Parquet and CSV beside a small JSON summary. Running it twice on the same
data and models gives the same files.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from retain import data
from retain.churn import features
from retain.churn.evidence import reason_evidence
from retain.churn.reasons import top_reasons
from retain.config import FeatureConfig, Playbook, ScoringConfig
from retain.contracts import World
from retain.ranking import rank_customers
from retain.text_models import score_feedback

logger = logging.getLogger(__name__)

RANKED_LIST = "ranked_customers"


class ScoringError(ValueError):
    """The models and the data do not fit together; the message says how."""


@dataclass(frozen=True)
class ScoringModels:
    """The fitted models a scoring run uses, and their registry versions."""

    sentiment: Any
    themes: Any
    churn: Any
    versions: dict[str, str]


def score_world(
    world: World,
    as_of: pd.Timestamp,
    models: ScoringModels,
    theme_ids: list[str],
    feature_config: FeatureConfig,
    scoring_config: ScoringConfig,
    playbook: Playbook,
) -> pd.DataFrame:
    """Score every active customer at ``as_of`` and rank them by value at risk.

    Returns
    -------
    pd.DataFrame
        One row per customer active at ``as_of``: ``rank``, ``as_of``, ``customer_id``,
        ``churn_probability``, ``monthly_value``, ``value_at_risk``, ``risk_tier``,
        ``reason_1..k`` with their ``reason_i_signal`` ids and ``reason_i_evidence`` (ticket and
        feedback ids behind each reason, ``|``-joined), and ``recommended_action``.
    """
    feedback = world.feedback.loc[world.feedback["created_at"] <= as_of]
    text_scores = score_feedback(feedback, models.sentiment, models.themes, theme_ids)
    table = features.build_features(
        world, as_of, text_scores, theme_ids, windows_days=feature_config.windows_days
    )
    if table.empty:
        signups = world.customers["signup_at"]
        raise ScoringError(
            f"no customer is active as of {as_of.date()} (signed up on or before it and not "
            f"churned by then); the customers signed up from {signups.min()} to {signups.max()}"
        )
    expected = list(models.churn.feature_names_in_)
    missing = [c for c in expected if c not in table.columns]
    if missing:
        raise ScoringError(
            f"the churn model expects feature(s) {missing} that the data as of {as_of.date()} "
            "does not produce (was the theme taxonomy changed since training?)"
        )
    X = table[expected]
    probabilities = models.churn.predict_proba(X)[:, 1]
    attributions = models.churn.feature_attributions(X)
    reasons = top_reasons(
        attributions,
        X,
        features.FEATURE_SIGNALS,
        k=scoring_config.top_reasons,
        never_reasons=("monthly_value",),
    )
    evidence = reason_evidence(
        reasons,
        table["customer_id"],
        as_of,
        tickets=world.tickets,
        feedback=world.feedback,
        windows_days=feature_config.windows_days,
        feedback_scores=text_scores,
    )
    reasons = reasons.join(evidence)
    scored = pd.DataFrame(
        {
            "customer_id": table["customer_id"].to_numpy(),
            "churn_probability": probabilities,
            "monthly_value": table["monthly_value"].to_numpy(),
        },
        index=X.index,
    )
    ranked = rank_customers(scored, reasons, playbook, scoring_config.tiers)
    ranked.insert(1, "as_of", as_of)
    return ranked


def write_scores(
    ranked: pd.DataFrame, output_dir: Path, summary: dict[str, Any]
) -> dict[str, Path]:
    """Write the ranked list (Parquet, CSV) and its summary (JSON), each atomically."""
    paths = {
        "parquet": data.write_frame(ranked, output_dir / f"{RANKED_LIST}.parquet"),
        "csv": data.write_frame(ranked, output_dir / f"{RANKED_LIST}.csv"),
    }
    paths["summary"] = data.write_json(
        {**summary, "outputs": {k: str(v) for k, v in paths.items()}}, output_dir / "score_summary.json"
    )
    return paths


def summarise(ranked: pd.DataFrame, versions: dict[str, str]) -> dict[str, Any]:
    """Counts a person wants to see after a scoring run."""
    as_of = ranked["as_of"].iloc[0] if len(ranked) else None
    return {
        "as_of": str(as_of.date()) if as_of is not None else None,
        "customers_scored": len(ranked),
        "tiers": {str(k): int(v) for k, v in ranked["risk_tier"].value_counts().items()},
        "value_at_risk_total": float(ranked["value_at_risk"].sum()),
        "model_versions": versions,
    }
