"""``retain.insight.kpis``: service KPIs on tiny tables, every figure worked out by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from retain.insight.kpis import (
    feedback_kpis,
    first_contact_resolved,
    net_promoter_score,
    service_kpis,
    ticket_kpis,
)

T = pd.Timestamp
CUSTOMERS = pd.DataFrame({"customer_id": ["c1", "c2"], "segment": ["smb", "enterprise"]})
TICKETS = pd.DataFrame(
    {
        "ticket_id": ["t1", "t2", "t3", "t4"],
        "customer_id": ["c1", "c1", "c2", "c2"],
        "opened_at": [T("2025-01-05 10:00"), T("2025-01-10 00:00"), T("2025-01-20 00:00"), T("2025-02-03 00:00")],
        # answered after 2 h, 4 h, 10 h; t4 never
        "first_response_at": [T("2025-01-05 12:00"), T("2025-01-10 04:00"), T("2025-01-20 10:00"), pd.NaT],
        # resolved after 24 h, 10 h, 48 h; t4 still open
        "resolved_at": [T("2025-01-06 10:00"), T("2025-01-10 10:00"), T("2025-01-22 00:00"), pd.NaT],
        "channel": ["email", "phone", "email", "email"],
        "reopened_count": [0, 0, 1, 0],
        "csat": [5.0, 3.0, np.nan, np.nan],
    }
)
FEEDBACK = pd.DataFrame(
    {
        "feedback_id": ["f1", "f2", "f3", "f4"],
        "customer_id": ["c1", "c2", "c1", "c2"],
        "created_at": [T("2025-01-03"), T("2025-01-15"), T("2025-01-20"), T("2025-02-02")],
        "source": ["survey", "survey", "app_review", "survey"],
        "nps": [10.0, 6.0, 8.0, np.nan],
        "ces": [2.0, 5.0, np.nan, 7.0],
    }
)


def test_first_contact_resolution_by_hand() -> None:
    # t1: c1 opened t2 four days after t1 was resolved (within 7 days): not resolved at first contact
    # t2: resolved, never reopened, no later ticket: yes; t3: reopened: no; t4: still open: unknown
    fcr = first_contact_resolved(TICKETS, window_days=7)
    assert fcr.iloc[:3].tolist() == [0.0, 1.0, 0.0] and np.isnan(fcr.iloc[3])
    assert first_contact_resolved(TICKETS, window_days=3).iloc[0] == 1.0  # t2 came 4 days later
    # a 30-day window after t2's resolution (10 January) ends after the data (3 February): unknown;
    # t1 had its follow-up and t3 was reopened, whatever comes later
    late = first_contact_resolved(TICKETS, window_days=30)
    assert late.iloc[0] == 0.0 and np.isnan(late.iloc[1]) and late.iloc[2] == 0.0


def test_monthly_ticket_kpis_by_hand() -> None:
    kpis = ticket_kpis(TICKETS, freq="M").set_index("period")
    january = kpis.loc[T("2025-01-01")]
    assert january["group"] == "all" and january["tickets"] == 3
    assert january["first_response_hours_median"] == 4.0
    assert january["first_response_hours_p90"] == pytest.approx(8.8)  # 4 + 0.8 x (10 - 4)
    assert january["resolution_hours_median"] == 24.0
    assert january["first_contact_resolution"] == pytest.approx(1 / 3)
    assert january["csat_mean"] == 4.0 and january["csat_answers"] == 2
    february = kpis.loc[T("2025-02-01")]
    assert february["tickets"] == 1 and february["csat_answers"] == 0
    assert np.isnan(february["first_response_hours_median"]) and np.isnan(february["first_contact_resolution"])


def test_weekly_periods_start_on_monday_and_groups_come_from_the_table_or_the_customers() -> None:
    weekly = ticket_kpis(TICKETS, freq="W")
    # Sunday 5 January belongs to the week of Monday 30 December; Friday 10 January to 6 January's
    assert weekly["period"].tolist()[:2] == [T("2024-12-30"), T("2025-01-06")]
    by_channel = ticket_kpis(TICKETS, freq="M", by="channel")
    january = by_channel.loc[by_channel["period"] == T("2025-01-01")].set_index("group")
    assert january["tickets"].to_dict() == {"email": 2, "phone": 1}
    by_segment = ticket_kpis(TICKETS, CUSTOMERS, freq="M", by="segment")
    january = by_segment.loc[by_segment["period"] == T("2025-01-01")].set_index("group")
    assert january["tickets"].to_dict() == {"enterprise": 1, "smb": 2}
    assert january.loc["smb", "csat_mean"] == 4.0
    with pytest.raises(KeyError, match="plan"):
        ticket_kpis(TICKETS, CUSTOMERS, by="plan")


def test_net_promoter_score_by_hand() -> None:
    assert net_promoter_score(pd.Series([10, 9, 8, 7, 6, 0])) == pytest.approx(100 * (2 / 6 - 2 / 6))
    assert net_promoter_score(pd.Series([10, 10, 3])) == pytest.approx(100 / 3)
    assert np.isnan(net_promoter_score(pd.Series([np.nan])))


def test_feedback_and_service_kpis_by_hand() -> None:
    kpis = feedback_kpis(FEEDBACK, freq="M").set_index("period")
    january = kpis.loc[T("2025-01-01")]
    assert january["feedback"] == 3 and january["nps_answers"] == 3
    assert january["nps"] == pytest.approx(0.0)  # one promoter (10), one detractor (6), one passive (8)
    assert january["ces_mean"] == 3.5 and january["ces_answers"] == 2
    assert np.isnan(kpis.loc[T("2025-02-01"), "nps"]) and kpis.loc[T("2025-02-01"), "ces_mean"] == 7.0
    both = service_kpis(TICKETS, FEEDBACK, CUSTOMERS, freq="M", by="segment").set_index(["period", "group"])
    assert both.loc[(T("2025-01-01"), "enterprise"), "tickets"] == 1
    assert both.loc[(T("2025-01-01"), "enterprise"), "nps"] == pytest.approx(-100.0)  # one answer, a 6
    assert both.loc[(T("2025-01-01"), "smb"), "nps"] == pytest.approx(50.0)  # a 10 and an 8


def test_customer_kpis_by_hand() -> None:
    from retain.insight.kpis import customer_kpis

    customers = pd.DataFrame(
        {
            "customer_id": ["a", "b", "c", "d"],
            "signup_at": [T("2024-12-01"), T("2024-12-15"), T("2024-12-20"), T("2025-01-10")],
            "churned_at": [pd.NaT, T("2025-01-20"), T("2025-02-05"), pd.NaT],
            "segment": ["smb", "smb", "enterprise", "smb"],
        }
    )
    events = pd.DataFrame(
        {
            "customer_id": ["a", "a", "b", "c", "a", "d"],
            "occurred_at": [T("2025-01-02"), T("2025-01-09"), T("2025-01-15"), T("2025-01-18"), T("2025-02-01"), T("2025-02-03")],
            "event_type": ["purchase", "purchase", "purchase", "login", "purchase", "purchase"],
            "amount": [10.0, 30.0, 20.0, np.nan, 40.0, 60.0],
        }
    )
    kpis = customer_kpis(customers, events, freq="M").set_index("period")
    january = kpis.loc[T("2025-01-01")]
    # active on 1 January: a, b, c (d signed up later); b churned in January
    assert (january["active_customers"], january["churned"]) == (3, 1)
    assert january["churn_rate"] == pytest.approx(1 / 3)
    # January purchases: a 10 and 30, b 20 (c's login is no purchase)
    assert (january["purchases"], january["purchasing_customers"]) == (3, 2)
    assert january["average_purchase_value"] == pytest.approx(20.0)
    assert january["purchase_frequency"] == pytest.approx(1.5)
    assert january["repeat_purchase_rate"] == pytest.approx(0.5)  # a bought twice, b once
    assert january["cltv"] == pytest.approx(20.0 * 1.5 * 3)  # lifespan 1 / (1/3) months
    february = kpis.loc[T("2025-02-01")]
    assert (february["active_customers"], february["churned"]) == (3, 1)  # a, c, d; c churned
    assert february["average_purchase_value"] == pytest.approx(50.0)
    by_segment = customer_kpis(customers, events, freq="M", by="segment")
    january = by_segment.loc[by_segment["period"] == T("2025-01-01")].set_index("group")
    assert january.loc["smb", "churn_rate"] == pytest.approx(1 / 2)  # a, b active; b churned
    assert january.loc["enterprise", "churn_rate"] == 0.0 and np.isnan(january.loc["enterprise", "cltv"])
    # Churn in a period that ends after churn_known_until is not known yet: no rate, no CLTV.
    known = customer_kpis(customers, events, freq="M", churn_known_until=T("2025-02-10")).set_index("period")
    assert known.loc[T("2025-01-01"), "churn_rate"] == pytest.approx(1 / 3)
    assert np.isnan(known.loc[T("2025-02-01"), "churn_rate"]) and np.isnan(known.loc[T("2025-02-01"), "cltv"])
    # Who is still active at a period's start is not known either once it starts after churn_known_until
    # (a churn between Jan 31 and Feb 1 would not be seen yet), so February has no count.
    early = customer_kpis(customers, events, freq="M", churn_known_until=T("2025-01-31")).set_index("period")
    assert early.loc[T("2025-01-01"), "active_customers"] == 3
    assert np.isnan(early.loc[T("2025-02-01"), "active_customers"])


def test_theme_kpis_by_hand() -> None:
    from retain.insight.kpis import theme_kpis

    feedback = pd.DataFrame(
        {
            "created_at": [T("2025-01-03"), T("2025-01-15"), T("2025-01-20"), T("2025-02-02")],
            "nps": [10.0, 3.0, np.nan, 9.0],
            "ces": [2.0, 6.0, 4.0, np.nan],
        },
        index=[10, 11, 12, 13],
    )
    scores = pd.DataFrame(
        {
            "sentiment_negative": [0.1, 0.7, 0.6, 0.2],
            "sentiment_neutral": [0.2, 0.2, 0.1, 0.2],
            "sentiment_positive": [0.7, 0.1, 0.3, 0.6],
            "theme_billing": [0.9, 0.8, 0.2, 0.5],  # January: rows 10 and 11; February: row 13 (0.5 counts)
            "theme_bugs": [0.1, 0.0, 0.9, 0.1],  # January: row 12
        },
        index=[13, 12, 11, 10][::-1],  # same labels, aligned by index not position
    )
    kpis = theme_kpis(feedback, scores, ["billing", "bugs"], freq="M").set_index(["period", "theme"])
    billing = kpis.loc[(T("2025-01-01"), "billing")]
    assert billing["mentions"] == 2 and billing["share"] == pytest.approx(2 / 3)
    assert billing["negative_share"] == pytest.approx(0.5)  # row 11 negative, row 10 positive
    assert billing["net_sentiment"] == pytest.approx(((0.7 - 0.1) + (0.1 - 0.7)) / 2)
    assert billing["nps"] == pytest.approx(0.0)  # one promoter (10), one detractor (3)
    assert billing["ces_mean"] == pytest.approx(4.0)
    bugs = kpis.loc[(T("2025-01-01"), "bugs")]
    assert bugs["mentions"] == 1 and bugs["negative_share"] == 1.0 and np.isnan(bugs["nps"])
    assert kpis.loc[(T("2025-02-01"), "billing"), "mentions"] == 1
    assert kpis.loc[(T("2025-02-01"), "bugs"), "mentions"] == 0 and kpis.loc[(T("2025-02-01"), "bugs"), "share"] == 0.0


def test_service_kpis_by_a_column_one_table_has_report_that_table_only() -> None:
    by_channel = service_kpis(TICKETS, FEEDBACK, CUSTOMERS, freq="M", by="channel")
    assert "tickets" in by_channel.columns and "nps" not in by_channel.columns
    assert set(by_channel["group"]) == {"email", "phone"}
    with pytest.raises(KeyError, match="nowhere"):
        service_kpis(TICKETS, FEEDBACK, CUSTOMERS, freq="M", by="nowhere")
