"""The control group: customers held out of outreach at random, so its effect can be measured.

Membership is drawn per risk decile (so the control group has the risk profile of the list)
and decided by a hash of the customer id and a seed, not by a random generator's order: the
same customers, seed and risks give the same group whatever the row order, and a customer's
draw does not depend on which other customers are scored.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

DECILES = 10


def customer_draw(customer_id: object, seed: int | str) -> float:
    """A uniform number in [0, 1) fixed by ``(seed, customer_id)`` (SHA-256 of both)."""
    digest = hashlib.sha256(f"{seed}:{customer_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def risk_deciles(risk: pd.Series) -> pd.Series:
    """Decile of each risk, 1 (lowest tenth) to 10 (highest); ties split by position.

    With fewer than ten customers, some deciles are empty.
    """
    if risk.empty:
        return pd.Series(dtype=int, index=risk.index)
    order = risk.rank(method="first").to_numpy() - 1  # 0 .. n-1
    return pd.Series((order * DECILES // len(risk)).astype(int) + 1, index=risk.index)


def control_group(
    customer_ids: pd.Series, risk: pd.Series, share: float, seed: int | str = 0
) -> pd.Series:
    """Which customers are held out: ``round(share * n)`` of the ``n`` customers of each risk decile.

    Within a decile the customers with the lowest :func:`customer_draw` are held out, so the
    choice is random yet reproducible, and a customer held out with one seed stays held out
    in a later run as long as their decile's draws do not change order around them.

    Parameters
    ----------
    customer_ids:
        One id per customer (unique).
    risk:
        Churn probability, same index as ``customer_ids``.
    share:
        Share of each decile to hold out, in [0, 1).
    seed:
        Changes the draw; the playbook's ``control_seed``.

    Returns
    -------
    pd.Series
        Boolean, same index as ``customer_ids``: True for control customers.
    """
    if not 0 <= share < 1:
        raise ValueError(f"control share must be in [0, 1), got {share}")
    if customer_ids.duplicated().any():
        raise ValueError("customer ids must be unique to draw a control group")
    draws = pd.Series([customer_draw(c, seed) for c in customer_ids], index=customer_ids.index, dtype=float)
    deciles = risk_deciles(risk)
    control = pd.Series(False, index=customer_ids.index)
    for _, members in draws.groupby(deciles):
        # half up, not to even: 0.5 of a customer rounds to one in every decile alike
        n_control = int(np.floor(share * len(members) + 0.5))
        ordered = members.sort_values(kind="stable")
        control.loc[ordered.index[:n_control]] = True
    return control
