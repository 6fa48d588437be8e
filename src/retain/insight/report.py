"""The insight report: one self-contained HTML page of KPIs, themes, drivers, model and drift.

:func:`insight_report` takes what :func:`retain.jobs.run_report` (or a notebook) computed, as
tables, and returns the page; the figure functions are public so a notebook can show the same
plots. Nothing here reads files or talks to MLflow.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from retain import htmlpage
from retain.contracts import CONTRACTS

if TYPE_CHECKING:
    from matplotlib.figure import Figure

SERVICE_PANELS: tuple[tuple[str, str], ...] = (
    ("tickets", "Tickets opened"),
    ("first_response_hours_median", "First response, median (h)"),
    ("first_response_hours_p90", "First response, p90 (h)"),
    ("resolution_hours_median", "Resolution, median (h)"),
    ("first_contact_resolution", "First-contact resolution"),
    ("csat_mean", "CSAT (1-5)"),
    ("nps", "NPS"),
    ("ces_mean", "CES (1-7, lower is better)"),
    ("feedback", "Feedback written"),
)
CUSTOMER_PANELS: tuple[tuple[str, str], ...] = (
    ("active_customers", "Active customers"),
    ("churn_rate", "Churn rate"),
    ("purchases", "Purchases"),
    ("average_purchase_value", "Average purchase value"),
    ("purchase_frequency", "Purchases per buying customer"),
    ("repeat_purchase_rate", "Repeat purchase rate"),
    ("cltv", "Historical CLTV"),
)


@dataclass
class ReportParts:
    """What the report shows; every part is optional and its section is left out without it."""

    title: str
    #: Plain-language facts about the data and models (label -> value), shown first.
    facts: dict[str, str] = field(default_factory=dict)
    #: :func:`retain.insight.kpis.service_kpis` over time, one group (``all``).
    service: pd.DataFrame | None = None
    #: The same per group: attribute name -> table (``segment``, ``channel``, ...).
    service_by: dict[str, pd.DataFrame] = field(default_factory=dict)
    #: :func:`retain.insight.kpis.customer_kpis` over time, one group.
    customers: pd.DataFrame | None = None
    #: :func:`retain.insight.kpis.theme_kpis`.
    themes: pd.DataFrame | None = None
    #: The churn drivers table (:mod:`retain.insight.drivers`).
    drivers: pd.DataFrame | None = None
    #: Customer value (:mod:`retain.insight.value`): a per-customer table and its summary.
    value: pd.DataFrame | None = None
    value_summary: dict[str, Any] = field(default_factory=dict)
    #: The champion's evaluation predictions (``churned``, ``churn_probability``, optional ``baseline_probability``).
    evaluation: pd.DataFrame | None = None
    #: The monitoring section of the latest scoring run's summary.
    monitoring: dict[str, Any] | None = None
    #: Notes shown under the title (what was left out and why).
    notes: list[str] = field(default_factory=list)


def insight_report(parts: ReportParts) -> str:
    """The whole report as one HTML document (figures inline as PNG)."""
    sections = [_overview(parts)]
    if parts.service is not None and not parts.service.empty:
        sections.append(_service_section(parts.service, parts.service_by))
    if parts.customers is not None and not parts.customers.empty:
        sections.append(_customer_section(parts.customers))
    if parts.themes is not None and not parts.themes.empty:
        sections.append(_theme_section(parts.themes))
    if parts.drivers is not None and not parts.drivers.empty:
        sections.append(_driver_section(parts.drivers))
    if parts.value is not None and not parts.value.empty:
        sections.append(_value_section(parts.value, parts.value_summary))
    if parts.evaluation is not None and not parts.evaluation.empty:
        sections.append(_model_section(parts.evaluation))
    if parts.monitoring:
        sections.append(_monitoring_section(parts.monitoring))
    return htmlpage.page(parts.title, sections, style=_STYLE)


def kpi_tables(
    world: Any,
    observed_until: pd.Timestamp,
    label: Any,
    horizon_days: int,
    settings: Any,
    text_scores: pd.DataFrame | None = None,
    theme_ids: Sequence[str] = (),
) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """The report's KPI tables from a world (:class:`retain.contracts.World`), and notes.

    ``service`` and ``service_by_<name>`` (:func:`~retain.insight.kpis.service_kpis`),
    ``customers`` (:func:`~retain.insight.kpis.customer_kpis`; under the inactivity definition a
    customer is lost at their last qualifying event once ``horizon_days`` have passed without
    another, so the churn rate stops ``horizon_days`` before the qualifying events end) and ``themes``
    (:func:`~retain.insight.kpis.theme_kpis`, with ``text_scores``), each trimmed to the last
    ``settings.months`` months. ``settings`` is a :class:`retain.config.ReportConfig`.
    """
    from retain.churn.labels import lapsed_at
    from retain.insight.kpis import customer_kpis, service_kpis, theme_kpis
    from retain.training import TrainingError, labels_observed_until

    since = (pd.Timestamp(observed_until) - pd.DateOffset(months=settings.months)).normalize()
    tables: dict[str, pd.DataFrame] = {}
    notes: list[str] = []

    def recent(table: pd.DataFrame) -> pd.DataFrame:
        return table.loc[pd.to_datetime(table["period"]) >= since].reset_index(drop=True)

    if world.tickets is not None or world.feedback is not None:
        tables["service"] = recent(
            service_kpis(world.tickets, world.feedback, world.customers, settings.freq, None, settings.fcr_window_days)
        )
        for name in settings.group_by:
            if name in _PER_ROW_COLUMNS:
                notes.append(
                    f"service KPIs by {name}: left out, a per-row id, date or text would show single customers"
                )
                continue
            try:
                table = service_kpis(
                    world.tickets, world.feedback, world.customers, settings.freq, name, settings.fcr_window_days
                )
            except KeyError:
                notes.append(f"service KPIs by {name}: the data has no {name!r} column")
                continue
            tables[f"service_by_{name}"] = recent(table)
    else:
        notes.append("no tickets or feedback table: no service KPIs")
    customers = world.customers
    known_until = pd.Timestamp(observed_until)
    if label.definition == "inactivity":
        # Silence is only seen while qualifying events are recorded (training.labels_observed_until):
        # other tables running on must not make everyone look lost.
        try:
            known_until = min(known_until, labels_observed_until(world, label))
        except TrainingError as exc:  # no qualifying event at all: nobody can be seen to lapse
            notes.append(f"no churn rate: {exc}")
            known_until = pd.to_datetime(world.customers["signup_at"]).min()
        customers = customers.assign(
            churned_at=lapsed_at(customers, world.events, known_until, horizon_days, label.event_types)
        )
        known_until = known_until - pd.Timedelta(days=horizon_days)
    tables["customers"] = recent(
        customer_kpis(customers, world.events, settings.freq, churn_known_until=known_until)
    )
    if text_scores is not None and world.feedback is not None and theme_ids:
        tables["themes"] = recent(
            theme_kpis(world.feedback, text_scores, theme_ids, settings.freq, settings.theme_threshold)
        )
    return tables, notes


#: Columns that identify a row, date it or hold its text: never a KPI group (one customer per group).
_PER_ROW_COLUMNS = frozenset(
    c.name for contract in CONTRACTS.values() for c in contract.columns if c.kind in ("id", "timestamp", "text")
)


# --------------------------------------------------------------------------------------------
# Figures


def _figure(rows: int, columns: int, title: str, width: float = 11.0, height: float = 2.6) -> tuple[Figure, np.ndarray]:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height * rows), layout="constrained")
    axes = np.atleast_1d(figure.subplots(rows, columns, squeeze=False)).ravel()
    figure.suptitle(title)
    figure._repr_png_ = lambda: _png(figure)  # type: ignore[attr-defined]  # shown inline by notebooks
    return figure, axes


def _png(figure: Figure) -> bytes:
    import io

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    return buffer.getvalue()


def kpi_trend_figure(table: pd.DataFrame, panels: Sequence[tuple[str, str]], title: str) -> Figure | None:
    """Small multiples, one line per group, of the KPI columns of ``table`` that hold a figure."""
    present = [(c, label) for c, label in panels if c in table.columns and table[c].notna().any()]
    if not present:
        return None
    columns = 3
    rows = math.ceil(len(present) / columns)
    figure, axes = _figure(rows, columns, title)
    for ax, (column, label) in zip(axes, present, strict=False):
        for group, part in table.groupby("group", sort=True):
            ax.plot(part["period"], part[column], marker=".", label=str(group))
        ax.set_title(label, fontsize="medium")
        ax.grid(True, alpha=0.3)
        ax.tick_params(axis="x", labelrotation=30, labelsize="small")
    for ax in axes[len(present):]:
        ax.set_visible(False)
    if table["group"].nunique() > 1:
        axes[0].legend(fontsize="x-small")
    return figure


def theme_figure(themes: pd.DataFrame) -> Figure:
    """Each theme's share of feedback and its net sentiment, month by month."""
    figure, (share_ax, sentiment_ax) = _figure(1, 2, "Themes over time", height=3.6)
    for theme, part in themes.groupby("theme", sort=True):
        share_ax.plot(part["period"], part["share"], marker=".", label=str(theme))
        sentiment_ax.plot(part["period"], part["net_sentiment"], marker=".", label=str(theme))
    share_ax.set_title("Share of feedback mentioning the theme", fontsize="medium")
    sentiment_ax.set_title("Net sentiment of those mentions (P(pos) - P(neg))", fontsize="medium")
    sentiment_ax.axhline(0, color="grey", linewidth=0.8)
    for ax in (share_ax, sentiment_ax):
        ax.grid(True, alpha=0.3)
        ax.tick_params(axis="x", labelrotation=30, labelsize="small")
    share_ax.legend(fontsize="x-small", ncol=2)
    return figure


