"""`retain text train` / `retain text score` end to end on tiny CSV files, with a real MLflow store.

The corpus is built so that sentiment and themes are learnable from words (an opener carries the
sentiment, a phrase the theme), so the checks on predictions can fail when the model is wrong.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from retain.cli import app
from retain.config import TextJobConfig
from retain.text import cache as text_cache
from retain.text.bundle import TextModelBundle
from retain.text.training import Candidate, choose_kind, paired_bootstrap

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"

OPENERS = {
    "negative": [
        "awful",
        "terrible and angry",
        "bad, the worst",
        "I hate this",
        "so wrong and slow",
    ],
    "neutral": ["ok", "it is fine", "nothing special", "okay, average", "fine I guess"],
    "positive": ["great", "lovely, thanks", "excellent and happy", "I love it", "very good, kind"],
}
PHRASES = {
    "billing": "charged twice on my bill, need a refund for the invoice",
    "support": "the agent never answered my call, waiting for a reply",
    "app": "the app crash after the update, login error on the screen",
    "": "my order for the hotel room",
}
TAXONOMY = {
    "themes": [
        {"id": "billing", "name": "Billing", "description": "Charges, refunds and invoices."},
        {"id": "support", "name": "Support", "description": "Waiting for an agent or a reply."},
        {"id": "app", "name": "App problems", "description": "Crashes, errors and bugs."},
    ]
}


def corpus() -> pd.DataFrame:
    """60 texts: 3 sentiments x 4 theme cases (3 themes and none) x 5 openers."""
    rows = []
    for sentiment, openers in OPENERS.items():
        for theme, phrase in PHRASES.items():
            for i, opener in enumerate(openers):
                rows.append(
                    {
                        "review_id": f"R{len(rows) + 1:03d}",
                        "body": f"{opener} {phrase} {i}",
                        "stars": {"negative": "1", "neutral": "3", "positive": "5"}[sentiment],
                        "topics": theme,
                    }
                )
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('text-store') / 'mlflow.db'}"


@pytest.fixture(scope="module")
def taxonomy_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("taxonomy") / "themes.yaml"
    path.write_text(yaml.safe_dump(TAXONOMY))
    return path


def write_config(
    folder: Path,
    store: str,
    taxonomy: Path,
    model_name: str,
    *,
    sentiment: bool = True,
    themes: bool = True,
    data: Path | None = None,
    model: dict[str, Any] | None = None,
    settings: dict[str, Any] | None = None,
    **columns: str,
) -> Path:
    """A text job config for the corpus CSV in ``folder``; labels mapped as a user would.

    ``settings`` replace top-level sections or keys (``validation``, ``themes_mode``).
    """
    if data is None:
        data = folder / "reviews.csv"
        corpus().to_csv(data, index=False)
    mapping: dict[str, Any] = {"text": "body", "id": "review_id", **columns}
    section: dict[str, Any] = {"path": str(data), "columns": mapping}
    if sentiment:
        mapping["sentiment"] = "stars"
        section["sentiment_values"] = {"1": "negative", "3": "neutral", "5": "positive"}
    if themes:
        mapping["themes"] = "topics"
        section["empty_themes"] = "no_theme"
    config = {
        "data": section,
        "taxonomy": str(taxonomy),
        "model": {"kind": "tfidf", "unlabelled": "skip", "tfidf": {"min_df": 2}, **(model or {})},
        "validation": {"bootstrap": 200},
        "tracking": {"tracking_uri": store, "experiment": "text-job", "text_model": model_name},
        "output": str(folder / "out" / "scores.csv"),
        "cache": str(folder / "out" / "cache.parquet"),
        **(settings or {}),
    }
    path = folder / "text.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def retain(*args: str) -> Any:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def scores_of(config: Path) -> pd.DataFrame:
    output = Path(yaml.safe_load(config.read_text())["output"])
    return pd.read_csv(output, dtype={"id": str}, keep_default_na=False)


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory, store: str, taxonomy_file: Path) -> Path:
    """A config with both labels, trained once for the tests that score."""
    config = write_config(tmp_path_factory.mktemp("both"), store, taxonomy_file, "text-both")
    result = retain("text", "train", "-c", str(config), "--quiet")
    assert result.exit_code == 0, result.output
    return config


def test_train_with_both_labels_reports_validation_and_registers_a_champion(
    both: Path,
) -> None:
    record = json.loads((both.parent / "out" / "text_training.json").read_text())
    assert set(record["tasks"]) == {"sentiment", "themes"}
    sentiment, themes = record["tasks"]["sentiment"], record["tasks"]["themes"]
    assert sentiment["kind"] == themes["kind"] == "tfidf"
    assert sentiment["n_labelled"] == 60 and sentiment["n_validation"] == 12
    # Stratified: each sentiment holds 20% of its rows out.
    assert {"accuracy", "macro_f1"} <= set(sentiment["validation"])
    assert {"micro_f1", "macro_f1"} <= set(themes["validation"])
    assert sentiment["validation"]["accuracy"] > sentiment["majority_baseline"]["accuracy"]
    assert record["registry"]["promoted"] is True
    assert record["registry"]["name"] == "text-both"
    assert "validation split" in record["tuned_on"]
    # The evaluation report describes the validation split: 12 texts, both tasks.
    report = (both.parent / "out" / "text_evaluation.html").read_text()
    for section in ("Themes", "Sentiment", "Calibration", "errors"):
        assert section in report
    # ... and the same model the validation figures describe (fitted on the training part).
    assert record["report_metrics"]["sentiment_accuracy"] == pytest.approx(
        sentiment["validation"]["accuracy"]
    )
    assert record["report_metrics"]["themes_micro_f1"] == pytest.approx(
        themes["validation"]["micro_f1"]
    )


def test_score_writes_one_row_per_text_with_probabilities_labels_and_summary(both: Path) -> None:
    result = retain("text", "score", "-c", str(both), "--quiet")
    assert result.exit_code == 0, result.output
    assert "Texts by theme and sentiment" in result.output
    scores = scores_of(both)
    truth = corpus()
    assert scores["id"].tolist() == truth["review_id"].tolist()
    expected = [
        "id",
        "text",
        "sentiment_negative",
        "sentiment_neutral",
        "sentiment_positive",
        "sentiment",
        "theme_billing",
        "theme_support",
        "theme_app",
        "themes",
        "theme_sentiments",
    ]
    assert scores.columns.tolist() == expected
    probabilities = scores[["sentiment_negative", "sentiment_neutral", "sentiment_positive"]]
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-6)
    # The model learnt the words: training texts come back with their labels.
    stars = truth["stars"].map({"1": "negative", "3": "neutral", "5": "positive"})
    assert (scores["sentiment"] == stars).mean() >= 0.9
    assert (scores["themes"] == truth["topics"]).mean() >= 0.9
    # One theme:sentiment pair per theme raised, in the same order; these one-clause texts
    # take the whole text's sentiment.
    for row in scores.itertuples():
        pairs = [p for p in row.theme_sentiments.split("|") if p]
        assert [p.split(":")[0] for p in pairs] == [t for t in row.themes.split("|") if t]
        assert all(p.split(":")[1] in {"negative", "neutral", "positive", "mixed"} for p in pairs)
    agree = [
        all(p.endswith(f":{row.sentiment}") for p in row.theme_sentiments.split("|") if p)
        for row in scores.itertuples()
    ]
    assert np.mean(agree) >= 0.9
    summary = json.loads((both.parent / "out" / "scores_summary.json").read_text())
    assert summary["texts"] == 60 and summary["theme_sentiment_method"] == "clauses"
    counts = pd.DataFrame(summary["counts"]).set_index("theme")
    assert counts["total"].sum() == sum(
        max(1, len([t for t in s.split("|") if t])) for s in scores["themes"]
    )
    assert counts.loc["billing", "total"] == scores["themes"].str.contains("billing").sum()


def test_the_registered_pyfunc_loads_in_a_fresh_process_and_predicts(
    both: Path, tmp_path: Path
) -> None:
    config = TextJobConfig.model_validate(yaml.safe_load(both.read_text()))
    script = tmp_path / "load.py"
    script.write_text(
        "import sys, mlflow, pandas as pd\n"
        f"mlflow.set_tracking_uri({config.tracking.tracking_uri!r})\n"
        f"model = mlflow.pyfunc.load_model('models:/{config.tracking.text_model}@champion')\n"
        "texts = ['awful charged twice on my bill', 'great the agent answered']\n"
        "texts = pd.DataFrame({'text': texts})\n"
        "model.predict(texts).to_json(sys.argv[1], orient='records')\n"
    )
    out = tmp_path / "predicted.json"
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    done = subprocess.run(
        [sys.executable, str(script), str(out)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    predicted = pd.read_json(out, orient="records")
    assert predicted["sentiment"].tolist()[0] == "negative"
    assert "billing" in predicted["themes"].tolist()[0].split("|")
    assert {"sentiment_positive", "theme_support", "themes"} <= set(predicted.columns)
    assert predicted["theme_sentiments"].tolist()[0].startswith("billing:negative")


def test_sentiment_only(tmp_path: Path, store: str, taxonomy_file: Path) -> None:
    config = write_config(tmp_path, store, taxonomy_file, "text-sentiment", themes=False)
    train = retain("text", "train", "-c", str(config), "--quiet")
    assert train.exit_code == 0, train.output
    assert "sentiment: tfidf" in train.output
    assert "themes" in train.output  # says why themes are left out
    score = retain("text", "score", "-c", str(config), "--quiet")
    assert score.exit_code == 0, score.output
    scores = scores_of(config)
    assert "sentiment" in scores.columns
    assert not any(c.startswith("theme") for c in scores.columns)


def test_themes_only(tmp_path: Path, store: str, taxonomy_file: Path) -> None:
    config = write_config(tmp_path, store, taxonomy_file, "text-themes", sentiment=False)
    train = retain("text", "train", "-c", str(config), "--quiet")
    assert train.exit_code == 0, train.output
    assert "themes: tfidf" in train.output
    score = retain("text", "score", "-c", str(config), "--quiet")
    assert score.exit_code == 0, score.output
    scores = scores_of(config)
    assert {"theme_billing", "themes"} <= set(scores.columns)
    assert not any(c.startswith("sentiment") for c in scores.columns)
    assert (scores["themes"] == corpus()["topics"]).mean() >= 0.9


def test_no_labels_and_no_zero_label_model_is_a_clear_error(
    tmp_path: Path, store: str, taxonomy_file: Path
) -> None:
    config = write_config(
        tmp_path, store, taxonomy_file, "text-none-skip", sentiment=False, themes=False
    )
    result = retain("text", "train", "-c", str(config), "--quiet")
    assert result.exit_code == 3
    assert "no text model can be trained" in result.output
    assert "model.unlabelled: skip" in result.output


def test_no_labels_uses_the_zero_label_classifiers(
    tmp_path: Path, store: str, taxonomy_file: Path, tiny_bert: Path
) -> None:
    config = write_config(
        tmp_path,
        store,
        taxonomy_file,
        "text-none",
        sentiment=False,
        themes=False,
        model={"unlabelled": "zero_label", "encoder": str(tiny_bert)},
    )
    train = retain("text", "train", "-c", str(config), "--quiet")
    assert train.exit_code == 0, train.output
    assert "zero-label" in train.output
    score = retain("text", "score", "-c", str(config), "--quiet")
    assert score.exit_code == 0, score.output
    assert {"theme_billing", "theme_support", "theme_app", "themes"} <= set(
        scores_of(config).columns
    )


def test_a_misnamed_column_names_the_file_the_column_and_the_rows(
    tmp_path: Path, store: str, taxonomy_file: Path
) -> None:
    config = write_config(tmp_path, store, taxonomy_file, "text-bad", text="review_text")
    result = retain("text", "train", "-c", str(config), "--quiet")
    assert result.exit_code == 3
    message = " ".join(result.output.split())
    assert str(tmp_path / "reviews.csv") in message
    assert "'review_text' named in data.columns.text is not in the file" in message
    assert (
        "60 rows not read" in message and "Found columns: review_id, body, stars, topics" in message
    )


def test_an_unmapped_label_value_names_the_value_and_the_rows(
    tmp_path: Path, store: str, taxonomy_file: Path
) -> None:
    data = tmp_path / "reviews.csv"
    frame = corpus()
    frame.loc[[3, 7], "stars"] = "4"
    frame.to_csv(data, index=False)
    config = write_config(tmp_path, store, taxonomy_file, "text-bad-label", data=data)
    result = retain("text", "train", "-c", str(config), "--quiet")
    assert result.exit_code == 3
    message = " ".join(result.output.split())
    assert "column 'stars' (data.columns.sentiment) holds '4' on 2 rows (rows 4, 8" in message
    assert "data.sentiment_values" in message


def test_an_unknown_theme_id_is_an_error(tmp_path: Path, store: str, taxonomy_file: Path) -> None:
    data = tmp_path / "reviews.csv"
    frame = corpus()
    frame.loc[5, "topics"] = "billing|delivery"
    frame.to_csv(data, index=False)
    config = write_config(tmp_path, store, taxonomy_file, "text-bad-theme", data=data)
    result = retain("text", "train", "-c", str(config), "--quiet")
    assert result.exit_code == 3
    assert "'delivery' (row 6" in " ".join(result.output.split())


def test_score_without_a_trained_model_says_how_to_train_one(
    tmp_path: Path, store: str, taxonomy_file: Path
) -> None:
    config = write_config(tmp_path, store, taxonomy_file, "text-never-trained")
    result = retain("text", "score", "-c", str(config), "--quiet")
    assert result.exit_code == 4
    assert "retain text train" in result.output


class PredictCounter:
    """Counts the texts the text model is asked to score."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[int] = []
        original = TextModelBundle.predict

        def counting(bundle: TextModelBundle, texts: Any) -> pd.DataFrame:
            self.calls.append(len(texts))
            return original(bundle, texts)

        monkeypatch.setattr(TextModelBundle, "predict", counting)

    @property
    def texts(self) -> int:
        return sum(self.calls)


