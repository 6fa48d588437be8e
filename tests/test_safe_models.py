"""Issue 7, item 7: model files are checked against their recorded sha256 before anything is
unpickled, and text vocabularies keep no e-mail address, phone number or rare name.

Each test names the failure it guards against and fails if that behaviour comes back.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pandas as pd
import pytest
import yaml
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer
from typer.testing import CliRunner

from retain import tracking
from retain.cli import EXIT_TAMPERED, app
from retain.config import TextModelConfig, TrackingConfig
from retain.text.pii import customer_vocabulary, scrub_pii


class _RunsACommand:
    """Unpickling this runs a shell command that creates ``marker``: a swapped ``model.pkl``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {self.marker}",)


def _store(tmp_path: Path) -> TrackingConfig:
    return TrackingConfig(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")


def _shifted(X: object) -> object:
    return X


def _register_churn_champion(track: TrackingConfig) -> str:
    # A function of its own, like retain's churn model (LightGBM, its own estimators), keeps the
    # model out of skops: it is cloudpickled into model.pkl.
    model = make_pipeline(FunctionTransformer(_shifted), LogisticRegression()).fit([[0.0], [1.0]], [0, 1])
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


def _assert_no_planted_pii(vocabulary: set[str], pickled: bytes) -> None:
    lowered = pickled.lower()
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
    for pickled in (tmp_path / "mlartifacts").rglob("model.pkl"):
        _assert_no_planted_pii(set(), pickled.read_bytes())


def test_text_job_model_stores_no_planted_pii(tmp_path: Path) -> None:
    """`retain text train` (TF-IDF): no planted detail in the vocabulary or the pickled bytes."""
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
    (pickled,) = (tmp_path / "mlartifacts").rglob("text_model.pkl")
    _assert_no_planted_pii(vocabulary, pickled.read_bytes())


# --- transformer weights as safetensors --------------------------------------------------------


def test_encoder_weights_are_pickled_as_safetensors_and_old_pickles_still_load(tiny_bert: Path) -> None:
    import io

    import torch
    from transformers import AutoModel, AutoTokenizer

    from retain.text.transformer import EncoderNetwork

    torch.manual_seed(0)
    encoder = AutoModel.from_pretrained(tiny_bert)
    head = torch.nn.Linear(encoder.config.hidden_size, 3)
    network = EncoderNetwork(AutoTokenizer.from_pretrained(tiny_bert), encoder, head)

    state = network.__getstate__()
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
