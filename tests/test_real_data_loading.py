"""Loading data shaped like the real public sets, from small files written in ``tmp_path``:
a CDNOW-like whitespace purchase log, ``--until``, absent optional tables, a Telco-like flat
CSV, extra customer attributes and ``$RETAIN_DATA_DIR`` in paths. No real data is read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from retain.churn.features import build_features, extra_attributes
from retain.config import DataConfig, FlatLayout, ReadOptions
from retain.contracts import World
from retain.data import load_flat, load_world

# --- a CDNOW-like purchase log --------------------------------------------------------------

# As in CDNOW_master.txt: a header, leading spaces, runs of spaces, CRLF line ends, ids with
# leading zeros, dates as YYYYMMDD. The last row's date is not a date.
CDNOW = (
    " customer_id  date number_of_cds  dollar_value\r\n"
    " 00001 19970101  1   11.77\r\n"
    " 00002 19970112  1   12.00\r\n"
    " 00002 19970112  5   77.00\r\n"
    " 00003 19970102  2   20.76\r\n"
    " 00003 19970330  2   20.76\r\n"
    " 00003 19970402  2   19.54\r\n"
    " 00003 19971115  5   57.45\r\n"
    " 00004 1997013x  1   10.00\r\n"
)


def _cdnow_config(path: Path) -> DataConfig:
    return DataConfig(
        max_quarantine_share=1.0,
        path=path,
        quarantine_dir=path / "q",
        files={"events": "CDNOW_master.txt"},
        columns={"events": {"occurred_at": "date", "amount": "dollar_value"}},
        constants={"events": {"event_type": "purchase"}},
        read={"events": ReadOptions(date_format="%Y%m%d")},
        customers_from_events=True,
    )


def test_a_whitespace_purchase_log_loads_with_customers_from_events(tmp_path: Path) -> None:
    (tmp_path / "CDNOW_master.txt").write_bytes(CDNOW.encode())
    loaded = load_world(_cdnow_config(tmp_path))
    world = loaded.world
    assert world.tickets is None and world.feedback is None
    events = world.events
    assert events is not None
    assert events["customer_id"].tolist() == ["00001", "00002", "00002", "00003", "00003", "00003", "00003"]
    assert events["occurred_at"].iloc[:2].tolist() == [pd.Timestamp("1997-01-01"), pd.Timestamp("1997-01-12")]
    assert (events["event_type"] == "purchase").all()
    assert events["amount"].tolist() == pytest.approx([11.77, 12.0, 77.0, 20.76, 20.76, 19.54, 57.45])
    customers = world.customers
    assert customers["customer_id"].tolist() == ["00001", "00002", "00003"]  # 00004 had no valid row
    assert customers["signup_at"].tolist() == pd.to_datetime(["1997-01-01", "1997-01-12", "1997-01-02"]).tolist()
    assert customers["churned_at"].isna().all()
    # the bad date is quarantined with its reason, and every note is there
    rejected = loaded.reports["events"].rejected
    assert rejected["reason"].tolist() == ["column 'occurred_at': not a valid timestamp"]
    assert (tmp_path / "q" / "events.csv").exists()
    assert any("customers derived from" in n and "3 customers" in n for n in loaded.notes)
    assert any("no tickets table" in n for n in loaded.notes)


def test_until_drops_later_rows_of_a_purchase_log(tmp_path: Path) -> None:
    (tmp_path / "CDNOW_master.txt").write_bytes(CDNOW.encode())
    until = pd.Timestamp("1997-03-31") + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)
    loaded = load_world(_cdnow_config(tmp_path), until=until)
    events = loaded.world.events
    assert events is not None
    assert events["occurred_at"].max() == pd.Timestamp("1997-03-30")
    assert len(events) == 5
    assert any("2 rows dated after 1997-03-31" in n for n in loaded.notes)


def test_read_options_date_format_decides_ambiguous_dates(tmp_path: Path) -> None:
    """02/03/2024 is 2 March with '%d/%m/%Y'; inferred, it would read as 3 February."""
    (tmp_path / "log.txt").write_text("id\twhen\n7\t02/03/2024\n7\t13/03/2024\n")
    config = DataConfig(
        max_quarantine_share=1.0,
        path=tmp_path,
        files={"events": "log.txt"},
        columns={"events": {"customer_id": "id", "occurred_at": "when"}},
        constants={"events": {"event_type": "visit"}},
        read={"events": ReadOptions(sep="\t", date_format="%d/%m/%Y")},
        customers_from_events=True,
    )
    world = load_world(config, write_quarantine=False).world
    assert world.events is not None
    assert world.events["occurred_at"].tolist() == pd.to_datetime(["2024-03-02", "2024-03-13"]).tolist()
    assert world.customers["signup_at"].tolist() == [pd.Timestamp("2024-03-02")]
    assert world.customers["customer_id"].tolist() == ["7"]


def _write_csv(directory: Path, name: str, frame: pd.DataFrame) -> None:
    frame.to_csv(directory / f"{name}.csv", index=False)


def _tables(directory: Path, with_tickets: bool = True) -> None:
    _write_csv(
        directory,
        "customers",
        pd.DataFrame(
            {
                "customer_id": ["C1", "C2", "C3"],
                "signup_at": ["2024-01-01", "2024-02-01", "2024-07-01"],
                "churned_at": ["", "2024-06-20", ""],
            }
        ),
    )
    _write_csv(
        directory,
        "events",
        pd.DataFrame(
            {
                "customer_id": ["C1", "C1", "C2"],
                "occurred_at": ["2024-05-01", "2024-06-15", "2024-06-16"],
                "event_type": ["login", "login", "usage"],
            }
        ),
    )
    if with_tickets:
        _write_csv(
            directory,
            "tickets",
            pd.DataFrame(
                {
                    "ticket_id": ["T1", "T2", "T3"],
                    "customer_id": ["C1", "C1", "C2"],
                    "opened_at": ["2024-05-01 09:00", "2024-05-20 09:00", "2024-06-10 09:00"],
                    "first_response_at": ["2024-05-01 10:00", "2024-06-05 09:00", "2024-06-12 09:00"],
                    "resolved_at": ["2024-05-02 09:00", "2024-06-20 09:00", ""],
                    "channel": ["email", "chat", "phone"],
                }
            ),
        )


def test_until_drops_later_rows_and_masks_later_stamps(tmp_path: Path) -> None:
    _tables(tmp_path)
    until = pd.Timestamp("2024-06-01")
    loaded = load_world(DataConfig(max_quarantine_share=1.0, path=tmp_path), until=until)
    world = loaded.world
    assert world.events is not None and world.events["occurred_at"].tolist() == [pd.Timestamp("2024-05-01")]
    tickets = world.tickets
    assert tickets is not None
    assert tickets["ticket_id"].tolist() == ["T1", "T2"]  # T3 opened after until
    assert tickets["first_response_at"].tolist()[0] == pd.Timestamp("2024-05-01 10:00")
    assert tickets["resolved_at"].tolist()[0] == pd.Timestamp("2024-05-02 09:00")
    # T2 was answered on 2024-06-05 and resolved 2024-06-20, both after until: open, unanswered
    assert pd.isna(tickets["first_response_at"].iloc[1]) and pd.isna(tickets["resolved_at"].iloc[1])
    assert any("2 rows dated after 2024-06-01" in n and "events" in n for n in loaded.notes)


UNTIL_CUSTOMERS_BUG = (
    "load_world calls _drop_after({'customers': report}, until) on a temporary dict and never "
    "reads it back, so with --until the customers table keeps signups after until and "
    "churned_at dates after until"
)


def test_until_drops_later_customers_and_masks_later_churn_dates(tmp_path: Path) -> None:
    _tables(tmp_path)
    world = load_world(DataConfig(max_quarantine_share=1.0, path=tmp_path), until=pd.Timestamp("2024-06-01")).world
    # C3 signed up after until: not there yet; C2's churn on 2024-06-20 had not happened
    assert world.customers["customer_id"].tolist() == ["C1", "C2"]
    assert world.customers["churned_at"].isna().all()


def test_an_absent_optional_table_leaves_its_family_out(tmp_path: Path) -> None:
    _tables(tmp_path, with_tickets=False)
    world = load_world(DataConfig(max_quarantine_share=1.0, path=tmp_path)).world
    assert world.tickets is None and world.feedback is None
    assert world.events is not None
    table = build_features(world, "2024-06-01", None, [], windows_days=(30,))
    columns = set(table.columns)
    assert {"events_30d", "days_since_last_event"} <= columns
    support = {"tickets_30d", "open_tickets", "awaiting_first_response", "csat_mean_30d"}
    feedback = {"feedback_30d", "rating_mean_30d", "nps_last"}
    assert not columns & (support | feedback)  # left out, not zero-filled

    # with the tickets table, the support family is there
    _tables(tmp_path, with_tickets=True)
    with_tickets = build_features(load_world(DataConfig(max_quarantine_share=1.0, path=tmp_path)).world, "2024-06-01", None, [], (30,))
    assert support <= set(with_tickets.columns)
    assert not set(with_tickets.columns) & feedback


def test_customers_only_world_has_attributes_only() -> None:
    customers = pd.DataFrame(
        {
            "customer_id": ["A", "B"],
            "signup_at": pd.to_datetime(["2024-01-01", "2024-03-01"]),
            "churned_at": pd.to_datetime([None, None]),
        }
    )
    table = build_features(World(customers), "2024-04-01", None, [], horizon_days=30)
    assert list(table.columns) == ["customer_id", "as_of", "tenure_days", "churned"]
    assert table["tenure_days"].tolist() == [91.0, 31.0]


# --- a Telco-like flat CSV -------------------------------------------------------------------

TELCO = (
    "customerID,gender,tenure,Contract,MonthlyCharges,TotalCharges,Churn,Notes\n"
    "0001-A,Female,1,Month-to-month,29.85,29.85,No,x\n"
    "0002-B,Male,34,One year,56.95,1889.5,No,y\n"
    "0003-C,Male,0,Two year,52.55, ,No,z\n"
    "0004-D,Female,2,Month-to-month,70.70,151.65,Yes,w\n"
    "0002-B,Male,5,One year,10.00,50,Yes,dup\n"
    "0005-E,Male,8,Month-to-month,99.65,820.5,,unlabelled\n"
)
TELCO_TEST = (
    "customerID,gender,tenure,Contract,MonthlyCharges,TotalCharges,Churn,Notes\n"
    "0101-X,Female,10,One year,20.00,200,Yes,a\n"
    "0102-Y,Male,20,Two year,30.00,600,No,b\n"
)


def _telco_config(path: Path, test_file: str | None = None) -> DataConfig:
    return DataConfig(
        max_quarantine_share=1.0,
        path=path,
        layout="flat",
        flat=FlatLayout(
            file="telco.csv",
            id_column="customerID",
            label_column="Churn",
            churned_values=("Yes",),
            value_column="MonthlyCharges",
            drop=("Notes",),
            test_file=test_file,
        ),
    )


def test_a_flat_csv_loads_with_labels_blanks_duplicates_and_drops(tmp_path: Path) -> None:
    (tmp_path / "telco.csv").write_text(TELCO)
    flat = load_flat(_telco_config(tmp_path))
    frame = flat.frame
    assert frame["customer_id"].tolist() == ["0001-A", "0002-B", "0003-C", "0004-D", "0005-E"]
    assert frame["churned"].tolist()[:4] == [0.0, 0.0, 0.0, 1.0]
    assert np.isnan(frame["churned"].iloc[4])  # no label: scored, not trained on
    # a blank numeric cell (" ") is missing, and the column is numeric
    assert frame["TotalCharges"].dtype == "float64"
    assert np.isnan(frame["TotalCharges"].iloc[2])
    assert frame["TotalCharges"].iloc[1] == pytest.approx(1889.5)
    assert frame["tenure"].tolist() == [1.0, 34.0, 0.0, 2.0, 8.0]
    assert frame["monthly_value"].tolist() == pytest.approx([29.85, 56.95, 52.55, 70.7, 99.65])
    # the id, the label and dropped columns are never features
    assert "Notes" not in flat.feature_columns
    assert not {"customerID", "Churn", "customer_id", "churned"} & set(flat.feature_columns)
    assert {"gender", "tenure", "Contract", "TotalCharges"} <= set(flat.feature_columns)
    # the duplicate id is quarantined with its row number and reason
    rejected = flat.report.rejected
    assert rejected["reason"].tolist() == ["column 'customerID': duplicate id"]
    assert rejected["source_row"].tolist() == [5]
    written = pd.read_csv(tmp_path / "quarantine" / "customers.csv", dtype=str)
    assert written["Notes"].tolist() == ["dup"]
    assert flat.test is None


def test_a_flat_test_file_is_read_the_same_way(tmp_path: Path) -> None:
    (tmp_path / "telco.csv").write_text(TELCO)
    (tmp_path / "telco_test.csv").write_text(TELCO_TEST)
    flat = load_flat(_telco_config(tmp_path, test_file="telco_test.csv"))
    assert flat.test is not None
    assert flat.test["customer_id"].tolist() == ["0101-X", "0102-Y"]
    assert flat.test["churned"].tolist() == [1.0, 0.0]
    assert set(flat.feature_columns) <= set(flat.test.columns)


def test_a_flat_test_file_missing_a_feature_column_is_an_error(tmp_path: Path) -> None:
    from retain.contracts import ContractError

    (tmp_path / "telco.csv").write_text(TELCO)
    (tmp_path / "telco_test.csv").write_text(TELCO_TEST.replace("gender,", "sex,"))
    with pytest.raises(ContractError, match="gender"):
        load_flat(_telco_config(tmp_path, test_file="telco_test.csv"))


# --- extra customer attributes ---------------------------------------------------------------

AS_OF = pd.Timestamp("2024-06-01")


def _attribute_world(tmp_path: Path) -> World:
    _write_csv(
        tmp_path,
        "customers",
        pd.DataFrame(
            {
                "customer_id": ["A", "B", "C"],
                "signup_at": ["2024-01-01", "2024-01-01", "2024-01-01"],
                "seats": ["3", " ", "12"],  # numeric, one blank
                "industry": ["retail", "media", "retail"],
                "renewed_on": ["2024-05-01", "2024-06-11", ""],  # a date after as_of is no age
            }
        ),
    )
    return load_world(DataConfig(max_quarantine_share=1.0, path=tmp_path)).world


def test_named_attributes_become_features(tmp_path: Path) -> None:
    world = _attribute_world(tmp_path)
    table = build_features(world, AS_OF, None, [], attributes=("seats", "industry", "renewed_on"))
    assert table["seats"].tolist()[0] == 3.0 and np.isnan(table["seats"].iloc[1])
    assert table["seats"].iloc[2] == 12.0
    assert isinstance(table["industry"].dtype, pd.CategoricalDtype)
    assert list(table["industry"].cat.categories) == ["media", "retail"]
    assert table["industry"].tolist() == ["retail", "media", "retail"]
    # a snapshot date can lie after as_of (and whether it is set can tell the outcome): left out
    assert "renewed_on" not in table.columns
    # not named, not a feature
    assert "seats" not in build_features(world, AS_OF, None, []).columns


def test_boolean_attributes_are_numbers() -> None:
    customers = pd.DataFrame(
        {
            "customer_id": ["A", "B"],
            "signup_at": pd.to_datetime(["2024-01-01", "2024-01-01"]),
            "churned_at": pd.to_datetime([None, None]),
            "auto_renew": [True, False],
        }
    )
    table = build_features(World(customers), AS_OF, None, [], attributes=("auto_renew",))
    assert table["auto_renew"].tolist() == [1.0, 0.0]
    assert table["auto_renew"].dtype == "float64"


def test_all_takes_every_extra_column(tmp_path: Path) -> None:
    world = _attribute_world(tmp_path)
    assert extra_attributes(world.customers, "all") == ["seats", "industry", "renewed_on"]
    table = build_features(world, AS_OF, None, [], attributes="all")
    assert {"seats", "industry"} <= set(table.columns)
    assert "renewed_on" not in table.columns  # dates in a snapshot are not features
    assert "churned_at" not in table.columns and "signup_at" not in table.columns


def test_an_unknown_attribute_is_a_clear_error(tmp_path: Path) -> None:
    world = _attribute_world(tmp_path)
    with pytest.raises(KeyError, match=r"\['seat'\] named in features.attributes are not in the table"):
        build_features(world, AS_OF, None, [], attributes=("seat",))
    with pytest.raises(ValueError, match="not attributes"):
        extra_attributes(world.customers, ("churned_at",))
    with pytest.raises(ValueError, match="'everything'"):
        extra_attributes(world.customers, "everything")


# --- $RETAIN_DATA_DIR ------------------------------------------------------------------------


@pytest.mark.parametrize("spelling", ["$RETAIN_DATA_DIR", "${RETAIN_DATA_DIR}"])
def test_retain_data_dir_is_expanded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, spelling: str) -> None:
    monkeypatch.setenv("RETAIN_DATA_DIR", str(tmp_path))
    config = DataConfig(max_quarantine_share=1.0, path=f"{spelling}/cdnow", quarantine_dir=f"{spelling}/q")
    assert config.path == tmp_path / "cdnow"
    assert config.quarantine_dir == tmp_path / "q"


def test_retain_data_dir_defaults_to_the_shared_data(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RETAIN_DATA_DIR", raising=False)
    assert DataConfig(max_quarantine_share=1.0, path="$RETAIN_DATA_DIR/telco").path == Path("../shared/data/telco")


def test_a_config_file_path_is_expanded_and_loads(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "cdnow").mkdir()
    (tmp_path / "cdnow" / "CDNOW_master.txt").write_bytes(CDNOW.encode())
    monkeypatch.setenv("RETAIN_DATA_DIR", str(tmp_path))
    config = _cdnow_config(Path("unused")).model_copy(update={"path": Path("unused")})
    config = DataConfig.model_validate({**config.model_dump(), "path": "$RETAIN_DATA_DIR/cdnow"})
    assert config.path == tmp_path / "cdnow"
    assert len(load_world(config, write_quarantine=False).world.customers) == 3
