"""Development data for the zero-label theme and sentiment models (not a benchmark).

The settings of :mod:`retain.text.zero_label` are chosen here, on data that T7 does not use:

- ``airline``: the negative airline tweets of T2 (deduplicated, ``negativereason`` not
  "Can't Tell"), only the *train* part of T2's split (``train_test_split(random_state=0,
  stratify=y, test_size=0.2)``), with the taxonomy :data:`AIRLINE_TAXONOMY` written from the
  reason names. To judge multi-label thresholds, a share of the texts are joined in pairs of
  different reasons (the pair carries both labels).
- ``sentiment``: UCI sentiment sentences (yelp, amazon), positive/negative, for the sentiment
  model (the neutral column is folded into the nearer side: argmax over negative/positive).

Usage::

    RETAIN_TORCH_THREADS=1 python -m benchmarks.zero_label_dev airline --n 1500
    RETAIN_TORCH_THREADS=1 python -m benchmarks.zero_label_dev sentiment --n 1000
    RETAIN_TORCH_THREADS=1 python -m benchmarks.zero_label_dev sentiment-airline --n 3000

Each run prints one line per setting tried: micro-F1 (and accuracy of the top theme).
"""

from __future__ import annotations

import argparse
import functools
import itertools
import os
from pathlib import Path
from typing import Any

import numpy as np

DATA = Path(
    os.environ.get("RETAIN_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared/data")
)

AIRLINE_TAXONOMY = (
    {
        "id": "Customer Service Issue",
        "name": "Customer service",
        "description": "Reaching customer service, hold times, unhelpful answers, complaints.",
        "examples": ["on hold for two hours", "customer service was no help", "nobody answers"],
    },
    {
        "id": "Late Flight",
        "name": "Delayed flight",
        "description": "The flight is late or delayed, missed connections.",
        "examples": ["my flight is delayed again", "we are still waiting to take off"],
    },
    {
        "id": "Cancelled Flight",
        "name": "Cancelled flight",
        "description": "The flight was cancelled, rebooking, stranded travellers.",
        "examples": ["my flight was cancelled", "they cancelled my flight and did not rebook me"],
    },
    {
        "id": "Lost Luggage",
        "name": "Lost luggage",
        "description": "Bags that were lost or did not arrive.",
        "examples": ["you lost my bag", "my luggage never arrived"],
    },
    {
        "id": "Bad Flight",
        "name": "Bad flight",
        "description": "A bad experience on board: seats, wifi, food, entertainment, cleanliness.",
        "examples": ["the seat was broken", "no wifi on the plane", "dirty cabin"],
    },
    {
        "id": "Flight Booking Problems",
        "name": "Booking problems",
        "description": "Booking or changing a flight, the website, reservations, tickets.",
        "examples": ["the website will not let me book", "I cannot change my reservation"],
    },
    {
        "id": "Flight Attendant Complaints",
        "name": "Flight attendants",
        "description": "Flight attendants or crew who were rude or unprofessional.",
        "examples": ["the flight attendant was rude", "the crew ignored us"],
    },
    {
        "id": "longlines",
        "name": "Long lines",
        "description": "Long queues at check-in, security or the gate.",
        "examples": ["the line at check in is huge", "waiting in line for an hour"],
    },
    {
        "id": "Damaged Luggage",
        "name": "Damaged luggage",
        "description": "Bags or belongings damaged or broken in transit.",
        "examples": ["my suitcase arrived broken", "you damaged my bag"],
    },
)


def cache_embeddings() -> None:
    """Remember sentence vectors by text, so trying many settings embeds each text once."""
    import retain.text.zero_label as zl

    original = zl.embed
    store: dict[tuple[str, str], np.ndarray] = {}

    @functools.wraps(original)
    def cached(texts: Any, encoder: Any, **options: Any) -> np.ndarray:
        texts = list(texts)
        missing = list(dict.fromkeys(t for t in texts if (encoder.name, t) not in store))
        if missing:
            for text, vector in zip(missing, original(missing, encoder, **options), strict=True):
                store[(encoder.name, text)] = vector
        dim = encoder.dimension
        if not texts:
            return np.zeros((0, dim), dtype=np.float32)
        return np.vstack([store[(encoder.name, t)] for t in texts])

    zl.embed = cached


