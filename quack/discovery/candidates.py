"""The Discover page's candidate list: undetermined records ranked, near-identical ones as one candidate.

A ranking of records shows a researcher the same template again and again: one blockpage
served for hundreds of domains fills the first screen. :func:`collapse_candidates` groups
the undetermined records by template (:func:`quack.discovery.collapse.template_key`) into
one candidate each, scored by its best record and carrying its record count, countries,
vantage points and domains; then it re-orders the first candidates by maximal marginal
relevance (MMR) over the records' features, so a candidate much like one already listed
(another variant of one product's page) gives way to a different template that scores
nearly as high. :func:`candidate_list` reads what it needs from a data set in batches;
the ``quack candidates`` command and the Discover page both call it, so they list the
same candidates. :func:`rows_like` gives back every record of one candidate.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from quack.discovery.collapse import template_keys
from quack.schema import Label

if TYPE_CHECKING:
    from scipy import sparse

__all__ = ["CANDIDATE_COLUMNS", "DIVERSITY", "POOL", "collapse_candidates", "candidate_list", "read_templates",
           "rows_like"]

#: Weight of a candidate's likeness to those already listed against its score (MMR's
#: 1 - lambda); 0 orders by score alone.
DIVERSITY = 0.3
#: Candidates, by score, that the re-ranking reorders; the rest follow in score order, so
#: its cost stays bounded on a scan of millions of records.
POOL = 500
#: Distinct values listed per candidate before "and N more".
_LISTED = 5
_BATCH_ROWS = 8192
#: The columns of the list, in order.
CANDIDATE_COLUMNS = ["rank", "record", "score", "records", "countries", "vantage_points", "domains", "template"]


def _listing(values: pd.Series) -> str:
    names = sorted({str(v) for v in values if isinstance(v, str) and v})
    more = len(names) - _LISTED
    return ", ".join(names[:_LISTED]) + (f" and {more} more" if more > 0 else "")


def _unit_rows(features: np.ndarray | sparse.spmatrix, rows: np.ndarray) -> np.ndarray:
    """The rows of ``features`` as dense vectors of length one (zero rows stay zero)."""
    picked = features[rows]
    dense = np.asarray(picked.todense() if hasattr(picked, "todense") else picked, dtype=np.float64)
    norms = np.linalg.norm(dense, axis=1, keepdims=True)
    return dense / np.where(norms > 0, norms, 1.0)


def _relevance(scores: np.ndarray) -> np.ndarray:
    """Scores mapped onto [0, 1] over the re-ranked candidates (1 the best; ties stay ties, non-finite 0).

    By score, not by rank: a rank spreads near-equal scores over the whole range, and a
    template unlike the rest but scoring near zero would climb above many that score high.
    """
    finite = np.isfinite(scores)
    if not finite.any():
        return np.zeros(len(scores))
    low, high = scores[finite].min(), scores[finite].max()
    if high <= low:
        return finite.astype(np.float64)
    return np.where(finite, (scores - low) / (high - low), 0.0)


def _mmr(order: np.ndarray, scores: np.ndarray, vectors: np.ndarray, diversity: float) -> np.ndarray:
    """``order`` (best first) re-ordered greedily: relevance by score, less the likeness to those chosen."""
    n = len(order)
    relevance = _relevance(scores[order])
    likeness = np.zeros(n)
    left = np.ones(n, dtype=bool)
    chosen = []
    for _ in range(n):
        gain = np.where(left, (1.0 - diversity) * relevance - diversity * likeness, -np.inf)
        pick = int(np.argmax(gain))
        chosen.append(pick)
        left[pick] = False
        likeness = np.maximum(likeness, vectors @ vectors[pick])
    return order[np.asarray(chosen, dtype=np.int64)]


def collapse_candidates(
    scores: np.ndarray,
    labels: np.ndarray,
    keys: np.ndarray,
    meta: pd.DataFrame | None = None,
    features: np.ndarray | sparse.spmatrix | None = None,
    top: int | None = None,
    diversity: float = DIVERSITY,
    pool: int = POOL,
) -> pd.DataFrame:
    """The undetermined records as candidates: one per template, best first.

    Parameters
    ----------
    scores : numpy.ndarray
        (N,) each record's score, higher likelier censored (NaN ranks last).
    labels : numpy.ndarray
        (N,) labels; only undetermined records (0) are listed.
    keys : numpy.ndarray
        (N,) each record's template (:func:`quack.discovery.collapse.template_keys`); only
        the undetermined records' keys are read.
    meta : pandas.DataFrame, optional
        (N rows) ``country``, ``vp`` and ``domain`` of each record, for the listing.
    features : array or sparse matrix, optional
        (N, F) what makes two templates alike (latents, text counts); None skips the re-ranking.
    top : int, optional
        Keep the first ``top`` candidates; None keeps them all.
    diversity : float
        MMR's weight of likeness, in [0, 1).
    pool : int
        Candidates the re-ranking reorders.

    Returns
    -------
    pandas.DataFrame
        :data:`CANDIDATE_COLUMNS`: rank (1 first), record (row of the best record), score,
        records (how many records the template holds), countries, vantage_points and
        domains (each the count of distinct values), template (the key).

    Raises
    ------
    ValueError
        When the arrays differ in length or ``diversity`` is outside [0, 1).
    """
    scores = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=-np.inf)
    labels = np.asarray(labels)
    if not len(scores) == len(labels) == len(keys):
        raise ValueError(f"Scores, labels and templates need one entry per record; got {len(scores)}, "
                         f"{len(labels)} and {len(keys)}.")
    if not 0.0 <= diversity < 1.0:
        raise ValueError(f"The diversity weight must be at least 0 and below 1, got {diversity}.")
    rows = np.flatnonzero(labels == Label.UNDETERMINED)
    if not len(rows):
        return pd.DataFrame({column: [] for column in CANDIDATE_COLUMNS})
    # Best record first (ties in row order), so each template's first row is its best.
    rows = rows[np.lexsort((rows, -scores[rows]))]
    group_keys = np.asarray(keys, dtype=object)[rows]
    codes = pd.factorize(pd.Series(group_keys))[0]
    _, first = np.unique(codes, return_index=True)
    first = np.sort(first)
    order = rows[first]
    if features is not None and diversity > 0 and len(order) > 1:
        head = order[:pool]
        order = np.concatenate([_mmr(head, scores, _unit_rows(features, head), diversity), order[pool:]])
    if top is not None:
        order = order[:top]
    listed = pd.Series(np.asarray(keys, dtype=object)[order])
    members = pd.DataFrame({"template": group_keys, "row": rows})
    members = members[members["template"].isin(set(listed))]
    if meta is not None:
        for column in ("country", "vp", "domain"):
            members[column] = meta[column].to_numpy()[members["row"].to_numpy()] if column in meta else ""
    else:
        members["country"] = members["vp"] = members["domain"] = ""
    grouped = members.groupby("template", sort=False)
    counts = grouped.size()
    distinct = grouped[["country", "vp", "domain"]].nunique()
    countries = grouped["country"].agg(_listing)
    return pd.DataFrame({
        "rank": np.arange(1, len(order) + 1),
        "record": order,
        "score": scores[order],
        "records": counts.reindex(listed).to_numpy(),
        "countries": countries.reindex(listed).to_numpy(),
        "vantage_points": distinct["vp"].reindex(listed).to_numpy(),
        "domains": distinct["domain"].reindex(listed).to_numpy(),
        "template": listed.to_numpy(),
    })


def rows_like(keys: np.ndarray, labels: np.ndarray, template: str) -> np.ndarray:
    """Every undetermined record of one candidate's template, in row order: "show all N like this"."""
    return np.flatnonzero((np.asarray(keys, dtype=object) == template) & (np.asarray(labels) == Label.UNDETERMINED))


