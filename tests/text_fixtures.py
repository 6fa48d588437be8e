"""A tiny randomly initialised BERT and its tokenizer, saved to a folder: no download, ever.

Tests that need a transformer encoder name this folder where a user would name
``all-MiniLM-L6-v2``. The vocabulary is the words of :data:`WORDS` plus BERT's special tokens;
the tokenizer is built with ``vocab=`` (in transformers 5, ``BertTokenizer(vocab_file=...)``
silently ignores the file) and its size is asserted.
"""

from __future__ import annotations

from pathlib import Path

WORDS = (  # noqa: SIM905 - one line of words per topic reads better than a list literal
    "the a is was and but not very so my i it to of for in on with this that they we you "
    "great good lovely kind helpful fast friendly love excellent happy thanks "
    "bad awful terrible slow rude broken late wrong angry worst hate never "
    "billing bill charge charged refund invoice price expensive cheap value money "
    "support staff agent service wait waiting reply answer call "
    "app crash crashes bug error outage login update screen "
    "flight delayed cancelled seat bag lost crew food room hotel delivery order "
    "ok fine okay nothing special average"
).split()


def build_tiny_bert(folder: Path, seed: int = 0) -> Path:
    """Save a 2-layer BERT (hidden size 32) with a word-level vocabulary to ``folder``."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = {token: i for i, token in enumerate([*special, *dict.fromkeys(WORDS)])}
    tokenizer = BertTokenizer(vocab=vocab, do_lower_case=True)
    assert tokenizer.vocab_size == len(vocab), "the tokenizer ignored the vocabulary"
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    model = BertModel(config)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
