"""MLflow tracking: runs, model logging, the model registry and the champion alias.

This is the only module that talks to MLflow. ``mlflow`` is imported inside the functions that
need it, so ``import retain.tracking`` stays fast and works without touching a tracking store.

Where things go
---------------
The store is ``TrackingConfig.tracking_uri``: by default a local SQLite file
``sqlite:///mlflow.db`` (relative to the working directory), or ``$MLFLOW_TRACKING_URI`` when it
is set, or any URI given in the job's YAML. When the experiment does not exist yet it is created;
for a SQLite store its artifacts are put in ``mlartifacts/<experiment>`` next to the database
file (not in the working directory), so a store in a temporary directory keeps everything there.
Other stores (a tracking server, PostgreSQL) keep their own artifact root.

Every job opens the store first (:func:`open_store`): the URI's scheme and, for SQLite, its
directory are checked (a typo does not start a new empty store); a new SQLite file is created
0600 and migrated while ``<database>.lock`` is held, so concurrent first runs do not race; a
damaged store or missing model files raise :class:`StoreError` naming what to restore.

Public API
----------
Runs::

    with tracked_run(tracking, "churn", tags={"as_of": "2025-06-30"}) as run:
        run.log_params(config.churn)                    # nested dicts / pydantic models flattened
        run.log_metrics({"roc_auc": 0.81, "lift_at_10": 3.2})   # NaN / inf skipped with a warning
        run.log_figures({"calibration": fig})          # plots/calibration.png; figure closed
        run.log_frame(importances, "importances")      # tables/importances.parquet
        run.set_tags({"n_customers": "5000"})
        tag_text_models(run, {tracking.sentiment_model: "3", tracking.theme_model: "2"})
        model_uri = run.log_model(model, "churn", input_example=X.head(5),
                                  extra_requirements=("lightgbm", "retain"))

Registry and champion::

    version = register_model(tracking, model_uri, tracking.churn_model)
    decision = promote_if_better(
        tracking, tracking.churn_model, version, metric="roc_auc", value=0.81,
        baseline_value=0.74, evaluation_id="test-2025-06-30-abc123",
    )
    model, version = load_champion(tracking, tracking.churn_model)   # native sklearn object

Reading back: ``champion_version``, ``model_version_tags``, ``text_models_used``.

Champion rule
-------------
A new version becomes champion (alias ``TrackingConfig.champion_alias``) only when its metric
strictly beats its baseline *and* strictly beats the current champion, if that champion was
evaluated on the same evaluation data (same ``evaluation_id``). A champion evaluated on other
data cannot be compared and does not block; the decision's reason says so. The metric, baseline,
evaluation id and the decision (``promotion.promoted``, ``promotion.reason``) are stored as tags
on the model version, so later decisions and people can see why.

No model is ever unpickled
--------------------------
Models are logged with the sklearn flavour and an explicit ``pip_requirements`` list (MLflow's
own inference of the requirements takes seconds per model), always in the ``skops`` format:
skops writes a model's state as data and, loading it, builds only the types skops trusts
(scikit-learn's, NumPy's, SciPy's) and those listed in :data:`SKOPS_TRUSTED_TYPES` (the churn
model: LightGBM and retain's own estimators; retain's functions in the TF-IDF Pipelines). A
model skops cannot store with those types is a ``TypeError`` naming the others, never a pickle.

The ``retain text`` model is a pyfunc logged from code (``retain/text_pyfunc.py``, no
``python_model.pkl``) whose one artifact, ``text_model.skops``, is the text bundle stored with
skops and :data:`TEXT_SKOPS_TRUSTED_TYPES`; a transformer's tokenizer, config and weights are
plain data inside it (file bytes, JSON, safetensors).

The sha256 of every file of a model is also recorded when it is logged (a tag on the logged
model, copied to each registered version, :data:`ARTIFACT_HASHES_TAG`) and every load copies
the files out of the store, checks them and only then reads that copy: a changed, added or
missing file, or a model without recorded hashes, raises :class:`ModelIntegrityError` and
nothing of it is read. A model stored as a pickle by an older retain (``model.pkl``,
``python_model.pkl``, ``text_model.pkl``) is refused with :class:`UnsafeModelFormatError`: retrain it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import math
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from importlib import metadata
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure
    from mlflow import MlflowClient

    from retain.config import TrackingConfig

__all__ = [
    "ARTIFACT_HASHES_TAG",
    "BASE_REQUIREMENTS",
    "SKOPS_TRUSTED_TYPES",
    "TEXT_SKOPS_TRUSTED_TYPES",
    "LoadedTextModel",
    "ModelIntegrityError",
    "NoChampionError",
    "PromotionDecision",
    "StoreError",
    "TrackedRun",
    "UnsafeModelFormatError",
    "artifact_hashes",
    "champion_version",
    "crown_without_evidence",
    "evaluation_predictions",
    "flatten_params",
    "load_champion",
    "load_text_bundle",
    "load_text_model",
    "log_model",
    "log_text_model",
    "model_version_tags",
    "open_store",
    "pinned_requirements",
    "promote_if_better",
    "register_model",
    "run_tags",
    "tag_text_models",
    "text_model_uri",
    "text_models_used",
    "tracked_run",
]

logger = logging.getLogger(__name__)

#: Packages every logged sklearn model needs to load back (pinned to the installed versions).
BASE_REQUIREMENTS: tuple[str, ...] = ("scikit-learn", "skops", "numpy", "pandas")

# Tag keys. Model-version tags carry the champion decision; run tags the text models used.
METRIC_TAG = "metric.{metric}"
BASELINE_TAG = "baseline.{metric}"
EVALUATION_TAG = "evaluation_id"
PROMOTED_TAG = "promotion.promoted"
REASON_TAG = "promotion.reason"
PREVIOUS_CHAMPION_TAG = "promotion.previous_champion"
TEXT_MODEL_TAG_PREFIX = "text_model."

# MLflow limits a parameter value to 6000 characters.
_MAX_PARAM_LENGTH = 6000
#: Characters MLflow refuses in metric, parameter and tag names (it allows letters, digits,
#: ``_ - . : /`` and spaces); a theme id such as ``reverted_card_payment?`` ends up in names.
_NOT_IN_MLFLOW_NAMES = re.compile(r"[^\w\-. :/]", flags=re.ASCII)


def mlflow_name(name: str) -> str:
    """``name`` with every character MLflow refuses in metric, parameter and tag names as ``_``.

    Examples
    --------
    >>> mlflow_name("themes_f1_reverted_card_payment?")
    'themes_f1_reverted_card_payment_'
    >>> mlflow_name("themes_f1_anecdotes/miscellaneous")
    'themes_f1_anecdotes/miscellaneous'
    """
    return _NOT_IN_MLFLOW_NAMES.sub("_", name)


class NoChampionError(LookupError):
    """There is no champion version of a registered model (nothing trained and promoted yet)."""


@dataclass(frozen=True)
class PromotionDecision:
    """Whether a model version became the champion, and why.

    Attributes
    ----------
    promoted
        True when the version now holds the champion alias.
    reason
        One sentence a person can read, naming the metric values compared.
    previous_champion
        The version that held the alias before the decision, or None if there was none.
    """

    promoted: bool
    reason: str
    previous_champion: str | None


@dataclass(frozen=True)
class TrackedRun:
    """Handle of an active MLflow run, yielded by :func:`tracked_run`.

    Attributes
    ----------
    run_id
        The MLflow run id.
    experiment_id
        The id of the experiment the run belongs to.
    tracking
        The tracking settings the run was started with.
    """

    run_id: str
    experiment_id: str
    tracking: TrackingConfig

    def log_params(self, params: Mapping[str, Any] | BaseModel, prefix: str = "") -> None:
        """Log parameters, flattening nested mappings and pydantic models into dotted keys.

        Parameters
        ----------
        params
            A mapping (values may be nested mappings, pydantic models, lists) or a pydantic model.
        prefix
            Put before every key, e.g. ``"churn"`` gives ``churn.n_estimators``.
        """
        from mlflow.entities import Param

        flat = flatten_params(params, prefix)
        for key, value in flat.items():
            if len(value) > _MAX_PARAM_LENGTH:
                logger.warning(
                    "parameter %s is %d characters long; truncated to %d",
                    key,
                    len(value),
                    _MAX_PARAM_LENGTH,
                )
                flat[key] = value[:_MAX_PARAM_LENGTH]
        _client(self.tracking).log_batch(
            self.run_id, params=[Param(mlflow_name(k), v) for k, v in flat.items()]
        )

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Log metric values; NaN and infinite values are skipped with a warning.

        Parameters
        ----------
        metrics
            Metric name to value (Python or NumPy numbers).
        step
            Optional step, for metrics recorded more than once in a run.
        """
        import time

        from mlflow.entities import Metric

        timestamp = int(time.time() * 1000)
        finite: list[Metric] = []
        skipped: list[str] = []
        for name, value in metrics.items():
            number = float(value)
            if math.isfinite(number):
                finite.append(Metric(mlflow_name(name), number, timestamp, step or 0))
            else:
                skipped.append(f"{name}={number}")
        if skipped:
            logger.warning("metrics not logged (not finite): %s", ", ".join(skipped))
        if finite:
            _client(self.tracking).log_batch(self.run_id, metrics=finite)

    def log_figures(self, figures: Mapping[str, Figure]) -> None:
        """Save matplotlib figures as ``plots/<name>.png`` artifacts and close them.

        Parameters
        ----------
        figures
            Artifact name (without ``.png``) to figure. Every figure is closed afterwards, also
            when logging fails, so a training job does not accumulate open figures.
        """
        import matplotlib.pyplot as plt

        try:
            with tempfile.TemporaryDirectory(prefix="retain-plots-") as tmp:
                for name, figure in figures.items():
                    figure.savefig(Path(tmp) / f"{name}.png", dpi=110, bbox_inches="tight")
                _client(self.tracking).log_artifacts(self.run_id, tmp, artifact_path="plots")
        finally:
            for figure in figures.values():
                plt.close(figure)

    def log_frame(
        self, frame: pd.DataFrame, name: str, fmt: Literal["parquet", "csv"] = "parquet"
    ) -> str:
        """Save a DataFrame as a ``tables/<name>.<fmt>`` artifact.

        The index is written only when it carries information (is not a plain RangeIndex).

        Parameters
        ----------
        frame
            The table to save; it is not modified.
        name
            Artifact file name without extension.
        fmt
            ``"parquet"`` (keeps dtypes, including categories) or ``"csv"`` (readable anywhere).

        Returns
        -------
        str
            The artifact path inside the run, e.g. ``tables/importances.parquet``.
        """
        import pandas as pd

        keep_index = not isinstance(frame.index, pd.RangeIndex)
        with tempfile.TemporaryDirectory(prefix="retain-table-") as tmp:
            path = Path(tmp) / f"{name}.{fmt}"
            if fmt == "parquet":
                frame.to_parquet(path, index=keep_index)
            elif fmt == "csv":
                frame.to_csv(path, index=keep_index)
            else:
                raise ValueError(f"fmt must be 'parquet' or 'csv', got {fmt!r}")
            _client(self.tracking).log_artifact(self.run_id, str(path), artifact_path="tables")
        return f"tables/{path.name}"

    def log_html(self, html: str, name: str) -> str:
        """Save an HTML page (e.g. :func:`retain.text.report.text_report`'s) as an artifact.

        Parameters
        ----------
        html
            The page, self-contained (figures embedded), so it opens from the MLflow UI.
        name
            File name without extension.

        Returns
        -------
        str
            The artifact path inside the run, ``reports/<name>.html``.
        """
        path = f"reports/{name}.html"
        _client(self.tracking).log_text(self.run_id, html, path)
        return path

    def log_dict(self, payload: Mapping[str, Any], name: str) -> None:
        """Save a JSON-able mapping as an artifact ``name`` (e.g. ``audit.json``).

        Non-finite numbers are written as ``null``: JSON has no NaN or Infinity.
        """
        from retain.data import json_safe

        _client(self.tracking).log_dict(self.run_id, json_safe(dict(payload)), name)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set run tags (values are converted to strings)."""
        from mlflow.entities import RunTag

        _client(self.tracking).log_batch(
            self.run_id, tags=[RunTag(mlflow_name(k), str(v)) for k, v in tags.items()]
        )

    def log_model(
        self,
        model: Any,
        name: str,
        input_example: Any = None,
        *,
        extra_requirements: Sequence[str] = (),
        pip_requirements: Sequence[str] | None = None,
    ) -> str:
        """Log a fitted sklearn-contract model in this run; see :func:`log_model`."""
        return log_model(
            self,
            model,
            name,
            input_example,
            extra_requirements=extra_requirements,
            pip_requirements=pip_requirements,
        )


@contextlib.contextmanager
def tracked_run(
    tracking: TrackingConfig,
    run_name: str,
    tags: Mapping[str, Any] | None = None,
    *,
    nested: bool = False,
) -> Iterator[TrackedRun]:
    """Start an MLflow run in the configured store and experiment.

    Sets the tracking URI, creates the experiment if it is missing and starts a run; the run is
    ended when the block exits, with status FAILED if the block raised.

    Parameters
    ----------
    tracking
        Store URI and experiment name.
    run_name
        Name shown in the MLflow UI, e.g. ``"sentiment"`` or ``"churn"``.
    tags
        Run tags (values are converted to strings). ``retain.version`` is added.
    nested
        Start the run as a child of the currently active run.

    Yields
    ------
    TrackedRun
        Handle to log parameters, metrics, figures, tables and models.
    """
    import mlflow

    experiment_id = _use_experiment(tracking)
    run_tags = {"retain.version": _installed_version("retain") or "unknown"}
    run_tags.update({k: str(v) for k, v in (tags or {}).items()})
    with mlflow.start_run(
        experiment_id=experiment_id, run_name=run_name, tags=run_tags, nested=nested
    ) as run:
        logger.info(
            "MLflow run %s (%s) in experiment %r", run_name, run.info.run_id, tracking.experiment
        )
        yield TrackedRun(run_id=run.info.run_id, experiment_id=experiment_id, tracking=tracking)


def log_score_run(
    tracking: TrackingConfig,
    summary: Mapping[str, Any],
    stages: Sequence[Mapping[str, Any]],
    seconds: float,
    texts: Mapping[str, float] | None = None,
) -> str:
    """Log a scoring run to MLflow as a run named ``score``: what was scored and what each stage cost.

    Parameters: the scoring date and model versions. Metrics: customers scored and listed,
    value at risk, explained customers, texts scored and taken from the cache, and per stage
    ``stage_<name>_seconds`` and ``stage_<name>_peak_rss_mb``, with ``seconds`` and
    ``peak_rss_mb`` for the whole run. The summary and the stage table are logged as JSON.
    Returns the MLflow run id.
    """
    metrics: dict[str, float] = {
        "seconds": seconds,
        "customers_scored": summary.get("customers_scored", 0),
        "value_at_risk_total": summary.get("value_at_risk_total", 0.0),
    }
    if summary.get("reasons"):
        metrics["customers_explained"] = summary["reasons"]["explained"]
    for name, count in (texts or {}).items():
        metrics[f"texts_{name}"] = count
    for s in stages:
        key = re.sub(r"[^a-z0-9]+", "_", str(s["stage"]).lower()).strip("_")
        metrics[f"stage_{key}_seconds"] = s["seconds"]
        metrics[f"stage_{key}_peak_rss_mb"] = s["peak_rss_mb"]
    if stages:
        metrics["peak_rss_mb"] = max(s["peak_rss_mb"] for s in stages)
    metrics.update(_monitoring_metrics(summary.get("monitoring") or {}))
    with tracked_run(tracking, "score", tags={"retain.job": "score", "as_of": summary.get("as_of")}) as run:
        run.log_params({"as_of": summary.get("as_of"), **{f"model.{k}": v for k, v in (summary.get("model_versions") or {}).items()}})
        run.log_metrics(metrics)
        run.log_dict({"summary": summary, "stages": list(stages), "texts": dict(texts or {})}, "score_run.json")
        return run.run_id


def _monitoring_metrics(section: Mapping[str, Any]) -> dict[str, float]:
    """A scoring run's monitoring figures as MLflow metrics (``monitoring_*``; realised per earlier date)."""
    if not section:
        return {}
    metrics: dict[str, float] = {"monitoring_breaches": len(section.get("breaches", []))}
    for key in ("estimated_roc_auc", "score_psi"):
        if section.get(key) is not None:
            metrics[f"monitoring_{key}"] = section[key]
    psi = [f["psi"] for f in section.get("features", []) if f.get("psi") is not None]
    if psi:
        metrics["monitoring_feature_psi_max"] = max(psi)
    for earlier in section.get("realised", []):
        day = str(earlier["as_of"]).replace("-", "")
        for key in ("roc_auc", "estimated_roc_auc"):
            if earlier.get(key) is not None:
                metrics[f"realised_{day}_{key}"] = earlier[key]
    return metrics


