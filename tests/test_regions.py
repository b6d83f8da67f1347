"""Regions of a map: density of all points, box and lasso selections, the drawn sample."""

import numpy as np

from quack.latents import regions


def test_display_sample_keeps_everything_when_small_and_the_chosen_rows_when_large():
    labels = np.random.default_rng(0).choice([-1, 0, 1], size=1000, p=[0.6, 0.38, 0.02])
    np.testing.assert_array_equal(regions.display_sample(labels[:10], max_points=100), np.arange(10))
    chosen = regions.display_sample(labels, max_points=100, keep=[999, 5])
    assert 90 <= len(chosen) <= 102 and {999, 5} <= set(chosen.tolist())
    assert np.all(np.diff(chosen) > 0)
    np.testing.assert_array_equal(chosen, regions.display_sample(labels, max_points=100, keep=[999, 5]))


def test_display_sample_draws_a_rare_label_whole():
    labels = np.array([1] * 50 + [0] * 5_000 + [-1] * 50_000)
    drawn = regions.display_sample(labels, max_points=3_000)
    assert len(drawn) <= 3_000
    assert (labels[drawn] == 1).sum() == 50, "every censored record is drawn"
    assert (labels[drawn] == 0).sum() >= 500 and (labels[drawn] == -1).sum() >= 500


def test_select_region_counts_points_that_are_not_drawn():
    grid = np.stack(np.meshgrid(np.arange(100.0), np.arange(100.0)), axis=-1).reshape(-1, 2)
    box = regions.select_region(grid, boxes=[(9.5, 19.5, 29.5, 39.5)])
    assert len(box) == 100 and set(grid[box, 0]) == set(range(10, 20))
    # A lasso triangle whose long side runs half a cell above the diagonal y = x.
    triangle = regions.select_region(grid, lassos=[([-1, 50.5, 50.5], [-0.5, -0.5, 51])])
    inside = grid[triangle]
    assert (inside[:, 1] <= inside[:, 0] + 0.5).all() and len(triangle) == sum(min(x + 1, 51) for x in range(51))
    both = regions.select_region(grid, boxes=[(9.5, 19.5, 29.5, 39.5)], lassos=[([-1, 50.5, 50.5], [-0.5, -0.5, 51])])
    assert len(both) == len(np.union1d(box, triangle))


def test_density_counts_every_point_once():
    coords = np.random.default_rng(0).normal(size=(10_000, 2))
    counts, ys, xs = regions.density(coords, bins=64)
    assert counts.shape == (64, 64) and counts.sum() == 10_000 and len(xs) == len(ys) == 64


def _inside_by_every_edge(points: np.ndarray, xs, ys) -> np.ndarray:
    """The even-odd rule edge by edge over every point, as a reference."""
    x, y = points[:, 0], points[:, 1]
    odd = np.zeros(len(points), dtype=bool)
    for ax, ay, bx, by in zip(xs, ys, np.roll(xs, -1), np.roll(ys, -1)):
        with np.errstate(divide="ignore", invalid="ignore"):
            odd ^= ((ay > y) != (by > y)) & (x < ax + (y - ay) * (bx - ax) / (by - ay))
    return np.flatnonzero(odd)


def test_select_region_lasso_of_many_edges_matches_the_rule_edge_by_edge():
    rng = np.random.default_rng(1)
    points = rng.normal(size=(20_000, 2))
    # A wobbly star with 400 vertices, as a hand-drawn lasso has, plus a bow tie that crosses itself.
    angles = np.linspace(0, 2 * np.pi, 400, endpoint=False)
    radius = 1.2 + 0.5 * np.sin(7 * angles) + rng.uniform(-0.05, 0.05, 400)
    star = (radius * np.cos(angles), radius * np.sin(angles))
    bow = ([-2, 2, 2, -2], [-1, 1, -1, 1])
    for xs, ys in (star, bow):
        found = regions.select_region(points, lassos=[(xs, ys)])
        np.testing.assert_array_equal(found, _inside_by_every_edge(points, np.asarray(xs, float), np.asarray(ys, float)))
        assert 0 < len(found) < len(points)
    assert len(regions.select_region(points, lassos=[([0, 1], [0, 1])])) == 0, "two vertices enclose nothing"


def test_density_cells_hold_the_points_at_their_centres():
    coords = np.array([[0.0, 0.0], [0.0, 0.1], [1.0, 1.0]])
    counts, xs, ys = regions.density(coords, bins=2, extent=(0, 1, 0, 1))
    np.testing.assert_allclose(xs, [0.25, 0.75])
    np.testing.assert_allclose(ys, [0.25, 0.75])
    assert counts[0, 0] == 2 and counts[1, 1] == 1 and counts.sum() == 3
    lopsided = regions.density(np.array([[0.0, 0.9], [0.9, 0.0]]), bins=2, extent=(0, 1, 0, 1))[0]
    assert lopsided[1, 0] == 1 and lopsided[0, 1] == 1, "rows run along y"
