"""The insight report page (``retain.insight.report``): sections, inline figures, nothing external."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from retain.config import LabelConfig, ReportConfig
from retain.insight.report import ReportParts, insight_report, kpi_tables
from retain.synth import generate_world


@pytest.fixture(scope="module")
def world():  # type: ignore[no-untyped-def]
    return generate_world(400, seed=1, start="2024-01-01", end="2024-12-31")


def _text_scores(feedback: pd.DataFrame, themes: list[str], seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sentiment = rng.dirichlet(np.ones(3), size=len(feedback))
    scores = pd.DataFrame(sentiment, columns=["sentiment_negative", "sentiment_neutral", "sentiment_positive"], index=feedback.index)
    for theme in themes:
        scores[f"theme_{theme}"] = rng.random(len(feedback))
    return scores


def test_kpi_tables_cover_the_last_months_by_group_and_theme(world) -> None:  # type: ignore[no-untyped-def]
    end = pd.Timestamp("2024-12-31")
    settings = ReportConfig(months=6, group_by=("segment", "channel", "no_such_column"))
    scores = _text_scores(world.feedback, ["billing", "pricing"])
    tables, notes = kpi_tables(world, end, LabelConfig(), 90, settings, scores, ["billing", "pricing"])
    assert {"service", "service_by_segment", "service_by_channel", "customers", "themes"} <= set(tables)
    assert notes == ["service KPIs by no_such_column: the data has no 'no_such_column' column"]
    for table in tables.values():
        assert pd.to_datetime(table["period"]).min() >= pd.Timestamp("2024-06-01")
    assert set(tables["service_by_segment"]["group"]) == set(world.customers["segment"].astype(str))
    assert set(tables["themes"]["theme"]) == {"billing", "pricing"}
    # contractual churn is known up to the end of the data: every full month has a rate
    assert tables["customers"]["churn_rate"].iloc[:-1].notna().all()


def test_inactivity_churn_rate_stops_a_horizon_before_the_end(world) -> None:  # type: ignore[no-untyped-def]
    end = pd.Timestamp("2024-12-31")
    label = LabelConfig(definition="inactivity", event_types=["purchase"])
    tables, _ = kpi_tables(world, end, label, 90, ReportConfig(months=12), None, [])
    customers = tables["customers"].set_index("period")
    assert customers.loc[pd.Timestamp("2024-06-01"), "churn_rate"] > 0
    assert customers.loc[customers.index >= pd.Timestamp("2024-10-01"), "churn_rate"].isna().all()
    assert "themes" not in tables


def test_the_report_is_one_page_with_every_section_and_nothing_external(world) -> None:  # type: ignore[no-untyped-def]
    end = pd.Timestamp("2024-12-31")
    scores = _text_scores(world.feedback, ["billing", "pricing"])
    tables, _ = kpi_tables(world, end, LabelConfig(), 90, ReportConfig(months=6), scores, ["billing", "pricing"])
    rng = np.random.default_rng(0)
    p = rng.random(500)
    evaluation = pd.DataFrame(
        {"churned": (rng.random(500) < p).astype(int), "churn_probability": p, "baseline_probability": p ** 2,
         "as_of": pd.Timestamp("2024-09-01")}
    )
    drivers = pd.DataFrame(
        {"rank": [1, 2], "driver": ["slow_first_response", "open_ticket"], "label": ["slow first response", "<b>open ticket</b>"],
         "lift": [2.0, 3.0], "lift_low": [1.5, 2.0], "lift_high": [2.5, 4.5],
         "odds_ratio": [1.5, 2.5], "coefficient_low": [0.1, 0.5], "coefficient_high": [0.7, 1.3]}
    )
    monitoring = {
        "estimated_roc_auc": 0.81,
        "breaches": [{"message": "feature tickets_90d psi 0.31 > 0.2"}],
        "features": [{"feature": "tickets_90d", "psi": 0.31}, {"feature": "logins_30d", "psi": 0.02}],
        "thresholds": {"psi": 0.2},
    }
    page = insight_report(
        ReportParts(
            title="retain report", facts={"customers": "400"}, service=tables["service"],
            service_by={"segment": tables["service_by_segment"]}, customers=tables["customers"],
            themes=tables["themes"], drivers=drivers, evaluation=evaluation, monitoring=monitoring,
            notes=["a note"],
        )
    )
    sections = re.findall(r'<section id="([a-z_]+)"', page)
    assert sections == ["overview", "service", "customers", "themes", "drivers", "model", "monitoring"]
    images = re.findall(r'<img alt="([^"]*)" src="([^"]*)"', page)
    assert len(images) == 7  # service, customers, themes, drivers, calibration, gains, drift
    assert all(src.startswith("data:image/png;base64,") for _, src in images)
    assert "<script" not in page and "http://" not in page and "https://" not in page
    assert "&lt;b&gt;open ticket&lt;/b&gt;" in page  # table cells are escaped
    assert "feature tickets_90d psi 0.31 &gt; 0.2" in page and "a note" in page


def test_a_report_without_models_still_shows_the_kpis(world) -> None:  # type: ignore[no-untyped-def]
    tables, _ = kpi_tables(world, pd.Timestamp("2024-12-31"), LabelConfig(), 90, ReportConfig(), None, [])
    page = insight_report(ReportParts(title="t", service=tables["service"], customers=tables["customers"]))
    assert re.findall(r'<section id="([a-z_]+)"', page) == ["overview", "service", "customers"]


def test_retain_report_without_a_model_writes_the_kpis_and_says_what_is_missing(tmp_path, world) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    from retain import data

    data.write_world(world, tmp_path / "world")
    config = tmp_path / "report.yaml"
    config.write_text(
        f"data: {{path: {tmp_path / 'world'}}}\n"
        f"tracking: {{tracking_uri: 'sqlite:///{tmp_path / 'mlflow.db'}'}}\n"
        f"scoring: {{output_dir: {tmp_path / 'outputs'}}}\n"
        f"report: {{output_dir: {tmp_path / 'report'}, months: 6, drivers: false}}\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "retain.cli", "report", "-c", str(config), "--quiet"],
        capture_output=True, text=True, check=False, timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert "overview, service, customers" in result.stdout
    assert "note: no themes, drivers or model section" in result.stdout and "retain train" in result.stdout
    page = (tmp_path / "report" / "report.html").read_text()
    assert re.findall(r'<section id="([a-z_]+)"', page) == ["overview", "service", "customers"]
    assert sorted(p.name for p in (tmp_path / "report").glob("*.csv")) == [
        "customers.csv", "service.csv", "service_by_channel.csv", "service_by_region.csv", "service_by_segment.csv",
    ]
    # A flat one-row-per-customer table has no periods: refused as a config error (exit 2)
    config.write_text(config.read_text().replace(f"data: {{path: {tmp_path / 'world'}}}", "data: {path: x.csv, layout: flat, flat: {file: x.csv, label_column: churned}}"))
    refused = subprocess.run(
        [sys.executable, "-m", "retain.cli", "report", "-c", str(config), "--quiet"],
        capture_output=True, text=True, check=False, timeout=600,
    )
    assert refused.returncode == 2 and "retain report needs dated tables" in refused.stderr


def test_inactivity_churn_rate_stops_a_horizon_before_the_qualifying_events_end(world) -> None:  # type: ignore[no-untyped-def]
    """Purchases recorded to Sep 30 while tickets run to Dec 31: silence after Sep 30 is not seen,
    so no month after July 2 (Sep 30 - 90 days) may count customers as lost."""
    import dataclasses

    events = world.events.loc[world.events["occurred_at"] < pd.Timestamp("2024-10-01")]
    shorter = dataclasses.replace(world, events=events)
    label = LabelConfig(definition="inactivity", event_types=["purchase"])
    tables, _ = kpi_tables(shorter, pd.Timestamp("2024-12-31"), label, 90, ReportConfig(months=12), None, [])
    customers = tables["customers"].set_index("period")
    assert customers.loc[pd.Timestamp("2024-06-01"), "churn_rate"] > 0
    assert customers.loc[customers.index >= pd.Timestamp("2024-07-01"), "churn_rate"].isna().all()


def test_inactivity_without_events_has_no_churn_rate_and_says_why(world) -> None:  # type: ignore[no-untyped-def]
    import dataclasses

    label = LabelConfig(definition="inactivity", event_types=["purchase"])
    tables, notes = kpi_tables(
        dataclasses.replace(world, events=None), pd.Timestamp("2024-12-31"), label, 90, ReportConfig(months=12), None, []
    )
    assert tables["customers"]["churn_rate"].isna().all()  # not 0: nobody can be seen to lapse
    assert any(note.startswith("no churn rate") for note in notes)


def test_service_kpis_are_never_grouped_by_a_customer_or_a_text(world) -> None:  # type: ignore[no-untyped-def]
    """Per-customer (or per-text) groups would put single customers in the page and its CSVs."""
    settings = ReportConfig(months=6, group_by=("customer_id", "text", "channel"))
    tables, notes = kpi_tables(world, pd.Timestamp("2024-12-31"), LabelConfig(), 90, settings, None, [])
    assert "service_by_customer_id" not in tables and "service_by_text" not in tables
    assert "service_by_channel" in tables
    assert [n.split(":")[0] for n in notes] == ["service KPIs by customer_id", "service KPIs by text"]
