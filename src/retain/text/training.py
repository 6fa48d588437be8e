"""Training for ``retain text train``: sentiment and themes from whatever labels a file has.

The phases, per task (``sentiment``, ``themes``):

1. ``labelled_rows``: the rows carrying that task's label, each distinct text once.
2. ``split_validation``: a stratified validation split carved from them (seeded).
3. ``evaluate_candidates``: every candidate kind fitted on the rest, scored on the validation
   split, beside a majority-class baseline.
4. ``split_selection_report``: when there is a choice to make (``auto``, two usable candidates)
   the validation rows are halved: the selection half chooses, the report half gives the
   figures (metrics, evaluation report, baseline), so they do not flatter the winner.
5. ``choose_kind``: with one candidate, that one; with ``auto``, a candidate replaces TF-IDF
   only if a paired bootstrap over the selection texts puts its metric above TF-IDF's (the
   95% interval of the difference is above 0).
6. ``refit``: the chosen kind is fitted again on every labelled row.

Themes are multi-label (any number per text, an indicator matrix) or single-label (exactly one
per text, fitted on the theme id): ``themes_mode``, detected by ``single_label_themes``.

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
#: ... and for single-label themes: macro-F1 of the assigned theme, as for sentiment.
SINGLE_LABEL_METRIC = "macro_f1"
#: The validation rows are halved (selection / report) only if each half gets this many rows.
MIN_HALF_ROWS = 10


def primary_metric(task: Task, single_label: bool = False) -> str:
    """The metric that chooses between candidates and decides the champion for ``task``."""
    return SINGLE_LABEL_METRIC if task == "themes" and single_label else PRIMARY_METRIC[task]


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
    n_texts: int = 0  # the validation texts resampled: the selection half, or all

    @property
    def better(self) -> bool:
        """The candidate is better: the 95% interval of the difference lies above 0."""
        return self.low > 0

    def describe(self) -> str:
        return (
            f"{self.candidate} - {self.reference} {self.metric}: {self.difference:+.4f} "
            f"(95% interval {self.low:+.4f} to {self.high:+.4f}, {self.draws} paired bootstrap "
            f"draws over {self.n_texts} validation texts)"
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
            "n_texts": self.n_texts,
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
    """The model kept for one task, how it was chosen and how it did on validation data.

    ``n_validation`` and the ``validation_*`` fields describe the rows the reported figures
    come from: the report half when the validation split was halved (``n_selection`` rows
    chose the kind), otherwise the whole validation split.
    """

    task: str
    kind: str
    model: Any
    n_labelled: int
    n_fit: int = 0
    n_validation: int = 0
    n_selection: int = 0
    single_label: bool = False
    #: How the validation rows were used (halved or not, and why), for ``tuned_on``.
    validation_use: str = ""
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
    #: Single- or multi-label themes and why (``themes_mode``); "" without a theme model.
    themes_mode: str = ""

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

        Sentiment macro-F1 when sentiment was learnt from labels, else themes micro-F1
        (single-label themes: macro-F1); None when nothing was learnt from labels (zero-label
        models only).
        """
        for task in TASKS:
            result = self.tasks.get(task)
            if result is not None and result.supervised:
                name = primary_metric(task, result.single_label)
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


