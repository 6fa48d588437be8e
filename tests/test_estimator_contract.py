"""The scikit-learn contract, checked for every estimator retain trains.

MLflow's sklearn flavour, ``clone``, grid search and the training job rely on it: parameters
stored unchanged in ``__init__`` and nothing else there, learned state ending in ``_``, ``fit``
returning ``self``, ``classes_`` in the order of ``predict_proba``'s columns, storing with skops (how
retain logs models) and pickling.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import cloudpickle
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.base import BaseEstimator, clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import (
    check_estimator,
    check_get_params_invariance,
    check_no_attributes_set_in_init,
    check_parameters_default_constructible,
    check_set_params,
)
from sklearn.utils.validation import check_is_fitted

from retain.churn.model import ChurnClassifier, make_logistic_baseline
from retain.config import TextModelConfig
from retain.text.aspects import make_pair_model, theme_pairs
from retain.text.multitask import MultiTaskTextClassifier
from retain.text.tfidf import make_sentiment_model, make_theme_model
from retain.text.transformer import BlendedTextClassifier, TransformerTextClassifier

TEXT_CONFIG = TextModelConfig(min_df=2, max_features=2000)


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


def churn_table() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(0)
    n = 300
    usage = rng.normal(0, 1, n)
    usage[::17] = np.nan
    plan = rng.choice(["basic", "pro", "team"], n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(np.nan_to_num(usage) + (plan == "basic"))))).astype(int)
    X = pd.DataFrame(
        {
            "usage": usage,
            "tickets": rng.poisson(1, n),
            "plan": pd.array(plan, dtype="str"),
            "segment": pd.Categorical(rng.choice(["smb", "enterprise"], n)),
        }
    )
    return X, y


TEXTS = {
    "negative": [
        "terrible service",
        "charged twice, awful",
        "app keeps crashing",
        "waited hours, bad",
    ],
    "neutral": [
        "how do I change my address",
        "what are the opening hours",
        "where is my invoice",
        "update my email",
    ],
    "positive": [
        "great service thanks",
        "love the app",
        "excellent support, happy",
        "fantastic, thank you",
    ],
}


def sentiment_corpus() -> tuple[list[str], np.ndarray]:
    texts = [t for label in TEXTS for t in TEXTS[label]] * 2
    labels = np.array([label for label in TEXTS for _ in TEXTS[label]] * 2)
    return texts, labels


def theme_corpus() -> tuple[list[str], np.ndarray]:
    texts, labels = sentiment_corpus()
    billing = np.array(["charged" in t or "invoice" in t for t in texts])
    bugs = np.array(["crashing" in t for t in texts])
    return texts, np.column_stack([billing, bugs, labels == "positive"]).astype(int)


def multitask_corpus() -> tuple[list[str], dict[str, np.ndarray]]:
    """Sentiment and themes on the same texts, a few rows carrying only one of them."""
    texts, labels = sentiment_corpus()
    _, themes = theme_corpus()
    sentiment = labels.astype(object)
    sentiment[[0, 13]] = None
    indicator = themes.astype(float)
    indicator[[5, 20]] = np.nan
    return texts, {"sentiment": sentiment, "themes": indicator}


def pair_corpus() -> tuple[pd.DataFrame, np.ndarray]:
    """(text, theme) pairs whose polarity depends on the theme: food good, service bad, ..."""
    texts = ["food great, service slow", "service lovely, food cold", "cheap and quiet"] * 4
    polarities = [
        {"food": "positive", "service": "negative"},
        {"food": "negative", "service": "positive"},
        {"price": "positive", "ambience": "neutral"},
    ] * 4
    pairs, labels = theme_pairs(texts, polarities)
    return pairs[["text", "theme"]], labels.astype(str)


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[..., BaseEstimator]
    data: Callable[[], tuple[Any, np.ndarray]]
    multilabel: bool = False
    needs_encoder: bool = False  # make(encoder_folder): the tiny random BERT fixture
    multi_output: bool = False  # y maps task -> target; predict_proba gives one array per task


def fine_tuned(encoder: str) -> TransformerTextClassifier:
    # Enough steps for the tiny BERT to separate the toy corpus; no validation rows to spare.
    return TransformerTextClassifier(
        encoder=encoder, epochs=15, learning_rate=3e-3, batch_size=8, validation_fraction=0
    )


def frozen(encoder: str) -> TransformerTextClassifier:
    return TransformerTextClassifier(encoder=encoder, mode="frozen", tfidf=True, C=10.0)


def multitask(encoder: str) -> MultiTaskTextClassifier:
    return MultiTaskTextClassifier(
        encoder=encoder, epochs=15, learning_rate=3e-3, batch_size=8, validation_fraction=0
    )


def blend(encoder: str) -> BlendedTextClassifier:
    return BlendedTextClassifier(
        [("tfidf", make_sentiment_model(TEXT_CONFIG)), ("bert", fine_tuned(encoder))],
        validation_fraction=0.25,
        refit=True,
    )


def theme_blend(encoder: str) -> BlendedTextClassifier:
    return BlendedTextClassifier(
        [("tfidf", make_theme_model(TEXT_CONFIG)), ("bert", fine_tuned(encoder))],
        validation_fraction=0.25,
        refit=True,
    )


CASES = [
    Case(
        "churn_classifier",
        lambda: ChurnClassifier(n_estimators=20, min_child_samples=10, n_jobs=1),
        churn_table,
    ),
    Case("logistic_baseline", make_logistic_baseline, churn_table),
    Case("sentiment_pipeline", lambda: make_sentiment_model(TEXT_CONFIG), sentiment_corpus),
    Case("theme_pipeline", lambda: make_theme_model(TEXT_CONFIG), theme_corpus, multilabel=True),
    Case("theme_pair_pipeline", lambda: make_pair_model(TEXT_CONFIG), pair_corpus),
    Case("transformer_sentiment", fine_tuned, sentiment_corpus, needs_encoder=True),
    Case("transformer_themes", fine_tuned, theme_corpus, multilabel=True, needs_encoder=True),
    Case("transformer_theme_pairs", fine_tuned, pair_corpus, needs_encoder=True),
    Case("transformer_frozen", frozen, sentiment_corpus, needs_encoder=True),
    Case("blend_sentiment", blend, sentiment_corpus, needs_encoder=True),
    Case("blend_themes", theme_blend, theme_corpus, multilabel=True, needs_encoder=True),
    Case("multitask", multitask, multitask_corpus, needs_encoder=True, multi_output=True),
]


@pytest.fixture(params=CASES, ids=[c.name for c in CASES])
def case(request: pytest.FixtureRequest) -> Case:
    case = request.param
    if case.needs_encoder:
        folder = str(request.getfixturevalue("tiny_bert"))
        return replace(case, make=functools.partial(case.make, folder))
    return case


def _comparable(params: dict[str, Any]) -> dict[str, Any]:
    """Deep params with nested estimators replaced by their type (their own params are listed)."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, BaseEstimator):
            out[key] = type(value)
        elif isinstance(value, list) and value and all(isinstance(v, tuple) for v in value):
            out[key] = [(n, type(e)) for n, e, *_ in value]  # Pipeline steps, FeatureUnion parts
        else:
            out[key] = value
    return out