def airline_dev(n: int, pair_share: float, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """Texts and a 0/1 matrix in :data:`AIRLINE_TAXONOMY` order, from T2's train part only."""
    import pandas as pd
    from sklearn.model_selection import train_test_split

    tweets = pd.read_csv(DATA / "twitter_airline_sentiment/Tweets.csv")
    tweets = tweets.drop_duplicates("tweet_id", keep="first")
    negative = tweets[
        (tweets.airline_sentiment == "negative") & (tweets.negativereason != "Can't Tell")
    ]
    train, _ = train_test_split(
        negative, test_size=0.2, random_state=0, stratify=negative.negativereason
    )
    rng = np.random.default_rng(seed)
    rows = train.iloc[rng.permutation(len(train))[:n]]
    ids = [t["id"] for t in AIRLINE_TAXONOMY]
    texts = [str(t).split(" ", 1)[-1] if str(t).startswith("@") else str(t) for t in rows.text]
    y = np.zeros((len(rows), len(ids)), dtype=int)
    y[np.arange(len(rows)), [ids.index(r) for r in rows.negativereason]] = 1
    n_pairs = int(pair_share * len(texts) / 2)
    out_texts, out_y = [], []
    used = 0
    for i in range(n_pairs):
        a, b = 2 * i, 2 * i + 1
        if (y[a] == y[b]).all():
            continue
        out_texts.append(f"{texts[a]} {texts[b]}")
        out_y.append(y[a] | y[b])
        used = b + 1
    out_texts += texts[used:]
    out_y += list(y[used:])
    return out_texts, np.array(out_y)


def micro_f1(y: np.ndarray, pred: np.ndarray) -> float:
    tp = int((y & pred).sum())
    return 2 * tp / max(int(y.sum() + pred.sum()), 1)


GRIDS: dict[str, dict[str, list[Any]]] = {
    # The first grid (its results chose self-training, similarity_weight 0 and max_mean).
    "first": {
        "self_train": [False, True],
        "aggregate": ["max", "max_mean"],
        "similarity_weight": [0.0, 0.5],
        "pseudo_label_fraction": [0.3, 0.6],
    },
    "second": {
        "aggregate": ["max_mean"],
        "similarity_weight": [0.0],
        "standardize": [True, False],
        "tfidf": [True, False],
        "self_train_rounds": [1, 2],
        "C": [1.0, 4.0],
    },
    # After "second" chose standardize=False, tfidf=True, one round, C=1.
    "third": {
        "standardize": [False],
        "self_train": [False, True],
        "aggregate": ["max", "max_mean", "mean"],
        "pseudo_label_fraction": [0.3, 0.5, 0.8],
    },
    # After "third" set the defaults (max_mean, fraction 0.3, similarity_weight 0, threshold
    # 0.25): the classifier applied per clause, best clause per theme.
    "fourth": {
        "classifier_per_clause": [False, True],
    },
}


def run_airline(n: int) -> None:
    from retain.text.zero_label import ZeroLabelThemeClassifier

    texts, y = airline_dev(n, pair_share=0.3)
    print(f"airline dev: {len(texts)} texts, {int((y.sum(axis=1) > 1).sum())} pairs")
    grid = GRIDS[os.environ.get("ZL_GRID", "first")]
    for values in itertools.product(*grid.values()):
        params = dict(zip(grid, values, strict=True))
        if not params.get("self_train", True) and (
            params.get("similarity_weight", 0.0) != 0.0
            or params.get("pseudo_label_fraction", 0.3) != 0.3
        ):
            continue
        model = ZeroLabelThemeClassifier(AIRLINE_TAXONOMY, **params).fit(texts)
        proba = model.predict_proba(texts)
        top = proba.argmax(axis=1)
        top1 = np.zeros_like(y)
        top1[np.arange(len(y)), top] = 1
        scores = {"top1_micro_f1": micro_f1(y, top1)}
        for threshold in (0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6):
            pred = (proba >= threshold) | top1.astype(bool)
            scores[f"micro_f1@{threshold}"] = micro_f1(y, pred.astype(int))
        print(params, {k: round(v, 3) for k, v in scores.items()}, flush=True)


SENTIMENT_GRIDS: dict[str, dict[str, list[Any]]] = {
    "first": {
        "standardize": [False, True],
        "self_train": [False, True],
        "pseudo_label_fraction": [0.3, 0.6],
        "similarity_weight": [0.5],
        "aggregate": ["max"],
    },
    "second": {
        "standardize": [True],
        "pseudo_label_fraction": [0.6],
        "similarity_weight": [0.0, 0.5],
        "aggregate": ["max", "max_mean"],
    },
    "third": {"adjust_priors": [False, True]},
}


def run_sentiment(n: int) -> None:
    import pandas as pd

    from retain.text.zero_label import ZeroLabelSentimentClassifier

    frames = [
        pd.read_csv(DATA / "uci_sentiment_sentences" / name) for name in ("yelp.csv", "amazon.csv")
    ]
    data = pd.concat(frames).sample(frac=1.0, random_state=0).head(n)
    print(data.columns.tolist(), len(data))
    text_col, label_col = data.columns[0], data.columns[1]
    texts = data[text_col].astype(str).tolist()
    positive = data[label_col].astype(int).to_numpy() == 1
    # First grid: standardize x self_train x fraction (with similarity_weight 0.5, max); then
    # with standardize=True, fraction 0.6 and self-training: similarity_weight x aggregate.
    grid = SENTIMENT_GRIDS[os.environ.get("ZL_GRID", "first")]
    for values in itertools.product(*grid.values()):
        params = dict(zip(grid, values, strict=True))
        model = ZeroLabelSentimentClassifier(**params)
        proba = model.fit(texts).predict_proba(texts)
        cls = list(model.classes_)
        guess = proba[:, cls.index("positive")] > proba[:, cls.index("negative")]
        print(
            params,
            "accuracy (positive vs negative):",
            round(float((guess == positive).mean()), 3),
            flush=True,
        )


def run_sentiment_airline(n: int) -> None:
    """Held-out figure for the sentiment defaults (chosen on UCI sentences): T1's split.

    The model is fitted on the *texts* of T1's train part (no labels) and scored on its test
    part: negative / neutral / positive accuracy and macro-F1.
    """
    import pandas as pd
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.model_selection import train_test_split

    from retain.text.zero_label import ZeroLabelSentimentClassifier

    tweets = pd.read_csv(DATA / "twitter_airline_sentiment/Tweets.csv")
    tweets = tweets.drop_duplicates("tweet_id", keep="first")
    train, test = train_test_split(
        tweets, test_size=0.2, random_state=0, stratify=tweets.airline_sentiment
    )
    train_texts = train.text.sample(n=min(n, len(train)), random_state=0).tolist()
    model = ZeroLabelSentimentClassifier().fit(train_texts)
    predicted = model.predict(test.text.tolist())
    print(
        f"airline T1 test ({len(test)} tweets), fitted on {len(train_texts)} unlabelled train "
        f"texts: accuracy {accuracy_score(test.airline_sentiment, predicted):.3f}, macro-F1 "
        f"{f1_score(test.airline_sentiment, predicted, average='macro'):.3f}; predicted shares "
        f"{pd.Series(predicted).value_counts(normalize=True).round(3).to_dict()}",
        flush=True,
    )


def run_sentiment_airline_dev(n: int) -> None:
    """Sentiment settings on a validation part of T1's *train* split (3 classes, with neutral).

    T1's train part is split again (``train_test_split(random_state=0, test_size=0.2,
    stratify)``); the model is fitted on the unlabelled texts of the larger part and scored on
    the validation part. T1's test part is not read.
    """
    import pandas as pd
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.model_selection import train_test_split

    from retain.text.zero_label import ZeroLabelSentimentClassifier

    tweets = pd.read_csv(DATA / "twitter_airline_sentiment/Tweets.csv")
    tweets = tweets.drop_duplicates("tweet_id", keep="first")
    train, _ = train_test_split(
        tweets, test_size=0.2, random_state=0, stratify=tweets.airline_sentiment
    )
    fit_part, validation = train_test_split(
        train, test_size=0.2, random_state=0, stratify=train.airline_sentiment
    )
    fit_texts = fit_part.text.sample(n=min(n, len(fit_part)), random_state=0).tolist()
    validation = validation.head(1000)
    grid = {
        "first": {
            "standardize": [True, False],
            "pseudo_label_fraction": [0.3, 0.6],
            "tfidf": [True, False],
        },
        # Then: class shares estimated by EM on the fitted texts.
        "second": {"adjust_priors": [False, True]},
    }[os.environ.get("ZL_GRID", "first")]
    for values in itertools.product(*grid.values()):
        params = dict(zip(grid, values, strict=True))
        model = ZeroLabelSentimentClassifier(**params).fit(fit_texts)
        predicted = model.predict(validation.text.tolist())
        print(
            params,
            f"accuracy {accuracy_score(validation.airline_sentiment, predicted):.3f}, macro-F1 "
            f"{f1_score(validation.airline_sentiment, predicted, average='macro'):.3f}, shares "
            f"{pd.Series(predicted).value_counts(normalize=True).round(2).to_dict()}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "which", choices=["airline", "sentiment", "sentiment-airline", "sentiment-airline-dev"]
    )
    parser.add_argument("--n", type=int, default=1500)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(int(os.environ.get("RETAIN_TORCH_THREADS", "1")))
    cache_embeddings()
    runs = {
        "airline": run_airline,
        "sentiment": run_sentiment,
        "sentiment-airline": run_sentiment_airline,
        "sentiment-airline-dev": run_sentiment_airline_dev,
    }
    runs[args.which](args.n)


if __name__ == "__main__":
    main()
