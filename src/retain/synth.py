"""A synthetic customer base with a planted, documented causal structure.

:func:`generate_world` simulates customers week by week (vectorised over customers with numpy):
behaviour events, support tickets with their response and resolution times, feedback texts with
their true sentiment and theme labels, and churn driven by a proportional weekly hazard. The
planted structure and every coefficient are described in ``docs/synthetic_world.md``; the
coefficients live in this module's constants so that the document and the code can be checked
against each other.

Internally every timestamp is an ``int64`` number of seconds since the Unix epoch; ``_NEVER``
stands for "not yet / never". The frames are built at the end, in the types of
:mod:`retain.contracts`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd

from retain import synth_phrases
from retain.contracts import (
    CHANNELS,
    EVENT_TYPES,
    FEEDBACK_SOURCES,
    SENTIMENTS,
    THEME_SEPARATOR,
    World,
)

logger = logging.getLogger(__name__)

# Must match the ids, in order, of configs/themes.yaml (tests/test_synth.py checks it).
THEMES: tuple[str, ...] = (
    "billing", "pricing", "slow_support", "unresolved_issue",
    "product_bugs", "usability", "missing_features", "staff_attitude",
)
# Themes whose negative mentions raise the churn hazard (churn_relevant in configs/themes.yaml).
CHURN_THEMES: tuple[str, ...] = ("billing", "slow_support", "unresolved_issue", "product_bugs")

SEGMENTS: tuple[str, ...] = ("consumer", "smb", "enterprise")
PLANS: tuple[str, ...] = ("basic", "plus", "pro")
REGIONS: tuple[str, ...] = (
    "north_america", "europe", "latin_america", "asia_pacific", "middle_east_africa",
)
# Ticket topics: the problem a customer writes in about (not a column; drives ticket outcomes
# and the themes of ticket comments). "account" maps to no theme.
TOPICS: tuple[str, ...] = ("billing", "product_bugs", "usability", "missing_features", "account")

_DAY = 86_400
_WEEK = 7 * _DAY
_YEAR = 365.25 * _DAY
_NEVER = np.iinfo(np.int64).max
_NEG, _NEU, _POS = 0, 1, 2  # positions in contracts.SENTIMENTS
_SOURCE = {s: i for i, s in enumerate(FEEDBACK_SOURCES)}
_THEME = {t: i for i, t in enumerate(THEMES)}
_TOPIC = {t: i for i, t in enumerate(TOPICS)}
_CHURN_THEME_MASK = sum(1 << _THEME[t] for t in CHURN_THEMES)

# ----------------------------------------------------------------------------- customers
SEGMENT_SHARE = (0.62, 0.28, 0.10)
PLAN_SHARE_BY_SEGMENT = ((0.60, 0.30, 0.10), (0.30, 0.45, 0.25), (0.10, 0.35, 0.55))
REGION_SHARE = (0.35, 0.30, 0.12, 0.15, 0.08)
EXISTING_SHARE = 0.45  # customers who signed up before `start`
EXISTING_MAX_YEARS = 3.0  # their tenure at `start` is EXISTING_MAX_YEARS * U**1.6
PLAN_MEDIAN_VALUE = (12.0, 29.0, 59.0)  # monthly_value median per plan, consumer segment
SEGMENT_VALUE_FACTOR = (1.0, 4.0, 20.0)
VALUE_SIGMA = 0.55  # lognormal spread of monthly_value around its plan x segment median
VALUE_REFERENCE = 30.0  # monthly_value at which the value term of the hazard is zero

# ----------------------------------------------------------------------------- behaviour
EVENT_RATE_PER_WEEK = {"login": 0.17, "usage": 0.12, "purchase": 0.035}  # at engagement 1
ENGAGEMENT_SHAPE = 1.2  # per-customer engagement ~ Gamma(shape, 1/shape) x segment factor
SEGMENT_ENGAGEMENT = (0.9, 1.1, 1.4)
PURCHASE_SIGMA = 1.0  # purchase amount ~ lognormal(log(0.5 * monthly_value), sigma)
DAY_OF_WEEK_WEIGHT = (1.0, 1.05, 1.05, 1.0, 0.9, 0.55, 0.5)  # Monday..Sunday, behaviour
TICKET_DAY_OF_WEEK_WEIGHT = (1.2, 1.1, 1.0, 1.0, 0.95, 0.4, 0.35)
HOUR_WEIGHT = (
    0.2, 0.1, 0.1, 0.1, 0.1, 0.2, 0.5, 1.0, 1.6, 2.0, 2.0, 1.9,
    1.7, 1.9, 2.0, 1.9, 1.7, 1.4, 1.2, 1.3, 1.4, 1.2, 0.8, 0.4,
)
TICKET_HOUR_WEIGHT = (
    0.1, 0.05, 0.05, 0.05, 0.05, 0.1, 0.3, 0.8, 1.8, 2.2, 2.2, 2.0,
    1.6, 1.9, 2.0, 1.9, 1.6, 1.1, 0.7, 0.5, 0.4, 0.3, 0.2, 0.15,
)
YEARLY_AMPLITUDE = 0.10  # usage peaks mid-March, troughs mid-September
HOLIDAY_DIP = 0.25  # weeks touching 23 Dec - 1 Jan
AUGUST_DIP = 0.08

# ----------------------------------------------------------------------------- support
TICKET_RATE_PER_WEEK = 0.033  # at friction 1, outside incidents
FRICTION_SHAPE = 0.45  # per-customer friction ~ Gamma(shape, 1/shape)
SEGMENT_TICKET_FACTOR = (0.9, 1.1, 1.5)
TOPIC_SHARE = (0.22, 0.26, 0.22, 0.10, 0.20)
INCIDENT_WEEKLY_PROBABILITY = 0.12
INCIDENT_REACH = (0.10, 0.45)  # share of one region hit, uniform
INCIDENT_WEEKS = (1, 4)  # duration, uniform integers
INCIDENT_TICKET_FACTOR = (3.0, 6.0)  # ticket-rate multiplier while hit, uniform
INCIDENT_SUPPORT_LOAD = 1.5  # response times x this in weeks when an incident is running
CHANNEL_SHARE_BY_SEGMENT = (
    (0.10, 0.35, 0.40, 0.15),  # consumer: phone, email, chat, social
    (0.25, 0.45, 0.25, 0.05),
    (0.45, 0.45, 0.10, 0.00),
)
CHANNEL_MEDIAN_RESPONSE_HOURS = (0.3, 9.0, 0.6, 5.0)
CHANNEL_NEVER_ANSWERED = (0.003, 0.02, 0.01, 0.06)
RESPONSE_SIGMA = 0.9
SEGMENT_SPEED = (1.0, 0.8, 0.5)  # response and resolution times x this
TOPIC_MEDIAN_RESOLUTION_HOURS = (20.0, 60.0, 10.0, 30.0, 8.0)
TOPIC_UNRESOLVED = (0.05, 0.12, 0.04, 0.08, 0.03)
RESOLUTION_SIGMA = 1.0
SLOW_RESPONSE_HOURS = 24.0
CSAT_RESPONSE_RATE = 0.40
FOLLOW_UP_PROBABILITY = 0.5  # an unresolved or reopened ticket brings a new ticket 1-3 weeks on
HOLIDAY_SUPPORT_LOAD = 1.4
STAFFING_GAP_LOAD = 1.6  # one 6-week period per year with slower support
WEEKLY_LOAD_SIGMA = 0.15

# ----------------------------------------------------------------------------- feedback
SPONTANEOUS_FEEDBACK_RATE = 0.0085  # reviews + surveys per customer-week, before trouble
FEEDBACK_FRAILTY_WEIGHT = 2.0  # the hazard's unobserved frailty tilts review/survey sentiment
# Silent problems: a billing error or a bug the customer meets without opening a ticket. Only
# reviews and surveys show them (more of them, more negative, on the problem's theme).
SILENT_PROBLEM_WEEKLY_PROBABILITY = 0.01
SILENT_PROBLEM_WEEKS = (2, 6)  # uniform integers
SILENT_PROBLEM_THEMES = ("billing", "product_bugs")
SILENT_PROBLEM_FEEDBACK_FACTOR = 6.0  # review/survey rate x this during the problem
SILENT_PROBLEM_NEGATIVE_LOGIT = 2.0
SILENT_PROBLEM_THEME_WEIGHT = 6.0
TICKET_COMMENT_PROBABILITY = (0.18, 0.35)  # after a good / a bad support experience
LABEL_NOISE = 0.03  # share of rows whose stored sentiment (and, separately, themes) is perturbed
VARIANTS_PER_CATEGORY = 300
TYPO_RATE = 0.05
OPENER_PROBABILITY = (0.35, 0.10, 0.20)  # per source: review, survey, ticket_comment
CLOSER_PROBABILITY = (0.35, 0.15, 0.25)


@dataclass(frozen=True)
class ChurnHazard:
    """The planted weekly churn hazard.

    ``hazard = base_weekly * exp(eta)`` per week of exposure, with ``eta`` the sum of each
    coefficient times its driver (see ``docs/synthetic_world.md``). Drivers marked "decayed" are
    sums over past weeks weighted by ``state_decay ** weeks_ago``.
    """

    base_weekly: float = 0.0032
    slow_first_response: float = 1.2  # decayed count of tickets answered after 24 h or never
    open_ticket: float = 1.4  # 1 if any ticket is open (unresolved) now
    repeated_contacts: float = 0.7  # max(decayed ticket count - 1, 0)
    low_csat: float = 1.0  # decayed count of resolved tickets with experienced CSAT <= 2
    negative_churn_feedback: float = 1.5  # decayed count of negative texts on CHURN_THEMES
    log_value: float = -0.55  # log(monthly_value / VALUE_REFERENCE)
    log_tenure: float = -0.5  # log(1 + tenure in years)
    frailty_sd: float = 0.4  # unobserved per-customer log-hazard offset ~ N(0, sd)
    state_decay: float = 0.96  # per week; a half-life of about 17 weeks
    notice_share: float = 0.65  # churn decisions served with a notice period
    notice_weeks: tuple[int, int] = (2, 8)  # uniform integers
    notice_engagement_floor: float = 0.15  # behaviour falls linearly to this at the churn date


HAZARD = ChurnHazard()


def generate_world(
    n_customers: int,
    seed: int = 0,
    start: date | str = "2024-01-01",
    end: date | str = "2025-12-31",
    show_progress: bool = False,
) -> World:
    """Generate a synthetic customer base with a known causal structure.

    Parameters
    ----------
    n_customers : int
        Number of customers. About 45% signed up before ``start`` (up to three years before),
        the rest during the span.
    seed : int, default 0
        Seed of the one random generator; the same seed gives identical frames.
    start, end : date or str, default "2024-01-01" and "2025-12-31"
        The simulated span. Both days are included: every timestamp lies before
        ``end + 1 day`` and every row except a customer's ``signup_at`` lies at or after ``start``.
    show_progress : bool, default False
        Show a tqdm progress bar over the weekly steps.

    Returns
    -------
    World
        ``customers``, ``events``, ``tickets`` and ``feedback`` in the types of
        :mod:`retain.contracts` (ids and categories as ``object`` strings, timestamps as
        tz-naive ``datetime64[ns]``). Every feedback row carries its ``sentiment`` and
        ``themes`` labels; ``customers.churned_at`` is set for churners and ``NaT`` otherwise.

    Raises
    ------
    ValueError
        If ``n_customers`` is below 1 or ``end`` is before ``start``.

    Notes
    -----
    The planted structure (hazard drivers and coefficients, ticket and feedback models) is
    documented in ``docs/synthetic_world.md``; the coefficients are the constants of this module,
    among them :data:`HAZARD`.
    """
    if n_customers < 1:
        raise ValueError(f"n_customers must be at least 1, got {n_customers}")
    start_s, end_s = _span_seconds(start, end)
    rng = np.random.default_rng(seed)
    logger.info("generating a synthetic world: %d customers, seed %d", n_customers, seed)
    population = _draw_customers(n_customers, start_s, end_s, rng)
    sim = _simulate(population, start_s, end_s, rng, show_progress)
    feedback = _feedback_frame(sim, population, end_s, rng)
    world = World(
        customers=_customers_frame(population, sim.state),
        events=_events_frame(sim, population),
        tickets=_tickets_frame(sim, population),
        feedback=feedback,
    )
    logger.info(
        "synthetic world: %d customers (%d churned), %d events, %d tickets, %d feedback texts",
        len(world.customers), world.customers["churned_at"].notna().sum(),
        len(world.events), len(world.tickets), len(world.feedback),
    )
    return world


# ============================================================================= customers


@dataclass
class _Population:
    """Static customer attributes, one array entry per customer (in customer-id order)."""

    signup: np.ndarray  # int64 seconds
    segment: np.ndarray  # int8 index into SEGMENTS
    plan: np.ndarray
    region: np.ndarray
    monthly_value: np.ndarray  # float64
    engagement: np.ndarray  # float32 latent behaviour rate multiplier
    friction: np.ndarray  # float32 latent ticket rate multiplier
    frailty: np.ndarray  # float32 unobserved log-hazard offset
    mood: np.ndarray  # float32 latent disposition in feedback (> 0: kinder)
    price_sensitivity: np.ndarray  # float32 weight of pricing complaints
    ids: np.ndarray  # object "C0000001"...

    @property
    def size(self) -> int:
        return len(self.signup)


def _span_seconds(start: date | str, end: date | str) -> tuple[int, int]:
    """Start (inclusive) and end (exclusive: the day after ``end``) in epoch seconds."""
    start_ts, end_ts = pd.Timestamp(start).normalize(), pd.Timestamp(end).normalize()
    if end_ts < start_ts:
        raise ValueError(f"end {end_ts.date()} is before start {start_ts.date()}")
    return int(start_ts.timestamp()), int((end_ts + pd.Timedelta(days=1)).timestamp())


def _categorical(rng: np.random.Generator, probabilities: Iterable[float], size: int) -> np.ndarray:
    """Draw ``size`` indices with the given probabilities (faster than ``rng.choice`` with p)."""
    cum = np.cumsum(np.asarray(tuple(probabilities), dtype=np.float64))
    return np.searchsorted(cum / cum[-1], rng.random(size), side="right").astype(np.int8)


def _categorical_rows(rng: np.random.Generator, table: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """One categorical draw per entry of ``rows``, with probabilities ``table[rows]``."""
    cum = np.cumsum(table, axis=1)
    cum /= cum[:, -1:]
    u = rng.random(len(rows))
    return (u[:, None] >= cum[rows]).sum(axis=1).clip(max=table.shape[1] - 1).astype(np.int8)


def _draw_customers(n: int, start_s: int, end_s: int, rng: np.random.Generator) -> _Population:
    existing = rng.random(n) < EXISTING_SHARE
    age_years = EXISTING_MAX_YEARS * rng.random(n) ** 1.6
    signup = np.where(
        existing,
        start_s - (age_years * _YEAR).astype(np.int64) - 1,
        start_s + (rng.random(n) * (end_s - start_s)).astype(np.int64),
    )
    order = np.argsort(signup, kind="stable")  # ids follow signup order, as a real system's would
    signup = signup[order]
    segment = _categorical(rng, SEGMENT_SHARE, n)
    plan = _categorical_rows(rng, np.array(PLAN_SHARE_BY_SEGMENT), segment)
    region = _categorical(rng, REGION_SHARE, n)
    median = np.array(PLAN_MEDIAN_VALUE)[plan] * np.array(SEGMENT_VALUE_FACTOR)[segment]
    monthly_value = np.round(median * np.exp(rng.normal(0.0, VALUE_SIGMA, n)), 2).clip(min=1.0)
    engagement = rng.gamma(ENGAGEMENT_SHAPE, 1 / ENGAGEMENT_SHAPE, n)
    engagement *= np.array(SEGMENT_ENGAGEMENT)[segment]
    friction = rng.gamma(FRICTION_SHAPE, 1 / FRICTION_SHAPE, n)
    frailty = rng.normal(0.0, HAZARD.frailty_sd, n)
    mood = rng.normal(0.0, 0.7, n)
    price_sensitivity = np.exp(rng.normal(0.0, 0.5, n)) * np.where(plan == 0, 1.3, 1.0)
    ids = np.array([f"C{i:07d}" for i in range(1, n + 1)], dtype=object)
    f32 = np.float32
    return _Population(
        signup=signup, segment=segment, plan=plan, region=region, monthly_value=monthly_value,
        engagement=engagement.astype(f32), friction=friction.astype(f32),
        frailty=frailty.astype(f32), mood=mood.astype(f32),
        price_sensitivity=price_sensitivity.astype(f32), ids=ids,
    )


# ============================================================================= weekly simulation

_RING_WEEKS = 8  # how far ahead delayed effects (resolutions, comments, follow-ups) are booked


@dataclass
class _State:
    """What the simulation remembers about each customer between weeks."""

    churned_at: np.ndarray  # int64, _NEVER while not (yet) churned within the span
    decided_week: np.ndarray  # int32, week of the churn decision, -1 if none
    notice_weeks: np.ndarray  # int8, notice period of the decision, 0 if immediate
    slow: np.ndarray  # float32 decayed counts (see ChurnHazard)
    contacts: np.ndarray
    low_csat: np.ndarray
    negative_feedback: np.ndarray
    topics: np.ndarray  # float32 (len(TOPICS), n) decayed ticket counts per topic
    last_topic: np.ndarray  # int8
    open_until: np.ndarray  # int64, the latest time any ticket stays open (0: none)
    incident_until: np.ndarray  # int32 last week of the incident hitting the customer, -1 none
    incident_factor: np.ndarray  # float32 ticket-rate multiplier of that incident
    problem_until: np.ndarray  # int32 last week of a silent problem, -1 none
    problem_theme: np.ndarray  # int8 theme index of that problem
    booked_low_csat: np.ndarray  # float32 (_RING_WEEKS, n): effects booked for future weeks
    booked_negative_feedback: np.ndarray
    booked_follow_ups: np.ndarray

    @classmethod
    def empty(cls, n: int) -> _State:
        f32 = np.float32
        return cls(
            churned_at=np.full(n, _NEVER, dtype=np.int64),
            decided_week=np.full(n, -1, dtype=np.int32),
            notice_weeks=np.zeros(n, dtype=np.int8),
            slow=np.zeros(n, f32), contacts=np.zeros(n, f32), low_csat=np.zeros(n, f32),
            negative_feedback=np.zeros(n, f32), topics=np.zeros((len(TOPICS), n), f32),
            last_topic=np.full(n, _TOPIC["account"], dtype=np.int8),
            open_until=np.zeros(n, dtype=np.int64),
            incident_until=np.full(n, -1, dtype=np.int32), incident_factor=np.ones(n, f32),
            problem_until=np.full(n, -1, dtype=np.int32), problem_theme=np.zeros(n, np.int8),
            booked_low_csat=np.zeros((_RING_WEEKS, n), f32),
            booked_negative_feedback=np.zeros((_RING_WEEKS, n), f32),
            booked_follow_ups=np.zeros((_RING_WEEKS, n), f32),
        )


@dataclass
class _Week:
    """One weekly step: its calendar and the customers active in it."""

    index: int
    t0: int  # first second of the week
    t1: int  # first second after the week (or the span)
    season: float  # behaviour multiplier (yearly pattern)
    support_load: float  # response and resolution times x this
    day_weight: np.ndarray  # per day offset from t0, behaviour
    ticket_day_weight: np.ndarray
    customers: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    lo: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))  # window per customer
    hi: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))

    @property
    def exposure(self) -> np.ndarray:
        return (self.hi - self.lo) / _WEEK


@dataclass
class _Chunks:
    """Rows produced week by week, concatenated at the end."""

    events: list[tuple[np.ndarray, ...]] = field(default_factory=list)
    tickets: list[tuple[np.ndarray, ...]] = field(default_factory=list)
    feedback: list[tuple[np.ndarray, ...]] = field(default_factory=list)


@dataclass
class _Simulated:
    state: _State
    chunks: _Chunks


def _simulate(
    pop: _Population, start_s: int, end_s: int, rng: np.random.Generator, show_progress: bool
) -> _Simulated:
    from tqdm.auto import tqdm

    n_weeks = -(-(end_s - start_s) // _WEEK)
    state = _State.empty(pop.size)
    chunks = _Chunks()
    support_load = _weekly_support_load(start_s, n_weeks, rng)
    for w in tqdm(range(n_weeks), desc="synthetic weeks", unit="week", disable=not show_progress):
        week = _calendar_week(w, start_s, end_s, support_load[w])
        _start_incidents(week, pop, state, rng)
        present = np.flatnonzero((pop.signup < week.t1) & (state.churned_at > week.t0))
        _decide_churn(week, present, pop, state, end_s, rng)
        _decay_experience(state)
        _set_active_window(week, present, pop, state)
        multiplier = _engagement_multiplier(week, state)
        _start_silent_problems(week, state, rng)
        chunks.events.append(_draw_events(week, multiplier, pop, rng))
        tickets = _draw_tickets(week, pop, state, end_s, rng)
        chunks.tickets.append(tickets)
        chunks.feedback.append(_draw_ticket_comments(week, tickets, state, rng))
        chunks.feedback.append(_draw_spontaneous_feedback(week, pop, state, rng))
        _end_week(week, state)
    return _Simulated(state=state, chunks=chunks)


def _weekly_support_load(start_s: int, n_weeks: int, rng: np.random.Generator) -> np.ndarray:
    """Response-time multiplier per week: noise, holidays and one staffing gap per year."""
    load = np.exp(rng.normal(0.0, WEEKLY_LOAD_SIGMA, n_weeks))
    for first in range(0, n_weeks, 52):
        gap = first + int(rng.integers(0, 46))
        load[gap:gap + 6] *= STAFFING_GAP_LOAD
    for w in range(n_weeks):
        if _is_holiday_week(start_s + w * _WEEK):
            load[w] *= HOLIDAY_SUPPORT_LOAD
    return load


def _is_holiday_week(t0: int) -> bool:
    days = pd.date_range(pd.Timestamp(t0, unit="s"), periods=7, freq="D")
    holiday = ((days.month == 12) & (days.day >= 23)) | ((days.month == 1) & (days.day == 1))
    return bool(holiday.any())


def _calendar_week(w: int, start_s: int, end_s: int, support_load: float) -> _Week:
    t0 = start_s + w * _WEEK
    mid = pd.Timestamp(t0 + _WEEK // 2, unit="s")
    season = 1 + YEARLY_AMPLITUDE * np.cos(2 * np.pi * (mid.day_of_year - 75) / 365.25)
    season -= HOLIDAY_DIP * _is_holiday_week(t0) + AUGUST_DIP * (mid.month == 8)
    weekday0 = (t0 // _DAY + 3) % 7  # 1970-01-01 was a Thursday (Monday = 0)
    rotate = (weekday0 + np.arange(7)) % 7
    return _Week(
        index=w, t0=t0, t1=min(t0 + _WEEK, end_s), season=float(season),
        support_load=float(support_load),
        day_weight=np.array(DAY_OF_WEEK_WEIGHT)[rotate],
        ticket_day_weight=np.array(TICKET_DAY_OF_WEEK_WEIGHT)[rotate],
    )


def _start_incidents(
    week: _Week, pop: _Population, state: _State, rng: np.random.Generator
) -> None:
    """Maybe start an incident that multiplies the ticket rate of part of one region."""
    if rng.random() >= INCIDENT_WEEKLY_PROBABILITY:
        return
    region = int(rng.integers(len(REGIONS)))
    reach = rng.uniform(*INCIDENT_REACH)
    weeks = int(rng.integers(INCIDENT_WEEKS[0], INCIDENT_WEEKS[1] + 1))
    factor = rng.uniform(*INCIDENT_TICKET_FACTOR)
    hit = (pop.region == region) & (rng.random(pop.size) < reach)
    state.incident_until[hit] = week.index + weeks - 1
    state.incident_factor[hit] = factor
    logger.debug(
        "week %d: incident in %s, %d customers, %d weeks",
        week.index, REGIONS[region], hit.sum(), weeks,
    )


def _start_silent_problems(week: _Week, state: _State, rng: np.random.Generator) -> None:
    """Start billing errors and bugs that never reach support (seen only in reviews/surveys)."""
    c = week.customers
    free = state.problem_until[c] < week.index
    starts = c[free & (rng.random(len(c)) < SILENT_PROBLEM_WEEKLY_PROBABILITY * week.exposure)]
    weeks = rng.integers(SILENT_PROBLEM_WEEKS[0], SILENT_PROBLEM_WEEKS[1] + 1, len(starts))
    state.problem_until[starts] = week.index + weeks - 1
    themes = np.array([_THEME[t] for t in SILENT_PROBLEM_THEMES], dtype=np.int8)
    state.problem_theme[starts] = themes[rng.integers(0, len(themes), len(starts))]


def _incident_on(week: _Week, state: _State, customers: np.ndarray) -> np.ndarray:
    return state.incident_until[customers] >= week.index


def _churn_linear_predictor(
    customers: np.ndarray, t: int, pop: _Population, state: _State
) -> np.ndarray:
    """``log(hazard / base_weekly)`` of ``customers`` at time ``t`` (seconds)."""
    h = HAZARD
    tenure_years = np.maximum(t - pop.signup[customers], 0) / _YEAR
    return (
        h.slow_first_response * state.slow[customers]
        + h.open_ticket * (state.open_until[customers] > t)
        + h.repeated_contacts * np.maximum(state.contacts[customers] - 1.0, 0.0)
        + h.low_csat * state.low_csat[customers]
        + h.negative_churn_feedback * state.negative_feedback[customers]
        + h.log_value * np.log(pop.monthly_value[customers] / VALUE_REFERENCE)
        + h.log_tenure * np.log1p(tenure_years)
        + pop.frailty[customers]
    )


def _decide_churn(
    week: _Week, present: np.ndarray, pop: _Population, state: _State, end_s: int,
    rng: np.random.Generator,
) -> None:
    """Draw this week's churn decisions; a decision with notice churns 2-8 weeks later."""
    candidates = present[state.decided_week[present] < 0]
    lo = np.maximum(pop.signup[candidates], week.t0)
    exposure = (week.t1 - lo) / _WEEK
    eta = _churn_linear_predictor(candidates, week.t0, pop, state)
    p = -np.expm1(-HAZARD.base_weekly * np.exp(eta) * exposure)
    decide = rng.random(len(candidates)) < p
    who, lo = candidates[decide], lo[decide]
    with_notice = rng.random(len(who)) < HAZARD.notice_share
    notice = rng.integers(HAZARD.notice_weeks[0], HAZARD.notice_weeks[1] + 1, len(who))
    u = rng.random(len(who))
    immediate_at = lo + 1 + (u * (week.t1 - lo - 1)).astype(np.int64)
    later_at = week.t0 + notice * _WEEK + (u * _WEEK).astype(np.int64)
    churned_at = np.where(with_notice, later_at, immediate_at)
    state.churned_at[who] = np.where(churned_at < end_s, churned_at, _NEVER)
    state.decided_week[who] = week.index
    state.notice_weeks[who] = np.where(with_notice, notice, 0)


