"""evidence_records: the tickets and feedback behind a ranked list's reasons, as rows to publish."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from retain.churn.evidence import EVIDENCE_RECORD_COLUMNS, evidence_kind, evidence_records

AS_OF = pd.Timestamp("2025-06-01")
T = pd.Timestamp


@pytest.fixture
def tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    tickets = pd.DataFrame(
        {
            "ticket_id": ["T1", "T2", "T3", "T9"],
            "customer_id": ["C1", "C1", "C2", "C2"],
            "opened_at": [T("2025-05-01"), T("2025-05-20"), T("2025-05-30"), T("2025-05-02")],
            "first_response_at": [T("2025-05-01 04:00"), T("2025-05-21"), pd.NaT, T("2025-05-03")],
            # T2 is resolved (with its CSAT) only after as_of: open, no CSAT yet
            "resolved_at": [T("2025-05-03"), T("2025-06-10"), pd.NaT, T("2025-05-04")],
            "channel": pd.Categorical(["email", "phone", "chat", "chat"]),
            "csat": [2.0, 5.0, np.nan, 4.0],
        }
    )
    feedback = pd.DataFrame(
        {
            "feedback_id": ["F1", "F2", "F3"],
            "customer_id": ["C1", "C2", "C2"],
            "created_at": [T("2025-05-10"), T("2025-05-11"), T("2025-05-12")],
            "source": ["survey", "review", "review"],
            "text": ["billing is a mess", "slow app", "fine"],
            "nps": [2.0, np.nan, np.nan],
            "sentiment": ["negative", None, "positive"],
            "themes": ["billing|pricing", None, ""],
        }
    )
    return tickets, feedback


def ranked() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": ["C2", "C1"],
            "reason_1_signal": ["open_tickets", "repeated_contacts"],
            "reason_1_evidence": ["T3", "T1|T2"],
            "reason_2_signal": ["negative_feedback", "low_nps"],
            "reason_2_evidence": ["F2|F3", "F1"],
            "reason_3_signal": ["tenure", "slow_first_response"],
            "reason_3_evidence": [None, "T2"],  # T2 named twice for C1: one record
        }
    )


def test_records_carry_the_state_at_as_of_and_the_feedback_labels(tables: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    tickets, feedback = tables
    out = evidence_records(ranked(), AS_OF, tickets, feedback)
    assert list(out.columns) == list(EVIDENCE_RECORD_COLUMNS)
    assert list(zip(out["customer_id"], out["kind"], out["evidence_id"], strict=True)) == [
        ("C1", "ticket", "T1"), ("C1", "feedback", "F1"), ("C1", "ticket", "T2"),
        ("C2", "feedback", "F2"), ("C2", "feedback", "F3"), ("C2", "ticket", "T3"),
    ]
    by_id = out.set_index("evidence_id")
    assert by_id.loc["T1", "status"] == "resolved" and by_id.loc["T1", "csat"] == 2.0
    assert by_id.loc["T2", "status"] == "open" and np.isnan(by_id.loc["T2", "csat"])
    assert by_id.loc["T3", "status"] == "awaiting first response"
    assert by_id.loc["T1", "channel"] == "email" and by_id.loc["T1", "occurred_at"] == T("2025-05-01")
    assert by_id.loc["F1", "themes"] == ["billing", "pricing"] and by_id.loc["F1", "sentiment"] == "negative"
    assert by_id.loc["F1", "nps"] == 2.0 and by_id.loc["F1", "text"] == "billing is a mess"
    assert by_id.loc["F1", "channel"] == "survey" and by_id.loc["F1", "status"] is None
    assert by_id.loc["F2", "themes"] is None and by_id.loc["F2", "sentiment"] is None  # unlabelled
    assert by_id.loc["F3", "themes"] == []  # labelled: no theme
    assert by_id.loc["T1", "text"] is None and by_id.loc["T1", "themes"] is None
    assert "T9" not in by_id.index  # not behind any reason


def test_text_scores_give_sentiment_and_themes(tables: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    _, feedback = tables
    scores = pd.DataFrame(
        {
            "feedback_id": ["F1", "F2", "F3"],
            "sentiment_negative": [0.7, 0.2, np.nan],
            "sentiment_neutral": [0.2, 0.3, np.nan],
            "sentiment_positive": [0.1, 0.5, np.nan],
            "theme_billing": [0.9, 0.1, np.nan],
            "theme_app": [0.2, 0.6, np.nan],
        }
    )
    out = evidence_records(
        ranked(), AS_OF, None, feedback, feedback_scores=scores, theme_ids=["billing", "app"]
    ).set_index("evidence_id")
    assert list(out.index) == ["F1", "F2", "F3"]  # no tickets table: feedback only
    assert out.loc["F1", "sentiment"] == "negative" and out.loc["F1", "themes"] == ["billing"]
    assert out.loc["F2", "sentiment"] == "positive" and out.loc["F2", "themes"] == ["app"]
    assert out.loc["F3", "sentiment"] is None and out.loc["F3", "themes"] is None  # unscored


def test_no_tables_or_no_evidence_gives_an_empty_frame() -> None:
    out = evidence_records(ranked(), AS_OF)
    assert out.empty and list(out.columns) == list(EVIDENCE_RECORD_COLUMNS)


def test_evidence_kind_names_the_table_of_each_signal() -> None:
    assert evidence_kind("open_tickets") == "ticket"
    assert evidence_kind("theme_billing") == "feedback" and evidence_kind("low_nps") == "feedback"
    assert evidence_kind("tenure_days") is None
