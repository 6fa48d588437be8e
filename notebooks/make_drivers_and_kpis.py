"""Writes notebooks/drivers_and_kpis.ipynb from the cells below (run it after editing them)."""

from __future__ import annotations

from pathlib import Path

import nbformat as nbf

CELLS: list[tuple[str, str]] = [
    ("md", """# What drives churn, and how service is doing

The analysis behind `retain report`, one step at a time, with the package's API: service and customer KPIs
over time → themes and sentiment from the text models → churn drivers with intervals, raw and adjusted →
what a customer is worth (BG/NBD and Gamma-Gamma on the purchase log) → monitoring: drift, theme surges and
the churn model's ROC-AUC estimated before labels arrive → the report page.

Nothing reusable is defined here: every step is a call into `retain`. Run it from the repository root
(`make demo` has created `.venv`; pick that kernel). One setting, from the environment:
`RETAIN_NOTEBOOK_CUSTOMERS` (default 3000). Formulas: `docs/kpis.md`, `docs/drivers.md`, `docs/monitoring.md`."""),
    ("code", """import os
from pathlib import Path

import pandas as pd
from sklearn.linear_model import LogisticRegression

from retain import training
from retain.churn import features, labels
from retain.config import DriversConfig, FeatureConfig, LabelConfig, Taxonomy, TextModelConfig, load_config
from retain.insight import drivers, kpis, monitoring, value
from retain.insight.report import (
    CUSTOMER_PANELS, SERVICE_PANELS, ReportParts, driver_figure, insight_report, kpi_trend_figure, theme_figure,
    value_figure,
)
from retain.synth import generate_world
from retain.text.scoring import score_feedback

N_CUSTOMERS = int(os.environ.get("RETAIN_NOTEBOOK_CUSTOMERS", "3000"))
WORKDIR = Path(os.environ.get("RETAIN_NOTEBOOK_WORKDIR", "demo/notebook"))
pd.set_option("display.max_columns", 30)
pd.set_option("display.max_colwidth", 70)

world = generate_world(N_CUSTOMERS, seed=0)
end = training.observed_until(world)
{name: len(frame) for name, frame in world.tables().items()}"""),
    ("md", """## 1. Service KPIs, month by month

One row per month: tickets opened, first response (median and p90) and resolution times in hours,
first-contact resolution (resolved, never reopened, no other ticket from the customer within 7 days), CSAT,
NPS (promoters minus detractors), CES and feedback volume. A ticket counts in the month it was opened."""),
    ("code", """service = kpis.service_kpis(world.tickets, world.feedback, world.customers, freq="M")
service.tail(3).round(2)"""),
    ("code", """kpi_trend_figure(service, SERVICE_PANELS, "Service KPIs")"""),
    ("md", """The same by group: a customer attribute (segment, region, plan) or a column of the table itself (a ticket's
channel). Here the last full month by channel: phone is answered fastest, email slowest."""),
    ("code", """by_channel = kpis.service_kpis(world.tickets, world.feedback, world.customers, freq="M", by="channel")
by_channel.loc[by_channel["period"] == by_channel["period"].max()].round(2)"""),
    ("md", """## 2. Customer KPIs

Active customers at the start of each month, the share of them who churned in it, purchases, average purchase
value, purchases per buying customer, repeat purchase rate, and a historical customer lifetime value
(average purchase value × frequency × 1 / churn rate)."""),
    ("code", """customer = kpis.customer_kpis(world.customers, world.events, freq="M", churn_known_until=end)
kpi_trend_figure(customer, CUSTOMER_PANELS, "Customer KPIs")"""),
    ("md", """## 3. Themes and sentiment over time

The text models (TF-IDF + logistic regression) are fitted on the labelled feedback, then score every text. A
text mentions a theme when its probability is at least 0.5. (`retain report` uses the text models the
champion churn model was trained with, from the MLflow registry.)"""),
    ("code", """taxonomy = load_config("configs/themes.yaml", Taxonomy)
text = training.train_text_models(world.feedback, taxonomy.ids, TextModelConfig())
scores = score_feedback(world.feedback, text.sentiment, text.themes, text.theme_ids)
themes = kpis.theme_kpis(world.feedback, scores, text.theme_ids, freq="M")
theme_figure(themes)"""),
    ("md", """## 4. What drives churn

At monthly dates whose 90-day churn window is observed, each customer in the churn population gets yes/no
drivers read from the 90 days before: service levels (slow first response, open, reopened, escalated
tickets, low CSAT, repeated contacts), channels, segments, and negative or other feedback per theme. For
each driver: churn with and without it, the lift with a bootstrap interval that resamples customers (not
rows), and the adjusted view: one penalised logistic regression of churn on every driver together (with
value, tenure and feedback volume as controls), so a driver that only travels with another is not credited.
Ranked by the churned value the adjusted effect accounts for. These are associations, not proof of cause."""),
    ("code", """table = drivers.drivers_report(world, FeatureConfig(), LabelConfig(), text, DriversConfig(bootstrap=100), taxonomy)
table[["rank", "label", "rate_with", "rate_without", "lift", "lift_low", "lift_high", "odds_ratio",
       "adjusted_churned_value", "adjusted_excludes_zero"]].head(12).round(3)"""),
    ("code", """driver_figure(table)"""),
    ("md", """The synthetic world has a planted structure (`docs/synthetic_world.md`): slow first responses, open
tickets, repeated contacts, low CSAT and negative feedback on billing, slow support, unresolved problems or
bugs raise the churn hazard; pricing, usability, missing-feature and staff-attitude complaints do not. The
adjusted view should put the first group above the second."""),
    ("code", """planted = table["driver"].str.contains("open_ticket|slow_first|repeated|low_csat|negative_(?:billing|slow_support|unresolved_issue|product_bugs)")
unplanted = table["driver"].str.contains("pricing|usability|missing_features|staff_attitude")
print("best rank of a driver with no planted effect:", int(table.loc[unplanted, "rank"].min()))
table.loc[planted, ["rank", "label", "odds_ratio", "adjusted_excludes_zero"]]"""),
    ("md", """## 5. What a customer is worth

For purchase logs (no contracted monthly value), BG/NBD says how many purchases a customer will make given
their frequency (repeat purchase days), recency and age, and Gamma-Gamma what each purchase will be worth.
Both are fitted on the log up to a date only; value at risk in the list uses the same models. Here BG/NBD is
fitted on the purchases up to 180 days before the end of the data and checked against the purchase days that
followed."""),
    ("code", """cut = end - pd.Timedelta(days=180)
history = value.purchase_summary(world.events, cut, purchase_type="purchase")
bgnbd = value.BetaGeoModel().fit(history["frequency"], history["recency"], history["T"])
rfm = (history["frequency"], history["recency"], history["T"])
history["expected_purchases"] = bgnbd.expected_purchases(180, *rfm)
history["probability_alive"] = bgnbd.probability_alive(*rfm)
later = world.events.loc[(world.events["occurred_at"] > cut) & world.events["amount"].notna()]
days = later.assign(day=later["occurred_at"].dt.normalize()).groupby("customer_id", observed=True)["day"].nunique()
history["actual_purchases"] = days.reindex(history.index).fillna(0).to_numpy()
print("BG/NBD (r, alpha, a, b):", [round(v, 3) for v in bgnbd.params_])
print(f"next 180 days: expected {history['expected_purchases'].sum():,.0f} purchase days, "
      f"actual {history['actual_purchases'].sum():,.0f}; mean absolute error per customer "
      f"{(history['expected_purchases'] - history['actual_purchases']).abs().mean():.3f}")"""),
    ("code", """try:
    models = value.fit_value_models(history)
    print("Gamma-Gamma (p, q, v):", [round(v, 3) for v in models.spend.params_])
except ValueError as exc:
    # The synthetic world draws baskets from a lognormal: too heavy-tailed for Gamma-Gamma. The list then
    # values customers by their recent spend and says so (value_basis); on CDNOW it fits (docs/kpis.md).
    print("Gamma-Gamma not fitted:", exc)
value_figure(history, "expected_purchases")"""),
    ("md", """## 6. Monitoring between trainings

A model is fitted on the customers of one date and applied at a later one. Before the later date's labels
arrive, monitoring compares the inputs with the reference (population stability index and KS statistic per
feature), looks for theme surges in the latest week, and estimates the ROC-AUC from the calibrated
probabilities alone (confidence-based performance estimation, as NannyML's CBPE). Here the labels are known,
so the estimate can be checked against the realised ROC-AUC."""),
    ("code", """def customers_at(as_of):
    X = features.build_features(world, as_of, None, [], windows_days=(30, 90))
    y = labels.labels(world.customers, world.events, as_of, 90)
    return X.set_index("customer_id"), y

columns = ["tickets_90d", "events_30d", "days_since_last_event", "first_response_hours_max_90d", "open_tickets", "csat_min_90d", "tenure_days"]
train_X, train_y = customers_at(end - pd.Timedelta(days=300))
later_X, later_y = customers_at(end - pd.Timedelta(days=120))
columns = [c for c in columns if c in train_X.columns]
model = LogisticRegression(max_iter=1000).fit(train_X[columns].fillna(0), train_y.reindex(train_X.index))
probability = model.predict_proba(later_X[columns].fillna(0))[:, 1]
print("estimated ROC-AUC before labels:", round(monitoring.estimated_roc_auc(probability), 3))
print("realised ROC-AUC:               ", round(monitoring.realised_performance(probability, later_y.reindex(later_X.index).to_numpy())["roc_auc"], 3))
monitoring.feature_drift(train_X, later_X, columns).round(3)"""),
    ("md", """## 7. The report

`retain report -c configs/report.yaml` writes all of this (with the champion model's calibration and gains,
and the latest scoring run's monitoring) as one HTML page with its plots inline; the same function makes it
from the tables above."""),
    ("code", """page = insight_report(ReportParts(title="retain report (notebook)", service=service, customers=customer,
                                 themes=themes, drivers=table))
WORKDIR.mkdir(parents=True, exist_ok=True)
(WORKDIR / "report.html").write_text(page)
print(f"{WORKDIR / 'report.html'}: {len(page) / 1e6:.1f} MB")"""),
]


def build() -> nbf.NotebookNode:
    notebook = nbf.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.cells = [
        nbf.v4.new_markdown_cell(src) if kind == "md" else nbf.v4.new_code_cell(src) for kind, src in CELLS
    ]
    return notebook


if __name__ == "__main__":
    nbf.write(build(), Path(__file__).with_name("drivers_and_kpis.ipynb"))