def driver_figure(drivers: pd.DataFrame, top: int = 15) -> Figure | None:
    """Each driver's raw lift and adjusted odds ratio with their intervals (log scale), top first."""
    needed = {"lift", "lift_low", "lift_high"}
    if not needed <= set(drivers.columns):
        return None
    shown = drivers.head(top).iloc[::-1]
    names = shown["label"] if "label" in shown.columns else shown["driver"]
    adjusted = {"odds_ratio", "coefficient_low", "coefficient_high"} <= set(shown.columns)
    figure, axes = _figure(
        1, 2 if adjusted else 1, "Churn drivers (95% intervals)", width=11.0, height=0.34 * len(shown) + 1.4
    )
    y = np.arange(len(shown))
    panels = [("lift", shown["lift"], shown["lift_low"], shown["lift_high"], "churn rate with / without")]
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    if adjusted:
        panels.append(
            ("adjusted", shown["odds_ratio"], np.exp(shown["coefficient_low"]), np.exp(shown["coefficient_high"]),
             "odds ratio, all drivers together")
        )
    for ax, (name, middle, low, high, label) in zip(axes, panels, strict=True):
        middle, low, high = (np.asarray(v, dtype=float) for v in (middle, low, high))
        ax.errorbar(middle, y, xerr=[np.clip(middle - low, 0, None), np.clip(high - middle, 0, None)], fmt="o", capsize=3)
        ax.axvline(1.0, color="grey", linestyle=":")
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(label)
        ax.set_title("raw" if name == "lift" else "adjusted", fontsize="medium")
        ax.grid(True, axis="x", alpha=0.3)
        ax.set_yticks(y, [str(n) for n in names] if ax is axes[0] else [""] * len(y), fontsize="small")
    return figure


