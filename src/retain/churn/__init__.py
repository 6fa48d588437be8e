"""Churn: point-in-time features and labels, the churn model, and plain-language reasons.

``retain.churn.features`` builds one row per ``(customer_id, as_of)``; ``retain.churn.model``
holds :class:`ChurnClassifier` and the logistic baseline; ``retain.churn.reasons`` turns
per-customer attributions into reasons a support lead can read.
"""

from __future__ import annotations

__all__ = ["ChurnClassifier", "make_logistic_baseline"]


def __getattr__(name: str):  # type: ignore[no-untyped-def]
    # Lazy: ``import retain.churn`` must not import LightGBM.
    if name in __all__:
        from retain.churn import model

        return getattr(model, name)
    raise AttributeError(name)
