"""The rows behind each reason: ticket ids and feedback ids a support lead can open.

:func:`reason_evidence` is a pure function: the reasons' signal ids and the tables in, one
``reason_i_evidence`` column per reason out, ids joined by ``|``. It reads the tables with the
same point-in-time rules as ``retain.churn.features`` (a window of ``w`` days is
``(as_of - w days, as_of]``, using the longest window; nothing dated after ``as_of`` counts;
ticket facts that exist only once a ticket is answered or resolved count only once that has
happened by ``as_of``):

==========================  =================================================================
signal                      evidence
==========================  =================================================================
repeated_contacts           tickets opened in the window
slow_first_response         tickets opened in the window and answered by ``as_of``, and the
                            tickets still waiting for a first reply at ``as_of``
slow_resolution             tickets opened in the window and resolved by ``as_of``
reopened_tickets            ... resolved by ``as_of`` with ``reopened_count > 0``
escalations                 ... resolved by ``as_of`` and ``escalated``
low_csat                    ... resolved by ``as_of`` with a ``csat`` answer
open_tickets                tickets open at ``as_of``
negative_feedback           feedback in the window (with text scores: p(negative) >= threshold)
theme_<id>                  feedback in the window (with text scores: p(theme) >= threshold)
high_effort                 feedback in the window with a ``ces`` answer
low_nps                     the latest NPS answer on/before ``as_of`` (what ``nps_last`` reads)
==========================  =================================================================

Other signals (tenure, usage, a flat table's column) have no rows behind them: their evidence
is None, as it is where a table is absent or holds no matching row.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

EVIDENCE_SEPARATOR = "|"

TICKET_SIGNALS = (
    "repeated_contacts",
    "slow_first_response",
    "slow_resolution",
    "reopened_tickets",
    "escalations",
    "low_csat",
    "open_tickets",
)
FEEDBACK_SIGNALS = ("negative_feedback", "high_effort", "low_nps")


def reason_evidence(
    reason_signals: pd.DataFrame,
    customer_ids: Sequence[str] | pd.Series,
    as_of: pd.Timestamp | str,
    tickets: pd.DataFrame | None = None,
    feedback: pd.DataFrame | None = None,
    windows_days: Sequence[int] = (30, 90),
    feedback_scores: pd.DataFrame | None = None,
    score_threshold: float = 0.5,
) -> pd.DataFrame:
    """The ticket and feedback ids behind each customer's reasons.

    Parameters
    ----------
    reason_signals:
        ``reason_1_signal..k`` (``reasons.top_reasons``); other columns are ignored.
    customer_ids:
        The customer of each row of ``reason_signals`` (same order).
    as_of:
        The cutoff; rows dated after it are never evidence.
    tickets, feedback:
        The tables (contract columns), or None where the data has no such table.
    windows_days:
        The feature windows; evidence uses the longest, as the phrases do.
    feedback_scores:
        Text scores per ``feedback_id`` (``sentiment_negative``, ``theme_<id>``), or None.
    score_threshold:
        The probability from which a scored feedback row is evidence of negativity or a theme.

    Returns
    -------
    pd.DataFrame
        ``reason_1_evidence..k``, same index as ``reason_signals``: ids joined by ``|`` in the
        order they happened, None where the reason has no rows behind it.
    """
    as_of = pd.Timestamp(as_of)
    window = max(int(w) for w in windows_days)
    start = as_of - pd.Timedelta(days=window)
    customers = pd.Index(pd.Series(customer_ids).astype(str).to_numpy())
    if len(customers) != len(reason_signals):
        raise ValueError(
            f"customer_ids has {len(customers)} entries for {len(reason_signals)} reason rows"
        )
    signal_cols = sorted(
        (c for c in reason_signals.columns if c.startswith("reason_") and c.endswith("_signal")),
        key=lambda c: int(c.split("_")[1]),
    )

    cache: dict[str, pd.Series] = {}

    def ids_for(signal_id: str) -> pd.Series:
        if signal_id not in cache:
            rows = _evidence_rows(
                signal_id, as_of, start, tickets, feedback, feedback_scores, score_threshold
            )
            cache[signal_id] = _joined(*rows) if rows is not None else pd.Series(dtype=object)
        return cache[signal_id]

    out = pd.DataFrame(index=reason_signals.index)
    for column in signal_cols:
        signals = reason_signals[column].to_numpy(dtype=object)
        evidence = np.full(len(signals), None, dtype=object)
        for signal_id in pd.unique(signals[pd.notna(signals)]):
            rows = np.flatnonzero(signals == signal_id)
            joined = ids_for(str(signal_id)).reindex(customers[rows])
            evidence[rows] = [v if isinstance(v, str) else None for v in joined.to_numpy()]
        out[column.removesuffix("_signal") + "_evidence"] = pd.Series(
            evidence, index=out.index, dtype=object
        )
    return out


def _evidence_rows(
    signal_id: str,
    as_of: pd.Timestamp,
    start: pd.Timestamp,
    tickets: pd.DataFrame | None,
    feedback: pd.DataFrame | None,
    feedback_scores: pd.DataFrame | None,
    threshold: float,
) -> tuple[pd.DataFrame, str, str] | None:
    """The rows behind one signal (any customer), with their id and time columns."""
    if signal_id in TICKET_SIGNALS:
        if tickets is None or tickets.empty:
            return None
        return _ticket_rows(signal_id, tickets, as_of, start), "ticket_id", "opened_at"
    if signal_id in FEEDBACK_SIGNALS or signal_id.startswith("theme_"):
        if feedback is None or feedback.empty:
            return None
        rows = _feedback_rows(signal_id, feedback, feedback_scores, as_of, start, threshold)
        return rows, "feedback_id", "created_at"
    return None


def _ticket_rows(
    signal_id: str, tickets: pd.DataFrame, as_of: pd.Timestamp, start: pd.Timestamp
) -> pd.DataFrame:
    opened = pd.to_datetime(tickets["opened_at"])
    first_response = pd.to_datetime(_column(tickets, "first_response_at", pd.NaT))
    resolved_at = pd.to_datetime(_column(tickets, "resolved_at", pd.NaT))
    seen = opened <= as_of
    in_window = seen & (opened > start)
    answered = first_response <= as_of  # NaT compares False
    resolved = resolved_at <= as_of
    is_open = seen & ~resolved
    if signal_id == "repeated_contacts":
        mask = in_window
    elif signal_id == "slow_first_response":
        mask = (in_window & answered) | (is_open & ~answered)
    elif signal_id == "slow_resolution":
        mask = in_window & resolved
    elif signal_id == "reopened_tickets":
        reopened = pd.to_numeric(_column(tickets, "reopened_count", 0), errors="coerce")
        mask = in_window & resolved & (reopened.fillna(0) > 0)
    elif signal_id == "escalations":
        escalated = _column(tickets, "escalated", False).astype("boolean").fillna(False)
        mask = in_window & resolved & escalated.astype(bool)
    elif signal_id == "low_csat":
        csat = pd.to_numeric(_column(tickets, "csat", np.nan), errors="coerce")
        mask = in_window & resolved & csat.notna()
    else:  # open_tickets
        mask = is_open
    return tickets.loc[mask.to_numpy(dtype=bool)]


def _feedback_rows(
    signal_id: str,
    feedback: pd.DataFrame,
    feedback_scores: pd.DataFrame | None,
    as_of: pd.Timestamp,
    start: pd.Timestamp,
    threshold: float,
) -> pd.DataFrame:
    created = pd.to_datetime(feedback["created_at"])
    seen = (created <= as_of).to_numpy(dtype=bool)
    if signal_id == "low_nps":
        nps = pd.to_numeric(_column(feedback, "nps", np.nan), errors="coerce").to_numpy()
        answered = feedback.loc[seen & ~np.isnan(nps)]
        latest = (
            pd.to_datetime(answered["created_at"])
            .groupby(answered["customer_id"].astype(str).to_numpy())
            .transform("max")
        )
        return answered.loc[(pd.to_datetime(answered["created_at"]) == latest).to_numpy()]
    mask = seen & (created > start).to_numpy(dtype=bool)
    if signal_id == "high_effort":
        ces = pd.to_numeric(_column(feedback, "ces", np.nan), errors="coerce")
        return feedback.loc[mask & ces.notna().to_numpy()]
    score_column = "sentiment_negative" if signal_id == "negative_feedback" else signal_id
    if feedback_scores is not None and score_column in feedback_scores.columns:
        scores = feedback_scores.set_index(feedback_scores["feedback_id"].astype(str))[score_column]
        score = scores.reindex(feedback["feedback_id"].astype(str)).to_numpy(dtype="float64")
        mask &= score >= threshold  # NaN (unscored) compares False
    return feedback.loc[mask]


def _column(frame: pd.DataFrame, name: str, default: object) -> pd.Series:
    if name in frame.columns:
        return frame[name]
    return pd.Series(default, index=frame.index)


def _joined(rows: pd.DataFrame, id_column: str, time_column: str) -> pd.Series:
    """Ids per customer, in time order then id order, joined by ``|``."""
    if rows.empty:
        return pd.Series(dtype=object)
    ordered = pd.DataFrame(
        {
            "customer_id": rows["customer_id"].astype(str).to_numpy(),
            "at": pd.to_datetime(rows[time_column]).to_numpy(),
            "id": rows[id_column].astype(str).to_numpy(),
        }
    ).sort_values(["customer_id", "at", "id"], kind="stable")
    return ordered.groupby("customer_id", sort=False)["id"].agg(EVIDENCE_SEPARATOR.join)
