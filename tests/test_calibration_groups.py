"""Calibration folds keep each customer in one fold when ``groups`` is given.

The data make a leak visible: every customer appears on 10 rows with one label of their own
(a fair coin, unrelated to anything observable) and an id-like ``customer_code`` the booster
can memorise. A fold model that has seen a customer predicts their label almost perfectly; one
that has not can only guess. So:

- calibrated on folds that keep customers apart, the probabilities stay near 0.5 (the truth
  for a new customer is a coin flip);
- calibrated on folds that leak customers, the calibrator learns that confident scores are
  right and the model becomes overconfident: probabilities near 0 or 1, and a log loss on new
  customers far above log(2).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from retain.churn.model import ChurnClassifier

N_CUSTOMERS, ROWS_PER_CUSTOMER = 60, 10


def _repeated_customers(seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    label = rng.permutation(np.arange(N_CUSTOMERS) % 2)
    code = rng.permutation(N_CUSTOMERS).astype(float)
    customer = np.repeat(np.arange(N_CUSTOMERS), ROWS_PER_CUSTOMER)
    X = pd.DataFrame(
        {
            "customer_code": code[customer] + rng.normal(0.0, 0.01, len(customer)),
            "noise": rng.normal(size=len(customer)),
        }
    )
    return X, label[customer], np.array([f"C{c:03d}" for c in customer])


def _memorising_model(calibration: str) -> ChurnClassifier:
    # Small leaves and a fast learning rate so the booster can memorise each customer.
    return ChurnClassifier(
        n_estimators=50,
        learning_rate=0.1,
        num_leaves=8,
        min_child_samples=5,
        calibration=calibration,  # type: ignore[arg-type]
        random_state=0,
        n_jobs=1,
    )


def _log_loss(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


@pytest.mark.parametrize("calibration", ["sigmoid", "isotonic"])
@pytest.mark.parametrize("seed", [0, 1])
def test_grouped_calibration_is_not_overconfident_on_memorised_customers(
    calibration: str, seed: int
) -> None:
    X, y, customers = _repeated_customers(seed)
    X_new, y_new, _ = _repeated_customers(seed + 100)  # other customers, same kind of data
    model = _memorising_model(calibration).fit(X, y, groups=customers)

    # the booster did memorise the training customers...
    assert ((model.raw_margin(X) > 0) == y).mean() > 0.9
    # ...but the calibrator, fitted on predictions for customers the fold model had not seen,
    # knows that this is worthless for a new customer
    p_new = model.predict_proba(X_new)[:, 1]
    assert np.abs(p_new - 0.5).mean() < 0.15
    assert _log_loss(y_new, p_new) < 0.75  # log(2) = 0.693 is the honest coin-flip loss


def test_the_data_expose_calibration_folds_that_leak_customers() -> None:
    """Without groups (row-level folds) the same data give overconfident probabilities: the
    fixture can tell the two apart, so the test above fails if ``groups`` is ignored."""
    X, y, _ = _repeated_customers(0)
    X_new, y_new, _ = _repeated_customers(100)
    model = _memorising_model("sigmoid").fit(X, y)
    p_new = model.predict_proba(X_new)[:, 1]
    assert np.abs(p_new - 0.5).mean() > 0.3
    assert _log_loss(y_new, p_new) > 1.0
