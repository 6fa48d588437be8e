"""Feedback text: sentiment and themes, from TF-IDF or transformer models, with or without labels.

Modules: ``inputs`` (texts and theme labels as models take them), ``tfidf`` (TF-IDF + logistic
regression pipelines), ``encoder`` (sentence embeddings), ``transformer`` (fine-tuned or frozen
encoder classifiers, blends), ``zero_label`` (themes and sentiment from a taxonomy or prototype
phrases, self-trained on unlabelled texts), ``discovery`` (themes proposed from unlabelled texts,
as taxonomy YAML), ``aspects`` (sentiment per theme: clauses, or (text, theme) pairs),
``models`` (one factory per model kind), ``training`` (the text job's phases), ``bundle`` and
``scoring`` (scores per text and per feedback), ``cache`` (inference cache), ``point_in_time``
(scores per ``as_of`` from models fitted before it), ``report`` (the evaluation report, HTML).
"""
