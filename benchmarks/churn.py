"""Churn benchmarks C1-C5 of PROTOCOLS.md, measured through the ``retain`` command line.

Each benchmark runs ``retain train`` (C5: ``retain train --until`` then ``retain score --as-of``)
as a subprocess on a temporary copy of the example config in ``configs/examples/`` whose MLflow
store, outputs, reports and quarantine point into a temporary directory, so a benchmark never
touches the user's store. It reads what the CLI wrote (``metrics.json``, the evaluation
predictions, the ranked list) and, in the same run and on the same folds or split, fits plain
comparison models on the data read with pandas directly:

* ``HistGradientBoostingClassifier(random_state=0)``, string columns as ``category`` and
  ``categorical_features="from_dtype"``;
* retain's ``make_logistic_baseline()``;
* C5 only: lifetimes' BG/NBD (the protocol's anchor) and recency alone.

C3 and C4 fit the comparisons without the columns retain's leakage audit flagged in that run,
since the protocol's figure is without them. pandas, scikit-learn, lifetimes and the package are
imported inside functions (see ``benchmarks.text``).
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.harness import (
    REPO_ROOT,
    Anchor,
    BenchmarkRun,
    CliRun,
    Goal,
    as_metric_dict,
    benchmark,
    process_peak_rss_mb,
    run_retain,
    timed,
)

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

TELCO = "ibm_telco_churn/Telco-Customer-Churn.csv"
BIGML_TRAIN = "telecom_churn_bigml/churn-bigml-80.csv"
BIGML_TEST = "telecom_churn_bigml/churn-bigml-20.csv"
BANK = "bank_churn_records/Customer-Churn-Records.csv"
CREDIT_CARD = "credit_card_churners/BankChurners.csv"
CDNOW = "cdnow_transactions/CDNOW_master.txt"
EXAMPLES = REPO_ROOT / "configs" / "examples"

N_FOLDS = 5
CHURN_METRICS = ("roc_auc", "pr_auc", "lift_at_10", "brier")
RETAIN_MODEL = "retain train (CLI, example config)"
HGB_MODEL = "plain HistGradientBoosting"
LR_MODEL = "logistic baseline (make_logistic_baseline)"
UNTUNED = "none: library defaults, no settings chosen"
BGNBD_TUNED_ON = "maximum likelihood on every customer's daily summary up to as_of (no labels)"

C5_AS_OF = "1997-12-31"
C5_HORIZON_DAYS = 180
#: Training dates of the RFM comparison: every 14 days, from 90 days after the data starts,
#: up to the last date whose 180-day label window closes on or before C5_AS_OF.
C5_RFM_FIRST_AS_OF = "1997-04-01"
C5_RFM_STEP_DAYS = 14
RFM_FEATURES = (
    "recency_days",
    "tenure_days",
    "purchase_days",
    "purchase_days_90d",
    "spend",
    "spend_per_purchase_day",
    "cds",
)


# --- goals that also need flagged columns --------------------------------------------------------


@dataclass(frozen=True)
class FlaggedGoal(Goal):
    """``>= value`` and every column of ``required`` among the audit's ``flagged`` columns."""

    required: tuple[str, ...] = ()
    flagged: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{self.op} {self.value} and {', '.join(self.required)} flagged"

    def is_met(self, value: float) -> bool:
        return super().is_met(value) and all_flagged(self.required, self.flagged)


def all_flagged(required: Sequence[str], flagged: Sequence[str]) -> bool:
    return all(column in set(flagged) for column in required)


# --- running the CLI ---------------------------------------------------------------------------


