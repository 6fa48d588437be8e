"""Training for ``retain text train``: sentiment and themes from whatever labels a file has.

The phases, per task (``sentiment``, ``themes``):

1. ``labelled_rows``: the rows carrying that task's label, each distinct text once.
2. ``split_validation``: a stratified validation split carved from them (seeded).
3. ``evaluate_candidates``: every candidate kind fitted on the rest, scored on the validation
   split, beside a majority-class baseline.
4. ``choose_kind``: with one candidate, that one; with ``auto``, a candidate replaces TF-IDF
   only if a paired bootstrap over the validation texts puts its metric above TF-IDF's (the
   95% interval of the difference is above 0).
5. ``refit``: the chosen kind is fitted again on every labelled row.

A task with too few labels gets the zero-label classifier (fitted on the texts alone) or is left
out (``model.unlabelled``). The result is one :class:`~retain.text.bundle.TextModelBundle`.

With both tasks labelled, the transformer a candidate and ``model.transformer.shared`` (the
default, fine-tuning), the transformer of both tasks comes from one multi-task fine-tuning
(:class:`SharedEncoder`): one encoder with a sentiment and a theme head, so scoring runs the
encoder once for both. Its candidate is fitted without any text of *either* task's validation
split (the splits stay per task); the kept model is one multi-task fit on every labelled row of
both tasks. When ``auto`` keeps the transformer for one task only, that task reads the shared
model (the other head goes unused), so the kept model is the kind that was evaluated.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from retain import evaluation
from retain.config import Taxonomy, TextJobConfig
from retain.contracts import split_themes
from retain.text.bundle import TextModelBundle, assign_themes
from retain.text.inputs import theme_indicators
from retain.text.models import (
    TASKS,
    Kind,
    Task,
    candidate_kinds,
    make_text_model,
    multitask_model,
    shared_transformer_model,
    shares_encoder,
)
from retain.text.scoring import class_probabilities

logger = logging.getLogger(__name__)

#: The metric that compares candidates and decides the champion, per task.
PRIMARY_METRIC: dict[str, str] = {"sentiment": "macro_f1", "themes": "micro_f1"}


class TextTrainingError(ValueError):
    """No text model can be trained from this file; the message says why."""


@dataclass(frozen=True)
class Comparison:
    """A paired bootstrap of ``candidate - reference`` on the same validation texts."""

    candidate: str
    reference: str
    metric: str
    difference: float
    low: float
    high: float
    draws: int

    @property
    def better(self) -> bool:
        """The candidate is better: the 95% interval of the difference lies above 0."""
        return self.low > 0

    def describe(self) -> str:
        return (
            f"{self.candidate} - {self.reference} {self.metric}: {self.difference:+.4f} "
            f"(95% interval {self.low:+.4f} to {self.high:+.4f}, {self.draws} paired bootstrap "
            "draws over validation texts)"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "candidate": self.candidate,
            "reference": self.reference,
            "metric": self.metric,
            "difference": self.difference,
            "low": self.low,
            "high": self.high,
            "draws": self.draws,
            "better": self.better,
        }


@dataclass
class Candidate:
    """One kind fitted on the training part and scored on the validation part."""

    kind: str
    metrics: dict[str, float]
    predicted: np.ndarray
    seconds_fit: float
    error: str | None = None
    model: Any = None  # fitted on the training part only: what the validation figures describe
    shared_encoder: bool = False  # read from the multi-task model shared with the other task


@dataclass
class TaskResult:
    """The model kept for one task, how it was chosen and how it did on validation data."""

    task: str
    kind: str
    model: Any
    n_labelled: int
    n_fit: int = 0
    n_validation: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    baseline_metrics: dict[str, float] = field(default_factory=dict)
    candidates: list[Candidate] = field(default_factory=list)
    comparisons: list[Comparison] = field(default_factory=list)
    how_chosen: str = ""
    validation_ids: list[str] = field(default_factory=list)
    #: The kept kind fitted on the training part, the validation texts and their labels (the
    #: evaluation report describes this model, not the refit that saw the validation rows).
    validation_model: Any = None
    validation_texts: list[str] = field(default_factory=list)
    validation_truth: np.ndarray | None = None
    #: The kept model reads one multi-task encoder fitted for both tasks (see SharedEncoder).
    shared_encoder: bool = False

    @property
    def supervised(self) -> bool:
        return self.kind != "zero_label"


@dataclass
class TextTrainResult:
    """Everything ``retain text train`` logs and registers."""

    bundle: TextModelBundle
    tasks: dict[str, TaskResult]
    evaluation_id: str
    tuned_on: str
    n_texts: int
    seconds: float = 0.0
    left_out: list[str] = field(default_factory=list)

    @property
    def shared_encoder(self) -> bool:
        """Sentiment and themes are scored by one encoder pass (one multi-task model)."""
        return sum(r.shared_encoder for r in self.tasks.values()) >= 2

    @property
    def metrics(self) -> dict[str, float]:
        """Validation metrics of the kept models, ``<task>_<metric>``."""
        return {f"{t}_{k}": v for t, r in self.tasks.items() for k, v in r.metrics.items()}

    @property
    def baseline_metrics(self) -> dict[str, float]:
        return {f"{t}_{k}": v for t, r in self.tasks.items() for k, v in r.baseline_metrics.items()}

    @property
    def primary(self) -> tuple[str, float, float] | None:
        """``(metric, value, majority baseline)`` the champion rule compares, or None.

        Sentiment macro-F1 when sentiment was learnt from labels, else themes micro-F1; None when
        nothing was learnt from labels (zero-label models only).
        """
        for task in TASKS:
            result = self.tasks.get(task)
            if result is not None and result.supervised:
                name = PRIMARY_METRIC[task]
                return f"{task}_{name}", result.metrics[name], result.baseline_metrics[name]
        return None


def labelled_rows(table: pd.DataFrame, task: Task) -> pd.DataFrame:
    """Rows with a ``task`` label and a non-blank text; a repeated text is kept once (the first).

    Keeping each text once stops the same text from landing on both sides of the validation
    split.
    """
    rows = table.loc[table[task].notna() & (table["text"].str.strip() != "")]
    repeated = rows["text"].duplicated(keep="first")
    if repeated.any():
        logger.info(
            "%s: %d labelled rows repeat an earlier text; each text is used once",
            task,
            int(repeated.sum()),
        )
    return rows.loc[~repeated].reset_index(drop=True)


def split_validation(
    rows: pd.DataFrame, task: Task, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the fitting and validation rows, stratified by label (themes: first theme).

    Labels too rare to appear on both sides are pooled; when even that cannot be stratified the
    split is plain random, and a log line says so.
    """
    strata = (
        rows["sentiment"].astype(str)
        if task == "sentiment"
        else pd.Series([t[0] if t else "(none)" for t in split_themes(rows["themes"])])
    )
    counts = strata.value_counts()
    strata = strata.where(strata.map(counts) >= 2, "(rare)")
    positions = np.arange(len(rows))
    try:
        fit, validation = train_test_split(
            positions, test_size=fraction, random_state=seed, stratify=strata.to_numpy()
        )
    except ValueError as exc:
        logger.info("%s: validation split not stratified (%s)", task, exc)
        fit, validation = train_test_split(positions, test_size=fraction, random_state=seed)
    if task == "sentiment":
        # A class seen only in validation could not be learnt: its rows go to the fitting side.
        labels = rows["sentiment"].astype(str).to_numpy()
        unseen = np.isin(labels[validation], labels[fit], invert=True)
        if unseen.any():
            logger.info(
                "%s: %d validation rows of classes absent from the fitting rows moved to them",
                task, int(unseen.sum()),
            )
            fit, validation = np.concatenate([fit, validation[unseen]]), validation[~unseen]
    return np.sort(fit), np.sort(validation)


