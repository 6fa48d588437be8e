"""Monitoring between trainings: PSI, KS, CBPE, theme surges, the config, and `retain score` end to end."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import ks_2samp
from sklearn.metrics import roc_auc_score

from retain.config import ConfigError, MonitoringConfig, ScoreConfig, load_config
from retain.insight.monitoring import (
    DriftReference,
    drift_reference,
    estimated_roc_auc,
    feature_drift,
    ks_statistic,
    monitor_run,
    population_stability_index,
    realised_performance,
    theme_surge,
    weekly_theme_shares,
)

REPO = Path(__file__).resolve().parents[1]


# --- PSI and KS ----------------------------------------------------------------------------------


def test_psi_of_a_tiny_numeric_case_by_hand() -> None:
    # Two quantile bins of the reference split at its median 2.5: reference shares (1/2, 1/2),
    # current (3/4, 1/4): (3/4 - 1/2) ln(3/2) + (1/4 - 1/2) ln(1/2) = 1/4 ln 3.
    psi = population_stability_index([1, 2, 3, 4], [1, 1, 2, 4], bins=2)
    assert psi == pytest.approx(0.25 * math.log(3), abs=1e-12)


def test_psi_of_categories_counts_missing_as_a_level_and_floors_empty_bins() -> None:
    reference = pd.Series(["a", "a", "b", None], dtype="category")
    current = pd.Series(["a", "b", "b", "b"], dtype="category")
    # reference a 1/2, b 1/4, missing 1/4; current a 1/4, b 3/4, missing 0 (floored at 1e-4)
    expected = (0.25 - 0.5) * math.log(0.25 / 0.5) + (0.75 - 0.25) * math.log(3) + (1e-4 - 0.25) * math.log(1e-4 / 0.25)
    assert population_stability_index(reference, current) == pytest.approx(expected, abs=1e-12)


def test_psi_is_zero_for_the_same_distribution_and_nan_bins_count() -> None:
    values = np.r_[np.arange(100.0), [np.nan] * 10]
    assert population_stability_index(values, values) == pytest.approx(0.0)
    more_missing = np.r_[np.arange(50.0), [np.nan] * 60]
    assert population_stability_index(values, more_missing) > 0.5


def test_ks_is_scipys_on_the_known_values() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=300), rng.normal(0.4, 1.0, size=200)
    with_gaps = np.r_[a, [np.nan] * 5]
    assert ks_statistic(with_gaps, b) == pytest.approx(ks_2samp(a, b).statistic, abs=1e-12)
    assert math.isnan(ks_statistic([np.nan], b))


def test_feature_drift_flags_the_shifted_feature_only() -> None:
    rng = np.random.default_rng(1)
    reference = pd.DataFrame(
        {"steady": rng.normal(size=2000), "moved": rng.normal(size=2000), "plan": pd.Categorical(rng.choice(["a", "b"], 2000))}
    )
    current = pd.DataFrame(
        {"steady": rng.normal(size=2000), "moved": rng.normal(1.0, 1.0, size=2000), "plan": pd.Categorical(rng.choice(["a", "b"], 2000))}
    )
    drift = feature_drift(reference, current, ["steady", "moved", "plan", "absent"]).set_index("feature")
    assert list(drift.index) == ["steady", "moved", "plan"]
    assert drift["flag"].to_dict() == {"steady": False, "moved": True, "plan": False}
    assert math.isnan(drift.loc["plan", "ks"])
    assert drift.loc["moved", "ks"] == pytest.approx(ks_2samp(reference["moved"], current["moved"]).statistic)
    # a KS threshold flags a shift the PSI threshold lets through
    small = current.assign(steady=current["steady"] + 0.25)
    assert not feature_drift(reference, small, ["steady"]).loc[0, "flag"]
    assert feature_drift(reference, small, ["steady"], ks_warn=0.05).loc[0, "flag"]


# --- CBPE ----------------------------------------------------------------------------------------


def brute_force_expected_auc(p: np.ndarray) -> float:
    """Expected correctly ordered pairs over expected (positive, negative) pairs of distinct customers."""
    correct = pairs = 0.0
    for i in range(len(p)):
        for j in range(len(p)):
            if i == j:
                continue
            weight = p[i] * (1 - p[j])
            pairs += weight
            correct += weight * (1.0 if p[i] > p[j] else 0.5 if p[i] == p[j] else 0.0)
    return correct / pairs


def test_cbpe_equals_the_pairwise_expectation_with_ties() -> None:
    rng = np.random.default_rng(2)
    for size in (2, 7, 60):
        p = np.round(rng.beta(2, 5, size=size), 2)  # rounded: many ties
        assert estimated_roc_auc(p) == pytest.approx(brute_force_expected_auc(p), abs=1e-12)
    assert estimated_roc_auc([0.2, 0.9]) == pytest.approx(0.9 * 0.8 / (0.2 * 0.1 + 0.9 * 0.8))


def test_cbpe_agrees_with_the_auc_of_labels_drawn_from_the_probabilities() -> None:
    rng = np.random.default_rng(3)
    p = rng.beta(1.5, 6, size=400)
    realised = [roc_auc_score(rng.random(p.size) < p, p) for _ in range(3000)]
    # the mean of 3000 draws has a standard error near 0.0006
    assert estimated_roc_auc(p) == pytest.approx(float(np.mean(realised)), abs=0.003)
    # a plain AUC of the probabilities against their rounding is far from it: the check has teeth
    assert abs(roc_auc_score(p > 0.5, p) - estimated_roc_auc(p)) > 0.1


def test_cbpe_is_undefined_without_both_outcomes() -> None:
    assert math.isnan(estimated_roc_auc([0.3]))
    assert math.isnan(estimated_roc_auc([0.0, 0.0, 0.0]))
    assert math.isnan(estimated_roc_auc([1.0, 1.0]))


def test_realised_performance_reports_the_estimate_beside_the_truth() -> None:
    p = np.array([0.9, 0.8, 0.3, 0.1])
    y = np.array([1, 0, 1, 0])
    found = realised_performance(p, y)
    assert found["roc_auc"] == pytest.approx(0.75)
    assert found["brier"] == pytest.approx(np.mean((p - y) ** 2))
    assert found["customers"] == 4 and found["churn_rate"] == 0.5
    assert found["estimate_error"] == pytest.approx(found["estimated_roc_auc"] - 0.75)


# --- theme surges --------------------------------------------------------------------------------


def feedback_weeks(as_of: pd.Timestamp, weekly_billing: list[float], per_week: int = 40) -> pd.DataFrame:
    """``per_week`` rows in each week before ``as_of`` (week 0 first), billing at the share given."""
    rows = []
    for week, share in enumerate(weekly_billing):
        for k in range(per_week):
            created = as_of - pd.Timedelta(days=7 * week) - pd.Timedelta(hours=1 + (k * 160) // per_week)
            rows.append({"created_at": created, "theme_billing": 1.0 if k < share * per_week else 0.0, "theme_delays": 0.5})
    return pd.DataFrame(rows)


def test_weekly_shares_read_weeks_back_from_as_of() -> None:
    as_of = pd.Timestamp("2025-06-01")
    frame = pd.DataFrame(
        {
            "created_at": pd.to_datetime(["2025-06-01 00:00:00", "2025-05-25 00:00:01", "2025-05-25 00:00:00", "2025-06-02 00:00:00"]),
            "theme_billing": [1.0, 0.0, 0.5, 1.0],
        }
    )
    shares = weekly_theme_shares(frame, as_of, weeks=2)
    # week 0 is (May 25, June 1]: the first two rows; May 25 itself is week 1; June 2 is after as_of
    assert shares["n"].tolist() == [2, 1, 0]
    assert shares["billing"].tolist()[:2] == [0.5, 0.5]


def test_a_planted_surge_is_found_and_a_steady_theme_is_not() -> None:
    as_of = pd.Timestamp("2025-06-01")
    steady = [0.10, 0.125, 0.10, 0.075, 0.10, 0.125, 0.10, 0.075, 0.10]
    quiet = theme_surge(feedback_weeks(as_of, steady), as_of, weeks=8)
    assert not quiet["surge"].any()
    planted = theme_surge(feedback_weeks(as_of, [0.40, *steady[1:]]), as_of, weeks=8).set_index("theme")
    assert planted.loc["billing", "surge"] and not planted.loc["delays", "surge"]
    assert planted.loc["billing", "share"] == pytest.approx(0.40)
    assert planted.loc["billing", "recent_mean"] == pytest.approx(np.mean(steady[1:]))
    # too little feedback in the latest week: not judged
    thin = theme_surge(feedback_weeks(as_of, [0.40, *steady[1:]], per_week=10), as_of, weeks=8, min_feedback=20)
    assert not thin["surge"].any()


# --- one run's monitoring and the config ---------------------------------------------------------


def test_a_model_without_a_reference_is_monitored_without_drift() -> None:
    result = monitor_run(np.array([0.1, 0.5, 0.8]), MonitoringConfig())
    assert result.section["reference"] is None and result.section["features"] == []
    assert result.section["score_psi"] is None and not result.section["breach"]
    assert "no drift reference" in result.section["notes"][0]
    assert result.section["estimated_roc_auc"] == pytest.approx(round(estimated_roc_auc([0.1, 0.5, 0.8]), 6))


def test_breaches_are_lines_and_a_flag() -> None:
    rng = np.random.default_rng(4)
    rows = pd.DataFrame({"tenure_days": rng.normal(300, 50, 1000), "churn_probability": rng.beta(2, 8, 1000)})
    reference = DriftReference(rows=rows, as_of="2025-01-01", roc_auc=0.95)
    table = pd.DataFrame({"tenure_days": rng.normal(400, 50, 800)})
    result = monitor_run(rng.beta(2, 8, 800), MonitoringConfig(), reference, table, ["tenure_days"])
    section = result.section
    assert section["drifted_features"] == ["tenure_days"]
    assert any(b.startswith("feature tenure_days psi ") and b.endswith("> 0.2") for b in result.breaches)
    assert any("below training's 0.950" in b for b in result.breaches)  # a drop of more than 0.05
    assert section["breach"] and section["breaches"] == result.breaches
    assert section["score_psi"] < 0.2


def test_drift_reference_is_a_capped_sample_without_ids() -> None:
    table = pd.DataFrame({"customer_id": [f"C{i}" for i in range(50)], "x": np.arange(50.0)})
    sample = drift_reference(table, ["x"], np.linspace(0, 1, 50), max_rows=20)
    assert list(sample.columns) == ["x", "churn_probability"] and len(sample) == 20
    shuffled = table.sample(frac=1.0, random_state=0)
    again = drift_reference(shuffled, ["x"], shuffled["x"].to_numpy() / 49, max_rows=20)
    assert sorted(again["x"]) == sorted(sample["x"])  # the same customers whatever the order


def test_monitoring_config_defaults_and_unknown_keys(tmp_path: Path) -> None:
    settings = MonitoringConfig()
    assert (settings.psi_warn, settings.score_psi_warn, settings.fail_on_breach) == (0.2, 0.2, False)
    assert settings.ks_warn is None and settings.theme_surge.weeks == 8
    path = tmp_path / "score.yaml"
    path.write_text("data: {path: world}\nscoring: {monitoring: {psi_warm: 0.3}}\n")
    with pytest.raises(ConfigError, match="psi_warm"):
        load_config(path, ScoreConfig)
    path.write_text("data: {path: world}\nscoring: {monitoring: {psi_warn: -1}}\n")
    with pytest.raises(ConfigError, match="psi_warn"):
        load_config(path, ScoreConfig)
    path.write_text("data: {path: world}\nscoring: {monitoring: {fail_on_breach: true, theme_surge: {weeks: 6}}}\n")
    loaded = load_config(path, ScoreConfig).scoring.monitoring
    assert loaded.fail_on_breach and loaded.theme_surge.weeks == 6


# --- end to end ----------------------------------------------------------------------------------


def retain(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "retain.cli", *args], check=False, cwd=REPO, capture_output=True, text=True, timeout=900
    )


def write_config(root: Path, name: str, world: Path, output: str, fail_on_breach: bool = False) -> Path:
    # The estimated-AUC check is left out: on a 1,500-customer world the training ROC-AUC is noisy,
    # and this test is about drift.
    path = root / name
    path.write_text(
        f"data: {{path: {world}}}\n"
        f"text: {{taxonomy: {REPO / 'configs' / 'themes.yaml'}}}\n"
        "churn: {search_budget_s: 0, n_estimators: 100, backtest_dates: 2, train_periods: 6}\n"
        f"tracking: {{tracking_uri: 'sqlite:///{root / 'mlflow.db'}'}}\n"
        f"scoring: {{output_dir: {root / output}, playbook: {REPO / 'configs' / 'playbook.yaml'},"
        f" monitoring: {{max_roc_auc_drop: null, fail_on_breach: {str(fail_on_breach).lower()}}}}}\n"
        f"reports_dir: {root / 'reports'}\n"
    )
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("monitoring")
    made = retain("synth", "--out", str(root / "world"), "--customers", "1500", "--seed", "1", "-q")
    assert made.returncode == 0, made.stderr
    result = retain("train", "-c", str(write_config(root, "train.yaml", root / "world", "out")), "-q")
    assert result.returncode == 0, result.stderr
    return root


@pytest.mark.slow
def test_score_on_the_training_world_breaches_nothing_and_reruns_identically(trained: Path) -> None:
    config = write_config(trained, "same.yaml", trained / "world", "same", fail_on_breach=True)
    first = retain("score", "-c", str(config), "-q")
    assert first.returncode == 0, first.stderr
    summary_path = trained / "same" / "latest" / "score_summary.json"
    before = summary_path.read_bytes()
    section = json.loads(before)["monitoring"]
    assert not section["breach"] and section["breaches"] == []
    assert section["reference"]["rows"] > 100 and section["score_psi"] < 0.1
    assert 0.5 < section["estimated_roc_auc"] < 1.0
    assert "monitoring breach" not in first.stderr
    again = retain("score", "-c", str(config), "-q")
    assert again.returncode == 0, again.stderr
    assert summary_path.read_bytes() == before
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{trained / 'mlflow.db'}")
    experiments = [e.experiment_id for e in client.search_experiments()]
    logged = client.search_runs(experiments, "tags.`retain.job` = 'score'", max_results=1)[0].data.metrics
    assert logged["monitoring_estimated_roc_auc"] == pytest.approx(section["estimated_roc_auc"])
    assert logged["monitoring_breaches"] == 0


@pytest.mark.slow
def test_a_shifted_feature_is_a_breach_line_a_flag_and_with_fail_on_breach_exit_9(trained: Path) -> None:
    shifted = trained / "shifted_world"
    shutil.copytree(trained / "world", shifted)
    customers = pd.read_parquet(shifted / "customers.parquet")
    customers["monthly_value"] = customers["monthly_value"] * 4  # planted drift of one model input
    customers.to_parquet(shifted / "customers.parquet", index=False)

    warned = retain("score", "-c", str(write_config(trained, "shifted.yaml", shifted, "shifted")))
    assert warned.returncode == 0, warned.stderr
    lines = [line for line in warned.stderr.splitlines() if "monitoring breach: feature monthly_value psi" in line]
    assert lines and "WARNING" in lines[0] and lines[0].endswith("> 0.2")
    section = json.loads((trained / "shifted" / "latest" / "score_summary.json").read_text())["monitoring"]
    assert section["breach"] and "monthly_value" in section["drifted_features"]
    assert "BREACH" in warned.stdout

    failing = write_config(trained, "shifted_fail.yaml", shifted, "shifted_fail", fail_on_breach=True)
    stopped = retain("score", "-c", str(failing), "-q")
    assert stopped.returncode == 9, stopped.stderr
    assert "monitoring breached" in stopped.stderr
    assert (trained / "shifted_fail" / "latest" / "ranked_customers.csv").exists()  # the list is still written


@pytest.mark.slow
def test_a_model_registered_without_a_reference_is_scored_and_says_so(trained: Path) -> None:
    stored = list((trained / "mlartifacts").rglob("monitoring_reference.*"))
    assert len(stored) == 2  # the rows and what they are, on the churn model's run
    aside = trained / "aside"
    aside.mkdir()
    try:
        for path in stored:  # as a model registered before monitoring existed
            path.rename(aside / path.name)
        config = write_config(trained, "old_model.yaml", trained / "world", "old_model", fail_on_breach=True)
        scored = retain("score", "-c", str(config), "-q")
        assert scored.returncode == 0, scored.stderr
        section = json.loads((trained / "old_model" / "latest" / "score_summary.json").read_text())["monitoring"]
        assert section["reference"] is None and section["features"] == [] and section["score_psi"] is None
        assert any("no drift reference" in note for note in section["notes"])
        assert section["estimated_roc_auc"] is not None
    finally:
        for path in stored:
            (aside / path.name).rename(path)


def _archived_plans(tmp_path: Path, data_end: str, plans: list[str]):  # type: ignore[no-untyped-def]
    """Four customers (c churns on 2024-02-15, a on 2024-03-01), data ending at ``data_end``, the
    same plan archived under each name in ``plans``, and a config with a 20-day horizon."""
    from retain.contracts import World

    customers = pd.DataFrame(
        {
            "customer_id": ["a", "b", "c", "d"],
            "signup_at": pd.to_datetime(["2024-01-01"] * 4),
            "churned_at": pd.to_datetime(["2024-03-01", None, "2024-02-15", None]),
        }
    )
    events = pd.DataFrame(
        {"customer_id": ["b"], "occurred_at": pd.to_datetime([data_end]), "event_type": ["login"]}
    )
    archive = tmp_path / "out" / "outreach_plans"
    archive.mkdir(parents=True)
    plan = pd.DataFrame({"customer_id": ["a", "b", "c", "d"], "churn_probability": [0.9, 0.2, 0.3, 0.4]})
    for name in plans:
        plan.to_parquet(archive / name)
    config = ScoreConfig.model_validate(
        {"data": {"path": str(tmp_path)}, "features": {"horizon_days": 20}, "scoring": {"output_dir": str(tmp_path / "out")}}
    )
    return World(customers=customers, events=events), config


def test_earlier_runs_are_judged_once_their_horizon_has_passed(tmp_path: Path) -> None:
    from retain.jobs import earlier_runs_realised

    # the data ends on 2024-03-01; horizon 20 days: the Jan 31 plan's labels are seen by Feb 20,
    # the Feb 20 plan's horizon ends after the data: not yet
    world, config = _archived_plans(tmp_path, "2024-03-01", ["plan_2024-01-31.parquet", "plan_2024-02-20.parquet"])
    found, notes = earlier_runs_realised(config, world, pd.Timestamp("2024-02-25"))
    assert notes == [] and [r["as_of"] for r in found] == ["2024-01-31"]
    # only c churned in (Jan 31, Feb 20] (a on Mar 1); c (0.3) is ranked above b only of a, b, d: AUC 1/3
    assert found[0]["roc_auc"] == pytest.approx(1 / 3) and found[0]["customers"] == 4
    assert earlier_runs_realised(config, world, pd.Timestamp("2024-01-31"))[0] == []  # not before its own date


def test_an_earlier_run_is_not_judged_on_labels_seen_after_as_of(tmp_path: Path) -> None:
    """Scoring a past date (``--as-of``) on data that runs on: the realised figure at as_of may
    only read labels observed by then."""
    from retain.jobs import earlier_runs_realised

    world, config = _archived_plans(tmp_path, "2024-06-01", ["plan_2024-01-31.parquet"])  # data to June
    # as of Feb 10 the window (Jan 31, Feb 20] has not ended, though the data (to June) shows it
    assert earlier_runs_realised(config, world, pd.Timestamp("2024-02-10"))[0] == []
    assert [r["as_of"] for r in earlier_runs_realised(config, world, pd.Timestamp("2024-02-20"))[0]] == ["2024-01-31"]


def test_a_stray_file_in_the_plan_archive_is_ignored_not_fatal(tmp_path: Path) -> None:
    from retain.jobs import earlier_runs_realised

    # a copy someone made by hand beside the plan
    world, config = _archived_plans(tmp_path, "2024-03-01", ["plan_2024-01-31.parquet", "plan_2024-01-31 copy.parquet"])
    found, _ = earlier_runs_realised(config, world, pd.Timestamp("2024-02-25"))
    assert [r["as_of"] for r in found] == ["2024-01-31"]