def log_report_run(
    tracking: TrackingConfig, page: str, tables: Mapping[str, pd.DataFrame], facts: Mapping[str, Any]
) -> str:
    """Log ``retain report`` to MLflow as a run named ``report``: the page and the tables behind it.

    The page is ``reports/report.html`` (self-contained, so it opens from the MLflow UI); each
    table is ``tables/<name>.csv``; ``facts`` (what the report covers) are parameters. Returns
    the run id.
    """
    with tracked_run(tracking, "report", tags={"retain.job": "report"}) as run:
        run.log_params({k: str(v)[:500] for k, v in facts.items()})
        run.log_html(page, "report")
        for name, table in tables.items():
            run.log_frame(table, name, fmt="csv")
        return run.run_id


def log_model(
    run: TrackedRun,
    model: Any,
    name: str,
    input_example: Any = None,
    *,
    extra_requirements: Sequence[str] = (),
    pip_requirements: Sequence[str] | None = None,
) -> str:
    """Log a fitted sklearn-contract model with the sklearn flavour, in the skops format.

    The model must be storable by skops with only the types skops trusts and
    :data:`SKOPS_TRUSTED_TYPES`, so it loads without running code from the file; it is never
    pickled. The hashes of its files are recorded too (see :func:`load_version`).

    Parameters
    ----------
    run
        The run to log into; it must be the active run (inside its :func:`tracked_run` block).
    model
        A fitted scikit-learn estimator or Pipeline, or any class following that contract.
    name
        Name of the logged model inside the run, e.g. ``"sentiment"``.
    input_example
        A few rows of real input (a list/Series of strings for text models, a DataFrame for the
        churn model). Used only to infer the signature; the example itself is not stored. When
        the inferred signature cannot be checked against the example (e.g. pandas ``category``
        columns), the model is logged without a signature and a warning says why.
    extra_requirements
        Packages the model needs beyond :data:`BASE_REQUIREMENTS`, e.g. ``("lightgbm",
        "retain")`` for the churn model. Bare names are pinned to the installed version.
    pip_requirements
        The complete requirement list, replacing the default one.

    Returns
    -------
    str
        The model URI (``models:/<model_id>``) to pass to :func:`register_model`.

    Raises
    ------
    TypeError
        When skops cannot store the model, or only with types outside the trusted ones (named).
    """
    import mlflow
    import mlflow.sklearn

    active = mlflow.active_run()
    if active is None or active.info.run_id != run.run_id:
        raise RuntimeError(
            f"log_model needs run {run.run_id} to be active: call it inside its tracked_run block"
        )
    requirements = (
        list(pip_requirements)
        if pip_requirements is not None
        else pinned_requirements(*BASE_REQUIREMENTS, *extra_requirements)
    )
    signature = _infer_signature(model, input_example, name) if input_example is not None else None
    _check_skops_storable(model, SKOPS_TRUSTED_TYPES, name)
    info = mlflow.sklearn.log_model(
        model,
        name=name,
        serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS,
        skops_trusted_types=list(SKOPS_TRUSTED_TYPES),
        pip_requirements=requirements,
        # False, not None: None would make MLflow try to infer one again.
        signature=signature if signature is not None else False,
    )
    _record_hashes(run.tracking, info.model_id)
    logger.info("logged model %r as %s", name, info.model_uri)
    return info.model_uri