def _set_active_window(week: _Week, present: np.ndarray, pop: _Population, state: _State) -> None:
    lo = np.maximum(pop.signup[present], week.t0)
    hi = np.minimum(state.churned_at[present], week.t1)
    keep = hi > lo
    week.customers, week.lo, week.hi = present[keep], lo[keep], hi[keep]


def _engagement_multiplier(week: _Week, state: _State) -> np.ndarray:
    """Behaviour falls linearly during a notice period, to the floor at the churn date."""
    c = week.customers
    notice = state.notice_weeks[c].astype(np.float32)
    elapsed = (week.index - state.decided_week[c] + 1).astype(np.float32)
    fall = (1 - HAZARD.notice_engagement_floor) * np.minimum(elapsed / np.maximum(notice, 1), 1)
    return np.where(notice > 0, 1 - fall, 1.0).astype(np.float32)


def _times_in_window(
    week: _Week, owner: np.ndarray, day_weight: np.ndarray, hour_weight: Iterable[float],
    rng: np.random.Generator,
) -> np.ndarray:
    """Timestamps for rows owned by ``week.customers[owner]``, inside each owner's window.

    Day of week and hour of day follow the weights; a draw outside the owner's window (first
    week after signup, churn week, last partial week) is redrawn uniformly inside it.
    """
    m = len(owner)
    day = _categorical(rng, day_weight, m).astype(np.int64)
    hour = _categorical(rng, hour_weight, m).astype(np.int64)
    t = week.t0 + day * _DAY + hour * 3600 + rng.integers(0, 3600, m)
    lo, hi = week.lo[owner], week.hi[owner]
    outside = (t < lo) | (t >= hi)
    k = int(outside.sum())
    t[outside] = lo[outside] + (rng.random(k) * (hi[outside] - lo[outside])).astype(np.int64)
    return t