def test_clone_gives_an_unfitted_estimator_with_equal_params(case: Case) -> None:
    estimator = case.make()
    X, y = case.data()
    estimator.fit(X, y)
    copy = clone(estimator)
    with pytest.raises(NotFittedError):
        check_is_fitted(copy)
    assert _comparable(copy.get_params(deep=True)) == _comparable(estimator.get_params(deep=True))


def test_get_params_round_trips_through_set_params(case: Case) -> None:
    estimator = case.make()
    params = estimator.get_params(deep=False)
    assert estimator.set_params(**params) is estimator
    assert _comparable(estimator.get_params(deep=True)) == _comparable(
        case.make().get_params(deep=True)
    )


def test_fit_returns_self_and_leaves_params_unchanged(case: Case) -> None:
    estimator = case.make()
    before = _comparable(estimator.get_params(deep=True))
    X, y = case.data()
    assert estimator.fit(X, y) is estimator
    assert _comparable(estimator.get_params(deep=True)) == before


def test_predict_proba_shape_and_label_order(case: Case) -> None:
    X, y = case.data()
    estimator = case.make().fit(X, y)
    proba = estimator.predict_proba(X)
    if case.multi_output:
        _check_each_output(estimator, X, y, proba)
        return
    assert ((proba >= 0) & (proba <= 1)).all()
    if case.multilabel:
        assert proba.shape == (len(X), y.shape[1])
        np.testing.assert_array_equal(estimator.classes_, np.arange(y.shape[1]))
        return
    np.testing.assert_array_equal(estimator.classes_, np.unique(y))
    assert proba.shape == (len(X), len(estimator.classes_))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(estimator.predict(X), estimator.classes_[proba.argmax(axis=1)])
    # The column of a class holds that class's probability: it is highest on its own rows.
    for j, label in enumerate(estimator.classes_):
        assert proba[y == label, j].mean() > proba[y != label, j].mean()