def task_targets(rows: pd.DataFrame, task: Task, theme_ids: Sequence[str]) -> np.ndarray:
    """What a model of ``task`` is fitted on: labels, or the theme indicator matrix."""
    if task == "sentiment":
        return rows["sentiment"].astype(str).to_numpy()
    return theme_indicators(rows["themes"], list(theme_ids))


def validation_predictions(
    model: Any, texts: list[str], task: Task, threshold: float, theme_ids: Sequence[str] = ()
) -> np.ndarray:
    """Predicted labels (sentiment) or a 0/1 theme matrix (themes), as the bundle assigns them."""
    if task == "sentiment":
        return np.asarray(model.predict(texts)).astype(str)
    # Read the theme columns as the bundle does (one theme: P(theme) of a binary model).
    proba = class_probabilities(model, texts, list(theme_ids), "theme")
    return assign_themes(model, proba, threshold)


def task_metrics(
    task: Task, truth: np.ndarray, predicted: np.ndarray, theme_ids: Sequence[str]
) -> dict[str, float]:
    if task == "sentiment":
        return evaluation.sentiment_metrics(truth, predicted)
    return evaluation.theme_metrics(truth, predicted, list(theme_ids))


def majority_predictions(task: Task, y_fit: np.ndarray, n: int) -> np.ndarray:
    """The majority class (sentiment) or the themes present in most fitted rows (themes)."""
    if task == "sentiment":
        values, counts = np.unique(y_fit, return_counts=True)
        return np.full(n, values[np.argmax(counts)], dtype=object).astype(str)
    return np.tile((y_fit.mean(axis=0) > 0.5).astype(int), (n, 1))


