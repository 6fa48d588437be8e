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

:func:`evidence_records` turns the ids of a ranked list back into the rows a lead reads (date,
channel or source, the ticket's state at ``as_of``, survey answers, sentiment and themes, the
feedback text), so the list can be published with its evidence.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from retain.contracts import split_themes

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
EVIDENCE_RECORD_COLUMNS = (
    "customer_id", "kind", "evidence_id", "occurred_at", "channel", "status", "sentiment",
    "themes", "csat", "nps", "ces", "rating", "text",
)


def evidence_kind(signal_id: str) -> str | None:
    """``ticket`` or ``feedback``: the table a signal's evidence ids come from (None: no rows)."""
    if signal_id in TICKET_SIGNALS:
        return "ticket"
    if signal_id in FEEDBACK_SIGNALS or signal_id.startswith("theme_"):
        return "feedback"
    return None


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


def evidence_records(
    ranked: pd.DataFrame,
    as_of: pd.Timestamp | str,
    tickets: pd.DataFrame | None = None,
    feedback: pd.DataFrame | None = None,
    feedback_scores: pd.DataFrame | None = None,
    theme_ids: Sequence[str] = (),
    score_threshold: float = 0.5,
) -> pd.DataFrame:
    """The tickets and feedback behind a ranked list's reasons, one row per (customer, kind, id).

    Parameters
    ----------
    ranked:
        ``customer_id`` and ``reason_i_signal`` / ``reason_i_evidence`` columns
        (:func:`reason_evidence`); the signal says which table the ids come from.
    as_of:
        The list's cutoff: a ticket's ``status`` and ``csat`` are read as they stood then.
    tickets, feedback:
        The tables (contract columns), or None.
    feedback_scores:
        Text scores (``text.scoring.score_feedback``) of at least the evidence feedback: its
        ``sentiment`` is the most probable of ``sentiment_*``, its ``themes`` the ids whose
        ``theme_<id>`` reaches ``score_threshold``. Without scores the feedback's own
        ``sentiment`` and ``themes`` columns are used where the table has them.
    theme_ids:
        The taxonomy's theme ids (which ``theme_<id>`` columns to read).

    Returns
    -------
    pd.DataFrame
        ``EVIDENCE_RECORD_COLUMNS``: ``kind`` is ``ticket`` or ``feedback``; ``occurred_at`` is
        when the ticket was opened or the feedback written; ``channel`` the ticket's channel or
        the feedback's source; ``status`` (tickets) ``resolved``, ``open`` or ``awaiting first
        response`` at ``as_of``; ``themes`` a list of theme ids or None; ``text`` the feedback
        text. Ordered by customer, then time. An id no longer in its table is left out.
    """
    as_of = pd.Timestamp(as_of)
    wanted = _evidence_ids(ranked)
    parts = []
    if tickets is not None and not wanted["ticket"].empty:
        parts.append(_ticket_records(wanted["ticket"], tickets, as_of))
    if feedback is not None and not wanted["feedback"].empty:
        parts.append(
            _feedback_records(wanted["feedback"], feedback, feedback_scores, theme_ids, score_threshold)
        )
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in EVIDENCE_RECORD_COLUMNS})
    records = pd.concat(parts, ignore_index=True)
    for column in ("channel", "status", "sentiment", "themes", "text"):
        # Missing is None in the text columns, whatever concat made of an all-None part.
        records[column] = records[column].astype(object).where(records[column].notna(), None)
    records = records.sort_values(["customer_id", "occurred_at", "kind", "evidence_id"], kind="stable")
    return records.reset_index(drop=True)[list(EVIDENCE_RECORD_COLUMNS)]


