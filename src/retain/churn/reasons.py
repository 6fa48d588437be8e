"""Plain-language reasons a support lead can trust.

A churn model sees many features built from one signal (``first_response_hours_mean_90d`` and
``first_response_hours_max_90d`` are both "slow first responses"). Attributions (log-odds
contributions, one column per feature) are summed per signal with ``features.FEATURE_SIGNALS``;
a column that map does not know (a flat table's ``Contract`` or ``tenure``) is its own signal
``"column:<name>"``.

**The rule.** A signal is a reason for a customer only if

1. its summed attribution for that customer is > 0 (it raises *this* customer's risk), and
2. the customer's key figure for it lies on the *risky side* of the population.

The risky side is read from the data being scored, never assumed:

- numeric feature: its risky direction is the sign of the Spearman correlation, across the
  scored rows, between the feature's value and its own attribution (+1: higher values go with
  higher risk, -1: lower values do; no direction when it cannot be told, e.g. a constant
  column or fewer than two known values). The customer is on the risky side when their value
  is strictly beyond the population **median** in that direction (a customer at the median is
  typical, and "typical" is not a reason; so is a figure that prints the same as the median);
- categorical feature (and a 0/1 flat column): a category is risky when the mean attribution
  of that column over the customers in it is > 0.

retain's own figures also say which way their phrase reads as a risk (``Figure.risky``: more
waiting, fewer logins). Where the data says the opposite (a model that learned "more logins,
more risk"), the figure is not quoted, since "30 logins; median customer: 12" would read as
nonsense to the person calling; where the data cannot tell (the figure is no model input, or
constant), the phrase's direction is used. Flat columns have no such direction: data only.

A signal can be quoted by several key figures (``Signal.figures``, in order of preference: a
ticket waiting for a reply *now* before past waits); the first one on the risky side is used;
if none is, the signal is not a reason for that customer. A signal with no figure to quote is
never a reason. Windowed figures (``_<w>d``) use the longest window present in the features.

Every phrase quotes the customer's figure and the reference, the population median at this
``as_of`` ("median customer"), or for categories the share of customers in the same category:
"2 purchases in the last 180 days; median customer: 7", "Contract: Month-to-month (55% of
customers)". The ``value`` signal (``monthly_value``) and any column or signal named in
``never_reasons`` are never reasons: what a customer pays is why they matter, not why they leave.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

COLUMN_SIGNAL_PREFIX = "column:"
NEVER_REASONS: frozenset[str] = frozenset({"value"})
"""Signal ids that are never reasons, whatever their attribution."""

_WINDOW = re.compile(r"_(?P<days>\d+)d$")


# --------------------------------------------------------------------------------------------
# How figures read


def _duration(hours: float) -> str:
    """Hours as a person would say them: "30 h" under two days, "2.5 days" from then on."""
    if np.isnan(hours):
        return "an unknown time"
    return f"{hours:.0f} h" if hours < 48 else _days(hours)


def _days(hours: float) -> str:
    days = hours / 24
    return f"{days:.1f}".removesuffix(".0") + " days" if days < 10 else f"{days:.0f} days"


def _durations(value: float, reference: float) -> tuple[str, str]:
    """Two durations in one unit (days if either reaches two days), so they compare at a glance."""
    if max(value, reference) < 48:
        return f"{value:.0f} h", f"{reference:.0f} h"
    return _days(value), _days(reference)


def _count(value: float) -> str:
    return f"{value:.0f}"


def _one_decimal(value: float) -> str:
    return f"{value:.1f}"


def _share(value: float) -> str:
    return f"{value:.0%}"


def _number(value: float) -> str:
    """A flat column's number: whole numbers without decimals, others with up to two."""
    if float(value).is_integer() or abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _level(value: object) -> str:
    """A category or 0/1 value as text (``1.0`` reads ``1``)."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return f"{value:.0f}"
    if isinstance(value, bool | np.bool_):
        return "Yes" if value else "No"
    return str(value)


@dataclass(frozen=True)
class Figure:
    """One way to quote a signal: a key column, the phrase, and how its figures read.

    ``column`` and ``extra`` may hold ``{w}``, filled with the longest window (days) for which
    the features have that column. ``template`` fields: ``{value}`` (the customer's key figure),
    ``{reference}`` (the population median of it), ``{w}``, ``{short}`` (the shortest window
    present) and ``{extra}`` (a second figure of the customer, e.g. the oldest open ticket).
    ``risky`` is the direction in which the phrase reads as a risk (+1 higher, -1 lower, 0 either
    way); see :meth:`_Population.numeric` for how it meets the direction read from the data.
    """

    column: str
    template: str
    fmt: Callable[[float], str] = _count
    extra: str | None = None
    extra_fmt: Callable[[float], str] = _duration
    risky: int = 0


@dataclass(frozen=True)
class Signal:
    """A reason signal: a short label and the figures that can quote it, best first.

    ``attribute`` names a categorical column phrased as ``"<title>: <value>"`` instead.
    """

    label: str
    figures: tuple[Figure, ...] = ()
    attribute: str | None = None


def _median(text: str) -> str:
    return f"{text}; median customer: {{reference}}"


def _theme(name: str, theme_id: str) -> Signal:
    return Signal(
        f"Negative feedback about {name}",
        (
            # sentiment per theme, when the features have it: the clearest phrase
            Figure(
                f"{theme_id}_negative_recent",
                _median(f"Negative about {name} in {{value}} of the last {{extra}} comment(s)"),
                extra="recent_comments",
                extra_fmt=_count,
                risky=1,
            ),
            Figure(
                f"{theme_id}_negative_{{w}}d",
                _median(f"{{value}} negative comment(s) about {name} in the last {{w}} days"),
                _one_decimal,
                risky=1,
            ),
        ),
    )


SIGNALS: dict[str, Signal] = {
    "slow_first_response": Signal(
        "Slow first responses to support tickets",
        (
            Figure(
                "awaiting_first_response",
                _median("{value} ticket(s) waiting for a first reply now, the oldest for {extra}"),
                extra="awaiting_first_response_hours_max",
                risky=1,
            ),
            Figure(
                "first_response_hours_max_{w}d",
                _median("Waited up to {value} for a first reply (last {w} days)"),
                _duration,
                risky=1,
            ),
            Figure(
                "first_response_hours_mean_{w}d",
                _median("Waited {value} on average for a first reply (last {w} days)"),
                _duration,
                risky=1,
            ),
        ),
    ),
    "slow_resolution": Signal(
        "Slow ticket resolution",
        (
            Figure(
                "resolution_hours_mean_{w}d",
                _median("Tickets took {value} on average to resolve (last {w} days)"),
                _duration,
                risky=1,
            ),
        ),
    ),
    "open_tickets": Signal(
        "Unresolved tickets open now",
        (
            Figure(
                "open_tickets",
                _median("{value} ticket(s) still open, the oldest for {extra}"),
                extra="oldest_open_ticket_hours",
                risky=1,
            ),
            Figure(
                "oldest_open_ticket_hours",
                _median("Oldest open ticket has been open for {value}"),
                _duration,
                risky=1,
            ),
        ),
    ),
    "repeated_contacts": Signal(
        "Repeated contacts with support",
        (
            Figure(
                "tickets_{w}d",
                _median("Contacted support {value} times in the last {w} days"),
                risky=1,
            ),
        ),
    ),
    "reopened_tickets": Signal(
        "Tickets reopened after being marked solved",
        (
            Figure(
                "reopened_{w}d",
                _median("{value} ticket reopening(s) in the last {w} days"),
                risky=1,
            ),
        ),
    ),
    "escalations": Signal(
        "Escalated tickets",
        (
            Figure(
                "escalated_{w}d",
                _median("{value} escalated ticket(s) in the last {w} days"),
                risky=1,
            ),
        ),
    ),
    "low_csat": Signal(
        "Low satisfaction with support",
        (
            Figure(
                "csat_mean_{w}d",
                "Rated support {value}/5 on average (last {w} days); "
                "median customer: {reference}/5",
                _one_decimal,
                risky=-1,
            ),
            Figure(
                "csat_min_{w}d",
                "Lowest support rating {value}/5 (last {w} days); median customer: {reference}/5",
                _count,
                risky=-1,
            ),
        ),
    ),
    "low_nps": Signal(
        "Low likelihood to recommend",
        (
            Figure(
                "nps_last", "Last NPS answer: {value}/10; median customer: {reference}/10", risky=-1
            ),
        ),
    ),
    "high_effort": Signal(
        "High effort to get things done",
        (
            Figure(
                "ces_mean_{w}d",
                "Customer effort score {value}/7 (last {w} days); median customer: {reference}/7",
                _one_decimal,
            ),
        ),
    ),
    "negative_feedback": Signal(
        "Negative feedback",
        (
            Figure(
                "negative_feedback_share_{w}d",
                _median("{value} of feedback in the last {w} days reads as negative"),
                _share,
                risky=1,
            ),
            Figure(
                "rating_mean_{w}d",
                "Rated {value}/5 on average in feedback (last {w} days); "
                "median customer: {reference}/5",
                _one_decimal,
                risky=-1,
            ),
            Figure(
                "negative_feedback_{w}d",
                _median("{value} negative comment(s) in the last {w} days"),
                _one_decimal,
                risky=1,
            ),
        ),
    ),
    "declining_usage": Signal(
        "Usage is declining",
        (
            Figure(
                "usage_trend",
                _median("Usage in the last {short} days is {value} of the earlier rate"),
                _share,
                risky=-1,
            ),
            Figure(
                "login_trend",
                _median("Logins in the last {short} days are {value} of the earlier rate"),
                _share,
                risky=-1,
            ),
        ),
    ),
    "inactivity": Signal(
        "Inactive recently",
        (
            Figure(
                "days_since_last_event",
                "No activity for {value} days; median customer: {reference} days",
                risky=1,
            ),
            Figure(
                "days_since_last_login",
                "No login for {value} days; median customer: {reference} days",
                risky=1,
            ),
        ),
    ),
    "engagement": Signal(
        "Low engagement",
        (
            Figure("logins_{w}d", _median("{value} login(s) in the last {w} days"), risky=-1),
            Figure("usage_{w}d", _median("{value} usage event(s) in the last {w} days"), risky=-1),
            Figure(
                "events_{w}d",
                _median("{value} event(s) of any kind in the last {w} days"),
                risky=-1,
            ),
            Figure("feedback_{w}d", _median("{value} feedback message(s) in the last {w} days")),
        ),
    ),
    "purchases": Signal(
        "Few or small purchases",
        (
            Figure("purchases_{w}d", _median("{value} purchase(s) in the last {w} days"), risky=-1),
            Figure("purchase_amount_{w}d", _median("Spent {value} in the last {w} days"), risky=-1),
            Figure(
                "days_since_last_purchase",
                "Last purchase {value} days ago; median customer: {reference} days",
                risky=1,
            ),
        ),
    ),
    "tenure": Signal(
        "New customer",
        (
            Figure(
                "tenure_days",
                "Customer for {value} days; median customer: {reference} days",
                risky=-1,
            ),
        ),
    ),
    # Never a reason (NEVER_REASONS); kept so the id is known.
    "value": Signal("Monthly value"),
    "plan": Signal("Plan type", attribute="Plan"),
    "segment": Signal("Customer segment", attribute="Segment"),
    "region": Signal("Region", attribute="Region"),
    "theme_billing": _theme("billing errors", "theme_billing"),
    "theme_pricing": _theme("price and value", "theme_pricing"),
    "theme_slow_support": _theme("slow support", "theme_slow_support"),
    "theme_unresolved_issue": _theme("an unresolved problem", "theme_unresolved_issue"),
    "theme_product_bugs": _theme("bugs and reliability", "theme_product_bugs"),
    "theme_usability": _theme("ease of use", "theme_usability"),
    "theme_missing_features": _theme("missing features", "theme_missing_features"),
    "theme_staff_attitude": _theme("staff attitude", "theme_staff_attitude"),
}


# --------------------------------------------------------------------------------------------
# Signals of columns


def signal_of(feature_signals: Mapping[str, str]) -> Callable[[str], str]:
    """A lookup from feature column to signal id.

    Columns ``feature_signals`` does not know (a flat table's ``Contract``, ``tenure``...) are
    the signal ``"column:<name>"``.
    """

    def lookup(column: str) -> str:
        signal = feature_signals.get(column)
        return signal if signal is not None else f"{COLUMN_SIGNAL_PREFIX}{column}"

    return lookup


def signal_contributions(
    attributions: pd.DataFrame, feature_signals: Mapping[str, str]
) -> pd.DataFrame:
    """Sum feature attributions per signal (columns = signal ids, index = attributions' index)."""
    feature_cols = [c for c in attributions.columns if c != "baseline"]
    lookup = signal_of(feature_signals)
    groups = pd.Series([lookup(c) for c in feature_cols], index=feature_cols)
    return attributions[feature_cols].T.groupby(groups.values, sort=True).sum().T


def risky_directions(attributions: pd.DataFrame, features: pd.DataFrame) -> pd.Series:
    """The risky direction of each numeric feature, read from the scored population.

    Returns
    -------
    pd.Series
        Per feature column in both frames: +1 when higher values go with higher attribution
        (Spearman correlation of value and attribution > 0 over rows where both are known),
        -1 when lower values do, 0 when it cannot be told (non-numeric, constant, fewer than
        two known values, or no correlation).
    """
    directions: dict[str, int] = {}
    for column in features.columns:
        if column not in attributions.columns or not _is_number(features[column]):
            continue
        value = features[column].astype(float)
        attribution = attributions[column].astype(float)
        known = value.notna() & attribution.notna()
        directions[column] = 0
        if known.sum() < 2 or value[known].nunique() < 2 or attribution[known].nunique() < 2:
            continue
        rho = np.corrcoef(value[known].rank(), attribution[known].rank())[0, 1]
        directions[column] = int(np.sign(rho)) if np.isfinite(rho) else 0
    return pd.Series(directions, dtype="int64")


# --------------------------------------------------------------------------------------------
# Quoting a signal for a population


@dataclass(frozen=True)
class _Quote:
    """One figure resolved against a population: who it is a reason for, and its phrases."""

    qualifies: np.ndarray  # bool per row: known figure on the risky side
    phrase: Callable[[np.ndarray], list[str]]  # row positions -> phrases
    column: str  # the key figure's column


class _Population:
    """The scored rows: their features and attributions, directions and windows, computed once."""

    def __init__(
        self,
        attributions: pd.DataFrame,
        features: pd.DataFrame,
        reference: tuple[pd.DataFrame, pd.DataFrame] | None = None,
        population: pd.DataFrame | None = None,
    ) -> None:
        self.attributions = attributions
        self.features = features
        #: Attributions and features the risky directions and category effects are read from.
        self.reference = reference if reference is not None else (attributions, features)
        #: The features the medians and category shares are read from.
        self.population = population if population is not None else features
        self.directions = risky_directions(*self.reference)
        windows = sorted(
            {int(m["days"]) for c in features.columns if (m := _WINDOW.search(str(c)))}
        )
        self.windows = windows

    def window_column(self, pattern: str) -> tuple[str, int | None] | None:
        """``pattern`` with ``{w}`` set to the longest window present, or None if none is."""
        if "{w}" not in pattern:
            return (pattern, None) if pattern in self.features.columns else None
        for w in reversed(self.windows):
            if (column := pattern.format(w=w)) in self.features.columns:
                return column, w
        return None

    def numeric(self, figure: Figure, name: str | None = None) -> _Quote | None:
        """A numeric figure: on the risky side of the population median of its key column.

        The risky direction is the one read from the data (:func:`risky_directions`). Where the
        data cannot tell (the column is no model input, or is constant), it is the direction
        the phrase reads as a risk (``figure.risky``); where the two disagree, the figure is not
        quoted at all.
        """
        resolved = self.window_column(figure.column)
        if resolved is None:
            return None
        column, w = resolved
        direction = int(self.directions.get(column, 0))
        if direction == 0:
            # Not a model input, or the data cannot tell: the direction the phrase reads as risk.
            direction = figure.risky
        elif figure.risky and direction != figure.risky:
            # The model uses the figure the other way round from how the phrase reads (more
            # logins raising risk): quoting it would read as nonsense, so it is no reason.
            return None
        values = self.features[column].to_numpy(dtype="float64", na_value=np.nan)
        known = ~np.isnan(values)
        everyone = self.population[column].to_numpy(dtype="float64", na_value=np.nan)
        if direction == 0 or not known.any():
            return None
        median = float(np.median(everyone[~np.isnan(everyone)]))
        with np.errstate(invalid="ignore"):
            qualifies = known & (values > median if direction > 0 else values < median)

        def printed(r: int) -> tuple[str, str]:
            if figure.fmt is _duration:  # both in one unit: "2.5 days; median: 1.3 days"
                return _durations(values[r], median)
            return figure.fmt(values[r]), figure.fmt(median)

        # A figure that prints the same as the reference ("0.0; median customer: 0.0") reads
        # as typical, so it is no reason either.
        for r in np.flatnonzero(qualifies):
            value, reference = printed(r)
            qualifies[r] = value != reference
        extra = None
        if figure.extra is not None:
            extra_column = self.window_column(figure.extra)
            if extra_column is not None:
                extra = self.features[extra_column[0]].to_numpy(dtype="float64", na_value=np.nan)
        fields = {
            "w": w if w is not None else (self.windows[-1] if self.windows else ""),
            "short": self.windows[0] if self.windows else "",
            "name": name,
        }

        def phrase(rows: np.ndarray) -> list[str]:
            phrases = []
            for r in rows:
                value, reference = printed(r)
                extra_text = figure.extra_fmt(extra[r]) if extra is not None else ""
                phrases.append(
                    figure.template.format(
                        value=value, reference=reference, extra=extra_text, **fields
                    )
                )
            return phrases

        return _Quote(qualifies, phrase, column)

    def categorical(self, column: str, title: str) -> _Quote | None:
        """A category: risky when its mean attribution over the population is > 0."""
        if column not in self.features.columns or column not in self.attributions.columns:
            return None
        levels = _levels(self.features[column])
        known = levels.notna().to_numpy()
        if not known.any():
            return None
        attributions, reference = self.reference
        reference_levels = _levels(reference[column])
        seen = reference_levels.notna().to_numpy()
        attribution = attributions[column].astype(float).to_numpy()
        mean = pd.Series(attribution[seen]).groupby(reference_levels[seen].to_numpy()).mean()
        share = _levels(self.population[column]).dropna().value_counts(normalize=True)
        risky = set(mean.index[mean.to_numpy() > 0])
        qualifies = known & levels.isin(risky).to_numpy() if risky else np.zeros(len(levels), bool)
        values = levels.to_numpy()

        def phrase(rows: np.ndarray) -> list[str]:
            return [
                f"{title}: {_level(values[r])} ({share[values[r]]:.0%} of customers)" for r in rows
            ]

        return _Quote(qualifies, phrase, column)

    def column(self, column: str) -> _Quote | None:
        """A column retain did not engineer: ``Contract: Month-to-month``, ``tenure: 2 (...)``."""
        if column not in self.features.columns:
            return None
        series = self.features[column]
        if not _is_number(series) or _is_binary(series):
            return self.categorical(column, column)
        figure = Figure(column, "{name}: {value} (median customer: {reference})", _number)
        return self.numeric(figure, name=column)

    def quotes(self, signal_id: str, columns: Sequence[str]) -> list[_Quote]:
        """The ways ``signal_id`` can be quoted here, best first (``columns``: its features)."""
        signal = SIGNALS.get(signal_id)
        if signal is None and signal_id.startswith("theme_"):
            signal = _theme(signal_id.removeprefix("theme_").replace("_", " "), signal_id)
        if signal is None:  # "column:<name>" or a signal retain has no phrases for
            candidates = [self.column(c) for c in columns]
        elif signal.attribute is not None:
            candidates = [self.categorical(c, signal.attribute) for c in columns]
        else:
            candidates = [self.numeric(f) for f in signal.figures]
        return [q for q in candidates if q is not None]


def _levels(series: pd.Series) -> pd.Series:
    return series.astype(object).where(series.notna())


def _is_number(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(
        series.dtype
    )


def _is_binary(series: pd.Series) -> bool:
    return bool(series.dropna().isin([0, 1]).all()) and series.notna().any()


# --------------------------------------------------------------------------------------------
# Reasons


def _quote_each_fact_once(
    eligible: np.ndarray,
    values: np.ndarray,
    choice: np.ndarray,
    quotes: Sequence[Sequence[_Quote]],
    features: pd.DataFrame,
) -> None:
    """Keep one of two reasons whose key figures are the same column of numbers (in place).

    In a purchase log every event is a purchase, so "Last purchase 546 days ago" and "No
    activity for 546 days" are one fact twice: the signal that raises the risk more is kept.
    """
    keyed = [(j, q, quote.column) for j, qs in enumerate(quotes) for q, quote in enumerate(qs)]
    for a, (j1, q1, c1) in enumerate(keyed):
        for j2, q2, c2 in keyed[a + 1:]:
            if j1 == j2 or c1 == c2 or not features[c1].equals(features[c2]):
                continue
            both = eligible[:, j1] & eligible[:, j2] & (choice[:, j1] == q1) & (choice[:, j2] == q2)
            first_wins = values[:, j1] >= values[:, j2]
            eligible[both & first_wins, j2] = False
            eligible[both & ~first_wins, j1] = False


def top_reasons(
    attributions: pd.DataFrame,
    features: pd.DataFrame,
    feature_signals: Mapping[str, str],
    k: int = 3,
    never_reasons: Collection[str] = (),
    reference: tuple[pd.DataFrame, pd.DataFrame] | None = None,
    population: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The ``k`` signals that raise each customer's risk most, quoting a figure and a reference.

    See the module docstring for the rule. By default the rows passed are the population the
    risky directions and medians are read from: pass every customer scored at this ``as_of``.
    To explain only some customers, pass their rows with ``reference`` and ``population``.

    Parameters
    ----------
    attributions:
        Per-row feature contributions to the churn log-odds
        (``ChurnClassifier.feature_attributions``).
    features:
        The feature rows the attributions explain (same index), for the figures in the phrases.
    feature_signals:
        Feature column -> signal id; other columns are the signal ``"column:<name>"``.
    k:
        Reasons per customer. Customers may have fewer than ``k`` (the rest are missing).
    never_reasons:
        Signal ids or feature columns never to give as reasons (besides ``value``), e.g. the
        column a flat table's value at risk is computed from (``"MonthlyCharges"``).
    reference:
        Attributions and features of a sample of the population (same columns) that the risky
        direction of each feature and the effect of each category are read from; default: the
        rows passed.
    population:
        The features of every customer scored, that medians and category shares are read from;
        default: the rows passed.

    Returns
    -------
    pd.DataFrame
        Columns ``reason_1..k`` (phrases) and ``reason_1_signal..k`` (signal ids), same index.
    """
    lookup = signal_of(feature_signals)
    feature_cols = [c for c in attributions.columns if c != "baseline"]
    excluded = set(NEVER_REASONS) | set(never_reasons)
    excluded |= {lookup(c) for c in never_reasons if c in feature_cols}
    contributions = signal_contributions(attributions, feature_signals)
    contributions = contributions[[s for s in contributions.columns if s not in excluded]]

    population = _Population(attributions, features, reference, population)
    columns_of: dict[str, list[str]] = {}
    for column in feature_cols:
        columns_of.setdefault(lookup(column), []).append(column)

    n = len(attributions)
    signal_ids = list(contributions.columns)
    quotes: list[list[_Quote]] = []
    choice = np.full((n, len(signal_ids)), -1)  # which quote of each signal each row gets
    for j, signal_id in enumerate(signal_ids):
        quotes.append(population.quotes(signal_id, columns_of.get(signal_id, [])))
        for q, quote in reversed(list(enumerate(quotes[j]))):  # first that qualifies wins
            choice[quote.qualifies, j] = q

    values = contributions.to_numpy(dtype="float64")
    eligible = (values > 0) & (choice >= 0)
    _quote_each_fact_once(eligible, values, choice, quotes, features)
    ranked = np.where(eligible, values, -np.inf)
    order = np.argsort(-ranked, axis=1, kind="stable")[:, :k]
    chosen = np.take_along_axis(eligible, order, axis=1)

    out = pd.DataFrame(index=attributions.index)
    for i in range(k):
        out[f"reason_{i + 1}"] = pd.Series(None, index=out.index, dtype=object)
    for i in range(min(k, len(signal_ids))):
        phrases = np.full(n, None, dtype=object)
        names = np.full(n, None, dtype=object)
        for j in np.unique(order[chosen[:, i], i]):
            rows = np.flatnonzero(chosen[:, i] & (order[:, i] == j))
            names[rows] = signal_ids[j]
            for q in np.unique(choice[rows, j]):
                quoted = rows[choice[rows, j] == q]
                phrases[quoted] = quotes[j][q].phrase(quoted)
        # object dtype keeps None for "no reason" (pandas would infer str and write NaN)
        out[f"reason_{i + 1}"] = pd.Series(phrases, index=out.index, dtype=object)
        out[f"reason_{i + 1}_signal"] = pd.Series(names, index=out.index, dtype=object)
    for i in range(len(signal_ids), k):
        out[f"reason_{i + 1}_signal"] = pd.Series(None, index=out.index, dtype=object)
    return out
