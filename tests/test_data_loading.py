from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from retain.config import DataConfig
from retain.contracts import (
    CONTRACTS,
    TICKETS,
    ContractError,
    contracts_markdown,
    join_themes,
    split_themes,
    validate_table,
)
from retain.data import atomic_write, load_world, write_frame

REPO = Path(__file__).resolve().parents[1]


def _write_tables(directory: Path, **overrides: pd.DataFrame) -> None:
    tables = {
        "customers": pd.DataFrame(
            {
                "customer_id": ["C1", "C2", "C3"],
                "signup_at": ["2024-01-01", "2024-02-01", "not a date"],
                "segment": ["smb", "consumer", "smb"],
                "plan": ["basic", "pro", "plus"],
                "region": ["north", "south", "east"],
                "monthly_value": ["10.5", "99", "20"],
                "churned_at": ["", "2024-06-01", ""],
            }
        ),
        "events": pd.DataFrame(
            {
                "customer_id": ["C1", "C2", "C9", "C1"],
                "occurred_at": ["2024-03-01T10:00:00+02:00", "2024-03-02", "2024-03-03", "2024-03-04"],
                "event_type": ["login", "usage", "login", "purchase"],
                "amount": ["", "", "", "12.5"],
            }
        ),
        "tickets": pd.DataFrame(
            {
                "ticket_id": ["T1", "T2"],
                "customer_id": ["C1", "C2"],
                "opened_at": ["2024-03-01 09:00", "2024-03-05 10:00"],
                "first_response_at": ["2024-03-01 12:00", ""],
                "resolved_at": ["2024-03-02 09:00", ""],
                "channel": ["email", "pigeon"],
                "reopened_count": ["0", "1"],
                "csat": ["4", ""],
                "escalated": ["false", "true"],
            }
        ),
        "feedback": pd.DataFrame(
            {
                "feedback_id": ["F1"],
                "customer_id": ["C1"],
                "created_at": ["2024-03-03"],
                "source": ["review"],
                "text": ["Great service"],
            }
        ),
    }
    tables.update(overrides)
    directory.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        frame.to_csv(directory / f"{name}.csv", index=False)


def test_every_row_is_used_or_reported(tmp_path: Path) -> None:
    _write_tables(tmp_path)
    loaded = load_world(DataConfig(max_quarantine_share=1.0, path=tmp_path))
    reports = loaded.reports
    assert len(reports["customers"].valid) == 2
    assert reports["customers"].rejected["reason"].tolist() == ["column 'signup_at': not a valid timestamp"]
    # C9 is not a customer; C3's rows would be rejected the same way
    assert reports["events"].rejected["reason"].tolist() == ["column 'customer_id': unknown customer"]
    assert reports["events"].rejected["source_row"].tolist() == [3]  # the file's third data row
    assert reports["tickets"].rejected["reason"].tolist() == [
        "column 'channel': not one of phone, email, chat, social"
    ]
    for report in reports.values():
        assert report.n_input == {"customers": 3, "events": 4, "tickets": 2, "feedback": 1}[report.table]
    quarantine = pd.read_csv(tmp_path / "quarantine" / "tickets.csv")
    assert quarantine["ticket_id"].tolist() == ["T2"]
    assert "tickets.csv: 1 of 2 rows used" in loaded.summary()


def test_types_follow_the_contract(tmp_path: Path) -> None:
    _write_tables(tmp_path)
    world = load_world(DataConfig(max_quarantine_share=1.0, path=tmp_path)).world
    assert world.events["occurred_at"].dtype == "datetime64[ns]"
    # a time zone is converted to UTC and dropped
    assert world.events["occurred_at"].iloc[0] == pd.Timestamp("2024-03-01 08:00")
    assert world.tickets["escalated"].dtype == bool
    assert world.tickets["reopened_count"].dtype == "int64"
    assert world.customers["monthly_value"].tolist() == [10.5, 99.0]
    assert pd.isna(world.customers["churned_at"].iloc[0])
    # optional columns absent from the file are added empty
    assert world.feedback["nps"].isna().all()


def test_column_mapping_renames_user_columns(tmp_path: Path) -> None:
    feedback = pd.DataFrame(
        {"id": ["F1"], "customer_id": ["C1"], "when": ["2024-03-03"], "source": ["survey"], "comment": ["ok"]}
    )
    _write_tables(tmp_path, feedback=feedback)
    config = DataConfig(
        max_quarantine_share=1.0,
        path=tmp_path,
        columns={"feedback": {"feedback_id": "id", "created_at": "when", "text": "comment"}},
    )
    world = load_world(config).world
    assert world.feedback.loc[0, "text"] == "ok"


def test_missing_required_column_names_file_column_and_rows(tmp_path: Path) -> None:
    tickets = pd.DataFrame({"ticket_id": ["T1", "T2"], "customer_id": ["C1", "C1"]})
    _write_tables(tmp_path, tickets=tickets)
    with pytest.raises(ContractError) as err:
        load_world(DataConfig(max_quarantine_share=1.0, path=tmp_path))
    message = str(err.value)
    assert "tickets.csv" in message and "'opened_at'" in message and "2 rows" in message


