"""Find censorship the fingerprints missed: clusters of the latent space and undetermined records ranked.

:func:`cluster_latents` groups records whose latents lie close; :func:`cluster_summary`
describes each group by its label mix and its most typical response, and
:func:`rank_candidates` orders the undetermined records by a method's score. Fingerprints
proposed from a cluster's responses are in :mod:`quack.discovery.proposals`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from quack.discovery.proposals import LABEL_COLUMNS, proposal_rows
from quack.latents.maps import pca
from quack.schema import Label

__all__ = ["cluster_latents", "cluster_summary", "rank_candidates"]

# HDBSCAN's neighbour search degrades to brute force in hundreds of dimensions; the
# first principal components keep the cluster structure and make it fast.
_CLUSTER_DIMS = 16


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
        ``representative`` and ``representative_text``: of the records a fingerprint is
        proposed from (:func:`quack.discovery.proposals.proposal_rows`), the one closest to
        the cluster's centre, so the response shown is one of those a proposal is made of.
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
        candidates = proposal_rows(members, labels)
        representative = int(candidates[np.argmin(((x[candidates] - centre) ** 2).sum(axis=1))])
        member_labels = labels[members]
        rows.append(
            {
                "cluster": int(c),
                "size": int(members.size),
                **{label.display: int((member_labels == label).sum()) for label in LABEL_COLUMNS},
                "undetermined_share": float((member_labels == Label.UNDETERMINED).mean()),
                "representative": representative,
                "representative_text": str(texts[representative]),
            }
        )
    columns = ["cluster", "size", *(label.display for label in LABEL_COLUMNS),
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