DRIVER_COLUMNS: tuple[tuple[str, str], ...] = (
    ("rank", "rank"),
    ("label", "driver"),
    ("customers_with", "customers with it"),
    ("rate_with", "churn with"),
    ("rate_without", "churn without"),
    ("lift", "lift"),
    ("lift_low", "lift low"),
    ("lift_high", "lift high"),
    ("odds_ratio", "adjusted odds ratio"),
    ("adjusted_churned_value", "adjusted churned value"),
    ("share_of_churned_value", "share of churned value"),
    ("adjusted_excludes_zero", "adjusted interval excludes no effect"),
)


def drift_figure(features: pd.DataFrame, threshold: float | None = None, top: int = 25) -> Figure | None:
    """PSI per feature (largest first), with the configured threshold."""
    if "psi" not in features.columns or "feature" not in features.columns or features.empty:
        return None
    shown = features.sort_values("psi", ascending=False).head(top).iloc[::-1]
    figure, (ax,) = _figure(1, 1, "Input drift: population stability index per feature", width=9.0, height=0.3 * len(shown) + 1.2)
    ax.barh(np.arange(len(shown)), shown["psi"].to_numpy(dtype=float))
    ax.set_yticks(np.arange(len(shown)), [str(f) for f in shown["feature"]], fontsize="small")
    if threshold is not None:
        ax.axvline(threshold, color="crimson", linestyle="--", label=f"threshold {threshold:g}")
        ax.legend(fontsize="small")
    ax.set_xlabel("PSI (scoring data vs training reference)")
    ax.grid(True, axis="x", alpha=0.3)
    return figure