def evaluate_candidates(
    kinds: Sequence[Kind],
    task: Task,
    rows: pd.DataFrame,
    fit: np.ndarray,
    validation: np.ndarray,
    config: TextJobConfig,
    taxonomy: Taxonomy,
    shared: SharedEncoder | None = None,
) -> list[Candidate]:
    """Fit each kind on ``fit`` rows and score it on ``validation`` rows.

    A kind whose module is not available is recorded with its error and left out of the choice;
    TF-IDF (always available) is the reference. With ``shared``, the transformer candidate is
    read from its multi-task model (fitted without either task's validation texts).
    """
    texts = rows["text"].tolist()
    y = task_targets(rows, task, taxonomy.ids)
    fit_texts = [texts[i] for i in fit]
    validation_texts = [texts[i] for i in validation]
    out = []
    for kind in kinds:
        started = time.perf_counter()
        from_shared = shared is not None and kind == "transformer"
        try:
            if from_shared:
                model = shared.candidate_model(task)
            else:
                model = make_text_model(kind, task, config.model, taxonomy)
                model.fit(fit_texts, y[fit])
        except ImportError as exc:  # torch, transformers or the encoder package are imported in fit
            logger.warning("%s: candidate %s left out: %s", task, kind, exc)
            out.append(Candidate(kind, {}, np.empty(0), 0.0, error=str(exc)))
            continue
        predicted = validation_predictions(
            model, validation_texts, task, config.threshold, taxonomy.ids
        )
        metrics = task_metrics(task, y[validation], predicted, taxonomy.ids)
        seconds = time.perf_counter() - started
        logger.info(
            "%s: %s fitted on %d texts in %.1f s; validation %s %.4f",
            task,
            kind,
            len(fit),
            seconds,
            PRIMARY_METRIC[task],
            metrics[PRIMARY_METRIC[task]],
        )
        if from_shared:  # both tasks' candidates carry the one multi-task fit
            seconds += shared.seconds_candidate
        out.append(
            Candidate(kind, metrics, predicted, seconds, model=model, shared_encoder=from_shared)
        )
    return out


