"""Edges of real data found in review: each test fails on the bug it is named for."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from retain.churn.backtest import metrics_with_interval
from retain.config import ChurnModelConfig, DataConfig, FeatureConfig, LabelConfig
from retain.contracts import World
from retain.data import load_flat, load_world
from retain.training import plan_evaluation


def test_inactivity_labels_are_observed_only_as_far_as_the_events_run() -> None:
    # events end mid-2024; feedback runs on to the end of the year
    world = World(
        customers=pd.DataFrame({"customer_id": ["C1"], "signup_at": [pd.Timestamp("2023-01-01")]}),
        events=pd.DataFrame(
            {
                "customer_id": ["C1", "C1"],
                "occurred_at": pd.to_datetime(["2023-01-01", "2024-06-30"]),
                "event_type": ["purchase", "purchase"],
            }
        ),
        feedback=pd.DataFrame(
            {"feedback_id": ["F1"], "customer_id": ["C1"], "created_at": [pd.Timestamp("2024-12-31")], "text": ["x"]}
        ),
    )
    plan = plan_evaluation(
        world, FeatureConfig(horizon_days=90), ChurnModelConfig(train_every_days=30),
        label_config=LabelConfig(definition="inactivity"),
    )
    assert plan.last_labelled + pd.Timedelta(days=90) <= pd.Timestamp("2024-06-30")


def _flat(tmp_path: Path, train: pd.DataFrame, test: pd.DataFrame) -> DataConfig:
    train.to_csv(tmp_path / "train.csv", index=False)
    test.to_csv(tmp_path / "test.csv", index=False)
    return DataConfig(
        max_quarantine_share=1.0,
        path=tmp_path, layout="flat",
        flat={"file": "train.csv", "test_file": "test.csv", "label_column": "churn", "id_column": "id"},
    )


def test_a_test_file_is_read_in_the_training_files_types(tmp_path: Path) -> None:
    train = pd.DataFrame({"id": ["a", "b"], "churn": ["yes", "no"], "calls": ["1", "2"]})
    test = pd.DataFrame({"id": ["c", "d"], "churn": ["yes", "no"], "calls": ["3", "?"]})
    flat = load_flat(_flat(tmp_path, train, test), write_quarantine=False)
    assert flat.frame["calls"].dtype == "float64"
    assert flat.test is not None and flat.test["calls"].dtype == "float64"
    assert flat.test["calls"].iloc[0] == 3.0 and np.isnan(flat.test["calls"].iloc[1])


def test_flat_dates_become_days_before_the_latest_date(tmp_path: Path) -> None:
    train = pd.DataFrame({"id": ["a", "b"], "churn": ["yes", "no"], "since": ["2024-01-01", "2024-01-31"]})
    test = pd.DataFrame({"id": ["c"], "churn": ["no"], "since": ["2024-01-21"]})
    flat = load_flat(_flat(tmp_path, train, test), write_quarantine=False)
    assert flat.frame["since"].tolist() == [30.0, 0.0]
    assert flat.test is not None and flat.test["since"].tolist() == [10.0]


def test_an_amended_row_stays_in_quarantine_when_unknown_customers_are_rejected(tmp_path: Path) -> None:
    pd.DataFrame({"customer_id": ["C1"], "signup_at": ["2024-01-01"]}).to_csv(tmp_path / "customers.csv", index=False)
    pd.DataFrame(
        {
            "feedback_id": ["F1", "F2"],
            "customer_id": ["C1", "C9"],
            "created_at": ["2024-02-01", "2024-02-01"],
            "source": ["review", "review"],
            "text": ["fine", "who"],
            "rating": ["7", "3"],
        }
    ).to_csv(tmp_path / "feedback.csv", index=False)
    loaded = load_world(DataConfig(max_quarantine_share=1.0, path=tmp_path))
    written = pd.read_csv(tmp_path / "quarantine" / "feedback.csv")
    assert written["action"].tolist() == ["field set missing, row kept", "row rejected"]
    assert written["source_row"].tolist() == [1, 2]
    assert loaded.world.feedback["feedback_id"].tolist() == ["F1"]


def test_bootstrap_draws_a_customer_with_all_their_rows() -> None:
    rng = np.random.default_rng(0)
    n = 200
    y = rng.integers(0, 2, n)
    score = 1 / (1 + np.exp(-(y + rng.normal(0, 1.5, n))))
    once = pd.DataFrame({"split": "s", "customer_id": np.arange(n), "churned": y, "p": score})
    repeated = pd.concat([once] * 6, ignore_index=True)  # the same customers at six dates
    width = {
        name: m["roc_auc_high"] - m["roc_auc_low"]
        for name, m in (("once", metrics_with_interval(once, "p")), ("repeated", metrics_with_interval(repeated, "p")))
    }
    # six copies of a customer carry no more information than one
    assert width["repeated"] == pytest.approx(width["once"], rel=0.35)
