"""Find censorship the fingerprints missed: clusters of the latent space, undetermined
records ranked by a classifier, and fingerprint patterns proposed from their responses.

A fingerprint worth contributing matches the blockpage and nothing else:
:func:`propose_patterns` looks for the shortest literal texts that most of a cluster's
responses share and that the responses known to be uncensored lack, and
:func:`match_counts` checks proposals over a whole data set, label by label, before they
are saved, reading the bodies a batch at a time. Saving a pattern and labeling a data set again with it live in
:mod:`quack.fingerprints.labels`, beside the fingerprints they extend.
"""

from __future__ import annotations

import math
import os
import re
import time
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from quack.latents.projection import pca
from quack.schema import Label

__all__ = ["cluster_latents", "cluster_summary", "rank_candidates", "Proposal",
           "propose_patterns", "MatchCounts", "match_counts", "count_matches"]

# HDBSCAN's neighbour search degrades to brute force in hundreds of dimensions; the
# first principal components keep the cluster structure and make it fast.
_CLUSTER_DIMS = 16
# The label columns of a cluster summary, in the order they are shown.
_LABEL_COLUMNS = (Label.CENSORED, Label.UNDETERMINED, Label.UNCENSORED)


def cluster_latents(latents: np.ndarray, min_cluster_size: int = 25, min_samples: int | None = None) -> np.ndarray:
    """Group latents into dense clusters with scikit-learn's HDBSCAN.

    Parameters
    ----------
    latents : numpy.ndarray
        (N, H) latent vectors.
    min_cluster_size : int, optional
        Smallest group that counts as a cluster, by default 25.
    min_samples : int or None, optional
        How conservative the clustering is; None (default) uses ``min_cluster_size``.

    Returns
    -------
    numpy.ndarray
        (N,) int cluster number of each record, -1 for records in no cluster.

    Raises
    ------
    ValueError
        If ``min_cluster_size`` is below 2 or larger than the data set.
    """
    from sklearn.cluster import HDBSCAN

    x = np.asarray(latents, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"Clustering needs a 2-D array of latents, got shape {x.shape}.")
    if min_cluster_size < 2:
        raise ValueError(f"The smallest cluster size must be at least 2, got {min_cluster_size}.")
    if x.shape[0] < min_cluster_size:
        raise ValueError(
            f"The smallest cluster size ({min_cluster_size}) is larger than the data set ({x.shape[0]} records)."
        )
    if x.shape[1] > _CLUSTER_DIMS and x.shape[0] > _CLUSTER_DIMS:
        x = pca(x, _CLUSTER_DIMS)
    model = HDBSCAN(min_cluster_size=min_cluster_size, min_samples=min_samples, copy=True)
    return model.fit_predict(x).astype(np.int64)


def cluster_summary(
    clusters: np.ndarray, labels: np.ndarray, latents: np.ndarray, texts: list[str] | np.ndarray
) -> pd.DataFrame:
    """Describe each cluster: its size, label mix and most typical response.

    Parameters
    ----------
    clusters : numpy.ndarray
        (N,) cluster numbers from `cluster_latents` (-1 = no cluster).
    labels : numpy.ndarray
        (N,) labels: censored 1, undetermined 0, uncensored -1.
    latents : numpy.ndarray
        (N, H) latent vectors.
    texts : sequence of str
        (N,) the response text of each record.

    Returns
    -------
    pandas.DataFrame
        One row per cluster (noise left out), largest first, with columns ``cluster``,
        ``size``, ``censored``, ``undetermined``, ``uncensored``, ``undetermined_share``,
        ``representative`` (the row index closest to the cluster's centre) and
        ``representative_text``.
    """
    clusters = np.asarray(clusters)
    labels = np.asarray(labels)
    x = np.asarray(latents, dtype=np.float32)
    rows = []
    for c in np.unique(clusters):
        if c < 0:
            continue
        members = np.flatnonzero(clusters == c)
        centre = x[members].mean(axis=0)
        representative = int(members[np.argmin(((x[members] - centre) ** 2).sum(axis=1))])
        member_labels = labels[members]
        rows.append(
            {
                "cluster": int(c),
                "size": int(members.size),
                **{label.display: int((member_labels == label).sum()) for label in _LABEL_COLUMNS},
                "undetermined_share": float((member_labels == Label.UNDETERMINED).mean()),
                "representative": representative,
                "representative_text": str(texts[representative]),
            }
        )
    columns = ["cluster", "size", *(label.display for label in _LABEL_COLUMNS),
               "undetermined_share", "representative", "representative_text"]
    table = pd.DataFrame(rows, columns=columns)
    return table.sort_values(["size", "cluster"], ascending=[False, True], ignore_index=True)


