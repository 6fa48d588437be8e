"""Writes notebooks/walkthrough.ipynb from the cells below (run it after editing them)."""

from __future__ import annotations

from pathlib import Path

import nbformat as nbf

CELLS: list[tuple[str, str]] = [
    ("md", """# retain, step by step

This notebook walks the same path as `retain train` and `retain score`, one phase at a time, with the
package's public API: a synthetic customer base → validated tables → an evaluation plan (which dates are
labelled, evaluated and used for choosing settings) → text models → point-in-time churn features → leakage
audit → churn model, backtested against a logistic baseline → MLflow registry → a ranked at-risk list with
reasons, their evidence and recommended actions.

Nothing reusable is defined here: every step is a call into `retain`. Run it from the repository root
(`make demo` has created `.venv`; pick that kernel). Two settings, from the environment:
`RETAIN_NOTEBOOK_CUSTOMERS` (default 3000) and `MLFLOW_TRACKING_URI` (default `sqlite:///mlflow.db`)."""),
    ("code", """import os
from pathlib import Path

import pandas as pd

from retain import data, jobs, training
from retain.churn import features
from retain.churn.audit import audit_features
from retain.config import (
    ChurnModelConfig,
    DataConfig,
    FeatureConfig,
    LabelConfig,
    Playbook,
    ScoringConfig,
    Taxonomy,
    TextModelConfig,
    TrackingConfig,
    TrainConfig,
    load_config,
)
from retain.scoring import ScoringModels, score_world
from retain.synth import generate_world

N_CUSTOMERS = int(os.environ.get("RETAIN_NOTEBOOK_CUSTOMERS", "3000"))
WORKDIR = Path(os.environ.get("RETAIN_NOTEBOOK_WORKDIR", "demo/notebook"))
pd.set_option("display.max_columns", 30)
pd.set_option("display.max_colwidth", 80)"""),
    ("md", """## 1. A synthetic world

Four tables that follow retain's data contracts (`docs/data_contracts.md`). The world has a planted causal
structure (`docs/synthetic_world.md`): slow or unresolved support, repeated contacts, low CSAT and negative
feedback on billing, slow support, unresolved problems and bugs raise the churn hazard; value and tenure
lower it. Feedback texts carry their true sentiment and theme labels."""),
    ("code", """world = generate_world(N_CUSTOMERS, seed=0)
paths = data.write_world(world, WORKDIR / "world")
{name: len(frame) for name, frame in world.tables().items()}"""),
    ("code", """world.tickets.head()"""),
    ("code", """world.feedback[["created_at", "source", "text", "sentiment", "themes"]].head(8)"""),
    ("md", """## 2. Load and validate, as a user's data would be

`load_world` maps column names, checks types and keys, and reports (and quarantines) every row it cannot
use. Only `customers` is required; events, tickets and feedback are each optional, and the feature families
follow from the tables present. A synthetic world has all four and should pass untouched."""),
    ("code", """loaded = data.load_world(DataConfig(path=WORKDIR / "world"))
print(loaded.summary())
world = loaded.world
print("feature families:", ", ".join(features.feature_families(world)))"""),
    ("md", """## 3. The evaluation plan: which dates teach, which judge, which choose settings

A customer's churn label at `as_of` needs the following 90 days observed, so the *labelled* dates are those
whose label window closes by the end of the data. The last few of them are *evaluation* dates: a backtest
predicts each one with a model fitted only on dates whose label windows had closed by then. One label
window before the first evaluation date sits the *validation* date, where the model settings are chosen;
no evaluation date shapes the settings that evaluate it. A single evaluation date is a noisy judge, hence
several."""),
    ("code", """feature_config = FeatureConfig()
label_config = LabelConfig()  # contractual churn: a churned_at date in (as_of, as_of + 90 days]
churn_config = ChurnModelConfig(search_budget_s=20)  # a short settings search keeps the notebook quick
plan = training.plan_evaluation(world, feature_config, churn_config)
print(plan.description)
print("labelled as_of:  ", [str(d.date()) for d in plan.labelled])
print("evaluation as_of:", [str(d.date()) for d in plan.evaluation])
print("validation as_of:", plan.validation.date() if plan.validation is not None else None)"""),
    ("md", """## 4. Text models: sentiment and themes

TF-IDF + logistic regression, trained from whatever labels exist (no labels at all is a normal case: text
features are then left out). Each model is fitted on the earlier labelled feedback and evaluated on the
latest 20% against the true labels, beside a majority-class baseline; the models kept for scoring are then
refitted on all labelled feedback."""),
    ("code", """taxonomy = load_config("configs/themes.yaml", Taxonomy)
text_config = TextModelConfig()
text = training.train_text_models(world.feedback, taxonomy.ids, text_config)
print(f"fitted on {text.n_train} texts, evaluated on the latest {text.n_test}")
pd.DataFrame({"model": text.metrics, "majority baseline": text.baseline_metrics}).round(3)"""),
    ("code", """text.figures["sentiment_confusion"]"""),
    ("md", """## 5. Point-in-time features, with time-bounded text

One row per (customer, labelled `as_of`). Nothing dated after `as_of` influences a feature (a property test
proves it), and that includes the text features: at each date they come from text models fitted only on
feedback created before it (refitted every 90 days), never from the models of step 4, which saw later
feedback. `churned` is 1 when the customer leaves within the 90 days after `as_of`."""),
    ("code", """table = training.build_training_table(world, plan, text.theme_ids, feature_config, label_config,
                                      text_config, use_text=True)
columns = features.feature_columns(table)
print(table.shape, "churn rate", round(table["churned"].mean(), 3), "-", len(columns), "feature columns")
table.groupby("as_of")["churned"].agg(["size", "mean"]).round(3).T"""),
    ("md", """## 6. Leakage audit

Before any model is fitted, the audit looks for columns that give the label away: one column that on its own
nearly separates churners from the others, or one whose name reads like an outcome (status, churn, cancel...)
and separates them unusually well. `train_churn` runs it on the training side of the validation split and
drops what it flags (`churn.audit.keep` in the config overrides that, and is still reported). Here it runs on
its own to show its report; retain's own point-in-time features should pass."""),
    ("code", """fit_rows = table["as_of"] <= plan.validation - pd.Timedelta(days=plan.horizon_days)
print(audit_features(table.loc[fit_rows, columns], table.loc[fit_rows, "churned"].to_numpy()).summary())"""),
    ("md", """## 7. Churn model: settings, backtest, and a paired comparison with the baseline

`train_churn` audits, chooses the gradient-boosting settings on the validation date (candidates fitted on
the dates whose label windows closed by then), then fits one model per evaluation date on the dates whose
label windows closed by that date and predicts it, beside a
logistic-regression baseline fitted on the same rows. The figures are averages over the evaluation dates with
a 95% bootstrap interval for ROC-AUC; the paired comparison resamples the same customers and dates for both
models, so it says whether the gain over the baseline is more than noise. The model that is registered is
then refitted on every labelled date."""),
    ("code", """horizon = pd.Timedelta(days=plan.horizon_days)
splits = training.dated_splits(table, plan, churn_config.cv_folds)
settings_split = ((table["as_of"] <= plan.validation - horizon).to_numpy(),
                  (table["as_of"] == plan.validation).to_numpy())
churn = training.train_churn(
    table, columns, splits, churn_config, settings_split, dated=True,
    settings_description=plan.description,
    validation_description=f"validation as_of {plan.validation.date()}",
)
metric_names = ["roc_auc", "roc_auc_low", "roc_auc_high", "pr_auc", "brier", "lift_at_10"]
pd.DataFrame({"gradient boosting": churn.metrics, "logistic baseline": churn.baseline_metrics}).loc[metric_names].round(3)"""),
    ("code", """churn.per_split.round(3)"""),
    ("code", """print(churn.comparison.describe())
print("better than the baseline:", churn.comparison.better)"""),
    ("code", """print("settings:", churn.params)
print("tuned on:", churn.tuned_on)
print("audit excluded:", churn.audit.excluded_columns or "nothing")"""),
    ("code", """churn.figures["roc"]"""),
    ("code", """churn.figures["calibration"]"""),
    ("md", """## 8. Log, register, and decide the champions

A text model gets the `champion` alias only if it beats its majority-class baseline; the churn model only if
it beats the logistic baseline in the paired test above, and the current champion if one was evaluated on the
same data. On a small world the gain over the baseline is often within noise, and then the model is
registered but not promoted: that is the rule working. The churn run records the evaluation plan, how its
settings were chosen, the audit, and which text model versions it used."""),
    ("code", """result = training.TrainingResult(
    layout="tables", plan=plan, text=text, churn=churn,
    families=[*features.feature_families(world), "text (sentiment, themes)"],
    evaluation_id=training.evaluation_fingerprint(world, plan, label_config),
    evaluation=plan.description, definition=label_config.definition,
)
train_config = TrainConfig(data=DataConfig(path=WORKDIR / "world"), features=feature_config,
                           label=label_config, text=text_config, churn=churn_config,
                           tracking=TrackingConfig())
for r in jobs.register_training(result, train_config):
    print(f"{r.name} v{r.version}: {'champion' if r.promoted else 'not promoted'} - {r.reason}")"""),
    ("md", """## 9. Score and rank, with reasons and their evidence

Here the models just trained score the customers as of the end of the data (the `retain score` command loads
the champions from the registry instead). Customers are ranked by value at risk. A signal is a reason only if
it raises this customer's risk *and* the customer's figure lies on the risky side of the population (worse
than the median customer), so a low-risk customer may have no reason at all. Each reason quotes the
customer's figure, and `reason_i_evidence` lists the tickets and feedback behind it, so whoever calls can
open them."""),
    ("code", """as_of = jobs.default_score_date(training.observed_until(world))
models = ScoringModels(sentiment=text.sentiment, themes=text.themes, churn=churn.model, versions={})
ranked = score_world(world, as_of, models, text.theme_ids, feature_config, ScoringConfig(),
                     load_config("configs/playbook.yaml", Playbook), label_config)
ranked[["rank", "customer_id", "churn_probability", "value_at_risk", "risk_tier",
        "reason_1", "reason_1_evidence", "reason_2", "recommended_action"]].head(10)"""),
    ("code", """ranked.groupby("risk_tier")["reason_1"].agg(customers="size", with_a_reason="count")"""),
]


def build() -> nbf.NotebookNode:
    notebook = nbf.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.cells = [
        nbf.v4.new_markdown_cell(src) if kind == "md" else nbf.v4.new_code_cell(src) for kind, src in CELLS
    ]
    return notebook


if __name__ == "__main__":
    nbf.write(build(), Path(__file__).with_name("walkthrough.ipynb"))
