"""Churn drivers: which situations go with churn, raw and adjusted (issue 10; docs/drivers.md).

The analysis reads as the steps a data scientist would say aloud:

1. :func:`driver_dates`: monthly ``as_of`` dates whose churn label window is observed.
2. :func:`driver_table`: one row per ``(customer, as_of)`` with the churn label, the customer's
   value, two controls (log value, log tenure) and one 0/1 column per named driver, derived
   from the point-in-time feature table (:func:`driver_indicators`); themes and sentiment come
   from the text models' scores, never from labels.
3. :func:`raw_effects`: per driver, churn with and without it (Wilson intervals), lift and
   difference with intervals from a bootstrap over customers (dates repeat a customer), and the
   excess churned value ``(rate with - rate without) x value of those with it``.
4. :func:`adjusted_effects`: a joint ridge logistic regression of churn on every driver and the
   controls, with cluster-robust (sandwich, by customer) intervals, and the adjusted excess
   churned value: what the model says churned value would have been without the driver.
5. :func:`drivers_report`: all of it for a world, ranked by adjusted excess churned value.

Everything is a pure function of DataFrames and configs. These are associations in past data,
not causes: a driver's adjusted effect is net of the other drivers and controls listed, never of
what nobody measured.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from retain.churn import features
from retain.config import DriversConfig, FeatureConfig, LabelConfig, Taxonomy
from retain.contracts import World

if TYPE_CHECKING:
    from retain.scoring import ScoringModels
    from retain.training import TextModels

logger = logging.getLogger(__name__)

#: Control columns of a driver table: in the adjusted regression, never ranked as drivers.
CONTROLS = ("log_value", "log_tenure", "log_feedback")
#: An expected count of texts (a sum of probabilities) from which a text driver is on.
EXPECTED_TEXTS = 0.5
#: A low rating: ratings are stored 0-1 (``data.rating_scale`` mapped), so 2 of 5 is (2 - 1) / (5 - 1).
LOW_RATING = 0.25
#: Customer attributes whose levels become drivers; the most common level is the reference.
ATTRIBUTES = features.CATEGORY_ATTRIBUTES

#: Columns of :func:`drivers_report`, in order.
REPORT_COLUMNS = (
    "rank", "driver", "label", "group", "reference",
    "rows_with", "customers_with", "rate_with", "rate_with_low", "rate_with_high",
    "rate_without", "rate_without_low", "rate_without_high",
    "lift", "lift_low", "lift_high", "difference", "difference_low", "difference_high",
    "churned_value_with", "excess_churned_value", "excess_churned_value_low", "excess_churned_value_high",
    "coefficient", "coefficient_low", "coefficient_high", "odds_ratio", "adjusted_difference",
    "adjusted_churned_value", "adjusted_churned_value_low", "adjusted_churned_value_high",
    "adjusted_excludes_zero", "share_of_churned_value",
)


@dataclass(frozen=True)
class DriverTable:
    """Labelled observations with named 0/1 drivers.

    Attributes
    ----------
    rows:
        One row per ``(customer_id, as_of)``: ``customer_id``, ``as_of``, ``churned`` (0/1),
        ``value``, the :data:`CONTROLS`, then one boolean column per driver id.
    drivers:
        One row per driver: ``driver`` (the column in ``rows``), ``label`` (plain language),
        ``group`` (service, feedback, theme, negative theme, channel, segment, plan, region) and
        ``reference`` (True for the reference level of a customer attribute).
    value_source:
        What ``value`` holds: ``monthly_value``, ``purchase_amount_per_30d`` or ``customers`` (1
        per customer: "churned value" then counts customers).
    """

    rows: pd.DataFrame
    drivers: pd.DataFrame
    value_source: str
    dates: tuple[pd.Timestamp, ...] = field(default=())

    @property
    def driver_ids(self) -> list[str]:
        return self.drivers["driver"].tolist()


# --------------------------------------------------------------------------------------------
# 1. Dates


def driver_dates(
    world: World,
    horizon_days: int,
    every_days: int = 30,
    max_dates: int | None = None,
    label_config: LabelConfig | None = None,
) -> list[pd.Timestamp]:
    """``as_of`` dates ``every_days`` apart whose label window ``(as_of, as_of + horizon]`` is observed.

    The latest is ``horizon_days`` before the data (or, for ``inactivity``, the newest qualifying
    event) ends; the earliest has the training job's minimum history
    (:data:`retain.training.MIN_HISTORY_DAYS`) behind it. With ``max_dates`` only the latest
    that many. Oldest first.
    """
    from retain.training import MIN_HISTORY_DAYS, labels_observed_until, observed_since

    end = labels_observed_until(world, label_config or LabelConfig()).normalize()
    last = end - pd.Timedelta(days=horizon_days)
    earliest = observed_since(world).normalize() + pd.Timedelta(days=MIN_HISTORY_DAYS)
    dates: list[pd.Timestamp] = []
    as_of = last
    while as_of >= earliest and (max_dates is None or len(dates) < max_dates):
        dates.append(as_of)
        as_of -= pd.Timedelta(days=every_days)
    if not dates:
        raise ValueError(
            f"no as_of date with {MIN_HISTORY_DAYS} days of history and an observed "
            f"{horizon_days}-day label window: the data runs {earliest.date()} (plus history) to {end.date()}"
        )
    return dates[::-1]


# --------------------------------------------------------------------------------------------
# 2. The driver table


def channel_ticket_counts(
    tickets: pd.DataFrame,
    customer_ids: Sequence[Any] | pd.Index,
    as_of: pd.Timestamp,
    window_days: int,
    channels: Sequence[str],
) -> pd.DataFrame:
    """Tickets opened in ``(as_of - window_days, as_of]`` per customer and channel.

    Columns ``channel_<c>_tickets`` (float), indexed by ``customer_id`` in the order given;
    tickets on a channel not in ``channels`` are not counted.
    """
    opened = tickets["opened_at"]
    recent = tickets.loc[(opened <= as_of) & (opened > as_of - pd.Timedelta(days=window_days))]
    index = pd.Index(pd.Index(customer_ids).astype(str), name="customer_id")
    row = index.get_indexer(recent["customer_id"].astype(str))
    channel = pd.Categorical(recent["channel"].astype(str), categories=list(channels)).codes
    keep = (row >= 0) & (channel >= 0)
    counts = np.bincount(
        row[keep] * len(channels) + channel[keep], minlength=len(index) * len(channels)
    ).reshape(len(index), len(channels))
    return pd.DataFrame(
        counts.astype(float), index=index, columns=[f"channel_{c}_tickets" for c in channels]
    )


def theme_mention_counts(
    feedback: pd.DataFrame,
    feedback_scores: pd.DataFrame,
    customer_ids: Sequence[Any] | pd.Index,
    as_of: pd.Timestamp,
    window_days: int,
    theme_ids: Sequence[str],
) -> pd.DataFrame:
    """Expected number of texts on each theme that are not negative, feedback written in the window.

    The sum of ``p(theme) x (1 - p(negative))`` per customer (the negative ones are the feature
    table's ``theme_<id>_negative_<w>d``), or of ``p(theme)`` when the scores have no sentiment.
    Columns ``theme_<id>_not_negative`` (or ``theme_<id>_mentions``), float, indexed by
    ``customer_id`` in the order given; feedback without a score row counts 0.
    """
    created = feedback["created_at"]
    recent = feedback.loc[(created <= as_of) & (created > as_of - pd.Timedelta(days=window_days))]
    columns = [f"theme_{t}" for t in theme_ids]
    sentiment = [c for c in ("sentiment_negative",) if c in feedback_scores.columns]
    scored = recent[["feedback_id", "customer_id"]].merge(
        feedback_scores[["feedback_id", *columns, *sentiment]], on="feedback_id", how="inner"
    )
    with_sentiment = bool(sentiment) and feedback_scores["sentiment_negative"].notna().all()
    if with_sentiment:
        scored[columns] = scored[columns].mul(1.0 - scored["sentiment_negative"], axis=0)
    sums = scored.groupby(scored["customer_id"].astype(str))[columns].sum()
    index = pd.Index(pd.Index(customer_ids).astype(str), name="customer_id")
    sums = sums.reindex(index, fill_value=0.0).fillna(0.0).astype(float)
    suffix = "not_negative" if with_sentiment else "mentions"
    sums.columns = [f"theme_{t}_{suffix}" for t in theme_ids]
    return sums


def driver_indicators(
    table: pd.DataFrame,
    window_days: int,
    theme_ids: Sequence[str] = (),
    theme_names: Mapping[str, str] | None = None,
    slow_response_hours: float = 24.0,
    low_csat: float = 2.0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Named 0/1 drivers from a point-in-time feature table.

    Parameters
    ----------
    table:
        A :func:`retain.churn.features.build_features` table with window ``window_days``,
        optionally with the ``channel_<c>_tickets`` and ``theme_<id>_mentions`` columns of
        :func:`channel_ticket_counts` and :func:`theme_mention_counts`. A driver whose source
        columns are absent (no tickets table, no text scores...) is left out.
    window_days:
        The window the windowed features were built with.
    theme_ids:
        Taxonomy theme ids, in order.
    theme_names:
        Plain-language theme names by id (the taxonomy's ``name``); the id when missing.
    slow_response_hours:
        A first response later than this is slow.
    low_csat:
        A CSAT answer at or below this is low.

    Returns
    -------
    indicators : pandas.DataFrame
        Boolean columns named by driver id, the index of ``table``.
    drivers : pandas.DataFrame
        ``driver``, ``label``, ``group``, ``reference`` (see :class:`DriverTable`).
    """
    w = window_days
    names = dict(theme_names or {})
    columns: dict[str, np.ndarray] = {}
    catalogue: list[tuple[str, str, str, bool]] = []

    def has(*needed: str) -> bool:
        return all(c in table.columns for c in needed)

    def add(driver: str, label: str, group: str, values: Any, reference: bool = False) -> None:
        columns[driver] = np.asarray(values, dtype=bool)
        catalogue.append((driver, label, group, reference))

    def col(name: str) -> pd.Series:
        return table[name]

    in_window = f"in the last {w} days"
    if has(f"tickets_{w}d"):
        add("any_ticket", f"contacted support (a ticket) {in_window}", "service", col(f"tickets_{w}d") >= 1)
        add("repeated_contacts", f"2 or more tickets {in_window}", "service", col(f"tickets_{w}d") >= 2)
        add("many_contacts", f"3 or more tickets {in_window}", "service", col(f"tickets_{w}d") >= 3)
    if has(f"first_response_hours_max_{w}d", "awaiting_first_response_hours_max"):
        slow = (col(f"first_response_hours_max_{w}d") > slow_response_hours) | (
            col("awaiting_first_response_hours_max") > slow_response_hours
        )
        add(
            "slow_first_response",
            f"slow first response (a ticket first answered after {slow_response_hours:g} h) "
            f"{in_window}, or one waiting longer at as_of",
            "service",
            slow,
        )
    if has("open_tickets"):
        add("open_ticket", "an open (unresolved) ticket at as_of", "service", col("open_tickets") >= 1)
    if has(f"reopened_{w}d"):
        add("reopened_ticket", f"a reopened ticket {in_window}", "service", col(f"reopened_{w}d") > 0)
    if has(f"escalated_{w}d"):
        add("escalated_ticket", f"an escalated ticket {in_window}", "service", col(f"escalated_{w}d") > 0)
    if has(f"csat_min_{w}d"):
        add("low_csat", f"low CSAT (<= {low_csat:g}) {in_window}", "service", col(f"csat_min_{w}d") <= low_csat)
    if has(f"negative_feedback_{w}d"):
        add(
            "negative_feedback", f"negative feedback (text model) {in_window}", "feedback",
            col(f"negative_feedback_{w}d") >= EXPECTED_TEXTS,
        )
    if has("nps_last"):
        add("nps_detractor", "NPS detractor (last answer 0-6)", "feedback", col("nps_last") <= 6)
    if has(f"ces_mean_{w}d"):
        add("high_effort", f"high effort (CES 5-7 of 7) {in_window}", "feedback", col(f"ces_mean_{w}d") >= 5)
    if has(f"rating_mean_{w}d"):
        add("low_rating", f"low rating (1-2 of 5) {in_window}", "feedback", col(f"rating_mean_{w}d") <= LOW_RATING)
    for theme in theme_ids:
        name = names.get(theme, theme)
        if has(f"theme_{theme}_not_negative"):
            add(
                f"theme_{theme}", f"neutral or positive feedback on {name} {in_window}", "theme",
                col(f"theme_{theme}_not_negative") >= EXPECTED_TEXTS,
            )
        elif has(f"theme_{theme}_mentions"):
            add(
                f"theme_{theme}", f"feedback on {name} {in_window}", "theme",
                col(f"theme_{theme}_mentions") >= EXPECTED_TEXTS,
            )
        if has(f"theme_{theme}_negative_{w}d"):
            add(
                f"negative_{theme}", f"negative feedback on {name} {in_window}", "negative theme",
                col(f"theme_{theme}_negative_{w}d") >= EXPECTED_TEXTS,
            )
    for column in table.columns:
        if column.startswith("channel_") and column.endswith("_tickets"):
            channel = column[len("channel_"):-len("_tickets")]
            add(f"channel_{channel}", f"a ticket by {channel} {in_window}", "channel", col(column) >= 1)
    for attribute in ATTRIBUTES:
        if not has(attribute):
            continue
        values = table[attribute].astype(object)
        counts = values.value_counts()
        for level in counts.index:
            add(
                f"{attribute}_{level}", f"{attribute} {level}", attribute, values == level,
                reference=level == counts.index[0],
            )
    indicators = pd.DataFrame(columns, index=table.index)
    drivers = pd.DataFrame(catalogue, columns=["driver", "label", "group", "reference"])
    return indicators, drivers


def driver_table(
    world: World,
    dates: Sequence[pd.Timestamp],
    feedback_scores: pd.DataFrame | None | Callable[[pd.Timestamp], pd.DataFrame | None],
    theme_ids: Sequence[str],
    horizon_days: int,
    config: DriversConfig | None = None,
    label_config: LabelConfig | None = None,
    theme_names: Mapping[str, str] | None = None,
) -> DriverTable:
    """Labelled observations at ``dates`` with named drivers (see :class:`DriverTable`).

    Parameters
    ----------
    world:
        The customers table and whichever of events, tickets, feedback exist.
    dates:
        ``as_of`` dates whose label windows are observed (:func:`driver_dates`).
    feedback_scores:
        Text model scores per ``feedback_id`` (``text.scoring.score_feedback``), a function of
        ``as_of`` giving them (point-in-time models), or None for no text drivers.
    theme_ids:
        Taxonomy theme ids, in order.
    horizon_days:
        The churn label window.
    config:
        Window, thresholds (defaults of :class:`retain.config.DriversConfig`).
    label_config:
        The churn definition (default contractual).
    theme_names:
        Plain-language theme names by id, for the labels.
    """
    config = config or DriversConfig()
    w = config.window_days
    table = features.build_training_table(
        world, dates, feedback_scores, theme_ids, windows_days=(w,), horizon_days=horizon_days,
        definition=label_config,
    )
    extras = _per_date_counts(world, table, feedback_scores, theme_ids, w)
    if extras is not None:
        table = pd.concat([table, extras.set_axis(table.index)], axis=1)
    indicators, drivers = driver_indicators(
        table, w, theme_ids, theme_names, config.slow_response_hours, config.low_csat
    )
    value, source = _customer_value(table)
    tenure_years = table["tenure_days"].clip(lower=0) / 365.25
    rows = pd.concat(
        [
            pd.DataFrame({
                "customer_id": table["customer_id"].astype(str),
                "as_of": table["as_of"],
                features.LABEL_COLUMN: table[features.LABEL_COLUMN].astype(int),
                "value": value,
                "log_value": np.log1p(value),
                "log_tenure": np.log1p(tenure_years.fillna(0.0)),
                **_volume_controls(table, w),
            }),
            indicators,
        ],
        axis=1,
    )
    logger.info(
        "driver table: %d rows, %d customers, %d dates, %d drivers, value from %s",
        len(rows), rows["customer_id"].nunique(), len(dates), len(drivers), source,
    )
    return DriverTable(rows=rows, drivers=drivers, value_source=source, dates=tuple(dates))


def _per_date_counts(
    world: World,
    table: pd.DataFrame,
    feedback_scores: pd.DataFrame | None | Callable[[pd.Timestamp], pd.DataFrame | None],
    theme_ids: Sequence[str],
    window_days: int,
) -> pd.DataFrame | None:
    """Channel and theme-mention counts for the rows of a stacked feature table, in its order."""
    with_channels = world.tickets is not None and "channel" in world.tickets.columns
    channels = (
        sorted(world.tickets["channel"].dropna().astype(str).unique()) if with_channels else []
    )
    parts = []
    for as_of, rows in table.groupby("as_of", sort=False):
        ids = rows["customer_id"].astype(str)
        found: list[pd.DataFrame] = []
        if with_channels:
            found.append(channel_ticket_counts(world.tickets, ids, as_of, window_days, channels))
        scores = feedback_scores(as_of) if callable(feedback_scores) else feedback_scores
        themes = [t for t in theme_ids if scores is not None and f"theme_{t}" in scores.columns]
        if world.feedback is not None and themes:
            found.append(
                theme_mention_counts(world.feedback, scores, ids, as_of, window_days, themes)
            )
        if found:
            parts.append(pd.concat(found, axis=1).set_axis(rows.index))
    return pd.concat(parts).reindex(table.index) if parts else None


def _volume_controls(table: pd.DataFrame, window_days: int) -> dict[str, pd.Series]:
    """log(1 + feedback texts in the window): text drivers grow with how much a customer writes."""
    column = f"feedback_{window_days}d"
    return {"log_feedback": np.log1p(table[column].fillna(0.0))} if column in table.columns else {}


def _customer_value(table: pd.DataFrame) -> tuple[pd.Series, str]:
    """Monthly value, else purchase value per 30 days, else 1 per customer (counts customers)."""
    for column in ("monthly_value", "purchase_amount_per_30d"):
        if column in table.columns and table[column].notna().any():
            return table[column].astype(float).fillna(0.0).clip(lower=0.0), column
    return pd.Series(1.0, index=table.index), "customers"


# --------------------------------------------------------------------------------------------
# 3. Raw effects


def raw_effects(drivers: DriverTable, config: DriversConfig | None = None) -> pd.DataFrame:
    """Churn with and without each driver, lift and difference with intervals, excess churned value.

    Rates are over customer-dates. Rate intervals are Wilson score intervals (they treat rows as
    independent; a customer seen at several dates makes them a little narrow). Lift
    (``rate_with / rate_without``) and difference (``rate_with - rate_without``) intervals are
    percentile intervals of a bootstrap that draws customers with replacement, all their dates
    with them, ``config.bootstrap`` times (seed ``config.seed``).

    Churned values are per ``as_of`` date (sums divided by the number of dates):
    ``churned_value_with`` is the value of customers with the driver who churned within the
    horizon; ``excess_churned_value = difference x value of those with the driver``, with the
    difference's interval.

    Returns
    -------
    pandas.DataFrame
        One row per driver (in ``drivers.drivers`` order): ``driver``, ``rows_with``,
        ``customers_with``, ``rate_with`` (+ ``_low``/``_high``), ``rate_without`` (+),
        ``lift`` (+), ``difference`` (+), ``churned_value_with``, ``excess_churned_value`` (+).
    """
    from retain.outreach.effect import wilson_interval

    config = config or DriversConfig()
    rows, ids = drivers.rows, drivers.driver_ids
    y = rows[features.LABEL_COLUMN].to_numpy(dtype=float)
    value = rows["value"].to_numpy(dtype=float)
    on = rows[ids].to_numpy(dtype=float)
    n_dates = max(rows["as_of"].nunique(), 1)
    codes, customers = pd.factorize(rows["customer_id"])

    n_with = on.sum(axis=0)
    churned_with = y @ on
    n_without = len(y) - n_with
    churned_without = y.sum() - churned_with
    with np.errstate(invalid="ignore", divide="ignore"):
        rate_with = churned_with / n_with
        rate_without = churned_without / n_without
    draws_with, draws_without = _bootstrap_rates(codes, len(customers), y, on, config)
    with np.errstate(invalid="ignore", divide="ignore"):
        lift_draws = draws_with / draws_without
    difference_draws = draws_with - draws_without
    tail = (1 - config.confidence) / 2
    # No interpolation between draws: a draw with nobody churning without the driver has an
    # infinite lift, which is a fair upper end; draws with nobody having it (NaN) are skipped.
    lift_low, lift_high = np.nanquantile(lift_draws, [tail, 1 - tail], axis=0, method="inverted_cdf")
    diff_low, diff_high = np.nanquantile(difference_draws, [tail, 1 - tail], axis=0, method="inverted_cdf")
    value_with = value @ on / n_dates
    wilson_with = [wilson_interval(int(c), int(n), config.confidence) for c, n in zip(churned_with, n_with, strict=True)]
    wilson_without = [
        wilson_interval(int(c), int(n), config.confidence) for c, n in zip(churned_without, n_without, strict=True)
    ]
    customers_with = [int(pd.unique(codes[on[:, k] > 0]).size) for k in range(len(ids))]
    difference = rate_with - rate_without
    with np.errstate(invalid="ignore", divide="ignore"):
        lift = rate_with / rate_without
    return pd.DataFrame({
        "driver": ids,
        "rows_with": n_with.astype(int),
        "customers_with": customers_with,
        "rate_with": rate_with,
        "rate_with_low": [lo for lo, _ in wilson_with],
        "rate_with_high": [hi for _, hi in wilson_with],
        "rate_without": rate_without,
        "rate_without_low": [lo for lo, _ in wilson_without],
        "rate_without_high": [hi for _, hi in wilson_without],
        "lift": lift,
        "lift_low": lift_low,
        "lift_high": lift_high,
        "difference": difference,
        "difference_low": diff_low,
        "difference_high": diff_high,
        "churned_value_with": (y * value) @ on / n_dates,
        "excess_churned_value": difference * value_with,
        "excess_churned_value_low": diff_low * value_with,
        "excess_churned_value_high": diff_high * value_with,
    })


def _bootstrap_rates(
    codes: np.ndarray, n_customers: int, y: np.ndarray, on: np.ndarray, config: DriversConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Churn rates with and without each driver in customer-cluster bootstrap samples.

    Returns two ``(config.bootstrap, n_drivers)`` arrays. Each sample draws ``n_customers``
    customers with replacement (multinomial counts) and keeps all rows of each draw.
    """
    from scipy import sparse

    membership = sparse.csr_matrix(
        (np.ones(len(codes)), (codes, np.arange(len(codes)))), shape=(n_customers, len(codes))
    )
    rows_with = membership @ on  # per customer: rows with each driver
    churned_with = membership @ (on * y[:, None])
    rows_all = np.asarray(membership.sum(axis=1)).ravel()
    churned_all = membership @ y
    rng = np.random.default_rng(config.seed)
    uniform = np.full(n_customers, 1.0 / n_customers)
    out_with, out_without = [], []
    chunk = max(1, min(config.bootstrap, 4_000_000 // max(n_customers, 1)))
    done = 0
    while done < config.bootstrap:
        b = min(chunk, config.bootstrap - done)
        weights = rng.multinomial(n_customers, uniform, size=b).astype(float)
        n_w, c_w = weights @ rows_with, weights @ churned_with
        n_all, c_all = weights @ rows_all, weights @ churned_all
        with np.errstate(invalid="ignore", divide="ignore"):
            out_with.append(c_w / n_w)
            out_without.append((c_all[:, None] - c_w) / (n_all[:, None] - n_w))
        done += b
    return np.vstack(out_with), np.vstack(out_without)


# --------------------------------------------------------------------------------------------
# 4. Adjusted effects


def adjusted_effects(drivers: DriverTable, config: DriversConfig | None = None) -> pd.DataFrame:
    """A joint ridge logistic regression of churn on every driver and the controls.

    The reference level of each customer attribute is left out of the regression (its row is
    NaN). Coefficients are log odds ratios; their intervals use a cluster-robust (sandwich)
    covariance with customers as clusters, since dates repeat a customer. The adjusted excess
    churned value of driver ``k`` is, over the rows with it,
    ``sum(value * (p - p_without_k)) / n_dates`` where ``p_without_k`` is the fitted probability
    with the driver's coefficient removed; its interval puts the coefficient's interval ends in
    place of the coefficient.

    Returns
    -------
    pandas.DataFrame
        One row per driver: ``driver``, ``coefficient`` (+ ``_low``/``_high``), ``odds_ratio``,
        ``adjusted_difference`` (mean ``p - p_without_k`` over rows with the driver),
        ``adjusted_churned_value`` (+ ``_low``/``_high``), ``adjusted_excludes_zero``. The
        frame's ``attrs["controls"]`` holds the controls' coefficients.
    """
    from scipy.special import expit
    from scipy.stats import norm
    from sklearn.linear_model import LogisticRegression

    config = config or DriversConfig()
    rows, catalogue = drivers.rows, drivers.drivers
    fitted = catalogue.loc[~catalogue["reference"], "driver"].tolist()
    names = fitted + [c for c in CONTROLS if c in rows.columns and rows[c].std() > 0]
    X = rows[names].to_numpy(dtype=float)
    y = rows[features.LABEL_COLUMN].to_numpy(dtype=int)
    value = rows["value"].to_numpy(dtype=float)
    n_dates = max(rows["as_of"].nunique(), 1)
    model = LogisticRegression(C=1.0 / config.l2_penalty, solver="newton-cholesky", max_iter=200)
    model.fit(X, y)
    coef = model.coef_[0]
    eta = model.intercept_[0] + X @ coef
    se = _cluster_robust_se(X, y, expit(eta), pd.factorize(rows["customer_id"])[0], config.l2_penalty)
    z = float(norm.ppf(0.5 + config.confidence / 2))
    out = []
    for k, driver in enumerate(fitted):
        with_it = X[:, k] > 0
        base = eta[with_it] - coef[k]

        def excess(beta: float, base: np.ndarray = base, with_it: np.ndarray = with_it) -> np.ndarray:
            return expit(base + beta) - expit(base)

        low, high = coef[k] - z * se[k], coef[k] + z * se[k]
        out.append({
            "driver": driver,
            "coefficient": coef[k],
            "coefficient_low": low,
            "coefficient_high": high,
            "odds_ratio": float(np.exp(coef[k])),
            "adjusted_difference": float(excess(coef[k]).mean()) if with_it.any() else np.nan,
            "adjusted_churned_value": float(excess(coef[k]) @ value[with_it]) / n_dates,
            "adjusted_churned_value_low": float(excess(low) @ value[with_it]) / n_dates,
            "adjusted_churned_value_high": float(excess(high) @ value[with_it]) / n_dates,
            "adjusted_excludes_zero": bool(low > 0 or high < 0),
        })
    table = pd.DataFrame(out, columns=[
        "driver", "coefficient", "coefficient_low", "coefficient_high", "odds_ratio",
        "adjusted_difference", "adjusted_churned_value", "adjusted_churned_value_low",
        "adjusted_churned_value_high", "adjusted_excludes_zero",
    ])
    table = catalogue[["driver"]].merge(table, on="driver", how="left")
    table["adjusted_excludes_zero"] = table["adjusted_excludes_zero"].fillna(False).astype(bool)
    table.attrs["controls"] = {
        name: float(coef[len(fitted) + i]) for i, name in enumerate(names[len(fitted):])
    }
    return table


def _cluster_robust_se(
    X: np.ndarray, y: np.ndarray, p: np.ndarray, clusters: np.ndarray, l2_penalty: float
) -> np.ndarray:
    """Sandwich standard errors of a ridge logistic regression's coefficients, by cluster.

    ``H^-1 M H^-1`` with ``H`` the penalised Hessian and ``M`` the sum over clusters of the outer
    product of each cluster's score, times ``G / (G - 1)`` for ``G`` clusters. The intercept is
    in the model but not returned.
    """
    from scipy import sparse

    design = np.column_stack([np.ones(len(X)), X])
    hessian = design.T @ (design * (p * (1 - p))[:, None])
    hessian[1:, 1:] += l2_penalty * np.eye(X.shape[1])
    n_clusters = int(clusters.max()) + 1
    membership = sparse.csr_matrix(
        (np.ones(len(clusters)), (clusters, np.arange(len(clusters)))), shape=(n_clusters, len(clusters))
    )
    scores = membership @ (design * (y - p)[:, None])
    meat = scores.T @ scores * n_clusters / max(n_clusters - 1, 1)
    inverse = np.linalg.inv(hessian)
    covariance = inverse @ meat @ inverse
    return np.sqrt(np.clip(np.diag(covariance)[1:], 0.0, None))


# --------------------------------------------------------------------------------------------
# 5. The report


def driver_effects(drivers: DriverTable, config: DriversConfig | None = None) -> pd.DataFrame:
    """Raw and adjusted effects of every driver seen often enough, ranked (see :func:`drivers_report`)."""
    config = config or DriversConfig()
    rows_with = drivers.rows[drivers.driver_ids].sum(axis=0)
    enough = (rows_with >= config.min_rows) & (len(drivers.rows) - rows_with >= config.min_rows)
    dropped = [d for d in drivers.driver_ids if not enough[d]]
    if dropped:
        logger.info("drivers seen (or missed) in fewer than %d rows, left out: %s", config.min_rows, ", ".join(dropped))
    kept = drivers.drivers[drivers.drivers["driver"].isin(enough.index[enough])].reset_index(drop=True)
    # An attribute whose reference level was dropped has none: its levels then compare to the rest.
    kept = DriverTable(
        rows=drivers.rows.drop(columns=dropped), drivers=kept, value_source=drivers.value_source,
        dates=drivers.dates,
    )
    rows = drivers.rows
    if kept.drivers.empty:
        logger.warning("no churn driver to analyse: the data has no tickets, feedback or attributes to derive one from")
        table = pd.DataFrame({c: pd.Series(dtype=object) for c in REPORT_COLUMNS})
        table.attrs.update({"rows": len(rows), "left_out": dropped, "value_source": drivers.value_source})
        return table
    raw = raw_effects(kept, config)
    adjusted = adjusted_effects(kept, config)
    table = kept.drivers.merge(raw, on="driver").merge(adjusted, on="driver")
    churned_value = float((rows[features.LABEL_COLUMN] * rows["value"]).sum()) / max(rows["as_of"].nunique(), 1)
    table["share_of_churned_value"] = table["adjusted_churned_value"] / churned_value if churned_value else np.nan
    table = table.sort_values(
        ["adjusted_churned_value", "excess_churned_value"], ascending=False, na_position="last", kind="stable"
    ).reset_index(drop=True)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    table = table[list(REPORT_COLUMNS)]
    table.attrs.update({
        "rows": len(rows),
        "customers": int(rows["customer_id"].nunique()),
        "dates": [str(d.date()) for d in drivers.dates],
        "churn_rate": float(rows[features.LABEL_COLUMN].mean()) if len(rows) else float("nan"),
        "churned_value_per_date": churned_value,
        "value_source": drivers.value_source,
        "left_out": dropped,
        "controls": adjusted.attrs.get("controls", {}),
    })
    return table


def drivers_report(
    world: World,
    feature_config: FeatureConfig,
    label_config: LabelConfig | None,
    text_models: TextModels | ScoringModels | None,
    config: DriversConfig | None = None,
    taxonomy: Taxonomy | None = None,
    theme_ids: Sequence[str] | None = None,
    feedback_scores: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The churn driver table of a world: raw and adjusted effects, ranked by adjusted churned value.

    Parameters
    ----------
    world:
        The loaded tables.
    feature_config:
        Its ``horizon_days`` is the churn label window.
    label_config:
        The churn definition (None: contractual).
    text_models:
        Anything with fitted ``sentiment`` and ``themes`` models (either may be None):
        ``retain.training.TextModels`` (e.g. ``jobs.registered_text_models``) or
        ``retain.scoring.ScoringModels``. They score every feedback text once. None: no text
        drivers, unless ``feedback_scores`` are given.
    config:
        Window, thresholds, dates, bootstrap (:class:`retain.config.DriversConfig`).
    taxonomy:
        For the themes' plain-language names (and their ids when nothing else gives them).
    theme_ids:
        The theme ids the models' outputs stand for, in order; default ``text_models.theme_ids``
        when it has them, else the taxonomy's.
    feedback_scores:
        Text scores already computed (``text.scoring.score_feedback`` columns); used instead of
        scoring with ``text_models``. Feedback without a score row counts as not said.

    Returns
    -------
    pandas.DataFrame
        :data:`REPORT_COLUMNS`, one row per driver, best first (``rank`` 1). ``attrs`` holds the
        rows, customers, dates, churn rate, churned value per date, value source, the drivers
        left out as too rare and the controls' coefficients.
    """
    config = config or DriversConfig()
    dates = driver_dates(world, feature_config.horizon_days, config.every_days, config.max_dates, label_config)
    if theme_ids is None:
        theme_ids = getattr(text_models, "theme_ids", None) or (taxonomy.ids if taxonomy is not None else [])
    theme_ids = list(theme_ids)
    if feedback_scores is None:
        feedback_scores = _text_scores(world, text_models, theme_ids)
    names = {t.id: t.name for t in taxonomy.themes} if taxonomy is not None else None
    table = driver_table(
        world, dates, feedback_scores, theme_ids if feedback_scores is not None else [],
        feature_config.horizon_days, config, label_config, names,
    )
    return driver_effects(table, config)


def _text_scores(
    world: World, text_models: TextModels | ScoringModels | None, theme_ids: list[str]
) -> pd.DataFrame | None:
    """Every feedback text scored once by the given models (none without models or feedback)."""
    if text_models is None or world.feedback is None or world.feedback.empty:
        return None
    if text_models.sentiment is None and text_models.themes is None:
        return None
    from retain.text.scoring import score_feedback

    return score_feedback(world.feedback, text_models.sentiment, text_models.themes, theme_ids)