def rank_candidates(probabilities: np.ndarray, labels: np.ndarray, top: int | None = None) -> np.ndarray:
    """Rank undetermined records by their probability of censorship.

    Parameters
    ----------
    probabilities : numpy.ndarray
        (N,) probability of censorship of each record.
    labels : numpy.ndarray
        (N,) labels; only undetermined records (0) are ranked.
    top : int or None, optional
        Keep only the first ``top``; None (default) keeps all.

    Returns
    -------
    numpy.ndarray
        Row indices, most likely censored first (ties in row order).
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    undetermined = np.flatnonzero(np.asarray(labels) == Label.UNDETERMINED)
    order = undetermined[np.argsort(-probabilities[undetermined], kind="stable")]
    return order if top is None else order[:top]


def _literal_pattern(text: str) -> str:
    """A regular expression that matches exactly ``text``, written to read well in a fingerprint file."""
    # Spaces need no escape outside verbose mode, and control characters read better as
    # \r, \n, \t than as an escaped raw character in a fingerprint file.
    escaped = re.escape(text).replace("\\ ", " ")
    return escaped.replace("\\\r", "\\r").replace("\\\n", "\\n").replace("\\\t", "\\t")


@dataclass(frozen=True)
class Proposal:
    """A literal fingerprint pattern and how well it tells a cluster from the other responses.

    Attributes
    ----------
    pattern : str
        The regular expression: ``text`` escaped, so it matches that text alone and runs in
        linear time in any engine.
    text : str
        The literal text.
    cluster_share : float
        Share of the cluster's responses that contain it.
    other_share : float
        Share of the other responses (the uncensored ones, say) that contain it.
    precision : float
        Of all the given responses that contain it, the share that are the cluster's.
    """

    pattern: str
    text: str
    cluster_share: float
    other_share: float
    precision: float


# Responses looked at when finding the text a cluster shares (each proposal's cluster
# share is then counted on every response of the cluster), and other responses counted
# (a random sample when there are more: count_matches then checks the whole data set).
_MAX_CLUSTER_SAMPLE = 200
_MAX_OTHER_SAMPLE = 5000
# Candidate texts checked exactly, shortest and rarest elsewhere first.
_EXACT_CHECKS = 400


def _grams(text: str, length: int) -> set[str]:
    return {text[i : i + length] for i in range(len(text) - length + 1)}


def _starts_word(text: str, i: int) -> bool:
    return not text[i].isspace() and (i == 0 or not text[i - 1].isalnum())


def _ends_word(text: str, j: int) -> bool:
    return not text[j - 1].isspace() and (j == len(text) or not text[j].isalnum())


def _overlap(a: str, b: str) -> bool:
    """Whether two pieces share a run of half the shorter one's length: the same place of a page, shifted."""
    from difflib import SequenceMatcher

    longest = SequenceMatcher(None, a, b, autojunk=False).find_longest_match(0, len(a), 0, len(b)).size
    return 2 * longest >= min(len(a), len(b))


def _sample(texts: list[str], most: int, rng: np.random.Generator) -> list[str]:
    if len(texts) <= most:
        return texts
    return [texts[i] for i in np.sort(rng.choice(len(texts), most, replace=False))]


def _candidates(text: str, common: set[str], elsewhere: Counter, min_length: int, max_length: int):
    """Pieces of ``text`` made of common grams, from word edge to word edge: (rarest elsewhere, length, piece).

    A piece occurs in a response only if each of its grams does, so the fewest other
    responses holding one of its grams bounds from above how many hold the piece.
    """
    m = min_length
    inside = [text[i : i + m] in common for i in range(len(text) - m + 1)]
    i = 0
    while i < len(inside):
        if not inside[i]:
            i += 1
            continue
        first = i
        while i < len(inside) and inside[i]:
            i += 1
        run_start, run_end = first, i - 1 + m  # the run's text is text[run_start:run_end]
        for s in range(run_start, run_end - m + 1):
            if not _starts_word(text, s):
                continue
            rarest = math.inf
            for e in range(s + m, min(s + max_length, run_end) + 1):
                rarest = min(rarest, elsewhere[text[e - m : e]])
                if _ends_word(text, e):
                    yield rarest, e - s, text[s:e]


