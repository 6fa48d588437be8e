"""Single-label themes (`themes_mode`) and `auto`'s figures from validation rows that did not choose.

The corpus is the text job's (tests/test_text_job.py) without its no-theme rows: every text then
carries exactly one theme, learnable from its phrase. The taxonomy has one more theme that no
row carries, so the probability columns must cover themes the model never saw.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from retain.config import Taxonomy, TextJobConfig
from retain.text.bundle import TextModelBundle
from retain.text.training import (
    MIN_HALF_ROWS,
    Candidate,
    TextTrainingError,
    choose_kind,
    evaluation_fingerprint,
    single_label_themes,
    split_selection_report,
    train_text_models,
)
from test_text_job import TAXONOMY, _Probabilities, corpus, retain, scores_of, write_config

THEME_IDS = ["billing", "support", "app", "delivery"]  # delivery: in no row
SINGLE_TAXONOMY = {
    "themes": [
        *TAXONOMY["themes"],
        {"id": "delivery", "name": "Delivery", "description": "Parcels that never arrive."},
    ]
}


def one_theme_each() -> pd.DataFrame:
    """45 texts of the corpus, each with exactly one theme (billing, support or app)."""
    frame = corpus()
    return frame.loc[frame["topics"] != ""].reset_index(drop=True)


def text_table(frame: pd.DataFrame) -> pd.DataFrame:
    """The corpus as ``load_text_table`` gives it: themes only, no-theme rows as ``""``."""
    return pd.DataFrame(
        {"id": frame["review_id"], "text": frame["body"], "sentiment": None,
         "themes": frame["topics"]}
    )


def job_config(**settings: Any) -> TextJobConfig:
    model = {"kind": "tfidf", "unlabelled": "skip", "tfidf": {"min_df": 2}}
    model.update(settings.pop("model", {}))
    return TextJobConfig.model_validate(
        {
            "data": {"path": "reviews.csv", "columns": {"text": "body", "themes": "topics"}},
            "model": model,
            "validation": {"bootstrap": 200, **settings.pop("validation", {})},
            **settings,
        }
    )


TAXONOMY_MODEL = Taxonomy.model_validate(SINGLE_TAXONOMY)


@pytest.fixture
def store(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.fixture
def single_label_taxonomy(tmp_path: Path) -> Path:
    path = tmp_path / "themes.yaml"
    path.write_text(yaml.safe_dump(SINGLE_TAXONOMY))
    return path


def test_one_theme_per_text_is_learnt_single_label_and_scored_with_exactly_one_theme(
    tmp_path: Path, store: str, single_label_taxonomy: Path
) -> None:
    frame = one_theme_each()
    frame.to_csv(tmp_path / "reviews.csv", index=False)
    config = write_config(
        tmp_path, store, single_label_taxonomy, "text-single", sentiment=False,
        data=tmp_path / "reviews.csv",
    )
    trained = retain("text", "train", "-c", str(config), "--quiet")
    assert trained.exit_code == 0, trained.output
    assert "Themes: themes_mode auto: each of the 45 theme-labelled texts" in trained.output
    record = json.loads((tmp_path / "out" / "text_training.json").read_text())
    assert record["themes_mode"]["setting"] == "auto"
    assert record["themes_mode"]["single_label"] is True
    themes = record["tasks"]["themes"]
    assert {"accuracy", "macro_f1", "micro_f1"} <= set(themes["validation"])
    assert themes["validation"]["accuracy"] > themes["majority_baseline"]["accuracy"]
    # The champion rule compares the single-label metric, and the report agrees with it.
    assert "themes_macro_f1" in record["registry"]["reason"]
    assert record["report_metrics"]["themes_accuracy"] == pytest.approx(
        themes["validation"]["accuracy"]
    )
    assert record["report_metrics"]["themes_macro_f1"] == pytest.approx(
        themes["validation"]["macro_f1"]
    )

    scored = retain("text", "score", "-c", str(config), "--quiet")
    assert scored.exit_code == 0, scored.output
    scores = scores_of(config)
    assert scores["themes"].isin(["billing", "support", "app"]).all()  # one theme, never none
    columns = [f"theme_{t}" for t in THEME_IDS]
    assert set(columns) <= set(scores.columns)
    assert (scores["theme_delivery"] == 0).all()
    np.testing.assert_allclose(scores[columns].sum(axis=1), 1.0, atol=1e-6)
    assert (scores["themes"] == frame["topics"]).mean() >= 0.9


def test_auto_detects_single_label_only_when_every_row_has_exactly_one_theme() -> None:
    single = text_table(one_theme_each())
    assert single_label_themes(single, "auto")[0] is True
    with_none = text_table(corpus())  # 15 rows labelled with no theme
    chosen, why = single_label_themes(with_none, "auto")
    assert chosen is False and "15 of 60" in why and "no theme or several" in why
    two = single.assign(themes=single["themes"].where(single.index > 0, "billing|app"))
    assert single_label_themes(two, "auto")[0] is False
    one_theme = single.assign(themes="billing")
    assert single_label_themes(one_theme, "auto")[0] is False
    # Explicit settings win; single is refused where it cannot hold, naming the rows.
    assert single_label_themes(single, "multi")[0] is False
    assert single_label_themes(single, "single")[0] is True
    with pytest.raises(TextTrainingError, match=r"15 of 60 .* \(ids R016"):
        single_label_themes(with_none, "single")


def test_an_explicit_multi_keeps_multi_label_themes_on_one_theme_data() -> None:
    table = text_table(one_theme_each())
    multi = train_text_models(table, TAXONOMY_MODEL, job_config(themes_mode="multi"))
    single = train_text_models(table, TAXONOMY_MODEL, job_config())
    assert multi.bundle.single_label_themes is False and single.bundle.single_label_themes is True
    assert multi.tasks["themes"].model.classes_.tolist() == [0, 1, 2, 3]  # indicator columns
    assert sorted(single.tasks["themes"].model.classes_) == ["app", "billing", "support"]
    assert "accuracy" not in multi.tasks["themes"].metrics
    assert multi.primary is not None and multi.primary[0] == "themes_micro_f1"
    assert single.primary is not None and single.primary[0] == "themes_macro_f1"
    # The same rows, but not the same figures: not the same evaluation.
    assert multi.evaluation_id != single.evaluation_id


def test_the_single_label_bundle_assigns_the_most_probable_theme_whatever_its_probability() -> None:
    # A label model that knows two of the three themes, in its own order.
    themes = _Probabilities([[0.45, 0.55], [0.9, 0.1]], ["support", "billing"])
    bundle = TextModelBundle(
        None, themes, ("billing", "app", "support"), threshold=0.6, single_label_themes=True
    )
    out = bundle.predict(["a", "b"])
    assert out["themes"].tolist() == ["billing", "support"]  # 0.55 < threshold: still assigned
    assert out["theme_app"].tolist() == [0.0, 0.0]
    assert out["theme_billing"].tolist() == [0.55, 0.1]
    thresholded = TextModelBundle(None, themes, ("billing", "app", "support"), threshold=0.6)
    assert thresholded.predict(["a", "b"])["themes"].tolist() == ["", "support"]
    # Theme ids that look like numbers are names of a label model's classes, not positions.
    numeric = _Probabilities([[0.3, 0.7]], np.array(["3", "1"]))
    bundle = TextModelBundle(None, numeric, ("1", "2", "3"), single_label_themes=True)
    out = bundle.predict(["a"])
    assert out[["theme_1", "theme_2", "theme_3"]].iloc[0].tolist() == [0.7, 0.0, 0.3]
    assert out["themes"].tolist() == ["1"]


def test_the_choice_between_single_label_theme_models_is_made_by_macro_f1() -> None:
    """A reference that always says the common theme wins on micro-F1 (= accuracy here) and
    loses on macro-F1 to a candidate that finds the rare themes at some cost."""
    truth_ids = np.array([0] * 90 + [1] * 15 + [2] * 15)
    common = np.zeros_like(truth_ids)
    rare_finder = truth_ids.copy()
    rare_finder[:35] = 1  # 35 common texts wrongly called rare
    one_hot = np.eye(3, dtype=int)
    truth, reference, candidate = one_hot[truth_ids], one_hot[common], one_hot[rare_finder]
    candidates = [
        Candidate("tfidf", {}, reference, 0.0),
        Candidate("transformer", {}, candidate, 0.0),
    ]
    kind, (comparison,), _ = choose_kind("themes", candidates, truth, 300, 0, single_label=True)
    assert kind == "transformer" and comparison.metric == "macro_f1" and comparison.better
    kind, (comparison,), _ = choose_kind("themes", candidates, truth, 300, 0, single_label=False)
    assert kind == "tfidf" and comparison.metric == "micro_f1" and comparison.difference < 0


def test_selection_and_report_halves_are_disjoint_stratified_and_fall_back_when_small() -> None:
    rows = text_table(one_theme_each()).iloc[:30]
    selection, report, note = split_selection_report(rows, "themes", n_usable=2, seed=0)
    assert len(selection) and len(report) and not set(selection) & set(report)
    assert sorted([*selection, *report]) == list(range(30))
    for half in (selection, report):  # each theme in both halves
        assert set(rows["themes"].iloc[half]) == {"billing", "support", "app"}
    assert "selection half" in note and "report half" in note
    small = rows.iloc[: 2 * MIN_HALF_ROWS - 1]
    selection, report, note = split_selection_report(small, "themes", n_usable=2, seed=0)
    assert selection.tolist() == report.tolist() == list(range(len(small)))
    assert "too few to halve" in note
    selection, report, note = split_selection_report(rows, "themes", n_usable=1, seed=0)
    assert len(selection) == len(report) == 30 and "no choice made" in note


def _tfidf_stand_in(task: str, choice: Any, taxonomy: Any, single_label: bool = False) -> Any:
    from retain.text import models

    return models.tfidf_model(task, choice, taxonomy, single_label)


def test_auto_reports_figures_from_the_rows_that_did_not_choose(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from retain.text import models

    monkeypatch.setitem(models.FACTORIES, "transformer", _tfidf_stand_in)
    table = text_table(one_theme_each())
    config = job_config(model={"kind": "auto"}, validation={"fraction": 0.5})
    result = train_text_models(table, TAXONOMY_MODEL, config)
    themes = result.tasks["themes"]
    assert themes.n_selection >= MIN_HALF_ROWS and themes.n_validation >= MIN_HALF_ROWS
    assert themes.n_selection + themes.n_validation == 45 - themes.n_fit
    assert len(themes.validation_ids) == len(themes.validation_truth) == themes.n_validation
    assert themes.comparisons[0].metric == "macro_f1"
    assert "chosen by a paired bootstrap on the selection half" in result.tuned_on
    assert "figures from the other" in result.tuned_on
    # The fingerprint names the report rows, not the whole validation split.
    content = ["themes single-label", *themes.validation_texts]
    content += [str(v.tolist()) for v in themes.validation_truth]
    expected = evaluation_fingerprint(
        sorted(themes.validation_ids), config, content, TAXONOMY_MODEL.ids
    )
    assert result.evaluation_id == expected
    plain = train_text_models(
        table, TAXONOMY_MODEL, job_config(validation={"fraction": 0.5})
    )
    assert plain.tasks["themes"].n_validation == themes.n_selection + themes.n_validation
    assert plain.evaluation_id != result.evaluation_id
    assert "chosen on it: nothing" in plain.tuned_on

    small = train_text_models(table, TAXONOMY_MODEL, job_config(model={"kind": "auto"}))
    assert small.tasks["themes"].n_selection == 0
    assert "too few to halve" in small.tuned_on


def test_a_single_label_transformer_assigns_one_theme_through_the_bundle(tiny_bert: Path) -> None:
    table = text_table(one_theme_each())
    model = {
        "kind": "transformer",
        "encoder": str(tiny_bert),
        "transformer": {"params": {"epochs": 1, "batch_size": 16}},
    }
    result = train_text_models(table, TAXONOMY_MODEL, job_config(model=model))
    bundle = result.bundle
    assert bundle.single_label_themes and bundle.kinds["themes"] == "transformer"
    assert bundle.themes.multilabel_ is False
    out = bundle.predict(table["text"].tolist()[:10] + ["something else entirely"])
    assert out["themes"].isin(["billing", "support", "app"]).all()
    columns = [f"theme_{t}" for t in THEME_IDS]
    np.testing.assert_allclose(out[columns].sum(axis=1), 1.0, atol=1e-5)
    assert (out["theme_delivery"] == 0).all()