def test_mapping_to_a_column_the_file_lacks_is_an_error(tmp_path: Path) -> None:
    _write_tables(tmp_path)
    config = DataConfig(max_quarantine_share=1.0, path=tmp_path, columns={"tickets": {"opened_at": "created"}})
    with pytest.raises(ContractError, match="'created'"):
        load_world(config)


def test_missing_optional_table_is_absent_and_said(tmp_path: Path) -> None:
    _write_tables(tmp_path)
    (tmp_path / "events.csv").unlink()
    loaded = load_world(DataConfig(max_quarantine_share=1.0, path=tmp_path))
    assert loaded.world.events is None
    assert "events" not in loaded.reports
    assert any("no events table" in note for note in loaded.notes)


def test_missing_customers_table_is_an_error(tmp_path: Path) -> None:
    _write_tables(tmp_path)
    (tmp_path / "customers.csv").unlink()
    with pytest.raises(ContractError, match="no file for table 'customers'"):
        load_world(DataConfig(max_quarantine_share=1.0, path=tmp_path))


def test_a_table_named_in_the_config_must_exist(tmp_path: Path) -> None:
    _write_tables(tmp_path)
    with pytest.raises(ContractError, match="named in data.files.tickets"):
        load_world(DataConfig(max_quarantine_share=1.0, path=tmp_path, files={"tickets": "zendesk.csv"}))


def test_a_misspelled_table_under_files_is_a_config_error(tmp_path: Path) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        DataConfig(max_quarantine_share=1.0, path=tmp_path, files={"ticket": "t.csv"})


def test_duplicate_keys_and_out_of_range_values_are_rejected() -> None:
    raw = pd.DataFrame(
        {
            "ticket_id": ["T1", "T1", "T3"],
            "customer_id": ["C1", "C1", "C1"],
            "opened_at": ["2024-01-01"] * 3,
            "first_response_at": [""] * 3,
            "resolved_at": [""] * 3,
            "channel": ["chat"] * 3,
            "csat": ["5", "4", "9"],
            "reopened_count": ["0", "0", "-1"],
        }
    )
    result = validate_table(raw, TICKETS, "t.csv")
    # T3: reopened_count (optional, not nullable) below 0 rejects the row
    assert result.valid["ticket_id"].tolist() == ["T1"]
    assert result.rejected["reason"].tolist() == [
        "column(s) ticket_id: duplicate key",
        "column 'reopened_count': below 0",
    ]
    assert result.rejected["source_row"].tolist() == [2, 3]


def test_an_out_of_range_optional_field_is_set_missing_and_the_row_kept() -> None:
    raw = pd.DataFrame(
        {
            "ticket_id": ["T1", "T2"],
            "customer_id": ["C1", "C1"],
            "opened_at": ["2024-01-01"] * 2,
            "first_response_at": [""] * 2,
            "resolved_at": [""] * 2,
            "channel": ["chat"] * 2,
            "csat": ["5", "9"],
        }
    )
    result = validate_table(raw, TICKETS, "t.csv")
    assert result.valid["ticket_id"].tolist() == ["T1", "T2"]
    assert result.valid["csat"].isna().tolist() == [False, True]
    assert result.amended["reason"].tolist() == ["column 'csat': above 5 (set missing)"]
    assert result.amended["source_row"].tolist() == [2]
    quarantine = result.quarantine()
    assert quarantine["action"].tolist() == ["field set missing, row kept"]


def test_rating_scale_is_a_setting_and_ratings_are_normalised(tmp_path: Path) -> None:
    feedback = pd.DataFrame(
        {
            "feedback_id": ["F1", "F2", "F3"],
            "customer_id": ["C1", "C1", "C1"],
            "created_at": ["2024-03-03"] * 3,
            "source": ["review"] * 3,
            "text": ["ok", "great", "bad"],
            "rating": ["1", "10", "11"],
        }
    )
    _write_tables(tmp_path, feedback=feedback)
    loaded = load_world(DataConfig(max_quarantine_share=1.0, path=tmp_path, rating_scale=(1, 10)))
    valid = loaded.world.feedback
    assert valid["feedback_id"].tolist() == ["F1", "F2", "F3"]  # no review lost for a rating
    assert valid["rating"].tolist()[:2] == [0.0, 1.0]
    assert pd.isna(valid["rating"].iloc[2])
    written = pd.read_csv(tmp_path / "quarantine" / "feedback.csv")
    assert written["reason"].tolist() == ["column 'rating': above 10 (set missing)"]
    assert written["source_row"].tolist() == [3]


def test_atomic_write_keeps_the_previous_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "list.csv"
    write_frame(pd.DataFrame({"a": [1]}), target)

    def crash(path: Path) -> None:
        path.write_text("half written")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        atomic_write(target, crash)
    assert pd.read_csv(target)["a"].tolist() == [1]
    assert [p.name for p in tmp_path.iterdir()] == ["list.csv"]


