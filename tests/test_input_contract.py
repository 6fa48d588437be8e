"""The input contract against hostile input (issue 7, items 1-3): time, numbers, ids, dates and
nothing silently unused. Each test names the failure it guards against; a small synthetic world
written as CSV is the clean starting point, and each test spoils one thing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from retain import jobs
from retain.cli import EXIT_DATA, app
from retain.config import (
    ConfigError,
    DataConfig,
    ScoreConfig,
    ScoringConfig,
    TrainConfig,
    load_config,
)
from retain.contracts import CUSTOMERS, EVENTS, TICKETS, ContractError, validate_table
from retain.data import load_world, write_json
from retain.scoring import ScoringError
from retain.synth import generate_world
from retain.training import observed_until

REPO = Path(__file__).resolve().parents[1]
EXPORTED = pd.Timestamp("2026-01-01")


@pytest.fixture(scope="module")
def clean_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """150 customers over 2024 as CSV files (tables of 98 to 1,431 rows): one bad row is < 5%."""
    directory = tmp_path_factory.mktemp("clean")
    world = generate_world(150, seed=1, start="2024-01-01", end="2024-12-31")
    for name, frame in world.tables().items():
        frame.to_csv(directory / f"{name}.csv", index=False)
    return directory


def _copy(clean: Path, target: Path, **tables: pd.DataFrame) -> Path:
    """The clean world in ``target``, with ``tables`` replacing its CSV files."""
    target.mkdir(parents=True, exist_ok=True)
    for path in clean.glob("*.csv"):
        frame = tables.get(path.stem)
        if frame is None:
            (target / path.name).write_bytes(path.read_bytes())
        else:
            frame.to_csv(target / path.name, index=False)
    return target


def _table(clean: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(clean / f"{name}.csv", dtype=str, keep_default_na=False)


def _reasons(loaded, table: str) -> list[str]:  # type: ignore[no-untyped-def]
    return loaded.reports[table].rejected["reason"].tolist()


def _load(directory: Path, **settings: object):  # type: ignore[no-untyped-def]
    return load_world(DataConfig(path=directory, export_time=EXPORTED, **settings))


# ---------------------------------------------------------------------------------------------
# 1. Time


def test_a_row_dated_2099_is_quarantined_and_does_not_move_the_default_scoring_date(
    clean_world: Path, tmp_path: Path
) -> None:
    events, feedback, customers = (_table(clean_world, n) for n in ("events", "feedback", "customers"))
    events.loc[3, "occurred_at"] = "2099-01-01 10:00:00"
    feedback.loc[2, "created_at"] = "2099-01-01"
    customers.loc[5, "signup_at"] = "2099-01-01"
    spoiled = _copy(clean_world, tmp_path / "w", events=events, feedback=feedback, customers=customers)

    loaded = load_world(DataConfig(path=spoiled))  # export time: now
    clean = load_world(DataConfig(path=clean_world), write_quarantine=False)

    now = pd.Timestamp.now()
    for table in ("events", "feedback", "customers"):
        assert any("after the export time" in r for r in _reasons(loaded, table)), table
        assert loaded.world.tables()[table][
            {"events": "occurred_at", "feedback": "created_at", "customers": "signup_at"}[table]
        ].max() < now
    assert observed_until(loaded.world) == observed_until(clean.world)
    assert jobs.score_date(None, observed_until(loaded.world), _score_config(spoiled, tmp_path))[0] < pd.Timestamp("2025-02-01")


def test_export_time_is_a_setting(clean_world: Path) -> None:
    loaded = load_world(
        DataConfig(path=clean_world, export_time="2024-12-01T00:00:00", max_quarantine_share=1.0),
        write_quarantine=False,
    )
    events = pd.read_csv(clean_world / "events.csv", parse_dates=["occurred_at"])
    later = int((events["occurred_at"] > pd.Timestamp("2024-12-01")).sum())
    assert later > 0
    assert _reasons(loaded, "events").count("column 'occurred_at': after the export time 2024-12-01 00:00:00") == later


def test_tickets_before_signup_and_resolved_before_opened_are_quarantined(
    clean_world: Path, tmp_path: Path
) -> None:
    tickets = _table(clean_world, "tickets")
    customers = _table(clean_world, "customers").set_index("customer_id")
    early = tickets.index[0]
    signup = pd.Timestamp(customers.loc[tickets.loc[early, "customer_id"], "signup_at"])
    tickets.loc[early, "opened_at"] = str(signup - pd.Timedelta(days=3))
    resolved = tickets.index[tickets["resolved_at"] != ""][1]
    tickets.loc[resolved, "resolved_at"] = str(pd.Timestamp(tickets.loc[resolved, "opened_at"]) - pd.Timedelta(hours=5))
    answered = tickets.index[tickets["first_response_at"] != ""][2]
    tickets.loc[answered, "first_response_at"] = str(pd.Timestamp(tickets.loc[answered, "opened_at"]) - pd.Timedelta(hours=1))
    spoiled = _copy(clean_world, tmp_path / "w", tickets=tickets)

    loaded = _load(spoiled)
    rejected = loaded.reports["tickets"].rejected.set_index("source_row")["reason"]
    assert rejected.to_dict() == {
        early + 1: "column 'opened_at': before the customer's signup_at",
        resolved + 1: "column 'resolved_at': before opened_at",
        answered + 1: "column 'first_response_at': before opened_at",
    }
    valid = loaded.world.tickets
    assert (valid["resolved_at"].dropna() >= valid.loc[valid["resolved_at"].notna(), "opened_at"]).all()


def test_a_scoring_date_far_from_the_data_is_refused_unless_forced(tmp_path: Path) -> None:
    config = _score_config(tmp_path, tmp_path)
    end = pd.Timestamp("2025-06-30 18:00")
    assert jobs.score_date(None, end, config) == (
        pd.Timestamp("2025-07-01"), "default: the day after the data ends (2025-06-30 18:00:00)"
    )
    assert jobs.score_date(pd.Timestamp("2025-07-20").date(), end, config)[0] == pd.Timestamp("2025-07-20")
    for far in ("2026-12-01", "2024-01-01"):
        with pytest.raises(ScoringError, match="--force-as-of"):
            jobs.score_date(pd.Timestamp(far).date(), end, config)
        when, how = jobs.score_date(pd.Timestamp(far).date(), end, config, force=True)
        assert when == pd.Timestamp(far) and how.startswith("--as-of, forced")


# ---------------------------------------------------------------------------------------------
# 2. Numbers


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("inf", "column 'reopened_count': not a finite number"),
        ("-Infinity", "column 'reopened_count': not a finite number"),
        ("1e20", "column 'reopened_count': above 1000"),
        ("9223372036854775808", "column 'reopened_count': above 1000"),
        ("-1", "column 'reopened_count': below 0"),
        ("2.5", "column 'reopened_count': not a valid int"),
    ],
)
def test_counts_are_checked_before_the_cast(value: str, reason: str) -> None:
    raw = pd.DataFrame(
        {
            "ticket_id": ["T1", "T2"], "customer_id": ["C1", "C1"],
            "opened_at": ["2024-01-01", "2024-01-02"], "first_response_at": ["", ""],
            "resolved_at": ["", ""], "channel": ["email", "chat"], "reopened_count": ["1", value],
        }
    )
    result = validate_table(raw, TICKETS, "t.csv")
    assert result.rejected["reason"].tolist() == [reason]
    assert result.valid["reopened_count"].tolist() == [1]
    assert result.valid["reopened_count"].dtype == np.int64


@pytest.mark.parametrize("value", ["inf", "1e400", "-inf", "1e16"])
def test_a_non_finite_or_huge_monthly_value_is_set_missing_and_reported(value: str) -> None:
    raw = pd.DataFrame(
        {"customer_id": ["C1", "C2"], "signup_at": ["2024-01-01", "2024-01-01"], "monthly_value": ["10", value]}
    )
    result = validate_table(raw, CUSTOMERS, "c.csv")
    assert len(result.valid) == 2
    assert result.valid["monthly_value"].iloc[0] == 10.0
    assert np.isnan(result.valid["monthly_value"].iloc[1])
    assert result.amended["source_row"].tolist() == [2]
    assert result.amended["reason"].iloc[0].startswith("column 'monthly_value': ")


def test_every_numeric_field_refuses_infinity() -> None:
    raw = pd.DataFrame(
        {"customer_id": ["C1"] * 3, "occurred_at": ["2024-01-01"] * 3, "event_type": ["purchase"] * 3,
         "amount": ["5", "inf", "-1e300"]}
    )
    result = validate_table(raw, EVENTS, "e.csv")
    assert np.isfinite(result.valid["amount"].dropna()).all()
    assert result.amended["reason"].tolist() == [
        "column 'amount': not a finite number (set missing)", "column 'amount': below -1e+15 (set missing)",
    ]


def test_json_outputs_are_always_valid_json(tmp_path: Path) -> None:
    path = write_json(
        {"total": float("inf"), "rows": [1.0, float("nan"), np.float64("-inf"), np.int64(3)], "ok": 2.5},
        tmp_path / "summary.json",
    )

    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} is not JSON")

    assert json.loads(path.read_text(), parse_constant=refuse) == {
        "total": None, "rows": [1.0, None, None, 3], "ok": 2.5,
    }


# ---------------------------------------------------------------------------------------------
# 3. Nothing silently unused


def test_a_misspelled_optional_column_is_an_error_naming_both(clean_world: Path, tmp_path: Path) -> None:
    tickets = _table(clean_world, "tickets").rename(columns={"csat": "cast"})
    spoiled = _copy(clean_world, tmp_path / "w", tickets=tickets)
    with pytest.raises(ContractError, match=r"'cast' looks like 'csat'.*data\.columns\.tickets\.csat: cast"):
        _load(spoiled)
    # Meant so: listed as an extra column, it loads (without csat).
    loaded = _load(spoiled, extra_columns={"tickets": ("cast",)})
    assert loaded.world.tickets["csat"].isna().all()
    # Or mapped: it is the csat column.
    mapped = _load(spoiled, columns={"tickets": {"csat": "cast"}})
    assert mapped.world.tickets["csat"].notna().any()


def test_a_missing_required_column_suggests_the_near_miss(clean_world: Path, tmp_path: Path) -> None:
    events = _table(clean_world, "events").rename(columns={"occurred_at": "occured_at"})
    with pytest.raises(ContractError, match="'occured_at' looks like 'occurred_at'"):
        _load(_copy(clean_world, tmp_path / "w", events=events))


@pytest.mark.parametrize("table", ["tickets", "feedback"])
def test_a_header_only_table_is_reported_in_the_run_summary(
    clean_world: Path, tmp_path: Path, table: str
) -> None:
    spoiled = _copy(clean_world, tmp_path / "w", **{table: _table(clean_world, table).iloc[0:0]})
    loaded = _load(spoiled)
    assert any(f"{table}.csv: the file has no rows" in w for w in loaded.warnings)
    assert f"{table}.csv: the file has no rows" in loaded.summary()
    assert f"nothing of table '{table}' is known for any customer" in loaded.summary()
    with pytest.raises(ContractError, match="warnings_fatal"):
        _load(spoiled, warnings_fatal=True)


def test_integer_ids_written_as_floats_match(clean_world: Path, tmp_path: Path) -> None:
    tables = {name: _table(clean_world, name) for name in ("customers", "events", "tickets", "feedback")}
    number = {c: str(1001 + i) for i, c in enumerate(tables["customers"]["customer_id"])}
    for frame in tables.values():
        frame["customer_id"] = frame["customer_id"].map(number)
    tickets = tables["tickets"]
    tickets["customer_id"] = tickets["customer_id"] + ".0"  # a float column written to CSV
    csv = _copy(clean_world, tmp_path / "csv", **tables)
    loaded = _load(csv)
    assert loaded.n_rejected == 0
    assert len(loaded.world.tickets) == len(tickets)
    assert loaded.world.tickets["customer_id"].iloc[0] == tickets["customer_id"].iloc[0][:-2]

    # Parquet: int64 ids in one file, float64 in another.
    parquet = _copy(clean_world, tmp_path / "parquet")
    (parquet / "customers.csv").unlink()
    (parquet / "tickets.csv").unlink()
    pd.read_csv(csv / "customers.csv").astype({"customer_id": "int64"}).to_parquet(parquet / "customers.parquet")
    ids = pd.read_csv(csv / "tickets.csv", dtype={"ticket_id": str})
    ids.astype({"customer_id": "float64"}).to_parquet(parquet / "tickets.parquet")
    for name in ("events", "feedback"):  # the other tables name customers by the same numbers
        tables[name].to_csv(parquet / f"{name}.csv", index=False)
    loaded = _load(parquet)
    assert loaded.n_rejected == 0
    assert len(loaded.world.tickets) == len(tickets)


@pytest.mark.parametrize("null_like", ["NaN", "null", "None", "N/A", "nan", "NULL"])
def test_null_like_ids_are_rejected(clean_world: Path, tmp_path: Path, null_like: str) -> None:
    customers, tickets = _table(clean_world, "customers"), _table(clean_world, "tickets")
    customers.loc[4, "customer_id"] = null_like
    tickets.loc[2, "customer_id"] = null_like
    tickets.loc[3, "ticket_id"] = null_like
    loaded = _load(_copy(clean_world, tmp_path / "w", customers=customers, tickets=tickets))
    assert _reasons(loaded, "customers") == ["column 'customer_id': a null-like value is not an id"]
    tickets_rejected = loaded.reports["tickets"].rejected.set_index("source_row")["reason"]
    assert tickets_rejected[3] == "column 'customer_id': a null-like value is not an id"
    assert tickets_rejected[4] == "column 'ticket_id': a null-like value is not an id"
    for frame in loaded.world.tables().values():
        assert not frame["customer_id"].astype(str).str.lower().isin({"nan", "null", "none", "n/a"}).any()


def test_day_first_dates_read_one_way_for_every_row(clean_world: Path, tmp_path: Path) -> None:
    events = _table(clean_world, "events")
    stamps = pd.to_datetime(events["occurred_at"])
    events["occurred_at"] = stamps.dt.strftime("%d/%m/%Y")  # 04/03/2024 and 13/03/2024 alike
    loaded = _load(_copy(clean_world, tmp_path / "w", events=events))
    assert loaded.n_rejected == 0
    read = loaded.world.events["occurred_at"]
    assert (read.to_numpy() == stamps.dt.normalize().to_numpy()).all()


@pytest.mark.parametrize(
    ("dates", "problem"),
    [
        (["04/03/2024", "13/03/2024", "03/14/2024"], "mixes day-first"),
        (["04/03/2024", "05/03/2024", "12/11/2024"], "either day or month first"),
    ],
)
def test_ambiguous_or_mixed_date_orders_are_an_error_unless_a_format_is_set(
    clean_world: Path, tmp_path: Path, dates: list[str], problem: str
) -> None:
    events = _table(clean_world, "events").iloc[: len(dates)].assign(occurred_at=dates)
    spoiled = _copy(clean_world, tmp_path / "w", events=events)
    with pytest.raises(ContractError, match=rf"column 'occurred_at' .*{problem}.*date_format"):
        _load(spoiled)
    if problem.startswith("either"):
        loaded = _load(spoiled, read={"events": {"date_format": "%m/%d/%Y"}})
        assert loaded.world.events["occurred_at"].dt.month.tolist() == [4, 5, 12]


def test_more_than_the_quarantine_share_stops_the_run_with_exit_3(clean_world: Path, tmp_path: Path) -> None:
    feedback = _table(clean_world, "feedback")
    feedback.loc[:9, "source"] = "letter"  # 10 of 98 rows: over 5%
    spoiled = _copy(clean_world, tmp_path / "w", feedback=feedback)
    with pytest.raises(ContractError) as caught:
        _load(spoiled)
    message = str(caught.value)
    assert "feedback.csv: 10 of 98 rows (10.2%) quarantined, more than data.max_quarantine_share (5%)" in message
    assert "10 rows column 'source': not one of review, survey, ticket_comment (e.g. rows 1, 2, 3" in message
    assert str(spoiled / "quarantine" / "feedback.csv") in message
    assert len(pd.read_csv(spoiled / "quarantine" / "feedback.csv")) == 10
    assert len(_load(spoiled, max_quarantine_share=0.2).world.feedback) == 88

    config = tmp_path / "train.yaml"
    config.write_text(f"data: {{path: {spoiled}}}\nreports_dir: {tmp_path / 'reports'}\n")
    result = CliRunner().invoke(app, ["train", "-c", str(config), "--quiet"])
    assert result.exit_code == EXIT_DATA
    assert "error: " in result.output and "max_quarantine_share" in result.output


def test_ids_of_another_type_no_longer_quarantine_every_ticket_with_only_a_warning(
    clean_world: Path, tmp_path: Path
) -> None:
    tickets = _table(clean_world, "tickets")
    tickets["customer_id"] = "X" + tickets["customer_id"]  # matches no customer
    with pytest.raises(ContractError, match="unknown customer"):
        _load(_copy(clean_world, tmp_path / "w", tickets=tickets))


def test_a_misspelled_key_under_data_files_is_named(tmp_path: Path) -> None:
    config = tmp_path / "train.yaml"
    config.write_text(f"data:\n  path: {tmp_path}\n  files: {{ticket: zendesk.csv}}\n")
    with pytest.raises(ConfigError, match=r"data\.files\.ticket"):
        load_config(config, TrainConfig)


# ---------------------------------------------------------------------------------------------
# The scoring job on spoiled data (models fitted on a small world; no MLflow store)


def _score_config(data_dir: Path, out: Path) -> ScoreConfig:
    return ScoreConfig(
        data=DataConfig(path=data_dir),
        scoring=ScoringConfig(output_dir=out / "outputs", playbook=REPO / "configs" / "playbook.yaml"),
    )


@pytest.fixture(scope="module")
def scoring_world(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from test_scoring_path import THEME_IDS, _scoring_models

    directory = tmp_path_factory.mktemp("scoring")
    world = generate_world(300, seed=2, start="2024-01-01", end="2025-06-30")
    for name, frame in world.tables().items():
        frame.to_csv(directory / f"{name}.csv", index=False)
    return directory, (_scoring_models(world), THEME_IDS)


@pytest.fixture
def score_spoiled(scoring_world, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Score the scoring world with some tables replaced: ``(tables) -> (outcome, data dir)``."""
    directory, models = scoring_world
    monkeypatch.setattr(jobs, "load_scoring_models", lambda *args, **kwargs: models)
    # No MLflow store here (the models come from the fixture): without this the store check
    # read ./mlflow.db, so the test passed only after another test had created one there.
    monkeypatch.setattr(jobs.tracking, "open_store", lambda *args, **kwargs: None)

    def score(**tables: pd.DataFrame) -> tuple[jobs.ScoreOutcome, Path]:
        spoiled = _copy(directory, tmp_path / "w", **tables)
        return jobs.run_score(_score_config(spoiled, tmp_path)), spoiled

    return score


