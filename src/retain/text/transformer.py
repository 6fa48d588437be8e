"""Transformer text classifiers behind the same scikit-learn contract as the TF-IDF pipelines.

:class:`TransformerTextClassifier` fine-tunes an encoder (or reads frozen sentence vectors into
a logistic regression) for sentiment (``y`` 1-d: one softmax over the sorted ``classes_``) or
themes (``y`` a 0/1 indicator matrix: one sigmoid per column, ``classes_`` the positions
``0..k-1``, per-theme ``thresholds_`` chosen on validation rows). Its input is texts or text
pairs (sentence, aspect), so it also scores sentiment towards a given theme.

:class:`BlendedTextClassifier` averages several such classifiers (e.g. the TF-IDF pipeline and
a transformer) with weights chosen on validation rows carved from the training data.

Both fit in anything that takes the TF-IDF pipelines: :func:`retain.text.scoring.score_feedback`,
``clone``, skops (and pickling) and MLflow's sklearn flavour. A fitted transformer model carries
its weights and tokenizer inside the stored model (plain data: see :class:`EncoderNetwork`):
loading it reads nothing from disk or network.

torch and transformers are imported inside functions only.
"""

from __future__ import annotations

import copy
import itertools
import logging
import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.multiclass import OneVsRestClassifier
from sklearn.utils.validation import check_is_fitted

from retain.config import TextModelConfig
from retain.text.encoder import (
    DEFAULT_ENCODER,
    encoder_from_state,
    encoder_state,
    length_sorted_batches,
    mean_pool,
    resolve_encoder,
    weights_from_state,
    weights_to_bytes,
)
from retain.text.inputs import as_texts

logger = logging.getLogger(__name__)

MODES = ("fine_tune", "frozen")
"""How :class:`TransformerTextClassifier` learns: train the encoder, or only a head over it."""

_DEFAULT_THRESHOLD = 0.5
_PAIR_JOIN = " | "  # how a text pair reads to TF-IDF, which has no notion of pairs
_BUCKET_BATCHES = 50  # batches per length-sorted chunk when shuffling for training


# --------------------------------------------------------------------------------------------
# Inputs and targets
# --------------------------------------------------------------------------------------------


def as_text_pairs(X: Any) -> tuple[list[str], list[str] | None]:
    """Texts, or text pairs split into first and second texts.

    Parameters
    ----------
    X
        Texts (anything :func:`retain.text.inputs.as_texts` takes) or text pairs: a two-column
        DataFrame, an ``(n, 2)`` array or a list of 2-tuples ``(text, text_pair)``, e.g.
        ``(sentence, theme name)`` for sentiment towards a theme.

    Returns
    -------
    tuple
        ``(texts, pairs)``; ``pairs`` is None for single texts. Missing values become ``""``.
    """
    if isinstance(X, pd.DataFrame):
        if X.shape[1] == 2:
            return as_texts(X.iloc[:, 0]), as_texts(X.iloc[:, 1])
        return as_texts(X), None
    if isinstance(X, str):
        raise TypeError("expected a sequence of texts, got a single string")
    if isinstance(X, pd.Series):
        return as_texts(X), None
    if isinstance(X, np.ndarray):
        if X.ndim == 2 and X.shape[1] == 2:
            return as_texts(X[:, 0]), as_texts(X[:, 1])
        return as_texts(X), None
    rows = list(X)
    if rows and all(isinstance(r, (tuple, list)) and len(r) == 2 for r in rows):
        return as_texts([r[0] for r in rows]), as_texts([r[1] for r in rows])
    return as_texts(rows), None


def _joined(texts: list[str], pairs: list[str] | None) -> list[str]:
    if pairs is None:
        return texts
    return [f"{t}{_PAIR_JOIN}{p}" for t, p in zip(texts, pairs, strict=True)]


def _subset(texts: list[str], pairs: list[str] | None, rows: np.ndarray) -> tuple[Any, Any]:
    return [texts[i] for i in rows], None if pairs is None else [pairs[i] for i in rows]


def _targets(y: Any) -> tuple[np.ndarray, np.ndarray, bool]:
    """``(classes_, encoded, multilabel)``: class positions per row, or the 0/1 matrix."""
    values = np.asarray(y)
    if values.ndim == 2:
        if values.shape[1] == 0:
            raise ValueError("the indicator matrix y has no columns")
        indicator = (values.astype(float) > 0).astype(np.float32)
        return np.arange(values.shape[1]), indicator, True
    if values.ndim != 1:
        raise ValueError(
            f"y must be 1-d labels or a 2-d indicator matrix, got shape {values.shape}"
        )
    classes, encoded = np.unique(values, return_inverse=True)
    if len(classes) < 2:
        raise ValueError(f"need at least 2 classes to fit a classifier, got {list(classes)}")
    return classes, encoded.astype(np.int64), False


