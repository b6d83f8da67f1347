"""Two- and three-dimensional maps of latent vectors, and neighbours in latent space.

PCA answers at once and serves as the first map; UMAP gives the better map but its
numba code takes several seconds to compile in a fresh process, so `warm_umap` compiles
it in a background thread while the user looks at the PCA map.
"""

from __future__ import annotations

import threading
import warnings

import numpy as np

__all__ = [
    "METRICS",
    "pca",
    "umap_project",
    "fit_sample",
    "umap_at_scale",
    "density",
    "select_region",
    "warm_umap",
    "umap_ready",
    "nearest_neighbors",
    "display_sample",
]

#: Distance metrics offered for UMAP maps and neighbour search.
METRICS = ("euclidean", "cosine", "manhattan", "correlation")

# UMAP's cost grows with the input width; 50 principal components keep almost all of
# the structure of a few-hundred-wide latent and make the fit several times faster.
_UMAP_INPUT_DIMS = 50

# Up to this many records UMAP gets exact neighbours computed here (a few seconds at the
# limit) instead of running its approximate search, whose numba code takes longer to
# compile in a fresh process than the exact search takes to run.
_EXACT_KNN_MAX_ROWS = 100_000
# Distances computed at once in the exact search: 128 MB of float32.
_KNN_BLOCK_VALUES = 1 << 25
# Fitted rows that place the others in a map at scale.
_LANDMARKS = 20_000
# Most rows PCA's components are fitted on; all rows are projected.
_PCA_FIT_ROWS = 200_000

_warm_lock = threading.Lock()
_warm_thread: threading.Thread | None = None
_warm_done = threading.Event()


def _as_matrix(latents: np.ndarray, minimum_rows: int, what: str) -> np.ndarray:
    x = np.asarray(latents, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"{what} needs a 2-D array of latents (rows x features), got shape {x.shape}.")
    if x.shape[0] < minimum_rows:
        raise ValueError(f"{what} needs at least {minimum_rows} records, got {x.shape[0]}.")
    if not np.isfinite(x).all():
        raise ValueError(f"{what} got latents with NaN or infinite values; re-encode the data set.")
    return x


def pca(latents: np.ndarray, n_components: int = 2) -> np.ndarray:
    """Project latents onto their first principal components.

    Parameters
    ----------
    latents : numpy.ndarray
        (N, H) latent vectors.
    n_components : int, optional
        Number of output dimensions, by default 2.

    Returns
    -------
    numpy.ndarray
        (N, n_components) float32 coordinates. Signs are fixed (the largest loading of
        each component is positive), so the same latents always give the same map.
        Beyond 200,000 rows the components are fitted on a fixed random 200,000 of them.

    Raises
    ------
    ValueError
        If there are fewer records than ``n_components + 1`` or the latents are not finite.
    """
    if n_components < 1:
        raise ValueError(f"n_components must be at least 1, got {n_components}.")
    x = _as_matrix(latents, n_components + 1, "PCA")
    from sklearn.decomposition import PCA

    # scikit-learn picks the solver for the shape (for tall latents, the covariance's eigenvectors):
    # 100k x 256 float32 to 2, 16 or 50 components takes 0.13-0.16 s against 3.4 s for a full SVD.
    kept = min(n_components, x.shape[1])
    # Beyond a few hundred thousand rows more rows barely move the components: the fit
    # sees a fixed random subset and every row is projected.
    fitted = x if x.shape[0] <= _PCA_FIT_ROWS else x[np.sort(np.random.default_rng(0).choice(
        x.shape[0], _PCA_FIT_ROWS, replace=False))]
    with np.errstate(divide="ignore", invalid="ignore"):
        # Identical latents have no variance to share out; their map is a single point.
        model = PCA(kept, random_state=0).fit(fitted)
    components = model.components_
    signs = np.sign(components[np.arange(kept), np.abs(components).argmax(axis=1)])
    signs[signs == 0] = 1
    coords = np.zeros((x.shape[0], n_components), dtype=np.float32)
    coords[:, :kept] = model.transform(x) * signs
    return coords


def _distances(queries, x, metric: str):
    """(Q, N) torch distances from each query row to every row of ``x``, in UMAP's units."""
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


def _nearest(queries, reference, k: int, metric: str):
    """Distances to each query's ``k`` nearest reference rows, and their indices (torch tensors)."""
    import torch

    if metric != "euclidean":
        return _distances(queries, reference, metric).topk(k, dim=1, largest=False)
    # Ranked by |r|^2 - 2 q.r, one matrix product and no pass for the square root over
    # every pair: about twice as fast as the full distances, which only the k nearest need.
    # Those are computed from the differences, so a record's exact twin lies at 0.
    score = torch.addmm((reference * reference).sum(dim=1), queries, reference.T, alpha=-2.0)
    nearest = score.topk(k, dim=1, largest=False).indices
    return (queries.unsqueeze(1) - reference[nearest]).norm(dim=2), nearest


def _tensor(x: np.ndarray):
    """A torch view of ``x`` (a copy when ``x`` is read-only, which torch cannot share)."""
    import torch

    return torch.from_numpy(x if x.flags.writeable else x.copy())