def _check_each_output(estimator: Any, X: Any, y: dict[str, Any], proba: list[Any]) -> None:
    """A multi-output model: per task (``y``'s order) classes and probabilities, as above."""
    assert len(proba) == len(estimator.classes_) == len(y)
    for (task, target), classes, task_proba in zip(y.items(), estimator.classes_, proba):
        assert ((task_proba >= 0) & (task_proba <= 1)).all()
        target = np.asarray(target)
        if target.ndim == 2:
            np.testing.assert_array_equal(classes, np.arange(target.shape[1]))
            assert task_proba.shape == (len(X), target.shape[1])
            continue
        labelled = np.array([v is not None for v in target])
        np.testing.assert_array_equal(classes, np.unique(target[labelled].astype(str)))
        np.testing.assert_allclose(task_proba.sum(axis=1), 1.0, atol=1e-6)
        for j, label in enumerate(classes):
            mine, others = labelled & (target == label), labelled & (target != label)
            assert task_proba[mine, j].mean() > task_proba[others, j].mean(), task


def test_fitted_estimator_survives_cloudpickle(case: Case) -> None:
    X, y = case.data()
    estimator = case.make().fit(X, y)
    restored = cloudpickle.loads(cloudpickle.dumps(estimator))
    expected, got = estimator.predict_proba(X), restored.predict_proba(X)
    if not case.multi_output:
        expected, got = [expected], [got]
    for a, b in zip(expected, got, strict=True):
        np.testing.assert_array_equal(b, a)


def test_fitted_estimator_survives_skops_with_retains_trusted_types(case: Case) -> None:
    """How retain stores models (no pickle): skops, loading only the types retain lists."""
    import skops.io

    from retain.tracking import SKOPS_TRUSTED_TYPES, TEXT_SKOPS_TRUSTED_TYPES

    if case.name == "theme_pair_pipeline":
        pytest.skip("only the benchmarks fit the pair model; retain never logs it")
    X, y = case.data()
    estimator = case.make().fit(X, y)
    stored = skops.io.dumps(estimator)
    trusted = [*SKOPS_TRUSTED_TYPES, *TEXT_SKOPS_TRUSTED_TYPES]
    assert set(skops.io.get_untrusted_types(data=stored)) <= set(trusted)
    restored = skops.io.loads(stored, trusted=trusted)
    expected, got = estimator.predict_proba(X), restored.predict_proba(X)
    if not case.multi_output:
        expected, got = [expected], [got]
    for a, b in zip(expected, got, strict=True):
        np.testing.assert_array_equal(b, a)


def test_init_sets_parameters_only(case: Case) -> None:
    check_no_attributes_set_in_init(case.name, case.make())
    check_get_params_invariance(case.name, case.make())


def test_churn_classifier_parameters_are_default_constructible() -> None:
    check_parameters_default_constructible("ChurnClassifier", ChurnClassifier())
    check_set_params("ChurnClassifier", ChurnClassifier())


def test_churn_classifier_passes_scikit_learns_check_estimator() -> None:
    # Every check applies (binary-only is declared with a tag), so none is expected to fail.
    # Few trees keep it quick; the checks are about the contract, not accuracy at scale.
    check_estimator(ChurnClassifier(n_estimators=10, n_jobs=1))


@pytest.mark.parametrize("method", ["predict", "predict_proba", "raw_margin", "feature_attributions"])
def test_churn_classifier_raises_not_fitted_before_fit(method: str) -> None:
    X, _ = churn_table()
    with pytest.raises(NotFittedError):
        getattr(ChurnClassifier(), method)(X)


def test_churn_classifier_rejects_sparse_input_with_a_clear_message() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    y = (X[:, 0] > 0).astype(int)
    with pytest.raises(TypeError, match="does not support sparse input"):
        ChurnClassifier(n_estimators=5, n_jobs=1).fit(sp.csr_matrix(X), y)
    model = ChurnClassifier(n_estimators=5, n_jobs=1).fit(X, y)
    with pytest.raises(TypeError, match="does not support sparse input"):
        model.predict_proba(sp.csr_array(X))
    sparse_frame = pd.DataFrame(X).astype(pd.SparseDtype(float, 0.0))
    with pytest.raises(TypeError, match="does not support sparse input"):
        ChurnClassifier(n_estimators=5, n_jobs=1).fit(sparse_frame, y)


def test_churn_classifier_rejects_empty_input() -> None:
    X, y = churn_table()
    with pytest.raises(ValueError, match="0 sample"):
        ChurnClassifier(n_jobs=1).fit(X.iloc[:0], y[:0])
    with pytest.raises(ValueError, match="0 feature"):
        ChurnClassifier(n_jobs=1).fit(X.iloc[:, :0], y)
    with pytest.raises(ValueError, match="0 sample"):
        ChurnClassifier(n_jobs=1).fit(np.empty((0, 3)), y[:0])


def test_churn_classifier_is_binary_only() -> None:
    X, _ = churn_table()
    three = np.arange(len(X)) % 3
    with pytest.raises(ValueError, match="Only binary classification is supported"):
        ChurnClassifier(n_jobs=1).fit(X, three)