def validation_split(
    target: np.ndarray, fraction: float, random_state: int | None, multilabel: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Row positions ``(train, validation)``; stratified by class where every class allows it.

    ``fraction`` 0 (or too few rows for one validation row) gives no validation rows.
    """
    n = len(target)
    rows = np.arange(n)
    n_validation = math.floor(n * fraction)
    if fraction <= 0 or n_validation < 1 or n - n_validation < 1:
        return rows, rows[:0]
    stratify = None
    if not multilabel:
        counts = np.bincount(target)
        if counts.min() >= 2 and n_validation >= len(counts) and n - n_validation >= len(counts):
            stratify = target
    train, validation = train_test_split(
        rows, test_size=n_validation, random_state=random_state, stratify=stratify
    )
    return np.sort(train), np.sort(validation)


def tune_thresholds(
    Y: np.ndarray, proba: np.ndarray, min_positives: int = 3, default: float = _DEFAULT_THRESHOLD
) -> tuple[np.ndarray, np.ndarray]:
    """Per column, the probability cut that maximises F1 on ``(Y, proba)``.

    Parameters
    ----------
    Y
        0/1 matrix ``(n, k)`` of validation labels.
    proba
        Predicted probabilities ``(n, k)`` for the same rows.
    min_positives
        Columns with fewer validation positives keep ``default``.
    default
        Threshold used where validation data cannot choose one.

    Returns
    -------
    tuple
        ``(thresholds, sources)``: ``float`` array ``(k,)`` and, per column, ``"validation_f1"``
        or ``"default"``. A chosen cut sits midway between the lowest probability it keeps and
        the next lower one seen, so it does not hug a single validation example.
    """
    Y = np.asarray(Y) > 0
    proba = np.asarray(proba, dtype=float)
    k = Y.shape[1]
    thresholds = np.full(k, default, dtype=float)
    sources = np.full(k, "default", dtype=object)
    for j in range(k):
        positives = int(Y[:, j].sum())
        if positives < min_positives:
            continue
        cuts = np.unique(proba[:, j])[::-1]  # highest first: predicted set grows
        best_f1, best = -1.0, 0
        for i, cut in enumerate(cuts):
            predicted = proba[:, j] >= cut
            tp = int((predicted & Y[:, j]).sum())
            f1 = 2 * tp / (predicted.sum() + positives)
            if f1 > best_f1:
                best_f1, best = f1, i
        lower = cuts[best + 1] if best + 1 < len(cuts) else 0.0
        thresholds[j] = (cuts[best] + lower) / 2
        sources[j] = "validation_f1"
    return thresholds, sources


def _log_loss(target: np.ndarray, proba: np.ndarray, multilabel: bool) -> float:
    """Mean log loss: cross-entropy over classes, or mean binary cross-entropy over columns."""
    proba = np.clip(np.asarray(proba, dtype=float), 1e-7, 1 - 1e-7)
    if multilabel:
        return float(-np.mean(target * np.log(proba) + (1 - target) * np.log(1 - proba)))
    return float(-np.mean(np.log(proba[np.arange(len(target)), target])))


def _score(target: np.ndarray, proba: np.ndarray, multilabel: bool) -> float:
    """Accuracy (multi-class) or micro-F1 at 0.5 (multi-label): a readable validation figure."""
    if multilabel:
        predicted = proba >= _DEFAULT_THRESHOLD
        truth = target > 0
        tp = float((predicted & truth).sum())
        denominator = float(predicted.sum() + truth.sum())
        return 2 * tp / denominator if denominator else 1.0
    return float(np.mean(proba.argmax(axis=1) == target))


def length_bucketed_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator) -> list:
    """Shuffled training batches of similar length: sort by length within random chunks."""
    order = rng.permutation(len(lengths))
    chunk = batch_size * _BUCKET_BATCHES
    batches = []
    for start in range(0, len(order), chunk):
        rows = order[start : start + chunk]
        rows = rows[np.argsort(-lengths[rows], kind="stable")]
        batches.extend(rows[i : i + batch_size] for i in range(0, len(rows), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


# --------------------------------------------------------------------------------------------
# The network: a tokenizer, an encoder and an optional linear head, stored as plain data
# --------------------------------------------------------------------------------------------


class EncoderNetwork:
    """A tokenizer, a Hugging Face encoder and an optional linear head, on the CPU.

    Its state is plain data (:func:`retain.text.encoder.encoder_state`: the tokenizer's files,
    the encoder's config as JSON, the encoder's and head's weights as safetensors bytes), so
    skops (or pickle) rebuilds it without ``from_pretrained`` or the network. The int8 copy made
    by :meth:`quantized` is not stored; it is remade on first use.
    """

    def __init__(self, tokenizer: Any, encoder: Any, head: Any | None = None) -> None:
        self.tokenizer = tokenizer
        self.encoder = encoder
        self.head = head
        self._quantized: Any | None = None

    def __getstate__(self) -> dict[str, Any]:
        # Plain data only (see encoder_state): the head's tensors beside the encoder's.
        tensors = {f"encoder.{k}": v for k, v in self.encoder.state_dict().items()}
        if self.head is not None:
            tensors.update({f"head.{k}": v for k, v in self.head.state_dict().items()})
        head_shape = None if self.head is None else (self.head.in_features, self.head.out_features)
        return {**encoder_state(self.tokenizer, self.encoder, tensors), "head_shape": head_shape}

    def __setstate__(self, state: dict[str, Any]) -> None:
        import torch

        if "weights_safetensors" not in state:  # older torch.save bytes: {"encoder": .., "head": ..}
            nested = weights_from_state(state)
            flat = {f"{part}.{k}": v for part, tensors in nested.items() for k, v in tensors.items()}
            state = {**state, "weights_safetensors": weights_to_bytes(flat)}
        tokenizer, encoder = encoder_from_state(state, prefix="encoder.")
        head = None
        if state["head_shape"] is not None:
            weights = weights_from_state(state)
            head = torch.nn.Linear(*state["head_shape"])
            head.load_state_dict({k.removeprefix("head."): v for k, v in weights.items() if k.startswith("head.")})
            head.eval()
        self.tokenizer, self.encoder, self.head = tokenizer, encoder, head
        self._quantized = None

    @property
    def dimension(self) -> int:
        """Length of the pooled sentence vectors."""
        return int(self.encoder.config.hidden_size)

    def quantized(self) -> Any:
        """An int8 copy of the encoder (dynamic quantisation of its Linear layers), made once."""
        if self._quantized is None:
            import torch

            with warnings.catch_warnings():
                # torch.ao.quantization is deprecated in favour of torchao, not yet a dependency.
                warnings.simplefilter("ignore", DeprecationWarning)
                warnings.simplefilter("ignore", UserWarning)
                self._quantized = torch.ao.quantization.quantize_dynamic(
                    copy.deepcopy(self.encoder), {torch.nn.Linear}, dtype=torch.qint8
                )
            self._quantized.eval()
        return self._quantized

    def tokens(self, texts: list[str], pairs: list[str] | None, max_length: int) -> Any:
        """Padded, truncated token tensors for one batch of texts (or text pairs)."""
        return self.tokenizer(
            texts,
            pairs,
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        )

    def pooled(self, tokens: Any, encoder: Any | None = None) -> Any:
        """Mean-pooled last hidden states ``(batch, dimension)`` (a torch tensor)."""
        hidden = (encoder or self.encoder)(**tokens).last_hidden_state
        return mean_pool(hidden, tokens["attention_mask"])

    def vectors(
        self,
        texts: list[str],
        pairs: list[str] | None,
        *,
        batch_size: int,
        max_length: int,
        normalize: bool,
        apply_head: bool,
        quantize: bool,
        progress: bool,
    ) -> np.ndarray:
        """Pooled vectors (or head outputs) for all texts, rows in input order.

        Texts are sorted by length and batched so padding stays short, under
        ``torch.inference_mode``; ``quantize`` runs the int8 copy of the encoder.
        """
        import torch
        from tqdm.auto import tqdm

        width = self.head.out_features if apply_head else self.dimension
        out = np.zeros((len(texts), width), dtype=np.float32)
        if not texts:
            return out
        encoder = self.quantized() if quantize else self.encoder
        encoder.eval()
        lengths = np.array([len(t) for t in _joined(texts, pairs)])
        batches = length_sorted_batches(lengths, batch_size)
        with torch.inference_mode():
            for rows in tqdm(batches, desc="Scoring texts", unit="batch", disable=not progress):
                batch_texts, batch_pairs = _subset(texts, pairs, rows)
                vectors = self.pooled(self.tokens(batch_texts, batch_pairs, max_length), encoder)
                if normalize:
                    vectors = torch.nn.functional.normalize(vectors, dim=1)
                if apply_head:
                    vectors = self.head(vectors)
                out[rows] = vectors.float().numpy()
        return out


def _load_network(encoder: str, seed: int | None) -> EncoderNetwork:
    """A fresh copy of the encoder (never the cached one of :func:`load_encoder`)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    location = resolve_encoder(encoder)
    logger.info("Loading text encoder %s from %s", encoder, location)
    if seed is not None:
        torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(location)
    model = AutoModel.from_pretrained(location)
    return EncoderNetwork(tokenizer, model)


# --------------------------------------------------------------------------------------------
# The classifier
# --------------------------------------------------------------------------------------------


def head_loss(
    target: np.ndarray, multilabel: bool, n_classes: int, class_weight: str | None
) -> Any:
    """The torch loss of one head: cross-entropy over classes, or BCE per indicator column.

    ``class_weight="balanced"`` weighs classes (or each column's positives) inversely to their
    frequency in ``target``, the rows the head trains on.
    """
    import torch

    if multilabel:
        pos_weight = None
        if class_weight == "balanced":
            positives = target.sum(axis=0)
            ratio = (len(target) - positives) / np.maximum(positives, 1)
            pos_weight = torch.tensor(np.clip(ratio, 1.0, 100.0), dtype=torch.float32)
        return torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    weight = None
    if class_weight == "balanced":
        counts = np.bincount(target, minlength=n_classes).astype(float)
        balanced = len(target) / (n_classes * np.maximum(counts, 1))
        weight = torch.tensor(balanced, dtype=torch.float32)
    return torch.nn.CrossEntropyLoss(weight=weight)


class FineTuningMixin:
    """The fine-tuning loop shared by the single-task and the multi-task text classifiers.

    Reads the estimator's settings ``epochs``, ``batch_size``, ``learning_rate``,
    ``weight_decay``, ``warmup_fraction``, ``dropout``, ``max_length``,
    ``inference_batch_size``, ``progress`` and ``random_state``, and trains ``network_`` (an
    :class:`EncoderNetwork` whose ``head`` is a ``torch.nn.Linear``). What the head's outputs
    mean is the caller's: it passes the loss of a batch and the record of a validation pass.
    """

    epochs: int
    batch_size: int
    learning_rate: float
    weight_decay: float
    warmup_fraction: float
    dropout: float
    max_length: int
    inference_batch_size: int
    progress: bool
    random_state: int | None
    network_: EncoderNetwork

    def _optimizer(self, network: EncoderNetwork, total_steps: int) -> tuple[Any, Any]:
        """AdamW (no decay on biases and LayerNorm weights), linear warmup then linear decay."""
        import torch

        decay, no_decay = [], []
        named = itertools.chain(network.encoder.named_parameters(), network.head.named_parameters())
        for name, parameter in named:
            (no_decay if parameter.ndim < 2 or "LayerNorm" in name else decay).append(parameter)
        optimizer = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": self.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=self.learning_rate,
        )
        warmup = round(self.warmup_fraction * total_steps)

        def rate(step: int) -> float:
            if step < warmup:
                return (step + 1) / (warmup + 1)
            return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

        return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, rate)

    def _fine_tune_epochs(
        self,
        texts: list[str],
        pairs: list[str] | None,
        train: np.ndarray,
        validation: np.ndarray,
        batch_loss: Callable[[Any, np.ndarray], Any],
        validation_record: Callable[[np.ndarray], dict[str, float]],
    ) -> None:
        """Train ``network_`` on ``train`` rows; keep the epoch with the lowest validation loss.

        Parameters
        ----------
        texts, pairs
            All rows given to ``fit``.
        train, validation
            Row positions trained on and held out.
        batch_loss
            ``(head logits of a batch, its row positions) -> loss tensor``.
        validation_record
            Head logits of the ``validation`` rows (numpy, in their order) to a dict holding at
            least ``validation_loss``, the figure that chooses the epoch.

        Sets ``validation_history_`` and ``best_epoch_``; leaves the network in eval mode with
        the best epoch's weights (the last epoch's without validation rows).
        """
        network = self.network_
        steps = math.ceil(len(train) / self.batch_size) * self.epochs
        optimizer, scheduler = self._optimizer(network, steps)
        rng = np.random.default_rng(self.random_state)
        lengths = np.array([len(t) for t in _joined(texts, pairs)])
        val_texts, val_pairs = _subset(texts, pairs, validation)
        history: list[dict[str, float]] = []
        best_loss, best_state = math.inf, None
        for epoch in range(1, self.epochs + 1):
            batches = [
                train[b] for b in length_bucketed_batches(lengths[train], self.batch_size, rng)
            ]
            record: dict[str, float] = {"epoch": epoch}
            record["train_loss"] = self._train_epoch(
                texts, pairs, batches, (optimizer, scheduler, batch_loss), epoch
            )
            if len(validation):
                record.update(validation_record(self._head_logits(val_texts, val_pairs, False)))
                if record["validation_loss"] < best_loss:
                    best_loss, self.best_epoch_ = record["validation_loss"], epoch
                    best_state = copy.deepcopy(
                        (network.encoder.state_dict(), network.head.state_dict())
                    )
            logger.info("Epoch %d: %s", epoch, record)
            history.append(record)
        self.validation_history_ = history
        if best_state is None:
            self.best_epoch_ = self.epochs
        else:
            network.encoder.load_state_dict(best_state[0])
            network.head.load_state_dict(best_state[1])
        network.encoder.eval()
        network.head.eval()

    def _train_epoch(
        self,
        texts: list[str],
        pairs: list[str] | None,
        batches: list[np.ndarray],
        training: tuple[Any, Any, Callable[[Any, np.ndarray], Any]],
        epoch: int,
    ) -> float:
        """One pass over ``batches`` (row positions); returns the mean training loss."""
        import torch
        from tqdm.auto import tqdm

        optimizer, scheduler, batch_loss = training
        network = self.network_
        network.encoder.train()
        network.head.train()
        dropout = torch.nn.Dropout(self.dropout)
        parameters = [*network.encoder.parameters(), *network.head.parameters()]
        total, count = 0.0, 0
        description = f"Fine-tuning, epoch {epoch}/{self.epochs}"
        for rows in tqdm(batches, desc=description, unit="batch", disable=not self.progress):
            batch_texts, batch_pairs = _subset(texts, pairs, rows)
            tokens = network.tokens(batch_texts, batch_pairs, self.max_length)
            logits = network.head(dropout(network.pooled(tokens)))
            loss = batch_loss(logits, rows)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(parameters, 1.0)
            optimizer.step()
            scheduler.step()
            total += float(loss.detach()) * len(rows)
            count += len(rows)
        return total / max(count, 1)

    def _head_logits(self, texts: list[str], pairs: list[str] | None, quantize: bool) -> Any:
        """The head's outputs ``(n, out_features)`` for ``texts`` (float64, input order)."""
        return self.network_.vectors(
            texts,
            pairs,
            batch_size=self.inference_batch_size,
            max_length=self.max_length,
            normalize=False,
            apply_head=True,
            quantize=quantize,
            progress=self.progress,
        ).astype(np.float64)