def _draw_events(
    week: _Week, multiplier: np.ndarray, pop: _Population, rng: np.random.Generator
) -> tuple[np.ndarray, ...]:
    c = week.customers
    rates = np.array([EVENT_RATE_PER_WEEK[t] for t in EVENT_TYPES])
    lam = rates.sum() * pop.engagement[c] * week.season * multiplier * week.exposure
    owner = np.repeat(np.arange(len(c)), rng.poisson(lam))
    kind = _categorical(rng, rates, len(owner))
    when = _times_in_window(week, owner, week.day_weight, HOUR_WEIGHT, rng)
    customer = c[owner]
    is_purchase = kind == EVENT_TYPES.index("purchase")
    amount = np.full(len(owner), np.nan)
    log_mean = np.log(0.5 * pop.monthly_value[customer[is_purchase]])
    amount[is_purchase] = np.maximum(np.round(np.exp(rng.normal(log_mean, PURCHASE_SIGMA)), 2), 1.0)
    order = np.argsort(when, kind="stable")
    return customer[order], when[order], kind[order], amount[order]


@dataclass
class _WeekTickets:
    customer: np.ndarray
    opened: np.ndarray
    first_response: np.ndarray  # _NEVER: not answered (within the span)
    resolved: np.ndarray  # _NEVER: not resolved (within the span)
    channel: np.ndarray
    reopened: np.ndarray
    csat: np.ndarray  # NaN unless resolved within the span and the survey was answered
    escalated: np.ndarray
    # not columns: what the customer went through, used by comments and the hazard state
    topic: np.ndarray
    slow: np.ndarray
    unresolved: np.ndarray
    experienced_csat: np.ndarray
    closed: np.ndarray  # when the case ended for the customer (resolution or giving up)

    def columns(self) -> tuple[np.ndarray, ...]:
        return (
            self.customer, self.opened, self.first_response, self.resolved, self.channel,
            self.reopened, self.csat, self.escalated,
        )