class SharedEncoder:
    """One multi-task transformer (sentiment and themes heads on one encoder) for both tasks.

    Fitted lazily, at most twice: the candidate, on the fitting rows of both tasks minus every
    text in *either* task's validation split (so neither task's validation figures come from a
    model that saw its validation texts through the other task), and the kept model, on every
    labelled row of both tasks. Each task reads its head through
    :func:`retain.text.models.shared_transformer_model` (blended with TF-IDF when configured).

    Parameters
    ----------
    rows
        Per task, its labelled rows (:func:`labelled_rows`).
    config, taxonomy
        The text job config and the theme taxonomy.
    """

    def __init__(
        self, rows: dict[Task, pd.DataFrame], config: TextJobConfig, taxonomy: Taxonomy
    ) -> None:
        self.rows, self.config, self.taxonomy = rows, config, taxonomy
        self.splits = {
            task: split_validation(
                task_rows, task, config.validation.fraction, config.validation.seed
            )
            for task, task_rows in rows.items()
        }
        held_out = {
            text
            for task, (_, validation) in self.splits.items()
            for text in rows[task]["text"].iloc[validation]
        }
        self.candidate_rows = {
            task: fit[~rows[task]["text"].iloc[fit].isin(held_out).to_numpy()]
            for task, (fit, _) in self.splits.items()
        }
        self.all_rows = {task: np.arange(len(task_rows)) for task, task_rows in rows.items()}
        self.seconds_candidate = 0.0
        self._fitted: dict[str, Any] = {}

    def candidate_model(self, task: Task) -> Any:
        """``task``'s transformer candidate, fitted without any validation text of either task."""
        return self._task_model("candidate", task, self.candidate_rows)

    def kept_model(self, task: Task) -> Any:
        """``task``'s transformer refitted on every labelled row of both tasks."""
        return self._task_model("kept", task, self.all_rows)

    def _task_model(self, which: str, task: Task, positions: dict[Task, np.ndarray]) -> Any:
        if which not in self._fitted:
            started = time.perf_counter()
            texts, y = multitask_data(self.rows, positions, self.taxonomy.ids)
            logger.info(
                "Shared encoder (%s): one multi-task fine-tuning on %d texts (%s)",
                which,
                len(texts),
                ", ".join(f"{t} {len(p)}" for t, p in positions.items()),
            )
            self._fitted[which] = multitask_model(self.config.model).fit(texts, y)
            if which == "candidate":
                self.seconds_candidate = time.perf_counter() - started
        rows = self.rows[task].iloc[positions[task]]
        model = shared_transformer_model(
            task, self._fitted[which], self.config.model, self.taxonomy
        )
        return model.fit(rows["text"].tolist(), task_targets(rows, task, self.taxonomy.ids))


def multitask_data(
    rows: dict[Task, pd.DataFrame], positions: dict[Task, np.ndarray], theme_ids: Sequence[str]
) -> tuple[list[str], dict[str, Any]]:
    """The union of the tasks' rows at ``positions``, one row per text, and every task's target.

    A text without a task's label gets a missing target for it (``None``, or a row of NaN in
    an indicator matrix), which the multi-task model leaves out of that head's loss.
    """
    chosen = {task: rows[task].iloc[positions[task]] for task in rows}
    texts = list(dict.fromkeys(t for part in chosen.values() for t in part["text"]))
    where = {text: i for i, text in enumerate(texts)}
    y: dict[str, Any] = {}
    for task, part in chosen.items():
        target = task_targets(part, task, theme_ids)
        if target.ndim == 2:
            full = np.full((len(texts), target.shape[1]), np.nan)
        else:
            full = np.full(len(texts), None, dtype=object)
        full[[where[t] for t in part["text"]]] = target
        y[task] = full
    return texts, y