def _exact_knn(x: np.ndarray, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``k`` nearest rows, itself first, as UMAP's ``precomputed_knn`` takes them."""
    import torch

    data = _tensor(x)
    n = data.size(0)
    indices, distances = np.empty((n, k), np.int32), np.empty((n, k), np.float32)
    chunk = max(1, _KNN_BLOCK_VALUES // n)
    for start in range(0, n, chunk):
        block = _distances(data[start: start + chunk], data, metric)
        rows = torch.arange(block.size(0))
        # Records repeat, so several rows may lie at distance 0: the record itself comes first.
        block[rows, rows + start] = -1.0
        values, nearest = block.topk(k, dim=1, largest=False)
        values[:, 0] = 0.0
        indices[start: start + chunk], distances[start: start + chunk] = nearest.numpy(), values.numpy()
    return indices, distances


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
        One of `METRICS`, by default "euclidean".
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
    x = _as_matrix(latents, n_components + 2, "UMAP")
    if x.shape[1] > _UMAP_INPUT_DIMS and x.shape[0] > _UMAP_INPUT_DIMS:
        x = pca(x, _UMAP_INPUT_DIMS)
    import umap

    n_neighbors = min(n_neighbors, x.shape[0] - 1)
    knn = _exact_knn(x, n_neighbors, metric) + (None,) if x.shape[0] <= _EXACT_KNN_MAX_ROWS else (None,) * 3
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

    Returns
    -------
    numpy.ndarray
        (N, n_components) float32 coordinates.
    """
    import torch

    x = _as_matrix(latents, n_components + 2, "UMAP")
    if progress is not None:
        progress(0, x.shape[0])
    if not fit_rows or x.shape[0] <= fit_rows:
        coords = umap_project(x, n_components, n_neighbors=n_neighbors, min_dist=min_dist, metric=metric, seed=seed)
        if progress is not None:
            progress(x.shape[0], x.shape[0])
        return coords
    fitted = fit_sample(labels, fit_rows, seed=seed or 0)
    if x.shape[1] > _UMAP_INPUT_DIMS:
        x = pca(x, _UMAP_INPUT_DIMS)
    coords = np.empty((x.shape[0], n_components), dtype=np.float32)
    coords[fitted] = umap_project(x[fitted], n_components, n_neighbors=n_neighbors, min_dist=min_dist,
                                  metric=metric, seed=seed)
    rest = np.setdiff1d(np.arange(x.shape[0]), fitted)
    # Placing a row costs a distance to every reference row; a subset of the fitted rows
    # as landmarks places as well and keeps a million rows within minutes.
    landmarks = np.sort(np.random.default_rng(seed or 0).choice(fitted, min(len(fitted), _LANDMARKS), replace=False))
    reference, placed = _tensor(np.ascontiguousarray(x[landmarks])), torch.from_numpy(coords[landmarks])
    k = min(n_neighbors, len(landmarks))
    chunk = max(1, _KNN_BLOCK_VALUES // len(landmarks))
    for start in range(0, len(rest), chunk):
        rows = rest[start: start + chunk]
        distances, nearest = _nearest(_tensor(np.ascontiguousarray(x[rows])), reference, k, metric)
        # Closer fitted records pull harder; an exact duplicate lands on its twin.
        weights = 1.0 / (distances + 1e-6)
        weights /= weights.sum(dim=1, keepdim=True)
        coords[rows] = (weights.unsqueeze(2) * placed[nearest]).sum(dim=1).numpy()
        if progress is not None:
            progress(len(fitted) + min(start + chunk, len(rest)), x.shape[0])
    return coords


def density(coords: np.ndarray, bins: int = 256, extent: tuple | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Counts of all map points on a grid, for a density layer under the drawn points.

    Parameters
    ----------
    coords : numpy.ndarray
        (N, 2) map coordinates.
    bins : int, optional
        Cells along each axis, by default 256.
    extent : tuple, optional
        ``(x0, x1, y0, y1)``; by default the points' own range.

    Returns
    -------
    tuple of numpy.ndarray
        ``(counts, x_centres, y_centres)``: counts is (bins, bins), rows along y.
    """
    coords = np.asarray(coords, dtype=np.float64)
    if extent is None:
        extent = (coords[:, 0].min(), coords[:, 0].max(), coords[:, 1].min(), coords[:, 1].max()) if len(coords) else (0, 1, 0, 1)
    counts, y_edges, x_edges = np.histogram2d(coords[:, 1], coords[:, 0], bins=bins, range=[extent[2:], extent[:2]])
    return counts, (x_edges[:-1] + x_edges[1:]) / 2, (y_edges[:-1] + y_edges[1:]) / 2


def select_region(coords: np.ndarray, boxes=(), lassos=()) -> np.ndarray:
    """Rows of all map points inside any of the boxes or lasso polygons, drawn or not.

    Parameters
    ----------
    coords : numpy.ndarray
        (N, 2) map coordinates.
    boxes : sequence of (x0, x1, y0, y1)
        Rectangles, corners in any order.
    lassos : sequence of (xs, ys)
        Closed polygons given by their vertices.

    Returns
    -------
    numpy.ndarray
        Sorted row indices.
    """
    x, y = np.asarray(coords[:, 0], dtype=np.float64), np.asarray(coords[:, 1], dtype=np.float64)
    inside = np.zeros(len(x), dtype=bool)
    for x0, x1, y0, y1 in boxes:
        inside |= (x >= min(x0, x1)) & (x <= max(x0, x1)) & (y >= min(y0, y1)) & (y <= max(y0, y1))
    for xs, ys in lassos:
        px, py = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
        if len(px) < 3:
            continue
        # Only points within the polygon's bounding box can lie inside it.
        near = np.flatnonzero((x >= px.min()) & (x <= px.max()) & (y >= py.min()) & (y <= py.max()))
        inside[near[_inside_polygon(x[near], y[near], px, py)]] = True
    return np.flatnonzero(inside).astype(np.int64)


def _inside_polygon(x: np.ndarray, y: np.ndarray, px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """Whether each point lies inside the polygon (even-odd rule), as a boolean mask.

    A point is inside when a ray to its right crosses the edges an odd number of times.
    The points are sorted by y once, so each edge visits only the points level with it:
    a lasso of hundreds of short edges over a million points takes a fraction of a second.
    """
    order = np.argsort(y, kind="stable")
    sy, sx = y[order], x[order]
    odd = np.zeros(len(x), dtype=bool)
    for ax, ay, bx, by in zip(px, py, np.roll(px, -1), np.roll(py, -1)):
        if ay == by:
            continue
        # The edge spans the points with min(ay, by) <= y < max(ay, by).
        start, stop = np.searchsorted(sy, min(ay, by), "left"), np.searchsorted(sy, max(ay, by), "left")
        at = ax + (sy[start:stop] - ay) * (bx - ax) / (by - ay)
        odd[start:stop] ^= sx[start:stop] < at
    inside = np.zeros(len(x), dtype=bool)
    inside[order] = odd
    return inside


def _compile_umap() -> None:
    try:
        rng = np.random.default_rng(0)
        # The same options as the dashboard's maps, so the same compiled code serves them.
        umap_project(rng.normal(size=(256, 8)).astype(np.float32), seed=0)
    finally:
        _warm_done.set()


def warm_umap() -> threading.Thread:
    """Compile UMAP's numba code in a background thread, once per process.

    numba keeps what it can in ``NUMBA_CACHE_DIR`` when that is set before it is first
    imported (the dashboard sets it to its cache folder).

    Returns
    -------
    threading.Thread
        The (daemon) thread doing the work; the same thread on every call.
    """
    global _warm_thread
    with _warm_lock:
        if _warm_thread is None:
            _warm_thread = threading.Thread(target=_compile_umap, name="quack-warm-umap", daemon=True)
            _warm_thread.start()
        return _warm_thread


def umap_ready() -> bool:
    """Whether `warm_umap` has finished, so a UMAP fit starts without compiling.

    Returns
    -------
    bool
        True once the warm-up fit has run (successfully or not).
    """
    return _warm_done.is_set()


def nearest_neighbors(
    latents: np.ndarray, index: int, k: int = 10, metric: str = "euclidean"
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
    x = _as_matrix(latents, 1, "Neighbour search")
    if not 0 <= index < x.shape[0]:
        raise ValueError(f"Record {index} is out of range: the data set has {x.shape[0]} records.")
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}.")
    data = _tensor(x)
    distances = _distances(data[index: index + 1], data, metric)[0].numpy()
    distances[index] = np.inf
    k = min(k, x.shape[0] - 1)
    if k <= 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
    nearest = np.argpartition(distances, k - 1)[:k]
    nearest = nearest[np.argsort(distances[nearest], kind="stable")]
    return nearest.astype(np.int64), distances[nearest].astype(np.float32)


def display_sample(
    labels: np.ndarray, max_points: int = 100_000, seed: int = 0, keep: list[int] | None = None
) -> np.ndarray:
    """Choose which points to draw when there are too many for a fluid map.

    The choice is stratified by label (:func:`fit_sample`), so rare labels such as the
    censored records are drawn whole or nearly so instead of drowned in the common ones;
    a density layer of all points shows where the others lie.

    Parameters
    ----------
    labels : numpy.ndarray
        (N,) label of each point.
    max_points : int, optional
        Most points to draw, by default 100,000.
    seed : int, optional
        Seed of the random choice, by default 0, so the same points stay on the map.
    keep : list of int, optional
        Rows that must be drawn (a chosen record, say).

    Returns
    -------
    numpy.ndarray
        Sorted row indices to draw: all rows when ``N <= max_points``.
    """
    n = len(labels)
    if n <= max_points:
        return np.arange(n, dtype=np.int64)
    chosen = fit_sample(labels, max_points, seed=seed)
    if keep:
        chosen = np.union1d(chosen, np.asarray([k for k in keep if 0 <= k < n], dtype=np.int64))
    return chosen.astype(np.int64)
