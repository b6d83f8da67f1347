"""Fingerprints proposed from the responses of a group of records, and counted over a data set.

A fingerprint worth contributing matches the blockpage and nothing else:
:func:`propose_patterns` looks for the shortest literal texts that most of a group's
responses share and that the responses known to be uncensored lack, and
:func:`match_counts` checks proposals over a whole data set, label by label, before they
are saved, reading the bodies a batch at a time. A group's proposals are made from the
records :func:`proposal_rows` names. Saving a pattern and labeling a data set again with it
live in :mod:`quack.fingerprints.labels`, beside the fingerprints they extend.
"""

from __future__ import annotations

import math
import os
import re
import time
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import pandas as pd

from quack.schema import Label

__all__ = ["LABEL_COLUMNS", "proposal_rows", "Proposal", "propose_patterns", "MatchCounts", "match_counts",
           "count_matches"]

#: The labels a summary or a count table has a column for, in the order they are shown.
LABEL_COLUMNS = Label.ordered()

# Responses looked at when finding the text a group shares (each proposal's share of the
# group is then counted on every response of it), and other responses counted (a random
# sample when there are more: count_matches then checks the whole data set).
_MAX_CLUSTER_SAMPLE = 200
_MAX_OTHER_SAMPLE = 5000
# Candidate texts checked exactly, shortest and rarest elsewhere first.
_EXACT_CHECKS = 400
# Responses whose candidate pieces are collected: the ones holding the most common grams.
_REFERENCES = 3


