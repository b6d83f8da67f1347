"""Find censorship the fingerprints missed: clusters of the latent space, undetermined
records ranked by a classifier, and fingerprint patterns proposed from their responses.

Saving a proposed pattern and labeling a data set again with it live in
:mod:`quack.labels`, beside the fingerprints they extend.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from quack.projection import pca
from quack.schema import Label

__all__ = ["cluster_latents", "cluster_summary", "rank_candidates", "propose_pattern"]

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


def _common_of_length(texts: list[str], length: int, needed: int) -> str | None:
    seen: set[str] = set()
    first = texts[0]
    for start in range(len(first) - length + 1):
        piece = first[start : start + length]
        if piece in seen or not piece.strip():
            continue
        seen.add(piece)
        if sum(piece in t for t in texts) >= needed:
            return piece
    return None


def propose_pattern(bodies: list[str], min_length: int = 8, share: float = 1.0, max_chars: int = 4000) -> str:
    """Propose a fingerprint pattern: the longest text common to the responses, escaped.

    Parameters
    ----------
    bodies : list of str
        Responses that should all match (those of one cluster, say).
    min_length : int, optional
        Shortest acceptable common text, by default 8 characters, so the pattern is
        specific enough to use.
    share : float, optional
        Fraction of the responses that must contain the text, by default 1.0 (all);
        lower it when a cluster holds a few unrelated responses.
    max_chars : int, optional
        Only the first ``max_chars`` characters of each response are compared, by
        default 4000: blockpages announce themselves early.

    Returns
    -------
    str
        A regular expression (Python ``re`` syntax, literal text escaped) that matches
        at least ``share`` of the responses.

    Raises
    ------
    ValueError
        If no response has text, or the responses share no text of ``min_length``
        characters.
    """
    texts = [str(b)[:max_chars] for b in bodies if b and str(b).strip()]
    if not texts:
        raise ValueError("None of the chosen responses has any text to build a pattern from.")
    if not 0.0 < share <= 1.0:
        raise ValueError(f"share must lie in (0, 1], got {share}.")
    needed = max(1, int(np.ceil(share * len(texts))))
    # With share < 1 the first response may be an outlier; try the shortest few.
    candidates = sorted(texts, key=len)[: len(texts) - needed + 1]
    best: str | None = None
    for first in candidates:
        ordered = [first] + [t for t in texts if t is not first]
        low, high = min_length, len(first)
        found = None
        # A common text of length L contains one of every shorter length, so the
        # longest length can be found by bisection.
        while low <= high:
            mid = (low + high) // 2
            piece = _common_of_length(ordered, mid, needed)
            if piece is not None:
                found, low = piece, mid + 1
            else:
                high = mid - 1
        if found is not None and (best is None or len(found) > len(best)):
            best = found
    if best is None:
        raise ValueError(
            f"The chosen responses share no text of at least {min_length} characters; write the pattern by hand."
        )
    # Spaces need no escape outside verbose mode, and control characters read better as
    # \r, \n, \t than as an escaped raw character in a fingerprint file.
    escaped = re.escape(best.strip()).replace("\\ ", " ")
    return escaped.replace("\\\r", "\\r").replace("\\\n", "\\n").replace("\\\t", "\\t")
