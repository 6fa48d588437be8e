"""The training job, as the phases a data scientist would say aloud.

1. ``choose_training_dates``: the evaluation ``as_of`` is the last date whose churn window is
   fully observed; training dates go back from there, each with its label window closed on or
   before the evaluation date, so no training label peeks into the evaluation period.
2. ``train_text_models``: sentiment and theme models on the earlier labelled feedback, evaluated
   on the later feedback; every feedback row then gets scores from a model that did not see it
   (out-of-fold for the training rows), so text features do not flatter the churn evaluation.
3. ``build_training_table``: point-in-time features and labels for every training date and the
   evaluation date.
4. ``train_churn_models``: the gradient-boosted churn model and its logistic baseline, both
   evaluated on the evaluation date.

``train`` runs the phases; ``retain.tracking`` logs, registers and promotes what they produce.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from retain import evaluation
from retain.churn import features
from retain.churn.model import ChurnClassifier, make_logistic_baseline
from retain.config import ChurnModelConfig, FeatureConfig, TextModelConfig
from retain.contracts import World
from retain.text_models import (
    make_sentiment_model,
    make_theme_model,
    out_of_fold_feedback_scores,
    score_feedback,
    theme_indicators,
)

logger = logging.getLogger(__name__)

#: Days of history a customer base needs before the first training date.
MIN_HISTORY_DAYS = 90


class TrainingError(ValueError):
    """The data cannot support training (too short, no labels...); the message says why."""


@dataclass(frozen=True)
class TrainingDates:
    train: tuple[pd.Timestamp, ...]
    test: pd.Timestamp
    horizon_days: int


@dataclass
class TextModels:
    sentiment: Any
    themes: Any
    theme_ids: list[str]
    metrics: dict[str, float]
    baseline_metrics: dict[str, float]
    feedback_scores: pd.DataFrame
    figures: dict[str, Any] = field(default_factory=dict)
    n_train: int = 0
    n_test: int = 0
    train_until: pd.Timestamp | None = None
    evaluation_id: str = ""


@dataclass
class ChurnModels:
    model: ChurnClassifier
    baseline: Any
    feature_columns: list[str]
    metrics: dict[str, float]
    baseline_metrics: dict[str, float]
    test_predictions: pd.DataFrame
    figures: dict[str, Any] = field(default_factory=dict)
    n_train: int = 0


@dataclass
class TrainingResult:
    dates: TrainingDates
    text: TextModels
    churn: ChurnModels
    evaluation_id: str


def observed_until(world: World) -> pd.Timestamp:
    """The latest moment the data describes (the newest event, ticket, feedback or signup)."""
    stamps = [
        world.events["occurred_at"].max(),
        world.tickets["opened_at"].max(),
        world.feedback["created_at"].max(),
        world.customers["signup_at"].max(),
    ]
    stamps = [s for s in stamps if pd.notna(s)]
    if not stamps:
        raise TrainingError("the data has no dated rows")
    return max(stamps)


def observed_since(world: World) -> pd.Timestamp:
    stamps = [world.events["occurred_at"].min(), world.tickets["opened_at"].min()]
    stamps = [s for s in stamps if pd.notna(s)]
    return min(stamps) if stamps else world.customers["signup_at"].min()


def choose_training_dates(
    world: World, feature_config: FeatureConfig, churn_config: ChurnModelConfig
) -> TrainingDates:
    """Pick the evaluation date and the training dates before it (see the module docstring)."""
    horizon = pd.Timedelta(days=feature_config.horizon_days)
    end = observed_until(world).normalize()
    if churn_config.test_as_of is not None:
        test = pd.Timestamp(churn_config.test_as_of)
        if test + horizon > end:
            raise TrainingError(
                f"churn.test_as_of {test.date()} + {feature_config.horizon_days} days is after the "
                f"data ends ({end.date()}): its churn labels are not observed yet"
            )
    else:
        test = end - horizon
    earliest = observed_since(world).normalize() + pd.Timedelta(days=MIN_HISTORY_DAYS)
    last_train = test - horizon
    step = pd.Timedelta(days=churn_config.train_every_days)
    train = [last_train - k * step for k in range(churn_config.train_periods)]
    train = sorted(d for d in train if d >= earliest)
    if not train:
        raise TrainingError(
            f"not enough history: the data spans {observed_since(world).date()} to {end.date()}, "
            f"but training needs {MIN_HISTORY_DAYS} days of history plus two "
            f"{feature_config.horizon_days}-day label windows"
        )
    return TrainingDates(train=tuple(train), test=test, horizon_days=feature_config.horizon_days)


def train_text_models(
    feedback: pd.DataFrame, theme_ids: list[str], config: TextModelConfig
) -> TextModels:
    """Fit sentiment and theme models on earlier labelled feedback; evaluate on the later part.

    Only rows with both labels (``sentiment`` and ``themes``) are used to fit and evaluate.
    """
    labelled = feedback.loc[feedback["sentiment"].notna() & feedback["themes"].notna()]
    if len(labelled) < 20:
        raise TrainingError(
            f"only {len(labelled)} feedback rows carry both sentiment and themes labels; "
            "the text models need at least 20"
        )
    labelled = labelled.sort_values(["created_at", "feedback_id"], kind="stable")
    n_test = max(1, round(len(labelled) * config.test_fraction))
    fit_rows, test_rows = labelled.iloc[:-n_test], labelled.iloc[-n_test:]
    logger.info("text models: %d feedback rows to fit, %d later rows to evaluate", len(fit_rows), len(test_rows))

    sentiment = make_sentiment_model(config).fit(_texts(fit_rows), fit_rows["sentiment"].to_numpy())
    Y_fit = theme_indicators(fit_rows["themes"], theme_ids)
    themes = make_theme_model(config).fit(_texts(fit_rows), Y_fit)

    test_texts = _texts(test_rows)
    Y_test = theme_indicators(test_rows["themes"], theme_ids)
    Y_pred = np.asarray(themes.predict_proba(test_texts)) >= config.theme_threshold
    sentiment_pred = sentiment.predict(test_texts)
    metrics = {
        **_prefixed("sentiment_", evaluation.sentiment_metrics(test_rows["sentiment"], sentiment_pred)),
        **_prefixed("themes_", evaluation.theme_metrics(Y_test, Y_pred.astype(int), theme_ids)),
    }
    baseline_metrics = _majority_text_baseline(fit_rows, test_rows, Y_fit, Y_test, theme_ids)

    oof = out_of_fold_feedback_scores(fit_rows, config, theme_ids, config.oof_folds)
    unseen = feedback.loc[~feedback["feedback_id"].isin(fit_rows["feedback_id"])]
    scores = pd.concat(
        [oof, score_feedback(unseen, sentiment, themes, theme_ids)], ignore_index=True
    )
    figures = evaluation.text_figures(
        test_rows["sentiment"].to_numpy(), sentiment_pred, Y_test, Y_pred.astype(int), theme_ids
    )
    return TextModels(
        sentiment=sentiment,
        themes=themes,
        theme_ids=list(theme_ids),
        metrics=metrics,
        baseline_metrics=baseline_metrics,
        feedback_scores=scores,
        figures=figures,
        n_train=len(fit_rows),
        n_test=len(test_rows),
        train_until=fit_rows["created_at"].max(),
        evaluation_id=_fingerprint(np.sort(test_rows["feedback_id"].astype(str).to_numpy())),
    )


def build_training_table(
    world: World,
    dates: TrainingDates,
    feedback_scores: pd.DataFrame | None,
    theme_ids: list[str],
    feature_config: FeatureConfig,
    show_progress: bool = False,
) -> pd.DataFrame:
    """Point-in-time features and churn labels for every training date and the evaluation date."""
    return features.build_training_table(
        world,
        [*dates.train, dates.test],
        feedback_scores,
        theme_ids,
        windows_days=feature_config.windows_days,
        horizon_days=dates.horizon_days,
        show_progress=show_progress,
    )


def train_churn_models(
    table: pd.DataFrame, dates: TrainingDates, config: ChurnModelConfig
) -> ChurnModels:
    """Fit the churn model and the logistic baseline on the training dates; evaluate both later."""
    columns = features.feature_columns(table)
    fit_rows = table.loc[table["as_of"].isin(dates.train)]
    test_rows = table.loc[table["as_of"] == dates.test]
    if fit_rows["churned"].nunique() < 2 or test_rows["churned"].nunique() < 2:
        raise TrainingError(
            "churn labels need both churners and non-churners in the training and evaluation "
            f"dates (training churn rate {fit_rows['churned'].mean():.3f}, "
            f"evaluation {test_rows['churned'].mean():.3f})"
        )
    logger.info(
        "churn model: %d rows on %d training dates, %d customers on %s to evaluate",
        len(fit_rows), len(dates.train), len(test_rows), dates.test.date(),
    )
    model = ChurnClassifier(
        n_estimators=config.n_estimators,
        learning_rate=config.learning_rate,
        num_leaves=config.num_leaves,
        min_child_samples=config.min_child_samples,
        calibration=config.calibration,
        n_jobs=config.n_jobs,
    ).fit(fit_rows[columns], fit_rows["churned"].to_numpy(), groups=fit_rows["customer_id"].to_numpy())
    baseline = make_logistic_baseline().fit(fit_rows[columns], fit_rows["churned"].to_numpy())

    y_test = test_rows["churned"].to_numpy()
    p_model = model.predict_proba(test_rows[columns])[:, 1]
    p_baseline = baseline.predict_proba(test_rows[columns])[:, 1]
    predictions = pd.DataFrame(
        {
            "customer_id": test_rows["customer_id"].to_numpy(),
            "churned": y_test,
            "churn_probability": p_model,
            "baseline_probability": p_baseline,
        }
    )
    figures = evaluation.churn_figures(
        y_test, {"gradient boosting": p_model, "logistic baseline": p_baseline}
    )
    return ChurnModels(
        model=model,
        baseline=baseline,
        feature_columns=columns,
        metrics=evaluation.churn_metrics(y_test, p_model),
        baseline_metrics=evaluation.churn_metrics(y_test, p_baseline),
        test_predictions=predictions,
        figures=figures,
        n_train=len(fit_rows),
    )


def evaluation_fingerprint(world: World, dates: TrainingDates) -> str:
    """An id for "the same evaluation data": the customers, the evaluation date and horizon."""
    digest = hashlib.sha256()
    ids = pd.util.hash_pandas_object(world.customers["customer_id"], index=False).to_numpy()
    digest.update(np.sort(ids).tobytes())
    for table in (world.events, world.tickets, world.feedback):
        digest.update(str(len(table)).encode())
    digest.update(f"{dates.test.isoformat()}|{dates.horizon_days}".encode())
    return digest.hexdigest()[:16]


def train(
    world: World,
    theme_ids: list[str],
    feature_config: FeatureConfig,
    text_config: TextModelConfig,
    churn_config: ChurnModelConfig,
    show_progress: bool = False,
) -> TrainingResult:
    """Run the training phases on a validated world (no tracking; see ``retain.tracking``)."""
    dates = choose_training_dates(world, feature_config, churn_config)
    logger.info(
        "training dates %s .. %s (%d), evaluation as_of %s, horizon %d days",
        dates.train[0].date(), dates.train[-1].date(), len(dates.train), dates.test.date(), dates.horizon_days,
    )
    text = train_text_models(world.feedback, theme_ids, text_config)
    table = build_training_table(world, dates, text.feedback_scores, theme_ids, feature_config, show_progress)
    churn = train_churn_models(table, dates, churn_config)
    return TrainingResult(dates=dates, text=text, churn=churn, evaluation_id=evaluation_fingerprint(world, dates))


def _fingerprint(ids: np.ndarray) -> str:
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16]


def _texts(rows: pd.DataFrame) -> list[str]:
    return rows["text"].fillna("").astype(str).tolist()


def _prefixed(prefix: str, metrics: dict[str, float]) -> dict[str, float]:
    return {f"{prefix}{k}": float(v) for k, v in metrics.items()}


def _majority_text_baseline(
    fit_rows: pd.DataFrame,
    test_rows: pd.DataFrame,
    Y_fit: np.ndarray,
    Y_test: np.ndarray,
    theme_ids: list[str],
) -> dict[str, float]:
    """The majority-class baseline: the most common sentiment; each theme's majority value."""
    majority = fit_rows["sentiment"].mode().iloc[0]
    predicted = np.full(len(test_rows), majority, dtype=object)
    theme_majority = (Y_fit.mean(axis=0) > 0.5).astype(int)
    Y_majority = np.tile(theme_majority, (len(test_rows), 1))
    return {
        **_prefixed("sentiment_", evaluation.sentiment_metrics(test_rows["sentiment"], predicted)),
        **_prefixed("themes_", evaluation.theme_metrics(Y_test, Y_majority, theme_ids)),
    }