def test_themes_round_trip() -> None:
    column = pd.Series(["billing|pricing", "", None])
    assert split_themes(column) == [["billing", "pricing"], [], []]
    assert join_themes([["billing", "pricing"], []]) == ["billing|pricing", ""]


def test_data_contracts_doc_is_current() -> None:
    assert (REPO / "docs" / "data_contracts.md").read_text() == contracts_markdown(), (
        "regenerate docs/data_contracts.md from retain.contracts.contracts_markdown()"
    )
    assert set(CONTRACTS) == {"customers", "events", "tickets", "feedback"}


@pytest.mark.parametrize(("group", "mode"), [("", 0o600), ("1", 0o640)])
def test_outputs_are_private_whatever_the_umask(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, group: str, mode: int
) -> None:
    import os
    import stat

    monkeypatch.setenv("RETAIN_GROUP_READABLE", group)
    umask = os.umask(0o000)
    try:
        path = write_frame(pd.DataFrame({"a": [1]}), tmp_path / "out.csv")
    finally:
        os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == mode


def test_a_usable_row_is_not_rejected_as_a_duplicate_of_an_unusable_one() -> None:
    raw = pd.DataFrame(
        {
            "ticket_id": ["T1", "T1", "T2", "T2"],
            "customer_id": ["C1", "C1", "C1", "C1"],
            "opened_at": ["not a date", "2024-01-02", "2024-01-03", "2024-01-04"],
            "first_response_at": [""] * 4,
            "resolved_at": [""] * 4,
            "channel": ["chat"] * 4,
        }
    )
    result = validate_table(raw, TICKETS, "t.csv")
    assert result.valid["ticket_id"].tolist() == ["T1", "T2"]
    assert result.valid["opened_at"].tolist() == [pd.Timestamp("2024-01-02"), pd.Timestamp("2024-01-03")]
    assert result.rejected["reason"].tolist() == [
        "column 'opened_at': not a valid timestamp",
        "column(s) ticket_id: duplicate key",
    ]
    assert result.rejected["source_row"].tolist() == [1, 4]


def test_csv_keeps_labelled_feedback_with_no_theme(tmp_path: Path) -> None:
    """In CSV '' and missing are both an empty cell; a labelled row's empty themes means no theme."""
    feedback = pd.DataFrame(
        {
            "feedback_id": ["F1", "F2", "F3"],
            "customer_id": ["C1", "C1", "C2"],
            "created_at": ["2024-03-03"] * 3,
            "source": ["review"] * 3,
            "text": ["Double charged again", "Great service", "fine"],
            "sentiment": ["negative", "positive", ""],
            "themes": ["billing", "", ""],
        }
    )
    _write_tables(tmp_path, feedback=feedback)
    themes = load_world(DataConfig(max_quarantine_share=1.0, path=tmp_path)).world.feedback["themes"]
    assert themes.iloc[0] == "billing"
    assert themes.iloc[1] == "", "labelled with no theme, not unlabelled"
    assert pd.isna(themes.iloc[2]), "no labels at all stays unlabelled"


def test_csv_themes_column_with_no_label_at_all_stays_unlabelled(tmp_path: Path) -> None:
    feedback = pd.DataFrame(
        {
            "feedback_id": ["F1"], "customer_id": ["C1"], "created_at": ["2024-03-03"],
            "source": ["review"], "text": ["ok"], "sentiment": ["neutral"], "themes": [""],
        }
    )
    _write_tables(tmp_path, feedback=feedback)
    assert load_world(DataConfig(max_quarantine_share=1.0, path=tmp_path)).world.feedback["themes"].isna().all()


def test_a_world_written_as_csv_reads_back_with_the_same_labels(tmp_path: Path) -> None:
    from retain.data import write_world
    from retain.synth import generate_world

    world = generate_world(60, seed=0, start="2024-01-01", end="2024-06-30")
    assert (world.feedback["themes"] == "").any()
    write_world(world, tmp_path, file_format="csv")
    loaded = load_world(DataConfig(max_quarantine_share=1.0, path=tmp_path)).world
    pd.testing.assert_series_equal(
        loaded.feedback["themes"].fillna("<missing>").reset_index(drop=True),
        world.feedback["themes"].astype(object).fillna("<missing>").reset_index(drop=True),
        check_dtype=False,
    )


def test_quarantine_files_describe_the_latest_load_only(tmp_path: Path) -> None:
    _write_tables(tmp_path)
    load_world(DataConfig(max_quarantine_share=1.0, path=tmp_path))
    assert (tmp_path / "quarantine" / "tickets.csv").exists()
    fixed = pd.read_csv(tmp_path / "tickets.csv", dtype=str).assign(channel="email")
    fixed.to_csv(tmp_path / "tickets.csv", index=False)
    load_world(DataConfig(max_quarantine_share=1.0, path=tmp_path))
    assert not (tmp_path / "quarantine" / "tickets.csv").exists()
    assert (tmp_path / "quarantine" / "customers.csv").exists()  # still has a bad row
