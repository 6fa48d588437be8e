"""Feedback text: sentiment and themes, from TF-IDF or transformer models, with or without labels.

Modules: ``inputs`` (texts and theme labels as models take them), ``tfidf`` (TF-IDF + logistic
regression pipelines), ``scoring`` (the feedback-scores table), ``point_in_time`` (scores per
``as_of`` from models fitted before it), ``aspects`` (sentiment per theme: clauses, or (text, theme)
pairs), ``report`` (the text evaluation report, HTML).
"""
