"""The text benchmarks' own logic (benchmarks/text.py): configs, data selection, metrics.

The benchmarks themselves run the CLI on real data for minutes; these tests check the parts that
decide what is measured, on small hand-made inputs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from benchmarks import run as bench_run
from benchmarks import text as bench_text

from retain.config import Taxonomy, TextJobConfig, load_config
from retain.text.training import labelled_rows, single_label_themes

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("RETAIN_DATA_DIR", REPO.parent / "shared" / "data"))


def test_deep_update_merges_nested_keys_and_none_drops_a_key() -> None:
    base = {"data": {"path": "a.csv", "columns": {"text": "t", "themes": "r"}}, "model": {}}
    changes = {"data": {"path": "b.csv", "columns": {"themes": None}}, "model": {"kind": "auto"}}
    out = bench_text.deep_update(base, changes)
    assert out == {"data": {"path": "b.csv", "columns": {"text": "t"}}, "model": {"kind": "auto"}}
    assert base["data"]["columns"] == {"text": "t", "themes": "r"}  # input not mutated


@pytest.mark.parametrize("smoke", [False, True])
def test_isolated_config_is_valid_and_keeps_store_and_outputs_in_the_workdir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, smoke: bool
) -> None:
    if smoke:
        monkeypatch.setenv("RETAIN_BENCH_SMOKE", "1")
    else:
        monkeypatch.delenv("RETAIN_BENCH_SMOKE", raising=False)
    changes = {
        "data": {
            "path": str(tmp_path / "train.csv"),
            "columns": {"sentiment": None, "created_at": None},
        },
        "model": {"kind": "auto", "unlabelled": "skip"},
    }
    path = bench_text.isolated_text_config("text_airline", tmp_path, changes)
    config = load_config(path, TextJobConfig)
    assert config.tracking.tracking_uri == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert config.output.parent == tmp_path / "outputs"
    assert config.cache is not None and config.cache.parent == tmp_path / "outputs"
    assert config.data.path == tmp_path / "train.csv"
    assert config.data.columns.sentiment is None and config.data.columns.themes == "negativereason"
    assert config.model.kind == "auto" and config.model.unlabelled == "skip"
    assert config.model.transformer.params == ({"epochs": 1} if smoke else {})


def test_smoke_runs_are_never_written_into_the_results(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RETAIN_BENCH_SMOKE", "1")
    assert bench_run.main(["--only", "T3"]) == 2
    assert "--results-dir" in capsys.readouterr().err


def test_t2_keeps_negative_tweets_with_a_known_reason_and_has_nine_classes() -> None:
    tweets = pd.DataFrame(
        {
            "airline_sentiment": ["negative", "negative", "negative", "positive", "negative"],
            "negativereason": ["Late Flight", "Can't Tell", None, None, "longlines"],
            "text": list("abcde"),
        }
    )
    kept = bench_text.negative_reason_tweets(tweets)
    assert kept["text"].tolist() == ["a", "e"]
    taxonomy = Taxonomy.model_validate(bench_text.airline_reasons_taxonomy())
    assert len(set(taxonomy.ids)) == 9
    assert "Can't Tell" not in bench_text.T2_REASONS


def test_top_theme_and_assigned_themes_read_the_scores_file() -> None:
    scores = pd.DataFrame(
        {
            "theme_a": [0.9, 0.2, 0.1],
            "theme_b?": [0.1, 0.7, 0.3],
            "themes": ["a", "a|b?", np.nan],
        }
    )
    assert bench_text.top_theme(scores, ["a", "b?"]).tolist() == ["a", "b?", "b?"]
    assert bench_text.theme_matrix(scores, ["a", "b?"]).tolist() == [[1, 0], [1, 1], [0, 0]]


def test_paired_test_bootstrap_of_identical_and_opposite_predictions() -> None:
    truth = np.array(["x", "y"] * 20)
    same = bench_text.paired_test_bootstrap(truth, truth, truth, bench_text._accuracy, seed=0)
    assert (same["difference"], same["low"], same["high"]) == (0.0, 0.0, 0.0)
    wrong = np.where(truth == "x", "y", "x")
    better = bench_text.paired_test_bootstrap(truth, truth, wrong, bench_text._accuracy, seed=0)
    assert better["difference"] == 1.0 and better["low"] == 1.0


def test_banking77_taxonomy_is_generated_from_the_data_labels(tmp_path: Path) -> None:
    categories = DATA_DIR / bench_text.BANKING_CATEGORIES
    if not categories.exists():
        pytest.skip(f"{categories} is not here (set RETAIN_DATA_DIR)")
    written = bench_text.write_banking77_taxonomy(categories, tmp_path / "sub" / "banking77.yaml")
    generated = yaml.safe_load(written.read_text(encoding="utf-8"))
    ids = [theme["id"] for theme in generated["themes"]]
    assert len(ids) == 77 and len(set(ids)) == 77
    assert ids == json.loads(categories.read_text(encoding="utf-8"))
    assert generated == bench_text.banking77_taxonomy(ids)
    reverted = next(t for t in generated["themes"] if t["id"] == "reverted_card_payment?")
    assert reverted["name"] == "Reverted card payment"


def test_banking77_example_reads_every_label_as_a_taxonomy_theme(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from retain.data import load_text_table

    monkeypatch.setenv("RETAIN_DATA_DIR", str(DATA_DIR))
    monkeypatch.chdir(REPO)
    config = load_config(REPO / "configs" / "examples" / "text_bank_intents.yaml", TextJobConfig)
    assert config.model.kind == "auto"
    if not config.data.path.exists():
        pytest.skip(f"{config.data.path} is not here (set RETAIN_DATA_DIR)")
    categories = DATA_DIR / bench_text.BANKING_CATEGORIES
    taxonomy_file = bench_text.write_banking77_taxonomy(categories, tmp_path / "banking77.yaml")
    taxonomy = load_config(taxonomy_file, Taxonomy)
    table = load_text_table(config.data, taxonomy.ids)  # an unknown label fails the read
    assert table.n_read == 10003
    assert table.frame["themes"].nunique() == 77
    rows = labelled_rows(table.frame, "themes")
    assert single_label_themes(rows, config.themes_mode)[0] is True  # T5: no override needed


def test_t2_config_learns_the_reasons_as_single_label_themes(tmp_path: Path) -> None:
    """T2's config (no themes_mode) is detected single-label: one reason per training tweet."""
    from retain.data import load_text_table

    tweets = pd.DataFrame(
        {
            "tweet_id": ["1", "2", "3", "4"],
            "text": ["late again", "lost my bag", "rude agent", "late and lost bag"],
            "negativereason": ["Late Flight", "Lost Luggage", "Customer Service Issue",
                               "Late Flight"],
            "airline_sentiment": "negative",
        }
    )
    tweets.to_csv(tmp_path / "train.csv", index=False)
    taxonomy_file = tmp_path / "reasons.yaml"
    taxonomy_file.write_text(yaml.safe_dump(bench_text.airline_reasons_taxonomy()))
    changes = bench_text.airline_themes_changes(tmp_path / "train.csv", taxonomy_file)
    path = bench_text.isolated_text_config("text_airline", tmp_path, changes)
    config = load_config(path, TextJobConfig)
    assert config.themes_mode == "auto"
    taxonomy = load_config(taxonomy_file, Taxonomy)
    table = load_text_table(config.data, taxonomy.ids)
    single, why = single_label_themes(labelled_rows(table.frame, "themes"), config.themes_mode)
    assert single is True and "exactly one theme" in why


