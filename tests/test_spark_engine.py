"""``retain score --engine spark`` (``retain.engines.spark``) in local mode gives the pandas engine's list.

A small synthetic world written as Parquet, small fitted models, scored by both engines at one
``as_of``; Spark with several partitions of customers. Slow (a JVM starts): one session per module.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from retain import data
from retain.config import DataConfig, ScoreConfig, ScoringConfig, SparkConfig
from retain.contracts import ContractError, World
from retain.scoring import ScoringModels, score_world
from retain.synth import generate_world
from test_scoring_path import AS_OF, FEATURES, PLAYBOOK, SCORING, THEME_IDS, _scoring_models

pytest.importorskip("pyspark")
pytestmark = pytest.mark.slow

PARTITIONS = 3


@pytest.fixture(scope="module")
def spark():  # type: ignore[no-untyped-def]
    from retain.engines.spark import spark_session

    session = spark_session(SparkConfig(master="local[2]", partitions=PARTITIONS, conf={"spark.ui.enabled": "false"}))
    yield session
    session.stop()


@dataclass(frozen=True)
class Engines:
    pandas: pd.DataFrame
    spark: pd.DataFrame
    rejected: dict[str, int]
    scores_path: str


def _config(directory: Path, output: Path) -> ScoreConfig:
    return ScoreConfig(
        data=DataConfig(path=directory, export_time="2025-07-01"),
        features=FEATURES,
        scoring=SCORING.model_copy(update={"output_dir": output, "spark": SparkConfig(partitions=PARTITIONS)}),
    )


@dataclass(frozen=True)
class Written:
    directory: Path
    world: World
    models: ScoringModels


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Written:
    directory = tmp_path_factory.mktemp("world")
    world = generate_world(300, seed=2, start="2024-01-01", end="2025-06-30")
    data.write_world(world, directory)
    loaded = data.load_world(DataConfig(path=directory, export_time="2025-07-01"), write_quarantine=False)
    assert not loaded.n_rejected
    return Written(directory, loaded.world, _scoring_models(world))


def _both_engines(spark, written: Written, scoring: ScoringConfig, output: Path) -> Engines:  # type: ignore[no-untyped-def]
    from retain.engines.spark import score_on_spark

    pandas_ranked = score_world(written.world, AS_OF, written.models, THEME_IDS, FEATURES, scoring, PLAYBOOK)
    config = _config(written.directory, output)
    config = config.model_copy(update={"scoring": scoring.model_copy(update={"output_dir": output, "spark": config.scoring.spark})})
    run = score_on_spark(config, written.models, THEME_IDS, PLAYBOOK, lambda end: (AS_OF, "test"), spark=spark)
    return Engines(pandas_ranked, run.ranked, run.rejected, run.customer_scores)


@pytest.fixture(scope="module", params=["everyone explained", "top share explained"])
def engines(request, spark, written: Written, tmp_path_factory: pytest.TempPathFactory) -> Engines:  # type: ignore[no-untyped-def]
    scoring = SCORING
    if request.param == "top share explained":  # reasons for the top 20%, read against a 100-customer sample
        scoring = SCORING.model_copy(
            update={"reasons_all_up_to": 0, "reasons_top_share": 0.2, "reasons_reference_sample": 100}
        )
    engines = _both_engines(spark, written, scoring, tmp_path_factory.mktemp("out"))
    assert engines.rejected == {"customers": 0, "events": 0, "tickets": 0, "feedback": 0}
    explained = engines.pandas["explained"]
    assert explained.all() if request.param == "everyone explained" else 0 < explained.sum() < len(explained)
    return engines


def test_same_customers_in_the_same_order(engines: Engines) -> None:
    assert len(engines.pandas) > 100
    assert engines.spark["customer_id"].tolist() == engines.pandas["customer_id"].tolist()
    assert engines.spark["rank"].tolist() == engines.pandas["rank"].tolist()


def test_same_probabilities_and_values(engines: Engines) -> None:
    np.testing.assert_allclose(engines.spark["churn_probability"], engines.pandas["churn_probability"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(engines.spark["value_at_risk"], engines.pandas["value_at_risk"], rtol=0, atol=1e-9)


def test_same_tiers_reasons_evidence_and_outreach(engines: Engines) -> None:
    columns = [
        c for c in engines.pandas.columns
        if c in ("risk_tier", "control", "explained", "recommended_action", "team", "outreach_status",
                 "segment", "region", "plan") or c.startswith("reason_")
    ]
    assert any(c.endswith("_evidence") for c in columns)
    assert engines.spark[columns].astype(object).equals(engines.pandas[columns].astype(object))
    assert engines.spark.attrs == engines.pandas.attrs


def test_purchase_values_come_from_one_fit_on_the_whole_log(spark, written: Written, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Customers without a monthly value: each partition values them with the BG/NBD and
    Gamma-Gamma fitted once on every partition's histories, as the pandas engine does (a fit per
    partition would give other values). Baskets redrawn from a Gamma (see test_scoring_path)."""
    world = written.world
    customers = world.customers.copy()
    customers.loc[customers.index[::3], "monthly_value"] = np.nan
    events = world.events.copy()
    bought = events["amount"].notna().to_numpy()
    events.loc[bought, "amount"] = np.random.default_rng(0).gamma(6.0, 5.0, bought.sum())
    directory = tmp_path / "world"
    data.write_world(World(customers=customers, events=events, tickets=world.tickets, feedback=world.feedback), directory)
    loaded = data.load_world(DataConfig(path=directory, export_time="2025-07-01"), write_quarantine=False)
    engines = _both_engines(spark, Written(directory, loaded.world, written.models), SCORING, tmp_path / "out")
    assert "BG/NBD x Gamma-Gamma" in engines.spark.attrs["value_basis"]
    assert engines.spark.attrs == engines.pandas.attrs
    assert engines.spark["customer_id"].tolist() == engines.pandas["customer_id"].tolist()
    np.testing.assert_allclose(engines.spark["monthly_value"], engines.pandas["monthly_value"], rtol=1e-12, atol=0)


