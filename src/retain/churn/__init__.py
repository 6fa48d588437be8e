"""Churn: point-in-time features and labels, the churn model, and plain-language reasons.

``retain.churn.features`` builds one row per ``(customer_id, as_of)``; ``retain.churn.model``
holds :class:`ChurnClassifier` and the logistic baseline; ``retain.churn.selection`` chooses the
model's settings on validation rows; ``retain.churn.reasons`` turns per-customer attributions
into reasons a support lead can read.
"""

from __future__ import annotations

_LAZY = {
    "ChurnClassifier": "model",
    "make_logistic_baseline": "model",
    "SelectionResult": "selection",
    "select_churn_settings": "selection",
}
__all__ = list(_LAZY)


def __getattr__(name: str):  # type: ignore[no-untyped-def]
    # Lazy: ``import retain.churn`` must not import LightGBM.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"retain.churn.{_LAZY[name]}"), name)
    raise AttributeError(name)
