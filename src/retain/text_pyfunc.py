"""The ``retain text`` model as an MLflow pyfunc, logged as code rather than as a pickled object.

:func:`retain.tracking.log_text_model` logs this file ("models from code",
``python_model=<this file>``): MLflow copies it into the model's folder, and when the model is
loaded it runs that copy, which builds :class:`TextPyfunc` and hands it to MLflow with
``mlflow.models.set_model``. The fitted models are read in :meth:`TextPyfunc.load_context` from
the ``text_model.skops`` artifact with skops and retain's list of trusted types, so no pickle is
written or read. This file is never imported by ``retain`` itself (it calls ``set_model`` when
run, which is the point of it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow.pyfunc
from mlflow.models import set_model


class TextPyfunc(mlflow.pyfunc.PythonModel):
    """MLflow pyfunc over a ``TextModelBundle``: a DataFrame with ``text`` in, scores out."""

    bundle: Any = None
    # The logged signature describes the input; MLflow's type-hint validation is not used.
    _skip_type_hint_validation = True

    def load_context(self, context: Any) -> None:
        """Read the bundle from ``text_model.skops`` (checked against retain's trusted types)."""
        from retain.tracking import TEXT_MODEL_ARTIFACT, load_text_bundle

        self.bundle = load_text_bundle(Path(context.artifacts[TEXT_MODEL_ARTIFACT]))

    # No type hints: MLflow would read them as an input schema (the signature is logged).
    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        """Scores of :meth:`retain.text.bundle.TextModelBundle.predict` for the ``text`` column."""
        import pandas as pd

        texts = model_input["text"] if isinstance(model_input, pd.DataFrame) else model_input
        return self.bundle.predict(texts)


set_model(TextPyfunc())