def _draw_tickets(
    week: _Week, pop: _Population, state: _State, end_s: int, rng: np.random.Generator
) -> _WeekTickets:
    """Tickets opened this week and their whole life: response, resolution, reopenings, CSAT."""
    c = week.customers
    incident = _incident_on(week, state, c)
    factor = np.where(incident, state.incident_factor[c], 1.0)
    lam = (
        TICKET_RATE_PER_WEEK * pop.friction[c] * np.array(SEGMENT_TICKET_FACTOR)[pop.segment[c]]
        * factor * week.exposure
    )
    slot = week.index % _RING_WEEKS
    follow_ups = state.booked_follow_ups[slot, c].astype(np.int64)
    state.booked_follow_ups[slot] = 0
    fresh, owner_fu = rng.poisson(lam), np.repeat(np.arange(len(c)), follow_ups)
    owner = np.concatenate([np.repeat(np.arange(len(c)), fresh), owner_fu])
    is_follow_up = np.arange(len(owner)) >= fresh.sum()
    customer = c[owner]
    opened = _times_in_window(week, owner, week.ticket_day_weight, TICKET_HOUR_WEIGHT, rng)
    m = len(owner)

    from_incident = rng.random(m) < 1 - 1 / factor[owner]
    topic = np.where(from_incident, _TOPIC["product_bugs"], _categorical(rng, TOPIC_SHARE, m))
    topic = np.where(is_follow_up, state.last_topic[customer], topic).astype(np.int8)
    segment = pop.segment[customer]
    channel = _categorical_rows(rng, np.array(CHANNEL_SHARE_BY_SEGMENT), segment)
    speed = np.array(SEGMENT_SPEED)[segment]
    load = week.support_load * (INCIDENT_SUPPORT_LOAD if incident.any() else 1.0)

    median_response = np.array(CHANNEL_MEDIAN_RESPONSE_HOURS)[channel] * speed * load
    response_h = median_response * np.exp(rng.normal(0.0, RESPONSE_SIGMA, m))
    never = rng.random(m) < np.array(CHANNEL_NEVER_ANSWERED)[channel] * load
    unresolved = never | (rng.random(m) < np.array(TOPIC_UNRESOLVED)[topic])
    median_resolution = np.array(TOPIC_MEDIAN_RESOLUTION_HOURS)[topic] * speed * np.sqrt(load)
    resolution_h = median_resolution * np.exp(rng.normal(0.0, RESOLUTION_SIGMA, m))
    first_response = np.where(never, _NEVER, opened + (response_h * 3600).astype(np.int64))
    resolved = np.where(unresolved, _NEVER, first_response + (resolution_h * 3600).astype(np.int64))
    slow = never | (response_h > SLOW_RESPONSE_HOURS)
    is_bug = topic == _TOPIC["product_bugs"]
    reopened = rng.poisson(0.08 + 0.35 * (resolution_h > 72) + 0.15 * is_bug)
    latent = (
        4.7
        - 0.30 * np.log1p(np.where(never, 200.0, response_h))
        - 0.35 * np.log1p(resolution_h / 24)
        - 0.6 * reopened
        + rng.normal(0.0, 0.7, m)
    )
    experienced_csat = np.clip(np.round(latent), 1, 5)
    enterprise = segment == SEGMENTS.index("enterprise")
    escalation_logit = (
        -3.2 + 1.3 * slow + 0.9 * (reopened > 0) + 1.0 * enterprise + 0.8 * unresolved
    )
    escalated = rng.random(m) < 1 / (1 + np.exp(-escalation_logit))
    answered_survey = rng.random(m) < CSAT_RESPONSE_RATE
    csat = np.where(~unresolved & (resolved < end_s) & answered_survey, experienced_csat, np.nan)
    closed = np.where(
        ~unresolved, resolved, np.where(never, opened + 5 * _DAY, first_response + 3 * _DAY)
    )
    order = np.argsort(opened, kind="stable")
    tickets = _WeekTickets(
        customer=customer, opened=opened,
        first_response=np.where(first_response < end_s, first_response, _NEVER),
        resolved=np.where(resolved < end_s, resolved, _NEVER),
        channel=channel, reopened=reopened, csat=csat, escalated=escalated, topic=topic,
        slow=slow, unresolved=unresolved, experienced_csat=experienced_csat, closed=closed,
    )
    tickets = _WeekTickets(**{k: v[order] for k, v in tickets.__dict__.items()})
    _record_ticket_effects(week, tickets, resolved[order], state, rng)
    return tickets


