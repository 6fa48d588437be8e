"""One encoder fine-tuned for several text tasks at once: sentiment and themes in one pass.

:class:`MultiTaskTextClassifier` fine-tunes one encoder with one head per task: a softmax
(cross-entropy) head for a label vector such as sentiment, a sigmoid (binary cross-entropy) head
per column for an indicator matrix such as themes (a label vector of themes gets a softmax head).
The heads are the column blocks of one ``torch.nn.Linear`` over the pooled sentence vector, so
the network is the :class:`~retain.text.transformer.EncoderNetwork` of the single-task model and
fine-tunes, stores (skops or pickle) and quantises the same way (the training loop is
:class:`~retain.text.transformer.FineTuningMixin`'s).

It trains on the union of the rows carrying any task's label; a row without a label for a task
is left out of that head's loss. :meth:`MultiTaskTextClassifier.task` gives a per-task view
(:class:`SharedEncoderTask`) that reads like a fitted scikit-learn classifier (``classes_``,
``predict_proba``, ``predict``, ``thresholds_``), so :class:`~retain.text.bundle.TextModelBundle`
and :func:`~retain.text.scoring.score_feedback` take it unchanged. Scoring the same texts for
two tasks runs the encoder once: the model computes every head in one pass and keeps the last
result, keyed by a digest of the texts.

torch and transformers are imported inside functions only.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from retain.text.encoder import DEFAULT_ENCODER
from retain.text.inputs import as_texts
from retain.text.transformer import (
    _DEFAULT_THRESHOLD,
    FineTuningMixin,
    _load_network,
    _log_loss,
    _probabilities,
    _score,
    _targets,
    head_loss,
    tune_thresholds,
    validation_split,
)

logger = logging.getLogger(__name__)


def text_digest(texts: list[str]) -> str:
    """A digest of a list of texts (order and boundaries included), to recognise it again."""
    digest = hashlib.sha256()
    for text in texts:
        encoded = text.encode("utf-8", "surrogatepass")
        digest.update(len(encoded).to_bytes(8, "little") + encoded)
    return digest.hexdigest()


def labelled_mask(values: Any) -> np.ndarray:
    """Rows that carry a label: not missing (1-d), or not missing in every column (2-d).

    A row of an indicator matrix missing in some columns only is an error: it is neither a
    labelled row nor an unlabelled one.
    """
    array = np.asarray(values, dtype=object)
    missing = pd.isna(array)
    if array.ndim == 1:
        return ~missing
    if array.ndim != 2:
        raise ValueError(f"a task target must be 1-d or 2-d, got shape {array.shape}")
    partial = missing.any(axis=1) & ~missing.all(axis=1)
    if partial.any():
        raise ValueError(
            f"rows {np.flatnonzero(partial)[:5].tolist()} of an indicator matrix are missing in "
            "some columns only; mark an unlabelled row missing in every column"
        )
    return ~missing.all(axis=1)


class Head(NamedTuple):
    """One task's head: its columns of the shared output, its rows and its loss."""

    first: int
    last: int
    labelled: np.ndarray  # bool per row of the training data
    target: Any  # torch tensor per row: class positions (-1 unlabelled) or a 0/1 matrix
    loss: Any  # torch loss of (logits, target) for the labelled rows


def masked_loss(logits: Any, rows: np.ndarray, heads: Sequence[Head]) -> Any:
    """The summed loss of every head over the rows of the batch that carry its label.

    A row without a task's label adds nothing to that head's loss (nor gradient to its
    logits); a head none of whose rows is labelled in this batch adds 0.

    Parameters
    ----------
    logits
        The shared head's output for the batch, ``(len(rows), total columns)``.
    rows
        The batch's row positions in the training data.
    heads
        Per task, its :class:`Head`.
    """
    import torch

    total = logits.new_zeros(())
    for head in heads:
        keep = head.labelled[rows]
        if keep.any():
            own = logits[torch.from_numpy(keep), head.first : head.last]
            total = total + head.loss(own, head.target[rows[keep]])
    return total