def isolated_config(example: str, workdir: Path) -> Path:
    """A copy of ``configs/examples/<example>.yaml`` whose store and outputs live in ``workdir``."""
    import yaml

    config = yaml.safe_load((EXAMPLES / f"{example}.yaml").read_text(encoding="utf-8"))
    config.setdefault("tracking", {})["tracking_uri"] = f"sqlite:///{workdir / 'mlflow.db'}"
    config.setdefault("scoring", {})["output_dir"] = str(workdir / "outputs")
    config["reports_dir"] = str(workdir / "reports")
    config["data"]["quarantine_dir"] = str(workdir / "quarantine")
    path = workdir / f"{example}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def run_cli(
    args: Sequence[str], example: str, config: Path, data_dir: Path, *, command_words: int = 1
) -> CliRun:
    """Run ``python -m retain.cli <args> -c <config>`` from the repo root, this checkout's code.

    The first ``command_words`` of ``args`` name the command (``train``; ``text train``), the
    rest are its options and go after ``-c <config>``; the output goes to ``<command>.log``
    beside the config (:func:`benchmarks.harness.run_retain`).
    """
    words, options = list(args[:command_words]), list(args[command_words:])
    shown = f"retain {' '.join(words)} -c configs/examples/{example}.yaml {' '.join(options)}".strip()
    return run_retain(
        [*words, "-c", str(config), *options], cwd=REPO_ROOT, log=config.parent / f"{'-'.join(words)}.log",
        shown=shown, env={"RETAIN_DATA_DIR": str(data_dir)},
    )


@dataclass(frozen=True)
class TrainReport:
    """What ``retain train`` wrote: ``metrics.json`` and the evaluation predictions."""

    cli: CliRun
    metrics: dict[str, Any]
    predictions: pd.DataFrame

    @property
    def flagged(self) -> list[str]:
        return list(self.metrics["audit"].get("excluded_columns", []))

    @property
    def tuned_on(self) -> str:
        return str(self.metrics.get("tuned_on", ""))


def train_through_cli(run: BenchmarkRun, example: str, workdir: Path) -> TrainReport:
    """``retain train`` on the example config (isolated copy); its metrics and predictions."""
    import pandas as pd

    config = isolated_config(example, workdir)
    cli = run_cli(["train"], example, config, run.context.data_dir)
    reports = workdir / "reports"
    metrics = json.loads((reports / "metrics.json").read_text(encoding="utf-8"))
    predictions = pd.read_csv(
        reports / "churn_evaluation_predictions.csv", dtype={"customer_id": str}
    )
    return TrainReport(cli=cli, metrics=metrics, predictions=predictions)


# --- comparisons -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Evaluated:
    """Per-split metrics and timings of one model over the benchmark's splits."""

    model: str
    splits: list[dict[str, float]]
    seconds_train: float  # mean per split
    seconds_predict: float  # mean per split
    peak_rss_mb: float | None
    command: str
    tuned_on: str

    def mean(self, metric: str) -> float:
        return sum(split[metric] for split in self.splits) / len(self.splits)

    def per_split(self, metric: str) -> list[float]:
        return [round(split[metric], 6) for split in self.splits]


