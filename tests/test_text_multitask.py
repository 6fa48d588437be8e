"""One encoder for sentiment and themes: masked losses, one forward pass, pickling, the blend.

Everything runs on the tiny random BERT of ``text_fixtures`` (no download).
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin, clone

from retain.config import TextJobConfig, TextModelConfig
from retain.text.bundle import TextModelBundle
from retain.text.multitask import (
    Head,
    MultiTaskTextClassifier,
    SharedEncoderTask,
    labelled_mask,
    masked_loss,
)
from retain.text.scoring import score_feedback
from retain.text.tfidf import make_sentiment_model, make_theme_model
from retain.text.transformer import BlendedTextClassifier, EncoderNetwork

torch = pytest.importorskip("torch")

OPENERS = {
    "negative": ["awful", "terrible", "bad", "rude", "worst"],
    "neutral": ["ok", "fine", "okay", "average", "nothing special"],
    "positive": ["great", "lovely", "excellent", "kind", "happy"],
}
TOPICS = {"billing": "charged a refund on the invoice", "app": "the app crash after login"}
THEME_IDS = ["billing", "app"]


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread() -> Iterator[None]:
    """torch on one thread: on a shared 2-core machine two threads contend and run 10x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def reviews() -> tuple[list[str], np.ndarray, np.ndarray]:
    """60 texts: opener (sentiment) x topic (billing, app, both, none) x 5, all distinct."""
    texts, sentiments, themes = [], [], []
    cases = [(1, 0), (0, 1), (1, 1), (0, 0)]
    for sentiment, openers in OPENERS.items():
        for billing, app in cases:
            for i, opener in enumerate(openers):
                parts = [opener, *(TOPICS["billing"],) * billing, *(TOPICS["app"],) * app]
                texts.append(" ".join([*parts, "my order"] + ["it"] * i))
                sentiments.append(sentiment)
                themes.append([billing, app])
    return texts, np.array(sentiments, dtype=object), np.array(themes, dtype=float)


def partly_labelled() -> tuple[list[str], dict[str, np.ndarray]]:
    """Every third row has no sentiment, every third (another) row no themes."""
    texts, sentiments, themes = reviews()
    sentiments[0::3] = None
    themes[1::3] = np.nan
    return texts, {"sentiment": sentiments, "themes": themes}


def multitask(encoder: Path, **params: Any) -> MultiTaskTextClassifier:
    settings = {"epochs": 12, "learning_rate": 3e-3, "batch_size": 8, "validation_fraction": 0.2}
    return MultiTaskTextClassifier(encoder=str(encoder), **{**settings, **params})


@pytest.fixture(scope="module")
def shared(tiny_bert: Path) -> MultiTaskTextClassifier:
    texts, y = partly_labelled()
    return multitask(tiny_bert).fit(texts, y)