def paired_bootstrap(
    task: Task,
    truth: np.ndarray,
    candidate: np.ndarray,
    reference: np.ndarray,
    names: tuple[str, str],
    draws: int = 1000,
    seed: int = 0,
) -> Comparison:
    """Bootstrap the validation texts; the same resample scores both models (a paired test).

    Parameters
    ----------
    task
        ``sentiment`` (macro-F1 of labels) or ``themes`` (micro-F1 of 0/1 matrices).
    truth, candidate, reference
        Validation labels and the two models' predictions, row for row.
    names
        ``(candidate, reference)`` names for the record.
    draws
        Bootstrap resamples.
    seed
        Random seed of the resampling.
    """
    score = _macro_f1 if task == "sentiment" else _micro_f1
    if task == "sentiment":
        codes = {
            label: i
            for i, label in enumerate(np.unique(np.concatenate([truth, candidate, reference])))
        }
        truth, candidate, reference = (
            np.array([codes[v] for v in a]) for a in (truth, candidate, reference)
        )
    rng = np.random.default_rng(seed)
    n = len(truth)
    diffs = np.empty(draws)
    for b in range(draws):
        idx = rng.integers(0, n, n)
        diffs[b] = score(truth[idx], candidate[idx]) - score(truth[idx], reference[idx])
    low, high = np.percentile(diffs, [2.5, 97.5])
    return Comparison(
        candidate=names[0],
        reference=names[1],
        metric=PRIMARY_METRIC[task],
        difference=float(score(truth, candidate) - score(truth, reference)),
        low=float(low),
        high=float(high),
        draws=draws,
    )


def _macro_f1(truth: np.ndarray, predicted: np.ndarray) -> float:
    """Macro-F1 over the classes present in either (scikit-learn's ``zero_division=0``)."""
    labels = np.union1d(truth, predicted)
    f1 = []
    for label in labels:
        t, p = truth == label, predicted == label
        tp = np.count_nonzero(t & p)
        denominator = np.count_nonzero(t) + np.count_nonzero(p)
        f1.append(2 * tp / denominator if denominator else 0.0)
    return float(np.mean(f1)) if f1 else 0.0


def _micro_f1(truth: np.ndarray, predicted: np.ndarray) -> float:
    tp = np.count_nonzero((truth == 1) & (predicted == 1))
    denominator = np.count_nonzero(truth == 1) + np.count_nonzero(predicted == 1)
    return 2 * tp / denominator if denominator else 0.0


def choose_kind(
    task: Task,
    candidates: list[Candidate],
    truth: np.ndarray,
    draws: int,
    seed: int,
) -> tuple[str, list[Comparison], str]:
    """The kind to keep: the reference (first) unless another beats it in a paired bootstrap.

    Returns
    -------
    tuple
        ``(kind, comparisons, how it was chosen)``.
    """
    usable = [c for c in candidates if c.error is None]
    if not usable:
        raise TextTrainingError(
            f"{task}: no candidate model could be built: "
            + "; ".join(f"{c.kind}: {c.error}" for c in candidates)
        )
    reference = usable[0]
    if len(candidates) == 1:
        return reference.kind, [], f"model.kind {reference.kind} (no choice to make)"
    comparisons = [
        paired_bootstrap(
            task, truth, c.predicted, reference.predicted, (c.kind, reference.kind), draws, seed
        )
        for c in usable[1:]
    ]
    winners = [
        (comparison, c) for comparison, c in zip(comparisons, usable[1:]) if comparison.better
    ]
    left_out = [f"{c.kind} not available" for c in candidates if c.error is not None]
    notes = "; ".join([*(c.describe() for c in comparisons), *left_out])
    if not winners:
        return reference.kind, comparisons, f"kept {reference.kind}: no candidate beat it ({notes})"
    _, best = max(winners, key=lambda pair: pair[1].metrics[PRIMARY_METRIC[task]])
    return best.kind, comparisons, f"{best.kind} beat {reference.kind} ({notes})"


