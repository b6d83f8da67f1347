"""Fingerprints proposed on the Discover page, counted over the data set before they are saved.

Proposals (:func:`quack.discovery.proposals.propose_patterns`) for the responses of a cluster or a
map selection come with their matches over the whole data set per label
(:func:`quack.discovery.proposals.match_counts`), bodies read a batch at a time against the
deadline :data:`quack.discovery.options.SCAN_SECONDS`, before anything is saved to the
user's fingerprint file; a pattern typed on the page is counted the same way.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pandas as pd

from dashboard import jobs, responses, results
from dashboard.loaders import Session
from dashboard.rankings import CONFIG
from quack.discovery.options import SCAN_SECONDS
from quack.discovery.proposals import LABEL_COLUMNS, MatchCounts, match_counts, proposal_rows, propose_patterns

#: Responses of a cluster or selection proposals are drawn from, and other responses they
#: are contrasted with, at most (random samples of more).
MAX_GROUP_ROWS = 2_000
MAX_OTHER_ROWS = 5_000


@dataclass(frozen=True)
class Proposals:
    """Fingerprints proposed for some records and what each matches over the data set.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per proposal, best first: ``pattern``, ``length``, ``group share``
        (of the records' responses holding it), ``precision`` (among those and the other
        responses compared) and the matches among ``censored``, ``undetermined`` and
        ``uncensored`` records of the data set.
    scanned, total : int
        Records whose bodies were searched, and records there are.
    """

    table: pd.DataFrame
    scanned: int
    total: int


def _sample(rows: np.ndarray, most: int, rng: np.random.Generator) -> np.ndarray:
    return rows if len(rows) <= most else np.sort(rng.choice(rows, most, replace=False))


def _bodies_of(s: Session, ids: np.ndarray) -> list[str]:
    return responses.bodies(s.data_dir, ids).tolist()


def _body_batches(s: Session) -> Iterator[list[str]]:
    for frame in responses.batches(s.data_dir, ["body"]):
        yield frame["body"].tolist()


def _bodies_in_batches(s: Session, ids: np.ndarray, size: int = 4096) -> Iterator[list[str]]:
    for start in range(0, len(ids), size):
        yield _bodies_of(s, ids[start : start + size])


def propose(s: Session, labels: np.ndarray, rows: np.ndarray, share: float) -> Proposals:
    """Contrastive proposals for the responses of some records, counted over the whole data set.

    The records among ``rows`` a new fingerprint is for
    (:func:`quack.discovery.proposals.proposal_rows`) are contrasted with a random sample
    of every other record's response. Cached per data set, labels, records and share.

    Raises
    ------
    ValueError
        When the responses share no text to propose, or a proposal cannot be searched in
        bounded time.
    """
    rows = np.asarray(rows, dtype=np.int64)
    key = jobs.proposals_key(s.identity, labels, rows, share)

    def compute(progress: Callable[[int, int], None]) -> Proposals:
        rng = np.random.default_rng(CONFIG.seed)
        group = _sample(proposal_rows(rows, labels), MAX_GROUP_ROWS, rng)
        outside = np.setdiff1d(np.arange(len(labels)), rows, assume_unique=True)
        others = _sample(outside, MAX_OTHER_ROWS, rng)
        found = propose_patterns(_bodies_of(s, group), _bodies_of(s, others), share=share, seed=CONFIG.seed)
        counts = match_counts([p.pattern for p in found], _body_batches(s), labels,
                              deadline=time.monotonic() + SCAN_SECONDS, progress=progress)
        table = counts.table.assign(
            length=[len(p.text) for p in found],
            **{"group share": [p.cluster_share for p in found], "precision": [p.precision for p in found]},
        )
        order = ["pattern", "length", "group share", "precision", *(label.display for label in LABEL_COLUMNS)]
        return Proposals(table[order], counts.scanned, counts.total)

    return results.computed(key, compute, "Counting the proposals' matches over the data set")


def pattern_matches(s: Session, labels: np.ndarray, pattern: str, rows: np.ndarray) -> tuple[MatchCounts, MatchCounts]:
    """A pattern's matches among some records and over the whole data set, per label.

    Searched as a fingerprint is (:func:`quack.discovery.proposals.match_counts`), both counts
    within one deadline of :data:`~quack.discovery.options.SCAN_SECONDS`: past it, each covers
    the records scanned so far.

    Returns
    -------
    (MatchCounts, MatchCounts)
        Among ``rows``, then over every record.

    Raises
    ------
    quack.fingerprints.patterns.PatternError
        One sentence naming the pattern when it is invalid or cannot be searched in bounded time.
    """
    rows = np.asarray(rows, dtype=np.int64)
    deadline = time.monotonic() + SCAN_SECONDS
    source = "the Discover page's pattern box"
    with results.progress_bar("Counting the pattern's matches") as progress:
        among = match_counts([pattern], _bodies_in_batches(s, rows), labels[rows], deadline=deadline, source=source)
        everywhere = match_counts([pattern], _body_batches(s), labels, deadline=deadline, progress=progress,
                                  source=source)
    return among, everywhere


def check_on_data(s: Session, labels: np.ndarray, patterns: list[str]) -> None:
    """Search patterns over the data set as the pattern box does (:func:`pattern_matches`), before a save.

    Raises
    ------
    quack.fingerprints.patterns.PatternError
        One sentence naming the pattern when it is invalid, does not compile in time, or
        runs past the time one text may take.
    """
    patterns = [p for p in patterns if p and p.strip()]
    if not patterns:
        return
    with results.progress_bar("Searching the data set with the fingerprint before saving it") as progress:
        match_counts(patterns, _body_batches(s), labels, deadline=time.monotonic() + SCAN_SECONDS,
                     progress=progress, source="the fingerprint to save")


def fingerprint_names(name: str, count: int) -> list[str]:
    """Names of ``count`` fingerprints saved together: the name alone, or numbered variants of one family."""
    name = name.strip()
    return [name] if count == 1 else [f"{name}_{i}" for i in range(1, count + 1)]


def save_fingerprints(path: Path, name: str, patterns: list[str]) -> list[str]:
    """Add patterns to a user fingerprint file (Censored Planet's format), all or none.

    Several patterns become the numbered variants of one family (``name_1``, ``name_2``,
    ...), as Censored Planet numbers the variants of one page.

    Returns
    -------
    list of str
        The names saved.

    Raises
    ------
    ValueError
        When there is nothing to save, a name is malformed or already in the file, or a
        pattern cannot be searched in bounded time; nothing is written then.
    """
    from quack.fingerprints.labels import read_user_fingerprints, save_user_fingerprint
    from quack.fingerprints.patterns import compile_pattern

    patterns = [p for p in patterns if p and p.strip()]
    if not patterns:
        raise ValueError("Tick a proposal or write a pattern to save a fingerprint.")
    names = fingerprint_names(name, len(patterns))
    taken = {entry["fingerprint"] for entry in read_user_fingerprints(path)} & set(names)
    if taken:
        raise ValueError(f"{path} already has a fingerprint named {sorted(taken)[0]!r}; choose another name.")
    for one, pattern in zip(names, patterns):
        compile_pattern(pattern, f"the new fingerprint {one!r}")
    for one, pattern in zip(names, patterns):
        save_user_fingerprint(path, one, pattern)
    return names