def _evidence_ids(ranked: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Per kind, the distinct (customer_id, evidence_id) pairs the reasons name."""
    found: dict[str, list[tuple[str, str]]] = {"ticket": [], "feedback": []}
    customers = ranked["customer_id"].astype(str).to_numpy()
    for column in ranked.columns:
        if not (column.startswith("reason_") and column.endswith("_signal")):
            continue
        ids_column = column.removesuffix("_signal") + "_evidence"
        if ids_column not in ranked.columns:
            continue
        for customer, signal, ids in zip(
            customers, ranked[column].to_numpy(dtype=object), ranked[ids_column].to_numpy(dtype=object),
            strict=True,
        ):
            kind = evidence_kind(signal) if isinstance(signal, str) else None
            if kind is not None and isinstance(ids, str) and ids:
                found[kind].extend((customer, i) for i in ids.split(EVIDENCE_SEPARATOR))
    return {
        kind: pd.DataFrame(pairs, columns=["customer_id", "evidence_id"]).drop_duplicates()
        for kind, pairs in found.items()
    }


def _matched(wanted: pd.DataFrame, table: pd.DataFrame, id_column: str) -> pd.DataFrame:
    keyed = table.assign(
        customer_id=table["customer_id"].astype(str), evidence_id=table[id_column].astype(str)
    )
    return wanted.merge(keyed, on=["customer_id", "evidence_id"], how="inner")


def _ticket_records(wanted: pd.DataFrame, tickets: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    rows = _matched(wanted, tickets, "ticket_id")
    answered = pd.to_datetime(_column(rows, "first_response_at", pd.NaT)) <= as_of
    resolved = pd.to_datetime(_column(rows, "resolved_at", pd.NaT)) <= as_of
    status = np.where(resolved, "resolved", np.where(answered, "open", "awaiting first response"))
    # A CSAT answer arrives with the resolution: unknown at as_of before that.
    csat = pd.to_numeric(_column(rows, "csat", np.nan), errors="coerce").where(resolved)
    return _records(
        rows, "ticket", rows["opened_at"], channel=_column(rows, "channel", None), status=status,
        csat=csat,
    )


def _feedback_records(
    wanted: pd.DataFrame,
    feedback: pd.DataFrame,
    scores: pd.DataFrame | None,
    theme_ids: Sequence[str],
    threshold: float,
) -> pd.DataFrame:
    rows = _matched(wanted, feedback, "feedback_id")
    sentiment = _column(rows, "sentiment", None).astype(object).to_numpy()
    labelled = _column(rows, "themes", None).astype(object)
    # A label column: '' is "no theme" ([]), a missing cell "not labelled" (None).
    themes = [
        found if isinstance(raw, str) else None
        for raw, found in zip(labelled, split_themes(labelled), strict=True)
    ]
    if scores is not None:
        scored = scores.set_index(scores["feedback_id"].astype(str)).reindex(rows["evidence_id"])
        sentiment_columns = [c for c in scored.columns if c.startswith("sentiment_")]
        probabilities = scored[sentiment_columns].to_numpy(dtype="float64")
        if sentiment_columns:
            known = ~np.isnan(probabilities).all(axis=1)
            best = np.nanargmax(np.where(np.isnan(probabilities), -1.0, probabilities), axis=1)
            labels = np.array([c.removeprefix("sentiment_") for c in sentiment_columns], dtype=object)
            sentiment = np.where(known, labels[best], None)
        theme_columns = [f"theme_{t}" for t in theme_ids if f"theme_{t}" in scored.columns]
        if theme_columns:
            passed = scored[theme_columns].to_numpy(dtype="float64") >= threshold
            known = ~np.isnan(scored[theme_columns].to_numpy(dtype="float64")).all(axis=1)
            names = [c.removeprefix("theme_") for c in theme_columns]
            themes = [
                [n for n, hit in zip(names, hits, strict=True) if hit] if ok else None
                for hits, ok in zip(passed, known, strict=True)
            ]
    return _records(
        rows, "feedback", rows["created_at"], channel=_column(rows, "source", None),
        sentiment=sentiment, themes=pd.Series(themes, index=rows.index, dtype=object),
        **{n: pd.to_numeric(_column(rows, n, np.nan), errors="coerce") for n in ("nps", "ces", "rating")},
        text=_column(rows, "text", None),
    )


def _records(
    rows: pd.DataFrame, kind: str, occurred_at: pd.Series, **fields: pd.Series | np.ndarray
) -> pd.DataFrame:
    """Evidence records of one kind: ``fields`` given, the other columns missing."""
    numeric = ("csat", "nps", "ces", "rating")
    out = pd.DataFrame(
        {
            "customer_id": rows["customer_id"],
            "kind": kind,
            "evidence_id": rows["evidence_id"],
            "occurred_at": pd.to_datetime(occurred_at),
        }
    )
    for column in EVIDENCE_RECORD_COLUMNS[4:]:
        value = fields.get(column)
        if column in numeric:
            out[column] = np.nan if value is None else np.asarray(value, dtype="float64")
        else:
            out[column] = pd.Series(
                None if value is None else np.asarray(value, dtype=object), index=out.index, dtype=object
            )
    return out


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
