"""Distances and nearest neighbours in latent space, computed exactly on torch in blocks.

Maps take their neighbours from here too: up to 100,000 records :func:`exact_knn` runs
in a few seconds, faster than UMAP's approximate search compiles in a fresh process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from quack.latents.checks import latent_matrix

if TYPE_CHECKING:
    import torch

__all__ = [
    "METRICS",
    "DISTANCE_BLOCK_VALUES",
    "pairwise_distances",
    "nearest_rows",
    "torch_view",
    "exact_knn",
    "nearest_neighbors",
    "identical_rows",
]

#: Distance metrics offered for UMAP maps and neighbour search.
METRICS = ("euclidean", "cosine", "manhattan", "correlation")

#: Distances computed at once when many rows are searched: 128 MB of float32.
DISTANCE_BLOCK_VALUES = 1 << 25


def pairwise_distances(queries: torch.Tensor, x: torch.Tensor, metric: str) -> torch.Tensor:
    """Distances from each query row to every row of ``x``, in UMAP's units.

    Parameters
    ----------
    queries : torch.Tensor
        (Q, H) float32 query rows.
    x : torch.Tensor
        (N, H) float32 rows.
    metric : str
        One of `METRICS`.

    Returns
    -------
    torch.Tensor
        (Q, N) distances.
    """
    import torch

    if metric in ("cosine", "correlation"):
        if metric == "correlation":
            queries, x = queries - queries.mean(dim=1, keepdim=True), x - x.mean(dim=1, keepdim=True)
        unit_q, unit_x = torch.nn.functional.normalize(queries, dim=1), torch.nn.functional.normalize(x, dim=1)
        return (1.0 - unit_q @ unit_x.T).clamp_(min=0.0)
    if metric == "manhattan":
        return torch.cdist(queries, x, p=1.0)
    # As a matrix product the distances run several times faster than cdist's own loop.
    return torch.cdist(queries, x, p=2.0, compute_mode="use_mm_for_euclid_dist")


def nearest_rows(
    queries: torch.Tensor, reference: torch.Tensor, k: int, metric: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each query's ``k`` nearest reference rows.

    Parameters
    ----------
    queries : torch.Tensor
        (Q, H) float32 query rows.
    reference : torch.Tensor
        (N, H) float32 rows searched, N >= k.
    k : int
        How many nearest rows.
    metric : str
        One of `METRICS`.

    Returns
    -------
    tuple of torch.Tensor
        (Q, k) distances and (Q, k) indices into ``reference``, nearest first.
    """
    import torch

    if metric != "euclidean":
        return pairwise_distances(queries, reference, metric).topk(k, dim=1, largest=False)
    # Ranked by |r|^2 - 2 q.r, one matrix product and no pass for the square root over
    # every pair: about twice as fast as the full distances, which only the k nearest need.
    # Those are computed from the differences, so a record's exact twin lies at 0.
    score = torch.addmm((reference * reference).sum(dim=1), queries, reference.T, alpha=-2.0)
    nearest = score.topk(k, dim=1, largest=False).indices
    return (queries.unsqueeze(1) - reference[nearest]).norm(dim=2), nearest


def torch_view(x: np.ndarray) -> torch.Tensor:
    """A torch tensor sharing ``x``'s memory, or a copy when ``x`` is read-only.

    Parameters
    ----------
    x : numpy.ndarray
        Any array; latents read from disk are often read-only, which torch cannot share.

    Returns
    -------
    torch.Tensor
        The same values as ``x``.
    """
    import torch

    return torch.from_numpy(x if x.flags.writeable else x.copy())


def exact_knn(
    x: np.ndarray, k: int, metric: str, block_values: int = DISTANCE_BLOCK_VALUES
) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``k`` nearest rows, itself first, as UMAP's ``precomputed_knn`` takes them.

    Parameters
    ----------
    x : numpy.ndarray
        (N, H) float32 rows.
    k : int
        Neighbours per row, the row itself included.
    metric : str
        One of `METRICS`.
    block_values : int, optional
        Most distances held at once, by default `DISTANCE_BLOCK_VALUES`; the rows are
        searched in blocks of ``block_values // N``.

    Returns
    -------
    tuple of numpy.ndarray
        (N, k) int32 indices and (N, k) float32 distances, nearest first; column 0 is
        each row itself at distance 0, even where other rows repeat it.
    """
    import torch

    data = torch_view(x)
    n = data.size(0)
    indices, distances = np.empty((n, k), np.int32), np.empty((n, k), np.float32)
    chunk = max(1, block_values // n)
    for start in range(0, n, chunk):
        block = pairwise_distances(data[start: start + chunk], data, metric)
        rows = torch.arange(block.size(0))
        # Records repeat, so several rows may lie at distance 0: the record itself comes first.
        block[rows, rows + start] = -1.0
        values, nearest = block.topk(k, dim=1, largest=False)
        values[:, 0] = 0.0
        indices[start: start + chunk], distances[start: start + chunk] = nearest.numpy(), values.numpy()
    return indices, distances


def identical_rows(latents: np.ndarray, index: int) -> np.ndarray:
    """Rows other than ``index`` whose latent vector equals the query's exactly.

    Records that flatten to the same few tokens (an echo or discard measurement with no
    status, headers or body) share one latent; every distance among them is 0, so a list
    of the nearest ranks them in no meaningful order.

    Returns
    -------
    numpy.ndarray
        (M,) row indices, ascending.
    """
    x = latent_matrix(latents, 1, "Neighbour search")
    if not 0 <= index < x.shape[0]:
        raise ValueError(f"Record {index} is out of range: the data set has {x.shape[0]} records.")
    same = (x == x[index]).all(axis=1)
    same[index] = False
    return np.flatnonzero(same)


def nearest_neighbors(
    latents: np.ndarray, index: int, k: int = 10, metric: str = "euclidean", apart: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Find the records closest to one record in latent space.

    Parameters
    ----------
    latents : numpy.ndarray
        (N, H) latent vectors.
    index : int
        Row of the query record.
    k : int, optional
        How many neighbours, by default 10 (fewer when the data set is smaller).
    metric : str, optional
        One of `METRICS`, by default "euclidean".
    apart : bool, optional
        Leave out the rows of :func:`identical_rows` too, so that the neighbours are the
        nearest records whose latent differs from the query's.

    Returns
    -------
    tuple of numpy.ndarray
        Row indices (k,) of the neighbours, nearest first, the query itself left out,
        and their distances (k,).

    Raises
    ------
    ValueError
        If ``index`` is out of range or the metric is unknown.
    """
    x = latent_matrix(latents, 1, "Neighbour search")
    if not 0 <= index < x.shape[0]:
        raise ValueError(f"Record {index} is out of range: the data set has {x.shape[0]} records.")
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}.")
    data = torch_view(x)
    distances = pairwise_distances(data[index: index + 1], data, metric)[0].numpy()
    distances[index] = np.inf
    left_out = 1
    if apart:
        ties = identical_rows(x, index)
        distances[ties] = np.inf
        left_out += len(ties)
    k = min(k, x.shape[0] - left_out)
    if k <= 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
    nearest = np.argpartition(distances, k - 1)[:k]
    nearest = nearest[np.argsort(distances[nearest], kind="stable")]
    return nearest.astype(np.int64), distances[nearest].astype(np.float32)