def test_a_rerun_scores_only_new_or_changed_texts(
    both: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = yaml.safe_load(both.read_text())
    settings["cache"] = str(tmp_path / "cache.parquet")  # a cache of its own, empty at first
    config = tmp_path / "text.yaml"
    config.write_text(yaml.safe_dump(settings))
    reviews = tmp_path / "new_reviews.csv"
    frame = corpus()
    frame.to_csv(reviews, index=False)
    output = tmp_path / "scores.csv"
    counter = PredictCounter(monkeypatch)
    args = [
        "text",
        "score",
        "-c",
        str(config),
        "--input",
        str(reviews),
        "--output",
        str(output),
        "-q",
    ]

    first = retain(*args)
    assert first.exit_code == 0, first.output
    first_scores = pd.read_csv(output, dtype={"id": str}, keep_default_na=False)
    assert counter.texts == 60

    counter.calls.clear()
    second = retain(*args)
    assert second.exit_code == 0, second.output
    assert counter.calls == []  # nothing scored: every text came from the cache
    assert "0 scored, 60 from the cache" in second.output
    # Cache hits are identical to fresh scores.
    pd.testing.assert_frame_equal(
        pd.read_csv(output, dtype={"id": str}, keep_default_na=False), first_scores
    )

    frame.loc[10, "body"] = "lovely, thanks the app crash after the update"
    frame.to_csv(reviews, index=False)
    counter.calls.clear()
    third = retain(*args)
    assert third.exit_code == 0, third.output
    assert counter.texts == 1
    edited = pd.read_csv(output, dtype={"id": str}, keep_default_na=False)
    unchanged = edited.index != 10
    pd.testing.assert_frame_equal(edited[unchanged], first_scores[unchanged])
    assert edited.loc[10, "sentiment"] == "positive" and "app" in edited.loc[10, "themes"]


def test_cache_hits_equal_fresh_scores_and_another_model_version_invalidates() -> None:
    ids = ["a", "b", "c"]
    texts = ["great", "awful bill", "ok"]
    columns = ["p", "label"]

    def predict(batch: list[str]) -> pd.DataFrame:
        return pd.DataFrame({"p": [len(t) / 10 for t in batch], "label": [t[:2] for t in batch]})

    fresh = text_cache.score_with_cache(ids, texts, predict, columns, None, "model-1")
    assert (fresh.n_cached, fresh.n_scored) == (0, 3)
    again = text_cache.score_with_cache(ids, texts, predict, columns, fresh.cache, "model-1")
    assert (again.n_cached, again.n_scored) == (3, 0)
    pd.testing.assert_frame_equal(again.scores, fresh.scores)
    other = text_cache.score_with_cache(ids, texts, predict, columns, again.cache, "model-2")
    assert (other.n_cached, other.n_scored) == (0, 3)
    assert set(other.cache["model_version"]) == {"model-2"}
    # A changed text under the same id is rescored, and its old entry replaced.
    edited = text_cache.score_with_cache(
        ids, ["great", "awful bill!", "ok"], predict, columns, other.cache, "model-2"
    )
    assert (edited.n_cached, edited.n_scored) == (2, 1)
    assert len(edited.cache) == 3


def test_the_paired_bootstrap_calls_a_clear_win_and_not_a_tie() -> None:
    rng = np.random.default_rng(0)
    truth = rng.choice(["negative", "neutral", "positive"], 400)
    good = np.where(rng.random(400) < 0.9, truth, "neutral")
    poor = np.where(rng.random(400) < 0.5, truth, "neutral")
    win = paired_bootstrap("sentiment", truth, good, poor, ("transformer", "tfidf"), draws=300)
    assert win.better and win.low > 0
    tie = paired_bootstrap("sentiment", truth, good, good, ("transformer", "tfidf"), draws=300)
    assert not tie.better and tie.difference == 0

    candidates = [
        Candidate("tfidf", {"macro_f1": 0.5}, poor, 0.0),
        Candidate("transformer", {"macro_f1": 0.9}, good, 0.0),
    ]
    kind, comparisons, how = choose_kind("sentiment", candidates, truth, 300, 0)
    assert kind == "transformer" and comparisons[0].better and "beat tfidf" in how
    reversed_ = [
        Candidate("tfidf", {"macro_f1": 0.9}, good, 0.0),
        Candidate("transformer", {"macro_f1": 0.5}, poor, 0.0),
    ]
    assert choose_kind("sentiment", reversed_, truth, 300, 0)[0] == "tfidf"
    missing = [
        Candidate("tfidf", {"macro_f1": 0.9}, good, 0.0),
        Candidate("transformer", {}, np.empty(0), 0.0, error="no module"),
    ]
    kind, _, how = choose_kind("sentiment", missing, truth, 300, 0)
    assert kind == "tfidf" and "transformer not available" in how


def test_help_explains_both_commands() -> None:
    result = CliRunner().invoke(app, ["text", "--help"])
    assert result.exit_code == 0
    assert "train" in result.output and "score" in result.output
    score_help = CliRunner().invoke(app, ["text", "score", "--help"])
    for option in ("--input", "--output", "--model-uri", "--config"):
        assert option in score_help.output


TEXT_EXAMPLES = {
    "text_airline": ("twitter_airline_sentiment/Tweets.csv", 14640, True, True),
    "text_alexa": ("amazon_alexa_reviews/amazon_alexa.tsv", 3150, True, False),
    "text_semeval": ("semeval2014_absa/restaurants_train.csv", 3044, False, True),
}
DATA_DIR = Path(os.environ.get("RETAIN_DATA_DIR", REPO.parent / "shared" / "data"))


@pytest.mark.parametrize("name", sorted(TEXT_EXAMPLES))
def test_text_example_configs_read_their_real_data(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from retain.config import load_config
    from retain.data import load_text_table

    relative, rows, sentiment, themes = TEXT_EXAMPLES[name]
    monkeypatch.setenv("RETAIN_DATA_DIR", str(DATA_DIR))
    config = load_config(REPO / "configs" / "examples" / f"{name}.yaml", TextJobConfig)
    assert config.data.path == DATA_DIR / relative
    assert config.tracking.text_model != "retain-text"  # each data set keeps its own model name
    if not config.data.path.exists():
        pytest.skip(f"{config.data.path} is not here (set RETAIN_DATA_DIR)")
    table = load_text_table(config.data)  # every label value is understood (or the read fails)
    frame = table.frame
    assert table.n_read == rows
    assert frame["id"].is_unique
    assert frame["sentiment"].notna().any() == sentiment
    assert frame["themes"].notna().any() == themes
    assert set(frame["sentiment"].dropna()) <= {"negative", "neutral", "positive"}


def test_auto_keeps_tfidf_unless_a_candidate_wins_the_paired_comparison(
    tmp_path: Path, store: str, taxonomy_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kind: auto, with a stand-in for the transformer (its module is another engineer's)."""
    from sklearn.dummy import DummyClassifier

    from retain.text import models

    def stand_in(task: str, choice: Any, taxonomy: Any, single_label: bool = False) -> Any:
        if task == "sentiment":
            return DummyClassifier(strategy="prior")  # worse than TF-IDF
        return models.tfidf_model("themes", choice, taxonomy)  # the same as TF-IDF: a tie

    monkeypatch.setitem(models.FACTORIES, "transformer", stand_in)
    config = write_config(tmp_path, store, taxonomy_file, "text-auto", model={"kind": "auto"})
    result = retain("text", "train", "-c", str(config), "--quiet")
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "out" / "text_training.json").read_text())
    for task in ("sentiment", "themes"):
        assert record["tasks"][task]["kind"] == "tfidf"
        assert set(record["tasks"][task]["candidates"]) == {"tfidf", "transformer"}
        (comparison,) = record["tasks"][task]["comparisons"]
        assert comparison["candidate"] == "transformer" and comparison["better"] is False
    assert record["tasks"]["themes"]["comparisons"][0]["difference"] == 0


def test_auto_uses_a_candidate_that_beats_tfidf_and_tags_the_version_with_its_kind(
    tmp_path: Path, store: str, taxonomy_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient

    from retain.config import TextModelChoice
    from retain.text import models

    def stand_in(task: str, choice: Any, taxonomy: Any, single_label: bool = False) -> Any:
        well_tuned = TextModelChoice(tfidf={"min_df": 2, "C": 10.0})
        return models.tfidf_model(task, well_tuned, taxonomy)

    monkeypatch.setitem(models.FACTORIES, "transformer", stand_in)
    # A TF-IDF reference regularised into guessing: the stand-in must beat it.
    config = write_config(
        tmp_path,
        store,
        taxonomy_file,
        "text-auto-win",
        themes=False,
        model={"kind": "auto", "tfidf": {"min_df": 2, "C": 0.0001}},
    )
    result = retain("text", "train", "-c", str(config), "--quiet")
    assert result.exit_code == 0, result.output
    assert "sentiment: transformer" in result.output and "beat tfidf" in result.output
    record = json.loads((tmp_path / "out" / "text_training.json").read_text())
    assert record["tasks"]["sentiment"]["comparisons"][0]["better"] is True
    tags = MlflowClient(tracking_uri=store).get_model_version("text-auto-win", "1").tags
    assert tags["kind.sentiment"] == "transformer"
    assert float(tags["validation.sentiment_macro_f1"]) > 0.8
    assert "validation split" in tags["tuned_on"]


class _Probabilities:
    """A fitted stand-in with fixed probabilities and classes (what the bundle reads)."""

    def __init__(self, proba: list[list[float]], classes: list[Any], **attributes: Any) -> None:
        self.proba = np.asarray(proba)
        self.classes_ = np.asarray(classes, dtype=object)
        for name, value in attributes.items():
            setattr(self, name, value)

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        return self.proba[: len(texts)]


def test_the_bundle_matches_classes_by_name_and_uses_a_models_own_theme_thresholds() -> None:
    sentiment = _Probabilities([[0.7, 0.3], [0.2, 0.8]], ["positive", "negative"])
    themes = _Probabilities([[0.4, 0.1], [0.05, 0.02]], [0, 1], thresholds_=np.array([0.3, 0.5]))
    bundle = TextModelBundle(sentiment, themes, ("billing", "app"), threshold=0.5)
    out = bundle.predict(["a", "b"])
    assert out.columns.tolist() == [
        "sentiment_negative",
        "sentiment_positive",
        "sentiment",
        "theme_billing",
        "theme_app",
        "themes",
        "theme_sentiments",
    ]
    assert out["sentiment_positive"].tolist() == [0.7, 0.2]
    assert out["sentiment"].tolist() == ["positive", "negative"]
    assert out["themes"].tolist() == ["billing", ""]  # 0.4 >= its own threshold 0.3, not 0.5
    assert out["theme_sentiments"].tolist() == ["billing:positive", ""]
    themes.at_least_one = True
    assert bundle.predict(["a", "b"])["themes"].tolist() == ["billing", "billing"]
    sentiment_only = TextModelBundle(sentiment, None, ("billing", "app"))
    assert sentiment_only.columns == ["sentiment_negative", "sentiment_positive", "sentiment"]
    empty = bundle.predict([])
    assert empty.empty and empty.columns.tolist() == bundle.columns


def test_the_cache_follows_the_model_not_the_uri_that_names_it(
    both: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = yaml.safe_load(both.read_text())
    settings["cache"] = str(tmp_path / "cache.parquet")
    settings["output"] = str(tmp_path / "scores.csv")
    config = tmp_path / "text.yaml"
    config.write_text(yaml.safe_dump(settings))
    counter = PredictCounter(monkeypatch)
    name = settings["tracking"]["text_model"]

    assert retain("text", "score", "-c", str(config), "-q").exit_code == 0  # the champion
    assert counter.texts == 60
    counter.calls.clear()
    same = retain("text", "score", "-c", str(config), "--model-uri", f"models:/{name}/1", "-q")
    assert same.exit_code == 0, same.output
    assert counter.texts == 0  # version 1 is the champion: the same logged model

    retrained = retain("text", "train", "-c", str(config), "-q")
    assert retrained.exit_code == 0, retrained.output
    assert f"{name} version 2" in retrained.output
    counter.calls.clear()
    other = retain("text", "score", "-c", str(config), "--model-uri", f"models:/{name}/2", "-q")
    assert other.exit_code == 0, other.output
    assert counter.texts == 60  # another model version: every text is scored again


def test_transformer_kind_trains_scores_and_reloads_without_the_encoder_folder(
    tmp_path: Path, store: str, taxonomy_file: Path, tiny_bert: Path
) -> None:
    """kind: transformer on the tiny BERT, blended with TF-IDF: train, score, pyfunc, no folder.

    The encoder folder is deleted after training: scoring must need nothing but the registered
    model (weights inside the artifact).
    """
    import shutil

    encoder = tmp_path / "encoder"
    shutil.copytree(tiny_bert, encoder)
    model = {
        "kind": "transformer",
        "encoder": str(encoder),
        "transformer": {"params": {"epochs": 2, "batch_size": 8, "learning_rate": 1e-3}},
    }
    config = write_config(tmp_path, store, taxonomy_file, "text-transformer", model=model)
    trained = retain("text", "train", "-c", str(config), "--quiet")
    assert trained.exit_code == 0, trained.output
    record = json.loads((tmp_path / "out" / "text_training.json").read_text())
    assert record["tasks"]["sentiment"]["kind"] == record["tasks"]["themes"]["kind"] == "transformer"
    # model.transformer.shared (the default): one multi-task encoder serves both tasks.
    assert record["shared_encoder"] is True
    for task in ("sentiment", "themes"):
        assert record["tasks"][task]["shared_encoder"] is True
        assert record["tasks"][task]["candidates"]["transformer"]["shared_encoder"] is True
    assert "shared with the other task" in record["tasks"]["sentiment"]["how_chosen"]
    assert "validation texts of either task" in record["tuned_on"]
    assert len(networks_of(config)) == 1
    # Issue 7: nothing of the model is a pickle (the bundle is skops, the pyfunc is code).
    artifacts = Path(store.removeprefix("sqlite:///")).parent / "mlartifacts"
    assert list(artifacts.rglob("text_model.skops")) and list(artifacts.rglob("text_pyfunc.py"))
    assert not list(artifacts.rglob("*.pkl"))
    shutil.rmtree(encoder)
    scored = retain("text", "score", "-c", str(config), "--quiet")
    assert scored.exit_code == 0, scored.output
    scores = scores_of(config)
    truth = corpus()
    stars = truth["stars"].map({"1": "negative", "3": "neutral", "5": "positive"})
    # The blend includes TF-IDF, which learns this corpus: the training texts come back labelled.
    assert (scores["sentiment"] == stars).mean() >= 0.8
    assert (scores["themes"] == truth["topics"]).mean() >= 0.8


def networks_of(config: Path) -> set[int]:
    """Identities of the encoder networks inside the first registered version (after loading)."""
    from retain.tracking import load_text_model

    tracking = TextJobConfig.model_validate(yaml.safe_load(config.read_text())).tracking
    bundle = load_text_model(tracking, f"models:/{tracking.text_model}/1").model
    found = set()
    for model in (bundle.sentiment, bundle.themes):
        members = [m for _, m in getattr(model, "estimators", [("", model)])]
        members += list(getattr(model, "estimators_", []))
        for member in members:
            inner = getattr(member, "model", member)  # a shared-encoder view reads its model
            if hasattr(inner, "network_"):
                found.add(id(inner.network_))
    return found


def test_shared_false_fine_tunes_one_encoder_per_task(
    tmp_path: Path, store: str, taxonomy_file: Path, tiny_bert: Path
) -> None:
    model = {
        "kind": "transformer",
        "encoder": str(tiny_bert),
        "transformer": {
            "shared": False,
            "blend_tfidf": False,
            "params": {"epochs": 1, "batch_size": 8, "learning_rate": 1e-3},
        },
    }
    config = write_config(tmp_path, store, taxonomy_file, "text-two-encoders", model=model)
    trained = retain("text", "train", "-c", str(config), "--quiet")
    assert trained.exit_code == 0, trained.output
    record = json.loads((tmp_path / "out" / "text_training.json").read_text())
    assert record["shared_encoder"] is False
    assert not any(record["tasks"][t]["shared_encoder"] for t in ("sentiment", "themes"))
    assert len(networks_of(config)) == 2


def test_a_text_with_two_themes_and_two_polarities_gets_one_per_theme(
    both: Path, tmp_path: Path
) -> None:
    reviews = tmp_path / "contrast.csv"
    pd.DataFrame(
        {
            "review_id": ["X1"],
            "body": [
                ("great, the agent never answered my call, waiting for a reply. "
                "But awful, charged twice on my bill, need a refund for the invoice")
            ],
        }
    ).to_csv(reviews, index=False)
    output = tmp_path / "contrast_scores.csv"
    result = retain(
        "text", "score", "-c", str(both), "--input", str(reviews), "--output", str(output),
        "--quiet",
    )
    assert result.exit_code == 0, result.output
    row = pd.read_csv(output, keep_default_na=False).iloc[0]
    pairs = dict(p.split(":") for p in row["theme_sentiments"].split("|"))
    assert pairs.get("support") == "positive", row["theme_sentiments"]
    assert pairs.get("billing") == "negative", row["theme_sentiments"]


def test_discover_writes_an_editable_taxonomy_that_a_rerun_reproduces(
    tmp_path: Path, store: str, taxonomy_file: Path, tiny_bert: Path
) -> None:
    from retain.config import Taxonomy, load_config

    config = write_config(
        tmp_path, store, taxonomy_file, "text-discover", sentiment=False, themes=False,
        model={"encoder": str(tiny_bert)},
    )
    first, second = tmp_path / "first.yaml", tmp_path / "second.yaml"
    for path in (first, second):
        result = retain(
            "text", "discover", "-c", str(config), "--output", str(path), "-n", "3", "--quiet"
        )
        assert result.exit_code == 0, result.output
        assert "Proposed 3 themes from 60 texts" in result.output
    taxonomy = load_config(first, Taxonomy)
    assert len(taxonomy.ids) == 3 and len(set(taxonomy.ids)) == 3
    assert all(theme.examples for theme in taxonomy.themes)
    assert first.read_text() == second.read_text()


@pytest.mark.parametrize(
    ("ids", "topics"),
    [
        (["1", "2", "3"], {"billing": "1", "support": "2", "app": "3"}),  # ids that look numeric
        (["billing"], {"billing": "billing", "support": "", "app": ""}),  # a one-theme taxonomy
    ],
)
def test_theme_ids_that_look_numeric_and_a_one_theme_taxonomy_score_the_right_themes(
    tmp_path: Path, store: str, ids: list[str], topics: dict[str, str]
) -> None:
    taxonomy = tmp_path / "themes.yaml"
    taxonomy.write_text(yaml.safe_dump(
        {"themes": [{"id": i, "name": f"theme {i}", "description": "d"} for i in ids]}
    ))
    frame = corpus()
    frame["topics"] = frame["topics"].map(lambda t: topics.get(t, ""))
    frame.to_csv(tmp_path / "reviews.csv", index=False)
    config = write_config(
        tmp_path, store, taxonomy, f"text-ids-{len(ids)}", data=tmp_path / "reviews.csv"
    )
    trained = retain("text", "train", "-c", str(config), "--quiet")
    assert trained.exit_code == 0, trained.output
    scored = retain("text", "score", "-c", str(config), "--quiet")
    assert scored.exit_code == 0, scored.output
    scores = scores_of(config)
    assert (scores["themes"] == frame["topics"]).mean() >= 0.9


def test_a_taxonomy_with_a_repeated_or_unusable_id_is_refused(tmp_path: Path) -> None:
    from retain.config import ConfigError, Taxonomy, load_config

    for ids in (["billing", "billing"], ["a|b"], ["x:y"]):
        path = tmp_path / "themes.yaml"
        path.write_text(yaml.safe_dump(
            {"themes": [{"id": i, "name": i, "description": "d"} for i in ids]}
        ))
        with pytest.raises(ConfigError, match="theme ids"):
            load_config(path, Taxonomy)


def test_unreadable_dates_name_the_file_column_and_rows_and_scoring_needs_no_date_column(
    tmp_path: Path, store: str, taxonomy_file: Path
) -> None:
    frame = corpus().assign(when="2024-05-01")
    frame.loc[[3, 7], "when"] = ["not a date", "2025-13-45"]
    frame.to_csv(tmp_path / "dated.csv", index=False)
    config = write_config(
        tmp_path, store, taxonomy_file, "text-dates", data=tmp_path / "dated.csv", created_at="when"
    )
    result = retain("text", "train", "-c", str(config), "--quiet")
    assert result.exit_code != 0
    assert "'when'" in result.output and "2 rows" in result.output and "rows 4, 8" in result.output
    frame.loc[[3, 7], "when"] = "2024-06-01"
    frame.to_csv(tmp_path / "dated.csv", index=False)
    assert retain("text", "train", "-c", str(config), "--quiet").exit_code == 0
    plain = tmp_path / "plain.csv"
    frame[["review_id", "body"]].to_csv(plain, index=False)
    scored = retain("text", "score", "-c", str(config), "--input", str(plain), "--quiet")
    assert scored.exit_code == 0, scored.output


def test_a_sentiment_class_seen_once_lands_on_the_fitting_side() -> None:
    from retain.text.training import split_validation

    rows = pd.DataFrame({"sentiment": ["negative"] * 29 + ["positive"], "themes": None})
    for seed in range(20):
        fit, validation = split_validation(rows, "sentiment", 0.2, seed)
        assert 29 in fit and sorted([*fit, *validation]) == list(range(30))


def test_a_blank_text_gets_no_probabilities_and_no_labels() -> None:
    sentiment = _Probabilities([[0.7, 0.3], [0.9, 0.1], [0.9, 0.1]], ["positive", "negative"])
    themes = _Probabilities([[0.8, 0.1], [0.9, 0.9], [0.9, 0.9]], [0, 1])
    bundle = TextModelBundle(sentiment, themes, ("billing", "app"), threshold=0.5)
    out = bundle.predict(["a", "   ", None])
    assert out["sentiment"].tolist() == ["positive", "", ""]
    assert out["themes"].tolist() == ["billing", "", ""]
    assert out["theme_sentiments"].tolist()[1:] == ["", ""]
    assert out.loc[1:, ["sentiment_positive", "theme_billing"]].isna().all().all()
    assert out.loc[0, "sentiment_positive"] == 0.7


def test_a_file_with_no_text_is_refused_and_blank_texts_are_left_out(
    tmp_path: Path, store: str, taxonomy_file: Path
) -> None:
    empty = tmp_path / "empty.csv"
    corpus().iloc[:0].to_csv(empty, index=False)
    config = write_config(tmp_path, store, taxonomy_file, "text-empty", data=empty)
    result = retain("text", "train", "-c", str(config), "--quiet")
    assert result.exit_code == 3 and "no rows" in result.output
    blank = corpus().assign(body="  ")
    blank.to_csv(empty, index=False)
    result = retain("text", "train", "-c", str(config), "--quiet")
    assert result.exit_code == 3 and "all 60 texts are empty or blank" in result.output


def test_a_relative_taxonomy_not_found_says_where_it_was_read_from_and_creates_no_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Config paths are read from the current directory; a run started elsewhere says so."""
    store_file = tmp_path / "store" / "mlflow.db"
    store_file.parent.mkdir()
    config = write_config(
        tmp_path, f"sqlite:///{store_file}", Path("configs/themes.yaml"), "text-relative"
    )
    monkeypatch.chdir(tmp_path)
    result = retain("text", "train", "-c", str(config), "--quiet")
    assert result.exit_code != 0
    assert "configs/themes.yaml" in result.output
    assert f"read from the current directory, {tmp_path}" in result.output
    assert not store_file.exists()