def value_figure(value: pd.DataFrame, column: str = "expected_value") -> Figure | None:
    """How expected customer value is spread: a histogram (log scale) and how concentrated it is."""
    if column not in value.columns:
        return None
    values = value[column].to_numpy(dtype=float)
    values = values[np.isfinite(values) & (values > 0)]
    if values.size == 0:
        return None
    figure, (hist_ax, share_ax) = _figure(1, 2, "Expected customer value", height=3.4)
    low = max(float(np.quantile(values, 0.01)), 1e-9)
    hist_ax.hist(np.clip(values, low, None), bins=np.geomspace(low, values.max() * 1.001, 40))
    hist_ax.set_xscale("log")
    hist_ax.set_xlabel(f"{column.replace('_', ' ')} (lowest 1% shown at the 1st percentile)")
    hist_ax.set_ylabel("customers")
    ordered = np.sort(values)[::-1]
    share = np.concatenate([[0.0], np.cumsum(ordered) / ordered.sum()])
    customers = np.arange(ordered.size + 1) / ordered.size
    share_ax.plot(customers, share)
    share_ax.plot([0, 1], [0, 1], linestyle=":", color="grey")
    share_ax.set_xlabel("share of customers (most valuable first)")
    share_ax.set_ylabel("share of expected value")
    for ax in (hist_ax, share_ax):
        ax.grid(True, alpha=0.3)
    return figure


# --------------------------------------------------------------------------------------------
# Sections


def _overview(parts: ReportParts) -> str:
    facts = pd.DataFrame(list(parts.facts.items()), columns=["", "value"])
    notes = "".join(htmlpage.paragraph(n) for n in parts.notes)
    links = " · ".join(
        f'<a href="#{anchor}">{label}</a>'
        for anchor, label, shown in (
            ("service", "Service KPIs", parts.service is not None),
            ("customers", "Customers", parts.customers is not None),
            ("themes", "Themes", parts.themes is not None),
            ("drivers", "Churn drivers", parts.drivers is not None),
            ("value", "Customer value", parts.value is not None),
            ("model", "Churn model", parts.evaluation is not None),
            ("monitoring", "Monitoring", bool(parts.monitoring)),
        )
        if shown
    )
    return htmlpage.section("overview", "Overview", f"<p>{links}</p>" + htmlpage.table(facts) + notes)


def _images(*figures: Figure | None, side_by_side: bool = False) -> str:
    out = []
    for figure in figures:
        if figure is not None:
            out.append(htmlpage.image(figure))
            figure.clear()
    return f'<div class="pair">{"".join(out)}</div>' if side_by_side else "".join(out)


def _latest(table: pd.DataFrame, panels: Sequence[tuple[str, str]]) -> tuple[pd.Timestamp, pd.DataFrame]:
    """The last period of a per-group table: one row per group, the panels' columns by their labels."""
    last = table["period"].max()
    columns = [(c, label) for c, label in panels if c in table.columns]
    shown = table.loc[table["period"] == last, ["group", *[c for c, _ in columns]]]
    return pd.Timestamp(last), shown.rename(columns=dict(columns)).sort_values("group")


def _service_section(service: pd.DataFrame, by: Mapping[str, pd.DataFrame]) -> str:
    parts = [
        htmlpage.paragraph(
            "Month by month; formulas in docs/kpis.md. A ticket counts in the month it was opened, "
            "feedback in the month it was written."
        ),
        _images(kpi_trend_figure(service, SERVICE_PANELS, "Service KPIs")),
    ]
    for name, table in by.items():
        if table.empty:
            continue
        last, shown = _latest(table, SERVICE_PANELS)
        parts.append(f"<h3>By {html.escape(name)}, period of {last:%Y-%m-%d}</h3>")
        parts.append(htmlpage.table(shown, floats=2))
    if by:
        parts.append(htmlpage.paragraph("Every period of every group is in the CSV tables beside this page."))
    return htmlpage.section("service", "Service KPIs", "\n".join(parts))


def _customer_section(customers: pd.DataFrame) -> str:
    content = htmlpage.paragraph(
        "Active customers at the start of each month, who of them churned in it, and what buying "
        "customers spent. The churn rate is left out for months whose churn is not known yet."
    ) + _images(kpi_trend_figure(customers, CUSTOMER_PANELS, "Customer KPIs"))
    return htmlpage.section("customers", "Customers", content)


def _theme_section(themes: pd.DataFrame) -> str:
    last = themes["period"].max()
    latest = themes.loc[themes["period"] == last].drop(columns="period").sort_values("mentions", ascending=False)
    content = (
        htmlpage.paragraph(
            "Themes and sentiment come from the text models that the champion churn model was trained "
            "with; a feedback row mentions a theme when its probability is at least the threshold."
        )
        + _images(theme_figure(themes))
        + f"<h3>Themes in the month of {pd.Timestamp(last):%Y-%m-%d}</h3>"
        + htmlpage.table(latest, floats=2)
    )
    return htmlpage.section("themes", "Themes", content)


