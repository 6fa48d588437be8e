"""Leakage audit: hand-checked statistics, planted leaks on synthetic tables, and the real sets."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from retain.churn.audit import (
    AuditFinding,
    AuditResult,
    audit_features,
    outcome_like_name,
    single_feature_separation,
)

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("RETAIN_DATA_DIR", REPO / "../shared/data"))
N_ROWS = 600


@pytest.fixture(scope="module")
def table() -> tuple[pd.DataFrame, np.ndarray]:
    """600 customers, a quarter churned, with one planted leak and several honest columns."""
    rng = np.random.default_rng(7)
    y = (rng.random(N_ROWS) < 0.25).astype(int)
    flips = rng.choice(N_ROWS, size=12, replace=False)  # 2% of rows disagree with the label
    leak = y.copy()
    leak[flips] = 1 - leak[flips]
    signal = y + rng.normal(0.0, 1.0, N_ROWS)
    signal[rng.random(N_ROWS) < 0.1] = np.nan
    X = pd.DataFrame(
        {
            "account_flag": leak,
            "usage_drop": signal,
            "customer_ref": [f"cust-{i:05d}" for i in range(N_ROWS)],
            "row_number": np.arange(N_ROWS),
            "plan": rng.choice(["basic", "pro", "team"], N_ROWS),
            "payment_status": rng.choice(["ok", "late", "failed"], N_ROWS),
        }
    )
    return X, y


# --- the single-feature statistic, by hand ---------------------------------------------------


def test_separation_of_a_hand_checked_numeric_column() -> None:
    y = np.array([0, 0, 1, 1])
    folds = np.array([0, 1, 0, 1])
    # Positives {2, 4} against negatives {1, 3}: 3 of 4 pairs ordered right -> AUC 0.75. Every
    # value is its own category and unseen out of fold, so the encoding adds nothing (0.5).
    assert single_feature_separation(pd.Series([1.0, 3.0, 2.0, 4.0]), y, folds=folds) == 0.75
    # Direction does not matter: the mirror image separates as well.
    assert single_feature_separation(pd.Series([4.0, 2.0, 3.0, 1.0]), y, folds=folds) == 0.75


def test_missing_values_are_a_bin_of_their_own() -> None:
    y = np.array([1, 0, 0, 1])
    folds = np.array([0, 1, 0, 1])
    # Ranked lowest the missing value gives AUC 0.5; ranked highest it puts both churners on top.
    x = pd.Series([np.nan, 1.0, 2.0, 3.0])
    assert single_feature_separation(x, y, folds=folds) == 1.0


def test_an_identifier_does_not_separate_by_memorising() -> None:
    y = np.array([0, 1] * 50)
    folds = np.arange(100) % 5
    ids = pd.Series([f"id{i}" for i in range(100)])
    # Unique values are never seen out of fold: every row gets the prior.
    assert single_feature_separation(ids, y, folds=folds) == 0.5


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Complain", True),
        ("CreditScore", True),
        ("Satisfaction Score", True),
        ("Naive_Bayes_Classifier_Attrition_Flag_Card_Category_1", True),
        ("ExitReason", True),
        ("cancelled_at", True),
        ("account_status", True),
        ("tenure", False),
        ("TotalCharges", False),
        ("Customer service calls", False),
        ("NumOfProducts", False),
    ],
)
def test_outcome_like_names(name: str, expected: bool) -> None:
    assert outcome_like_name(name) is expected


# --- the audit on a synthetic table ------------------------------------------------------------


def test_planted_leak_is_excluded_and_honest_columns_are_not(
    table: tuple[pd.DataFrame, np.ndarray],
) -> None:
    X, y = table
    result = audit_features(X, y)
    assert result.excluded_columns == ["account_flag"]
    (leak,) = [f for f in result.findings if f.column == "account_flag"]
    assert leak.check == "separates_label"
    assert leak.excluded
    assert 0.95 < leak.statistic < 1.0  # 12 flipped rows keep it just short of perfect
    assert "account_flag" in leak.detail and "AUC" in leak.detail
    separation = dict(result.separation)
    assert 0.65 < separation["usage_drop"] < 0.9  # a real, noisy signal
    assert separation["customer_ref"] == 0.5
    assert separation["row_number"] < 0.6


def test_outcome_named_weak_column_is_a_warning_only(
    table: tuple[pd.DataFrame, np.ndarray],
) -> None:
    X, y = table
    result = audit_features(X, y)
    (warning,) = [f for f in result.findings if f.column == "payment_status"]
    assert warning.check == "outcome_name"
    assert not warning.excluded
    assert warning.statistic < 0.9
    assert "payment_status" in warning.detail
    assert [f.column for f in result.warnings] == ["payment_status"]


def test_outcome_named_strong_column_is_excluded_below_the_general_bar() -> None:
    rng = np.random.default_rng(3)
    y = (rng.random(2000) < 0.3).astype(int)
    # Separation about 0.92: too weak for the general bar (0.95), enough for an outcome name.
    score = y * 2.0 + rng.normal(0.0, 1.0, 2000)
    X = pd.DataFrame({"retention_score": score, "engagement": score})
    result = audit_features(X, y)
    assert 0.90 < dict(result.separation)["engagement"] < 0.95
    assert result.excluded_columns == ["retention_score"]
    assert [f.check for f in result.findings] == ["outcome_name"]


def test_free_text_filled_only_for_leavers_is_excluded() -> None:
    rng = np.random.default_rng(5)
    y = (rng.random(500) < 0.2).astype(int)
    # Unique text per leaver, empty for stayers: the missing bin gives the label away even
    # though no single text value is ever seen twice.
    reason = pd.Series([f"note {i}" if churned else None for i, churned in enumerate(y)])
    result = audit_features(pd.DataFrame({"notes": reason}), y)
    assert result.excluded_columns == ["notes"]


def test_keep_reports_but_does_not_exclude(table: tuple[pd.DataFrame, np.ndarray]) -> None:
    X, y = table
    result = audit_features(X, y, keep=["account_flag"])
    assert result.excluded_columns == []
    (leak,) = [f for f in result.findings if f.column == "account_flag"]
    assert not leak.excluded
    assert "kept by config" in leak.detail


def test_keep_with_an_unknown_column_is_an_error(table: tuple[pd.DataFrame, np.ndarray]) -> None:
    X, y = table
    with pytest.raises(ValueError, match="acount_flag"):
        audit_features(X, y, keep=["acount_flag"])


def test_dates_after_the_cutoff_are_excluded() -> None:
    cutoff = pd.Timestamp("2024-06-01")
    y = np.array([0, 1] * 5)
    X = pd.DataFrame(
        {
            "signup_at": pd.date_range("2023-01-01", periods=10, freq="7D"),
            # 3 of 9 known dates fall after the cutoff; exactly at the cutoff is still known.
            "last_contact_at": pd.to_datetime(
                ["2024-05-01", "2024-06-01", "2024-06-02", "2024-07-01", "2024-08-01"]
                + ["2024-01-01"] * 4
                + [None]
            ),
            "closing_date": ["2024-05-30"] * 9 + ["2024-06-15"],  # text that reads as dates
        }
    )
    result = audit_features(X, y, cutoff=cutoff)
    dated = [f for f in result.findings if f.check == "dated_after_cutoff"]
    assert [f.column for f in dated] == ["last_contact_at", "closing_date"]
    assert dated[0].statistic == pytest.approx(3 / 9)
    assert "3 of 9" in dated[0].detail
    assert dated[1].statistic == pytest.approx(1 / 10)
    assert result.excluded_columns == ["last_contact_at", "closing_date"]


def test_time_zones_compare_in_utc() -> None:
    y = np.array([0, 1, 0, 1])
    dates = pd.to_datetime(["2024-05-31 23:00"] * 3 + ["2024-06-01 02:00"]).tz_localize(
        "Europe/Paris"
    )  # 2024-06-01 00:00 Paris is 2024-05-31 22:00 UTC
    X = pd.DataFrame({"updated_at": dates})
    assert audit_features(X, y, cutoff=pd.Timestamp("2024-06-01")).excluded_columns == []
    assert audit_features(X, y, cutoff=pd.Timestamp("2024-05-31 22:30")).excluded_columns == [
        "updated_at"
    ]


def test_train_test_duplicates_are_counted(table: tuple[pd.DataFrame, np.ndarray]) -> None:
    X, y = table
    fresh = X.iloc[:5].assign(usage_drop=[100.0, 101.0, 102.0, 103.0, 104.0])
    test_X = pd.concat([X.iloc[10:17], fresh], ignore_index=True)
    result = audit_features(X, y, test_X=test_X)
    (duplicates,) = [f for f in result.findings if f.check == "train_test_duplicates"]
    assert duplicates.column is None
    assert duplicates.statistic == 7
    assert not duplicates.excluded
    assert "7 of 12 test rows" in duplicates.detail
    assert "train_test_duplicates" not in {
        f.check for f in audit_features(X, y, test_X=fresh).findings
    }


def test_duplicates_match_integers_against_floats() -> None:
    y = np.array([0, 1, 0, 1])
    X = pd.DataFrame({"seats": [1, 2, 3, 4], "plan": ["a", "a", "b", "b"]})
    # A missing value on the test side makes the column float: 2.0 still equals 2.
    test_X = pd.DataFrame({"seats": [2.0, np.nan], "plan": ["a", "a"]})
    (duplicates,) = audit_features(X, y, test_X=test_X).findings
    assert duplicates.statistic == 1


def test_inputs_are_not_modified(table: tuple[pd.DataFrame, np.ndarray]) -> None:
    X, y = table
    X_before, y_before = X.copy(), y.copy()
    audit_features(X, y, test_X=X.iloc[:3], cutoff=pd.Timestamp("2024-01-01"))
    pd.testing.assert_frame_equal(X, X_before)
    np.testing.assert_array_equal(y, y_before)


def test_record_is_json_and_summary_is_readable(table: tuple[pd.DataFrame, np.ndarray]) -> None:
    X, y = table
    result = audit_features(X, y)
    record = json.loads(json.dumps(result.to_dict()))
    assert record["excluded_columns"] == ["account_flag"]
    assert {f["column"] for f in record["findings"]} == {"account_flag", "payment_status"}
    assert set(record["separation"]) == set(X.columns)
    summary = result.summary()
    assert summary.splitlines()[0] == "Leakage audit: 2 finding(s); excluded account_flag."
    assert "[EXCLUDED] 'account_flag'" in summary
    assert "[note] 'payment_status'" in summary
    assert AuditResult(findings=()).summary() == "Leakage audit: no findings."


def test_excluded_columns_lists_each_column_once() -> None:
    findings = (
        AuditFinding("a", "separates_label", "a", 0.99, True),
        AuditFinding("a", "dated_after_cutoff", "a", 0.5, True),
        AuditFinding("b", "outcome_name", "b", 0.6, False),
        AuditFinding(None, "train_test_duplicates", "rows", 3.0, False),
    )
    assert AuditResult(findings=findings).excluded_columns == ["a"]


def test_bad_labels_are_rejected(table: tuple[pd.DataFrame, np.ndarray]) -> None:
    X, y = table
    with pytest.raises(ValueError, match="binary"):
        audit_features(X, y * 2)
    with pytest.raises(ValueError, match="shape"):
        audit_features(X, y[:-1])
    with pytest.raises(ValueError, match="missing"):
        audit_features(X, pd.Series(y, dtype="Int64").where(X["row_number"] > 0))


def test_single_class_label_still_checks_names(table: tuple[pd.DataFrame, np.ndarray]) -> None:
    X, _ = table
    result = audit_features(X, np.zeros(len(X), dtype=int))
    assert result.excluded_columns == []
    assert [f.column for f in result.findings] == ["payment_status"]


def test_mixed_dtypes_with_missing_values() -> None:
    rng = np.random.default_rng(11)
    y = (rng.random(300) < 0.3).astype(int)
    X = pd.DataFrame(
        {
            "active": pd.array(rng.random(300) < 0.5, dtype="boolean"),
            "seats": pd.array(rng.integers(1, 50, 300), dtype="Int64"),
            "segment": pd.Categorical(rng.choice(["a", "b", None], 300)),
            "gap": pd.to_timedelta(rng.integers(0, 90, 300), unit="D"),
        }
    )
    X.loc[::7, ["active", "seats"]] = pd.NA
    result = audit_features(X, y)
    assert result.findings == ()
    assert all(0.5 <= value < 0.7 for _, value in result.separation)


# --- the real sets -------------------------------------------------------------------------------


def _read(relative: str) -> pd.DataFrame:
    path = DATA_DIR / relative
    if not path.exists():
        pytest.skip(f"{path} not found: set RETAIN_DATA_DIR")
    return pd.read_csv(path)


def _outcome(result: AuditResult) -> tuple[set[str], set[str | None]]:
    return set(result.excluded_columns), {f.column for f in result.warnings}


def test_bank_complain_is_caught() -> None:
    frame = _read("bank_churn_records/Customer-Churn-Records.csv")
    X = frame.drop(columns=["RowNumber", "CustomerId", "Surname", "Exited"])
    result = audit_features(X, frame["Exited"].to_numpy())
    # CreditScore and Satisfaction Score are named like outcomes but do not separate: notes only.
    assert _outcome(result) == ({"Complain"}, {"CreditScore", "Satisfaction Score"})
    assert dict(result.separation)["Complain"] > 0.99


def test_bank_identifiers_left_in_do_not_look_like_leaks() -> None:
    frame = _read("bank_churn_records/Customer-Churn-Records.csv")
    result = audit_features(frame.drop(columns=["Exited"]), frame["Exited"].to_numpy())
    assert result.excluded_columns == ["Complain"]
    separation = dict(result.separation)
    assert max(separation[c] for c in ("RowNumber", "CustomerId", "Surname")) < 0.55


def test_credit_card_naive_bayes_columns_are_caught() -> None:
    frame = _read("credit_card_churners/BankChurners.csv")
    y = (frame["Attrition_Flag"] == "Attrited Customer").astype(int).to_numpy()
    X = frame.drop(columns=["CLIENTNUM", "Attrition_Flag"])
    result = audit_features(X, y)
    naive_bayes = {c for c in X.columns if c.startswith("Naive_Bayes_Classifier_")}
    assert len(naive_bayes) == 2
    assert _outcome(result) == (naive_bayes, {"Marital_Status"})
    assert "Total_Trans_Ct" not in result.excluded_columns


def test_telco_has_no_findings() -> None:
    frame = _read("ibm_telco_churn/Telco-Customer-Churn.csv")
    y = (frame["Churn"] == "Yes").astype(int).to_numpy()
    X = frame.drop(columns=["customerID", "Churn"])
    X["TotalCharges"] = pd.to_numeric(X["TotalCharges"].str.strip().replace("", np.nan))
    assert audit_features(X, y).findings == ()


def test_bigml_has_no_findings() -> None:
    frame = _read("telecom_churn_bigml/churn-bigml-80.csv")
    y = frame["Churn"].astype(int).to_numpy()
    result = audit_features(frame.drop(columns=["Churn"]), y)
    assert result.findings == ()


def test_bigml_official_split_has_no_duplicates() -> None:
    train = _read("telecom_churn_bigml/churn-bigml-80.csv")
    test = _read("telecom_churn_bigml/churn-bigml-20.csv")
    result = audit_features(
        train.drop(columns=["Churn"]),
        train["Churn"].astype(int).to_numpy(),
        test_X=test.drop(columns=["Churn"]),
    )
    assert result.findings == ()
