"""A small published list for the serve tests: five customers, hand-checkable, in two runs."""

from __future__ import annotations

import pandas as pd

AS_OF = pd.Timestamp("2025-06-01")


def ranked(as_of: pd.Timestamp, shift: float = 0.0) -> pd.DataFrame:
    rows = [
        # id, p, monthly, tier, reason signal, evidence, action, segment, region, team
        ("c1", 0.90, 100.0, "high", "repeated_contacts", "t1|t2", "call now", "smb", "north", "save-desk"),
        ("c2", 0.80, 50.0, "high", "theme_billing", "f1", "billing review", "enterprise", "south", "billing"),
        ("c3", 0.40, 200.0, "medium", "engagement", None, "check in", "smb", "south", "csm"),
        ("c4", 0.30, 10.0, "low", "theme_billing", "f2", "billing review", "smb", "north", "billing"),
        ("c5", 0.10, 5.0, "low", "engagement", None, "nurture", None, None, None),
    ]
    frame = pd.DataFrame(
        rows,
        columns=["customer_id", "churn_probability", "monthly_value", "risk_tier", "reason_1_signal",
                 "reason_1_evidence", "recommended_action", "segment", "region", "team"],
    )
    frame["churn_probability"] = (frame["churn_probability"] - shift).clip(0, 1)
    frame["value_at_risk"] = frame["churn_probability"] * frame["monthly_value"]
    frame = frame.sort_values("value_at_risk", ascending=False, ignore_index=True)
    frame.insert(0, "rank", range(1, len(frame) + 1))
    frame.insert(1, "as_of", as_of)
    frame["reason_1"] = frame["reason_1_signal"].map(
        {"repeated_contacts": "2 tickets open in the last 90 days",
         "theme_billing": "negative about billing",
         "engagement": "no login for 40 days"}
    )
    return frame


def evidence_rows() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": ["c1", "c1", "c2", "c4"],
            "kind": ["ticket", "ticket", "feedback", "feedback"],
            "evidence_id": ["t1", "t2", "f1", "f2"],
            "occurred_at": pd.to_datetime(["2025-05-01", "2025-05-20", "2025-05-10", "2025-04-01"]),
            "channel": ["email", "phone", "survey", "app_review"],
            "status": ["open", "resolved", None, None],
            "sentiment": [None, None, "negative", "negative"],
            "themes": [None, None, ["billing"], ["billing", "pricing"]],
            "csat": [None, 2.0, None, None],
            "nps": [None] * 4,
            "ces": [None] * 4,
            "rating": [None, None, 1.0, 2.0],
            "text": [None, None, "<script>alert('x')</script> billed twice!", "too expensive"],
        }
    )


def publish_two_runs(engine) -> None:  # type: ignore[no-untyped-def]
    """The list a month ago (probabilities 0.05 lower) and now, the second one current."""
    from retain.serve.runs import publish_run

    publish_run(engine, ranked(AS_OF - pd.Timedelta(days=30), shift=0.05), {"model_versions": {"churn": "1"}},
                evidence_rows())
    publish_run(engine, ranked(AS_OF), {"model_versions": {"churn": "2"}}, evidence_rows())