def propose_patterns(
    cluster_texts: list[str],
    other_texts: list[str],
    share: float = 0.8,
    min_length: int = 8,
    max_length: int = 120,
    top: int = 5,
    max_chars: int = 4000,
    seed: int = 0,
) -> list[Proposal]:
    """Propose fingerprints: the shortest literal texts a cluster shares and the other responses lack.

    Every proposal occurs in at least ``share`` of the cluster's responses; among those,
    the ones found in the fewest other responses come first (by precision), then the ones
    found in more of the cluster, then those that begin and end with a letter or digit,
    then the shorter. A short literal is one a new variant of
    the page is likely to keep; the other responses, typically the ones the fingerprints
    call uncensored and those of the other clusters, keep it from matching ordinary pages.
    A piece neither follows nor precedes a letter or digit directly, so a proposal does
    not start or end inside a word. No two proposals share a run of half the shorter one's length, so each comes
    from another place of the page. Shares are counted on every cluster response and on up to 5,000 other
    responses (a random sample of more); :func:`count_matches` then checks a whole data set.

    Parameters
    ----------
    cluster_texts : list of str
        Responses a fingerprint should match (one cluster's).
    other_texts : list of str
        Responses it should not match: the uncensored ones, and best also every response
        outside the cluster, since few uncensored responses have a body to compare with.
    share : float, optional
        Smallest share of the cluster's responses a proposal must occur in, by default 0.8.
    min_length, max_length : int, optional
        Length of a proposal's text, by default 8 to 120 characters.
    top : int, optional
        Most proposals returned, by default 5.
    max_chars : int, optional
        Only the first ``max_chars`` characters of each response are read, by default 4000.
    seed : int, optional
        Which responses are sampled when the cluster has more than 200, or the others more than 5,000.

    Returns
    -------
    list of Proposal
        Best first; possibly fewer than ``top``.

    Raises
    ------
    ValueError
        If an argument is out of range, no cluster response has text, or the responses
        share no text of ``min_length`` characters.
    """
    if not 0.0 < share <= 1.0:
        raise ValueError(f"share must lie in (0, 1], got {share}.")
    if not 1 <= min_length <= max_length:
        raise ValueError(
            f"The pattern lengths must satisfy 1 <= min_length <= max_length, got {min_length} and {max_length}."
        )
    if top < 1:
        raise ValueError(f"top must be at least 1, got {top}.")
    texts = [str(t)[:max_chars] for t in cluster_texts if t and str(t).strip()]
    if not texts:
        raise ValueError("None of the chosen responses has any text to build a pattern from (timeouts, resets and "
                         "discard probes have none); choose responses with a body.")
    rng = np.random.default_rng(seed)
    sample = _sample(texts, _MAX_CLUSTER_SAMPLE, rng)
    others = _sample([str(t)[:max_chars] for t in other_texts if t], _MAX_OTHER_SAMPLE, rng)
    needed = max(1, math.ceil(share * len(sample)))
    frequency = Counter(gram for text in sample for gram in _grams(text, min_length))
    common = {gram for gram, n in frequency.items() if n >= needed}
    if not common:
        raise ValueError(
            f"The chosen responses share no text of at least {min_length} characters in {share:.0%} of them; "
            "lower the share or write the pattern by hand."
        )
    elsewhere = Counter(gram for text in others for gram in _grams(text, min_length) & common)
    # The responses holding the most common grams hold the candidates; a few suffice.
    references = sorted(sample, key=lambda t: (-len(_grams(t, min_length) & common), len(t)))[:3]
    candidates = {}
    for reference in references:
        for rarest, length, piece in _candidates(reference, common, elsewhere, min_length, max_length):
            candidates.setdefault(piece, (rarest, length))
    ordered = sorted(candidates, key=lambda piece: (*candidates[piece], piece))[:_EXACT_CHECKS]
    needed_all = math.ceil(share * len(texts))
    found = []
    for piece in ordered:
        in_cluster = sum(piece in text for text in texts)
        if in_cluster < needed_all:
            continue
        # A piece one of whose grams no other response holds is in none of them.
        in_others = 0 if candidates[piece][0] == 0 else sum(piece in text for text in others)
        found.append(Proposal(
            pattern=_literal_pattern(piece), text=piece, cluster_share=in_cluster / len(texts),
            other_share=in_others / len(others) if others else 0.0, precision=in_cluster / (in_cluster + in_others),
        ))
    # Among equals, a text that begins and ends with a letter or digit reads as words,
    # not as a piece of markup, and comes first.
    found.sort(key=lambda p: (-p.precision, -p.cluster_share, (not p.text[0].isalnum()) + (not p.text[-1].isalnum()),
                              len(p.text), p.text))
    chosen: list[Proposal] = []
    for proposal in found:
        if any(_overlap(proposal.text, other.text) for other in chosen):
            continue
        chosen.append(proposal)
        if len(chosen) == top:
            break
    if not chosen:
        raise ValueError(
            f"No text of {min_length} to {max_length} characters occurs in {share:.0%} of the chosen responses; "
            "lower the share or write the pattern by hand."
        )
    return chosen


@dataclass(frozen=True)
class MatchCounts:
    """How many rows of each label some patterns match, over the rows scanned.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per pattern, in the order given: ``pattern`` and the matches among
        ``censored``, ``undetermined`` and ``uncensored`` rows.
    rows : pandas.Series
        Rows scanned per label (same column names), so a share can be read off.
    scanned, total : int
        Rows scanned and rows there are; fewer scanned when the deadline came first.
    """

    table: pd.DataFrame
    rows: pd.Series
    scanned: int
    total: int

    @property
    def complete(self) -> bool:
        """Whether every row was scanned."""
        return self.scanned == self.total