def read_templates(data_dir: str | os.PathLike, labels: np.ndarray) -> tuple[np.ndarray, pd.DataFrame]:
    """Each record's template key and its ``country``, ``vp`` and ``domain``, read in batches.

    Only undetermined records get a key (the others ``""``): the list holds no other.
    """
    from quack.data.datafolder import DataFolder

    folder = DataFolder.open(data_dir, require_rows=True)
    keys, meta = [], []
    done = 0
    for batch in folder.iter_batches(["status", "body", "country", "vp", "domain"], batch_size=_BATCH_ROWS):
        part = batch.to_pandas()
        ranked = labels[done:done + len(part)] == Label.UNDETERMINED
        batch_keys = np.full(len(part), "", dtype=object)
        batch_keys[ranked] = template_keys(part["status"][ranked], part["body"][ranked])
        keys.append(batch_keys)
        meta.append(part[["country", "vp", "domain"]])
        done += len(part)
    return np.concatenate(keys) if keys else np.zeros(0, dtype=object), pd.concat(meta, ignore_index=True)


def candidate_list(
    data_dir: str | os.PathLike,
    scores: np.ndarray,
    labels: np.ndarray,
    features: np.ndarray | sparse.spmatrix | None = None,
    top: int | None = None,
    diversity: float = DIVERSITY,
) -> tuple[pd.DataFrame, np.ndarray]:
    """The candidate list of a data set ranked by ``scores`` (:func:`collapse_candidates`), and the keys.

    Parameters
    ----------
    data_dir : path
        A data set written by ``quack ingest``.
    scores, labels : numpy.ndarray
        (N,) in row-id order.
    features : array or sparse matrix, optional
        (N, F) for the re-ranking; the Discover page and ``quack candidates`` give the latents.
    top : int, optional
    diversity : float

    Returns
    -------
    (pandas.DataFrame, numpy.ndarray)
        The list and every record's template key, for :func:`rows_like`.
    """
    labels = np.asarray(labels)
    keys, meta = read_templates(data_dir, labels)
    if len(keys) != len(labels):
        raise ValueError(f"The data set {data_dir} has {len(keys)} records and the ranking {len(labels)}; rank "
                         "the data set it was built from.")
    return collapse_candidates(scores, labels, keys, meta, features, top=top, diversity=diversity), keys
