"""Two- and three-dimensional maps of latent vectors: PCA, UMAP, and UMAP at any scale.

PCA answers at once and serves as the first map; UMAP gives the better map but its
numba code takes several seconds to compile in a fresh process (the dashboard fits in a
worker process that compiles it once, before its first map: ``dashboard.worker``).
"""

from __future__ import annotations

import warnings

import numpy as np

from quack.latents.checks import latent_matrix
from quack.latents.neighbours import DISTANCE_BLOCK_VALUES, METRICS, exact_knn, nearest_rows, torch_view

__all__ = [
    "pca",
    "umap_project",
    "fit_sample",
    "umap_at_scale",
]

# UMAP's cost grows with the input width; 50 principal components keep almost all of
# the structure of a few-hundred-wide latent and make the fit several times faster.
_UMAP_INPUT_DIMS = 50

# Up to this many records UMAP gets exact neighbours from `exact_knn` (a few seconds at the
# limit) instead of running its approximate search, whose numba code takes longer to
# compile in a fresh process than the exact search takes to run.
_EXACT_KNN_MAX_ROWS = 100_000
# Fitted rows that place the others in a map at scale.
_LANDMARKS = 20_000


def pca(latents: np.ndarray, n_components: int = 2, fit_rows: int = 200_000) -> np.ndarray:
    """Project latents onto their first principal components.

    Parameters
    ----------
    latents : numpy.ndarray
        (N, H) latent vectors.
    n_components : int, optional
        Number of output dimensions, by default 2.
    fit_rows : int, optional
        Most rows the components are fitted on, by default 200,000; beyond it they are
        fitted on a fixed random ``fit_rows`` of them. Every row is projected.

    Returns
    -------
    numpy.ndarray
        (N, n_components) float32 coordinates. Signs are fixed (the largest loading of
        each component is positive), so the same latents always give the same map.

    Raises
    ------
    ValueError
        If there are fewer records than ``n_components + 1`` or the latents are not finite.
    """
    if n_components < 1:
        raise ValueError(f"n_components must be at least 1, got {n_components}.")
    x = latent_matrix(latents, n_components + 1, "PCA")
    from sklearn.decomposition import PCA

    # scikit-learn picks the solver for the shape (for tall latents, the covariance's eigenvectors):
    # 100k x 256 float32 to 2, 16 or 50 components takes 0.13-0.16 s against 3.4 s for a full SVD.
    kept = min(n_components, x.shape[1])
    # Beyond a few hundred thousand rows more rows barely move the components: the fit
    # sees a fixed random subset and every row is projected.
    fitted = x if x.shape[0] <= fit_rows else x[np.sort(np.random.default_rng(0).choice(
        x.shape[0], fit_rows, replace=False))]
    with np.errstate(divide="ignore", invalid="ignore"):
        # Identical latents have no variance to share out; their map is a single point.
        model = PCA(kept, random_state=0).fit(fitted)
    components = model.components_
    signs = np.sign(components[np.arange(kept), np.abs(components).argmax(axis=1)])
    signs[signs == 0] = 1
    coords = np.zeros((x.shape[0], n_components), dtype=np.float32)
    coords[:, :kept] = model.transform(x) * signs
    return coords



def umap_project(
    latents: np.ndarray,
    n_components: int = 2,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    metric: str = "euclidean",
    seed: int | None = None,
) -> np.ndarray:
    """Project latents with UMAP.

    Wide latents are first reduced to 50 principal components, which keeps the map's
    structure and makes the fit several times faster.

    Parameters
    ----------
    latents : numpy.ndarray
        (N, H) latent vectors.
    n_components : int, optional
        2 or 3, by default 2.
    n_neighbors : int, optional
        Size of the local neighbourhood, by default 15; clipped to N - 1.
    min_dist : float, optional
        How tightly points may pack, in [0, 1], by default 0.1.
    metric : str, optional
        One of :data:`quack.latents.neighbours.METRICS`, by default "euclidean".
    seed : int or None, optional
        Fixes the layout; UMAP then runs single-threaded. None (default) runs in parallel.

    Returns
    -------
    numpy.ndarray
        (N, n_components) float32 coordinates.

    Raises
    ------
    ValueError
        If an option is out of range or there are too few records for a map.
    """
    if n_components not in (2, 3):
        raise ValueError(f"n_components must be 2 or 3, got {n_components}.")
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}.")
    if not 0.0 <= min_dist <= 1.0:
        raise ValueError(f"min_dist must lie between 0 and 1, got {min_dist}.")
    if n_neighbors < 2:
        raise ValueError(f"n_neighbors must be at least 2, got {n_neighbors}.")
    x = latent_matrix(latents, n_components + 2, "UMAP")
    if x.shape[1] > _UMAP_INPUT_DIMS and x.shape[0] > _UMAP_INPUT_DIMS:
        x = pca(x, _UMAP_INPUT_DIMS)
    import umap

    n_neighbors = min(n_neighbors, x.shape[0] - 1)
    knn = exact_knn(x, n_neighbors, metric) + (None,) if x.shape[0] <= _EXACT_KNN_MAX_ROWS else (None,) * 3
    reducer = umap.UMAP(
        n_components=n_components,
        n_neighbors=n_neighbors,
        min_dist=min_dist,
        metric=metric,
        random_state=seed,
        # A fixed seed makes UMAP single-threaded; saying so avoids its warning.
        n_jobs=1 if seed is not None else -1,
        # Measurements repeat, which leaves the neighbour graph in many pieces; the
        # spectral start then fails and falls back to a random one, scattering the map.
        # Starting from the principal components keeps the global layout.
        init="pca" if x.shape[0] > 2 * n_components + 8 else "random",
        precomputed_knn=knn,
        # UMAP's default above 10,000 records; below it UMAP would run 500 epochs,
        # two and a half times as long, for the same clusters.
        n_epochs=200,
    )
    with warnings.catch_warnings():
        # Without UMAP's own search index the reducer cannot ``transform`` new data,
        # which it warns about; maps never do.
        warnings.filterwarnings("ignore", message=r"precomputed_knn\[2\]")
        return np.asarray(reducer.fit_transform(x), dtype=np.float32)