def register_model(
    tracking: TrackingConfig,
    model_uri: str,
    name: str,
    tags: Mapping[str, Any] | None = None,
) -> str:
    """Register a logged model as a new version of the registered model ``name``.

    Parameters
    ----------
    tracking
        The store holding the registry.
    model_uri
        URI returned by :func:`log_model`.
    name
        Registered model name, e.g. ``tracking.churn_model``; created if missing.
    tags
        Optional model-version tags. The sha256 of every file of the model, recorded when it
        was logged, is added as :data:`ARTIFACT_HASHES_TAG`; loading checks the files against it.

    Returns
    -------
    str
        The new version number, as a string ("1", "2", ...).
    """
    import mlflow

    _use_store(tracking)
    version_tags = {mlflow_name(k): str(v) for k, v in (tags or {}).items()}
    version_tags[ARTIFACT_HASHES_TAG] = _hashes_at_logging(tracking, model_uri)
    # mlflow.register_model prints two status lines straight to stderr; keep them for DEBUG.
    # Errors are raised as exceptions and MLflow's own warnings go through logging, so neither
    # is hidden.
    captured = io.StringIO()
    with contextlib.redirect_stderr(captured):
        version = mlflow.register_model(model_uri, name, tags=version_tags)
    if captured.getvalue().strip():
        logger.debug("mlflow: %s", captured.getvalue().strip())
    logger.info("registered %s as %s version %s", model_uri, name, version.version)
    return str(version.version)


def promote_if_better(
    tracking: TrackingConfig,
    name: str,
    version: str | int,
    metric: str,
    value: float,
    baseline_value: float,
    higher_is_better: bool = True,
    *,
    evaluation_id: str,
    baseline_detail: str | None = None,
    champion_paired: Callable[[str], tuple[bool, str] | None] | None = None,
) -> PromotionDecision:
    """Make ``version`` the champion if it beats its baseline and the comparable champion.

    The version must strictly beat ``baseline_value``, and, when the current champion was
    evaluated on the same data (its ``evaluation_id`` tag equals ``evaluation_id`` and it has a
    ``metric.<metric>`` tag), strictly beat the champion's value too. A champion evaluated on
    different data does not block; the reason says it was not compared. A NaN or infinite value
    or baseline never promotes.

    The metric, baseline and evaluation id are stored as tags of the version before the alias
    moves; the decision (``promotion.promoted``, ``promotion.reason``) after.

    Parameters
    ----------
    tracking
        Store and champion alias name.
    name
        Registered model name.
    version
        The candidate version.
    metric
        Metric name, e.g. ``"roc_auc"``.
    value
        The candidate's metric on the evaluation data.
    baseline_value
        The baseline's metric on the same data (e.g. logistic regression for churn, a majority
        class predictor for text).
    higher_is_better
        False for losses (log loss, Brier score).
    evaluation_id
        Identifies the evaluation data (e.g. test as_of date plus a hash of the test ids).
    baseline_detail
        How the candidate compares with the baseline beyond the point estimate (e.g. a paired
        bootstrap interval), added to the reason. The first champion needs only to beat the
        baseline's figure: something has to score customers.
    champion_paired
        Given the champion's version (evaluated on the same ``evaluation_id``), a paired test
        ``(candidate is better, how)``, or None when it cannot be paired (then the recorded
        metrics are compared). Replacing a champion takes a paired win: a difference within the
        noise of the evaluation keeps the incumbent.

    Returns
    -------
    PromotionDecision
        Whether the alias moved, why, and which version held it before.
    """
    client = _client(tracking)
    version = str(version)
    alias = tracking.champion_alias
    previous = champion_version(tracking, name)
    if previous == version:
        return PromotionDecision(False, f"version {version} is already the {alias}", previous)

    evaluation_tags = {
        METRIC_TAG.format(metric=metric): repr(float(value)),
        BASELINE_TAG.format(metric=metric): repr(float(baseline_value)),
        EVALUATION_TAG: evaluation_id,
    }
    for key, tag_value in evaluation_tags.items():
        client.set_model_version_tag(name, version, key, tag_value)

    promoted, reason = _decide(
        tracking,
        name,
        previous,
        metric,
        float(value),
        float(baseline_value),
        higher_is_better,
        evaluation_id,
        baseline_detail,
        champion_paired,
    )
    if promoted:
        client.set_registered_model_alias(name, alias, version)
    client.set_model_version_tag(name, version, PROMOTED_TAG, "true" if promoted else "false")
    client.set_model_version_tag(name, version, REASON_TAG, reason)
    if previous is not None:
        client.set_model_version_tag(name, version, PREVIOUS_CHAMPION_TAG, previous)
    logger.info(
        "%s version %s %s: %s",
        name,
        version,
        f"is now the {alias}" if promoted else "not promoted",
        reason,
    )
    return PromotionDecision(promoted, reason, previous)


