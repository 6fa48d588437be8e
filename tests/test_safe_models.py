"""Issue 7, item 7: no model is ever unpickled, model files are checked against their recorded
sha256 before anything is read, and text vocabularies keep no e-mail address, phone number or
rare name.

Each test names the failure it guards against and fails if that behaviour comes back.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer
from typer.testing import CliRunner

from retain import tracking
from retain.churn.model import ChurnClassifier
from retain.cli import EXIT_TAMPERED, app
from retain.config import TextModelConfig, TrackingConfig
from retain.text.pii import customer_vocabulary, scrub_pii

SRC = Path(__file__).resolve().parents[1] / "src"


class _RunsACommand:
    """Unpickling this runs a shell command that creates ``marker``: a swapped ``model.pkl``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {self.marker}",)


def _skops_running_a_command(marker: Path) -> bytes:
    """A skops file whose loading would call ``subprocess.Popen(["touch", marker])``.

    skops rebuilds some objects by calling their type with stored arguments; here the type is
    ``subprocess.Popen``. Only a loader that trusts that type runs it.
    """
    import skops.io

    arguments = zipfile.ZipFile(io.BytesIO(skops.io.dumps((["touch", str(marker)],))))
    schema = json.loads(arguments.read("schema.json"))
    payload = {
        "__class__": "Popen",
        "__module__": "subprocess",
        "__loader__": "ConstructorFromReduceNode",
        "content": {k: v for k, v in schema.items() if k not in ("protocol", "_skops_version")},
        "__id__": 1,
        "protocol": schema["protocol"],
        "_skops_version": schema["_skops_version"],
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("schema.json", json.dumps(payload))
    return buffer.getvalue()


def _store(tmp_path: Path) -> TrackingConfig:
    return TrackingConfig(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")


def _shifted(X: object) -> object:
    return X


def _churn_table(n: int = 160, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Numeric, string, category and missing values: every kind of column ChurnClassifier takes."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {
            "logins_30d": rng.poisson(5, n).astype(float),
            "plan": rng.choice(["basic", "pro", "team"], n),
            "region": pd.Categorical(rng.choice(["north", "south"], n)),
            "tickets": np.where(rng.random(n) < 0.1, np.nan, rng.poisson(1, n)),
        }
    )
    risk = -0.4 * X["logins_30d"] + 1.5 * (X["plan"] == "basic") + rng.normal(0, 1, n)
    return X, (risk > np.median(risk)).astype(int).to_numpy()


def _register_churn_champion(track: TrackingConfig) -> str:
    X, y = _churn_table()
    model = ChurnClassifier(n_estimators=20, min_child_samples=10).fit(X, y)
    with tracking.tracked_run(track, "churn") as run:
        uri = run.log_model(model, "churn", extra_requirements=("lightgbm",))
    version = tracking.register_model(track, uri, track.churn_model)
    tracking.crown_without_evidence(track, track.churn_model, version, "test")
    return version


def _model_file(tmp_path: Path, name: str) -> Path:
    (path,) = (tmp_path / "mlartifacts").rglob(name)
    return path


def _rehash(track: TrackingConfig, name: str, version: str, folder: Path) -> None:
    """Record the folder's current hashes, as if the model had been logged with these files."""
    hashes = json.dumps(tracking.artifact_hashes(folder), sort_keys=True)
    tracking._client(track).set_model_version_tag(name, version, tracking.ARTIFACT_HASHES_TAG, hashes)


def _score_config(tmp_path: Path, track: TrackingConfig) -> Path:
    config = tmp_path / "score.yaml"
    config.write_text(
        f"data: {{path: {tmp_path / 'world'}}}\n"
        f"tracking: {{tracking_uri: '{track.tracking_uri}'}}\n"
        f"scoring: {{output_dir: {tmp_path / 'out'}}}\n"
    )
    return config


def _pickles(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.suffix in (".pkl", ".pickle")]


# --- the churn model: stored with skops, loaded trusting a named list of types -----------------


def test_the_churn_model_round_trips_through_skops_with_identical_predictions(tmp_path: Path) -> None:
    """Issue 7: the churn model (LightGBM in retain's estimator) was cloudpickled."""
    import skops.io

    X, y = _churn_table()
    track = _store(tmp_path)
    for calibration in ("sigmoid", "isotonic", None):
        model = ChurnClassifier(n_estimators=20, min_child_samples=10, calibration=calibration).fit(X, y)
        name = f"churn-{calibration}"
        with tracking.tracked_run(track, name) as run:
            uri = run.log_model(model, name)
        version = tracking.register_model(track, uri, name)
        loaded = tracking.load_version(track, name, version)

        assert type(loaded) is ChurnClassifier
        np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
        pd.testing.assert_frame_equal(loaded.feature_attributions(X), model.feature_attributions(X))
        np.testing.assert_array_equal(loaded.raw_margin(X, n_trees=5), model.raw_margin(X, n_trees=5))
    assert not _pickles(tmp_path / "mlartifacts")
    for stored in (tmp_path / "mlartifacts").rglob("model.skops"):
        assert set(skops.io.get_untrusted_types(file=stored)) <= set(tracking.SKOPS_TRUSTED_TYPES)


def test_the_logistic_baseline_is_stored_with_skops_too(tmp_path: Path) -> None:
    from retain.churn.model import make_logistic_baseline

    X, y = _churn_table()
    baseline = make_logistic_baseline().fit(X, y)
    track = _store(tmp_path)
    with tracking.tracked_run(track, "baseline") as run:
        uri = run.log_model(baseline, "logistic_baseline")
    version = tracking.register_model(track, uri, "baseline")
    np.testing.assert_array_equal(tracking.load_version(track, "baseline", version).predict_proba(X), baseline.predict_proba(X))
    assert not _pickles(tmp_path / "mlartifacts")


def test_a_model_skops_cannot_store_with_trusted_types_is_refused_not_pickled(tmp_path: Path) -> None:
    track = _store(tmp_path)
    model = make_pipeline(FunctionTransformer(_shifted), LogisticRegression()).fit([[0.0], [1.0]], [0, 1])
    with (
        tracking.tracked_run(track, "untrusted") as run,
        pytest.raises(TypeError, match="does not trust when loading: test_safe_models._shifted"),
    ):
        run.log_model(model, "untrusted")
    assert not list((tmp_path / "mlartifacts").rglob("MLmodel"))


# --- hashes recorded at logging and registration, checked at every load -----------------------


def test_registration_records_the_sha256_of_every_model_file(tmp_path: Path) -> None:
    track = _store(tmp_path)
    version = _register_churn_champion(track)
    recorded = json.loads(tracking.model_version_tags(track, track.churn_model, version)[tracking.ARTIFACT_HASHES_TAG])
    on_disk = tracking.artifact_hashes(_model_file(tmp_path, "model.skops").parent)
    assert recorded == on_disk
    assert {"model.skops", "MLmodel"} <= recorded.keys()


@pytest.mark.parametrize("payload", ["pickle", "skops"])
def test_a_swapped_model_file_is_refused_before_it_is_read(tmp_path: Path, payload: str) -> None:
    """Issue 7: a swapped `model.pkl` ran a command during `retain score`, which exited 0."""
    track = _store(tmp_path)
    version = _register_churn_champion(track)
    marker = tmp_path / "the_payload_ran"
    swapped = pickle.dumps(_RunsACommand(marker)) if payload == "pickle" else _skops_running_a_command(marker)
    _model_file(tmp_path, "model.skops").write_bytes(swapped)

    result = CliRunner().invoke(app, ["score", "-c", str(_score_config(tmp_path, track)), "-q"])

    assert result.exit_code == EXIT_TAMPERED, result.output
    assert not marker.exists(), "the swapped file was run"
    assert f"error: model {track.churn_model} version {version}: its files differ" in result.output
    assert "model.skops was changed" in result.output
    assert "restore mlartifacts/" in result.output


def test_a_skops_payload_is_refused_even_with_matching_hashes(tmp_path: Path) -> None:
    """A store whose hash tags were rewritten too: skops still builds no untrusted type."""
    import skops.io

    track = _store(tmp_path)
    version = _register_churn_champion(track)
    marker = tmp_path / "the_payload_ran"
    stored = _model_file(tmp_path, "model.skops")
    stored.write_bytes(_skops_running_a_command(marker))
    _rehash(track, track.churn_model, version, stored.parent)

    with pytest.raises(tracking.ModelIntegrityError, match="holds types retain does not trust.*subprocess.Popen"):
        tracking.load_version(track, track.churn_model, version)
    assert not marker.exists()
    # The payload is real: a loader trusting its type runs the command.
    skops.io.load(stored, trusted=["subprocess.Popen"]).wait()
    assert marker.exists()


def test_a_model_stored_as_a_pickle_by_an_older_retain_is_refused_with_exit_7(tmp_path: Path) -> None:
    """Its hashes were recorded (older retains did), so only its format tells: never unpickled."""
    import mlflow.sklearn

    track = _store(tmp_path)
    with tracking.tracked_run(track, "old"):
        info = mlflow.sklearn.log_model(
            LogisticRegression().fit([[0.0], [1.0]], [0, 1]),
            name="churn",
            serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE,
        )
    version = tracking.register_model(track, info.model_uri, track.churn_model)
    tracking.crown_without_evidence(track, track.churn_model, version, "test")
    marker = tmp_path / "the_pickle_ran"
    old = _model_file(tmp_path, "model.pkl")
    old.write_bytes(pickle.dumps(_RunsACommand(marker)))  # what an attacker could have logged
    _rehash(track, track.churn_model, version, old.parent)

    result = CliRunner().invoke(app, ["score", "-c", str(_score_config(tmp_path, track)), "-q"])

    assert result.exit_code == EXIT_TAMPERED, result.output
    assert not marker.exists(), "the old model's pickle was loaded"
    assert "this model was stored as a pickle by an older retain; retrain it (`retain train" in result.output
    with pytest.raises(tracking.UnsafeModelFormatError, match="stored as a pickle"):
        tracking.load_champion(track, track.churn_model)


def test_an_added_or_missing_model_file_is_refused(tmp_path: Path) -> None:
    track = _store(tmp_path)
    version = _register_churn_champion(track)
    folder = _model_file(tmp_path, "model.skops").parent
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


# --- the text model: a pyfunc logged as code, its bundle in skops ------------------------------


def _tfidf_bundle() -> object:
    from retain.text.bundle import TextModelBundle
    from retain.text.tfidf import make_sentiment_model

    texts = ["great service", "awful support", "really great", "awful, awful app"] * 3
    labels = ["positive", "negative", "positive", "negative"] * 3
    sentiment = make_sentiment_model(TextModelConfig(min_df=2)).fit(texts, labels)
    return TextModelBundle(sentiment=sentiment, themes=None, theme_ids=())


def test_a_swapped_text_model_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    """The text pyfunc holds its code and one skops file; no pickle, and both are checked."""
    track = _store(tmp_path)
    with tracking.tracked_run(track, "text") as run:
        uri = tracking.log_text_model(run, _tfidf_bundle())
    version = tracking.register_model(track, uri, track.text_model)
    assert tracking.load_text_model(track, uri).model.predict(["great"]) is not None
    assert not _pickles(tmp_path / "mlartifacts")

    marker = tmp_path / "the_payload_ran"
    for name, swapped in (
        ("text_model.skops", _skops_running_a_command(marker)),
        ("text_pyfunc.py", f"import os\nos.system('touch {marker}')\n".encode()),
    ):
        path = _model_file(tmp_path, name)
        original = path.read_bytes()
        path.write_bytes(swapped)
        for model_uri in (uri, f"models:/{track.text_model}/{version}"):
            with pytest.raises(tracking.ModelIntegrityError, match=f"{name} was changed"):
                tracking.load_text_model(track, model_uri)
        path.write_bytes(original)
    assert not marker.exists()
    with pytest.raises(tracking.ModelIntegrityError, match="name a registered version"):
        tracking.load_text_model(track, f"runs:/{run.run_id}/text")


def test_a_text_skops_payload_with_matching_hashes_is_refused(tmp_path: Path) -> None:
    track = _store(tmp_path)
    with tracking.tracked_run(track, "text") as run:
        uri = tracking.log_text_model(run, _tfidf_bundle())
    version = tracking.register_model(track, uri, track.text_model)
    marker = tmp_path / "the_payload_ran"
    stored = _model_file(tmp_path, "text_model.skops")
    stored.write_bytes(_skops_running_a_command(marker))
    _rehash(track, track.text_model, version, stored.parent.parent)
    with pytest.raises(tracking.ModelIntegrityError, match="does not trust"):
        tracking.load_text_model(track, f"models:/{track.text_model}/{version}")
    assert not marker.exists()


def test_a_text_model_pickled_by_an_older_retain_is_refused(tmp_path: Path) -> None:
    import mlflow.pyfunc

    class Old(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
            return model_input

    track = _store(tmp_path)
    with tracking.tracked_run(track, "old-text"):
        info = mlflow.pyfunc.log_model(name="text", python_model=Old())
    tracking._record_hashes(track, info.model_id)  # older retains recorded them too
    version = tracking.register_model(track, info.model_uri, track.text_model)
    tracking.crown_without_evidence(track, track.text_model, version, "test")
    assert _pickles(tmp_path / "mlartifacts")  # python_model.pkl
    with pytest.raises(tracking.UnsafeModelFormatError, match=r"retrain it \(`retain text train"):
        tracking.load_text_model(track)


def test_a_transformer_text_bundle_round_trips_offline_with_identical_probabilities(
    tmp_path: Path, tiny_bert: Path
) -> None:
    """Tokenizer files, config JSON and safetensors weights inside text_model.skops; no pickle,
    no encoder folder, no network: also in a fresh process through MLflow's own loader."""
    import shutil

    import skops.io
    import torch

    from retain.text.bundle import TextModelBundle
    from retain.text.tfidf import make_theme_model
    from retain.text.transformer import TransformerTextClassifier

    torch.set_num_threads(1)
    texts = ["great kind agent", "awful slow app", "refund my bill", "the app crashed", "lovely, thanks", "bad billing"] * 4
    labels = ["positive", "negative", "neutral", "negative", "positive", "negative"] * 4
    themes = np.array([[0, 0], [0, 1], [1, 0], [0, 1], [0, 0], [1, 0]] * 4)
    encoder = tmp_path / "encoder"
    shutil.copytree(tiny_bert, encoder)
    sentiment = TransformerTextClassifier(encoder=str(encoder), epochs=1, batch_size=8, random_state=0)
    bundle = TextModelBundle(
        sentiment=sentiment.fit(texts, labels),
        themes=make_theme_model(TextModelConfig()).fit(texts, themes),
        theme_ids=("billing", "app"),
        kinds={"sentiment": "transformer", "themes": "tfidf"},
    )
    expected = bundle.predict(texts)
    track = _store(tmp_path)
    with tracking.tracked_run(track, "text") as run:
        uri = tracking.log_text_model(run, bundle, extra_requirements=("torch", "transformers"))
    version = tracking.register_model(track, uri, track.text_model)
    shutil.rmtree(encoder)  # the model must carry everything it needs

    assert not _pickles(tmp_path / "mlartifacts")
    stored = _model_file(tmp_path, "text_model.skops")
    assert set(skops.io.get_untrusted_types(file=stored)) <= set(tracking.TEXT_SKOPS_TRUSTED_TYPES)
    loaded = tracking.load_text_model(track, f"models:/{track.text_model}/{version}").model
    pd.testing.assert_frame_equal(loaded.predict(texts), expected)

    script = tmp_path / "load.py"
    script.write_text(
        "import sys, mlflow, pandas as pd\n"
        "model = mlflow.pyfunc.load_model(sys.argv[1])\n"
        "model.predict(pd.DataFrame({'text': sys.argv[3:]})).to_parquet(sys.argv[2])\n"
    )
    out = tmp_path / "predicted.parquet"
    offline = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HOME": str(tmp_path / "no-hf")}
    done = subprocess.run(
        [sys.executable, str(script), str(stored.parent.parent), str(out), *texts],
        cwd=tmp_path,
        env={**os.environ, **offline, "PYTHONPATH": str(SRC)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    # Exact float equality; label columns come back from parquet as str rather than object.
    pd.testing.assert_frame_equal(pd.read_parquet(out), expected, check_exact=True, check_dtype=False)


# --- no personal data in text vocabularies --------------------------------------------------------

NAME = "Xavierine Quobbleton"
EMAIL = "xavierine.q@mailbox-example.org"
PHONES = ("+44 7700 900461", "(555) 010-4477")
ACCOUNT = "88231977"
PLANTED = (NAME, *NAME.split(), EMAIL, "mailbox", *PHONES, "7700", "900461", "4477", ACCOUNT)

MOODS = {
    "negative": ["awful, I hate this", "terrible and slow", "bad, the worst service"],
    "neutral": ["it is fine", "ok, nothing special", "average, fine I guess"],
    "positive": ["great, I love it", "excellent and kind", "very good, thanks"],
}
TOPICS = {
    "billing": "charged twice on my bill, need a refund",
    "support": "the agent never answered my call",
    "app": "the app crashed after the update",
}


def _feedback_with_pii(n_customers: int = 24) -> pd.DataFrame:
    """Labelled feedback in which one customer signs every message with a name, e-mail and phone
    number, and a few others give a phone number or an account number."""
    rows = []
    moods, topics = list(MOODS), list(TOPICS)
    for customer in range(n_customers):
        for k in range(4):
            mood, topic = moods[(customer + k) % 3], topics[(customer * 2 + k) % 3]
            text = f"{MOODS[mood][k % 3]}, {TOPICS[topic]}"
            if customer == 0:  # signs every message: the name is in 4 texts of one customer
                text += f". {NAME}, {EMAIL}, {PHONES[0]}"
            elif customer % 5 == 0:
                text += f". call me on {PHONES[k % 2]} about account {ACCOUNT}, or mail {EMAIL}"
            rows.append(
                {
                    "feedback_id": f"F{len(rows):04d}",
                    "customer_id": f"C{customer:03d}",
                    "created_at": pd.Timestamp("2025-01-01") + pd.Timedelta(days=len(rows)),
                    "text": text,
                    "sentiment": mood,
                    "themes": topic,
                }
            )
    return pd.DataFrame(rows)


def _skops_text(path: Path) -> bytes:
    """The text a skops file stores: its schema (without skops' object ids, memory addresses
    that can contain any digits) and its arrays of strings; numeric arrays are left out."""

    def without_ids(node: object) -> object:
        if isinstance(node, dict):
            return {k: without_ids(v) for k, v in node.items() if k != "__id__"}
        if isinstance(node, list):
            return [without_ids(v) for v in node]
        return node

    parts = []
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            if name == "schema.json":
                parts.append(json.dumps(without_ids(json.loads(archive.read(name)))))
            elif name.endswith(".npy"):
                array = np.load(io.BytesIO(archive.read(name)), allow_pickle=False)
                if array.dtype.kind in "US":
                    parts.append(" ".join(map(str, array.ravel())))
    return "\n".join(parts).encode()


def _assert_no_planted_pii(vocabulary: set[str], stored: bytes) -> None:
    lowered = stored.lower()
    for planted in PLANTED:
        assert not any(planted.lower() in term for term in vocabulary), planted
        assert planted.lower().encode() not in lowered, planted


def _vocabulary(pipeline: Pipeline) -> set[str]:
    return {term for _, vectorizer in pipeline.named_steps["features"].transformer_list for term in vectorizer.vocabulary_}


def test_scrub_replaces_contact_details_and_long_numbers_only() -> None:
    (scrubbed,) = scrub_pii(
        [f"mail {EMAIL} or https://x.example/p?id=3 call {PHONES[1]} re order {ACCOUNT} on 2025-01-15, 2 days, £45, 1234"]
    )
    assert scrubbed.split() == [
        "mail", "__email__", "or", "__url__", "call", "__phone__", "re", "order", "__number__", "on", "2025-01-15,",
        "2", "days,", "£45,", "1234",
    ]


def test_customer_vocabulary_keeps_terms_of_enough_customers() -> None:
    texts = ["refund please", "refund now", "refund Quobbleton", "Quobbleton again"]
    analyzer = str.split
    assert customer_vocabulary(texts, ["a", "b", "c", "c"], analyzer, 3) == ["refund"]
    assert customer_vocabulary(texts, ["a", "b", "c", "d"], analyzer, 2) == ["Quobbleton", "refund"]


def test_min_df_below_2_is_refused() -> None:
    with pytest.raises(ValueError, match="min_df"):
        TextModelConfig(min_df=1)


def test_churn_text_models_store_no_planted_pii(tmp_path: Path) -> None:
    """Issue 7: the vocabularies in the text model artifacts held names, e-mails and phones."""
    from retain.training import train_text_models

    feedback = _feedback_with_pii()
    models = train_text_models(feedback, list(TOPICS), TextModelConfig(), min_rows=20)
    assert models is not None and models.sentiment is not None and models.themes is not None
    assert models.metrics["sentiment_accuracy"] > 0.8  # the planted details cost nothing

    track = _store(tmp_path)
    with tracking.tracked_run(track, "text-models") as run:
        run.log_model(models.sentiment, "sentiment")
        run.log_model(models.themes, "themes")
    for model in (models.sentiment, models.themes):
        vocabulary = _vocabulary(model)
        assert {"refund", "agent", "__email__", "__phone__"} <= vocabulary
        _assert_no_planted_pii(vocabulary, b"")
    files = list((tmp_path / "mlartifacts").rglob("model.skops"))
    assert len(files) == 2
    for stored in files:
        assert b"refund" in _skops_text(stored)  # the vocabulary is readable in the file
        _assert_no_planted_pii(set(), _skops_text(stored))


def test_text_job_model_stores_no_planted_pii(tmp_path: Path) -> None:
    """`retain text train` (TF-IDF): no planted detail in the vocabulary or the stored bytes."""
    feedback = _feedback_with_pii()
    feedback.loc[1:, "text"] = feedback.loc[1:, "text"].str.replace(NAME, "")  # the name written once
    data = tmp_path / "feedback.csv"
    feedback[["feedback_id", "text", "sentiment"]].to_csv(data, index=False)
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config = tmp_path / "text.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "data": {"path": str(data), "columns": {"id": "feedback_id", "text": "text", "sentiment": "sentiment"}},
                "model": {"kind": "tfidf", "unlabelled": "skip"},
                "validation": {"bootstrap": 100},
                "tracking": {"tracking_uri": store, "experiment": "pii", "text_model": "pii-text"},
                "output": str(tmp_path / "out" / "scores.csv"),
                "cache": str(tmp_path / "out" / "cache.parquet"),
            }
        )
    )
    result = CliRunner().invoke(app, ["text", "train", "-c", str(config), "-q"])
    assert result.exit_code == 0, result.output

    track = TrackingConfig(tracking_uri=store, experiment="pii", text_model="pii-text")
    bundle = tracking.load_text_model(track).model
    vocabulary = _vocabulary(bundle.sentiment)
    assert {"refund", "__email__", "__phone__", "__number__"} <= vocabulary
    (stored,) = (tmp_path / "mlartifacts").rglob("text_model.skops")
    assert b"refund" in _skops_text(stored)  # the vocabulary is readable in the file
    _assert_no_planted_pii(vocabulary, _skops_text(stored))


# --- transformer weights as safetensors --------------------------------------------------------


def test_an_encoder_is_stored_as_plain_data_and_old_torch_weights_still_load(tiny_bert: Path) -> None:
    import io

    import torch
    from transformers import AutoModel, AutoTokenizer

    from retain.text.transformer import EncoderNetwork

    torch.manual_seed(0)
    encoder = AutoModel.from_pretrained(tiny_bert)
    head = torch.nn.Linear(encoder.config.hidden_size, 3)
    network = EncoderNetwork(AutoTokenizer.from_pretrained(tiny_bert), encoder, head)

    state = network.__getstate__()
    # Tokenizer files, config JSON, safetensors bytes: nothing skops or pickle would run.
    assert set(state) == {"tokenizer_files", "config_json", "weights_safetensors", "head_shape"}
    assert {type(v) for v in state["tokenizer_files"].values()} == {bytes}
    assert json.loads(state["config_json"])["hidden_size"] == encoder.config.hidden_size
    assert "weights" not in state  # no torch.save pickle of the weights
    header_length = int.from_bytes(state["weights_safetensors"][:8], "little")
    header = json.loads(state["weights_safetensors"][8 : 8 + header_length])
    assert "encoder.embeddings.word_embeddings.weight" in header and "head.weight" in header

    buffer = io.BytesIO()
    torch.save({"encoder": encoder.state_dict(), "head": head.state_dict()}, buffer)
    old_state = {k: v for k, v in state.items() if k != "weights_safetensors"} | {"weights": buffer.getvalue()}
    old = EncoderNetwork.__new__(EncoderNetwork)
    old.__setstate__(old_state)

    for restored in (pickle.loads(pickle.dumps(network)), old):
        for name, tensor in encoder.state_dict().items():
            assert torch.equal(restored.encoder.state_dict()[name], tensor), name
        assert torch.equal(restored.head.weight, head.weight) and torch.equal(restored.head.bias, head.bias)


# --- scikit-learn pipelines in skops, with retain's own list of trusted types ------------------


def test_tfidf_pipelines_are_stored_with_skops_and_load_without_pickle(tmp_path: Path) -> None:
    import numpy as np
    import skops.io

    from retain.text.tfidf import make_theme_model

    texts = ["charged twice, refund", "the app crashed", "refund my bill", "app error again"] * 3
    model = make_theme_model(TextModelConfig()).fit(texts, np.array([[1, 0], [0, 1], [1, 0], [0, 1]] * 3))
    track = _store(tmp_path)
    with tracking.tracked_run(track, "themes") as run:
        uri = run.log_model(model, "themes")
    version = tracking.register_model(track, uri, "themes")

    assert not list((tmp_path / "mlartifacts").rglob("model.pkl"))
    (stored,) = (tmp_path / "mlartifacts").rglob("model.skops")
    assert set(skops.io.get_untrusted_types(file=stored)) <= set(tracking.SKOPS_TRUSTED_TYPES)
    loaded = tracking.load_version(track, "themes", version)
    np.testing.assert_array_equal(loaded.predict_proba(texts), model.predict_proba(texts))


def test_a_skops_file_with_a_type_outside_the_trusted_list_is_refused(tmp_path: Path) -> None:
    """Even with matching hashes (say, a store whose tags were rewritten too), skops refuses."""
    import skops.io

    track = _store(tmp_path)
    with tracking.tracked_run(track, "themes") as run:
        uri = run.log_model(LogisticRegression().fit([[0.0], [1.0]], [0, 1]), "plain")
    version = tracking.register_model(track, uri, "plain")
    (stored,) = (tmp_path / "mlartifacts").rglob("model.skops")
    skops.io.dump(make_pipeline(FunctionTransformer(_shifted), LogisticRegression()), stored)
    hashes = tracking.artifact_hashes(stored.parent)
    tracking._client(track).set_model_version_tag("plain", version, tracking.ARTIFACT_HASHES_TAG, json.dumps(hashes))
    with pytest.raises(tracking.ModelIntegrityError, match="holds types retain does not trust"):
        tracking.load_version(track, "plain", version)


def _scrub_every_pattern(text: str) -> str:
    """scrub_pii's patterns applied to every text, without its shortcuts."""
    from retain.text import pii

    text = pii._EMAIL.sub(" __email__ ", text)
    text = pii._URL.sub(" __url__ ", text)
    text = pii._PHONE_LIKE.sub(pii._phone, text)
    return pii._LONG_DIGIT_RUN.sub(" __number__ ", text)


@given(st.lists(st.text(alphabet=st.sampled_from(list("ab @.:/wW-+()0123456789٣xhtps")), max_size=40), max_size=20))
def test_scrubbing_skips_only_texts_no_pattern_can_match(texts: list[str]) -> None:
    from retain.text.pii import scrub_pii

    assert scrub_pii(texts) == [_scrub_every_pattern(t) for t in texts]


def test_skops_is_imported_without_torch_and_trusts_the_same_types() -> None:
    """retain's import of skops leaves torch out (seconds at every scoring run's start) and skops
    lists the same scikit-learn estimators as a plain import does."""
    import json
    import subprocess
    import sys

    names = "from skops.io._trusted_types import SKLEARN_ESTIMATOR_TYPE_NAMES as n; "
    ours = "import sys, json; from retain.tracking import import_skops; import_skops(); " + names + (
        "print(json.dumps(['torch' in sys.modules, sorted(n)]))"
    )
    plain = "import json, skops.io; " + names + "print(json.dumps(sorted(n)))"

    def run(code: str) -> object:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        return json.loads(done.stdout.strip().splitlines()[-1])

    torch_loaded, trusted = run(ours)
    assert torch_loaded is False
    assert trusted == run(plain)