def proposal_rows(members: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The records of a group that a fingerprint is proposed from: its undetermined ones, all of them when none is.

    A new fingerprint is for what the fingerprints do not decide yet; a group the
    fingerprints decided entirely (a censored family, say) is proposed from as it is.

    Parameters
    ----------
    members : numpy.ndarray
        Row indices of the group (a cluster, a selection).
    labels : numpy.ndarray
        (N,) label of every row.

    Returns
    -------
    numpy.ndarray
        int64 row indices, a subset of ``members`` in their order.
    """
    members = np.asarray(members, dtype=np.int64)
    undetermined = members[np.asarray(labels)[members] == Label.UNDETERMINED]
    return undetermined if len(undetermined) else members


def _literal_pattern(text: str) -> str:
    """A regular expression that matches exactly ``text``, written to read well in a fingerprint file."""
    # Spaces need no escape outside verbose mode, and control characters read better as
    # \r, \n, \t than as an escaped raw character in a fingerprint file.
    escaped = re.escape(text).replace("\\ ", " ")
    return escaped.replace("\\\r", "\\r").replace("\\\n", "\\n").replace("\\\t", "\\t")


@dataclass(frozen=True)
class Proposal:
    """A literal fingerprint pattern and how well it tells a group from the other responses.

    Attributes
    ----------
    pattern : str
        The regular expression: ``text`` escaped, so it matches that text alone and runs in
        linear time in any engine.
    text : str
        The literal text.
    cluster_share : float
        Share of the group's responses that contain it.
    other_share : float
        Share of the other responses (the uncensored ones, say) that contain it.
    precision : float
        Of all the given responses that contain it, the share that are the group's.
    """

    pattern: str
    text: str
    cluster_share: float
    other_share: float
    precision: float


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


def _pieces(text: str, common: set[str], elsewhere: Counter, min_length: int,
            max_length: int) -> Iterator[tuple[float, int, str]]:
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


def _check_proposal_options(share: float, min_length: int, max_length: int, top: int) -> None:
    if not 0.0 < share <= 1.0:
        raise ValueError(f"share must lie in (0, 1], got {share}.")
    if not 1 <= min_length <= max_length:
        raise ValueError(
            f"The pattern lengths must satisfy 1 <= min_length <= max_length, got {min_length} and {max_length}."
        )
    if top < 1:
        raise ValueError(f"top must be at least 1, got {top}.")


def _with_text(cluster_texts: Iterable[str | None], max_chars: int) -> list[str]:
    """The group's responses that have text, each cut at ``max_chars``."""
    texts = [str(t)[:max_chars] for t in cluster_texts if t and str(t).strip()]
    if not texts:
        raise ValueError("None of the chosen responses has any text to build a pattern from (timeouts, resets and "
                         "discard probes have none); choose responses with a body.")
    return texts


def _common_grams(sample: list[str], share: float, min_length: int) -> set[str]:
    """The grams of ``min_length`` characters that at least ``share`` of the sampled responses hold."""
    needed = max(1, math.ceil(share * len(sample)))
    frequency = Counter(gram for text in sample for gram in _grams(text, min_length))
    common = {gram for gram, n in frequency.items() if n >= needed}
    if not common:
        raise ValueError(
            f"The chosen responses share no text of at least {min_length} characters in {share:.0%} of them; "
            "lower the share or write the pattern by hand."
        )
    return common


def _candidates(sample: list[str], others: list[str], common: set[str], min_length: int,
                max_length: int) -> list[tuple[str, float]]:
    """The pieces worth checking exactly, rarest elsewhere and shortest first: (piece, rarest gram elsewhere)."""
    elsewhere = Counter(gram for text in others for gram in _grams(text, min_length) & common)
    # The responses holding the most common grams hold the candidates; a few suffice.
    references = sorted(sample, key=lambda t: (-len(_grams(t, min_length) & common), len(t)))[:_REFERENCES]
    found: dict[str, tuple[float, int]] = {}
    for reference in references:
        for rarest, length, piece in _pieces(reference, common, elsewhere, min_length, max_length):
            found.setdefault(piece, (rarest, length))
    ordered = sorted(found, key=lambda piece: (*found[piece], piece))[:_EXACT_CHECKS]
    return [(piece, found[piece][0]) for piece in ordered]


def _measured(candidates: list[tuple[str, float]], texts: list[str], others: list[str],
              share: float) -> list[Proposal]:
    """The candidates that ``share`` of every group response holds, counted exactly, best first."""
    needed = math.ceil(share * len(texts))
    found = []
    for piece, rarest in candidates:
        in_cluster = sum(piece in text for text in texts)
        if in_cluster < needed:
            continue
        # A piece one of whose grams no other response holds is in none of them.
        in_others = 0 if rarest == 0 else sum(piece in text for text in others)
        found.append(Proposal(
            pattern=_literal_pattern(piece), text=piece, cluster_share=in_cluster / len(texts),
            other_share=in_others / len(others) if others else 0.0, precision=in_cluster / (in_cluster + in_others),
        ))
    # Among equals, a text that begins and ends with a letter or digit reads as words,
    # not as a piece of markup, and comes first.
    found.sort(key=lambda p: (-p.precision, -p.cluster_share, (not p.text[0].isalnum()) + (not p.text[-1].isalnum()),
                              len(p.text), p.text))
    return found


def _distinct(found: list[Proposal], top: int) -> list[Proposal]:
    """The first ``top`` proposals none of which overlaps a better one."""
    chosen: list[Proposal] = []
    for proposal in found:
        if any(_overlap(proposal.text, other.text) for other in chosen):
            continue
        chosen.append(proposal)
        if len(chosen) == top:
            break
    return chosen


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
    """Propose fingerprints: the shortest literal texts a group shares and the other responses lack.

    Every proposal occurs in at least ``share`` of the group's responses; among those,
    the ones found in the fewest other responses come first (by precision), then the ones
    found in more of the group, then those that begin and end with a letter or digit,
    then the shorter. A short literal is one a new variant of
    the page is likely to keep; the other responses, typically the ones the fingerprints
    call uncensored and those of the other clusters, keep it from matching ordinary pages.
    A piece neither follows nor precedes a letter or digit directly, so a proposal does
    not start or end inside a word. No two proposals share a run of half the shorter one's length, so each comes
    from another place of the page. Shares are counted on every group response and on up to 5,000 other
    responses (a random sample of more); :func:`count_matches` then checks a whole data set.

    Parameters
    ----------
    cluster_texts : list of str
        Responses a fingerprint should match (a group's: :func:`proposal_rows`).
    other_texts : list of str
        Responses it should not match: the uncensored ones, and best also every response
        outside the group, since few uncensored responses have a body to compare with.
    share : float, optional
        Smallest share of the group's responses a proposal must occur in, by default 0.8.
    min_length, max_length : int, optional
        Length of a proposal's text, by default 8 to 120 characters.
    top : int, optional
        Most proposals returned, by default 5.
    max_chars : int, optional
        Only the first ``max_chars`` characters of each response are read, by default 4000.
    seed : int, optional
        Which responses are sampled when the group has more than 200, or the others more than 5,000.

    Returns
    -------
    list of Proposal
        Best first; possibly fewer than ``top``.

    Raises
    ------
    ValueError
        If an argument is out of range, no group response has text, or the responses
        share no text of ``min_length`` characters.
    """
    _check_proposal_options(share, min_length, max_length, top)
    texts = _with_text(cluster_texts, max_chars)
    rng = np.random.default_rng(seed)
    sample = _sample(texts, _MAX_CLUSTER_SAMPLE, rng)
    others = _sample([str(t)[:max_chars] for t in other_texts if t], _MAX_OTHER_SAMPLE, rng)
    common = _common_grams(sample, share, min_length)
    candidates = _candidates(sample, others, common, min_length, max_length)
    chosen = _distinct(_measured(candidates, texts, others, share), top)
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

    compiled = [compile_pattern(pattern, source, deadline=deadline) for pattern in patterns]
    labels = np.asarray(labels)
    label_index = np.full(len(labels), -1, dtype=np.int64)
    for i, label in enumerate(LABEL_COLUMNS):
        label_index[labels == label] = i
    hits = np.zeros((len(compiled), len(LABEL_COLUMNS)), dtype=np.int64)
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
                found[p] = np.bincount(where[matched & (where >= 0)], minlength=len(LABEL_COLUMNS))
        except PatternTimeout:
            if deadline is None or time.monotonic() < deadline:
                raise
            break
        hits += found
        scanned += len(texts)
        if progress is not None:
            progress(scanned, len(labels))
    names = [label.display for label in LABEL_COLUMNS]
    table = pd.DataFrame(hits, columns=names)
    table.insert(0, "pattern", list(patterns))
    rows = np.bincount(label_index[:scanned][label_index[:scanned] >= 0], minlength=len(LABEL_COLUMNS))
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
    names = [label.display for label in LABEL_COLUMNS]
    rows = counts.rows.to_numpy()
    matches = counts.table.loc[0, names].to_numpy(dtype=np.int64)
    return pd.DataFrame({
        "label": names,
        "rows": rows,
        "matches": matches,
        "share": [m / r if r else 0.0 for m, r in zip(matches, rows)],
    })