def test_customer_scores_are_partitioned_parquet(engines: Engines) -> None:
    parts = sorted(p.name for p in Path(engines.scores_path).glob("customer_partition=*"))
    assert len(parts) == PARTITIONS
    written = pd.read_parquet(engines.scores_path)
    assert sorted(written["customer_id"]) == sorted(engines.pandas["customer_id"])


def test_rejected_rows_are_counted_like_the_pandas_engine(spark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A feedback row of an unknown customer and one dated after the export time."""
    from retain.engines.spark import score_on_spark

    world = generate_world(120, seed=3, start="2024-01-01", end="2025-06-30")
    feedback = world.feedback.copy()
    feedback.loc[0, "customer_id"] = "NOBODY"
    feedback.loc[1, "created_at"] = pd.Timestamp("2026-01-01")
    data.write_world(World(world.customers, world.events, world.tickets, feedback), tmp_path / "w")
    config = _config(tmp_path / "w", tmp_path / "out")
    # Read through a URI, as from a cluster's filesystem.
    spark_config = SparkConfig(partitions=PARTITIONS, data_uri=(tmp_path / "w").as_uri())
    config = config.model_copy(update={"scoring": config.scoring.model_copy(update={"spark": spark_config})})
    loaded = data.load_world(config.data, write_quarantine=False)
    models = _scoring_models(loaded.world)
    run = score_on_spark(config, models, THEME_IDS, PLAYBOOK, lambda end: (AS_OF, "test"), spark=spark)
    assert run.rejected == {name: len(r.rejected) for name, r in loaded.reports.items()}
    assert run.rejected["feedback"] == 2
    ranked = score_world(loaded.world, AS_OF, models, THEME_IDS, FEATURES, SCORING, PLAYBOOK)
    assert run.ranked["customer_id"].tolist() == ranked["customer_id"].tolist()
    np.testing.assert_allclose(run.ranked["churn_probability"], ranked["churn_probability"], rtol=0, atol=1e-9)
    quarantine = pd.read_csv(tmp_path / "w" / "quarantine" / "feedback.csv")
    assert quarantine["source_row"].tolist() == [1, 2]


def test_ids_shared_across_partitions_are_refused(spark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from retain.engines.spark import score_on_spark

    world = generate_world(120, seed=3, start="2024-01-01", end="2025-06-30")
    tickets = world.tickets.copy()
    others = tickets.loc[tickets["customer_id"] != tickets["customer_id"].iloc[0]].index
    tickets.loc[others[:40], "ticket_id"] = tickets["ticket_id"].iloc[0]
    data.write_world(World(world.customers, world.events, tickets, world.feedback), tmp_path / "w")
    models = _scoring_models(world)
    with pytest.raises(ContractError, match="ticket_id"):
        score_on_spark(_config(tmp_path / "w", tmp_path / "out"), models, THEME_IDS, PLAYBOOK,
                       lambda end: (AS_OF, "test"), spark=spark)


def test_retain_score_engine_spark_writes_what_the_pandas_engine_writes(  # type: ignore[no-untyped-def]
    spark, written: Written, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command, `retain score --engine spark`, on the fitted models (a tracking store stands
    in for them: training one is not what is tested): the same list and summary files."""
    import json

    import yaml
    from typer.testing import CliRunner

    from retain import jobs, tracking
    from retain.cli import app

    monkeypatch.setattr(tracking, "open_store", lambda *args, **kwargs: None)
    monkeypatch.setattr(jobs, "load_scoring_models", lambda *args, **kwargs: (written.models, THEME_IDS))
    playbook = tmp_path / "playbook.yaml"
    playbook.write_text(yaml.safe_dump(PLAYBOOK.model_dump(mode="json")))
    outputs = {}
    for engine in ("pandas", "spark"):
        config = tmp_path / f"{engine}.yaml"
        config.write_text(yaml.safe_dump({
            "data": {"path": str(written.directory), "export_time": "2025-07-01"},
            "scoring": {"output_dir": str(tmp_path / engine), "playbook": str(playbook), "top_reasons": 3,
                        "spark": {"partitions": PARTITIONS}},
        }))
        # An earlier run first: its archived plan's horizon (90 days) has passed by the second run's date.
        for as_of in ("2024-11-01", "2025-03-01"):
            result = CliRunner().invoke(
                app, ["score", "-c", str(config), "--engine", engine, "--as-of", as_of, "--force-as-of", "-q"]
            )
            assert result.exit_code == 0, result.output
        outputs[engine] = tmp_path / engine / "latest"
    pd.testing.assert_frame_equal(
        pd.read_parquet(outputs["spark"] / "ranked_customers.parquet"),
        pd.read_parquet(outputs["pandas"] / "ranked_customers.parquet"),
        check_exact=False, rtol=0, atol=1e-9,
    )
    summaries = [json.loads((outputs[e] / "score_summary.json").read_text()) for e in ("pandas", "spark")]
    monitoring = [summary.pop("monitoring") for summary in summaries]
    for summary in summaries:
        summary.pop("outputs")
    assert summaries[0] == summaries[1]
    # Monitoring reads the per-customer scores on the driver: the same estimate and drift; theme
    # surges need every feedback row, which stays on the cluster, and a note says so.
    for key in ("estimated_roc_auc", "score_psi", "features"):
        assert monitoring[0][key] == monitoring[1][key]
    assert any("Spark" in note for note in monitoring[1]["notes"])
    # Realised performance needs every customer's labels: the driver holds only the explained
    # customers' rows, so the Spark engine says so rather than judging a part (or failing).
    assert [r["as_of"] for r in monitoring[0]["realised"]] == ["2024-11-01"]
    assert monitoring[1]["realised"] == []
    assert any("realised performance" in note and "Spark" in note for note in monitoring[1]["notes"])


def test_a_flat_table_is_refused(written: Written, tmp_path: Path) -> None:
    from retain.config import ConfigError
    from retain.engines.spark import score_on_spark

    config = _config(written.directory, tmp_path).model_copy(
        update={"data": DataConfig(layout="flat", path=written.directory, flat={"file": "customers.parquet", "label_column": "churned"})}
    )
    with pytest.raises(ConfigError, match="layout: tables"):
        score_on_spark(config, written.models, THEME_IDS, PLAYBOOK, lambda end: (AS_OF, "test"))


def test_day_first_text_dates_need_a_date_format(spark, written: Written, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The pandas engine infers their order from the whole column; a partition sees only part of it."""
    from retain.engines.spark import score_on_spark

    feedback = written.world.feedback.assign(created_at=written.world.feedback["created_at"].dt.strftime("%d/%m/%Y"))
    data.write_world(World(written.world.customers, written.world.events, written.world.tickets, feedback), tmp_path / "w")
    with pytest.raises(ContractError, match=r"data\.read\.feedback\.date_format"):
        score_on_spark(_config(tmp_path / "w", tmp_path / "out"), written.models, THEME_IDS, PLAYBOOK,
                       lambda end: (AS_OF, "test"), spark=spark)


def test_nobody_in_the_population_is_the_pandas_engines_error(spark, written: Written, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from retain.engines.spark import score_on_spark
    from retain.scoring import ScoringError

    before = pd.Timestamp("1990-01-01")
    with pytest.raises(ScoringError) as pandas_error:
        score_world(written.world, before, written.models, THEME_IDS, FEATURES, SCORING, PLAYBOOK)
    with pytest.raises(ScoringError) as spark_error:
        score_on_spark(_config(written.directory, tmp_path), written.models, THEME_IDS, PLAYBOOK,
                       lambda end: (before, "test"), spark=spark)
    assert str(spark_error.value) == str(pandas_error.value)
