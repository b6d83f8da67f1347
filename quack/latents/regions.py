"""Regions of a map: the density of all its points, the points inside drawn boxes and
lassos, and which points to draw when there are too many.

A map of a million records draws a sample of them over a density layer of all; a region
the user draws selects every record inside it, drawn or not.
"""

from __future__ import annotations

import numpy as np

from quack.latents.maps import fit_sample

__all__ = ["density", "select_region", "display_sample"]


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