class MultiTaskTextClassifier(FineTuningMixin, BaseEstimator):
    """One fine-tuned encoder with a head per task (e.g. sentiment and themes).

    ``fit(X, y)`` takes texts ``X`` and ``y`` a mapping from task name to that task's target,
    row for row with ``X``: a label vector (``None``/NaN where a row has no label: softmax head)
    or a 0/1 indicator matrix (a row missing in every column where it has no labels: one sigmoid
    per column, per-column ``thresholds_`` tuned on validation rows). Every row must carry at
    least one task's label; a row without a task's label is left out of that head's loss.

    The settings mean what they mean in
    :class:`~retain.text.transformer.TransformerTextClassifier` (fine-tuning only).

    Parameters
    ----------
    encoder
        Encoder name or folder (see :func:`retain.text.encoder.resolve_encoder`).
    epochs, batch_size, learning_rate, weight_decay, warmup_fraction, dropout, max_length
        Fine-tuning settings; the epoch with the lowest validation loss (summed over the tasks)
        is kept.
    class_weight
        None or ``"balanced"``, per head, from that head's training rows.
    validation_fraction
        Share of the rows held out to choose the epoch and the theme thresholds (stratified by
        the first label-vector task, rows without its label a stratum of their own).
    min_validation_positives
        A theme column with fewer validation positives keeps the threshold 0.5.
    quantize
        Score with an int8 copy of the encoder.
    inference_batch_size
        Texts per forward pass when scoring.
    progress
        Show progress bars while training and scoring.
    random_state
        Seed for the validation split, the heads' initialisation, dropout and batch order.

    Attributes
    ----------
    tasks_ : tuple of str
        Task names, in the order of ``y``.
    classes_ : list of numpy.ndarray
        Per task (``tasks_`` order), its classes: sorted labels, or ``0..k-1`` for a matrix.
    task_classes_, multilabel_, columns_ : dict
        Per task: its classes, whether it is multi-label, and its ``(start, stop)`` columns of
        the shared head.
    thresholds_, threshold_sources_ : dict
        Per multi-label task: per-column probability cut and how it was chosen.
    n_labelled_ : dict
        Per task: rows carrying its label.
    n_train_rows_, n_validation_rows_ : int
        Rows trained on and held out (inner validation).
    best_epoch_, validation_history_
        As in :class:`~retain.text.transformer.TransformerTextClassifier`; the history holds
        ``validation_loss`` (the sum) and ``validation_loss_<task>``, ``validation_score_<task>``.
    network_ : EncoderNetwork
        Tokenizer, encoder and the shared head (``columns_`` says which outputs are whose).
    """

    def __init__(
        self,
        encoder: str = DEFAULT_ENCODER,
        epochs: int = 3,
        batch_size: int = 32,
        learning_rate: float = 1e-4,
        weight_decay: float = 0.01,
        warmup_fraction: float = 0.1,
        dropout: float = 0.1,
        max_length: int = 128,
        class_weight: str | None = None,
        validation_fraction: float = 0.1,
        min_validation_positives: int = 3,
        quantize: bool = False,
        inference_batch_size: int = 64,
        progress: bool = False,
        random_state: int | None = 0,
    ) -> None:
        self.encoder = encoder
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.warmup_fraction = warmup_fraction
        self.dropout = dropout
        self.max_length = max_length
        self.class_weight = class_weight
        self.validation_fraction = validation_fraction
        self.min_validation_positives = min_validation_positives
        self.quantize = quantize
        self.inference_batch_size = inference_batch_size
        self.progress = progress
        self.random_state = random_state

    # -- fitting ---------------------------------------------------------------------------------

    def fit(self, X: Any, y: Mapping[str, Any]) -> MultiTaskTextClassifier:
        """Fine-tune one encoder for every task in ``y`` on texts ``X``.

        Returns
        -------
        MultiTaskTextClassifier
            ``self``.
        """
        import torch

        if self.class_weight not in (None, "balanced"):
            raise ValueError(f"class_weight must be None or 'balanced', got {self.class_weight!r}")
        if not isinstance(y, Mapping) or not y:
            raise ValueError("y must be a non-empty mapping from task name to its target")
        texts = as_texts(X)
        labelled, encoded = {}, {}
        self.tasks_ = tuple(y)
        self.task_classes_, self.multilabel_, self.columns_, self.n_labelled_ = {}, {}, {}, {}
        start = 0
        for task, values in y.items():
            if len(values) != len(texts):
                raise ValueError(f"X has {len(texts)} rows but y[{task!r}] has {len(values)}")
            labelled[task] = labelled_mask(values)
            classes, target, multilabel = _targets(np.asarray(values)[labelled[task]])
            encoded[task] = _spread(target, labelled[task])
            self.task_classes_[task], self.multilabel_[task] = classes, multilabel
            self.columns_[task] = (start, start + len(classes))
            self.n_labelled_[task] = int(labelled[task].sum())
            start += len(classes)
        self.classes_ = [self.task_classes_[t] for t in self.tasks_]
        carried = np.logical_or.reduce([labelled[t] for t in self.tasks_])
        if not carried.all():
            raise ValueError(f"{int((~carried).sum())} rows carry no task's label")

        train, validation = validation_split(
            self._strata(labelled, encoded), self.validation_fraction, self.random_state, False
        )
        self.n_train_rows_, self.n_validation_rows_ = len(train), len(validation)
        self.validation_digests_ = frozenset(text_digest([texts[i]]) for i in validation)
        network = _load_network(self.encoder, self.random_state)
        network.head = torch.nn.Linear(network.dimension, start)
        self.network_ = network
        heads = [
            Head(
                *self.columns_[task],
                labelled[task],
                torch.from_numpy(encoded[task]),
                head_loss(
                    encoded[task][train[labelled[task][train]]],
                    self.multilabel_[task],
                    len(self.task_classes_[task]),
                    self.class_weight,
                ),
            )
            for task in self.tasks_
        ]

        def batch_loss(logits: Any, rows: np.ndarray) -> Any:
            return masked_loss(logits, rows, heads)

        def validation_record(logits: np.ndarray) -> dict[str, float]:
            record = {"validation_loss": 0.0}
            for task, proba, truth in self._validation_heads(logits, validation, labelled, encoded):
                if len(truth):
                    multilabel = self.multilabel_[task]
                    record[f"validation_loss_{task}"] = _log_loss(truth, proba, multilabel)
                    record[f"validation_score_{task}"] = _score(truth, proba, multilabel)
                    record["validation_loss"] += record[f"validation_loss_{task}"]
            return record

        self._fine_tune_epochs(texts, None, train, validation, batch_loss, validation_record)
        logits = self._head_logits([texts[i] for i in validation], None, False)
        self.thresholds_, self.threshold_sources_ = {}, {}
        for task, proba, truth in self._validation_heads(logits, validation, labelled, encoded):
            if self.multilabel_[task]:
                self._set_thresholds(task, truth, proba)
        return self

    def _strata(self, labelled: dict[str, np.ndarray], encoded: dict[str, np.ndarray]) -> Any:
        """Stratum per row: the class of the first label-vector task, or one for "no label"."""
        single = [t for t in self.tasks_ if not self.multilabel_[t]]
        if not single:
            return np.zeros(len(next(iter(labelled.values()))), dtype=np.int64)
        task = single[0]
        return np.where(labelled[task], encoded[task], len(self.task_classes_[task]))

    def _validation_heads(
        self,
        logits: np.ndarray,
        validation: np.ndarray,
        labelled: dict[str, np.ndarray],
        encoded: dict[str, np.ndarray],
    ) -> list[tuple[str, np.ndarray, np.ndarray]]:
        """Per task ``(task, probabilities, truth)`` on the validation rows carrying its label."""
        out = []
        for task in self.tasks_:
            own = labelled[task][validation]
            first, last = self.columns_[task]
            proba = _probabilities(logits[own, first:last], self.multilabel_[task])
            out.append((task, proba, encoded[task][validation[own]]))
        return out

    def _set_thresholds(self, task: str, truth: np.ndarray, proba: np.ndarray) -> None:
        k = len(self.task_classes_[task])
        if len(truth):
            thresholds, sources = tune_thresholds(truth, proba, self.min_validation_positives)
        else:
            thresholds = np.full(k, _DEFAULT_THRESHOLD)
            sources = np.full(k, "default", dtype=object)
        self.thresholds_[task], self.threshold_sources_[task] = thresholds, sources
        logger.info(
            "%s thresholds: %d of %d chosen on %d validation rows",
            task,
            int((sources == "validation_f1").sum()),
            k,
            len(truth),
        )

    # -- prediction ------------------------------------------------------------------------------

    def predict_tasks(self, X: Any) -> dict[str, np.ndarray]:
        """Every task's probabilities from one encoder pass, ``{task: (n, len(classes))}``.

        The last result is kept (keyed by a digest of the texts and the ``quantize`` setting):
        asking again for the same texts, e.g. the theme view right after the sentiment view,
        does not run the encoder again. Treat the arrays as read-only.
        """
        check_is_fitted(self, "network_")
        texts = as_texts(X)
        key = (text_digest(texts), bool(self.quantize))
        last = getattr(self, "_last_scores", None)
        if last is not None and last[0] == key:
            return last[1]
        width = self.columns_[self.tasks_[-1]][1]
        logits = self._head_logits(texts, None, self.quantize) if texts else np.zeros((0, width))
        scores = {
            task: _probabilities(logits[:, first:last], self.multilabel_[task])
            for task, (first, last) in self.columns_.items()
        }
        self._last_scores = (key, scores)
        return scores

    def predict_proba(self, X: Any) -> list[np.ndarray]:
        """Per task (``tasks_`` order) its probabilities, as ``MultiOutputClassifier`` does."""
        scores = self.predict_tasks(X)
        return [scores[t].copy() for t in self.tasks_]

    def predict(self, X: Any) -> list[np.ndarray]:
        """Per task (``tasks_`` order): labels, or the 0/1 matrix ``proba >= thresholds_``."""
        return [self.task(t).predict(X) for t in self.tasks_]

    def task(self, name: str) -> SharedEncoderTask:
        """The fitted classifier of one task, sharing this model (and its encoder pass)."""
        check_is_fitted(self, "network_")
        if name not in self.tasks_:
            raise KeyError(f"no task {name!r}; the model has {', '.join(self.tasks_)}")
        return SharedEncoderTask(self, name)

    def held_out(self, X: Any) -> np.ndarray:
        """Which texts of ``X`` were inner validation rows (never trained on), as booleans."""
        check_is_fitted(self, "network_")
        return np.array([text_digest([t]) in self.validation_digests_ for t in as_texts(X)])

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())
        state.pop("_last_scores", None)  # scores of the last texts: not part of the model
        return state

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = False
        return tags