def _driver_section(drivers: pd.DataFrame) -> str:
    content = (
        htmlpage.paragraph(
            "Which experiences travel with churn: churn rate with and without each driver, the lift with "
            "its interval, and the adjusted view (every driver in one regression, so one that only travels "
            "with another is not credited). Ranked by the churned value each accounts for. Associations, "
            "not proof of cause: see docs/drivers.md."
        )
        + _images(driver_figure(drivers))
        + htmlpage.table(
            drivers.head(30)[[c for c, _ in DRIVER_COLUMNS if c in drivers.columns]].rename(columns=dict(DRIVER_COLUMNS)),
            floats=2,
        )
        + htmlpage.paragraph("Churned value is per scoring date; every column, with intervals, is in drivers.csv.")
    )
    return htmlpage.section("drivers", "Churn drivers", content)


def _value_section(value: pd.DataFrame, summary: Mapping[str, Any]) -> str:
    facts = pd.DataFrame([(k, v) for k, v in summary.items()], columns=["", "value"])
    content = htmlpage.table(facts, floats=2) + _images(value_figure(value))
    return htmlpage.section("value", "Customer value", content)


def _model_section(evaluation: pd.DataFrame) -> str:
    from retain.evaluation import churn_figures

    models = {"champion": evaluation["churn_probability"].to_numpy(dtype=float)}
    if "baseline_probability" in evaluation.columns:
        models["logistic baseline"] = evaluation["baseline_probability"].to_numpy(dtype=float)
    figures = churn_figures(evaluation["churned"].to_numpy(), models)
    dates = ""
    if "as_of" in evaluation.columns:
        stamps = pd.to_datetime(evaluation["as_of"])
        dates = f" ({stamps.nunique()} dates, {stamps.min():%Y-%m-%d} to {stamps.max():%Y-%m-%d})"
    content = htmlpage.paragraph(
        f"The champion churn model's evaluation predictions, logged when it was trained: {len(evaluation):,} "
        f"customer-dates{dates} it was not fitted on (later dates in a backtest; other customers in "
        "cross-validation when the data is too short for one). Is its probability the churn rate it says "
        "(calibration), and how many churners does working the list from the top reach (gains)?"
    ) + _images(figures["calibration"], figures["lift"], side_by_side=True)
    for name in ("roc", "precision_recall"):
        figures[name].clear()
    return htmlpage.section("model", "Churn model", content)


def _monitoring_section(monitoring: Mapping[str, Any]) -> str:
    parts = []
    breaches = monitoring.get("breaches") or []
    if breaches:
        items = "".join(f"<li>{html.escape(_describe(b))}</li>" for b in breaches)
        parts.append(f'<p class="breach">Breaches in the latest scoring run:</p><ul>{items}</ul>')
    else:
        parts.append(htmlpage.paragraph("No monitoring threshold was crossed in the latest scoring run."))
    labels = {
        "estimated_roc_auc": "churn model ROC-AUC estimated before labels (CBPE)",
        "estimated_roc_auc_drop": "drop from the ROC-AUC at training",
        "reference": "reference (saved with the model at training)",
        "score_psi": "score drift: PSI of the churn probabilities",
        "themes_checked": "themes with enough feedback in the latest week",
    }
    scalars = [
        (labels.get(k, k.replace("_", " ")), f"{v:.3f}" if isinstance(v, float) else str(v))
        for k, v in monitoring.items()
        if isinstance(v, (int, float, str)) and not isinstance(v, bool)
    ]
    if scalars:
        parts.append(htmlpage.table(pd.DataFrame(scalars, columns=["", "value"]), floats=3))
    parts += [htmlpage.paragraph(str(note)) for note in monitoring.get("notes") or []]
    features = monitoring.get("features")
    if isinstance(features, list) and features:
        table = pd.DataFrame(features)
        thresholds = monitoring.get("thresholds") or {}
        parts.append(_images(drift_figure(table, thresholds.get("psi") if isinstance(thresholds, dict) else None)))
    for key, heading in (("theme_surges", "Theme surges"), ("realised", "Realised performance of earlier runs")):
        value = monitoring.get(key)
        if isinstance(value, list) and value:
            parts.append(f"<h3>{heading}</h3>" + htmlpage.table(pd.DataFrame(value), floats=3))
    return htmlpage.section("monitoring", "Monitoring", "\n".join(parts))


def _describe(breach: Any) -> str:
    if isinstance(breach, str):
        return breach
    if isinstance(breach, Mapping):
        return str(breach.get("message") or ", ".join(f"{k} {v}" for k, v in breach.items()))
    return str(breach)


_STYLE = """
section { margin-top: 2.5em; }
.breach { color: #a40000; font-weight: 600; }
body { max-width: 72em; }
.pair { display: flex; gap: 1em; }
.pair img { width: 49%; }
"""