def crown_without_evidence(
    tracking: TrackingConfig, name: str, version: str | int, what: str
) -> PromotionDecision:
    """Make ``version`` the champion only if there is none, for a model with nothing to compare.

    A model trained without labels (zero-label text models) has no validation metric: it is
    made champion when the registry has no champion (something has to score), and never
    replaces one. The decision is tagged on the version as :func:`promote_if_better` does.

    Parameters
    ----------
    what
        Why there is no evidence, for the reason, e.g. "zero-label model, no labels".
    """
    client = _client(tracking)
    version = str(version)
    previous = champion_version(tracking, name)
    promoted = previous is None
    if promoted:
        client.set_registered_model_alias(name, tracking.champion_alias, version)
        reason = f"{what}: nothing to compare; there was no {tracking.champion_alias}"
    else:
        reason = (
            f"{what}: nothing to compare, so {tracking.champion_alias} version {previous} stays"
        )
        client.set_model_version_tag(name, version, PREVIOUS_CHAMPION_TAG, previous)
    client.set_model_version_tag(name, version, PROMOTED_TAG, "true" if promoted else "false")
    client.set_model_version_tag(name, version, REASON_TAG, reason)
    logger.info("%s version %s: %s", name, version, reason)
    return PromotionDecision(promoted, reason, previous)


def evaluation_predictions(
    tracking: TrackingConfig, name: str, version: str | int, artifact: str = "tables/evaluation_predictions.parquet"
) -> pd.DataFrame | None:
    """The evaluation predictions logged on the run of a model version, or None if absent."""
    import pandas as pd

    client = _client(tracking)
    run_id = client.get_model_version(name, str(version)).run_id
    if not run_id:
        return None
    with tempfile.TemporaryDirectory(prefix="retain-eval-") as tmp, _quiet_artifact_copies():
        try:
            path = client.download_artifacts(run_id, artifact, tmp)
        except Exception as exc:  # noqa: BLE001 - MLflow raises several kinds for a missing artifact
            logger.info("no %s on the run of %s version %s: %s", artifact, name, version, exc)
            return None
        return pd.read_parquet(path)


#: The monitoring reference on a churn model's run: its rows and what they are.
MONITORING_REFERENCE = "monitoring_reference"


def log_monitoring_reference(run: TrackedRun, rows: pd.DataFrame, about: Mapping[str, Any]) -> None:
    """Store the monitoring reference (``insight.monitoring.drift_reference``) on a churn model's run.

    ``rows`` become ``tables/monitoring_reference.parquet``, ``about`` (``as_of``, ``roc_auc``)
    ``monitoring_reference.json``; :func:`monitoring_reference` reads them back.
    """
    run.log_frame(rows, MONITORING_REFERENCE)
    run.log_dict(dict(about), f"{MONITORING_REFERENCE}.json")


def monitoring_reference(tracking: TrackingConfig, name: str, version: str | int) -> Any:
    """The monitoring reference saved with a model version (``insight.monitoring.DriftReference``).

    None when its run has none (a model registered before monitoring existed).
    """
    import pandas as pd

    from retain.insight.monitoring import DriftReference

    client = _client(tracking)
    run_id = client.get_model_version(name, str(version)).run_id
    if not run_id:
        return None
    with tempfile.TemporaryDirectory(prefix="retain-reference-") as tmp:
        try:
            rows = pd.read_parquet(client.download_artifacts(run_id, f"tables/{MONITORING_REFERENCE}.parquet", tmp))
            about = json.loads(Path(client.download_artifacts(run_id, f"{MONITORING_REFERENCE}.json", tmp)).read_text())
        except Exception as exc:  # noqa: BLE001 - MLflow raises several kinds for a missing artifact
            logger.info("no monitoring reference on the run of %s version %s: %s", name, version, exc)
            return None
    roc_auc = about.get("roc_auc")
    return DriftReference(rows=rows, as_of=about.get("as_of"), roc_auc=None if roc_auc is None else float(roc_auc))


def run_tags(tracking: TrackingConfig, name: str, version: str | int) -> dict[str, str]:
    """The tags of the run that logged a model version (empty if it has no run)."""
    client = _client(tracking)
    model_version = client.get_model_version(name, str(version))
    if not model_version.run_id:
        return {}
    return dict(client.get_run(model_version.run_id).data.tags)