class Counter:
    """Counts ``EncoderNetwork.vectors`` calls (their texts) and encoder forward passes."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, network: EncoderNetwork) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.forwards = 0
        original = EncoderNetwork.vectors

        def vectors(net: EncoderNetwork, texts: list[str], *args: Any, **kwargs: Any) -> Any:
            self.calls.append(tuple(texts))
            return original(net, texts, *args, **kwargs)

        monkeypatch.setattr(EncoderNetwork, "vectors", vectors)
        self.hook = network.encoder.register_forward_hook(self._count)

    def _count(self, *_: Any) -> None:
        self.forwards += 1

    def close(self) -> None:
        self.hook.remove()


# -- the masked loss ------------------------------------------------------------------------------


def test_a_row_without_a_tasks_label_adds_nothing_to_that_heads_loss() -> None:
    logits = torch.tensor(
        [[2.0, 0.0, -1.0, 0.5, -0.5], [0.0, 1.0, 0.0, -1.0, 1.0], [1.0, 1.0, 1.0, 2.0, 0.0]],
        requires_grad=True,
    )
    sentiment = np.array([True, True, False])  # row 2 has no sentiment label
    themes = np.array([False, True, True])  # row 0 has no theme labels
    heads = [
        Head(0, 3, sentiment, torch.tensor([0, 1, -1]), torch.nn.CrossEntropyLoss()),
        Head(
            3,
            5,
            themes,
            torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0]]),
            torch.nn.BCEWithLogitsLoss(),
        ),
    ]
    loss = masked_loss(logits, np.arange(3), heads)

    def ce(row: list[float], label: int) -> float:
        return -row[label] + math.log(sum(math.exp(v) for v in row))

    def bce(value: float, truth: float) -> float:
        p = 1 / (1 + math.exp(-value))
        return -(truth * math.log(p) + (1 - truth) * math.log(1 - p))

    expected = (ce([2.0, 0.0, -1.0], 0) + ce([0.0, 1.0, 0.0], 1)) / 2 + (
        bce(-1.0, 0) + bce(1.0, 1) + bce(2.0, 1) + bce(0.0, 0)
    ) / 4
    assert float(loss.detach()) == pytest.approx(expected, rel=1e-6)
    loss.backward()
    assert torch.all(logits.grad[2, :3] == 0)  # no sentiment label: no sentiment gradient
    assert torch.all(logits.grad[0, 3:] == 0)  # no theme labels: no theme gradient
    assert torch.all(logits.grad[1] != 0)
    # A batch with no sentiment label at all: the theme loss alone.
    only_themes = masked_loss(logits[[2]], np.array([2]), heads)
    assert float(only_themes.detach()) == pytest.approx((bce(2.0, 1) + bce(0.0, 0)) / 2, rel=1e-6)


def test_labelled_rows_are_read_from_missing_values() -> None:
    np.testing.assert_array_equal(
        labelled_mask(np.array(["a", None, np.nan, "b"], dtype=object)), [1, 0, 0, 1]
    )
    np.testing.assert_array_equal(labelled_mask(np.array([[1, 0], [np.nan, np.nan]])), [1, 0])
    with pytest.raises(ValueError, match="some columns only"):
        labelled_mask(np.array([[1, np.nan]]))


# -- fitting --------------------------------------------------------------------------------------


def test_fits_both_heads_from_rows_carrying_either_label(
    shared: MultiTaskTextClassifier,
) -> None:
    texts, sentiments, themes = reviews()
    assert shared.tasks_ == ("sentiment", "themes")
    assert shared.n_labelled_ == {"sentiment": 40, "themes": 40}
    assert shared.columns_ == {"sentiment": (0, 3), "themes": (3, 5)}
    np.testing.assert_array_equal(shared.classes_[0], ["negative", "neutral", "positive"])
    np.testing.assert_array_equal(shared.classes_[1], [0, 1])
    assert shared.multilabel_ == {"sentiment": False, "themes": True}
    assert set(shared.thresholds_) == {"themes"} and shared.thresholds_["themes"].shape == (2,)
    assert (shared.n_train_rows_, shared.n_validation_rows_) == (48, 12)
    for record in shared.validation_history_:
        parts = record["validation_loss_sentiment"] + record["validation_loss_themes"]
        assert record["validation_loss"] == pytest.approx(parts)
    best = min(shared.validation_history_, key=lambda h: h["validation_loss"])
    assert shared.best_epoch_ == best["epoch"]
    # Both heads learn, including on rows whose label for that task was withheld.
    sentiment = shared.task("sentiment").predict(texts)
    withheld = np.arange(60) % 3 == 0
    assert (sentiment == sentiments).mean() >= 0.8
    assert (sentiment[withheld] == sentiments[withheld]).mean() >= 0.6  # chance is 1/3
    theme_marks = shared.task("themes").predict(texts)
    assert (theme_marks == themes).mean() >= 0.8


def test_single_label_themes_get_a_softmax_head(tiny_bert: Path) -> None:
    texts, sentiments, themes = reviews()
    first = np.array([THEME_IDS[int(row.argmax())] if row.any() else None for row in themes])
    model = multitask(tiny_bert, epochs=1).fit(texts, {"sentiment": sentiments, "themes": first})
    assert model.multilabel_["themes"] is False and model.thresholds_ == {}
    view = model.task("themes")
    np.testing.assert_array_equal(view.classes_, ["app", "billing"])
    np.testing.assert_allclose(view.predict_proba(texts).sum(axis=1), 1.0, atol=1e-6)
    assert getattr(view, "thresholds_", None) is None
    assert set(view.predict(texts)) <= {"app", "billing"}


def test_bad_targets_are_refused(tiny_bert: Path) -> None:
    texts, sentiments, themes = reviews()
    none = sentiments.copy()
    none[0] = None
    no_themes = themes.copy()
    no_themes[0] = np.nan
    with pytest.raises(ValueError, match="1 rows carry no task's label"):
        multitask(tiny_bert).fit(texts, {"sentiment": none, "themes": no_themes})
    with pytest.raises(ValueError, match="mapping"):
        multitask(tiny_bert).fit(texts, sentiments)
    with pytest.raises(ValueError, match="y\\['themes'\\] has 59"):
        multitask(tiny_bert).fit(texts, {"sentiment": sentiments, "themes": themes[1:]})


# -- the views and the one forward pass ------------------------------------------------------------


def test_views_read_like_fitted_classifiers(shared: MultiTaskTextClassifier) -> None:
    texts, _, _ = reviews()
    sentiment, themes = shared.task("sentiment"), shared.task("themes")
    both = shared.predict_tasks(texts)
    np.testing.assert_array_equal(sentiment.predict_proba(texts), both["sentiment"])
    np.testing.assert_array_equal(themes.predict_proba(texts), both["themes"])
    np.testing.assert_array_equal(themes.thresholds_, shared.thresholds_["themes"])
    assert not hasattr(sentiment, "thresholds_")
    np.testing.assert_array_equal(
        themes.predict(texts), (both["themes"] >= themes.thresholds_).astype(int)
    )
    assert sentiment.fit(texts, None) is sentiment  # already fitted, through the shared model
    assert shared.held_out(texts).sum() == shared.n_validation_rows_
    with pytest.raises(KeyError, match="no task 'aspects'"):
        shared.task("aspects")
    # A caller writing into the probabilities does not change the kept result.
    sentiment.predict_proba(texts)[:] = 0
    np.testing.assert_array_equal(sentiment.predict_proba(texts), both["sentiment"])


def test_score_feedback_runs_the_encoder_once_for_both_tasks(
    shared: MultiTaskTextClassifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    texts = [f"{t} again" for t in reviews()[0]]  # not the texts scored by other tests
    feedback = pd.DataFrame({"feedback_id": range(60), "text": texts})
    model = clone(shared).set_params(inference_batch_size=16)
    model.__dict__.update({k: v for k, v in shared.__dict__.items() if k.endswith("_")})
    counter = Counter(monkeypatch, model.network_)
    scores = score_feedback(feedback, model.task("sentiment"), model.task("themes"), THEME_IDS)
    counter.close()
    assert counter.calls == [tuple(texts)]
    assert counter.forwards == math.ceil(60 / 16)  # one forward pass per batch, both heads
    np.testing.assert_allclose(scores["theme_app"], model.predict_tasks(texts)["themes"][:, 1])


@pytest.mark.parametrize("blend", [False, True], ids=["views", "blended"])
def test_bundle_predict_encodes_every_text_list_once(
    shared: MultiTaskTextClassifier, monkeypatch: pytest.MonkeyPatch, blend: bool
) -> None:
    texts, sentiments, themes = reviews()
    models = {task: shared.task(task) for task in ("sentiment", "themes")}
    if blend:
        models = {
            "sentiment": prefit_blend(models["sentiment"], make_sentiment_model).fit(
                texts, sentiments
            ),
            "themes": prefit_blend(models["themes"], make_theme_model).fit(texts, themes),
        }
    bundle = TextModelBundle(models["sentiment"], models["themes"], tuple(THEME_IDS))
    scored = [f"{t}, but the staff were lovely" for t in texts[:20]]
    counter = Counter(monkeypatch, shared.network_)
    out = bundle.predict(scored)
    counter.close()
    # The texts once for both tasks; the clauses of theme_sentiments once for both tasks.
    assert counter.calls.count(tuple(scored)) == 1
    assert len(counter.calls) == len(set(counter.calls))
    assert counter.forwards == sum(
        math.ceil(len(c) / shared.inference_batch_size) for c in counter.calls
    )
    assert out["sentiment"].isin(["negative", "neutral", "positive"]).all()


# -- pickling -------------------------------------------------------------------------------------


def test_a_pickled_bundle_keeps_one_network_shared_by_both_tasks(
    shared: MultiTaskTextClassifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    texts, sentiments, _ = reviews()
    sentiment = prefit_blend(shared.task("sentiment"), make_sentiment_model).fit(texts, sentiments)
    bundle = TextModelBundle(sentiment, shared.task("themes"), tuple(THEME_IDS))
    expected = bundle.predict(texts)
    shared.predict_tasks(texts)  # a kept result is not part of the pickle
    blob = cloudpickle.dumps(bundle)
    one_network = len(pickle.dumps(shared.network_))
    assert len(blob) < 1.3 * one_network  # one copy of the weights, not two
    restored = cloudpickle.loads(blob)
    model = restored.sentiment.estimators_[0].model
    assert model is restored.themes.model
    assert model.network_ is restored.themes.model.network_
    assert not hasattr(model, "_last_scores")
    pd.testing.assert_frame_equal(restored.predict(texts), expected)
    counter = Counter(monkeypatch, model.network_)
    restored.predict(texts[:5])
    counter.close()
    assert counter.calls.count(tuple(texts[:5])) == 1


def test_int8_scoring_is_close_and_switching_back_recomputes(
    shared: MultiTaskTextClassifier,
) -> None:
    texts, _, _ = reviews()
    model = pickle.loads(pickle.dumps(shared))
    exact = model.predict_tasks(texts)
    model.set_params(quantize=True)
    int8 = model.predict_tasks(texts)
    assert "DynamicQuantized" in repr(model.network_.quantized())
    for task in model.tasks_:
        assert not np.array_equal(int8[task], exact[task])  # the int8 path was really taken
        np.testing.assert_allclose(int8[task], exact[task], atol=0.05)
    model.set_params(quantize=False)
    np.testing.assert_array_equal(model.task("themes").predict_proba(texts), exact["themes"])


# -- the blend with a prefit member ----------------------------------------------------------------


class Recorder(ClassifierMixin, BaseEstimator):
    """A uniform classifier that remembers the texts it was fitted on."""

    def fit(self, X: Any, y: Any) -> Recorder:
        self.classes_ = np.unique(y)
        self.seen_ = list(X)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        return np.full((len(X), len(self.classes_)), 1 / len(self.classes_))


def prefit_blend(view: SharedEncoderTask, make: Any, **params: Any) -> BlendedTextClassifier:
    return BlendedTextClassifier(
        [("transformer", view), ("tfidf", make(TextModelConfig(min_df=2)))],
        prefit=("transformer",),
        **params,
    )


def test_a_prefit_member_is_kept_and_the_weights_are_chosen_on_rows_it_held_out(
    shared: MultiTaskTextClassifier,
) -> None:
    texts, sentiments, _ = reviews()
    view = shared.task("sentiment")
    blend = BlendedTextClassifier(
        [("transformer", view), ("recorder", Recorder())], prefit=("transformer",)
    ).fit(texts, sentiments)
    held_out = shared.held_out(texts)
    np.testing.assert_array_equal(blend.validation_rows_, np.flatnonzero(held_out))
    assert blend.estimators_[0] is view  # not cloned, not refitted
    assert blend.estimators_[1].seen_ == [t for t, h in zip(texts, held_out) if not h]
    assert "the rows transformer held out of its training" in blend.tuned_on_
    refitted = BlendedTextClassifier(
        [("transformer", view), ("recorder", Recorder())], prefit=("transformer",), refit=True
    ).fit(texts, sentiments)
    assert refitted.estimators_[0] is view and refitted.estimators_[1].seen_ == texts
    with pytest.raises(ValueError, match="not members"):
        BlendedTextClassifier([("a", view)], prefit=("b",)).fit(texts, sentiments)
    unseen = [f"{t} new" for t in texts]
    with pytest.raises(ValueError, match="held out none"):
        prefit_blend(view, make_sentiment_model).fit(unseen, sentiments)


# -- the text job's shared encoder: which rows the candidate may train on ------------------------


def review_table() -> pd.DataFrame:
    """The reviews as the text job's table: ``id``, ``text``, ``sentiment``, ``themes``."""
    texts, sentiments, themes = reviews()
    joined = ["|".join(t for t, on in zip(THEME_IDS, row) if on) for row in themes]
    ids = [f"r{i}" for i in range(len(texts))]
    return pd.DataFrame({"id": ids, "text": texts, "sentiment": sentiments, "themes": joined})