def fit_sample(labels: np.ndarray, size: int, seed: int = 0) -> np.ndarray:
    """Rows to fit a map on when there are too many: at most ``size``, every label represented.

    Each label present gets at least its share of an even split (or all its rows, when it
    has fewer), so the rare censored rows are not drowned by the uncensored ones; the rest
    of ``size`` goes to the labels in proportion to their counts.

    Parameters
    ----------
    labels : numpy.ndarray
        (N,) label of each row.
    size : int
        Most rows to return.
    seed : int, optional
        Seed of the random choice within each label, by default 0.

    Returns
    -------
    numpy.ndarray
        Sorted row indices; all rows when ``N <= size``.
    """
    labels = np.asarray(labels)
    if len(labels) <= size:
        return np.arange(len(labels), dtype=np.int64)
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(labels == value) for value in np.unique(labels)]
    floor = size // (2 * len(groups))
    take = [min(len(g), floor) for g in groups]
    spare = size - sum(take)
    left = np.array([len(g) - t for g, t in zip(groups, take)], dtype=np.float64)
    extra = np.floor(spare * left / left.sum()).astype(int) if left.sum() else np.zeros(len(groups), int)
    chosen = [rng.choice(g, size=t + e, replace=False) for g, t, e in zip(groups, take, extra)]
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def umap_at_scale(
    latents: np.ndarray,
    labels: np.ndarray,
    n_components: int = 2,
    fit_rows: int = 50_000,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    metric: str = "euclidean",
    seed: int | None = 0,
    progress=None,
    project=None,
) -> np.ndarray:
    """A UMAP map of any number of latents: fitted on a bounded sample, the rest placed by it.

    UMAP's cost grows faster than the rows; a map of a million records is fitted on
    :func:`fit_sample` rows and every other record is placed at the distance-weighted mean
    of its ``n_neighbors`` nearest among 20,000 of the fitted records, in batches.

    Parameters
    ----------
    latents : numpy.ndarray
        (N, H) latent vectors.
    labels : numpy.ndarray
        (N,) labels, so the fitted sample keeps every label.
    n_components, n_neighbors, min_dist, metric, seed
        As for :func:`umap_project`.
    fit_rows : int, optional
        Most rows UMAP is fitted on, by default 50,000; 0 or a value of at least N fits
        on everything.
    progress : callable, optional
        Called as ``progress(done, total)``: ``(0, N)`` while UMAP is fitted, then with
        the fitted and placed rows while the other rows are placed, ``(N, N)`` at the end.
    project : callable, optional
        Fits the sample, called as :func:`umap_project` is (the default); the dashboard
        fits in a worker process.

    Returns
    -------
    numpy.ndarray
        (N, n_components) float32 coordinates.
    """
    import torch

    project = umap_project if project is None else project
    x = latent_matrix(latents, n_components + 2, "UMAP")
    if progress is not None:
        progress(0, x.shape[0])
    if not fit_rows or x.shape[0] <= fit_rows:
        coords = project(x, n_components, n_neighbors=n_neighbors, min_dist=min_dist, metric=metric, seed=seed)
        if progress is not None:
            progress(x.shape[0], x.shape[0])
        return coords
    fitted = fit_sample(labels, fit_rows, seed=seed or 0)
    if x.shape[1] > _UMAP_INPUT_DIMS:
        x = pca(x, _UMAP_INPUT_DIMS)
    coords = np.empty((x.shape[0], n_components), dtype=np.float32)
    coords[fitted] = project(x[fitted], n_components, n_neighbors=n_neighbors, min_dist=min_dist,
                             metric=metric, seed=seed)
    rest = np.setdiff1d(np.arange(x.shape[0]), fitted)
    # Placing a row costs a distance to every reference row; a subset of the fitted rows
    # as landmarks places as well and keeps a million rows within minutes.
    landmarks = np.sort(np.random.default_rng(seed or 0).choice(fitted, min(len(fitted), _LANDMARKS), replace=False))
    reference, placed = torch_view(np.ascontiguousarray(x[landmarks])), torch.from_numpy(coords[landmarks])
    k = min(n_neighbors, len(landmarks))
    chunk = max(1, DISTANCE_BLOCK_VALUES // len(landmarks))
    for start in range(0, len(rest), chunk):
        rows = rest[start: start + chunk]
        distances, nearest = nearest_rows(torch_view(np.ascontiguousarray(x[rows])), reference, k, metric)
        # Closer fitted records pull harder; an exact duplicate lands on its twin.
        weights = 1.0 / (distances + 1e-6)
        weights /= weights.sum(dim=1, keepdim=True)
        coords[rows] = (weights.unsqueeze(2) * placed[nearest]).sum(dim=1).numpy()
        if progress is not None:
            progress(len(fitted) + min(start + chunk, len(rest)), x.shape[0])
    return coords
