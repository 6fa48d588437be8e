"""Personal data kept out of text models: what identifies a person never becomes a feature.

A fitted TF-IDF model stores its vocabulary, and that vocabulary is pickled into the model
artifact. Two things keep people out of it:

- :func:`scrub_pii` replaces e-mail addresses, URLs, phone numbers and long digit runs (account,
  order, card numbers) by placeholder tokens before vectorising. It is the second step of every
  TF-IDF Pipeline (:mod:`retain.text.tfidf`), so training and scoring scrub alike and a pickled
  model scrubs what it is given.
- :func:`customer_vocabulary` keeps a term only when texts of at least ``min_customers``
  distinct customers use it, so a name a customer writes in each of their own messages does not
  enter the vocabulary of the churn text models; ``min_df`` (at least 2 documents) does the same
  for text files without customer ids.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any

__all__ = ["PLACEHOLDERS", "customer_vocabulary", "scrub_pii"]

#: The tokens that stand in for what was scrubbed; each is one word for the TF-IDF tokenizer.
PLACEHOLDERS = ("__email__", "__url__", "__phone__", "__number__")

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_URL = re.compile(r"(?:\bhttps?://|\bwww\.)\S+", re.IGNORECASE)
# Digits with the separators phone numbers are written with: "+1 (555) 010-4477", "07700 900123".
_PHONE_LIKE = re.compile(r"(?<![\w@])\+?\(?\d[\d \t().\-]{5,}\d(?!\w)")
_MIN_PHONE_DIGITS = 7
_DATE = re.compile(r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}")
_LONG_DIGIT_RUN = re.compile(r"\d{5,}")
_HAS_DIGIT = re.compile(r"\d").search


def _phone(match: re.Match[str]) -> str:
    text = match.group(0)
    if _DATE.fullmatch(text):  # "2024-01-15", "15/01/2024": a date, not a person's detail
        return text
    if text.isdigit():  # one bare run: an account or order number as likely as a phone number
        return " __number__ "
    return " __phone__ " if sum(c.isdigit() for c in text) >= _MIN_PHONE_DIGITS else text


def scrub_pii(texts: Iterable[str]) -> list[str]:
    """Texts with e-mail addresses, URLs, phone numbers and long digit runs replaced.

    Parameters
    ----------
    texts
        Strings (missing values already turned into ``""``, as :func:`retain.text.inputs.as_texts`
        does).

    Returns
    -------
    list of str
        The same texts, each match replaced by a placeholder token of :data:`PLACEHOLDERS`: an
        e-mail address by ``__email__``, a URL by ``__url__``, a phone number (7 or more digits
        with spaces, dots, dashes or brackets between them) by ``__phone__``, and any other run
        of 5 or more digits by ``__number__``. Dates ("2024-01-15", "15/01/2024") and shorter
        numbers ("2 days", "£45", "1234") stay.

    Examples
    --------
    >>> scrub_pii(["mail jo.ann@example.com or call +1 (555) 010-4477 about order 88231977"])
    ['mail  __email__  or call  __phone__  about order  __number__ ']
    """
    scrubbed = []
    for text in texts:
        # Each pattern needs a character most texts lack: test for it before running the pattern.
        if "@" in text:
            text = _EMAIL.sub(" __email__ ", text)
        if "://" in text or "www." in text.lower():
            text = _URL.sub(" __url__ ", text)
        if _HAS_DIGIT(text):
            text = _PHONE_LIKE.sub(_phone, text)
            text = _LONG_DIGIT_RUN.sub(" __number__ ", text)
        scrubbed.append(text)
    return scrubbed


def customer_vocabulary(
    texts: Sequence[str],
    customer_ids: Sequence[Any],
    analyzer: Callable[[str], list[str]],
    min_customers: int,
    max_features: int | None = None,
) -> list[str]:
    """The terms used in texts of at least ``min_customers`` distinct customers.

    Parameters
    ----------
    texts
        The texts as the vectorizer receives them (already scrubbed).
    customer_ids
        The customer who wrote each text, aligned with ``texts``.
    analyzer
        Turns a text into its terms: a vectorizer's ``build_analyzer()``.
    min_customers
        Least number of distinct customers whose texts contain a term.
    max_features
        Keep at most this many terms, the most frequent over all texts (ties by term).

    Returns
    -------
    list of str
        The kept terms, sorted; a vectorizer's ``vocabulary``.
    """
    if len(texts) != len(customer_ids):
        raise ValueError(f"{len(texts)} texts but {len(customer_ids)} customer ids")
    terms_of: dict[Any, set[str]] = {}
    frequency: Counter[str] = Counter()
    for text, customer in zip(texts, customer_ids, strict=True):
        terms = analyzer(text)
        frequency.update(terms)
        terms_of.setdefault(customer, set()).update(terms)
    customers = Counter(term for terms in terms_of.values() for term in terms)
    kept = [term for term, count in customers.items() if count >= min_customers]
    if max_features is not None and len(kept) > max_features:
        kept = sorted(kept, key=lambda term: (-frequency[term], term))[:max_features]
    return sorted(kept)