def champion_version(tracking: TrackingConfig, name: str) -> str | None:
    """The version holding the champion alias, or None (no such model, or no champion yet)."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, ErrorCode

    try:
        registered = _client(tracking).get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
            return None
        raise
    version = registered.aliases.get(tracking.champion_alias)
    return None if version is None else str(version)


def load_champion(tracking: TrackingConfig, name: str) -> tuple[Any, str]:
    """Load the champion version of a registered model as its native sklearn object.

    The alias is resolved once and that version is loaded, so the returned version is the one
    loaded even if a training job moves the alias at the same moment.

    Parameters
    ----------
    tracking
        Store and champion alias name.
    name
        Registered model name, e.g. ``tracking.churn_model``.

    Returns
    -------
    tuple
        ``(model, version)``: the estimator exactly as logged (``predict_proba`` and custom
        methods work) and its version string.

    Raises
    ------
    NoChampionError
        When the model is not registered or has no champion yet.
    """
    _use_store(tracking)  # load_model resolves models:/ URIs against the global registry URI
    version = champion_version(tracking, name)
    if version is None:
        raise NoChampionError(
            f"no {tracking.champion_alias!r} version of model {name!r} in {tracking.tracking_uri}:"
            " run `retain train` first"
        )
    model = load_version(tracking, name, version)
    logger.info("loaded %s version %s (%s)", name, version, tracking.champion_alias)
    return model, version


def load_version(tracking: TrackingConfig, name: str, version: str | int) -> Any:
    """Load one version of a registered model as its native sklearn object.

    The model's files are copied from the store and checked against the sha256 recorded at
    registration before anything is read. The skops file is loaded trusting only the types
    skops trusts by default (scikit-learn's, NumPy's, SciPy's) and :data:`SKOPS_TRUSTED_TYPES`,
    not the list stored with the model.

    Raises
    ------
    UnsafeModelFormatError
        The model was stored as a pickle (by an older retain); it is not loaded.
    ModelIntegrityError
        A file was changed, added or removed since registration, or no hashes were recorded.
    StoreError
        The model's files cannot be read from the store.
    """
    import mlflow.sklearn
    from mlflow.models import Model

    _use_store(tracking)
    uri = f"models:/{name}/{version}"
    what = f"model {name} version {version}"
    with _verified_copy(tracking, uri, what) as local:
        try:
            flavor = Model.load(str(local / "MLmodel")).flavors.get("sklearn", {})
            if flavor.get("serialization_format") != mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS:
                raise UnsafeModelFormatError(_stored_as_pickle(what, "retain train -c <config>"))
            return _load_skops(local / flavor["pickled_model"], what, SKOPS_TRUSTED_TYPES)
        except (OSError, _mlflow_error()) as exc:
            raise _artifacts_missing(what, uri, exc) from exc


def model_version_tags(tracking: TrackingConfig, name: str, version: str | int) -> dict[str, str]:
    """All tags of one model version (metric, baseline, evaluation id, promotion decision...)."""
    return dict(_client(tracking).get_model_version(name, str(version)).tags)


def tag_text_models(run: TrackedRun, versions: Mapping[str, str | int]) -> None:
    """Record on a run which text model versions produced its feedback scores.

    Parameters
    ----------
    run
        Typically the churn run.
    versions
        Registered text model name to version, e.g.
        ``{tracking.sentiment_model: "3", tracking.theme_model: "2"}``; stored as run tags
        ``text_model.<name>``.
    """
    run.set_tags({f"{TEXT_MODEL_TAG_PREFIX}{model}": str(v) for model, v in versions.items()})


def text_models_used(tracking: TrackingConfig, name: str, version: str | int) -> dict[str, str]:
    """The text model versions recorded (by :func:`tag_text_models`) on a version's run.

    Returns
    -------
    dict
        Registered text model name to version; empty if the run recorded none.
    """
    client = _client(tracking)
    model_version = client.get_model_version(name, str(version))
    if not model_version.run_id:
        return {}
    tags = client.get_run(model_version.run_id).data.tags
    return {
        key.removeprefix(TEXT_MODEL_TAG_PREFIX): value
        for key, value in tags.items()
        if key.startswith(TEXT_MODEL_TAG_PREFIX)
    }


def flatten_params(params: Mapping[str, Any] | BaseModel, prefix: str = "") -> dict[str, str]:
    """Flatten nested parameters into ``{"a.b.c": "value"}`` strings for MLflow.

    Pydantic models are dumped in JSON mode (paths and dates become strings). Lists of plain
    values become one JSON string (``"[30, 90]"``); lists containing mappings are indexed
    (``tiers.0.name``).

    Parameters
    ----------
    params
        A mapping or a pydantic model.
    prefix
        Key prefix, joined with a dot.

    Returns
    -------
    dict
        Dotted key to string value.
    """
    if isinstance(params, BaseModel):
        params = params.model_dump(mode="json")
    flat: dict[str, str] = {}
    for key, value in params.items():
        full_key = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, BaseModel):
            value = value.model_dump(mode="json")
        if isinstance(value, Mapping):
            flat.update(flatten_params(value, full_key))
        elif isinstance(value, (list, tuple)) and any(
            isinstance(v, (Mapping, BaseModel)) for v in value
        ):
            flat.update(flatten_params({str(i): v for i, v in enumerate(value)}, full_key))
        elif isinstance(value, (list, tuple)):
            flat[full_key] = json.dumps([_plain(v) for v in value])
        else:
            flat[full_key] = str(_plain(value))
    return flat


def pinned_requirements(*packages: str) -> list[str]:
    """Pin bare package names to their installed versions (``"pandas"`` -> ``"pandas==3.1.1"``).

    Requirements that already carry a specifier, and packages that are not installed, are
    returned unchanged.
    """
    pinned = []
    for package in dict.fromkeys(packages):  # keep order, drop repeats
        installed = (
            _installed_version(package) if package.replace("-", "_").isidentifier() else None
        )
        pinned.append(f"{package}=={installed}" if installed else package)
    return pinned


# --- the text model: one pyfunc for sentiment and themes --------------------------------------

#: Artifact key (and file name) of the text bundle, stored with skops, inside the logged pyfunc.
TEXT_MODEL_ARTIFACT = "text_model.skops"
#: The pyfunc's code, logged as a file ("models from code"), so no pickled class is stored.
TEXT_PYFUNC_CODE = Path(__file__).with_name("text_pyfunc.py")


@dataclass(frozen=True)
class LoadedTextModel:
    """A text model loaded from MLflow, ready to score, and which model it is.

    Attributes
    ----------
    model
        The :class:`retain.text.bundle.TextModelBundle` inside the pyfunc.
    uri
        The URI it was loaded from.
    model_version
        Identifies the logged model whatever URI named it (MLflow's ``model_uuid``): the key the
        inference cache uses.
    description
        For people, e.g. ``retain-text version 3 (champion)``.
    """

    model: Any
    uri: str
    model_version: str
    description: str


def log_text_model(
    run: TrackedRun,
    bundle: Any,
    name: str = "text",
    input_example: Sequence[str] = ("The agent never called me back", "Great app, works well"),
    extra_requirements: Sequence[str] = (),
) -> str:
    """Log a text model as an MLflow pyfunc: DataFrame with a ``text`` column in, scores out.

    The bundle is stored with skops as ``text_model.skops`` (trusting only
    :data:`TEXT_SKOPS_TRUSTED_TYPES` beyond skops' own); a transformer's tokenizer, config and
    weights are plain data inside it, so loading needs no network. The pyfunc class is logged as
    code (:data:`TEXT_PYFUNC_CODE`), so nothing of the model is pickled.

    Parameters
    ----------
    run
        The active run (inside its :func:`tracked_run` block).
    bundle
        A :class:`retain.text.bundle.TextModelBundle`.
    name
        Name of the logged model inside the run.
    input_example
        A few texts; used to infer the signature (input ``text``, output score columns).
    extra_requirements
        Packages beyond :data:`BASE_REQUIREMENTS` and ``retain``, e.g. ``("torch",
        "transformers", "safetensors")`` for a transformer model. Bare names are pinned to the
        installed version.

    Returns
    -------
    str
        The model URI to pass to :func:`register_model`.

    Raises
    ------
    TypeError
        When skops cannot store the bundle, or only with types outside the trusted ones (named).
    """
    import mlflow
    import mlflow.pyfunc
    import pandas as pd
    from mlflow.models import infer_signature

    active = mlflow.active_run()
    if active is None or active.info.run_id != run.run_id:
        raise RuntimeError(
            f"log_text_model needs run {run.run_id} to be active: call it inside tracked_run"
        )
    example = pd.DataFrame({"text": list(input_example)})
    signature = infer_signature(example, bundle.predict(example["text"]))
    stored = _check_skops_storable(bundle, TEXT_SKOPS_TRUSTED_TYPES, name)
    with tempfile.TemporaryDirectory(prefix="retain-text-model-") as tmp:
        path = Path(tmp) / TEXT_MODEL_ARTIFACT
        path.write_bytes(stored)
        with _quiet_artifact_copies():
            info = mlflow.pyfunc.log_model(
                name=name,
                python_model=str(TEXT_PYFUNC_CODE),
                artifacts={TEXT_MODEL_ARTIFACT: str(path)},
                pip_requirements=pinned_requirements(
                    *BASE_REQUIREMENTS, "mlflow", "retain", *extra_requirements
                ),
                signature=signature,
                input_example=example,
            )
    _record_hashes(run.tracking, info.model_id)
    logger.info("logged text model %r as %s (%d bytes of skops)", name, info.model_uri, len(stored))
    return info.model_uri


def load_text_bundle(path: Path) -> Any:
    """The text bundle in a ``text_model.skops`` file, trusting :data:`TEXT_SKOPS_TRUSTED_TYPES`.

    Used by the logged pyfunc (``retain/text_pyfunc.py``) when MLflow loads it.

    Raises
    ------
    ModelIntegrityError
        The file holds a type outside skops' own and the trusted ones; nothing of it was built.
    """
    return _load_skops(Path(path), f"text model file {Path(path).name}", TEXT_SKOPS_TRUSTED_TYPES)


def text_model_uri(tracking: TrackingConfig) -> str:
    """``models:/<text_model>@<champion alias>``."""
    return f"models:/{tracking.text_model}@{tracking.champion_alias}"


def load_text_model(tracking: TrackingConfig, model_uri: str | None = None) -> LoadedTextModel:
    """Load the champion text model (or ``model_uri``) through MLflow's pyfunc loader.

    ``model_uri`` is a registered version (``models:/<name>/<version>`` or ``@<alias>``) or a
    logged model (``models:/m-<id>``): the model's files are copied from the store and checked
    against the sha256 recorded when it was logged before anything is read.

    Raises
    ------
    NoChampionError
        When no ``model_uri`` is given and the text model has no champion yet.
    UnsafeModelFormatError
        The model was stored as a pickle (by an older retain); it is not loaded.
    ModelIntegrityError
        A file was changed, added or removed since logging, or no hashes are recorded for the
        URI (e.g. a ``runs:/`` URI).
    StoreError
        The model's files cannot be read from the store.
    """
    import mlflow.pyfunc

    _use_store(tracking)
    if model_uri is None:
        version = champion_version(tracking, tracking.text_model)
        if version is None:
            raise NoChampionError(
                f"no {tracking.champion_alias!r} version of text model {tracking.text_model!r} in "
                f"{tracking.tracking_uri}: train one with `retain text train -c <config>`, or "
                "name a logged model with --model-uri"
            )
        model_uri = f"models:/{tracking.text_model}/{version}"
        description = f"{tracking.text_model} version {version} ({tracking.champion_alias})"
    else:
        description = model_uri
    what = f"text model {description}"
    with _verified_copy(tracking, model_uri, what) as local:
        if _holds_pickles(local) or not (local / "artifacts" / TEXT_MODEL_ARTIFACT).is_file():
            raise UnsafeModelFormatError(_stored_as_pickle(what, "retain text train -c <config>"))
        try:
            loaded = mlflow.pyfunc.load_model(str(local))
        except (OSError, _mlflow_error()) as exc:
            raise _artifacts_missing(what, model_uri, exc) from exc
    bundle = loaded.unwrap_python_model().bundle
    model_version = loaded.metadata.model_uuid or model_uri
    logger.info("loaded text model %s (model %s)", description, model_version)
    return LoadedTextModel(
        model=bundle, uri=model_uri, model_version=model_version, description=description
    )


# --- the store: checked, created private and migrated once, under a lock ----------------------

#: URI schemes MLflow can use as a tracking store with a model registry.
STORE_SCHEMES = ("sqlite", "file", "http", "https", "postgresql", "mysql", "mssql", "databricks")

_OPENED: set[str] = set()


class StoreError(RuntimeError):
    """The tracking store or a model's artifacts cannot be used; the message says what to fix."""


def open_store(tracking: TrackingConfig, *, create: bool = True) -> None:
    """Check the tracking store and prepare it once per process, before any work depends on it.

    The URI's scheme must be one MLflow stores models in. A SQLite store's directory must exist
    (a typo in it would otherwise start a new, empty store); without ``create`` the database must
    exist too. A new SQLite database is created readable by its owner only (0600, 0640 with
    ``$RETAIN_GROUP_READABLE``), with its artifact folder, and its tables are created while a lock
    file beside it (``<database>.lock``) is held, so two jobs starting on a new store do not both
    migrate it.

    Raises
    ------
    ConfigError
        The URI's scheme is not a store's, or the SQLite file's directory does not exist.
    NoChampionError
        ``create`` is False and there is no SQLite database at the URI (nothing trained there).
    StoreError
        The store exists but cannot be opened (not a database, a damaged or newer schema,
        a server that does not answer).
    """
    from retain.config import ConfigError

    uri = tracking.tracking_uri
    if uri in _OPENED:
        return
    scheme = uri.split(":", 1)[0].split("+", 1)[0].lower() if "://" in uri or uri.startswith("sqlite:") else ""
    if scheme and scheme not in STORE_SCHEMES:
        raise ConfigError(
            f"tracking.tracking_uri {uri!r}: {scheme!r} is not a tracking store scheme "
            f"(use one of {', '.join(STORE_SCHEMES)}, e.g. sqlite:///mlflow.db or http://host:5000)"
        )
    database = _sqlite_path(uri)
    if database is None:
        _initialise(tracking)
        _OPENED.add(uri)
        return
    if not database.parent.is_dir():
        raise ConfigError(
            f"tracking.tracking_uri {uri!r}: the directory {database.parent} does not exist; "
            "create it, or fix the URI (a new store is created only in an existing directory)"
        )
    if not create and not database.exists():
        raise NoChampionError(
            f"no MLflow store at {database} (tracking.tracking_uri {uri!r}): run `retain train` "
            "first, with this tracking URI, or fix the URI"
        )
    from retain.data import exclusive_lock, private_dir_mode, private_file_mode

    with exclusive_lock(database.with_name(database.name + ".lock")):
        new = not database.exists()
        if new:
            os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, private_file_mode()))
            (database.parent / "mlartifacts").mkdir(mode=private_dir_mode(), exist_ok=True)
            logger.info("created MLflow store %s", database)
        if database.stat().st_size and not _looks_like_sqlite(database):
            raise StoreError(
                f"{database}: not an SQLite database (damaged or overwritten); restore it from a "
                "backup, or point tracking.tracking_uri at another store"
            )
        if not new and (damage := _sqlite_damage(database)):
            # An intact header says nothing of the pages behind it: without this, a damaged page
            # ends in a traceback at whichever query first reads it, possibly mid-job.
            raise StoreError(
                f"{database}: damaged ({damage}); restore it from a backup, or point "
                "tracking.tracking_uri at another store"
            )
        _initialise(tracking)
    _OPENED.add(uri)


def _initialise(tracking: TrackingConfig) -> None:
    """Open the tracking and registry stores (creating or migrating their tables)."""
    from mlflow import MlflowClient

    try:
        client = MlflowClient(tracking_uri=tracking.tracking_uri)
        client.search_experiments(max_results=1)
        client.search_registered_models(max_results=1)
    except Exception as exc:  # any failure here means the store is unusable
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StoreError(
            f"the MLflow store {tracking.tracking_uri!r} cannot be opened: {first}. Check that it "
            "is reachable and not damaged (restore it from a backup), or point "
            "tracking.tracking_uri at another store"
        ) from exc


def _mlflow_error() -> type[Exception]:
    from mlflow.exceptions import MlflowException

    return MlflowException


def _sqlite_path(uri: str) -> Path | None:
    if not uri.startswith("sqlite:"):
        return None
    from sqlalchemy.engine import make_url

    database = make_url(uri).database
    if not database or database == ":memory:":
        return None
    return Path(database).expanduser().resolve()


def _looks_like_sqlite(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(16) == b"SQLite format 3\x00"


def _sqlite_damage(path: Path) -> str | None:
    """What SQLite's own structural check finds wrong with the database, or None when nothing."""
    import sqlite3

    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = connection.execute("PRAGMA quick_check(3)").fetchall()
    except sqlite3.DatabaseError as exc:
        return str(exc)
    finally:
        connection.close()
    # One line for the `error:` line: SQLite's report spans lines under a "*** in database ***" head.
    lines = "\n".join(str(row[0]) for row in rows if row[0] != "ok").splitlines()
    problems = [line.strip() for line in lines if line.strip() and not line.startswith("***")]
    return "; ".join(problems) or None


def _artifacts_missing(what: str, uri: str, exc: Exception) -> StoreError:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return StoreError(
        f"{what}: its files cannot be read from the store ({uri}: {first}); restore the "
        "artifact folder (mlartifacts/ beside the SQLite file) from a backup, or retrain"
    )


# --- model files: hashed when logged, checked before anything is read -------------------------

#: Tag holding the sha256 of every file of a model as JSON (``{"model.pkl": "<hex>", ...}``), set
#: on the logged model when it is logged and copied to every registered version of it.
ARTIFACT_HASHES_TAG = "retain.artifact_sha256"
#: Written by MLflow into a downloaded copy of a registered model; not one of its artifacts.
_ADDED_BY_DOWNLOAD = frozenset({"registered_model_meta"})
_LOGGED_MODEL_URI = re.compile(r"^models:/(?P<model_id>m-[0-9a-f]+)/?$")
_VERSION_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[^/@]+))/?$")
_RESTORE = (
    "restore mlartifacts/ (beside the SQLite file) from a backup or retrain, and find out who "
    "changed the store"
)


