"""A text model from `retain text train` feeds churn training and scoring when feedback is unlabelled.

The text model is trained on labelled feedback created before a cutoff (a `created_at` column),
so its version carries `train_until`; the churn world's feedback carries no labels. Churn
training must use the text champion's scores only at dates on or after that cutoff, record the
version it used, and `retain score` must load that same version.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from retain.cli import app
from retain.data import write_world
from retain.synth import generate_world

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
CUTOFF = pd.Timestamp("2024-09-30")


def retain(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def test_churn_training_and_scoring_use_the_text_job_champion(tmp_path: Path) -> None:
    world = generate_world(800, seed=5, start="2024-01-01", end="2025-06-30")
    feedback = world.feedback
    texts = feedback[feedback["created_at"] <= CUTOFF]
    texts.to_csv(tmp_path / "labelled_feedback.csv", index=False)
    unlabelled = feedback.assign(sentiment=None, themes=None)
    write_world(dataclasses.replace(world, feedback=unlabelled), tmp_path / "world")

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    text_config = tmp_path / "text.yaml"
    text_config.write_text(yaml.safe_dump({
        "data": {
            "path": str(tmp_path / "labelled_feedback.csv"),
            "columns": {"id": "feedback_id", "text": "text", "sentiment": "sentiment",
                        "themes": "themes", "created_at": "created_at"},
            "empty_themes": "no_theme",
        },
        "taxonomy": str(REPO / "configs" / "themes.yaml"),
        "model": {"kind": "tfidf"},
        "tracking": {"tracking_uri": store},
        "output": str(tmp_path / "text_out" / "scores.csv"),
    }))
    trained = retain("text", "train", "-c", str(text_config), "--quiet")
    assert trained.exit_code == 0, trained.output

    train_config = tmp_path / "train.yaml"
    train_config.write_text(yaml.safe_dump({
        "data": {"path": str(tmp_path / "world")},
        "tracking": {"tracking_uri": store},
        "reports_dir": str(tmp_path / "reports"),
        "scoring": {"output_dir": str(tmp_path / "scores")},
    }))
    churn = retain("train", "-c", str(train_config), "--quiet")
    assert churn.exit_code == 0, churn.output
    assert "text (sentiment, themes)" in churn.output

    from retain import jobs, tracking
    from retain.config import TrackingConfig

    track = TrackingConfig(tracking_uri=store)
    version = tracking.champion_version(track, track.churn_model)
    assert version is not None
    used = tracking.text_models_used(track, track.churn_model, version)
    assert used == {track.text_model: "1"}
    models, theme_ids = jobs.load_scoring_models(track)
    assert models.versions[track.text_model] == "1"
    assert "billing" in theme_ids and models.sentiment is not None

    scored = retain("score", "-c", str(train_config), "--quiet")
    assert scored.exit_code == 0, scored.output
    ranked = pd.read_parquet(tmp_path / "scores" / "ranked_customers.parquet")
    assert len(ranked) > 100