def test_the_candidate_never_trains_on_either_tasks_validation_texts() -> None:
    from retain.config import Taxonomy
    from retain.text.training import SharedEncoder, multitask_data

    texts = reviews()[0]
    table = review_table()
    rows = {"sentiment": table.iloc[:50].reset_index(drop=True), "themes": table.iloc[10:]}
    rows["themes"] = rows["themes"].reset_index(drop=True)
    taxonomy = Taxonomy(themes=[{"id": t, "name": t, "description": t} for t in THEME_IDS])
    config = TextJobConfig(data={"path": "x.csv", "columns": {"text": "text"}})
    encoder = SharedEncoder(rows, config, taxonomy)
    validation = {
        text for task, (_, held) in encoder.splits.items() for text in rows[task]["text"].iloc[held]
    }
    candidate, y = multitask_data(rows, encoder.candidate_rows, taxonomy.ids)
    assert candidate and not set(candidate) & validation
    # Each task loses only the other task's validation texts, not more.
    for task, (fit, _) in encoder.splits.items():
        kept = set(rows[task]["text"].iloc[encoder.candidate_rows[task]])
        assert kept == set(rows[task]["text"].iloc[fit]) - validation
    # Texts of one task only carry a missing target for the other.
    everything, y = multitask_data(rows, encoder.all_rows, taxonomy.ids)
    assert everything == texts
    assert [v is None for v in y["sentiment"]] == [i >= 50 for i in range(60)]
    assert np.isnan(y["themes"][:10]).all() and not np.isnan(y["themes"][10:]).any()