class ModelIntegrityError(StoreError):
    """A model's files differ from the sha256 recorded when it was logged; it is not loaded."""


class UnsafeModelFormatError(ModelIntegrityError):
    """A model stored as a pickle (by an older retain): loading it could run any code, so it is not.

    A :class:`ModelIntegrityError`, so the CLI exits with the same code (7) as for a changed file.
    """


def _stored_as_pickle(what: str, retrain: str) -> str:
    return (
        f"{what}: this model was stored as a pickle by an older retain; retrain it (`{retrain}`). "
        "retain loads only models stored without pickle (skops), since unpickling a file can run "
        "any code"
    )


def _holds_pickles(directory: Path) -> bool:
    """Whether a model's files include a pickle (``*.pkl``, as older retains stored models)."""
    return any(path.suffix == ".pkl" for path in directory.rglob("*") if path.is_file())


def artifact_hashes(directory: Path) -> dict[str, str]:
    """The sha256 of every file under ``directory``, keyed by its ``/``-separated relative path.

    Parameters
    ----------
    directory
        A local copy of a model's artifacts.

    Returns
    -------
    dict
        Relative path to hex digest, in path order; MLflow's ``registered_model_meta`` (written
        into every downloaded copy of a registered model) is left out.
    """
    hashes: dict[str, str] = {}
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        relative = path.relative_to(directory).as_posix()
        if relative in _ADDED_BY_DOWNLOAD:
            continue
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        hashes[relative] = digest.hexdigest()
    return hashes


