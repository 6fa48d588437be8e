"""Writes notebooks/walkthrough.ipynb from the cells below (run it after editing them)."""

from __future__ import annotations

from pathlib import Path

import nbformat as nbf

CELLS: list[tuple[str, str]] = [
    ("md", """# retain, step by step

This notebook walks the same path as `retain demo`, one phase at a time, with the package's public API:
a synthetic customer base → validated tables → text models → point-in-time churn features → churn model →
MLflow registry → a ranked at-risk list with reasons and recommended actions.

Nothing reusable is defined here: every step is a call into `retain`. Run it from the repository root
(`make demo` has created `.venv`; pick that kernel). Two settings, from the environment:
`RETAIN_NOTEBOOK_CUSTOMERS` (default 3000) and `MLFLOW_TRACKING_URI` (default `sqlite:///mlflow.db`)."""),
    ("code", """import os
from pathlib import Path

import pandas as pd

from retain import data, evaluation, jobs, training
from retain.churn import features
from retain.config import (ChurnModelConfig, DataConfig, FeatureConfig, Playbook, ScoringConfig,
                           Taxonomy, TextModelConfig, TrackingConfig, TrainConfig, load_config)
from retain.scoring import ScoringModels, score_world
from retain.synth import generate_world

N_CUSTOMERS = int(os.environ.get("RETAIN_NOTEBOOK_CUSTOMERS", "3000"))
WORKDIR = Path(os.environ.get("RETAIN_NOTEBOOK_WORKDIR", "demo/notebook"))
pd.set_option("display.max_columns", 30)"""),
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
use. A synthetic world should pass untouched."""),
    ("code", """loaded = data.load_world(DataConfig(path=WORKDIR / "world"))
print(loaded.summary())
world = loaded.world"""),
    ("md", """## 3. Dates: train on the past, evaluate on a later date

The evaluation `as_of` is the last date whose churn window (90 days) is observed; each training date's
label window closes before it."""),
    ("code", """feature_config = FeatureConfig()
churn_config = ChurnModelConfig()
dates = training.choose_training_dates(world, feature_config, churn_config)
print("training as_of:", [str(d.date()) for d in dates.train])
print("evaluation as_of:", dates.test.date())"""),
    ("md", """## 4. Text models: sentiment and themes

TF-IDF + logistic regression, fitted on the earlier labelled feedback and evaluated on the latest 20% against the
true labels. Every feedback row then gets scores from a model that did not see it (out-of-fold for the
training rows), so text features cannot flatter the churn evaluation."""),
    ("code", """taxonomy = load_config("configs/themes.yaml", Taxonomy)
text_config = TextModelConfig()
text = training.train_text_models(world.feedback, taxonomy.ids, text_config)
pd.DataFrame({"model": text.metrics, "majority baseline": text.baseline_metrics}).round(3)"""),
    ("code", """text.figures["sentiment_confusion"]"""),
    ("md", """## 5. Point-in-time features

One row per (customer, as_of). Nothing dated after `as_of` influences a feature (a property test proves it);
`churned` is 1 when the customer leaves within the 90 days after `as_of`."""),
    ("code", """table = training.build_training_table(world, dates, text.feedback_scores, taxonomy.ids, feature_config)
print(table.shape, "churn rate", round(table["churned"].mean(), 3))
table.head()"""),
    ("md", """## 6. Churn model against its baseline

Gradient-boosted trees (LightGBM) with calibrated probabilities, trained on the earlier dates and evaluated on the
later one, beside a logistic-regression baseline."""),
    ("code", """churn = training.train_churn_models(table, dates, churn_config)
pd.DataFrame({"gradient boosting": churn.metrics, "logistic baseline": churn.baseline_metrics}).round(3)"""),
    ("code", """churn.figures["roc"]"""),
    ("code", """churn.figures["calibration"]"""),
    ("md", """## 7. Log, register, and decide the champions

Each model gets the `champion` alias only if it beats its baseline (and any current champion evaluated on the same
data). The churn run records which text model versions it used."""),
    ("code", """result = training.TrainingResult(dates=dates, text=text, churn=churn,
                                 evaluation_id=training.evaluation_fingerprint(world, dates))
train_config = TrainConfig(data=DataConfig(path=WORKDIR / "world"), features=feature_config,
                           text=text_config, churn=churn_config, tracking=TrackingConfig())
for r in jobs.register_training(result, train_config):
    print(f"{r.name} v{r.version}: {'champion' if r.promoted else 'not promoted'} - {r.reason}")"""),
    ("md", """## 8. Score and rank

Here the models just trained score the customers as of the end of the data (the `retain score` command loads
the champions from the registry instead). Customers are ranked by value at risk, each with the three signals that
raise their risk most, phrased with their own figures, and the playbook's recommended action."""),
    ("code", """as_of = jobs.default_score_date(training.observed_until(world))
models = ScoringModels(sentiment=text.sentiment, themes=text.themes, churn=churn.model, versions={})
ranked = score_world(world, as_of, models, taxonomy.ids, feature_config, ScoringConfig(),
                     load_config("configs/playbook.yaml", Playbook))
ranked[["rank", "customer_id", "churn_probability", "value_at_risk", "risk_tier",
        "reason_1", "reason_2", "recommended_action"]].head(10)"""),
    ("code", """ranked["risk_tier"].value_counts()"""),
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
