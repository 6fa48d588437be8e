"""Text model construction: one small factory per model kind, the only place kinds are named.

A kind is how a text model is built: ``tfidf`` (TF-IDF + logistic regression, always
available), ``transformer`` (a fine-tuned or frozen encoder, ``retain.text.transformer``) and
``zero_label`` (themes scored against the taxonomy's descriptions, sentiment without labels,
``retain.text.zero_label``). The transformer and zero-label modules, and through them torch and
transformers, are imported inside their factories: asking for a TF-IDF model never loads them.

Every model follows the scikit-learn contract: ``fit(texts, y)`` (``y`` a label vector for
sentiment and for single-label themes, a 0/1 indicator matrix in taxonomy order for multi-label
themes; no ``y`` for zero-label models), ``predict_proba`` and ``classes_``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Literal

from retain.config import ConfigError, Taxonomy, TextModelChoice, TextModelConfig

logger = logging.getLogger(__name__)

Task = Literal["sentiment", "themes"]
Kind = Literal["tfidf", "transformer", "zero_label"]
TASKS: tuple[Task, ...] = ("sentiment", "themes")


def tfidf_model(
    task: Task, choice: TextModelChoice, taxonomy: Taxonomy, single_label: bool = False
) -> Any:
    """An unfitted TF-IDF + logistic regression Pipeline for ``task``."""
    from retain.text import tfidf

    settings = TextModelConfig(**choice.tfidf.model_dump())
    if task == "sentiment":
        return tfidf.make_sentiment_model(settings)
    if single_label:
        return tfidf.make_single_label_theme_model(settings)
    return tfidf.make_theme_model(settings)


def transformer_model(
    task: Task, choice: TextModelChoice, taxonomy: Taxonomy, single_label: bool = False
) -> Any:
    """An unfitted ``TransformerTextClassifier`` on ``choice.encoder``, blended with TF-IDF.

    With ``choice.transformer.blend_tfidf`` (the default) the model is a
    ``BlendedTextClassifier`` of the transformer and the TF-IDF model, the weight chosen on
    validation rows carved from the rows it is fitted on.

    ``choice.transformer.params`` are set on it; a name it does not take is a
    :class:`ConfigError` naming the key. The transformer learns labels or an indicator matrix,
    whichever it is fitted on; ``single_label`` only picks the TF-IDF member.
    """
    from retain.text.transformer import BlendedTextClassifier, TransformerTextClassifier

    model = TransformerTextClassifier(encoder=choice.encoder, mode=choice.transformer.mode)
    model = _with_params(model, choice.transformer.params, "model.transformer.params")
    if not choice.transformer.blend_tfidf:
        return model
    tfidf = tfidf_model(task, choice, taxonomy, single_label)
    return BlendedTextClassifier([("transformer", model), ("tfidf", tfidf)])


#: Settings of the single-task transformer that mean nothing to the multi-task one (frozen mode).
_FROZEN_ONLY = ("mode", "tfidf", "C")


def shares_encoder(choice: TextModelChoice) -> bool:
    """Whether sentiment and themes, both labelled, get their transformer from one encoder."""
    return (
        choice.transformer.shared
        and choice.transformer.mode == "fine_tune"
        and "transformer" in candidate_kinds(choice)
    )


def multitask_model(choice: TextModelChoice) -> Any:
    """An unfitted ``MultiTaskTextClassifier`` on ``choice.encoder`` (one encoder, all tasks).

    ``choice.transformer.params`` are set on it, except the frozen-mode ones; a name neither
    transformer model takes is a :class:`ConfigError` naming the key.
    """
    from retain.text.multitask import MultiTaskTextClassifier

    model = MultiTaskTextClassifier(encoder=choice.encoder)
    params = {k: v for k, v in choice.transformer.params.items() if k not in _FROZEN_ONLY}
    return _with_params(model, params, "model.transformer.params")


def shared_transformer_model(
    task: Task,
    multitask: Any,
    choice: TextModelChoice,
    taxonomy: Taxonomy,
    single_label: bool = False,
) -> Any:
    """The transformer model of ``task`` read from a fitted multi-task model; fit it on the task.

    Without ``blend_tfidf`` it is the task's view (its ``fit`` does nothing). With it, a
    ``BlendedTextClassifier`` of the view (prefit) and the TF-IDF model: ``fit(texts, y)`` on
    the task's rows given to the multi-task model fits TF-IDF on the rows the encoder trained on,
    chooses the weight on the rows it held out (inner validation), then refits TF-IDF on all.
    """
    from retain.text.transformer import BlendedTextClassifier

    view = multitask.task(task)
    if not choice.transformer.blend_tfidf:
        return view
    return BlendedTextClassifier(
        [("transformer", view), ("tfidf", tfidf_model(task, choice, taxonomy, single_label))],
        prefit=("transformer",),
        refit=True,
    )


def zero_label_model(
    task: Task, choice: TextModelChoice, taxonomy: Taxonomy, single_label: bool = False
) -> Any:
    """An unfitted zero-label classifier: themes from the taxonomy's descriptions, or sentiment."""
    from retain.text import zero_label

    if task == "themes":
        themes = tuple(theme.model_dump() for theme in taxonomy.themes)
        return zero_label.ZeroLabelThemeClassifier(themes=themes, encoder=choice.encoder)
    return zero_label.ZeroLabelSentimentClassifier(encoder=choice.encoder)


FACTORIES: dict[Kind, Callable[[Task, TextModelChoice, Taxonomy, bool], Any]] = {
    "tfidf": tfidf_model,
    "transformer": transformer_model,
    "zero_label": zero_label_model,
}


def make_text_model(
    kind: Kind,
    task: Task,
    choice: TextModelChoice,
    taxonomy: Taxonomy,
    single_label: bool = False,
) -> Any:
    """An unfitted text model of ``kind`` for ``task`` (``sentiment`` or ``themes``).

    Parameters
    ----------
    kind
        ``tfidf``, ``transformer`` or ``zero_label``.
    task
        ``sentiment`` (multi-class) or ``themes`` (multi-label, taxonomy order).
    choice
        The ``model`` section of the text job config (encoder and per-kind settings).
    taxonomy
        The theme taxonomy (zero-label themes read names and descriptions from it).
    single_label
        Themes as one label per text (fitted on theme ids, probabilities summing to 1) rather
        than an indicator matrix; zero-label models ignore it.

    Raises
    ------
    ImportError
        When the module behind ``kind`` (or torch/transformers) is not available; the message
        names it.
    """
    if kind not in FACTORIES:
        raise ValueError(f"unknown text model kind {kind!r}; known: {', '.join(FACTORIES)}")
    try:
        return FACTORIES[kind](task, choice, taxonomy, single_label)
    except ImportError as error:
        raise ImportError(
            f"the {kind!r} text model for {task} needs a module that is not available: {error}"
        ) from error


def candidate_kinds(choice: TextModelChoice) -> list[Kind]:
    """The kinds a labelled task is trained with: one, or for ``auto`` TF-IDF and the others.

    TF-IDF comes first: it is the reference every other candidate must beat.
    """
    if choice.kind == "auto":
        return ["tfidf", "transformer"]
    return [choice.kind]


def _with_params(model: Any, params: dict[str, Any], key: str) -> Any:
    unknown = sorted(set(params) - set(model.get_params(deep=False)))
    if unknown:
        raise ConfigError(
            f"{key}: {type(model).__name__} takes no setting {unknown}; it takes "
            f"{', '.join(sorted(model.get_params(deep=False)))}"
        )
    return model.set_params(**params)