def stratified_folds(y: np.ndarray, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The C1/C3/C4 folds: ``StratifiedKFold(5, shuffle=True, random_state=0)``."""
    import numpy as np
    from sklearn.model_selection import StratifiedKFold

    splitter = StratifiedKFold(n_splits=N_FOLDS, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(y)), y))


def strings_as_category(X: pd.DataFrame) -> pd.DataFrame:
    """String (object or pandas ``str``) columns as ``category``, for HGB's ``from_dtype``."""
    import pandas as pd

    out = X.copy()
    for column in out.columns:
        if pd.api.types.is_string_dtype(out[column]) or out[column].dtype == object:
            out[column] = out[column].astype("category")
    return out


def make_plain_hgb() -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(random_state=0, categorical_features="from_dtype")


def make_logistic() -> Any:
    from retain.churn.model import make_logistic_baseline

    return make_logistic_baseline()


COMPARISONS: dict[str, Callable[[], Any]] = {HGB_MODEL: make_plain_hgb, LR_MODEL: make_logistic}


def evaluate_on_splits(
    name: str,
    make_model: Callable[[], Any],
    X: pd.DataFrame,
    y: np.ndarray,
    splits: Sequence[tuple[np.ndarray, np.ndarray]],
) -> Evaluated:
    """Fit a fresh model per split and score its held-out rows with ``retain.evaluation``."""
    from retain.evaluation import churn_metrics

    X = strings_as_category(X) if name == HGB_MODEL else X
    metrics, train_s, predict_s = [], [], []
    for fit_rows, test_rows in splits:
        model = make_model()
        _, seconds = timed(model.fit, X.iloc[fit_rows], y[fit_rows])
        train_s.append(seconds)
        proba, seconds = timed(model.predict_proba, X.iloc[test_rows])
        predict_s.append(seconds)
        churn_column = list(model.classes_).index(1)
        metrics.append(as_metric_dict(churn_metrics(y[test_rows], proba[:, churn_column])))
    return Evaluated(
        model=name,
        splits=metrics,
        seconds_train=sum(train_s) / len(train_s),
        seconds_predict=sum(predict_s) / len(predict_s),
        peak_rss_mb=process_peak_rss_mb(),
        command="python -m benchmarks (same process, data read with pandas)",
        tuned_on=UNTUNED,
    )


def retain_on_splits(report: TrainReport, split_names: Sequence[str]) -> Evaluated:
    """retain's figures per evaluation split, from the predictions ``retain train`` wrote."""
    from retain.evaluation import churn_metrics

    predictions = report.predictions
    metrics = []
    for name in split_names:
        rows = predictions.loc[predictions["split"] == name]
        metrics.append(as_metric_dict(churn_metrics(rows["churned"], rows["churn_probability"])))
    return Evaluated(
        model=RETAIN_MODEL,
        splits=metrics,
        seconds_train=report.cli.seconds,
        seconds_predict=None,  # type: ignore[arg-type]  # predictions are made inside train
        peak_rss_mb=report.cli.peak_rss_mb,
        command=report.cli.command,
        tuned_on=report.tuned_on,
    )


def same_folds(report: TrainReport, ids: pd.Series, folds: Sequence[tuple[np.ndarray, np.ndarray]]) -> bool:
    """Whether retain's evaluation folds hold exactly the customers of the protocol's folds."""
    predictions = report.predictions
    for k, (_, test_rows) in enumerate(folds):
        theirs = set(predictions.loc[predictions["split"] == f"fold {k + 1}", "customer_id"])
        if theirs != set(ids.iloc[test_rows].astype(str)):
            return False
    return True


# --- records -----------------------------------------------------------------------------------


def record_all(
    run: BenchmarkRun,
    results: Sequence[Evaluated],
    *,
    dataset: str,
    anchors: dict[str, list[Anchor]],
    goals: dict[str, Goal],
    metrics: Sequence[str] = CHURN_METRICS,
    **extra: Any,
) -> None:
    """One record per (model, metric); the first result is retain's, the others comparisons.

    retain's record has the protocol's anchor first, then the same-run comparisons in
    ``other_anchors``; where the protocol names no anchor for a metric, the same-run plain HGB
    is the anchor. A comparison's anchor is the protocol's (if any).
    """
    ours, *comparisons = results
    for result in results:
        is_ours = result is ours
        for metric in metrics:
            protocol = list(anchors.get(metric, []))
            same_run = [
                Anchor(other.model, round(other.mean(metric), 6), "same run") for other in comparisons
            ]
            chain = protocol + same_run if is_ours else protocol
            anchor, *others = chain or [Anchor("none in PROTOCOLS.md", None, "")]
            run.record(
                dataset=dataset,
                metric=metric,
                value=result.mean(metric),
                model=result.model,
                anchor=anchor,
                other_anchors=others,
                goal=goals.get(metric),
                seconds_train=result.seconds_train,
                seconds_predict=result.seconds_predict,
                peak_rss_mb=result.peak_rss_mb,
                role="retain" if is_ours else "comparison",
                tuned_on=result.tuned_on,
                command=result.command,
                splits=result.per_split(metric),
                **extra,
            )


def flat_benchmark(
    run: BenchmarkRun,
    *,
    example: str,
    dataset: str,
    X: pd.DataFrame,
    y: np.ndarray,
    ids: pd.Series,
    anchors: dict[str, list[Anchor]],
    goals: dict[str, Goal],
    required_flags: Sequence[str] = (),
    metrics: Sequence[str] = CHURN_METRICS,
) -> None:
    """C1/C3/C4: ``retain train`` with 5 stratified folds, and the comparisons on the same folds."""
    folds = stratified_folds(y, run.seed)
    with tempfile.TemporaryDirectory(prefix=f"retain-bench-{example}-") as tmp:
        report = train_through_cli(run, example, Path(tmp))
    flagged = report.flagged
    X_clean = X.drop(columns=[c for c in flagged if c in X.columns])
    names = [f"fold {k + 1}" for k in range(len(folds))]
    results = [retain_on_splits(report, names)]
    results += [evaluate_on_splits(n, make, X_clean, y, folds) for n, make in COMPARISONS.items()]
    if required_flags:
        goals = {
            m: FlaggedGoal(g.op, g.value, tuple(required_flags), tuple(flagged)) for m, g in goals.items()
        }
    pooled = report.metrics["churn"]
    record_all(
        run,
        results,
        dataset=dataset,
        anchors=anchors,
        goals=goals,
        metrics=metrics,
        flagged=flagged,
        comparisons_without=flagged,
        same_folds=same_folds(report, ids, folds),
        n_rows=len(y),
        n_folds=N_FOLDS,
        retain_pooled_roc_auc={
            k: pooled.get(k) for k in ("roc_auc", "roc_auc_low", "roc_auc_high")
        },
        audit_findings=report.metrics["audit"].get("findings", []),
        retain_settings=report.metrics.get("settings"),
    )


# --- C1 telco ----------------------------------------------------------------------------------


def load_telco(path: Path) -> tuple[pd.DataFrame, np.ndarray, pd.Series]:
    """Telco features and 0/1 label: customerID dropped, blank TotalCharges -> missing."""
    import pandas as pd

    telco = pd.read_csv(path)
    y = (telco["Churn"] == "Yes").astype(int).to_numpy()
    X = telco.drop(columns=["customerID", "Churn"])
    X["TotalCharges"] = pd.to_numeric(X["TotalCharges"], errors="coerce")  # " " -> NaN
    return X, y, telco["customerID"]


@benchmark("C1", "telco", data=[TELCO])
def telco(run: BenchmarkRun) -> None:
    """IBM Telco through ``retain train``, 5 stratified folds; HGB and LR on the same folds."""
    X, y, ids = load_telco(run.data_path(TELCO))
    anchors = {
        "roc_auc": [
            Anchor("LR", 0.845, "here"),
            Anchor("tuned HGB", 0.846, "here"),
            Anchor("rank blend of LR and tuned HGB", 0.849, "here"),
            Anchor("several GBMs, low end of range", 0.843, "published"),
            Anchor("several GBMs, high end of range", 0.861, "published"),
        ]
    }
    goals = {"roc_auc": Goal(">=", 0.86), "lift_at_10": Goal(">=", 3.0)}
    flat_benchmark(run, example="telco", dataset=TELCO, X=X, y=y, ids=ids, anchors=anchors, goals=goals)


# --- C2 bigml ----------------------------------------------------------------------------------


def load_bigml(path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    import pandas as pd

    frame = pd.read_csv(path)
    y = (frame["Churn"].astype(str).str.lower() == "true").astype(int).to_numpy()
    return frame.drop(columns=["Churn"]), y


@benchmark("C2", "bigml", data=[BIGML_TRAIN, BIGML_TEST])
def bigml(run: BenchmarkRun) -> None:
    """BigML through ``retain train`` (80% file -> 20% file); HGB and LR on the same split."""
    import numpy as np
    import pandas as pd

    X_fit, y_fit = load_bigml(run.data_path(BIGML_TRAIN))
    X_test, y_test = load_bigml(run.data_path(BIGML_TEST))
    X = pd.concat([X_fit, X_test], ignore_index=True)
    y = np.r_[y_fit, y_test]
    split = [(np.arange(len(y_fit)), np.arange(len(y_fit), len(y)))]
    with tempfile.TemporaryDirectory(prefix="retain-bench-bigml-") as tmp:
        report = train_through_cli(run, "bigml", Path(tmp))
    results = [retain_on_splits(report, ["test file"])]
    results += [evaluate_on_splits(n, make, X, y, split) for n, make in COMPARISONS.items()]
    anchors = {
        "roc_auc": [
            Anchor("HistGradientBoosting", 0.918, "here"),
            Anchor("HistGradientBoosting with total charge and total minutes", 0.935, "here"),
        ]
    }
    record_all(
        run,
        results,
        dataset=f"{BIGML_TRAIN} -> {BIGML_TEST}",
        anchors=anchors,
        goals={"roc_auc": Goal(">=", 0.95)},
        n_train=len(y_fit),
        n_test=len(y_test),
        flagged=report.flagged,
        audit_findings=report.metrics["audit"].get("findings", []),
        retain_pooled_roc_auc={
            k: report.metrics["churn"].get(k) for k in ("roc_auc", "roc_auc_low", "roc_auc_high")
        },
        retain_settings=report.metrics.get("settings"),
    )


# --- C3 bank, C4 credit card -------------------------------------------------------------------


@benchmark("C3", "bank", data=[BANK])
def bank(run: BenchmarkRun) -> None:
    """Bank churn through ``retain train``: the audit must flag Complain; figures without it."""
    import pandas as pd

    frame = pd.read_csv(run.data_path(BANK))
    y = frame["Exited"].astype(int).to_numpy()
    X = frame.drop(columns=["RowNumber", "CustomerId", "Surname", "Exited"])
    flat_benchmark(
        run,
        example="bank",
        dataset=BANK,
        X=X,
        y=y,
        ids=frame["CustomerId"],
        anchors={"roc_auc": [Anchor("HistGradientBoosting", 0.862, "here")]},
        goals={"roc_auc": Goal(">=", 0.87)},
        required_flags=["Complain"],
    )


@benchmark("C4", "credit-card", data=[CREDIT_CARD])
def credit_card(run: BenchmarkRun) -> None:
    """Credit card churners through ``retain train``: both Naive_Bayes_* columns must be flagged."""
    import pandas as pd

    frame = pd.read_csv(run.data_path(CREDIT_CARD))
    y = (frame["Attrition_Flag"] == "Attrited Customer").astype(int).to_numpy()
    X = frame.drop(columns=["CLIENTNUM", "Attrition_Flag"])
    naive_bayes = [c for c in frame.columns if c.startswith("Naive_Bayes")]
    flat_benchmark(
        run,
        example="credit_card",
        dataset=CREDIT_CARD,
        X=X,
        y=y,
        ids=frame["CLIENTNUM"],
        anchors={"roc_auc": [Anchor("HistGradientBoosting", 0.994, "here")]},
        goals={"roc_auc": Goal(">=", 0.994)},
        required_flags=naive_bayes,
    )


# --- C5 CDNOW ----------------------------------------------------------------------------------


def load_cdnow(path: Path) -> pd.DataFrame:
    """CDNOW purchases: ``customer_id`` (int), ``date`` (day), ``cds``, ``amount``."""
    import pandas as pd

    log = pd.read_csv(path, sep=r"\s+", dtype={"customer_id": str})
    return pd.DataFrame(
        {
            "customer_id": log["customer_id"].astype(int),
            "date": pd.to_datetime(log["date"].astype(str), format="%Y%m%d"),
            "cds": log["number_of_cds"].astype(float),
            "amount": log["dollar_value"].astype(float),
        }
    )


def inactivity_labels(log: pd.DataFrame, as_of: pd.Timestamp, horizon_days: int) -> pd.Series:
    """1 for customers with a purchase on or before ``as_of`` and none in the next ``horizon_days``."""
    import pandas as pd

    seen = log.loc[log["date"] <= as_of, "customer_id"].unique()
    window = (log["date"] > as_of) & (log["date"] <= as_of + pd.Timedelta(days=horizon_days))
    active = set(log.loc[window, "customer_id"])
    return pd.Series([int(c not in active) for c in seen], index=pd.Index(seen, name="customer_id"))


def rfm_features(log: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """Seven RFM features per customer with a purchase on or before ``as_of``.

    recency_days, tenure_days (since the first purchase), purchase_days (distinct days with a
    purchase), purchase_days_90d, spend, spend_per_purchase_day, cds.
    """
    import pandas as pd

    past = log.loc[log["date"] <= as_of]
    by_day = past.groupby(["customer_id", "date"], as_index=False)[["cds", "amount"]].sum()
    grouped = by_day.groupby("customer_id")
    recent = by_day.loc[by_day["date"] > as_of - pd.Timedelta(days=90)]
    features = grouped.agg(
        last=("date", "max"),
        first=("date", "min"),
        purchase_days=("date", "size"),
        spend=("amount", "sum"),
        cds=("cds", "sum"),
    )
    features["recency_days"] = (as_of - features.pop("last")).dt.days
    features["tenure_days"] = (as_of - features.pop("first")).dt.days
    features["purchase_days_90d"] = recent.groupby("customer_id").size().reindex(features.index, fill_value=0)
    features["spend_per_purchase_day"] = features["spend"] / features["purchase_days"]
    return features[list(RFM_FEATURES)].astype(float)


def rfm_training_dates(as_of: pd.Timestamp, horizon_days: int) -> list[pd.Timestamp]:
    """Every 14 days back from the last date whose label window closes by ``as_of``."""
    import pandas as pd

    last = as_of - pd.Timedelta(days=horizon_days)
    first = pd.Timestamp(C5_RFM_FIRST_AS_OF)
    dates = []
    day = last
    while day >= first:
        dates.append(day)
        day -= pd.Timedelta(days=C5_RFM_STEP_DAYS)
    return sorted(dates)


def rfm_comparison(
    name: str, make_model: Callable[[], Any], log: pd.DataFrame, test_index: pd.Index, y_test: np.ndarray
) -> tuple[np.ndarray, float, float, float]:
    """Fit on stacked (as_of, customer) RFM rows whose labels close by C5_AS_OF; predict at it."""
    import numpy as np
    import pandas as pd

    as_of = pd.Timestamp(C5_AS_OF)
    start = time.perf_counter()
    parts, labels = [], []
    for day in rfm_training_dates(as_of, C5_HORIZON_DAYS):
        X_day = rfm_features(log, day)
        parts.append(X_day)
        labels.append(inactivity_labels(log, day, C5_HORIZON_DAYS).reindex(X_day.index).to_numpy())
    X_fit, y_fit = pd.concat(parts, ignore_index=True), np.concatenate(labels)
    model = make_model().fit(X_fit, y_fit)
    seconds_train = time.perf_counter() - start
    start = time.perf_counter()
    X_test = rfm_features(log, as_of).reindex(test_index)
    proba = model.predict_proba(X_test)[:, list(model.classes_).index(1)]
    return proba, seconds_train, time.perf_counter() - start, float(len(y_fit))


def bgnbd_risk(log: pd.DataFrame, test_index: pd.Index) -> tuple[np.ndarray, np.ndarray, dict[str, float], float, float]:
    """lifetimes' BG/NBD on daily transactions up to C5_AS_OF (the protocol's anchor).

    Returns risk = minus the expected purchases in the horizon, 1 - P(alive), the fitted
    parameters, and the fit and predict seconds.
    """
    import numpy as np
    import pandas as pd
    from lifetimes import BetaGeoFitter
    from lifetimes.utils import summary_data_from_transaction_data

    as_of = pd.Timestamp(C5_AS_OF)
    start = time.perf_counter()
    summary = summary_data_from_transaction_data(
        log.loc[log["date"] <= as_of], "customer_id", "date", observation_period_end=as_of, freq="D"
    ).reindex(test_index)
    fitter = BetaGeoFitter(penalizer_coef=0.0).fit(summary["frequency"], summary["recency"], summary["T"])
    seconds_fit = time.perf_counter() - start
    start = time.perf_counter()
    expected = fitter.conditional_expected_number_of_purchases_up_to_time(
        C5_HORIZON_DAYS, summary["frequency"], summary["recency"], summary["T"]
    )
    alive = fitter.conditional_probability_alive(summary["frequency"], summary["recency"], summary["T"])
    seconds_predict = time.perf_counter() - start
    params = {k: float(v) for k, v in fitter.params_.items()}
    return -np.asarray(expected, float), 1 - np.asarray(alive, float), params, seconds_fit, seconds_predict


@benchmark("C5", "cdnow-temporal", data=[CDNOW])
def cdnow(run: BenchmarkRun) -> None:
    """CDNOW: ``retain train --until`` and ``retain score --as-of`` 1997-12-31, 180-day inactivity.

    Anchor: lifetimes' BG/NBD fitted in the same run; comparisons: recency alone, and a plain
    HGB and the logistic baseline on seven RFM features.
    """
    import importlib.metadata

    import pandas as pd

    from retain.evaluation import churn_metrics

    with tempfile.TemporaryDirectory(prefix="retain-bench-cdnow-") as tmp:
        workdir = Path(tmp)
        config = isolated_config("cdnow", workdir)
        train = run_cli(["train", "--until", C5_AS_OF], "cdnow", config, run.context.data_dir)
        metrics = json.loads((workdir / "reports" / "metrics.json").read_text(encoding="utf-8"))
        score = run_cli(["score", "--as-of", C5_AS_OF, "--force-as-of"], "cdnow", config, run.context.data_dir)
        # every scored customer: the list leaves the outreach control group out
        ranked = pd.read_parquet(workdir / "outputs" / "outreach_plan.parquet")

    log = load_cdnow(run.data_path(CDNOW))
    as_of = pd.Timestamp(C5_AS_OF)
    labels = inactivity_labels(log, as_of, C5_HORIZON_DAYS)
    ranked_ids = pd.to_numeric(ranked["customer_id"]).astype(int)
    retain_p = pd.Series(ranked["churn_probability"].to_numpy(), index=ranked_ids.to_numpy())
    scored = labels.index.intersection(retain_p.index)
    y = labels.reindex(scored).to_numpy()
    population = {
        "population": len(labels),
        "scored_by_retain": len(retain_p),
        "evaluated": len(scored),
        "base_rate": float(y.mean()),
    }

    risk, not_alive, params, bg_fit_s, bg_predict_s = bgnbd_risk(log, scored)
    bgnbd = as_metric_dict(churn_metrics(y, _rank_scores(risk)))
    bgnbd_not_alive = as_metric_dict(churn_metrics(y, not_alive))
    recency = rfm_features(log, as_of).reindex(scored)["recency_days"].to_numpy()
    recency_metrics = as_metric_dict(churn_metrics(y, _rank_scores(recency)))
    ours = as_metric_dict(churn_metrics(y, retain_p.reindex(scored).to_numpy()))

    rfm = {}
    for name, make in COMPARISONS.items():
        proba, fit_s, predict_s, n_fit = rfm_comparison(name, make, log, scored, y)
        rfm[name] = (as_metric_dict(churn_metrics(y, proba)), fit_s, predict_s, n_fit)

    lifetimes_version = importlib.metadata.version("lifetimes")
    anchor = Anchor(
        f"lifetimes {lifetimes_version} BetaGeoFitter, risk = -expected purchases in 180 days",
        round(bgnbd["roc_auc"], 6),
        "same run",
    )
    published_anchor = Anchor("lifetimes BetaGeoFitter (PROTOCOLS.md)", 0.799, "here")
    goal = Goal(">=", round(bgnbd["roc_auc"] + 0.03, 6))
    comparison_anchors = [
        Anchor(f"{HGB_MODEL} on 7 RFM features", round(rfm[HGB_MODEL][0]["roc_auc"], 6), "same run"),
        Anchor(f"{LR_MODEL} on 7 RFM features", round(rfm[LR_MODEL][0]["roc_auc"], 6), "same run"),
        Anchor("recency alone (days since last purchase)", round(recency_metrics["roc_auc"], 6), "same run"),
        Anchor("plain HistGradientBoosting on 7 RFM features (PROTOCOLS.md)", 0.786, "here"),
        Anchor("lifetimes 1 - P(alive) (same run)", round(bgnbd_not_alive["roc_auc"], 6), "same run"),
        published_anchor,
    ]
    common = {
        "dataset": CDNOW,
        "as_of": C5_AS_OF,
        "horizon_days": C5_HORIZON_DAYS,
        **population,
    }
    rss = max(v for v in (train.peak_rss_mb, score.peak_rss_mb) if v is not None)
    lift_anchor = Anchor(anchor.name, round(bgnbd["lift_at_10"], 6), "same run")
    for metric, value, metric_anchor, metric_goal in (
        ("roc_auc", ours["roc_auc"], anchor, goal),
        ("lift_at_10", ours["lift_at_10"], lift_anchor, None),
        ("roc_auc_gain_over_anchor", ours["roc_auc"] - bgnbd["roc_auc"], anchor, Goal(">=", 0.03)),
        ("pr_auc", ours["pr_auc"], Anchor(anchor.name, round(bgnbd["pr_auc"], 6), "same run"), None),
    ):
        run.record(
            metric=metric,
            value=value,
            model=RETAIN_MODEL,
            anchor=metric_anchor,
            other_anchors=comparison_anchors if metric == "roc_auc" else [],
            goal=metric_goal,
            seconds_train=train.seconds,
            seconds_predict=score.seconds,
            peak_rss_mb=rss,
            role="retain",
            tuned_on=str(metrics.get("tuned_on", "")),
            command=f"{train.command}; {score.command}",
            evaluation_as_of=metrics.get("evaluation_as_of"),
            retain_backtest_roc_auc=metrics.get("churn", {}).get("roc_auc"),
            brier=ours["brier"],
            **common,
        )
    comparisons = [
        (anchor.name, bgnbd, bg_fit_s, bg_predict_s, BGNBD_TUNED_ON, {"bgnbd_params": params}),
        ("lifetimes BetaGeoFitter, risk = 1 - P(alive)", bgnbd_not_alive, bg_fit_s, bg_predict_s,
         "as above", {"bgnbd_params": params}),
        ("recency alone (days since last purchase)", recency_metrics, 0.0, 0.0, "no fitting", {}),
    ]
    for name, (m, fit_s, predict_s, n_fit) in rfm.items():
        dates = rfm_training_dates(as_of, C5_HORIZON_DAYS)
        comparisons.append(
            (
                f"{name} on 7 RFM features",
                m,
                fit_s,
                predict_s,
                UNTUNED,
                {
                    "rfm_features": list(RFM_FEATURES),
                    "training_as_of": [str(dates[0].date()), str(dates[-1].date())],
                    "training_as_of_every_days": C5_RFM_STEP_DAYS,
                    "n_training_rows": int(n_fit),
                },
            )
        )
    for name, m, fit_s, predict_s, tuned_on, extra in comparisons:
        for metric in ("roc_auc", "lift_at_10", "pr_auc"):
            run.record(
                metric=metric,
                value=m[metric],
                model=name,
                anchor=published_anchor if metric == "roc_auc" else Anchor("none in PROTOCOLS.md", None, ""),
                goal=None,
                seconds_train=fit_s,
                seconds_predict=predict_s,
                peak_rss_mb=process_peak_rss_mb(),
                role="comparison",
                tuned_on=tuned_on,
                command="python -m benchmarks (same process, data read with pandas)",
                **extra,
                **common,
            )


def _rank_scores(scores: np.ndarray) -> np.ndarray:
    """Scores mapped to [0, 1] by rank (ties averaged), so ``churn_metrics`` accepts them.

    Ranking metrics are unchanged; Brier of such a score means nothing and is not recorded.
    """
    from scipy.stats import rankdata

    ranks = rankdata(scores, method="average")
    return (ranks - 1) / max(len(ranks) - 1, 1)