def _book(ring: np.ndarray, week: _Week, when: np.ndarray, customers: np.ndarray) -> None:
    """Count one effect per customer in the ring slot of the week containing ``when``.

    Effects more than ``_RING_WEEKS - 1`` weeks ahead are booked in the last slot.
    """
    ahead = np.clip((when - week.t0) // _WEEK, 0, _RING_WEEKS - 1)
    np.add.at(ring, ((week.index + ahead) % _RING_WEEKS, customers), np.float32(1.0))


def _record_ticket_effects(
    week: _Week, t: _WeekTickets, resolved_any: np.ndarray, state: _State, rng: np.random.Generator
) -> None:
    """Fold this week's tickets into the customers' state (used by the hazard from next week)."""
    np.add.at(state.contacts, t.customer, 1.0)
    np.add.at(state.slow, t.customer, t.slow.astype(np.float32))
    np.add.at(state.topics, (t.topic, t.customer), 1.0)
    state.last_topic[t.customer] = t.topic
    np.maximum.at(state.open_until, t.customer, resolved_any)
    bad_csat = ~t.unresolved & (t.experienced_csat <= 2)
    _book(state.booked_low_csat, week, resolved_any[bad_csat], t.customer[bad_csat])
    again = t.unresolved | (t.reopened > 0)
    again &= rng.random(len(t.customer)) < FOLLOW_UP_PROBABILITY
    later = week.t0 + rng.integers(1, 4, int(again.sum())) * _WEEK
    _book(state.booked_follow_ups, week, later, t.customer[again])


# ============================================================================= feedback rows


@dataclass
class _FeedbackRows:
    """Feedback drawn in one week; texts are rendered at the end from sentiment and themes."""

    customer: np.ndarray
    created: np.ndarray
    source: np.ndarray  # int8 index into FEEDBACK_SOURCES
    sentiment: np.ndarray  # int8 index into SENTIMENTS (true)
    themes: np.ndarray  # uint8 bit mask over THEMES (true)
    decoy: np.ndarray  # int8 theme whose vocabulary appears without the theme, -1 none
    rating: np.ndarray
    nps: np.ndarray
    ces: np.ndarray

    def columns(self) -> tuple[np.ndarray, ...]:
        return tuple(self.__dict__.values())


def _bits(theme: str) -> int:
    return 1 << _THEME[theme]


def _ticket_topic_theme_bit(topic: np.ndarray) -> np.ndarray:
    bits = np.array([_bits(t) if t in _THEME else 0 for t in TOPICS], dtype=np.uint8)
    return bits[topic]


def _draw_ticket_comments(
    week: _Week, t: _WeekTickets, state: _State, rng: np.random.Generator
) -> tuple[np.ndarray, ...]:
    """Comments customers leave on a ticket when the case ends, about how it went."""
    m = len(t.customer)
    bad = t.slow | t.unresolved | (t.reopened > 0) | (t.experienced_csat <= 2)
    writes = rng.random(m) < np.array(TICKET_COMMENT_PROBABILITY)[bad.astype(np.int64)]
    good = ~bad & (t.experienced_csat >= 4)
    p_neg = np.where(bad, 0.80, 0.08)
    p_pos = np.where(bad, 0.05, np.where(good, 0.65, 0.30))
    u = rng.random(m)
    sentiment = np.where(u < p_neg, _NEG, np.where(u < p_neg + p_pos, _POS, _NEU)).astype(np.int8)

    def maybe(condition: np.ndarray, p: float, bit: int | np.ndarray) -> np.ndarray:
        return np.where(condition & (rng.random(m) < p), bit, 0).astype(np.uint8)

    neg, neu, pos = sentiment == _NEG, sentiment == _NEU, sentiment == _POS
    topic_bit = _ticket_topic_theme_bit(t.topic)
    themes = (
        maybe(neg, 0.7, topic_bit) | maybe(neu, 0.5, topic_bit)
        | maybe((neg & t.slow), 0.85, _bits("slow_support"))
        | maybe((neu & t.slow), 0.4, _bits("slow_support"))
        | maybe(neg & (t.unresolved | (t.reopened > 0)), 0.85, _bits("unresolved_issue"))
        | maybe(neu & t.unresolved, 0.4, _bits("unresolved_issue"))
        | maybe(neg & (t.experienced_csat <= 2), 0.35, _bits("staff_attitude"))
        | maybe(neg, 0.03, _bits("staff_attitude"))
        | maybe(pos, 0.45, _bits("staff_attitude"))
    )
    decoy_pool = np.array([_THEME["slow_support"], _THEME["unresolved_issue"]], dtype=np.int8)
    decoy = np.where(pos & (rng.random(m) < 0.5), decoy_pool[rng.integers(0, 2, m)], -1)
    delay = (np.exp(rng.normal(np.log(3.0), 1.0, m)) * 3600).astype(np.int64)
    created = np.minimum(t.closed + delay, t.opened + (_RING_WEEKS - 2) * _WEEK)
    has_ces = rng.random(m) < 0.5
    ces_mean = 2.0 + 1.3 * bad + 0.8 * t.slow + 0.6 * np.minimum(t.reopened, 3)
    ces = np.where(has_ces, _score(rng, ces_mean, 1.0, 1, 7), np.nan)

    rows = _FeedbackRows(
        customer=t.customer, created=created,
        source=np.full(m, _SOURCE["ticket_comment"], dtype=np.int8),
        sentiment=sentiment, themes=themes, decoy=decoy,
        rating=np.full(m, np.nan), nps=np.full(m, np.nan), ces=ces,
    )
    rows = _FeedbackRows(*(col[writes] for col in rows.columns()))
    _book_negative_feedback(week, rows, state)
    return rows.columns()


def _score(
    rng: np.random.Generator, mean: np.ndarray, sd: float, low: float, high: float
) -> np.ndarray:
    """A whole-number survey answer around ``mean``, within ``[low, high]``."""
    return np.clip(np.round(rng.normal(mean, sd)), low, high)


def _book_negative_feedback(week: _Week, rows: _FeedbackRows, state: _State) -> None:
    hit = (rows.sentiment == _NEG) & ((rows.themes & _CHURN_THEME_MASK) > 0)
    _book(state.booked_negative_feedback, week, rows.created[hit], rows.customer[hit])


def _trouble(week: _Week, state: _State, customers: np.ndarray) -> np.ndarray:
    """How bad the customer's recent experience is; drives feedback volume and sentiment."""
    return (
        0.7 * state.slow[customers] + 0.8 * (state.open_until[customers] > week.t0)
        + 0.4 * np.maximum(state.contacts[customers] - 1, 0) + 0.7 * state.low_csat[customers]
        + 1.0 * _incident_on(week, state, customers)
    )


def _negative_theme_weights(
    week: _Week, pop: _Population, state: _State, c: np.ndarray
) -> np.ndarray:
    """Per row, the weight of each theme in a negative text, from the customer's experience."""
    topic = state.topics[:, c]
    open_now = state.open_until[c] > week.t0
    return np.stack([
        0.6 + 3.0 * topic[_TOPIC["billing"]],
        0.8 * pop.price_sensitivity[c],
        0.3 + 3.0 * state.slow[c],
        0.3 + 3.0 * open_now + 1.0 * np.maximum(state.contacts[c] - 1, 0),
        0.6 + 4.0 * _incident_on(week, state, c) + 2.0 * topic[_TOPIC["product_bugs"]],
        0.7 + 2.0 * topic[_TOPIC["usability"]],
        0.6 + 2.0 * topic[_TOPIC["missing_features"]],
        0.25 + 1.5 * state.low_csat[c],
    ], axis=1)


_NEUTRAL_THEME_WEIGHTS = np.array([0.6, 1.0, 0.2, 0.2, 0.4, 0.9, 1.4, 0.3])


def _sample_theme_mask(weights: np.ndarray, k: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Per row, a bit mask of ``k`` distinct themes drawn in proportion to ``weights``."""
    keys = np.log(weights) + rng.gumbel(size=weights.shape)  # Gumbel top-k = weighted, no repeats
    ranked = np.argsort(-keys, axis=1)
    mask = np.zeros(len(weights), dtype=np.uint8)
    for j in range(int(k.max(initial=0))):
        mask |= np.where(k > j, 1 << ranked[:, j], 0).astype(np.uint8)
    return mask


def _draw_spontaneous_feedback(
    week: _Week, pop: _Population, state: _State, rng: np.random.Generator
) -> tuple[np.ndarray, ...]:
    """Reviews and surveys written during the week, coloured by the customer's recent experience."""
    c_all = week.customers
    trouble_all = _trouble(week, state, c_all)
    problem_all = state.problem_until[c_all] >= week.index
    lam = SPONTANEOUS_FEEDBACK_RATE * week.exposure * (1 + 0.5 * np.minimum(trouble_all, 4))
    lam *= np.where(problem_all, SILENT_PROBLEM_FEEDBACK_FACTOR, 1.0)
    owner = np.repeat(np.arange(len(c_all)), rng.poisson(lam))
    c, trouble, problem, m = c_all[owner], trouble_all[owner], problem_all[owner], len(owner)
    mood = pop.mood[c]
    # Unobserved dissatisfaction (the hazard's frailty) shows in what customers write.
    grudge = FEEDBACK_FRAILTY_WEIGHT * pop.frailty[c] - mood
    negative_logit = -1.2 + trouble + grudge + SILENT_PROBLEM_NEGATIVE_LOGIT * problem
    positive_logit = 0.5 - 0.6 * trouble - grudge
    logits = np.stack([negative_logit, np.zeros(m), positive_logit], axis=1)
    prob = np.exp(logits)
    prob /= prob.sum(axis=1, keepdims=True)
    u = rng.random(m)
    sentiment = np.where(u < prob[:, 0], _NEG, np.where(u < prob[:, :2].sum(axis=1), _NEU, _POS))
    sentiment = sentiment.astype(np.int8)

    neg, neu, pos = sentiment == _NEG, sentiment == _NEU, sentiment == _POS
    k = np.where(neg, _categorical(rng, (0.12, 0.55, 0.25, 0.08), m), 0)
    k = np.where(neu, (rng.random(m) < 0.65).astype(np.int8), k)
    negative_weights = _negative_theme_weights(week, pop, state, c)
    negative_weights[np.flatnonzero(problem), state.problem_theme[c[problem]]] += (
        SILENT_PROBLEM_THEME_WEIGHT
    )
    weights = np.where(neg[:, None], negative_weights, _NEUTRAL_THEME_WEIGHTS)
    themes = _sample_theme_mask(weights, k, rng)
    one_theme = _sample_theme_mask(weights, np.ones(m, np.int8), rng)  # neutral weights here
    themes |= np.where(pos & (rng.random(m) < 0.12), one_theme, 0).astype(np.uint8)
    themes |= np.where(pos & (rng.random(m) < 0.20), _bits("staff_attitude"), 0).astype(np.uint8)
    themes |= np.where(pos & (rng.random(m) < 0.12), _bits("missing_features"), 0).astype(np.uint8)
    p_decoy = np.array([0.15, 0.12, 0.45])[sentiment]
    decoy_theme = rng.integers(0, len(synth_phrases.DECOYS), m)
    decoy_theme = np.array([_THEME[t] for t in synth_phrases.DECOYS], dtype=np.int8)[decoy_theme]
    clash = ((themes >> decoy_theme.astype(np.uint8)) & 1) > 0
    decoy = np.where((rng.random(m) < p_decoy) & ~clash, decoy_theme, -1).astype(np.int8)

    source = np.where(rng.random(m) < 0.5, _SOURCE["review"], _SOURCE["survey"]).astype(np.int8)
    survey = source == _SOURCE["survey"]
    rating = _score(rng, np.array([1.7, 3.2, 4.5])[sentiment] + 0.3 * mood, 0.7, 1, 5)
    rating = np.where(survey & (rng.random(m) < 0.4), np.nan, rating)
    nps = _score(rng, np.array([3.5, 6.8, 9.0])[sentiment] + 0.8 * mood, 1.3, 0, 10)
    ces = _score(rng, np.array([4.8, 3.5, 2.2])[sentiment], 1.0, 1, 7)
    rows = _FeedbackRows(
        customer=c, created=_times_in_window(week, owner, week.day_weight, HOUR_WEIGHT, rng),
        source=source, sentiment=sentiment, themes=themes, decoy=decoy, rating=rating,
        nps=np.where(survey, nps, np.nan), ces=np.where(survey, ces, np.nan),
    )
    _book_negative_feedback(week, rows, state)
    return rows.columns()


def _decay_experience(state: _State) -> None:
    """Age the remembered experience by one week (after the hazard has used it)."""
    d = np.float32(HAZARD.state_decay)
    for name in ("slow", "contacts", "low_csat", "negative_feedback", "topics"):
        getattr(state, name)[...] *= d


def _end_week(week: _Week, state: _State) -> None:
    """Add the effects booked for this week (resolutions and comments that happened in it)."""
    slot = week.index % _RING_WEEKS
    state.low_csat += state.booked_low_csat[slot]
    state.negative_feedback += state.booked_negative_feedback[slot]
    state.booked_low_csat[slot] = 0
    state.booked_negative_feedback[slot] = 0


# ============================================================================= labels


def _noisy_labels(
    sentiment: np.ndarray, themes: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Annotator noise: LABEL_NOISE of rows get another sentiment, LABEL_NOISE one theme toggled."""
    n = len(sentiment)
    flip = rng.random(n) < LABEL_NOISE
    sentiment = np.where(flip, (sentiment + rng.integers(1, 3, n)) % 3, sentiment)
    toggle = rng.random(n) < LABEL_NOISE
    themes = np.where(toggle, themes ^ (1 << rng.integers(0, len(THEMES), n)), themes)
    return sentiment.astype(np.int8), themes.astype(np.uint8)


# ============================================================================= frames


def _timestamps(seconds: np.ndarray) -> pd.Series:
    ns = np.where(seconds == _NEVER, np.iinfo(np.int64).min, seconds * 1_000_000_000)
    return pd.Series(ns.view("datetime64[ns]"))


def _strings(values: np.ndarray) -> pd.Series:
    return pd.Series(values, dtype=object)


def _labels(names: Iterable[str], codes: np.ndarray) -> pd.Series:
    return _strings(np.array(tuple(names), dtype=object)[codes])


def _concat(chunks: list[tuple[np.ndarray, ...]]) -> list[np.ndarray]:
    return [np.concatenate(col) for col in zip(*chunks, strict=True)]


def _customers_frame(pop: _Population, state: _State) -> pd.DataFrame:
    return pd.DataFrame({
        "customer_id": _strings(pop.ids),
        "signup_at": _timestamps(pop.signup),
        "segment": _labels(SEGMENTS, pop.segment),
        "plan": _labels(PLANS, pop.plan),
        "region": _labels(REGIONS, pop.region),
        "monthly_value": pop.monthly_value.astype(np.float64),
        "churned_at": _timestamps(state.churned_at),
    })


def _events_frame(sim: _Simulated, pop: _Population) -> pd.DataFrame:
    customer, when, kind, amount = _concat(sim.chunks.events)
    return pd.DataFrame({
        "customer_id": _strings(pop.ids[customer]),
        "occurred_at": _timestamps(when),
        "event_type": _labels(EVENT_TYPES, kind),
        "amount": amount.astype(np.float64),
    })


def _tickets_frame(sim: _Simulated, pop: _Population) -> pd.DataFrame:
    columns = [t.columns() for t in sim.chunks.tickets]
    (customer, opened, first_response, resolved, channel, reopened, csat, escalated) = _concat(
        columns
    )
    n = len(customer)
    return pd.DataFrame({
        "ticket_id": _strings(np.array([f"T{i:08d}" for i in range(1, n + 1)], dtype=object)),
        "customer_id": _strings(pop.ids[customer]),
        "opened_at": _timestamps(opened),
        "first_response_at": _timestamps(first_response),
        "resolved_at": _timestamps(resolved),
        "channel": _labels(CHANNELS, channel),
        "reopened_count": reopened.astype(np.int64),
        "csat": csat.astype(np.float64),
        "escalated": escalated.astype(bool),
    })


def _feedback_frame(
    sim: _Simulated, pop: _Population, end_s: int, rng: np.random.Generator
) -> pd.DataFrame:
    rows = _FeedbackRows(*_concat(sim.chunks.feedback))
    # Comments are written when a case ends, possibly after the customer left or after `end`.
    written = rows.created < np.minimum(sim.state.churned_at[rows.customer], end_s)
    order = np.flatnonzero(written)[np.argsort(rows.created[written], kind="stable")]
    rows = _FeedbackRows(*(col[order] for col in rows.columns()))
    n = len(rows.customer)
    bank = synth_phrases.build_phrase_bank(THEMES, rng, VARIANTS_PER_CATEGORY, TYPO_RATE)
    texts = synth_phrases.render_texts(
        bank, rows.sentiment, rows.themes, rows.decoy,
        opener_probability=np.array(OPENER_PROBABILITY)[rows.source],
        closer_probability=np.array(CLOSER_PROBABILITY)[rows.source],
        rng=rng,
    )
    sentiment, themes = _noisy_labels(rows.sentiment, rows.themes, rng)
    theme_strings = np.array(
        [THEME_SEPARATOR.join(t for i, t in enumerate(THEMES) if m >> i & 1) for m in range(256)],
        dtype=object,
    )
    return pd.DataFrame({
        "feedback_id": _strings(np.array([f"F{i:08d}" for i in range(1, n + 1)], dtype=object)),
        "customer_id": _strings(pop.ids[rows.customer]),
        "created_at": _timestamps(rows.created),
        "source": _labels(FEEDBACK_SOURCES, rows.source),
        "text": _strings(np.array(texts, dtype=object)),
        "rating": rows.rating.astype(np.float64),
        "nps": rows.nps.astype(np.float64),
        "ces": rows.ces.astype(np.float64),
        "sentiment": _labels(SENTIMENTS, sentiment),
        "themes": _strings(theme_strings[themes]),
    })
