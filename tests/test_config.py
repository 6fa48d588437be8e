from __future__ import annotations

from pathlib import Path

import pytest

from retain.config import (
    ConfigError,
    DemoConfig,
    Playbook,
    ScoreConfig,
    Taxonomy,
    TrainConfig,
    load_config,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("name", "model"),
    [("demo.yaml", DemoConfig), ("train.yaml", TrainConfig), ("score.yaml", ScoreConfig),
     ("themes.yaml", Taxonomy), ("playbook.yaml", Playbook)],
)
def test_shipped_configs_are_valid(name: str, model: type) -> None:
    load_config(REPO / "configs" / name, model)


def test_unknown_key_names_the_key_and_the_file(tmp_path: Path) -> None:
    path = tmp_path / "train.yaml"
    path.write_text("data:\n  path: world\nchurn:\n  n_estimator: 10\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, TrainConfig)
    message = str(err.value)
    assert str(path) in message
    assert "churn.n_estimator" in message
    assert "unknown key" in message


def test_wrong_type_and_missing_section_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "train.yaml"
    path.write_text("features:\n  horizon_days: soon\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, TrainConfig)
    assert "features.horizon_days" in str(err.value)
    assert "data" in str(err.value)


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml", TrainConfig)
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad, TrainConfig)


def test_tiers_must_descend_to_zero(tmp_path: Path) -> None:
    path = tmp_path / "score.yaml"
    path.write_text(
        "data: {path: w}\nscoring:\n  tiers:\n    - {name: low, min_probability: 0.0}\n"
        "    - {name: high, min_probability: 0.5}\n"
    )
    with pytest.raises(ConfigError, match="tiers"):
        load_config(path, ScoreConfig)


def test_playbook_signals_are_known_reason_signals() -> None:
    from retain.churn.reasons import SIGNALS

    playbook = load_config(REPO / "configs" / "playbook.yaml", Playbook)
    unknown = [r.signal for r in playbook.rules if r.signal is not None and r.signal not in SIGNALS]
    assert unknown == []


def test_taxonomy_themes_have_reason_signals() -> None:
    from retain.churn.reasons import SIGNALS

    taxonomy = load_config(REPO / "configs" / "themes.yaml", Taxonomy)
    assert [f"theme_{t}" for t in taxonomy.ids if f"theme_{t}" not in SIGNALS] == []


def test_churn_config_defaults_match_the_estimator_defaults() -> None:
    from sklearn.base import clone

    from retain.churn.model import ChurnClassifier
    from retain.config import ChurnModelConfig

    estimator_defaults = clone(ChurnClassifier()).get_params()
    config = ChurnModelConfig()
    for name in ("calibration", "n_jobs"):
        assert getattr(config, name) == estimator_defaults[name], name
    # model settings are chosen by the search unless pinned
    for name in ("n_estimators", "learning_rate", "num_leaves", "min_child_samples"):
        assert getattr(config, name) is None, name


def test_empty_tiers_are_a_config_error_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "score.yaml"
    path.write_text("data: {path: w}\nscoring:\n  tiers: []\n")
    with pytest.raises(ConfigError, match="tiers"):
        load_config(path, ScoreConfig)


def test_a_playbook_min_tier_must_be_a_configured_tier(tmp_path: Path) -> None:
    from retain.config import DataConfig, ScoringConfig
    from retain.jobs import check_playbook_tiers

    playbook_path = tmp_path / "playbook.yaml"
    playbook_path.write_text(
        "default_action: call\nrules:\n  - {signal: theme_pricing, action: discount, min_tier: hihg}\n"
    )
    playbook = load_config(playbook_path, Playbook)
    config = ScoreConfig(data=DataConfig(path=tmp_path), scoring=ScoringConfig(playbook=playbook_path))
    with pytest.raises(ConfigError, match="hihg"):
        check_playbook_tiers(playbook, config)
    check_playbook_tiers(load_config(REPO / "configs" / "playbook.yaml", Playbook), ScoreConfig(data=DataConfig(path=tmp_path)))


def test_an_empty_mlflow_tracking_uri_means_the_default_store(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from retain.config import DEFAULT_TRACKING_URI, TrackingConfig

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "")  # `export MLFLOW_TRACKING_URI=` would give MLflow's file store
    assert TrackingConfig().tracking_uri == DEFAULT_TRACKING_URI
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///elsewhere.db")
    assert TrackingConfig().tracking_uri == "sqlite:///elsewhere.db"
