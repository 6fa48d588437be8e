"""Point-in-time churn features and labels, one row per ``(customer_id, as_of)``.

Every function here is a pure function of DataFrames: settings are explicit arguments, inputs are
never mutated, and the result is a new frame indexed by ``customer_id`` (lifetimes'
``summary_data_from_transaction_data`` is the model: an event log in, one row per customer as of
a cutoff out).

The one law all of them obey: **nothing dated after** ``as_of`` **influences a feature**. A row
counts when its timestamp is ``<= as_of``; a window of ``w`` days is ``(as_of - w days, as_of]``.
Ticket facts that only exist once a ticket is answered or closed count only once that has
happened by ``as_of``:

- first response time: only if ``first_response_at <= as_of`` (otherwise the ticket is
  *awaiting first response* and its wait so far feeds the ``awaiting_first_response*`` features);
- resolution time, ``csat``, ``reopened_count`` and ``escalated``: only if ``resolved_at <= as_of``
  (the tables are a snapshot taken later, so for a ticket still open at ``as_of`` those fields may
  describe what happened afterwards);
- a ticket is open at ``as_of`` if ``opened_at <= as_of`` and ``resolved_at`` is missing or later.

``customers.churned_at`` is used only for the population and the label, never as a feature.
Missing values: counts and sums are 0 where there is nothing to count; means, minima, maxima,
recencies and trends are NaN where there is nothing to summarise (LightGBM handles NaN natively;
a linear baseline has to impute). See ``docs/features.md`` for the full list.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from retain.churn import labels as labels_module
from retain.config import FeatureConfig, LabelConfig
from retain.contracts import World
from retain.text.aspects import aspect_column

logger = logging.getLogger(__name__)

KEY_COLUMNS = ("customer_id", "as_of")
LABEL_COLUMN = "churned"
CATEGORY_ATTRIBUTES = ("segment", "plan", "region")

# Feature name (without the window suffix ``_<w>d``) -> reason signal id. Signal ids that appear
# in configs/playbook.yaml are spelled exactly as there.
_WINDOWED_SIGNALS: dict[str, str] = {
    # behaviour
    "events": "engagement",
    "logins": "engagement",
    "usage": "engagement",
    "purchases": "purchases",
    "purchase_amount": "purchases",
    # support
    "tickets": "repeated_contacts",
    "first_response_hours_mean": "slow_first_response",
    "first_response_hours_max": "slow_first_response",
    "resolution_hours_mean": "slow_resolution",
    "reopened": "reopened_tickets",
    "escalated": "escalations",
    "csat_mean": "low_csat",
    "csat_min": "low_csat",
    # feedback
    "feedback": "engagement",
    "rating_mean": "negative_feedback",
    "ces_mean": "high_effort",
    "negative_feedback": "negative_feedback",
    "negative_feedback_share": "negative_feedback",
}
_UNWINDOWED_SIGNALS: dict[str, str] = {
    # customer attributes
    "tenure_days": "tenure",
    "monthly_value": "value",
    "segment": "segment",
    "plan": "plan",
    "region": "region",
    # behaviour
    "days_since_last_event": "inactivity",
    "days_since_last_login": "inactivity",
    "days_since_last_purchase": "purchases",
    "events_per_30d": "engagement",
    "purchases_per_30d": "purchases",
    "purchase_amount_per_30d": "purchases",
    "usage_trend": "declining_usage",
    "login_trend": "declining_usage",
    # support
    "open_tickets": "open_tickets",
    "oldest_open_ticket_hours": "open_tickets",
    "awaiting_first_response": "slow_first_response",
    "awaiting_first_response_hours_max": "slow_first_response",
    # feedback
    "nps_last": "low_nps",
}
_WINDOW_SUFFIX = re.compile(r"^(?P<stem>.+)_(?P<days>\d+)d$")
_THEME_FEATURE = re.compile(r"^theme_(?P<theme>.+)_negative$")
_RECENT_THEME_FEATURE = re.compile(r"^theme_(?P<theme>.+)_negative_recent(?:_share)?$")


def feature_signal(column: str) -> str:
    """The reason signal id of a feature column.

    Parameters
    ----------
    column:
        A feature column name as produced by :func:`build_features`, e.g. ``"logins_30d"``,
        ``"open_tickets"`` or ``"theme_billing_negative_90d"``.

    Returns
    -------
    str
        The signal id used by ``retain.churn.reasons`` and ``configs/playbook.yaml``, e.g.
        ``"engagement"``, ``"open_tickets"``, ``"theme_billing"``.

    Raises
    ------
    KeyError
        If ``column`` is not a feature this module produces.
    """
    if column in _UNWINDOWED_SIGNALS:
        return _UNWINDOWED_SIGNALS[column]
    if column == "recent_comments":
        return "engagement"
    recent_theme = _RECENT_THEME_FEATURE.match(column)
    if recent_theme is not None:
        return f"theme_{recent_theme['theme']}"
    windowed = _WINDOW_SUFFIX.match(column)
    if windowed is not None:
        stem = windowed["stem"]
        if stem in _WINDOWED_SIGNALS:
            return _WINDOWED_SIGNALS[stem]
        theme = _THEME_FEATURE.match(stem)
        if theme is not None:
            return f"theme_{theme['theme']}"
    raise KeyError(f"{column!r} is not a retain feature column; no reason signal for it")


class _FeatureSignals(Mapping[str, str]):
    """Read-only mapping feature column -> signal id.

    Lookups (``[]``, ``get``, ``in``) accept every column :func:`build_features` produces, for
    any windows and themes. Iteration lists the columns for the default windows
    (``FeatureConfig().windows_days``) without the ``theme_<id>_negative_<w>d`` columns, whose
    ids come from the taxonomy; each of those maps to ``theme_<id>``.
    """

    def __getitem__(self, column: str) -> str:
        return feature_signal(column)

    def __iter__(self) -> Iterator[str]:
        windows = _windows(FeatureConfig().windows_days)
        yield from _UNWINDOWED_SIGNALS
        for stem in _WINDOWED_SIGNALS:
            for w in windows:
                yield f"{stem}_{w}d"

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        return f"FEATURE_SIGNALS({dict(self)!r} + theme_<id>_negative_<w>d: theme_<id>)"


FEATURE_SIGNALS: Mapping[str, str] = _FeatureSignals()
"""Feature column -> reason signal id, e.g. ``FEATURE_SIGNALS["logins_30d"] == "engagement"``."""


def feature_columns(table: pd.DataFrame) -> list[str]:
    """The model inputs of a feature table: all but ``customer_id``, ``as_of``, ``churned``."""
    skip = {*KEY_COLUMNS, LABEL_COLUMN}
    return [c for c in table.columns if c not in skip]


# --------------------------------------------------------------------------------------------
# Population and labels


def churn_population(customers: pd.DataFrame, as_of: pd.Timestamp | str) -> pd.DataFrame:
    """The contractual population at ``as_of`` (see :func:`retain.churn.labels.population`).

    The rows of ``customers`` with ``signup_at <= as_of`` and ``churned_at`` missing or
    ``> as_of``, in input order, with a fresh ``RangeIndex``.
    """
    _require(customers, ("customer_id", "signup_at"), "customers")
    return labels_module.population(customers, None, as_of)


def churn_labels(
    customers: pd.DataFrame, as_of: pd.Timestamp | str, horizon_days: int
) -> pd.Series:
    """Contractual labels at ``as_of`` (see :func:`retain.churn.labels.labels`).

    ``int64`` named ``churned``, indexed by ``customer_id`` (the :func:`churn_population` at
    ``as_of``): 1 if ``churned_at`` lies in ``(as_of, as_of + horizon_days]``, else 0.
    """
    return labels_module.labels(customers, None, as_of, horizon_days)


# --------------------------------------------------------------------------------------------
# Feature families


def behaviour_features(
    events: pd.DataFrame,
    customer_ids: Iterable[Any],
    as_of: pd.Timestamp | str,
    windows_days: Sequence[int] = (30, 90),
) -> pd.DataFrame:
    """Recency, frequency, monetary value and usage trend from the event log.

    Parameters
    ----------
    events:
        The events table (``customer_id``, ``occurred_at``, ``event_type``, optional ``amount``).
        Only events with ``occurred_at <= as_of`` are read.
    customer_ids:
        The customers to describe (unique); events of other customers are ignored.
    as_of:
        The cutoff.
    windows_days:
        Window lengths in days; window ``w`` is ``(as_of - w days, as_of]``.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``customer_id`` in the order given, float columns:
        ``days_since_last_event``, ``days_since_last_login``, ``days_since_last_purchase``
        (NaN if never), per window ``events_{w}d``, ``logins_{w}d``, ``usage_{w}d``,
        ``purchases_{w}d``, ``purchase_amount_{w}d``; over the whole history on/before
        ``as_of``, per 30 days of it (at least 30): ``events_per_30d``, ``purchases_per_30d``,
        ``purchase_amount_per_30d``; and ``usage_trend``, ``login_trend``:
        the daily rate in the shortest window divided by the rate in the period before it, up
        to the longest window (1 steady, 0 stopped; NaN with too little history or no earlier
        events; see :func:`_trend`).
    """
    as_of = _as_timestamp(as_of)
    windows = _windows(windows_days)
    index = _customer_index(customer_ids)
    _require(events, ("customer_id", "occurred_at", "event_type"), "events")
    n = len(index)

    pos = _positions(events["customer_id"], index)
    age = _days_before(events["occurred_at"], as_of)
    known = (pos >= 0) & (age >= 0)
    pos, age = pos[known], age[known]
    types = _value_masks(events["event_type"], ("login", "usage", "purchase"), known)
    is_login, is_usage, is_purchase = types["login"], types["usage"], types["purchase"]
    amount = np.nan_to_num(_optional_floats(events, "amount")[known], nan=0.0)
    every = np.ones(len(pos), dtype=bool)

    out: dict[str, np.ndarray] = {
        "days_since_last_event": _min(pos, age, every, n),
        "days_since_last_login": _min(pos, age, is_login, n),
        "days_since_last_purchase": _min(pos, age, is_purchase, n),
    }
    in_window = {w: age < w for w in windows}
    for stem, kind in (
        ("events", every),
        ("logins", is_login),
        ("usage", is_usage),
        ("purchases", is_purchase),
    ):
        for w in windows:
            out[f"{stem}_{w}d"] = _count(pos, kind & in_window[w], n)
    for w in windows:
        out[f"purchase_amount_{w}d"] = _sum(pos, amount, is_purchase & in_window[w], n)

    history_days = _max(pos, age, every, n)
    # Lifetime rates: counts over the customer's whole history, per 30 days of it (at least 30),
    # so customers of different tenure compare (a purchase log's frequency, lifetimes-style).
    per_30d = 30.0 / np.maximum(np.nan_to_num(history_days, nan=0.0), 30.0)
    out["events_per_30d"] = _count(pos, every, n) * per_30d
    out["purchases_per_30d"] = _count(pos, is_purchase, n) * per_30d
    out["purchase_amount_per_30d"] = _sum(pos, amount, is_purchase, n) * per_30d
    out["usage_trend"] = _trend(pos, age, is_usage, history_days, windows, n)
    out["login_trend"] = _trend(pos, age, is_login, history_days, windows, n)
    return pd.DataFrame(out, index=index)


def support_features(
    tickets: pd.DataFrame,
    customer_ids: Iterable[Any],
    as_of: pd.Timestamp | str,
    windows_days: Sequence[int] = (30, 90),
) -> pd.DataFrame:
    """Support history: volume, response and resolution times, reopens, escalations, CSAT, open.

    Parameters
    ----------
    tickets:
        The tickets table (``customer_id``, ``opened_at``, ``first_response_at``,
        ``resolved_at``, optional ``reopened_count``, ``csat``, ``escalated``).
    customer_ids:
        The customers to describe (unique).
    as_of:
        The cutoff.
    windows_days:
        Window lengths in days; a ticket is in window ``w`` if it was opened in
        ``(as_of - w days, as_of]``.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``customer_id``, float columns. Per window: ``tickets_{w}d``,
        ``first_response_hours_mean_{w}d`` / ``_max_{w}d`` (tickets answered by ``as_of``),
        ``resolution_hours_mean_{w}d`` (tickets resolved by ``as_of``), ``reopened_{w}d``,
        ``escalated_{w}d``, ``csat_mean_{w}d``, ``csat_min_{w}d`` (tickets resolved by
        ``as_of`` only). At ``as_of``: ``open_tickets``, ``oldest_open_ticket_hours``,
        ``awaiting_first_response``, ``awaiting_first_response_hours_max``.

    Notes
    -----
    ``csat``, ``reopened_count`` and ``escalated`` carry no timestamp and are only final once the
    ticket is resolved, so they count only for tickets with ``resolved_at <= as_of``. Durations
    that come out negative (a response stamped before the ticket was opened) are clipped to 0.
    """
    as_of = _as_timestamp(as_of)
    windows = _windows(windows_days)
    index = _customer_index(customer_ids)
    _require(tickets, ("customer_id", "opened_at", "first_response_at", "resolved_at"), "tickets")
    n = len(index)

    pos = _positions(tickets["customer_id"], index)
    opened_age = _days_before(tickets["opened_at"], as_of)
    known = (pos >= 0) & (opened_age >= 0)
    pos, opened_age = pos[known], opened_age[known]
    opened_at = _stamps(tickets["opened_at"])[known]
    first_response_at = _stamps(tickets["first_response_at"])[known]
    resolved_at = _stamps(tickets["resolved_at"])[known]

    as_of_stamp = _stamp(as_of)
    answered = first_response_at <= as_of_stamp  # NaT (never answered) compares False
    resolved = resolved_at <= as_of_stamp
    is_open = ~resolved
    awaiting = is_open & ~answered
    first_response_hours = np.clip(_hours_between(opened_at, first_response_at), 0.0, None)
    resolution_hours = np.clip(_hours_between(opened_at, resolved_at), 0.0, None)
    hours_open = _hours_between(opened_at, as_of_stamp)

    reopened = np.where(
        resolved, np.nan_to_num(_optional_floats(tickets, "reopened_count")[known]), 0.0
    )
    escalated = resolved & _optional_bools(tickets, "escalated")[known]
    csat = _optional_floats(tickets, "csat")[known]
    csat_known = resolved & ~np.isnan(csat)

    out: dict[str, np.ndarray] = {}
    for w in windows:
        in_w = opened_age < w
        out[f"tickets_{w}d"] = _count(pos, in_w, n)
        out[f"first_response_hours_mean_{w}d"] = _mean(
            pos, first_response_hours, in_w & answered, n
        )
        out[f"first_response_hours_max_{w}d"] = _max(pos, first_response_hours, in_w & answered, n)
        out[f"resolution_hours_mean_{w}d"] = _mean(pos, resolution_hours, in_w & resolved, n)
        out[f"reopened_{w}d"] = _sum(pos, reopened, in_w, n)
        out[f"escalated_{w}d"] = _count(pos, in_w & escalated, n)
        out[f"csat_mean_{w}d"] = _mean(pos, csat, in_w & csat_known, n)
        out[f"csat_min_{w}d"] = _min(pos, csat, in_w & csat_known, n)
    out["open_tickets"] = _count(pos, is_open, n)
    out["oldest_open_ticket_hours"] = _max(pos, hours_open, is_open, n)
    out["awaiting_first_response"] = _count(pos, awaiting, n)
    out["awaiting_first_response_hours_max"] = _max(pos, hours_open, awaiting, n)
    return pd.DataFrame(out, index=index)


def feedback_features(
    feedback: pd.DataFrame,
    feedback_scores: pd.DataFrame | None,
    customer_ids: Iterable[Any],
    as_of: pd.Timestamp | str,
    theme_ids: Sequence[str],
    windows_days: Sequence[int] = (30, 90),
    theme_sentiment_comments: int = 0,
) -> pd.DataFrame:
    """What customers said: volume, ratings, NPS, effort and (with scores) sentiment and themes.

    Parameters
    ----------
    feedback:
        The feedback table (``feedback_id``, ``customer_id``, ``created_at``, optional
        ``rating``, ``nps``, ``ces``). Only rows with ``created_at <= as_of`` are read.
    feedback_scores:
        Text model scores per ``feedback_id`` (``sentiment_negative`` and one ``theme_<id>``
        probability column per theme), or None to leave the text features out entirely.
        Feedback rows without a score row are left out of the text features (and logged).
    customer_ids:
        The customers to describe (unique).
    as_of:
        The cutoff.
    theme_ids:
        Taxonomy theme ids; one ``theme_<id>_negative_{w}d`` column per theme and window.
    windows_days:
        Window lengths in days; window ``w`` is ``(as_of - w days, as_of]``.
    theme_sentiment_comments:
        ``N`` > 0 adds per-theme sentiment features over each customer's last ``N`` scored
        comments in the longest window, read from the ``aspect_<id>_negative`` columns of the
        scores (sentiment per theme, :func:`retain.text.aspects.aspect_feedback_scores`);
        0, or scores without those columns, leaves them out.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``customer_id``, float columns. Per window: ``feedback_{w}d``,
        ``rating_mean_{w}d``, ``ces_mean_{w}d``; ``nps_last`` (the latest NPS answer on/before
        ``as_of``, ties averaged). With scores, per window: ``negative_feedback_{w}d`` (sum of
        p(negative)), ``negative_feedback_share_{w}d`` (mean p(negative), NaN if no scored
        feedback) and ``theme_<id>_negative_{w}d`` (sum of p(theme) * p(negative)). With
        per-theme sentiment scores and ``theme_sentiment_comments = N``: ``recent_comments``
        (how many comments the last-``N`` features read: at most ``N``, newest first, on/before
        ``as_of`` and in the longest window), and per theme ``theme_<id>_negative_recent`` (how
        many of them are negative about the theme: p(negative about it) >=
        :data:`NEGATIVE_ABOUT_THEME`) and ``theme_<id>_negative_recent_share`` (that count over
        ``recent_comments``; NaN without comments): "negative about billing in 3 of the last 5
        comments".
    """
    as_of = _as_timestamp(as_of)
    windows = _windows(windows_days)
    index = _customer_index(customer_ids)
    _require(feedback, ("customer_id", "created_at"), "feedback")
    n = len(index)

    pos = _positions(feedback["customer_id"], index)
    age = _days_before(feedback["created_at"], as_of)
    known = (pos >= 0) & (age >= 0)
    pos, age = pos[known], age[known]
    rating = _optional_floats(feedback, "rating")[known]
    nps = _optional_floats(feedback, "nps")[known]
    ces = _optional_floats(feedback, "ces")[known]
    in_window = {w: age < w for w in windows}

    out: dict[str, np.ndarray] = {}
    for w in windows:
        out[f"feedback_{w}d"] = _count(pos, in_window[w], n)
    for w in windows:
        out[f"rating_mean_{w}d"] = _mean(pos, rating, in_window[w] & ~np.isnan(rating), n)
    for w in windows:
        out[f"ces_mean_{w}d"] = _mean(pos, ces, in_window[w] & ~np.isnan(ces), n)
    answered_nps = ~np.isnan(nps)
    latest_nps_age = _min(pos, age, answered_nps, n)
    is_latest = answered_nps & (age == latest_nps_age[np.maximum(pos, 0)])
    out["nps_last"] = _mean(pos, nps, is_latest, n)

    if (
        feedback_scores is not None
        and "sentiment_negative" in feedback_scores.columns
        # no sentiment model at all (only themes labelled): leave sentiment features out, not 0
        and not (len(feedback_scores) and feedback_scores["sentiment_negative"].isna().all())
    ):
        _require(feedback, ("feedback_id",), "feedback")
        theme_ids = [t for t in theme_ids if f"theme_{t}" in feedback_scores.columns]
        theme_columns = [f"theme_{t}" for t in theme_ids]
        _require(feedback_scores, ("feedback_id", "sentiment_negative"), "feedback_scores")
        scores = pd.Index(feedback_scores["feedback_id"])
        if not scores.is_unique:
            raise ValueError("feedback_scores: feedback_id must be unique")
        row = scores.get_indexer(feedback["feedback_id"][known])
        # Text features read the longest window only: older rows need no score.
        unscored = int(((row < 0) & (age < windows[-1])).sum())
        if unscored:
            logger.warning(
                "%d of %d feedback rows in the %d days to %s have no text scores; not in text features",
                unscored,
                int((age < windows[-1]).sum()),
                windows[-1],
                as_of.date(),
            )

        def scored(column: str) -> np.ndarray:
            values = feedback_scores[column].to_numpy(dtype="float64")
            return (
                np.where(row >= 0, values[np.maximum(row, 0)], np.nan)
                if len(values)
                else np.full(len(row), np.nan)
            )

        negative = scored("sentiment_negative")
        has_negative = ~np.isnan(negative)
        for w in windows:
            out[f"negative_feedback_{w}d"] = _sum(pos, negative, in_window[w] & has_negative, n)
        for w in windows:
            out[f"negative_feedback_share_{w}d"] = _mean(
                pos, negative, in_window[w] & has_negative, n
            )
        for theme, column in zip(theme_ids, theme_columns, strict=True):
            negative_theme = negative * scored(column)
            has_theme = ~np.isnan(negative_theme)
            for w in windows:
                out[f"theme_{theme}_negative_{w}d"] = _sum(
                    pos, negative_theme, in_window[w] & has_theme, n
                )
        aspect_themes = [t for t in theme_ids if aspect_column(t, "negative") in feedback_scores]
        if theme_sentiment_comments > 0 and aspect_themes:
            negative_about = {t: scored(aspect_column(t, "negative")) for t in aspect_themes}
            out.update(
                _recent_theme_features(
                    pos, age, age < windows[-1], negative_about, theme_sentiment_comments, n
                )
            )
    return pd.DataFrame(out, index=index)


NEGATIVE_ABOUT_THEME = 0.5
"""Probability of negative sentiment about a theme from which a comment counts as negative."""


def _recent_theme_features(
    pos: np.ndarray,
    age: np.ndarray,
    in_window: np.ndarray,
    negative_about: Mapping[str, np.ndarray],
    last_n: int,
    n: int,
) -> dict[str, np.ndarray]:
    """``recent_comments`` and, per theme, how many (and what share) are negative about it.

    Parameters
    ----------
    pos, age
        Each feedback row's customer position and age in days at ``as_of`` (rows on/before
        ``as_of`` of population customers only).
    in_window
        The rows the features may read.
    negative_about
        Theme id -> p(negative about the theme) per row; NaN: the row has no score, not read.
    last_n
        Comments read per customer, newest first (ties in the table's order).
    n
        Number of customers.
    """
    first = next(iter(negative_about.values()))
    rows = np.flatnonzero(in_window & ~np.isnan(first))
    order = rows[np.lexsort((age[rows], pos[rows]))]  # by customer, newest first
    customers = pos[order]
    new_customer = np.ones(len(order), dtype=bool)
    new_customer[1:] = customers[1:] != customers[:-1]
    starts = np.flatnonzero(new_customer)
    sizes = np.diff(np.r_[starts, len(order)])
    rank = np.arange(len(order)) - np.repeat(starts, sizes)
    recent = np.zeros(len(pos), dtype=bool)
    recent[order[rank < last_n]] = True

    count = _count(pos, recent, n)
    out = {"recent_comments": count}
    for theme, values in negative_about.items():
        with np.errstate(invalid="ignore"):
            negative = recent & (values >= NEGATIVE_ABOUT_THEME)
        negatives = _count(pos, negative, n)
        out[f"theme_{theme}_negative_recent"] = negatives
        with np.errstate(invalid="ignore", divide="ignore"):
            out[f"theme_{theme}_negative_recent_share"] = np.where(
                count > 0, negatives / count, np.nan
            )
    return out


# --------------------------------------------------------------------------------------------
# Feature tables


def build_features(
    world: World,
    as_of: pd.Timestamp | str,
    feedback_scores: pd.DataFrame | None,
    theme_ids: Sequence[str],
    windows_days: Sequence[int] = (30, 90),
    horizon_days: int | None = None,
    definition: LabelConfig | None = None,
    attributes: Sequence[str] | str = (),
    theme_sentiment_comments: int = 0,
) -> pd.DataFrame:
    """The feature table of every population customer at ``as_of``.

    Parameters
    ----------
    world:
        The customers table and whichever of events, tickets, feedback exist; an absent table's
        feature family is left out (no columns), not filled with zeros.
    as_of:
        The cutoff (a midnight ``pd.Timestamp`` by convention); rows dated after it are ignored.
    feedback_scores:
        Text model scores per ``feedback_id``, or None to leave the text features out.
    theme_ids:
        Taxonomy theme ids, in taxonomy order.
    windows_days:
        Window lengths in days.
    horizon_days:
        If given, add the ``churned`` label for the window ``(as_of, as_of + horizon_days]``;
        whether that window is observed is the caller's decision.
    definition:
        The churn definition (population and label); default contractual.
    attributes:
        Extra customer columns to use as features (their own names), or ``"all"``.
    theme_sentiment_comments:
        Per-theme sentiment features over each customer's last this many comments (see
        :func:`feedback_features`); 0 leaves them out.

    Returns
    -------
    pandas.DataFrame
        One row per population customer: ``customer_id``, ``as_of``, ``tenure_days``, the
        customer attributes present (``monthly_value``, ``segment``, ``plan``, ``region`` when
        the data has them, then the extra ``attributes``), then the behaviour, support and
        feedback features of the tables present, then ``churned`` if ``horizon_days`` is given.
    """
    as_of = _as_timestamp(as_of)
    population = labels_module.population(world.customers, world.events, as_of, definition)
    ids = _customer_index(population["customer_id"])
    families = [_customer_attributes(population, world.customers, ids, as_of, attributes)]
    if world.events is not None:
        families.append(behaviour_features(world.events, ids, as_of, windows_days))
    if world.tickets is not None:
        families.append(support_features(world.tickets, ids, as_of, windows_days))
    if world.feedback is not None:
        families.append(
            feedback_features(
                world.feedback, feedback_scores, ids, as_of, theme_ids, windows_days,
                theme_sentiment_comments,
            )
        )
    table = pd.concat(families, axis=1).reset_index()
    table.insert(1, "as_of", pd.Series(as_of, index=table.index, dtype="datetime64[ns]"))
    if horizon_days is not None:
        labels = labels_module.labels(world.customers, world.events, as_of, horizon_days, definition)
        table[LABEL_COLUMN] = labels.to_numpy()  # same population, same order
    logger.debug(
        "features at %s: %d customers, %d columns", as_of.date(), len(table), table.shape[1]
    )
    return table


def feature_families(world: World) -> list[str]:
    """The feature families the tables of ``world`` support, for the run log and MLflow."""
    families = ["customer attributes"]
    names = {"events": "behaviour", "tickets": "support", "feedback": "feedback"}
    families += [family for table, family in names.items() if getattr(world, table) is not None]
    return families


def build_training_table(
    world: World,
    as_of_dates: Iterable[pd.Timestamp | str],
    feedback_scores: pd.DataFrame | None | Callable[[pd.Timestamp], pd.DataFrame | None],
    theme_ids: Sequence[str],
    windows_days: Sequence[int] = (30, 90),
    horizon_days: int = 90,
    show_progress: bool = False,
    definition: LabelConfig | None = None,
    attributes: Sequence[str] | str = (),
    theme_sentiment_comments: int = 0,
) -> pd.DataFrame:
    """Feature tables with labels at several ``as_of`` dates, stacked.

    Parameters
    ----------
    world:
        The four tables.
    as_of_dates:
        The cutoffs; a customer appears once per date at which they are in the population.
    feedback_scores:
        Text model scores per ``feedback_id``, or a function of ``as_of`` giving the scores to use
        at that date (from text models fitted on earlier feedback only), or None.
    theme_ids:
        Taxonomy theme ids.
    windows_days:
        Window lengths in days.
    horizon_days:
        Label window length.
    show_progress:
        Show a progress bar over the dates.
    theme_sentiment_comments:
        As in :func:`build_features`.

    Returns
    -------
    pandas.DataFrame
        The :func:`build_features` tables (with ``churned``) in date order given, with a fresh
        ``RangeIndex``.
    """
    dates = [_as_timestamp(d) for d in as_of_dates]
    if not dates:
        raise ValueError("as_of_dates is empty")
    # Encode the id and type columns once, so each date skips re-hashing millions of strings.
    encoded = _with_categorical_keys(world)
    tables = [
        build_features(
            encoded,
            as_of,
            feedback_scores(as_of) if callable(feedback_scores) else feedback_scores,
            theme_ids,
            windows_days,
            horizon_days,
            definition,
            attributes,
            theme_sentiment_comments,
        )
        for as_of in tqdm(dates, desc="features", unit="date", disable=not show_progress)
    ]
    table = pd.concat(tables, ignore_index=True)
    logger.info(
        "training table: %d rows over %d dates, churn rate %.3f",
        len(table),
        len(dates),
        float(table[LABEL_COLUMN].mean()) if len(table) else float("nan"),
    )
    return table


# --------------------------------------------------------------------------------------------
# Helpers


def _customer_attributes(
    population: pd.DataFrame,
    customers: pd.DataFrame,
    ids: pd.Index,
    as_of: pd.Timestamp,
    attributes: Sequence[str] | str = (),
) -> pd.DataFrame:
    """tenure_days, the contract attributes the data has, and the extra ``attributes``.

    A contract attribute (``monthly_value``, ``segment``, ``plan``, ``region``) that is missing
    for every customer is left out. Extra attributes keep their own column names: numbers and
    booleans as numbers, anything else as a category with the levels of the whole customers
    table (so tables at different dates share one dtype). Date columns are left out: a snapshot
    date may lie after ``as_of`` and its presence alone can leak the outcome (put dated facts in
    the events table). ``build_features`` logs them.
    """
    out = pd.DataFrame(index=ids)
    out["tenure_days"] = _days_before(population["signup_at"], as_of)
    if "monthly_value" in customers.columns and customers["monthly_value"].notna().any():
        out["monthly_value"] = _optional_floats(population, "monthly_value")
    for name in CATEGORY_ATTRIBUTES:
        if name in customers.columns and customers[name].notna().any():
            out[name] = _categorical(population[name], customers[name])
    for name in extra_attributes(customers, attributes):
        if pd.api.types.is_datetime64_any_dtype(customers[name].dtype):
            # A date in a customers snapshot may lie after as_of: whether it is set at all can
            # tell the future (e.g. a last order that only churners' rows have by export time).
            # Dated facts belong in the events table, where as_of can cut them.
            continue
        out[name] = _attribute(population[name], customers[name], as_of)
    return out


#: Columns of the customers table that are never features (ids, labels, contract attributes).
_NOT_ATTRIBUTES = frozenset(
    {"customer_id", "signup_at", "churned_at", "monthly_value", *CATEGORY_ATTRIBUTES, LABEL_COLUMN}
)


def extra_attributes(customers: pd.DataFrame, attributes: Sequence[str] | str) -> list[str]:
    """The extra customer columns to use as features: those named, or every other one for 'all'."""
    if isinstance(attributes, str):
        if attributes != "all":
            raise ValueError(f"attributes must be a list of column names or 'all', got {attributes!r}")
        return [c for c in customers.columns if c not in _NOT_ATTRIBUTES]
    missing = [c for c in attributes if c not in customers.columns]
    if missing:
        raise KeyError(
            f"customers: attribute column(s) {missing} named in features.attributes are not in "
            f"the table; found {', '.join(map(str, customers.columns))}"
        )
    clash = [c for c in attributes if c in _NOT_ATTRIBUTES]
    if clash:
        raise ValueError(f"features.attributes: {clash} are not attributes (ids, dates or labels)")
    return list(attributes)


def _categorical(values: pd.Series, whole: pd.Series) -> pd.Categorical:
    levels = pd.Index(whole.dropna().astype(str).unique()).sort_values()
    return pd.Categorical(values.astype(object).where(values.notna()).map(
        lambda v: v if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)
    ).to_numpy(), categories=levels)


def _attribute(values: pd.Series, whole: pd.Series, as_of: pd.Timestamp) -> Any:
    if pd.api.types.is_bool_dtype(whole.dtype):
        return values.astype("float64").to_numpy()
    if pd.api.types.is_numeric_dtype(whole.dtype):
        return pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64")
    if pd.api.types.is_datetime64_any_dtype(whole.dtype):
        days = _days_before(values, as_of)
        return np.where(days >= 0, days, np.nan)
    return _categorical(values, whole)


def _with_categorical_keys(world: World) -> World:
    """The same world with id and type columns stored as ``category`` (new frames, same data)."""

    def encoded(frame: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
        change = {
            c: frame[c].astype("category")
            for c in columns
            if c in frame.columns and not isinstance(frame[c].dtype, pd.CategoricalDtype)
        }
        return frame.assign(**change) if change else frame

    return World(
        customers=world.customers,
        events=encoded(world.events, ("customer_id", "event_type")) if world.events is not None else None,
        tickets=encoded(world.tickets, ("customer_id",)) if world.tickets is not None else None,
        feedback=encoded(world.feedback, ("customer_id",)) if world.feedback is not None else None,
    )


def _as_timestamp(value: pd.Timestamp | str | Any) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts


def _windows(windows_days: Sequence[int]) -> tuple[int, ...]:
    windows = tuple(sorted({int(w) for w in windows_days}))
    if not windows or windows[0] < 1:
        raise ValueError(
            f"windows_days must be one or more positive day counts, got {windows_days!r}"
        )
    return windows


def _customer_index(customer_ids: Iterable[Any]) -> pd.Index:
    if not isinstance(customer_ids, pd.Index | pd.Series | np.ndarray | list | tuple):
        customer_ids = list(customer_ids)
    index = pd.Index(customer_ids, name="customer_id")
    if not index.is_unique:
        dup = index[index.duplicated()].unique()[:5].tolist()
        raise ValueError(f"customer ids must be unique; duplicated: {dup}")
    return index


def _require(frame: pd.DataFrame, columns: Iterable[str], table: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise KeyError(
            f"{table}: missing column(s) {', '.join(missing)}; "
            f"found {', '.join(map(str, frame.columns))}"
        )


def _positions(ids: pd.Series, index: pd.Index) -> np.ndarray:
    """Position of each row's customer in ``index`` (-1 if not there)."""
    # Look up each distinct id once, then spread to the rows: about twice as fast as
    # ``index.get_indexer(ids)`` on millions of string rows, and nearly free for categoricals.
    if isinstance(ids.dtype, pd.CategoricalDtype):
        codes, distinct = ids.cat.codes.to_numpy(), ids.cat.categories
    else:
        codes, distinct = pd.factorize(ids)
    distinct_pos = np.append(index.get_indexer(distinct), -1)
    return distinct_pos[codes]  # code -1 (missing id) picks the appended -1