def train_task(
    task: Task,
    rows: pd.DataFrame,
    config: TextJobConfig,
    taxonomy: Taxonomy,
    shared: SharedEncoder | None = None,
) -> TaskResult:
    """Split, evaluate the candidates, choose one, and refit it on every labelled row.

    With ``shared``, the split is the one it carved for ``task`` and the transformer (candidate
    and refit) is read from its multi-task models.
    """
    if shared is not None:
        fit, validation = shared.splits[task]
    else:
        fit, validation = split_validation(
            rows, task, config.validation.fraction, config.validation.seed
        )
    y = task_targets(rows, task, taxonomy.ids)
    if task == "themes":
        never = [t for t, n in zip(taxonomy.ids, y.sum(axis=0)) if n == 0]
        if never:
            logger.warning(
                "themes never labelled in this file: %s; the supervised model gives them "
                "probability 0, and they count as F1 0 in macro-F1",
                ", ".join(never),
            )
    candidates = evaluate_candidates(
        candidate_kinds(config.model), task, rows, fit, validation, config, taxonomy, shared
    )
    kind, comparisons, how = choose_kind(
        task, candidates, y[validation], config.validation.bootstrap, config.validation.seed
    )
    chosen = next(c for c in candidates if c.kind == kind)
    baseline = task_metrics(
        task, y[validation], majority_predictions(task, y[fit], len(validation)), taxonomy.ids
    )
    from_shared = shared is not None and kind == "transformer"
    if from_shared:
        model = shared.kept_model(task)
        how += (
            "; the transformer is one encoder shared with the other task (candidate fitted "
            "without either task's validation texts, kept model on all labelled rows of both)"
        )
    else:
        model = make_text_model(kind, task, config.model, taxonomy)  # type: ignore[arg-type]
        model = model.fit(rows["text"].tolist(), y)
    logger.info("%s: %s refitted on all %d labelled texts (%s)", task, kind, len(rows), how)
    return TaskResult(
        task=task,
        kind=kind,
        model=model,
        n_labelled=len(rows),
        n_fit=len(fit),
        n_validation=len(validation),
        metrics=chosen.metrics,
        baseline_metrics=baseline,
        candidates=candidates,
        comparisons=comparisons,
        how_chosen=how,
        validation_ids=rows["id"].iloc[validation].astype(str).tolist(),
        validation_model=chosen.model,
        validation_texts=[rows["text"].iloc[i] for i in validation],
        validation_truth=y[validation],
        shared_encoder=from_shared,
    )


def zero_label_task(
    task: Task, table: pd.DataFrame, config: TextJobConfig, taxonomy: Taxonomy
) -> TaskResult:
    """The zero-label classifier for ``task``, fitted on the texts alone (no labels)."""
    model = make_text_model("zero_label", task, config.model, taxonomy)
    model.fit(table["text"].tolist())
    return TaskResult(
        task=task,
        kind="zero_label",
        model=model,
        n_labelled=0,
        how_chosen="too few labels: zero-label classifier (no validation metrics)",
    )