def test_auto_keeping_the_transformer_for_one_task_reads_the_shared_model(
    tiny_bert: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sentiment keeps the transformer, themes TF-IDF: sentiment reads the multi-task model."""
    from retain.config import Taxonomy
    from retain.text import training

    table = review_table()
    taxonomy = Taxonomy(themes=[{"id": t, "name": t, "description": t} for t in THEME_IDS])
    config = TextJobConfig(
        data={"path": "x.csv", "columns": {"text": "text"}},
        model={
            "kind": "auto",
            "encoder": str(tiny_bert),
            "tfidf": {"min_df": 2},
            "transformer": {"params": {"epochs": 1, "batch_size": 16}},
        },
        validation={"bootstrap": 100},
    )

    def decided(task: str, candidates: list[Any], *_: Any) -> tuple[str, list, str]:
        return ("transformer" if task == "sentiment" else "tfidf"), [], "decided by the test"

    monkeypatch.setattr(training, "choose_kind", decided)
    fits: list[int] = []
    original = MultiTaskTextClassifier.fit

    def counted(model: MultiTaskTextClassifier, X: Any, y: Any) -> MultiTaskTextClassifier:
        fits.append(len(X))
        return original(model, X, y)

    monkeypatch.setattr(MultiTaskTextClassifier, "fit", counted)
    result = training.train_text_models(table, taxonomy, config)
    # One candidate fit (without either task's validation texts), one refit on every text.
    assert len(fits) == 2 and fits[0] < 60 and fits[1] == 60
    sentiment, themes = result.tasks["sentiment"], result.tasks["themes"]
    assert sentiment.shared_encoder and not themes.shared_encoder
    assert not result.shared_encoder  # the bundle's tasks do not share an encoder pass
    assert all(
        c.shared_encoder
        for r in (sentiment, themes)
        for c in r.candidates
        if c.kind == "transformer"
    )
    view = result.bundle.sentiment.estimators_[0]
    assert isinstance(view, SharedEncoderTask) and view.model.tasks_ == ("sentiment", "themes")
    assert not hasattr(result.bundle.themes, "estimators_")  # the TF-IDF pipeline
    assert "shared with the other task" in sentiment.how_chosen
