"""Every input row is used or quarantined, when a table has both contract rejections and rows
of unknown customers (the two are rejected at different stages of ``load_world``)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from retain.config import DataConfig
from retain.data import load_world

UNKNOWN = "column 'customer_id': unknown customer"


def _write(directory: Path, name: str, rows: list[dict[str, str]]) -> int:
    pd.DataFrame(rows).to_csv(directory / f"{name}.csv", index=False)
    return len(rows)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """Customers C1, C2 valid; C3 rejected by the contract (bad signup date), so its rows in the
    other tables are rows of an unknown customer, like those of the never-seen X9."""
    customer = {"segment": "smb", "plan": "pro", "region": "eu", "monthly_value": "10"}
    _write(
        tmp_path,
        "customers",
        [
            {"customer_id": "C1", "signup_at": "2024-01-01", **customer},
            {"customer_id": "C2", "signup_at": "2024-02-01", **customer},
            {"customer_id": "C3", "signup_at": "not a date", **customer},
        ],
    )
    _write(
        tmp_path,
        "events",
        [
            {"customer_id": "C1", "occurred_at": "2024-03-01", "event_type": "login"},  # 1 ok
            {"customer_id": "X9", "occurred_at": "2024-03-02", "event_type": "login"},  # 2 unknown
            {"customer_id": "C2", "occurred_at": "yesterday", "event_type": "login"},  # 3 contract
            {"customer_id": "C3", "occurred_at": "2024-03-03", "event_type": "usage"},  # 4 unknown
            {"customer_id": "C2", "occurred_at": "2024-03-04", "event_type": "purchase"},  # 5 ok
            {"customer_id": "X9", "occurred_at": "never", "event_type": "login"},  # 6 contract
            {"customer_id": "", "occurred_at": "2024-03-05", "event_type": "login"},  # 7 contract
        ],
    )
    ticket = {"first_response_at": "", "resolved_at": "", "channel": "email"}
    _write(
        tmp_path,
        "tickets",
        [
            {"ticket_id": "T1", "customer_id": "C1", "opened_at": "2024-03-01", **ticket},  # ok
            {"ticket_id": "T2", "customer_id": "C3", "opened_at": "2024-03-01", **ticket},  # unknown
            {"ticket_id": "T3", "customer_id": "C2", "opened_at": "2024-03-01",
             **ticket, "channel": "pigeon"},  # contract
            {"ticket_id": "T1", "customer_id": "C2", "opened_at": "2024-03-02", **ticket},  # dup key
            {"ticket_id": "T5", "customer_id": "X9", "opened_at": "2024-03-02", **ticket},  # unknown
        ],
    )
    _write(
        tmp_path,
        "feedback",
        [
            {"feedback_id": "F1", "customer_id": "X9", "created_at": "2024-03-01",
             "source": "review", "text": "hello"},  # unknown
            {"feedback_id": "F2", "customer_id": "C1", "created_at": "2024-03-01",
             "source": "letter", "text": "hi"},  # contract
            {"feedback_id": "F3", "customer_id": "C2", "created_at": "2024-03-01",
             "source": "survey", "text": "fine"},  # ok
        ],
    )
    return tmp_path


EXPECTED = {
    # table: (input rows, valid source rows, {source_row: unknown customer?})
    "customers": (3, [1, 2], {3: False}),
    "events": (7, [1, 5], {2: True, 3: False, 4: True, 6: False, 7: False}),
    "tickets": (5, [1], {2: True, 3: False, 4: False, 5: True}),
    "feedback": (3, [3], {1: True, 2: False}),
}


@pytest.mark.parametrize("table", list(EXPECTED))
def test_every_input_row_is_valid_or_quarantined_with_its_row_and_reason(
    data_dir: Path, table: str
) -> None:
    loaded = load_world(DataConfig(max_quarantine_share=1.0, path=data_dir))
    n_input, valid_rows, rejected = EXPECTED[table]
    quarantine = pd.read_csv(data_dir / "quarantine" / f"{table}.csv", dtype={"reason": str})

    valid = loaded.world.tables()[table]
    assert len(valid) + len(quarantine) == n_input
    assert len(valid) == len(valid_rows)
    assert sorted(quarantine["source_row"].tolist()) == sorted(rejected)
    # each input row exactly once: valid rows and quarantined rows partition 1..n
    assert sorted(valid_rows + quarantine["source_row"].tolist()) == list(range(1, n_input + 1))
    assert quarantine["reason"].notna().all() and (quarantine["reason"].str.len() > 0).all()
    for _, row in quarantine.iterrows():
        is_unknown = row["reason"] == UNKNOWN
        assert is_unknown == rejected[row["source_row"]], (row["source_row"], row["reason"])

    report = loaded.reports[table]
    assert report.n_input == n_input
    assert len(report.rejected) == len(quarantine)


def test_quarantine_file_holds_both_kinds_of_rejection(data_dir: Path) -> None:
    load_world(DataConfig(max_quarantine_share=1.0, path=data_dir))
    events = pd.read_csv(data_dir / "quarantine" / "events.csv", dtype=str)
    reasons = dict(zip(events["source_row"].astype(int), events["reason"], strict=True))
    assert reasons == {
        2: UNKNOWN,
        3: "column 'occurred_at': not a valid timestamp",
        4: UNKNOWN,
        6: "column 'occurred_at': not a valid timestamp",
        7: "column 'customer_id': missing value",
    }
    # the quarantined rows keep what the user sent, so they can be fixed and re-sent
    assert events.set_index(events["source_row"].astype(int)).loc[3, "occurred_at"] == "yesterday"
    assert events.set_index(events["source_row"].astype(int)).loc[4, "customer_id"] == "C3"


def test_world_holds_only_rows_of_known_customers(data_dir: Path) -> None:
    world = load_world(DataConfig(max_quarantine_share=1.0, path=data_dir)).world
    assert world.customers["customer_id"].tolist() == ["C1", "C2"]
    assert world.events["customer_id"].tolist() == ["C1", "C2"]
    assert world.tickets["ticket_id"].tolist() == ["T1"]
    assert world.feedback["feedback_id"].tolist() == ["F3"]