def train_text_models(
    table: pd.DataFrame, taxonomy: Taxonomy, config: TextJobConfig, show_progress: bool = False
) -> TextTrainResult:
    """Train sentiment and/or themes from the labels ``table`` has, zero-label for the rest.

    Parameters
    ----------
    table
        ``TextTable.frame``: ``id``, ``text``, ``sentiment``, ``themes`` (see
        :func:`retain.data.load_text_table`).
    taxonomy
        The theme taxonomy; theme labels are its ids.
    config
        The text job config (model kind, threshold, validation split).
    show_progress
        Show a progress bar over the tasks.

    Raises
    ------
    TextTrainingError
        When no task can be trained (no labels and no zero-label classifier).
    """
    from tqdm.auto import tqdm

    started = time.perf_counter()
    blank = table["text"].astype(str).str.strip().eq("").to_numpy()
    if blank.all():
        raise TextTrainingError(
            f"no text to learn from: all {len(table)} texts are empty or blank"
            if len(table)
            else "no text to learn from: the file has no rows"
        )
    if blank.any():
        where = table.loc[blank, "source_row"] if "source_row" in table else table.index[blank]
        logger.warning(
            "%d blank texts left out of training (rows %s%s; header not counted)",
            int(blank.sum()), ", ".join(str(r) for r in list(where)[:5]),
            " and more" if blank.sum() > 5 else "",
        )
        table = table.loc[~blank].reset_index(drop=True)
    tasks: dict[str, TaskResult] = {}
    skipped: list[str] = []
    labelled = {task: labelled_rows(table, task) for task in TASKS}
    enough = {
        task: len(rows) >= config.validation.min_labelled
        and (task == "themes" or rows["sentiment"].nunique() >= 2)
        for task, rows in labelled.items()
    }
    shared = (
        SharedEncoder(labelled, config, taxonomy)
        if all(enough.values()) and shares_encoder(config.model)
        else None
    )
    for task in tqdm(TASKS, desc="Training text models", unit="task", disable=not show_progress):
        rows = labelled[task]
        if enough[task]:
            tasks[task] = train_task(task, rows, config, taxonomy, shared)
            continue
        why = f"{task}: {len(rows)} labelled texts (need {config.validation.min_labelled}"
        why += ", two classes)" if task == "sentiment" else ")"
        if config.model.unlabelled == "skip":
            skipped.append(f"{why}; left out (model.unlabelled: skip)")
            continue
        if len(rows):
            logger.warning("%s; too few labels to learn from: zero-label instead", why)
        try:
            tasks[task] = zero_label_task(task, table, config, taxonomy)
        except ImportError as exc:
            skipped.append(f"{why}; the zero-label classifier is not available ({exc})")
    for note in skipped:
        logger.warning("%s", note)
    if not tasks:
        raise TextTrainingError("no text model can be trained: " + "; ".join(skipped))
    bundle = TextModelBundle(
        sentiment=tasks["sentiment"].model if "sentiment" in tasks else None,
        themes=tasks["themes"].model if "themes" in tasks else None,
        theme_ids=tuple(taxonomy.ids),
        threshold=config.threshold,
        kinds={task: result.kind for task, result in tasks.items()},
    )
    validation_ids = sorted({i for r in tasks.values() for i in r.validation_ids})
    return TextTrainResult(
        bundle=bundle,
        tasks=tasks,
        evaluation_id=evaluation_fingerprint(
            validation_ids, config, _validation_content(tasks), taxonomy.ids
        ),
        tuned_on=tuned_on(tasks, config),
        n_texts=len(table),
        seconds=time.perf_counter() - started,
        left_out=skipped,
    )


def evaluation_fingerprint(
    validation_ids: Sequence[str],
    config: TextJobConfig,
    content: Sequence[str] = (),
    theme_ids: Sequence[str] = (),
) -> str:
    """Identifies the validation data: the file, the validation ids, the split settings, and
    the validation texts and labels and the taxonomy ids (so a relabelled or re-exported file
    at the same path is not taken for the same evaluation)."""
    digest = hashlib.sha256()
    digest.update(str(config.data.path).encode())
    digest.update(f"{config.validation.fraction}:{config.validation.seed}".encode())
    for value in [*validation_ids, "\0taxonomy", *theme_ids, "\0content", *content]:
        digest.update(str(value).encode() + b"\0")
    return f"text-{digest.hexdigest()[:16]}"


def _validation_content(tasks: dict[str, TaskResult]) -> list[str]:
    """The validation texts and their labels, task by task, for the evaluation fingerprint."""
    out: list[str] = []
    for task, result in sorted(tasks.items()):
        truth = result.validation_truth
        labels = [] if truth is None else [str(np.asarray(v).tolist()) for v in truth]
        out += [task, *result.validation_texts, *labels]
    return out


def tuned_on(tasks: dict[str, TaskResult], config: TextJobConfig) -> str:
    """How the settings were chosen, for the record."""
    supervised = [t for t, r in tasks.items() if r.supervised]
    if not supervised:
        return "nothing tuned: zero-label models, no labels to validate on"
    chosen = "the model kind (paired bootstrap)" if config.model.kind == "auto" else "nothing"
    shared = ""
    if any(c.shared_encoder for r in tasks.values() for c in r.candidates):
        shared = (
            "; the transformer candidates share one multi-task encoder, fitted without the "
            "validation texts of either task"
        )
    return (
        f"validation split ({config.validation.fraction:.0%} of the labelled rows, stratified, "
        f"seed {config.validation.seed}); chosen on it: {chosen}; the reported metrics are on "
        "the same split (no separate test split), then the kept model is refitted on all "
        f"labelled rows{shared}"
    )
