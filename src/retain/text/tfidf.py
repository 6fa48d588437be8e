"""TF-IDF + logistic regression text models: sentiment (multi-class) and themes (multi-label).

Both models are plain scikit-learn Pipelines (TF-IDF features, then logistic regression), so
``clone``, grid search and MLflow's sklearn flavour work on them unchanged:

- the sentiment model is fitted on ``(texts, labels)`` with labels in
  ``{"negative", "neutral", "positive"}``; its ``classes_`` are sorted;
- the theme model is fitted on ``(texts, Y)`` with ``Y`` a 0/1 indicator matrix of shape
  ``(n_texts, n_themes)`` whose columns follow the taxonomy order (see
  :func:`retain.text.inputs.theme_indicators`);
- the single-label theme model (one theme per text) is fitted on ``(texts, theme_ids)``; its
  ``classes_`` are the theme ids seen in training, sorted.

Every Pipeline scrubs e-mail addresses, URLs, phone numbers and long digit runs from the texts
before vectorising (:func:`retain.text.pii.scrub_pii`), and a term enters the vocabulary only
when at least ``min_df`` (2 or more) texts use it; :func:`limit_to_customer_vocabulary` further
limits it to terms used by several customers. So the pickled vocabulary holds no contact details
and no word only one text or one customer wrote.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.preprocessing import FunctionTransformer

from retain.config import TextModelConfig
from retain.text.inputs import as_texts
from retain.text.pii import customer_vocabulary, scrub_pii

# Character n-grams within word boundaries catch misspellings, elongations ("sooo"), hashtags
# and word stems that word n-grams miss. Measured with the default settings: on the airline
# tweets (benchmark T1) they lift sentiment accuracy / macro-F1 from 0.799 / 0.727 to
# 0.817 / 0.756, and on SemEval-2014 restaurant categories (T3) theme micro-F1 from 0.839 to
# 0.852. The price is speed: sentiment + themes score about 3,500 tweets/s on one core instead
# of about 28,000 with words alone.
_CHAR_NGRAM_RANGE = (2, 5)
_MAX_ITER = 2000


def _tfidf(analyzer: str, ngram_range: tuple[int, int], config: TextModelConfig) -> TfidfVectorizer:
    return TfidfVectorizer(
        analyzer=analyzer,
        ngram_range=ngram_range,
        sublinear_tf=True,
        min_df=config.min_df,
        max_features=config.max_features,
        strip_accents="unicode",
        dtype=np.float32,
    )


def _text_features(config: TextModelConfig) -> FeatureUnion:
    """Word n-gram TF-IDF plus (if ``config.char_ngrams``) character n-gram TF-IDF, concatenated."""
    parts = [("words", _tfidf("word", (1, config.ngram_max), config))]
    if config.char_ngrams:
        parts.append(("chars", _tfidf("char_wb", _CHAR_NGRAM_RANGE, config)))
    return FeatureUnion(parts)


def make_sentiment_model(config: TextModelConfig | None = None) -> Pipeline:
    """An unfitted sentiment Pipeline: TF-IDF word + character n-grams, logistic regression.

    Parameters
    ----------
    config
        TF-IDF and regularisation settings; the defaults of :class:`TextModelConfig` if omitted.

    Returns
    -------
    Pipeline
        ``fit(texts, labels)`` with labels such as ``negative``/``neutral``/``positive``;
        ``predict_proba(texts)`` has one column per entry of the sorted ``classes_``. Missing
        texts are treated as empty strings.
    """
    config = config or TextModelConfig()
    return _pipeline(config, LogisticRegression(C=config.C, max_iter=_MAX_ITER))


def make_theme_model(config: TextModelConfig | None = None) -> Pipeline:
    """An unfitted multi-label theme Pipeline: TF-IDF, one logistic regression per theme.

    Parameters
    ----------
    config
        TF-IDF and regularisation settings; the defaults of :class:`TextModelConfig` if omitted.

    Returns
    -------
    Pipeline
        ``fit(texts, Y)`` with ``Y`` a 0/1 indicator matrix ``(n_texts, n_themes)`` in taxonomy
        order (:func:`theme_indicators`); ``predict_proba(texts)`` returns ``(n_texts, n_themes)``
        independent probabilities and ``classes_`` is ``[0, ..., n_themes - 1]``. A theme with
        no positive example in the training data gets a constant probability of 0 (scikit-learn
        warns "Label not k is present in all training examples").

    Notes
    -----
    Each theme's regression weighs its rare positives up (``class_weight="balanced"``), so that
    the configured threshold of 0.5 balances precision and recall instead of missing most
    mentions of rare themes: on SemEval-2014 restaurant categories this lifts micro-F1 at 0.5
    from 0.820 to 0.852. The price is that a theme probability is a score, not the frequency
    with which the theme occurs: it overstates rare themes.
    """
    config = config or TextModelConfig()
    return _pipeline(config, OneVsRestClassifier(_balanced_regression(config)))


def make_single_label_theme_model(config: TextModelConfig | None = None) -> Pipeline:
    """An unfitted single-label theme Pipeline: TF-IDF, one multinomial logistic regression.

    Parameters
    ----------
    config
        TF-IDF and regularisation settings; the defaults of :class:`TextModelConfig` if omitted.

    Returns
    -------
    Pipeline
        ``fit(texts, theme_ids)`` with one theme id per text; ``predict_proba(texts)`` sums to 1
        over the sorted ``classes_`` (the ids seen in training).

    Notes
    -----
    Classes are weighed up in inverse proportion to their frequency (``class_weight=
    "balanced"``), as in the multi-label theme model: single-label themes are chosen and
    reported by macro-F1, where a rare theme counts as much as a common one. Measured on a
    stratified quarter of T2's training tweets (airline negative reasons, the test part
    untouched), fitted on the rest: macro-F1 0.540 against 0.466 unweighted, accuracy
    0.674 against 0.672.
    """
    config = config or TextModelConfig()
    return _pipeline(config, _balanced_regression(config))


def _balanced_regression(config: TextModelConfig) -> LogisticRegression:
    return LogisticRegression(C=config.C, max_iter=_MAX_ITER, class_weight="balanced")


def _pipeline(config: TextModelConfig, classifier: Any) -> Pipeline:
    """Texts (missing ones as empty strings), scrubbed, TF-IDF features, then ``classifier``."""
    return Pipeline(
        [
            ("text", FunctionTransformer(as_texts)),
            ("scrub", FunctionTransformer(scrub_pii)),
            ("features", _text_features(config)),
            ("classifier", classifier),
        ]
    )


def limit_to_customer_vocabulary(
    model: Pipeline, texts: Any, customer_ids: Any, min_customers: int
) -> Pipeline:
    """``model`` with each TF-IDF vocabulary limited to terms of ``min_customers`` customers.

    Parameters
    ----------
    model
        An unfitted Pipeline of this module; it is not modified.
    texts
        The texts it will be fitted on.
    customer_ids
        The customer who wrote each text, aligned with ``texts``.
    min_customers
        Least number of distinct customers whose texts use a term (see
        :func:`retain.text.pii.customer_vocabulary`); the vectorizers' ``max_features`` still
        applies.

    Returns
    -------
    Pipeline
        A clone whose vectorizers have a fixed ``vocabulary``; fit it on the same texts.

    Raises
    ------
    ValueError
        When no term is used by ``min_customers`` customers (too few customers to learn from).
    """
    from sklearn.base import clone

    limited = clone(model)
    prepared = scrub_pii(as_texts(texts))
    ids = list(customer_ids)
    for name, vectorizer in limited.named_steps["features"].transformer_list:
        vocabulary = customer_vocabulary(
            prepared, ids, vectorizer.build_analyzer(), min_customers, vectorizer.max_features
        )
        if not vocabulary:
            raise ValueError(
                f"no {name} term is used in the texts of {min_customers} or more customers "
                f"({len(set(ids))} customers wrote the {len(prepared)} texts)"
            )
        vectorizer.set_params(vocabulary=vocabulary)
    return limited