class TransformerTextClassifier(FineTuningMixin, ClassifierMixin, BaseEstimator):
    """A text classifier over a transformer encoder: fine-tuned, or frozen with a linear head.

    ``fit(X, y)`` with ``y`` 1-d labels learns one softmax over the sorted ``classes_``; with
    ``y`` a 0/1 indicator matrix ``(n, k)`` (themes in taxonomy order) it learns one sigmoid per
    column, ``classes_`` is ``[0, ..., k-1]`` and ``predict`` applies ``thresholds_``. ``X`` is
    texts or text pairs (see :func:`as_text_pairs`).

    Parameters
    ----------
    encoder
        Encoder name or folder (see :func:`retain.text.encoder.resolve_encoder`).
    mode
        ``"fine_tune"``: train encoder and head together (AdamW, linear warmup then decay,
        length-bucketed shuffled batches); the epoch with the lowest validation log loss is
        kept. ``"frozen"``: mean-pooled, L2-normalised sentence vectors of the untouched encoder
        (optionally beside TF-IDF features) into logistic regression.
    epochs, batch_size, learning_rate, weight_decay, warmup_fraction, dropout
        Fine-tuning settings (``weight_decay`` spares biases and LayerNorm weights;
        ``warmup_fraction`` of all steps warm the learning rate up linearly). The default
        learning rate, 1e-4, was chosen against 5e-5 on the training side of the airline
        tweets (fit on 500, scored on 500 other training tweets: accuracy 0.750 vs 0.646 after
        one epoch); small encoders such as MiniLM-L6 usually want the higher rate.
    max_length
        Tokens kept per text (or pair).
    class_weight
        None or ``"balanced"``: weigh classes (multi-class) or each column's positives
        (multi-label) inversely to their frequency, in the loss or the logistic regression.
    validation_fraction
        Share of the rows given to ``fit`` held out to choose the epoch and the multi-label
        thresholds (stratified by class where possible). 0 trains on all rows, keeps the last
        epoch and the default thresholds.
    min_validation_positives
        A theme column with fewer validation positives keeps the threshold 0.5.
    tfidf
        ``"frozen"`` only: concatenate TF-IDF word and character n-grams (the TF-IDF pipelines'
        defaults) with the sentence vectors.
    C
        ``"frozen"`` only: inverse regularisation strength of the logistic regression.
    quantize
        Score with an int8 copy of the encoder (dynamic quantisation of the Linear layers,
        made once at the first prediction). Fine-tuning trains in float32 either way; frozen
        mode also fits its head on the int8 vectors, so it sees what it will score.
    inference_batch_size
        Texts per forward pass when scoring.
    progress
        Show progress bars while training and scoring.
    random_state
        Seed for the validation split, the head's initialisation, dropout and batch order.

    Attributes
    ----------
    classes_ : numpy.ndarray
        Sorted labels, or ``0..k-1`` for an indicator matrix.
    multilabel_ : bool
        Whether ``y`` was an indicator matrix.
    thresholds_ : numpy.ndarray
        Multi-label only: per-column probability cut (max validation F1, else 0.5).
    threshold_sources_ : numpy.ndarray
        Multi-label only: per column ``"validation_f1"`` or ``"default"``.
    best_epoch_ : int
        Fine-tuning: the epoch (1-based) whose weights were kept.
    validation_history_ : list of dict
        Fine-tuning: per epoch, ``epoch``, ``train_loss``, ``validation_loss`` and
        ``validation_score`` (accuracy, or micro-F1 at 0.5).
    n_train_rows_, n_validation_rows_ : int
        Rows trained on and held out.
    network_ : EncoderNetwork
        Tokenizer, encoder and (fine-tuning) head.
    head_ : sklearn estimator or None
        Frozen mode: the logistic regression (one-vs-rest for themes).
    tfidf_ : sklearn transformer or None
        Frozen mode with ``tfidf=True``: the fitted TF-IDF features.

    Notes
    -----
    Fine-tuning keeps the model as it was after the best epoch, trained on the non-validation
    rows: it is not refitted on all rows (that would double the training time, and the best
    epoch count found on fewer rows need not carry over). Frozen mode chooses the thresholds
    with a head fitted on the non-validation rows, then refits the (cheap) head on all rows.
    """

    def __init__(
        self,
        encoder: str = DEFAULT_ENCODER,
        mode: str = "fine_tune",
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
        tfidf: bool = False,
        C: float = 1.0,
        quantize: bool = False,
        inference_batch_size: int = 64,
        progress: bool = False,
        random_state: int | None = 0,
    ) -> None:
        self.encoder = encoder
        self.mode = mode
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
        self.tfidf = tfidf
        self.C = C
        self.quantize = quantize
        self.inference_batch_size = inference_batch_size
        self.progress = progress
        self.random_state = random_state

    # -- fitting ---------------------------------------------------------------------------------

    def fit(self, X: Any, y: Any) -> TransformerTextClassifier:
        """Learn from texts (or text pairs) ``X`` and labels or an indicator matrix ``y``.

        Returns
        -------
        TransformerTextClassifier
            ``self``.
        """
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.class_weight not in (None, "balanced"):
            raise ValueError(f"class_weight must be None or 'balanced', got {self.class_weight!r}")
        texts, pairs = as_text_pairs(X)
        classes, target, multilabel = _targets(y)
        if len(target) != len(texts):
            raise ValueError(f"X has {len(texts)} rows but y has {len(target)}")
        self.classes_ = classes
        self.multilabel_ = multilabel
        self.pairs_ = pairs is not None
        if self.mode == "fine_tune":
            self._fine_tune(texts, pairs, target)
        else:
            self._fit_frozen(texts, pairs, target)
        return self

    def _split(self, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        train, validation = validation_split(
            target, self.validation_fraction, self.random_state, self.multilabel_
        )
        self.n_train_rows_, self.n_validation_rows_ = len(train), len(validation)
        return train, validation

    def _set_thresholds(self, Y_validation: np.ndarray, proba_validation: np.ndarray) -> None:
        if not self.multilabel_:
            return
        if len(Y_validation):
            self.thresholds_, self.threshold_sources_ = tune_thresholds(
                Y_validation, proba_validation, self.min_validation_positives
            )
        else:
            k = len(self.classes_)
            self.thresholds_ = np.full(k, _DEFAULT_THRESHOLD)
            self.threshold_sources_ = np.full(k, "default", dtype=object)
        logger.info(
            "Theme thresholds: %d of %d chosen on %d validation rows",
            int((self.threshold_sources_ == "validation_f1").sum()),
            len(self.thresholds_),
            len(Y_validation),
        )

    def _fine_tune(self, texts: list[str], pairs: list[str] | None, target: np.ndarray) -> None:
        """Train encoder and head on the non-validation rows; keep the best validation epoch."""
        import torch

        train, validation = self._split(target)
        network = _load_network(self.encoder, self.random_state)
        network.head = torch.nn.Linear(network.dimension, len(self.classes_))
        self.network_, self.head_, self.tfidf_ = network, None, None
        loss_function = head_loss(
            target[train], self.multilabel_, len(self.classes_), self.class_weight
        )
        tensor_target = torch.from_numpy(target)

        def batch_loss(logits: Any, rows: np.ndarray) -> Any:
            return loss_function(logits, tensor_target[rows])

        def validation_record(logits: np.ndarray) -> dict[str, float]:
            proba = _probabilities(logits, self.multilabel_)
            return {
                "validation_loss": _log_loss(target[validation], proba, self.multilabel_),
                "validation_score": _score(target[validation], proba, self.multilabel_),
            }

        self._fine_tune_epochs(texts, pairs, train, validation, batch_loss, validation_record)
        val_texts, val_pairs = _subset(texts, pairs, validation)
        val_proba = (
            self._fine_tuned_proba(val_texts, val_pairs, quantize=False)
            if len(validation)
            else np.empty((0, len(self.classes_)))
        )
        self._set_thresholds(target[validation], val_proba)

    def _fine_tuned_proba(self, texts: list[str], pairs: list[str] | None, quantize: bool) -> Any:
        return _probabilities(self._head_logits(texts, pairs, quantize), self.multilabel_)

    def _fit_frozen(self, texts: list[str], pairs: list[str] | None, target: np.ndarray) -> None:
        self.network_ = _load_network(self.encoder, self.random_state)
        self.network_.encoder.eval()
        self.best_epoch_ = 0
        self.validation_history_ = []
        vectors = self._frozen_vectors(texts, pairs)
        if self.tfidf:
            from retain.text.tfidf import _text_features

            self.tfidf_ = _text_features(TextModelConfig()).fit(_joined(texts, pairs))
        else:
            self.tfidf_ = None
        features = self._frozen_features(texts, pairs, vectors)
        if self.multilabel_:
            train, validation = self._split(target)
            head = self._new_head()
            if len(validation):
                head.fit(features[train], target[train])
                self._set_thresholds(target[validation], head.predict_proba(features[validation]))
            else:
                self._set_thresholds(target[validation], np.empty((0, len(self.classes_))))
        else:
            self.n_train_rows_, self.n_validation_rows_ = len(target), 0
        self.head_ = self._new_head().fit(features, target)

    def _new_head(self) -> Any:
        regression = LogisticRegression(C=self.C, max_iter=2000, class_weight=self.class_weight)
        return OneVsRestClassifier(regression) if self.multilabel_ else regression

    def _frozen_vectors(self, texts: list[str], pairs: list[str] | None) -> np.ndarray:
        return self.network_.vectors(
            texts,
            pairs,
            batch_size=self.inference_batch_size,
            max_length=self.max_length,
            normalize=True,
            apply_head=False,
            quantize=self.quantize,
            progress=self.progress,
        )

    def _frozen_features(self, texts: list[str], pairs: list[str] | None, vectors: Any) -> Any:
        if self.tfidf_ is None:
            return vectors
        return sp.hstack(
            [
                sp.csr_matrix(vectors, dtype=np.float64),
                self.tfidf_.transform(_joined(texts, pairs)),
            ]
        ).tocsr()

    # -- prediction ------------------------------------------------------------------------------

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities ``(n, len(classes_))``: rows sum to 1 for labels; independent
        per-theme probabilities for an indicator matrix."""
        check_is_fitted(self, "network_")
        texts, pairs = as_text_pairs(X)
        if self.pairs_ != (pairs is not None):
            raise ValueError(
                "the model was fitted on "
                + ("text pairs" if self.pairs_ else "single texts")
                + ", and must be given the same"
            )
        if not texts:
            return np.zeros((0, len(self.classes_)))
        if self.mode == "fine_tune":
            return self._fine_tuned_proba(texts, pairs, quantize=self.quantize)
        features = self._frozen_features(texts, pairs, self._frozen_vectors(texts, pairs))
        return np.asarray(self.head_.predict_proba(features), dtype=float)

    def predict(self, X: Any) -> np.ndarray:
        """Labels, or for an indicator matrix the 0/1 matrix ``proba >= thresholds_``."""
        proba = self.predict_proba(X)
        if self.multilabel_:
            return (proba >= self.thresholds_).astype(int)
        return self.classes_[proba.argmax(axis=1)]

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        tags.target_tags.multi_output = True
        tags.classifier_tags.multi_label = True
        return tags


def _probabilities(logits: np.ndarray, multilabel: bool) -> np.ndarray:
    if multilabel:
        return 1.0 / (1.0 + np.exp(-logits))
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


# --------------------------------------------------------------------------------------------
# Blending
# --------------------------------------------------------------------------------------------


def weight_grid(n_members: int, step: float = 0.1) -> list[tuple[float, ...]]:
    """All weight vectors for ``n_members`` on a grid of ``step`` that sum to 1."""
    ticks = round(1 / step)
    grid = [
        tuple(c / ticks for c in combo)
        for combo in itertools.product(range(ticks + 1), repeat=n_members)
        if sum(combo) == ticks
    ]
    return grid


def _aligned_proba(model: Any, X: Any, classes: np.ndarray, multilabel: bool) -> np.ndarray:
    """``model``'s probabilities with columns in ``classes`` order (absent classes get 0)."""
    proba = np.asarray(model.predict_proba(X), dtype=float)
    if multilabel:
        if len(classes) == 1 and proba.ndim == 2 and proba.shape[1] == 2:
            return proba[:, [1]]  # one column: scikit-learn fitted a binary model
        return proba
    own = list(getattr(model, "classes_", classes))
    out = np.zeros((proba.shape[0], len(classes)))
    for j, label in enumerate(classes):
        if label in own:
            out[:, j] = proba[:, own.index(label)]
    return out


class BlendedTextClassifier(ClassifierMixin, BaseEstimator):
    """A weighted average of text classifiers' probabilities, weights chosen on validation rows.

    ``fit`` carves validation rows from the data it is given, fits a clone of every member on
    the other rows, and chooses the weights (on a grid summing to 1) with the lowest log loss of
    the blended probabilities on the validation rows. For an indicator matrix ``y`` it then
    chooses per-column thresholds for the blend on the same rows.

    Parameters
    ----------
    estimators
        ``(name, estimator)`` pairs, e.g. ``[("tfidf", make_sentiment_model()),
        ("minilm", TransformerTextClassifier())]``; all fitted on the same ``(X, y)``.
    validation_fraction
        Share of the rows held out to choose the weights (stratified where possible).
    weight_step
        Spacing of the weight grid.
    refit
        Refit every member on all rows once the weights are chosen. False (the default) keeps
        the members fitted on the non-validation rows: cheaper, and what the weights were
        chosen for.
    min_validation_positives
        As in :class:`TransformerTextClassifier`, for the blend's thresholds.
    random_state
        Seed for the validation split.
    prefit
        Names of members that are already fitted (e.g. one task of a
        :class:`~retain.text.multitask.MultiTaskTextClassifier`, fitted once for two tasks).
        ``fit`` uses them as they are, never cloned or refitted; each must say which rows it
        held out of its own training (``held_out(X)``, booleans), and the weights are chosen
        on the rows of ``X`` every prefit member held out, the other members fitted on the
        rest (``validation_fraction`` and ``random_state`` are then unused; ``refit`` refits
        the other members only).

    Attributes
    ----------
    estimators_ : list
        The fitted members, in the order of ``estimators``.
    weights_ : numpy.ndarray
        The chosen weight of each member.
    validation_weights_ : numpy.ndarray
        The weight vectors tried, one row each.
    validation_losses_ : numpy.ndarray
        Log loss on the validation rows of each row of ``validation_weights_`` (arrays, not a
        dict keyed by weight tuples: skops stores arrays without pickle).
    validation_rows_ : numpy.ndarray
        Positions (in the data given to ``fit``) of the rows the weights were chosen on.
    tuned_on_ : str
        How the weights (and thresholds) were chosen, in words.
    classes_, multilabel_, thresholds_, threshold_sources_
        As in :class:`TransformerTextClassifier`.
    """

    def __init__(
        self,
        estimators: Sequence[tuple[str, Any]],
        validation_fraction: float = 0.2,
        weight_step: float = 0.1,
        refit: bool = False,
        min_validation_positives: int = 3,
        random_state: int | None = 0,
        prefit: Sequence[str] = (),
    ) -> None:
        self.estimators = estimators
        self.validation_fraction = validation_fraction
        self.weight_step = weight_step
        self.refit = refit
        self.min_validation_positives = min_validation_positives
        self.random_state = random_state
        self.prefit = prefit

    def fit(self, X: Any, y: Any) -> BlendedTextClassifier:
        """Fit the members on non-validation rows and choose the weights on the rest.

        Returns
        -------
        BlendedTextClassifier
            ``self``.
        """
        if not self.estimators:
            raise ValueError("estimators is empty")
        names = [name for name, _ in self.estimators]
        unknown = sorted(set(self.prefit) - set(names))
        if unknown:
            raise ValueError(f"prefit names {unknown} are not members; members: {names}")
        classes, target, multilabel = _targets(y)
        self.classes_, self.multilabel_ = classes, multilabel
        y_values = np.asarray(y)
        train, validation = self._validation_rows(X, target, multilabel)
        X_train, X_validation = _take(X, train), _take(X, validation)
        members = [
            estimator if name in self.prefit else clone(estimator).fit(X_train, y_values[train])
            for name, estimator in self.estimators
        ]
        validation_proba = [_aligned_proba(m, X_validation, classes, multilabel) for m in members]
        losses: dict[tuple[float, ...], float] = {}
        for weights in weight_grid(len(members), self.weight_step):
            blend = sum(w * p for w, p in zip(weights, validation_proba, strict=True))
            losses[weights] = _log_loss(target[validation], blend, multilabel)
        best = min(losses, key=lambda w: (losses[w], -max(w)))
        self.weights_ = np.array(best)
        self.validation_weights_ = np.array(list(losses), dtype=float)
        self.validation_losses_ = np.array(list(losses.values()), dtype=float)
        self.validation_rows_ = validation
        weights = ", ".join(f"{name}={w:.2f}" for name, w in zip(names, best, strict=True))
        where = (
            f"{len(validation)} of the {len(target)} training rows, the rows "
            f"{', '.join(self.prefit)} held out of its training; other members "
            if self.prefit
            else f"{len(validation)} validation rows carved from the {len(target)} training "
            f"rows (random_state={self.random_state}); members "
        )
        self.tuned_on_ = f"weights ({weights}) chosen by log loss on {where}" + (
            "refitted on all rows" if self.refit else "fitted on the other rows"
        )
        logger.info("Blend: %s", self.tuned_on_)
        if multilabel:
            blend = sum(w * p for w, p in zip(best, validation_proba, strict=True))
            self.thresholds_, self.threshold_sources_ = tune_thresholds(
                target[validation], blend, self.min_validation_positives
            )
        if self.refit:
            members = [
                member if name in self.prefit else clone(estimator).fit(X, y_values)
                for (name, estimator), member in zip(self.estimators, members, strict=True)
            ]
        self.estimators_ = members
        return self

    def _validation_rows(
        self, X: Any, target: np.ndarray, multilabel: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(train, validation)`` positions: the prefit members' held-out rows, or carved."""
        if self.prefit:
            held_out = np.ones(len(target), dtype=bool)
            for name, estimator in self.estimators:
                if name in self.prefit:
                    held_out &= np.asarray(estimator.held_out(X), dtype=bool)
            train, validation = np.flatnonzero(~held_out), np.flatnonzero(held_out)
            if not len(validation):
                raise ValueError(
                    f"the prefit member(s) {', '.join(self.prefit)} held out none of the "
                    f"{len(target)} rows: the blend weights cannot be chosen"
                )
            return train, validation
        train, validation = validation_split(
            target, self.validation_fraction, self.random_state, multilabel
        )
        if not len(validation):
            raise ValueError(
                f"validation_fraction={self.validation_fraction} leaves no validation rows "
                f"out of {len(target)}: the blend weights cannot be chosen"
            )
        return train, validation

    def predict_proba(self, X: Any) -> np.ndarray:
        """The weighted average of the members' probabilities, columns in ``classes_`` order."""
        check_is_fitted(self, "estimators_")
        return sum(
            w * _aligned_proba(m, X, self.classes_, self.multilabel_)
            for w, m in zip(self.weights_, self.estimators_, strict=True)
        )

    def predict(self, X: Any) -> np.ndarray:
        """Labels, or for an indicator matrix the 0/1 matrix ``proba >= thresholds_``."""
        proba = self.predict_proba(X)
        if self.multilabel_:
            return (proba >= self.thresholds_).astype(int)
        return self.classes_[proba.argmax(axis=1)]

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        tags.target_tags.multi_output = True
        tags.classifier_tags.multi_label = True
        return tags


def _take(X: Any, rows: np.ndarray) -> Any:
    """Rows of texts or text pairs, keeping the container kind."""
    if isinstance(X, (pd.DataFrame, pd.Series)):
        return X.iloc[rows]
    if isinstance(X, np.ndarray):
        return X[rows]
    items = list(X)
    return [items[i] for i in rows]