def _value_masks(
    values: pd.Series, names: Sequence[str], rows: np.ndarray
) -> dict[str, np.ndarray]:
    """For each name, which of the selected rows hold it."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        codes = values.cat.codes.to_numpy()[rows]
        categories = values.cat.categories
    else:
        codes, categories = pd.factorize(values[rows])
    lookup = pd.Index(categories)
    return {
        name: codes == lookup.get_loc(name) if name in lookup else np.zeros(len(codes), bool)
        for name in names
    }


def _stamps(values: pd.Series) -> np.ndarray:
    return values.to_numpy(dtype="datetime64[ns]")


def _stamp(as_of: pd.Timestamp) -> np.datetime64:
    return np.datetime64(as_of.as_unit("ns").asm8)


def _days_before(values: pd.Series, as_of: pd.Timestamp) -> np.ndarray:
    """Days from each timestamp to ``as_of`` (>= 0: on/before as_of; NaN where missing)."""
    return (_stamp(as_of) - _stamps(values)) / np.timedelta64(1, "D")


def _hours_between(start: np.ndarray, end: np.ndarray | np.datetime64) -> np.ndarray:
    """Hours from ``start`` to ``end`` (NaN where either is missing)."""
    return (end - start) / np.timedelta64(1, "h")


def _optional_timestamps(frame: pd.DataFrame, column: str) -> pd.Series:
    if column in frame.columns:
        return frame[column]
    return pd.Series(pd.NaT, index=frame.index, dtype="datetime64[ns]")


def _optional_floats(frame: pd.DataFrame, column: str) -> np.ndarray:
    if column not in frame.columns:
        return np.full(len(frame), np.nan)
    return pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


def _optional_bools(frame: pd.DataFrame, column: str) -> np.ndarray:
    if column not in frame.columns:
        return np.zeros(len(frame), dtype=bool)
    return frame[column].astype("boolean").fillna(False).to_numpy(dtype=bool)


# Grouped reductions over customer positions: ``pos`` holds each row's customer position (>= 0
# after filtering), ``mask`` the rows to use, ``n`` the number of customers.


def _count(pos: np.ndarray, mask: np.ndarray, n: int) -> np.ndarray:
    return np.bincount(pos[mask], minlength=n).astype("float64")


def _sum(pos: np.ndarray, values: np.ndarray, mask: np.ndarray, n: int) -> np.ndarray:
    return np.bincount(pos[mask], weights=values[mask], minlength=n).astype("float64")


def _mean(pos: np.ndarray, values: np.ndarray, mask: np.ndarray, n: int) -> np.ndarray:
    count = _count(pos, mask, n)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, _sum(pos, values, mask, n) / count, np.nan)


def _max(pos: np.ndarray, values: np.ndarray, mask: np.ndarray, n: int) -> np.ndarray:
    out = np.full(n, -np.inf)
    np.maximum.at(out, pos[mask], values[mask])
    out[out == -np.inf] = np.nan
    return out


def _min(pos: np.ndarray, values: np.ndarray, mask: np.ndarray, n: int) -> np.ndarray:
    out = np.full(n, np.inf)
    np.minimum.at(out, pos[mask], values[mask])
    out[out == np.inf] = np.nan
    return out


def _trend(
    pos: np.ndarray,
    age: np.ndarray,
    kind: np.ndarray,
    history_days: np.ndarray,
    windows: tuple[int, ...],
    n: int,
) -> np.ndarray:
    """Daily rate of ``kind`` events in the recent window relative to the period before it.

    The recent window is the shortest one; the previous period runs from there back to the
    longest window (or, with a single window, one more window length). The previous rate is
    taken over the part of that period the customer has event history for (from their first
    event on/before ``as_of``), and only if that part is at least as long as the recent window
    (or the whole previous period, if shorter): otherwise the first event alone would make a
    new customer look like they were declining. The trend is ``recent rate / previous rate``:
    0 stopped, 1 steady, 0.5 halved, 2 doubled; NaN where there is too little history or no
    such events in the previous period.
    """
    short = windows[0]
    previous_len = windows[-1] - short if len(windows) > 1 else short
    recent = _count(pos, kind & (age < short), n)
    previous = _count(pos, kind & (age >= short) & (age < short + previous_len), n)
    previous_days = np.clip(np.nan_to_num(history_days, nan=0.0) - short, 0.0, previous_len)
    enough_history = previous_days >= min(short, previous_len)
    with np.errstate(invalid="ignore", divide="ignore"):
        previous_rate = previous / previous_days
        return np.where(enough_history & (previous > 0), (recent / short) / previous_rate, np.nan)