def match_counts(
    patterns: Sequence[str],
    bodies: Iterable[Sequence[str | None]],
    labels: np.ndarray,
    deadline: float | None = None,
    progress: Callable[[int, int], None] | None = None,
    source: str = "the proposed fingerprint",
) -> MatchCounts:
    """Count the rows of each label that each pattern matches, bodies streamed a batch at a time.

    Every pattern is searched as a fingerprint is (:mod:`quack.fingerprints.labels`): compiled by
    :func:`quack.fingerprints.patterns.compile_pattern`, with DOTALL, unanchored, in bounded time.
    Only one batch of bodies is in memory at a time; a proposal worth contributing
    matches many undetermined rows and no uncensored one.

    Parameters
    ----------
    patterns : sequence of str
        Regular expressions (proposals' ``pattern``).
    bodies : iterable of sequences of str or None
        Every row's body in row order, one batch at a time.
    labels : numpy.ndarray
        (N,) label of each row, in the same order.
    deadline : float, optional
        A :func:`time.monotonic` time after which scanning stops; the counts then cover
        the batches scanned (``scanned`` < ``total``).
    progress : callable, optional
        Called as ``progress(rows_scanned, total)`` after each batch.
    source : str
        How an error names the patterns.

    Returns
    -------
    MatchCounts

    Raises
    ------
    quack.fingerprints.patterns.PatternError
        When a pattern is invalid or cannot be searched in bounded time.
    """
    from quack.fingerprints.patterns import PatternTimeout, compile_pattern

    compiled = [compile_pattern(pattern, source) for pattern in patterns]
    labels = np.asarray(labels)
    label_index = np.full(len(labels), -1, dtype=np.int64)
    for i, label in enumerate(_LABEL_COLUMNS):
        label_index[labels == label] = i
    hits = np.zeros((len(compiled), len(_LABEL_COLUMNS)), dtype=np.int64)
    scanned = 0
    for batch in bodies:
        if deadline is not None and time.monotonic() >= deadline:
            break
        texts = [body or "" for body in batch]
        where = label_index[scanned : scanned + len(texts)]
        found = np.zeros_like(hits)
        try:
            for p, pattern in enumerate(compiled):
                matched = np.fromiter((bool(t) and pattern.search(t, deadline=deadline) for t in texts), bool,
                                      count=len(texts))
                found[p] = np.bincount(where[matched & (where >= 0)], minlength=len(_LABEL_COLUMNS))
        except PatternTimeout:
            if deadline is None or time.monotonic() < deadline:
                raise
            break
        hits += found
        scanned += len(texts)
        if progress is not None:
            progress(scanned, len(labels))
    names = [label.display for label in _LABEL_COLUMNS]
    table = pd.DataFrame(hits, columns=names)
    table.insert(0, "pattern", list(patterns))
    rows = np.bincount(label_index[:scanned][label_index[:scanned] >= 0], minlength=len(_LABEL_COLUMNS))
    return MatchCounts(table, pd.Series(rows, index=names), scanned, len(labels))


def count_matches(pattern: str, data_dir: str | os.PathLike, batch_rows: int = 4096) -> pd.DataFrame:
    """How many rows of each label a pattern matches over a whole data set (:func:`match_counts`).

    The pattern is searched in the stored body of each row (its first
    :data:`quack.data.tokenizer.FIELD_CHARS` characters), read ``batch_rows`` at a time.

    Parameters
    ----------
    pattern : str
        A regular expression (a proposal's ``pattern``).
    data_dir : path
        A data set written by ``quack ingest``.
    batch_rows : int, optional
        Rows read at a time, so that no more text than this is in memory at once.

    Returns
    -------
    pandas.DataFrame
        One row per label (censored, undetermined, uncensored) with ``label``, ``rows``,
        ``matches`` and ``share`` (matches / rows).

    Raises
    ------
    ValueError
        When the folder is not a data set or the pattern cannot be searched in bounded time.
    """
    from quack.data.datafolder import DataFolder

    folder = DataFolder.open(data_dir)
    labels = folder.read_rows(["label"])["label"].to_numpy()
    batches = (batch.column("body").to_pylist() for batch in folder.iter_batches(["body"], batch_size=batch_rows))
    counts = match_counts([pattern], batches, labels)
    names = [label.display for label in _LABEL_COLUMNS]
    rows = counts.rows.to_numpy()
    matches = counts.table.loc[0, names].to_numpy(dtype=np.int64)
    return pd.DataFrame({
        "label": names,
        "rows": rows,
        "matches": matches,
        "share": [m / r if r else 0.0 for m, r in zip(matches, rows)],
    })
