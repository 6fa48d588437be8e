"""Fixtures shared by several test modules."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding a tiny random BERT and tokenizer (see ``text_fixtures.build_tiny_bert``)."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from text_fixtures import build_tiny_bert

    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))