def single_label_themes(rows: pd.DataFrame, mode: str) -> tuple[bool, str]:
    """Whether themes are learnt as one label per text, and why (for the log and the record).

    Parameters
    ----------
    rows
        The theme-labelled rows (:func:`labelled_rows`), themes already mapped to theme ids.
    mode
        ``themes_mode``: ``multi``, ``single``, or ``auto`` (single when every row carries
        exactly one theme and at least two themes occur).

    Raises
    ------
    TextTrainingError
        ``single`` asked for rows that do not each carry exactly one theme, or one theme only.
    """
    themes = split_themes(rows["themes"])
    not_one = [i for i, t in enumerate(themes) if len(t) != 1]
    distinct = sorted({t for ts in themes for t in ts})
    if mode == "multi":
        return False, "themes_mode multi (set in the config): any number of themes per text"
    if mode == "single":
        if not_one:
            shown = ", ".join(str(rows["id"].iloc[i]) for i in not_one[:5])
            raise TextTrainingError(
                f"themes_mode single, but {len(not_one)} of {len(rows)} theme-labelled texts "
                f"carry no theme or several (ids {shown}{' and more' if len(not_one) > 5 else ''}"
                "); give each one theme or use themes_mode multi or auto"
            )
        if len(distinct) < 2:
            raise TextTrainingError(
                f"themes_mode single, but only one theme ({', '.join(distinct)}) is labelled: "
                "nothing to choose between"
            )
        return True, "themes_mode single (set in the config): the most probable theme per text"
    if not_one:
        return False, (
            f"themes_mode auto: {len(not_one)} of {len(rows)} theme-labelled texts carry no theme "
            "or several, so multi-label (each theme at its threshold)"
        )
    if len(distinct) < 2:
        return False, "themes_mode auto: only one theme is labelled, so multi-label"
    return True, (
        f"themes_mode auto: each of the {len(rows)} theme-labelled texts carries exactly one "
        f"theme ({len(distinct)} themes), so single-label (the most probable theme is assigned)"
    )


def _strata(rows: pd.DataFrame, task: Task) -> pd.Series:
    """The label a split is stratified on (themes: the first theme); rare labels pooled."""
    strata = (
        rows["sentiment"].astype(str).reset_index(drop=True)
        if task == "sentiment"
        else pd.Series([t[0] if t else "(none)" for t in split_themes(rows["themes"])])
    )
    counts = strata.value_counts()
    return strata.where(strata.map(counts) >= 2, "(rare)")


def _stratified_split(
    positions: np.ndarray, strata: pd.Series, fraction: float, seed: int, what: str
) -> tuple[np.ndarray, np.ndarray]:
    """``train_test_split`` stratified on ``strata``, plain random when it cannot be."""
    try:
        return train_test_split(
            positions, test_size=fraction, random_state=seed, stratify=strata.to_numpy()
        )
    except ValueError as exc:
        logger.info("%s not stratified (%s)", what, exc)
        return train_test_split(positions, test_size=fraction, random_state=seed)


