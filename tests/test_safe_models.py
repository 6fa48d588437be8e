"""Issue 7, item 7: model files are checked against their recorded sha256 before anything is
unpickled, and text vocabularies keep no e-mail address, phone number or rare name.

Each test names the failure it guards against and fails if that behaviour comes back.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

from retain import tracking
from retain.cli import EXIT_TAMPERED, app
from retain.config import TrackingConfig


class _RunsACommand:
    """Unpickling this runs a shell command that creates ``marker``: a swapped ``model.pkl``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {self.marker}",)


def _store(tmp_path: Path) -> TrackingConfig:
    return TrackingConfig(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")


def _register_churn_champion(track: TrackingConfig) -> str:
    model = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    with tracking.tracked_run(track, "churn") as run:
        uri = run.log_model(model, "churn")
    version = tracking.register_model(track, uri, track.churn_model)
    tracking.crown_without_evidence(track, track.churn_model, version, "test")
    return version


def _model_file(tmp_path: Path, name: str) -> Path:
    (path,) = (tmp_path / "mlartifacts").rglob(name)
    return path


def _score_config(tmp_path: Path, track: TrackingConfig) -> Path:
    config = tmp_path / "score.yaml"
    config.write_text(
        f"data: {{path: {tmp_path / 'world'}}}\n"
        f"tracking: {{tracking_uri: '{track.tracking_uri}'}}\n"
        f"scoring: {{output_dir: {tmp_path / 'out'}}}\n"
    )
    return config


# --- hashes recorded at logging and registration, checked at every load -----------------------


def test_registration_records_the_sha256_of_every_model_file(tmp_path: Path) -> None:
    track = _store(tmp_path)
    version = _register_churn_champion(track)
    recorded = json.loads(tracking.model_version_tags(track, track.churn_model, version)[tracking.ARTIFACT_HASHES_TAG])
    on_disk = tracking.artifact_hashes(_model_file(tmp_path, "model.pkl").parent)
    assert recorded == on_disk
    assert {"model.pkl", "MLmodel"} <= recorded.keys()


def test_a_swapped_model_pkl_is_refused_before_it_is_unpickled(tmp_path: Path) -> None:
    """Issue 7: a swapped `model.pkl` ran a command during `retain score`, which exited 0."""
    track = _store(tmp_path)
    version = _register_churn_champion(track)
    marker = tmp_path / "the_pickle_ran"
    _model_file(tmp_path, "model.pkl").write_bytes(pickle.dumps(_RunsACommand(marker)))

    result = CliRunner().invoke(app, ["score", "-c", str(_score_config(tmp_path, track)), "-q"])

    assert result.exit_code == EXIT_TAMPERED, result.output
    assert not marker.exists(), "the swapped pickle was unpickled"
    assert f"error: model {track.churn_model} version {version}: its files differ" in result.output
    assert "model.pkl was changed" in result.output
    assert "restore mlartifacts/" in result.output


def test_an_added_or_missing_model_file_is_refused(tmp_path: Path) -> None:
    track = _store(tmp_path)
    version = _register_churn_champion(track)
    folder = _model_file(tmp_path, "model.pkl").parent
    (folder / "extra.py").write_text("print('hello')\n")
    with pytest.raises(tracking.ModelIntegrityError, match="extra.py was added"):
        tracking.load_version(track, track.churn_model, version)
    (folder / "extra.py").unlink()
    (folder / "conda.yaml").unlink()
    with pytest.raises(tracking.ModelIntegrityError, match="conda.yaml is missing"):
        tracking.load_version(track, track.churn_model, version)


def test_a_model_without_recorded_hashes_is_not_loaded(tmp_path: Path) -> None:
    """A version registered without hashes (e.g. by an older retain) cannot be swapped in."""
    track = _store(tmp_path)
    version = _register_churn_champion(track)
    client = tracking._client(track)
    client.delete_model_version_tag(track.churn_model, version, tracking.ARTIFACT_HASHES_TAG)
    with pytest.raises(tracking.ModelIntegrityError, match="no sha256 of its files was recorded"):
        tracking.load_champion(track, track.churn_model)


def test_an_untampered_model_loads_from_its_checked_copy(tmp_path: Path) -> None:
    track = _store(tmp_path)
    _register_churn_champion(track)
    model, _ = tracking.load_champion(track, track.churn_model)
    assert model.predict_proba([[1.0]])[0, 1] > 0.5


def test_a_swapped_text_model_pickle_is_refused_before_it_is_unpickled(tmp_path: Path) -> None:
    """The text pyfunc holds two pickles (the wrapper and the bundle); either one is checked."""
    from retain.config import TextModelConfig
    from retain.text.bundle import TextModelBundle
    from retain.text.tfidf import make_sentiment_model

    texts = ["great service", "awful support", "really great", "awful, awful app"] * 3
    labels = ["positive", "negative", "positive", "negative"] * 3
    sentiment = make_sentiment_model(TextModelConfig(min_df=2)).fit(texts, labels)
    track = _store(tmp_path)
    with tracking.tracked_run(track, "text") as run:
        uri = tracking.log_text_model(run, TextModelBundle(sentiment=sentiment, themes=None, theme_ids=()))
    version = tracking.register_model(track, uri, track.text_model)
    assert tracking.load_text_model(track, uri).model.predict(["great"]) is not None

    marker = tmp_path / "the_pickle_ran"
    for name in ("text_model.pkl", "python_model.pkl"):
        path = _model_file(tmp_path, name)
        original = path.read_bytes()
        path.write_bytes(pickle.dumps(_RunsACommand(marker)))
        for model_uri in (uri, f"models:/{track.text_model}/{version}"):
            with pytest.raises(tracking.ModelIntegrityError, match=f"{name} was changed"):
                tracking.load_text_model(track, model_uri)
        path.write_bytes(original)
    assert not marker.exists()
    with pytest.raises(tracking.ModelIntegrityError, match="name a registered version"):
        tracking.load_text_model(track, f"runs:/{run.run_id}/text")