def _record_hashes(tracking: TrackingConfig, model_id: str) -> str:
    """Hash the files of a just-logged model as the store holds them; tag the logged model."""
    with _downloaded(f"models:/{model_id}", f"logged model {model_id}") as local:
        manifest = json.dumps(artifact_hashes(local), sort_keys=True)
    _client(tracking).set_logged_model_tags(model_id, {ARTIFACT_HASHES_TAG: manifest})
    return manifest


def _hashes_at_logging(tracking: TrackingConfig, model_uri: str) -> str:
    """The hashes recorded when ``model_uri`` was logged; computed now if it has none."""
    match = _LOGGED_MODEL_URI.match(model_uri)
    if match is None:
        with _downloaded(model_uri, model_uri) as local:
            return json.dumps(artifact_hashes(local), sort_keys=True)
    recorded = _client(tracking).get_logged_model(match["model_id"]).tags.get(ARTIFACT_HASHES_TAG)
    return recorded if recorded is not None else _record_hashes(tracking, match["model_id"])


def _recorded_hashes(tracking: TrackingConfig, uri: str, what: str) -> dict[str, str]:
    """The hashes recorded for a registered version or a logged model named by ``uri``."""
    client = _client(tracking)
    logged, registered = _LOGGED_MODEL_URI.match(uri), _VERSION_URI.match(uri)
    try:
        if logged is not None:
            recorded = client.get_logged_model(logged["model_id"]).tags.get(ARTIFACT_HASHES_TAG)
        elif registered is not None:
            name, version = registered["name"], registered["version"]
            if version is None:
                version = client.get_model_version_by_alias(name, registered["alias"]).version
            recorded = client.get_model_version(name, str(version)).tags.get(ARTIFACT_HASHES_TAG)
        else:
            raise ModelIntegrityError(
                f"{what}: retain loads only models whose files' sha256 it recorded; name a "
                "registered version (models:/<name>/<version>) or a logged model (models:/m-<id>)"
            )
    except _mlflow_error() as exc:
        raise _artifacts_missing(what, uri, exc) from exc
    if recorded is None:
        raise ModelIntegrityError(
            f"{what}: no sha256 of its files was recorded when it was logged (logged by an older "
            "retain or another tool), so it is not loaded: retrain it with this version of retain"
        )
    return dict(json.loads(recorded))


@contextlib.contextmanager
def _downloaded(uri: str, what: str) -> Iterator[Path]:
    """A private temporary copy of a model's files."""
    import mlflow.artifacts

    with tempfile.TemporaryDirectory(prefix="retain-model-") as tmp:
        try:
            with _quiet_artifact_copies():
                local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp)
        except (OSError, _mlflow_error()) as exc:
            raise _artifacts_missing(what, uri, exc) from exc
        yield Path(local)


@contextlib.contextmanager
def _verified_copy(tracking: TrackingConfig, uri: str, what: str) -> Iterator[Path]:
    """A copy of a model's files that matches the recorded hashes: load from it, nothing else.

    The copy is checked before anything in it is read, and the model is loaded from that
    same copy, so a file swapped in the store after the check is not the one loaded.
    """
    expected = _recorded_hashes(tracking, uri, what)
    with _downloaded(uri, what) as local:
        found = artifact_hashes(local)
        if not found:  # the whole folder is gone: a store to restore, not a changed file
            raise _artifacts_missing(what, uri, FileNotFoundError("no file found"))
        problems = []
        for file in sorted(expected.keys() | found.keys()):
            if file not in found:
                problems.append(f"{file} is missing")
            elif file not in expected:
                problems.append(f"{file} was added")
            elif found[file] != expected[file]:
                problems.append(
                    f"{file} was changed (sha256 {found[file][:12]}..., recorded "
                    f"{expected[file][:12]}...)"
                )
        if problems:
            raise ModelIntegrityError(
                f"{what}: its files differ from those recorded when it was logged: "
                f"{'; '.join(problems)}. It was not loaded (a changed model file can run code "
                f"when loaded); {_RESTORE}"
            )
        yield local



# --- skops: every model stored without pickle, with explicit lists of trusted types ----------

#: Types retain trusts when loading a skops file of a sklearn-flavour model, beyond those skops
#: trusts by default (scikit-learn's public estimators, NumPy arrays and SciPy types). Each is
#: built from data only (its ``__dict__`` or ``__setstate__`` state made of trusted types).
SKOPS_TRUSTED_TYPES: tuple[str, ...] = (
    # retain's functions inside the TF-IDF text Pipelines (FunctionTransformer steps).
    "retain.text.inputs.as_texts",
    "retain.text.pii.scrub_pii",
    # The churn model itself (retain.churn.model): parameters, classes_, categories_ as arrays.
    "retain.churn.model.ChurnClassifier",
    # Its booster. Booster keeps its trees as LightGBM's own text model (model_to_string in its
    # __getstate__, parsed by LightGBM in __setstate__), not as a pickle.
    "lightgbm.sklearn.LGBMClassifier",
    "lightgbm.basic.Booster",
    # LightGBM keeps its evaluation records (best_score) in ordered dicts.
    "collections.OrderedDict",
    # CalibratedClassifierCV's fitted parts: private classes of scikit-learn, hence not in
    # skops' defaults; isotonic calibration uses the public IsotonicRegression.
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    # The logistic churn baseline (make_logistic_baseline): its categorical step's function,
    # the column selectors of its ColumnTransformer, and the dtypes those selectors hold.
    "retain.churn.model._missing_as_nan",
    "sklearn.compose._column_transformer.make_column_selector",
    "numpy.dtype",
    # A fine-tuned transformer classifier logged on its own (retain.text.transformer documents
    # that it works with MLflow's sklearn flavour); its network is plain data (encoder_state).
    "retain.text.transformer.TransformerTextClassifier",
    "retain.text.transformer.EncoderNetwork",
)

#: Types retain trusts when loading ``text_model.skops`` (the ``retain text`` bundle), beyond
#: those skops trusts by default. A transformer's tokenizer, config and weights are plain data
#: in these objects' state (file bytes, JSON, safetensors bytes; see
#: :func:`retain.text.encoder.encoder_state`), never torch or transformers objects.
TEXT_SKOPS_TRUSTED_TYPES: tuple[str, ...] = (
    # The bundle: models per task, theme ids, threshold.
    "retain.text.bundle.TextModelBundle",
    # TF-IDF Pipelines: retain's functions in their FunctionTransformer steps.
    "retain.text.inputs.as_texts",
    "retain.text.pii.scrub_pii",
    # Fine-tuned transformer classifiers and the network (tokenizer, encoder, head) they hold.
    "retain.text.transformer.TransformerTextClassifier",
    "retain.text.transformer.EncoderNetwork",
    # A transformer blended with TF-IDF (weights chosen on held-out rows).
    "retain.text.transformer.BlendedTextClassifier",
    # One fine-tuned encoder with a head per task, and each task's view of it.
    "retain.text.multitask.MultiTaskTextClassifier",
    "retain.text.multitask.SharedEncoderTask",
    # Its set of held-out text digests: a frozenset of strings (construction runs nothing).
    "builtins.frozenset",
    # Zero-label classifiers (no labels) and the sentence encoder (tokenizer, weights) they hold.
    "retain.text.zero_label.ZeroLabelSentimentClassifier",
    "retain.text.zero_label.ZeroLabelThemeClassifier",
    "retain.text.encoder.LoadedEncoder",
)