def split_validation(
    rows: pd.DataFrame, task: Task, fraction: float, seed: int, single_label: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the fitting and validation rows, stratified by label (themes: first theme).

    Labels too rare to appear on both sides are pooled; when even that cannot be stratified the
    split is plain random, and a log line says so. For a label model (sentiment, single-label
    themes) the validation rows of a label absent from the fitting rows move to them.
    """
    fit, validation = _stratified_split(
        np.arange(len(rows)), _strata(rows, task), fraction, seed, f"{task}: validation split"
    )
    if task == "sentiment" or single_label:
        # A class seen only in validation could not be learnt: its rows go to the fitting side.
        labels = task_targets(rows, task, (), single_label)
        unseen = np.isin(labels[validation], labels[fit], invert=True)
        if unseen.any():
            logger.info(
                "%s: %d validation rows of classes absent from the fitting rows moved to them",
                task, int(unseen.sum()),
            )
            fit, validation = np.concatenate([fit, validation[unseen]]), validation[~unseen]
    return np.sort(fit), np.sort(validation)


def split_selection_report(
    validation_rows: pd.DataFrame, task: Task, n_usable: int, seed: int
) -> tuple[np.ndarray, np.ndarray, str]:
    """Positions (in ``validation_rows``) of the selection half and the report half, and a note.

    With a choice to make (``n_usable`` candidates above one) the validation rows are halved,
    stratified like the validation split and seeded: the paired bootstrap chooses on the
    selection half, the reported figures come from the report half. With one candidate, or
    fewer than ``2 * MIN_HALF_ROWS`` rows, both are the whole validation split.
    """
    n = len(validation_rows)
    everything = np.arange(n)
    if n_usable < 2:
        return everything, everything, f"no choice made; figures on all {n} validation rows"
    if n < 2 * MIN_HALF_ROWS:
        return everything, everything, (
            f"only {n} validation rows, too few to halve (a half needs {MIN_HALF_ROWS}), so the "
            "kind was chosen on the same rows the figures come from"
        )
    selection, report = _stratified_split(
        everything, _strata(validation_rows, task), 0.5, seed, f"{task}: selection/report halves"
    )
    return np.sort(selection), np.sort(report), (
        f"kind chosen on {len(selection)} validation rows (selection half), figures from the "
        f"other {len(report)} (report half)"
    )


def task_targets(
    rows: pd.DataFrame, task: Task, theme_ids: Sequence[str], single_label: bool = False
) -> np.ndarray:
    """What a model of ``task`` is fitted on: labels, the theme id per row (single-label
    themes), or the theme indicator matrix."""
    if task == "sentiment":
        return rows["sentiment"].astype(str).to_numpy()
    if single_label:
        return np.asarray([t[0] for t in split_themes(rows["themes"])], dtype=str)
    return theme_indicators(rows["themes"], list(theme_ids))


def task_truth(rows: pd.DataFrame, task: Task, theme_ids: Sequence[str]) -> np.ndarray:
    """What predictions are scored against: labels, or the theme matrix (one-hot when each
    text has one theme), as :func:`validation_predictions` returns them."""
    return task_targets(rows, task, theme_ids)


def validation_predictions(
    model: Any,
    texts: list[str],
    task: Task,
    threshold: float,
    theme_ids: Sequence[str] = (),
    single_label: bool = False,
) -> np.ndarray:
    """Predicted labels (sentiment) or a 0/1 theme matrix (themes), as the bundle assigns them."""
    if task == "sentiment":
        return np.asarray(model.predict(texts)).astype(str)
    # Read the theme columns as the bundle does (one theme: P(theme) of a binary model).
    proba = class_probabilities(model, texts, list(theme_ids), "theme")
    return assign_themes(model, proba, threshold, single_label=single_label)


def task_metrics(
    task: Task,
    truth: np.ndarray,
    predicted: np.ndarray,
    theme_ids: Sequence[str],
    single_label: bool = False,
) -> dict[str, float]:
    """Sentiment: accuracy, macro-F1, F1 per class. Themes: micro- and macro-F1 and F1 per theme
    of the 0/1 matrices; single-label themes add accuracy, and their macro-F1 is that of the
    assigned theme over the themes in truth or prediction (as for sentiment)."""
    if task == "sentiment":
        return evaluation.sentiment_metrics(truth, predicted)
    metrics = evaluation.theme_metrics(truth, predicted, list(theme_ids))
    if single_label:
        labels = evaluation.sentiment_metrics(
            _top_theme(truth, theme_ids), _top_theme(predicted, theme_ids)
        )
        metrics.update(accuracy=labels["accuracy"], macro_f1=labels["macro_f1"])
    return metrics


def _top_theme(matrix: np.ndarray, theme_ids: Sequence[str]) -> np.ndarray:
    """The theme id of each row of a one-hot theme matrix."""
    return np.asarray(list(theme_ids), dtype=str)[np.asarray(matrix).argmax(axis=1)]


def majority_predictions(
    task: Task, y_fit: np.ndarray, n: int, single_label: bool = False
) -> np.ndarray:
    """The majority class (sentiment), the most frequent theme (single-label themes), or the
    themes present in most fitted rows (themes); ``y_fit`` as :func:`task_truth` gives it."""
    if task == "sentiment":
        values, counts = np.unique(y_fit, return_counts=True)
        return np.full(n, values[np.argmax(counts)], dtype=object).astype(str)
    if single_label:
        common = np.zeros(y_fit.shape[1], dtype=int)
        common[np.argmax(y_fit.sum(axis=0))] = 1
        return np.tile(common, (n, 1))
    return np.tile((y_fit.mean(axis=0) > 0.5).astype(int), (n, 1))


def evaluate_candidates(
    kinds: Sequence[Kind],
    task: Task,
    rows: pd.DataFrame,
    fit: np.ndarray,
    validation: np.ndarray,
    config: TextJobConfig,
    taxonomy: Taxonomy,
    single_label: bool = False,
    shared: SharedEncoder | None = None,
) -> list[Candidate]:
    """Fit each kind on ``fit`` rows and score it on ``validation`` rows.

    A kind whose module is not available is recorded with its error and left out of the choice;
    TF-IDF (always available) is the reference. With ``shared``, the transformer candidate is
    read from its multi-task model (fitted without either task's validation texts).
    """
    texts = rows["text"].tolist()
    y = task_targets(rows, task, taxonomy.ids, single_label)
    truth = task_truth(rows, task, taxonomy.ids)
    fit_texts = [texts[i] for i in fit]
    validation_texts = [texts[i] for i in validation]
    metric = primary_metric(task, single_label)
    out = []
    for kind in kinds:
        started = time.perf_counter()
        from_shared = shared is not None and kind == "transformer"
        try:
            if from_shared:
                model = shared.candidate_model(task)
            else:
                model = make_text_model(kind, task, config.model, taxonomy, single_label)
                model.fit(fit_texts, y[fit])
        except ImportError as exc:  # torch, transformers or the encoder package are imported in fit
            logger.warning("%s: candidate %s left out: %s", task, kind, exc)
            out.append(Candidate(kind, {}, np.empty(0), 0.0, error=str(exc)))
            continue
        predicted = validation_predictions(
            model, validation_texts, task, config.threshold, taxonomy.ids, single_label
        )
        metrics = task_metrics(task, truth[validation], predicted, taxonomy.ids, single_label)
        seconds = time.perf_counter() - started
        logger.info(
            "%s: %s fitted on %d texts in %.1f s; %s %.4f on all %d validation rows",
            task,
            kind,
            len(fit),
            seconds,
            metric,
            metrics[metric],
            len(validation),
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
    single_label
        Per task, whether it is learnt as one label per text (sentiment; single-label themes).
    """

    def __init__(
        self,
        rows: dict[Task, pd.DataFrame],
        config: TextJobConfig,
        taxonomy: Taxonomy,
        single_label: dict[Task, bool] | None = None,
    ) -> None:
        self.rows, self.config, self.taxonomy = rows, config, taxonomy
        self.single_label = {task: bool((single_label or {}).get(task)) for task in rows}
        self.splits = {
            task: split_validation(
                task_rows,
                task,
                config.validation.fraction,
                config.validation.seed,
                self.single_label[task],
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
            texts, y = multitask_data(self.rows, positions, self.taxonomy.ids, self.single_label)
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
        single = self.single_label[task]
        model = shared_transformer_model(
            task, self._fitted[which], self.config.model, self.taxonomy, single
        )
        return model.fit(rows["text"].tolist(), task_targets(rows, task, self.taxonomy.ids, single))


def multitask_data(
    rows: dict[Task, pd.DataFrame],
    positions: dict[Task, np.ndarray],
    theme_ids: Sequence[str],
    single_label: dict[Task, bool] | None = None,
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
        target = task_targets(part, task, theme_ids, bool((single_label or {}).get(task)))
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
    single_label: bool = False,
) -> Comparison:
    """Bootstrap the validation texts; the same resample scores both models (a paired test).

    Parameters
    ----------
    task
        ``sentiment`` (macro-F1 of labels) or ``themes`` (micro-F1 of 0/1 matrices; with
        ``single_label``, macro-F1 of the assigned theme).
    truth, candidate, reference
        Validation labels and the two models' predictions, row for row.
    names
        ``(candidate, reference)`` names for the record.
    draws
        Bootstrap resamples.
    seed
        Random seed of the resampling.
    single_label
        Themes are one-hot rows: compared as labels (their column).
    """
    labels = task == "sentiment" or single_label
    score = evaluation.macro_f1_of_labels if labels else evaluation.micro_f1_of_indicators
    if task == "themes" and single_label:
        truth, candidate, reference = (np.argmax(a, axis=1) for a in (truth, candidate, reference))
    elif labels:
        codes = {
            label: i
            for i, label in enumerate(np.unique(np.concatenate([truth, candidate, reference])))
        }
        truth, candidate, reference = (
            np.array([codes[v] for v in a]) for a in (truth, candidate, reference)
        )
    difference, low, high = evaluation.paired_bootstrap(
        truth, candidate, reference, score, draws, seed
    )
    return Comparison(
        candidate=names[0],
        reference=names[1],
        metric=primary_metric(task, single_label),
        difference=difference,
        low=low,
        high=high,
        draws=draws,
        n_texts=len(truth),
    )


def choose_kind(
    task: Task,
    candidates: list[Candidate],
    truth: np.ndarray,
    draws: int,
    seed: int,
    single_label: bool = False,
    selection: np.ndarray | None = None,
) -> tuple[str, list[Comparison], str]:
    """The kind to keep: the reference (first) unless another beats it in a paired bootstrap.

    Parameters
    ----------
    task, candidates, truth
        The task, its candidates (predictions on every validation row) and the validation truth.
    draws, seed
        Of the paired bootstrap.
    single_label
        Themes learnt as one label per text: compared by macro-F1 of the assigned theme.
    selection
        Positions of the validation rows that choose (the selection half); default all.

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
    rows = np.arange(len(truth)) if selection is None else np.asarray(selection)
    comparisons = [
        paired_bootstrap(
            task, truth[rows], c.predicted[rows], reference.predicted[rows],
            (c.kind, reference.kind), draws, seed, single_label,
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
    # The largest gain over the reference on the choosing rows (the same reference for all).
    _, best = max(winners, key=lambda pair: pair[0].difference)
    return best.kind, comparisons, f"{best.kind} beat {reference.kind} ({notes})"


def train_task(
    task: Task,
    rows: pd.DataFrame,
    config: TextJobConfig,
    taxonomy: Taxonomy,
    single_label: bool = False,
    shared: SharedEncoder | None = None,
) -> TaskResult:
    """Split, evaluate the candidates, choose one on the selection half, report on the other
    half, and refit the chosen kind on every labelled row.

    With ``shared``, the split is the one it carved for ``task`` and the transformer (candidate
    and refit) is read from its multi-task models.
    """
    if shared is not None:
        fit, validation = shared.splits[task]
    else:
        fit, validation = split_validation(
            rows, task, config.validation.fraction, config.validation.seed, single_label
        )
    truth = task_truth(rows, task, taxonomy.ids)
    if task == "themes":
        never = [t for t, n in zip(taxonomy.ids, truth.sum(axis=0)) if n == 0]
        if never:
            logger.warning(
                "themes never labelled in this file: %s; the supervised model gives them "
                "probability 0%s",
                ", ".join(never),
                "" if single_label else ", and they count as F1 0 in macro-F1",
            )
    candidates = evaluate_candidates(
        candidate_kinds(config.model), task, rows, fit, validation, config, taxonomy,
        single_label, shared,
    )
    usable = [c for c in candidates if c.error is None]
    selection, report, use = split_selection_report(
        rows.iloc[validation], task, len(usable), config.validation.seed
    )
    kind, comparisons, how = choose_kind(
        task, candidates, truth[validation], config.validation.bootstrap,
        config.validation.seed, single_label, selection,
    )
    for candidate in usable:  # the reported figures: the report half only
        candidate.metrics = task_metrics(
            task, truth[validation][report], candidate.predicted[report], taxonomy.ids,
            single_label,
        )
    chosen = next(c for c in candidates if c.kind == kind)
    reported = validation[report]
    baseline = task_metrics(
        task, truth[reported],
        majority_predictions(task, truth[fit], len(reported), single_label),
        taxonomy.ids, single_label,
    )
    from_shared = shared is not None and kind == "transformer"
    if from_shared:
        model = shared.kept_model(task)
        how += (
            "; the transformer is one encoder shared with the other task (candidate fitted "
            "without either task's validation texts, kept model on all labelled rows of both)"
        )
    else:
        y = task_targets(rows, task, taxonomy.ids, single_label)
        model = make_text_model(kind, task, config.model, taxonomy, single_label)
        model.fit(rows["text"].tolist(), y)
    logger.info("%s: %s refitted on all %d labelled texts (%s; %s)", task, kind, len(rows), how, use)
    return TaskResult(
        task=task,
        kind=kind,
        model=model,
        n_labelled=len(rows),
        n_fit=len(fit),
        n_validation=len(reported),
        n_selection=len(selection) if len(selection) < len(validation) else 0,
        single_label=single_label,
        validation_use=use,
        metrics=chosen.metrics,
        baseline_metrics=baseline,
        candidates=candidates,
        comparisons=comparisons,
        how_chosen=how,
        validation_ids=rows["id"].iloc[reported].astype(str).tolist(),
        validation_model=chosen.model,
        validation_texts=[rows["text"].iloc[i] for i in reported],
        validation_truth=truth[reported],
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
    themes_mode = ""
    labelled = {task: labelled_rows(table, task) for task in TASKS}
    enough = {
        task: len(rows) >= config.validation.min_labelled
        and (task == "themes" or rows["sentiment"].nunique() >= 2)
        for task, rows in labelled.items()
    }
    single = {task: False for task in TASKS}
    if enough["themes"]:
        single["themes"], themes_mode = single_label_themes(labelled["themes"], config.themes_mode)
        logger.info("themes: %s", themes_mode)
    shared = (
        SharedEncoder(labelled, config, taxonomy, single)
        if all(enough.values()) and shares_encoder(config.model)
        else None
    )
    for task in tqdm(TASKS, desc="Training text models", unit="task", disable=not show_progress):
        rows = labelled[task]
        if enough[task]:
            tasks[task] = train_task(task, rows, config, taxonomy, single[task], shared)
            continue
        why = f"{task}: {len(rows)} labelled texts (need {config.validation.min_labelled}"
        why += ", two classes)" if task == "sentiment" else ")"
        if config.model.unlabelled == "skip":
            skipped.append(f"{why}; left out (model.unlabelled: skip)")
            continue
        if len(rows):
            logger.warning("%s; too few labels to learn from: zero-label instead", why)
        if task == "themes":
            themes_mode = (
                f"themes_mode {config.themes_mode}, no labels to detect it from: "
                + ("single-label" if config.themes_mode == "single" else "multi-label")
            )
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
        single_label_themes="themes" in tasks and _assigns_one_theme(tasks["themes"], config),
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
        themes_mode=themes_mode if "themes" in tasks else "",
    )


def _assigns_one_theme(result: TaskResult, config: TextJobConfig) -> bool:
    """Single-label themes: learnt so (labels), or asked for explicitly (zero-label)."""
    return result.single_label if result.supervised else config.themes_mode == "single"


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
        # Single-label figures (macro-F1 of the assigned theme) are not multi-label ones.
        out += [task + (" single-label" if result.single_label else ""), *result.validation_texts]
        out += labels
    return out


def tuned_on(tasks: dict[str, TaskResult], config: TextJobConfig) -> str:
    """How the settings were chosen and where the reported figures come from, for the record."""
    supervised = {t: r for t, r in tasks.items() if r.supervised}
    if not supervised:
        return "nothing tuned: zero-label models, no labels to validate on"
    split = (
        f"validation split ({config.validation.fraction:.0%} of the labelled rows, stratified, "
        f"seed {config.validation.seed})"
    )
    refit = "no separate test split; the kept model is then refitted on all labelled rows"
    shared = ""
    if any(c.shared_encoder for r in tasks.values() for c in r.candidates):
        shared = (
            "; the transformer candidates share one multi-task encoder, fitted without the "
            "validation texts of either task"
        )
    if config.model.kind != "auto":
        return (
            f"{split}; chosen on it: nothing; the reported metrics are on that split; "
            f"{refit}{shared}"
        )
    notes = "; ".join(f"{task}: {r.validation_use}" for task, r in supervised.items())
    return (
        f"{split}, halved (stratified, seed {config.validation.seed}) when there is a choice: "
        "the model kind is chosen by a paired bootstrap on the selection half; the reported "
        "metrics, evaluation report and majority baseline come from the report half, which "
        f"took no part in the choice ({notes}); {refit}{shared}"
    )
