"""ChurnClassifier (LightGBM + calibration + attributions) and the logistic baseline."""

from __future__ import annotations

import cloudpickle
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from retain.churn.model import BASELINE_COLUMN, ChurnClassifier, make_logistic_baseline


def make_table(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Numeric, missing, string (pandas 3 ``str``), category, object-with-None and bool columns."""
    rng = np.random.default_rng(seed)
    tickets = rng.poisson(1.5, n).astype(float)
    logins = rng.normal(10, 3, n)
    logins[rng.random(n) < 0.1] = np.nan
    segment = rng.choice(["consumer", "smb", "enterprise"], n)
    plan = pd.Categorical(rng.choice(["basic", "pro"], n), categories=["basic", "pro"])
    region = rng.choice(np.array(["north", "south", None], dtype=object), n)
    discounted = rng.random(n) < 0.3
    margin = (
        -1.5
        + 0.8 * tickets
        - 0.15 * np.nan_to_num(logins, nan=10)
        + np.where(segment == "consumer", 1.0, 0.0)
        - 0.5 * discounted
        + 1.0
    )
    y = (rng.random(n) < 1 / (1 + np.exp(-margin))).astype(int)
    X = pd.DataFrame(
        {
            "tickets": tickets,
            "logins": logins,
            "segment": pd.array(segment, dtype="str"),
            "plan": plan,
            "region": region,
            "discounted": discounted,
        },
        index=pd.Index([f"c{i}" for i in range(n)], name="customer_id"),
    )
    return X, y


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, np.ndarray]:
    return make_table(800, seed=0)


@pytest.fixture(scope="module")
def fitted(data) -> ChurnClassifier:
    X, y = data
    return ChurnClassifier(n_estimators=60, min_child_samples=20, n_jobs=1).fit(X, y)


def _prepared(model: ChurnClassifier, X: pd.DataFrame) -> pd.DataFrame:
    """X with categorical columns cast to the categories the model learned (public state)."""
    out = X.copy()
    for col, categories in model.categories_.items():
        out[col] = pd.Categorical(out[col], categories=categories)
    return out


def test_fit_learns_state(fitted: ChurnClassifier, data) -> None:
    X, _ = data
    assert list(fitted.classes_) == [0, 1]
    assert list(fitted.feature_names_in_) == list(X.columns)
    assert fitted.n_features_in_ == X.shape[1]
    assert set(fitted.categories_) == {"segment", "plan", "region"}
    assert list(fitted.categories_["segment"]) == ["consumer", "enterprise", "smb"]
    assert list(fitted.categories_["region"]) == ["north", "south"]
    assert fitted.booster_ is fitted.calibrated_.calibrated_classifiers_[0].estimator
    assert fitted.booster_.n_estimators == 60


def test_calibrated_probabilities(fitted: ChurnClassifier, data) -> None:
    X, y = data
    proba = fitted.predict_proba(X)
    assert proba.shape == (len(X), 2)
    assert ((proba >= 0) & (proba <= 1)).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert roc_auc_score(y, proba[:, 1]) > 0.7
    np.testing.assert_array_equal(fitted.predict(X), fitted.classes_[proba.argmax(axis=1)])


def test_calibration_is_monotone_in_the_booster_margin(fitted: ChurnClassifier, data) -> None:
    X, _ = data
    order = np.argsort(fitted.raw_margin(X), kind="mergesort")
    assert (np.diff(fitted.predict_proba(X)[order, 1]) >= -1e-12).all()


def test_unseen_categories_are_treated_as_missing(fitted: ChurnClassifier, data) -> None:
    X, _ = data
    rows = X.head(20)
    unseen = rows.assign(segment=pd.array(["martian"] * 20, dtype="str"), region="west")
    missing = rows.assign(segment=pd.array([None] * 20, dtype="str"), region=None)
    np.testing.assert_allclose(fitted.predict_proba(unseen), fitted.predict_proba(missing))
    # Category dtype with other categories, or a plain object column: mapped by value.
    recoded = rows.assign(
        plan=pd.Categorical(rows["plan"].astype(str), categories=["pro", "basic", "trial"]),
        segment=rows["segment"].astype(object),
    )
    np.testing.assert_allclose(fitted.predict_proba(recoded), fitted.predict_proba(rows))


def test_attributions_sum_to_the_raw_margin(fitted: ChurnClassifier, data) -> None:
    X, _ = data
    rows = X.iloc[::37]
    attributions = fitted.feature_attributions(rows)
    assert list(attributions.columns) == [*X.columns, BASELINE_COLUMN]
    pd.testing.assert_index_equal(attributions.index, rows.index)
    assert attributions[BASELINE_COLUMN].nunique() == 1
    total = attributions.sum(axis=1).to_numpy()
    np.testing.assert_allclose(total, fitted.raw_margin(rows), atol=1e-9)
    booster_proba = fitted.booster_.predict_proba(_prepared(fitted, rows))[:, 1]
    np.testing.assert_allclose(1 / (1 + np.exp(-total)), booster_proba, atol=1e-9)


def test_attributions_point_the_right_way(fitted: ChurnClassifier, data) -> None:
    X, _ = data
    attributions = fitted.feature_attributions(X)
    # More tickets push towards churn in the planted model.
    assert np.corrcoef(X["tickets"], attributions["tickets"])[0, 1] > 0.5


def test_pickle_round_trip(fitted: ChurnClassifier, data) -> None:
    X, _ = data
    restored = cloudpickle.loads(cloudpickle.dumps(fitted))
    np.testing.assert_array_equal(restored.predict_proba(X), fitted.predict_proba(X))
    pd.testing.assert_frame_equal(
        restored.feature_attributions(X.head(5)), fitted.feature_attributions(X.head(5))
    )


def test_groups_keep_customers_in_one_calibration_fold(data) -> None:
    X, y = data
    groups = np.arange(len(X)) // 4
    model = ChurnClassifier(n_estimators=20, min_child_samples=20, n_jobs=1).fit(
        X, y, groups=groups
    )
    proba = model.predict_proba(X)[:, 1]
    assert ((proba >= 0) & (proba <= 1)).all()


def test_isotonic_calibration_and_string_labels(data) -> None:
    X, y = data
    labels = np.where(y == 1, "churned", "stayed")
    model = ChurnClassifier(n_estimators=20, calibration="isotonic", n_jobs=1).fit(X, labels)
    assert list(model.classes_) == ["churned", "stayed"]
    assert set(model.predict(X.head(50))) <= {"churned", "stayed"}
    # classes_[1] is "stayed": attributions explain its log-odds.
    np.testing.assert_allclose(
        model.feature_attributions(X.head(5)).sum(axis=1),
        model.raw_margin(X.head(5)),
        atol=1e-9,
    )


def test_numpy_input_gets_generated_feature_names() -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 3))
    y = (X[:, 0] + rng.normal(size=300) > 0).astype(int)
    model = ChurnClassifier(n_estimators=20, min_child_samples=10, n_jobs=1).fit(X, y)
    assert model.n_features_in_ == 3
    assert not hasattr(model, "feature_names_in_")
    assert list(model.feature_attributions(X[:4]).columns) == ["x0", "x1", "x2", BASELINE_COLUMN]


def test_object_columns_of_numbers_are_numeric_and_other_objects_are_labels() -> None:
    rng = np.random.default_rng(2)
    n = 200
    usage = rng.normal(size=n)
    y = (usage + rng.normal(scale=0.5, size=n) > 0).astype(int)
    X = pd.DataFrame(
        {
            "usage": pd.Series(usage, dtype=object),  # numbers stored as objects
            "plan": pd.Series([1, "pro"] * (n // 2), dtype=object),  # mixed: labels
        }
    )
    model = ChurnClassifier(n_estimators=10, min_child_samples=10, n_jobs=1).fit(X, y)
    assert set(model.categories_) == {"plan"}
    assert list(model.categories_["plan"]) == ["1", "pro"]
    as_floats = X.assign(usage=usage)
    np.testing.assert_allclose(model.predict_proba(as_floats), model.predict_proba(X))


def test_invalid_settings_and_labels_fail_in_fit(data) -> None:
    X, y = data
    model = ChurnClassifier(calibration="magic")  # __init__ does not validate
    assert model.calibration == "magic"
    with pytest.raises(ValueError, match="calibration"):
        model.fit(X, y)
    with pytest.raises(ValueError, match="two classes"):
        ChurnClassifier(n_jobs=1).fit(X, np.zeros(len(X), dtype=int))


def test_logistic_baseline_on_the_same_table(data) -> None:
    X, y = data
    model = make_logistic_baseline().fit(X, y)
    proba = model.predict_proba(X)
    assert proba.shape == (len(X), 2)
    assert roc_auc_score(y, proba[:, 1]) > 0.7
    new = X.head(5).assign(segment=pd.array(["martian"] * 5, dtype="str"), region=None)
    assert np.isfinite(model.predict_proba(new)).all()
    names = model[:-1].get_feature_names_out()
    assert "numeric__missingindicator_logins" in names
    assert "categorical__segment_smb" in names


def test_uncalibrated_model_returns_the_boosters_probabilities(data) -> None:
    X, y = data
    model = ChurnClassifier(n_estimators=30, calibration=None, n_jobs=1).fit(X, y)
    assert model.calibrated_ is None
    margin = model.raw_margin(X)
    np.testing.assert_allclose(model.predict_proba(X)[:, 1], 1 / (1 + np.exp(-margin)))
    np.testing.assert_allclose(model.feature_attributions(X.head(5)).sum(axis=1), margin[:5])


def test_raw_margin_with_fewer_trees(fitted: ChurnClassifier, data) -> None:
    X, _ = data
    np.testing.assert_allclose(fitted.raw_margin(X, n_trees=60), fitted.raw_margin(X))
    fewer = fitted.raw_margin(X, n_trees=10)
    assert not np.allclose(fewer, fitted.raw_margin(X))
    # Fewer trees are the same model stopped early: closer to the baseline margin.
    assert fewer.std() < fitted.raw_margin(X).std()
    with pytest.raises(ValueError, match="n_trees"):
        fitted.raw_margin(X, n_trees=61)