def test_scoring_prints_its_date_and_ignores_a_2099_event(scoring_world, score_spoiled, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    events = _table(scoring_world[0], "events")
    events.loc[0, "occurred_at"] = "2099-01-01 00:00:00"
    outcome, spoiled = score_spoiled(events=events)
    assert outcome.summary["as_of"] == "2025-07-01"
    assert outcome.summary["as_of_chosen"].startswith("default: the day after the data ends (2025-06-30")
    assert any("after the export time" in w for w in outcome.summary["data_warnings"])
    printed = jobs.format_score_outcome(outcome)
    assert "Scoring date 2025-07-01: default: the day after the data ends" in printed
    with pytest.raises(ScoringError, match="--force-as-of"):
        jobs.run_score(_score_config(spoiled, tmp_path), as_of=pd.Timestamp("2099-01-02").date())


def test_an_infinite_monthly_value_does_not_top_the_list_or_break_the_summary(scoring_world, score_spoiled) -> None:  # type: ignore[no-untyped-def]
    customers = _table(scoring_world[0], "customers")
    active = customers.index[customers["churned_at"] == ""]
    customers.loc[active[0], "monthly_value"] = "inf"
    customers.loc[active[1], "monthly_value"] = "1e400"
    outcome, _ = score_spoiled(customers=customers)
    ranked = outcome.ranked.set_index("customer_id")
    for row in active[:2]:
        customer = customers.loc[row, "customer_id"]
        assert ranked.loc[customer, "rank"] > 1
        assert not np.isinf(ranked.loc[customer, "value_at_risk"])
    assert np.isfinite(outcome.summary["value_at_risk_total"])
    text = outcome.paths["summary"].read_text()
    assert "Infinity" not in text and "NaN" not in text
    json.loads(text)


def test_warnings_fatal_flag_stops_train_and_score_with_exit_3(clean_world: Path, tmp_path: Path) -> None:
    spoiled = _copy(clean_world, tmp_path / "w", tickets=_table(clean_world, "tickets").iloc[0:0])
    config = tmp_path / "run.yaml"
    config.write_text(
        f"data: {{path: {spoiled}}}\nreports_dir: {tmp_path / 'reports'}\n"
        f"tracking: {{tracking_uri: 'sqlite:///{tmp_path / 'm.db'}'}}\n"
    )
    result = CliRunner().invoke(app, ["train", "-c", str(config), "--warnings-fatal", "--quiet"])
    assert result.exit_code == EXIT_DATA
    assert "tickets.csv: the file has no rows" in result.output
    help_text = CliRunner().invoke(app, ["score", "--help"]).output
    assert "--force-as-of" in help_text and "--warnings-fatal" in help_text
