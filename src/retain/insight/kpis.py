"""Service KPIs over time and by group, from the tickets and feedback tables (docs/kpis.md).

Pure functions of DataFrames: a table in, one row per (period, group) out. A ticket belongs to
the period it was opened in, a feedback answer to the period it was written in. ``by`` names a
customer attribute (``segment``, ``region``, ``plan``: joined from the customers table) or a
column of the table itself (a ticket's ``channel``, a feedback's ``source``); without it every
row is one group, ``all``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

ALL = "all"
FREQUENCIES = {"W": "W-SUN", "M": "M"}
"""Week (Monday to Sunday, named by its Monday) or calendar month (named by its first day)."""


def _periods(stamps: pd.Series, freq: str) -> pd.Series:
    if freq not in FREQUENCIES:
        raise ValueError(f"freq must be one of {sorted(FREQUENCIES)}, got {freq!r}")
    periods = pd.to_datetime(stamps).dt.to_period(FREQUENCIES[freq])
    return periods.dt.start_time


def _groups(frame: pd.DataFrame, by: str | None, customers: pd.DataFrame | None) -> pd.Series:
    if by is None:
        return pd.Series(ALL, index=frame.index, dtype=object)
    if by in frame.columns:
        return frame[by].astype(object).where(frame[by].notna(), "unknown")
    if customers is None or by not in customers.columns:
        raise KeyError(f"{by!r} is neither a column of the table nor of the customers table")
    keyed = customers.assign(_id=customers["customer_id"].astype(str)).drop_duplicates("_id")
    attribute = keyed.set_index("_id")[by]
    values = attribute.reindex(frame["customer_id"].astype(str).to_numpy()).to_numpy(dtype=object)
    return pd.Series(values, index=frame.index, dtype=object).where(pd.notna(values), "unknown")


def _hours(start: pd.Series, end: pd.Series) -> pd.Series:
    return (pd.to_datetime(end) - pd.to_datetime(start)) / pd.Timedelta(hours=1)


def first_contact_resolved(
    tickets: pd.DataFrame, window_days: int = 7, observed_until: pd.Timestamp | None = None
) -> pd.Series:
    """Per ticket: resolved, never reopened, and no other ticket of the customer opened within
    ``window_days`` after its resolution.

    NaN while unresolved, and when the window after the resolution ends after
    ``observed_until`` (default: the last ticket opened): a follow-up could still come.
    """
    resolved = pd.to_datetime(tickets["resolved_at"])
    reopened = pd.to_numeric(tickets.get("reopened_count", pd.Series(0, index=tickets.index)), errors="coerce").fillna(0)
    ordered = tickets.assign(_opened=pd.to_datetime(tickets["opened_at"]), _row=np.arange(len(tickets)))
    ordered = ordered.sort_values(["customer_id", "_opened", "_row"], kind="stable")
    following = ordered.groupby(ordered["customer_id"].astype(str), sort=False)["_opened"].shift(-1)
    next_opened = pd.Series(following.to_numpy(), index=ordered.index).reindex(tickets.index)
    follow_up = next_opened.notna() & (next_opened <= resolved + pd.Timedelta(days=window_days))
    out = pd.Series(((reopened == 0) & ~follow_up).astype(float), index=tickets.index)
    until = pd.Timestamp(observed_until) if observed_until is not None else ordered["_opened"].max()
    window_seen = resolved + pd.Timedelta(days=window_days) <= until
    return out.where(resolved.notna() & (window_seen | follow_up | (reopened > 0)))


def ticket_kpis(
    tickets: pd.DataFrame,
    customers: pd.DataFrame | None = None,
    freq: str = "M",
    by: str | None = None,
    fcr_window_days: int = 7,
) -> pd.DataFrame:
    """Ticket KPIs per period (and group): volume, first response and resolution times, FCR, CSAT.

    Returns
    -------
    pd.DataFrame
        ``period``, ``group``, ``tickets`` (opened), ``first_response_hours_median`` and
        ``_p90`` (answered tickets), ``resolution_hours_median`` (resolved tickets),
        ``first_contact_resolution`` (share of resolved tickets, :func:`first_contact_resolved`),
        ``csat_mean`` (tickets with a CSAT answer), ``csat_answers``.
    """
    frame = pd.DataFrame(
        {
            "period": _periods(tickets["opened_at"], freq),
            "group": _groups(tickets, by, customers),
            "first_response": _hours(tickets["opened_at"], tickets["first_response_at"]),
            "resolution": _hours(tickets["opened_at"], tickets["resolved_at"]),
            "fcr": first_contact_resolved(tickets, fcr_window_days),
            "csat": pd.to_numeric(tickets.get("csat", pd.Series(np.nan, index=tickets.index)), errors="coerce"),
        },
        index=tickets.index,
    )
    grouped = frame.groupby(["period", "group"], sort=True)
    out = pd.DataFrame(
        {
            "tickets": grouped.size(),
            "first_response_hours_median": grouped["first_response"].median(),
            "first_response_hours_p90": grouped["first_response"].quantile(0.9),
            "resolution_hours_median": grouped["resolution"].median(),
            "first_contact_resolution": grouped["fcr"].mean(),
            "csat_mean": grouped["csat"].mean(),
            "csat_answers": grouped["csat"].count(),
        }
    )
    return out.reset_index()


def net_promoter_score(nps: pd.Series) -> float:
    """Promoters (9-10) minus detractors (0-6), in percentage points of the answers; NaN without any."""
    answers = pd.to_numeric(nps, errors="coerce").dropna()
    if answers.empty:
        return float("nan")
    return float(100.0 * ((answers >= 9).mean() - (answers <= 6).mean()))


def feedback_kpis(
    feedback: pd.DataFrame,
    customers: pd.DataFrame | None = None,
    freq: str = "M",
    by: str | None = None,
) -> pd.DataFrame:
    """Feedback KPIs per period (and group): NPS, its answers, CES and feedback volume.

    Returns
    -------
    pd.DataFrame
        ``period``, ``group``, ``feedback`` (rows written), ``nps`` (:func:`net_promoter_score`),
        ``nps_answers``, ``ces_mean`` (1-7, higher is more effort), ``ces_answers``.
    """
    frame = pd.DataFrame(
        {
            "period": _periods(feedback["created_at"], freq),
            "group": _groups(feedback, by, customers),
            "nps": pd.to_numeric(feedback.get("nps", pd.Series(np.nan, index=feedback.index)), errors="coerce"),
            "ces": pd.to_numeric(feedback.get("ces", pd.Series(np.nan, index=feedback.index)), errors="coerce"),
        },
        index=feedback.index,
    )
    grouped = frame.groupby(["period", "group"], sort=True)
    out = pd.DataFrame(
        {
            "feedback": grouped.size(),
            "nps": grouped["nps"].agg(net_promoter_score),
            "nps_answers": grouped["nps"].count(),
            "ces_mean": grouped["ces"].mean(),
            "ces_answers": grouped["ces"].count(),
        }
    )
    return out.reset_index()


def service_kpis(
    tickets: pd.DataFrame | None,
    feedback: pd.DataFrame | None,
    customers: pd.DataFrame | None = None,
    freq: str = "M",
    by: str | None = None,
    fcr_window_days: int = 7,
) -> pd.DataFrame:
    """:func:`ticket_kpis` and :func:`feedback_kpis` side by side, one row per (period, group).

    A ``by`` that only one table has (a ticket's ``channel``, a feedback's ``source``) gives that
    table's KPIs only; one that neither table nor the customers have raises ``KeyError``.
    """
    parts: list[pd.DataFrame] = []
    for table, kpis in ((tickets, ticket_kpis), (feedback, feedback_kpis)):
        if table is None:
            continue
        if by is not None and by not in table.columns and (customers is None or by not in customers.columns):
            continue
        arguments = (fcr_window_days,) if kpis is ticket_kpis else ()
        parts.append(kpis(table, customers, freq, by, *arguments).set_index(["period", "group"]))
    if not parts:
        if tickets is None and feedback is None:
            raise ValueError("service KPIs need a tickets or a feedback table")
        raise KeyError(f"{by!r} is neither a column of the tickets or feedback table nor of the customers table")
    return pd.concat(parts, axis=1).sort_index().reset_index()


def customer_kpis(
    customers: pd.DataFrame,
    events: pd.DataFrame | None = None,
    freq: str = "M",
    by: str | None = None,
    purchase_type: str = "purchase",
    churn_known_until: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Customer KPIs per period (and customer group): churn rate, purchases and a simple CLTV.

    Returns
    -------
    pd.DataFrame
        ``period``, ``group``, ``active_customers`` (signed up before the period and not churned
        before it), ``churned`` (of them, churned in the period), ``churn_rate``; with purchase
        events (``event_type == purchase_type`` with an ``amount``): ``purchases``,
        ``purchasing_customers``, ``average_purchase_value``, ``purchase_frequency`` (purchases
        per purchasing customer), ``repeat_purchase_rate`` (share of purchasing customers with
        two or more purchases in the period) and ``cltv`` = average purchase value x purchase
        frequency x expected lifespan in periods (1 / churn rate; NaN while nobody churns).
        With ``churn_known_until``, periods ending after it have no churn rate (nor CLTV): who
        left in them is not known yet (an inactivity churn is only seen a horizon later); periods
        starting after it have no ``active_customers`` either.
    """
    if freq not in FREQUENCIES:
        raise ValueError(f"freq must be one of {sorted(FREQUENCIES)}, got {freq!r}")
    signup = pd.to_datetime(customers["signup_at"])
    churned_at = pd.to_datetime(customers.get("churned_at", pd.Series(pd.NaT, index=customers.index)))
    group = _groups(customers, by, None) if by is not None else pd.Series(ALL, index=customers.index, dtype=object)
    last = max(signup.max(), churned_at.max() if churned_at.notna().any() else signup.max())
    if events is not None and len(events):
        last = max(last, pd.to_datetime(events["occurred_at"]).max())
    starts = pd.period_range(signup.min(), last, freq=FREQUENCIES[freq])
    rows = []
    for period in starts:
        start, end = period.start_time, period.end_time
        active = (signup < start) & (churned_at.isna() | (churned_at >= start))
        gone = active & (churned_at <= end)
        frame = pd.DataFrame({"group": group, "active": active, "gone": gone})
        counts = frame.groupby("group")[["active", "gone"]].sum()
        for name, row in counts.iterrows():
            rows.append({"period": start, "group": name, "active_customers": int(row["active"]), "churned": int(row["gone"])})
    out = pd.DataFrame(rows, columns=["period", "group", "active_customers", "churned"])
    out["churn_rate"] = out["churned"] / out["active_customers"].where(out["active_customers"] > 0)
    if churn_known_until is not None:
        ends = pd.PeriodIndex(out["period"], freq=FREQUENCIES[freq]).end_time
        out.loc[np.asarray(ends > pd.Timestamp(churn_known_until)), ["churned", "churn_rate"]] = np.nan
        # Who is still active at a period's start is not known either once it starts later.
        starts = pd.to_datetime(out["period"])
        out.loc[np.asarray(starts > pd.Timestamp(churn_known_until)), "active_customers"] = np.nan
    if events is None or "amount" not in events.columns:
        return out
    bought = events.loc[(events["event_type"].astype(str) == purchase_type) & events["amount"].notna()]
    purchases = pd.DataFrame(
        {
            "period": _periods(bought["occurred_at"], freq).to_numpy(),
            "group": _groups(bought, by, customers).to_numpy() if by is not None else ALL,
            "customer_id": bought["customer_id"].astype(str).to_numpy(),
            "amount": bought["amount"].astype(float).to_numpy(),
        }
    )
    per_customer = purchases.groupby(["period", "group", "customer_id"])["amount"].agg(["size", "sum"])
    grouped = per_customer.groupby(["period", "group"])
    spend = pd.DataFrame(
        {
            "purchases": grouped["size"].sum(),
            "purchasing_customers": grouped.size(),
            "average_purchase_value": grouped["sum"].sum() / grouped["size"].sum(),
            "repeat_purchase_rate": grouped["size"].agg(lambda n: float((n >= 2).mean())),
        }
    )
    spend["purchase_frequency"] = spend["purchases"] / spend["purchasing_customers"]
    out = out.merge(spend.reset_index(), on=["period", "group"], how="left")
    out[["purchases", "purchasing_customers"]] = out[["purchases", "purchasing_customers"]].fillna(0).astype(int)
    lifespan = 1.0 / out["churn_rate"].where(out["churn_rate"] > 0)
    out["cltv"] = out["average_purchase_value"] * out["purchase_frequency"] * lifespan
    return out


