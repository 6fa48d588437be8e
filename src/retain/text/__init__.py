"""Feedback text: sentiment and themes, from TF-IDF or transformer models, with or without labels.

Modules: ``inputs`` (texts and theme labels as models take them), ``tfidf`` (TF-IDF + logistic
regression pipelines), ``scoring`` (the feedback-scores table), ``point_in_time`` (scores per
``as_of`` from models fitted before it), ``encoder`` (sentence embeddings), ``zero_label``
(themes and sentiment from a taxonomy or prototype phrases, self-trained on unlabelled texts),
``discovery`` (themes proposed from unlabelled texts, as taxonomy YAML).
"""