def _check_skops_storable(model: Any, trusted: Sequence[str], name: str) -> bytes:
    """``model`` in skops' format, after checking it needs no type beyond ``trusted``.

    Raises
    ------
    TypeError
        skops cannot store the model, or needs types outside skops' defaults and ``trusted``
        (named), so it would not load back: it is refused rather than pickled.
    """
    skops_io = import_skops()

    try:
        stored = skops_io.dumps(model)
    except Exception as exc:  # skops raises several types for objects it cannot store
        raise TypeError(
            f"model {name!r} ({type(model).__name__}) cannot be stored with skops ({exc}); "
            "retain stores no model as a pickle"
        ) from exc
    untrusted = sorted(set(skops_io.get_untrusted_types(data=stored)) - set(trusted))
    if untrusted:
        raise TypeError(
            f"model {name!r} ({type(model).__name__}) holds types retain does not trust when "
            f"loading: {', '.join(untrusted)}. retain stores no model as a pickle: store these "
            "as plain data, or add a type to retain.tracking's trusted list if loading it runs "
            "no code from the file"
        )
    return stored


_ARRAY_API_TORCH = "sklearn.externals.array_api_compat.torch"


def import_skops() -> Any:
    """``skops.io``, imported without importing torch.

    On its first import skops lists scikit-learn's estimators (``sklearn.utils.all_estimators``),
    which imports every scikit-learn module, among them the array-API wrapper for torch and so
    torch itself: seconds at the start of every ``retain score`` that never uses torch. A
    placeholder stands in for that one module (it holds no estimator) while skops is imported.
    """
    import sys
    import types

    if "skops.io" not in sys.modules and "torch" not in sys.modules and _ARRAY_API_TORCH not in sys.modules:
        placeholder = types.ModuleType(_ARRAY_API_TORCH)
        sys.modules[_ARRAY_API_TORCH] = placeholder
        try:
            import skops.io
        finally:
            if sys.modules.get(_ARRAY_API_TORCH) is placeholder:
                del sys.modules[_ARRAY_API_TORCH]
    import skops.io

    return skops.io


def _load_skops(path: Path, what: str, trusted: Sequence[str]) -> Any:
    skops_io = import_skops()
    from skops.io.exceptions import UntrustedTypesFoundException

    try:
        return skops_io.load(path, trusted=list(trusted))
    except UntrustedTypesFoundException as exc:
        raise ModelIntegrityError(
            f"{what}: {path.name} holds types retain does not trust ({exc}); it was not loaded: "
            f"{_RESTORE}"
        ) from exc


# --- internals --------------------------------------------------------------------------------


def _use_store(tracking: TrackingConfig) -> None:
    import mlflow

    open_store(tracking)
    mlflow.set_tracking_uri(tracking.tracking_uri)


def _client(tracking: TrackingConfig) -> MlflowClient:
    from mlflow import MlflowClient

    open_store(tracking)
    return MlflowClient(tracking_uri=tracking.tracking_uri)


def _use_experiment(tracking: TrackingConfig) -> str:
    """Point MLflow at the store and experiment, creating the experiment if missing."""
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, ErrorCode

    _use_store(tracking)
    client = _client(tracking)
    experiment = client.get_experiment_by_name(tracking.experiment)
    if experiment is None:
        location = _artifact_location(tracking)
        try:
            experiment_id = client.create_experiment(
                tracking.experiment, artifact_location=location
            )
            logger.info(
                "created MLflow experiment %r (artifacts: %s)",
                tracking.experiment,
                location or "store default",
            )
        except MlflowException as exc:  # another process created it just now
            if exc.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
                raise
            experiment_id = client.get_experiment_by_name(tracking.experiment).experiment_id
    else:
        experiment_id = experiment.experiment_id
    # Raises a clear MLflow error if the experiment was deleted (restore or purge it).
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def _artifact_location(tracking: TrackingConfig) -> str | None:
    """``mlartifacts/<experiment>`` next to a SQLite database file; None for other stores."""
    from sqlalchemy.engine import make_url

    if not tracking.tracking_uri.startswith("sqlite:"):
        return None
    database = make_url(tracking.tracking_uri).database
    if not database or database == ":memory:":
        return None
    safe_name = "".join(c if c.isalnum() or c in "-_." else "_" for c in tracking.experiment)
    return (Path(database).resolve().parent / "mlartifacts" / safe_name).as_uri()


def _infer_signature(model: Any, input_example: Any, name: str) -> Any:
    """A signature from the example and the model's predictions, or None if it does not hold."""
    import warnings

    from mlflow.models import infer_signature, validate_schema

    try:
        with warnings.catch_warnings():
            # The "integer column" hint is about pyfunc serving; retain loads models natively.
            warnings.simplefilter("ignore", UserWarning)
            signature = infer_signature(input_example, model.predict(input_example))
            # MLflow describes pandas categories as strings but then refuses to pass category
            # columns through that schema; check the example fits rather than log a false one.
            validate_schema(input_example, signature.inputs)
    except Exception as exc:  # noqa: BLE001 - any failure only costs the signature
        logger.warning("model %r logged without a signature: %s", name, exc)
        return None
    return signature


def _decide(
    tracking: TrackingConfig,
    name: str,
    previous: str | None,
    metric: str,
    value: float,
    baseline_value: float,
    higher_is_better: bool,
    evaluation_id: str,
    baseline_detail: str | None = None,
    champion_paired: Callable[[str], tuple[bool, str] | None] | None = None,
) -> tuple[bool, str]:
    """The champion rule: (promote?, reason)."""

    def beats(a: float, b: float) -> bool:
        return a > b if higher_is_better else a < b

    if not math.isfinite(value):
        return False, f"{metric} is {value}, not a number to compare"
    if not math.isfinite(baseline_value):
        return False, f"the baseline {metric} is {baseline_value}; cannot show the model beats it"
    detail = f" ({baseline_detail})" if baseline_detail else ""
    if not beats(value, baseline_value):
        return False, f"{metric} {value:.4g} does not beat the baseline {baseline_value:.4g}{detail}"
    against_baseline = f"{metric} {value:.4g} beats the baseline {baseline_value:.4g}{detail}"
    if previous is None:
        return True, f"{against_baseline}; there was no {tracking.champion_alias}"

    champion_tags = model_version_tags(tracking, name, previous)
    champion_evaluation = champion_tags.get(EVALUATION_TAG)
    champion_value = _parse_float(champion_tags.get(METRIC_TAG.format(metric=metric)))
    if champion_evaluation != evaluation_id:
        return True, (
            f"{against_baseline}; {tracking.champion_alias} version {previous} was evaluated on "
            f"different data (evaluation_id {champion_evaluation!r}, not {evaluation_id!r}), "
            "so it was not compared"
        )
    if champion_value is None:
        return True, (
            f"{against_baseline}; {tracking.champion_alias} version {previous} has no recorded "
            f"{metric} on evaluation {evaluation_id!r}, so it was not compared"
        )
    paired = champion_paired(previous) if champion_paired is not None else None
    if paired is not None:
        better, how = paired
        verdict = "beats" if better else "does not beat"
        return better, (
            f"{against_baseline}; {metric} {verdict} {tracking.champion_alias} version {previous} "
            f"on evaluation {evaluation_id!r} ({how})"
        )
    if not beats(value, champion_value):
        return False, (
            f"{metric} {value:.4g} does not beat {tracking.champion_alias} version {previous} "
            f"({champion_value:.4g}) on evaluation {evaluation_id!r}"
        )
    return True, (
        f"{against_baseline} and {tracking.champion_alias} version {previous} "
        f"({champion_value:.4g}) on evaluation {evaluation_id!r}"
    )


def _parse_float(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _plain(value: Any) -> Any:
    """A JSON-friendly scalar: NumPy numbers to Python, paths and dates to strings."""
    if hasattr(value, "item") and callable(value.item):  # NumPy scalar
        return value.item()
    if isinstance(value, (PurePath, date, datetime)):
        return str(value)
    return value


def _installed_version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


@contextlib.contextmanager
def _quiet_artifact_copies() -> Iterator[None]:
    """No MLflow progress bar for copying a model's few local artifacts (retain has its own)."""
    import os

    key = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    before = os.environ.get(key)
    os.environ[key] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = before