def theme_kpis(
    feedback: pd.DataFrame,
    text_scores: pd.DataFrame,
    theme_ids: Sequence[str],
    freq: str = "M",
    threshold: float = 0.5,
) -> pd.DataFrame:
    """Feedback KPIs per period and theme, from the text models' scores.

    A feedback row mentions a theme when its ``theme_<id>`` probability is at least
    ``threshold``; its sentiment is the most probable of ``sentiment_negative``, ``_neutral``
    and ``_positive``.

    Parameters
    ----------
    feedback
        The feedback table (``created_at``; optional ``nps``, ``ces``, ``rating``).
    text_scores
        :func:`retain.text.scoring.score_feedback` of ``feedback``, on the same index.
    theme_ids
        The themes to report, in order.

    Returns
    -------
    pd.DataFrame
        ``period``, ``theme``, ``mentions``, ``share`` (mentions / feedback in the period),
        ``negative_share`` (of the mentions, the share whose sentiment is negative),
        ``net_sentiment`` (mean of P(positive) - P(negative) over the mentions), and over the
        mentions with an answer: ``nps`` (:func:`net_promoter_score`), ``ces_mean`` and
        ``rating_mean``. Every period with feedback has a row per theme (zero mentions included).
    """
    scores = text_scores.reindex(feedback.index)
    sentiment = scores[["sentiment_negative", "sentiment_neutral", "sentiment_positive"]].to_numpy(dtype=float)
    known = ~np.isnan(sentiment).any(axis=1)
    negative = np.where(known, np.argmax(np.nan_to_num(sentiment, nan=-1.0), axis=1) == 0, np.nan)
    net = sentiment[:, 2] - sentiment[:, 0]
    period = _periods(feedback["created_at"], freq).to_numpy()
    answers = {
        column: pd.to_numeric(feedback[column], errors="coerce").to_numpy(dtype=float)
        if column in feedback.columns else np.full(len(feedback), np.nan)
        for column in ("nps", "ces", "rating")
    }
    totals = pd.Series(1, index=feedback.index).groupby(period).sum()
    parts = []
    for theme in theme_ids:
        mentions = scores[f"theme_{theme}"].to_numpy(dtype=float) >= threshold
        frame = pd.DataFrame(
            {"period": period, "negative": negative, "net": net, **answers}
        ).loc[mentions]
        grouped = frame.groupby("period")
        part = pd.DataFrame(
            {
                "mentions": grouped.size(),
                "negative_share": grouped["negative"].mean(),
                "net_sentiment": grouped["net"].mean(),
                "nps": grouped["nps"].agg(net_promoter_score),
                "ces_mean": grouped["ces"].mean(),
                "rating_mean": grouped["rating"].mean(),
            }
        ).reindex(totals.index)
        part["mentions"] = part["mentions"].fillna(0).astype(int)
        part["share"] = part["mentions"] / totals
        parts.append(part.assign(theme=theme).rename_axis("period").reset_index())
    columns = ["period", "theme", "mentions", "share", "negative_share", "net_sentiment", "nps", "ces_mean", "rating_mean"]
    if not parts:
        return pd.DataFrame(columns=columns)
    return pd.concat(parts, ignore_index=True)[columns].sort_values(["period", "theme"], ignore_index=True)