def test_scores_are_aligned_to_the_test_ids_as_the_cli_reads_them() -> None:
    """The CLI strips ids (SemEval's test file has ids ending in a space)."""
    from benchmarks.churn import CliRun

    cli = CliRun("retain text train", 1.0, None)
    scores = pd.DataFrame({"id": ["b", "a#1"], "sentiment": ["neutral", "positive"]})
    report = bench_text.TextCliReport(cli, cli, {}, scores, {})
    assert report.aligned(["a#1 ", "b"])["sentiment"].tolist() == ["positive", "neutral"]
    with pytest.raises(RuntimeError, match="not in the scores file"):
        report.aligned(["c"])


def test_text_records_keep_aggregate_figures_not_the_data_sets_classes() -> None:
    """A committed record must not list a data set's classes: per-theme F1 is left out."""
    validation = {"micro_f1": 0.9, "macro_f1": 0.8, "f1_card_arrival": 0.7, "f1_lost_card": 0.6}
    training = {"tasks": {"themes": {
        "kind": "tfidf", "how_chosen": "only candidate", "n_fit": 8, "n_validation": 2,
        "validation": validation,
        "candidates": {"tfidf": {"validation": validation, "seconds_fit": 1.0, "error": None}},
        "comparisons": [],
    }}}
    report = bench_text.TextCliReport(
        train=None, score=None, training=training, scores=pd.DataFrame(), config_changes={}  # type: ignore[arg-type]
    )
    record = report.task_record("themes")
    assert record["validation"] == {"micro_f1": 0.9, "macro_f1": 0.8}
    assert record["candidates"]["tfidf"]["validation"] == {"micro_f1": 0.9, "macro_f1": 0.8}
    assert record["candidates"]["tfidf"]["seconds_fit"] == 1.0
    assert "card_arrival" not in json.dumps(record)