def _spread(target: np.ndarray, labelled: np.ndarray) -> np.ndarray:
    """``target`` of the labelled rows placed on all rows (-1 or zeros where unlabelled)."""
    if target.ndim == 2:
        out = np.zeros((len(labelled), target.shape[1]), dtype=np.float32)
    else:
        out = np.full(len(labelled), -1, dtype=np.int64)
    out[labelled] = target
    return out


class SharedEncoderTask:
    """One task of a fitted :class:`MultiTaskTextClassifier`, read as a fitted classifier.

    It has ``classes_``, ``predict_proba``, ``predict`` and, for a multi-label task,
    ``thresholds_``; every view of the same model shares its network and its last encoder pass.
    ``fit`` does nothing (like scikit-learn's ``FrozenEstimator``): the model is fitted once, for
    all its tasks. Not an estimator: ``clone`` would copy the model, not refit one task.
    """

    def __init__(self, model: MultiTaskTextClassifier, task: str) -> None:
        self.model = model
        self.task = task

    @property
    def classes_(self) -> np.ndarray:
        return self.model.task_classes_[self.task]

    @property
    def multilabel_(self) -> bool:
        return self.model.multilabel_[self.task]

    @property
    def thresholds_(self) -> np.ndarray:
        if self.task not in self.model.thresholds_:
            raise AttributeError(f"task {self.task!r} is not multi-label: no thresholds_")
        return self.model.thresholds_[self.task]

    @property
    def threshold_sources_(self) -> np.ndarray:
        if self.task not in self.model.threshold_sources_:
            raise AttributeError(f"task {self.task!r} is not multi-label: no threshold_sources_")
        return self.model.threshold_sources_[self.task]

    def fit(self, X: Any = None, y: Any = None) -> SharedEncoderTask:
        """Nothing to do: the shared model is already fitted. Returns ``self``."""
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """This task's probabilities ``(n, len(classes_))`` (one encoder pass for all tasks)."""
        return self.model.predict_tasks(X)[self.task].copy()

    def predict(self, X: Any) -> np.ndarray:
        """Labels, or for a multi-label task the 0/1 matrix ``proba >= thresholds_``."""
        proba = self.predict_proba(X)
        if self.multilabel_:
            return (proba >= self.thresholds_).astype(int)
        return self.classes_[proba.argmax(axis=1)]

    def held_out(self, X: Any) -> np.ndarray:
        """Which texts of ``X`` the shared model held out of training (see the model's)."""
        return self.model.held_out(X)

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self.model, "network_")

    def __repr__(self) -> str:
        return f"SharedEncoderTask({self.task!r} of {type(self.model).__name__})"
