"""What the ranking methods see of a data set, and how it is read: labels, families, latents, losses and counts.

:class:`EvaluationData` holds it; :meth:`EvaluationData.from_dataset` reads a data set's
labels, fingerprint families, token counts (:func:`token_counts`) and hashed word counts
(:func:`text_counts`) in batches, so the text of every row is never in memory at once.
A **family** is a fingerprint name less a trailing ``_<digits>`` (:func:`family_of`),
since Censored Planet numbers the variants of one product's or one country's page.
Both the evaluation (:mod:`quack.discovery.evaluation`) and the methods
(:mod:`quack.discovery.rankers`) read it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Sequence

import numpy as np

from quack.schema import Label

if TYPE_CHECKING:
    from scipy import sparse

__all__ = ["EvaluationData", "family_of", "families_of", "token_counts", "text_counts"]

# Rows read from Parquet at a time when counting tokens and words.
_BATCH_ROWS = 4096
_VARIANT = re.compile(r"_\d+$")
# Hashed text features: enough buckets that collisions between words are rare.
_TEXT_BUCKETS = 2**20


def family_of(name: str, groups: Sequence[str] = ()) -> str:
    """The family of a fingerprint name: its longest prefix in ``groups``, else the name less a trailing ``_<digits>``.

    Parameters
    ----------
    name : str
        A fingerprint name (``a_prod_fortinet_3``).
    groups : sequence of str
        Prefixes that each make one family of every name starting with them.

    Returns
    -------
    str
        ``a_prod_fortinet`` for ``a_prod_fortinet_3``; the prefix itself when one matches.
    """
    matching = [prefix for prefix in groups if prefix and name.startswith(prefix)]
    if matching:
        return max(matching, key=len)
    return _VARIANT.sub("", name)


def token_counts(sequences: Iterable[Sequence[int]], vocab_size: int) -> sparse.csr_matrix:
    """Bag-of-tokens counts: one row per sequence, one column per token id.

    Parameters
    ----------
    sequences : iterable of sequences of int
        Token ids of each record, each below ``vocab_size``.
    vocab_size : int

    Returns
    -------
    scipy.sparse.csr_matrix
        (N, vocab_size) float32 counts.
    """
    from scipy import sparse

    arrays = [np.asarray(s, dtype=np.int64) for s in sequences]
    indptr = np.concatenate([[0], np.cumsum([len(a) for a in arrays], dtype=np.int64)])
    indices = np.concatenate(arrays) if arrays else np.zeros(0, np.int64)
    counts = sparse.csr_matrix(
        (np.ones(len(indices), np.float32), indices, indptr), shape=(len(arrays), vocab_size)
    )
    counts.sum_duplicates()
    return counts


def text_counts(texts: Iterable[str]) -> sparse.csr_matrix:
    """Hashed counts of the words and word pairs of each response text.

    Hashing needs no vocabulary, so batches of a large data set can be counted one at a
    time and stacked; the TF-IDF method (:mod:`quack.discovery.rankers`) weighs them.

    Parameters
    ----------
    texts : iterable of str

    Returns
    -------
    scipy.sparse.csr_matrix
        (N, 2**20) float32 counts.
    """
    from sklearn.feature_extraction.text import HashingVectorizer

    vectorizer = HashingVectorizer(
        n_features=_TEXT_BUCKETS, ngram_range=(1, 2), alternate_sign=False, norm=None, dtype=np.float32
    )
    return vectorizer.transform(list(texts)).tocsr()


@dataclass
class EvaluationData:
    """What the methods see of a data set: labels, families, latents, losses and counts.

    Attributes
    ----------
    labels : numpy.ndarray
        (N,) the data set's labels (censored 1, undetermined 0, uncensored -1).
    families : numpy.ndarray
        (N,) str: the family of a censored row's fingerprint, ``""`` for other rows.
    latents : numpy.ndarray
        (N, H) float32.
    loss : numpy.ndarray
        (N,) reconstruction loss of each row.
    tokens : scipy.sparse.csr_matrix
        (N, V) bag-of-tokens counts (:func:`token_counts`).
    words : scipy.sparse.csr_matrix
        (N, F) hashed word counts of the response text (:func:`text_counts`).
    truth : numpy.ndarray or None
        (N,) str ground truth of each row (``unknown_blockpage``, ...), when known.
    pages : numpy.ndarray or None
        (N,) str page of each row's ground truth (``""`` when it names none).
    """

    labels: np.ndarray
    families: np.ndarray
    latents: np.ndarray
    loss: np.ndarray
    tokens: sparse.csr_matrix
    words: sparse.csr_matrix
    truth: np.ndarray | None = None
    pages: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64)
        self.families = np.asarray(self.families, dtype=object)
        self.latents = np.asarray(self.latents, dtype=np.float32)
        self.loss = np.asarray(self.loss, dtype=np.float64)
        n = len(self.labels)
        shapes = [len(self.families), self.latents.shape[0], len(self.loss), self.tokens.shape[0], self.words.shape[0]]
        if any(size != n for size in shapes):
            raise ValueError(f"Every input of the evaluation needs one entry per row ({n}); got {shapes}.")

    @classmethod
    def from_dataset(
        cls,
        data_dir: str | os.PathLike,
        latents: np.ndarray,
        loss: np.ndarray,
        groups: Sequence[str] = (),
        truth: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> "EvaluationData":
        """Read a data set's labels, fingerprints, tokens and response text in batches.

        Parameters
        ----------
        data_dir : path
            A data set written by ``quack ingest``.
        latents, loss : numpy.ndarray
            The data set's encoding, in row-id order (by any checkpoint: the token counts
            are of the data set's own tokens, as wide as its tokenizer's vocabulary).
        groups : sequence of str
            Family prefixes (:func:`family_of`).
        truth : (numpy.ndarray, numpy.ndarray), optional
            The truth and page of each row (:func:`quack.discovery.evaluation.read_truth`).
        """
        from scipy import sparse

        from quack.data.datafolder import DataFolder

        folder = DataFolder.open(data_dir, require_rows=True)
        vocab_size = folder.tokenizer.vocab_size
        labels, names, tokens, words = [], [], [], []
        for batch in folder.iter_batches(["label", "fingerprint", "tokens", "status", "headers", "body"],
                                         batch_size=_BATCH_ROWS):
            part = batch.to_pydict()
            labels.append(np.asarray(part["label"], dtype=np.int64))
            names.extend(name or "" for name in part["fingerprint"])
            tokens.append(token_counts(part["tokens"], vocab_size))
            words.append(text_counts(
                "\n".join(value or "" for value in fields)
                for fields in zip(part["status"], part["headers"], part["body"])
            ))
        label_array = np.concatenate(labels)
        truth_of, pages = truth if truth is not None else (None, None)
        return cls(label_array, families_of(label_array, names, groups), latents, loss, sparse.vstack(tokens).tocsr(),
                   sparse.vstack(words).tocsr(), truth_of, pages)


def families_of(labels: np.ndarray, names: Sequence[str | None], groups: Sequence[str] = ()) -> np.ndarray:
    """The family of each censored row's fingerprint (:func:`family_of`), ``""`` for the other rows.

    Parameters
    ----------
    labels : numpy.ndarray
        (N,) label of each row.
    names : sequence of str or None
        (N,) the fingerprint stored with each row; a row without one (None, NaN, ``""``) has no family.
    groups : sequence of str
        Family prefixes (:func:`family_of`).

    Returns
    -------
    numpy.ndarray
        (N,) object array of str.
    """
    return np.array([family_of(name, groups) if label == Label.CENSORED and isinstance(name, str) and name else ""
                     for name, label in zip(names, labels)], dtype=object)
