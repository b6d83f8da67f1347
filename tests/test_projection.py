"""Maps of the latent space and neighbour search."""

import threading
import warnings

import numpy as np
import pytest

from quack.latents import projection


def two_blobs(n=120, h=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, h)).astype(np.float32)
    x[: n // 2] += 6.0
    return x


def test_pca_separates_two_groups_on_the_first_axis():
    x = two_blobs()
    coords = projection.pca(x, 2)
    assert coords.shape == (120, 2) and coords.dtype == np.float32
    first, second = coords[:60, 0], coords[60:, 0]
    assert first.min() > second.max() or first.max() < second.min()


def test_pca_is_deterministic_and_centred():
    x = two_blobs()
    a, b = projection.pca(x, 3), projection.pca(x.copy(), 3)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(a.mean(axis=0), 0, atol=1e-3)


def test_pca_equals_the_svd_of_the_centred_latents_with_fixed_signs():
    x = two_blobs(n=300, h=32, seed=4)
    x[:, 3] *= 4.0
    centred = x.astype(np.float64) - x.mean(axis=0, dtype=np.float64)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    components = vt[:3] * np.sign(vt[:3][np.arange(3), np.abs(vt[:3]).argmax(axis=1)])[:, None]
    np.testing.assert_allclose(projection.pca(x, 3), centred @ components.T, rtol=1e-3, atol=1e-3)


def test_pca_of_identical_or_narrow_latents():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(projection.pca(np.ones((10, 4), np.float32), 2), np.zeros((10, 2)))
    narrow = projection.pca(np.arange(6, dtype=np.float32).reshape(6, 1), 2)
    assert narrow.shape == (6, 2) and not narrow[:, 1].any()
    np.testing.assert_allclose(np.abs(narrow[:, 0]), [2.5, 1.5, 0.5, 0.5, 1.5, 2.5])


def test_pca_rejects_bad_input_with_a_sentence():
    with pytest.raises(ValueError, match="at least 3 records"):
        projection.pca(np.zeros((2, 4)), 2)
    with pytest.raises(ValueError, match="NaN"):
        projection.pca(np.full((5, 4), np.nan), 2)
    with pytest.raises(ValueError, match="2-D"):
        projection.pca(np.zeros(5), 2)


def test_umap_maps_neighbours_close_together():
    x = two_blobs(n=200)
    coords = projection.umap_project(x, 2, n_neighbors=10, seed=0)
    assert coords.shape == (200, 2)
    centre_a, centre_b = coords[:100].mean(axis=0), coords[100:].mean(axis=0)
    spread = max(coords[:100].std(), coords[100:].std())
    assert np.linalg.norm(centre_a - centre_b) > 2 * spread


def test_umap_three_dimensions_and_same_seed_same_map():
    x = two_blobs(n=80, h=8)
    a = projection.umap_project(x, 3, n_neighbors=8, seed=1)
    b = projection.umap_project(x, 3, n_neighbors=8, seed=1)
    assert a.shape == (80, 3)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"n_components": 4}, "2 or 3"),
        ({"metric": "hamming-ish"}, "metric"),
        ({"min_dist": 2.0}, "min_dist"),
        ({"n_neighbors": 1}, "n_neighbors"),
    ],
)
def test_umap_rejects_options_out_of_range(options, message):
    with pytest.raises(ValueError, match=message):
        projection.umap_project(two_blobs(n=30, h=4), **options)


def brute_force(x, metric):
    """Every pairwise distance, written out from the definitions UMAP uses."""
    if metric == "manhattan":
        return np.abs(x[:, None] - x[None]).sum(axis=2)
    if metric in ("cosine", "correlation"):
        if metric == "correlation":
            x = x - x.mean(axis=1, keepdims=True)
        unit = x / np.linalg.norm(x, axis=1, keepdims=True)
        return 1.0 - unit @ unit.T
    return np.sqrt(((x[:, None] - x[None]) ** 2).sum(axis=2))


@pytest.mark.parametrize("metric", projection.METRICS)
def test_exact_neighbours_match_brute_force_with_each_record_first(metric):
    x = np.random.default_rng(3).normal(size=(90, 6)).astype(np.float64)
    x[10] = x[11] = x[12]  # repeated records lie at distance 0 from each other
    indices, distances = projection._exact_knn(x.astype(np.float32), 5, metric)
    full = brute_force(x, metric)
    assert indices.shape == (90, 5) and distances.shape == (90, 5)
    np.testing.assert_array_equal(indices[:, 0], np.arange(90))
    assert np.all(distances[:, 0] == 0) and np.all(np.diff(distances, axis=1) >= -1e-6)
    for row in range(90):
        np.testing.assert_allclose(distances[row, 1:], full[row, indices[row, 1:]], atol=1e-4)
        # The distance to the last neighbour kept is the fourth smallest to any other row.
        others = np.delete(full[row], row)
        np.testing.assert_allclose(distances[row, -1], np.sort(others)[3], atol=1e-4)
    assert set(indices[10, 1:3]) == {11, 12}


def test_exact_neighbours_in_blocks_equal_one_block(monkeypatch):
    x = np.random.default_rng(4).normal(size=(300, 4)).astype(np.float32)
    whole = projection._exact_knn(x, 4, "euclidean")
    # 1,000 distances a block: blocks of 3 rows, each placed at its own offset.
    monkeypatch.setattr(projection, "_KNN_BLOCK_VALUES", 1000)
    blocked = projection._exact_knn(x, 4, "euclidean")
    np.testing.assert_array_equal(blocked[0], whole[0])
    np.testing.assert_allclose(blocked[1], whole[1], atol=1e-5)


def test_warm_umap_runs_once_in_the_background():
    first = projection.warm_umap()
    second = projection.warm_umap()
    assert first is second and isinstance(first, threading.Thread) and first.daemon
    first.join(timeout=600)
    assert projection.umap_ready()


def test_nearest_neighbors_finds_the_closest_rows_and_leaves_out_the_query():
    x = np.array([[0.0, 0.0], [1.0, 0.0], [5.0, 0.0], [0.5, 0.0], [-3.0, 0.0]], dtype=np.float32)
    index, distance = projection.nearest_neighbors(x, 0, k=3)
    assert index.tolist() == [3, 1, 4]
    np.testing.assert_allclose(distance, [0.5, 1.0, 3.0])
    index, _ = projection.nearest_neighbors(x, 0, k=10)
    assert 0 not in index and len(index) == 4


def test_nearest_neighbors_other_metrics_and_bad_input():
    x = np.array([[1.0, 0.0], [10.0, 0.1], [0.0, 1.0]], dtype=np.float32)
    index, _ = projection.nearest_neighbors(x, 0, k=1, metric="cosine")
    assert index.tolist() == [1]
    index, distance = projection.nearest_neighbors(x, 0, k=2, metric="manhattan")
    assert index.tolist() == [2, 1]
    np.testing.assert_allclose(distance, [2.0, 9.1], rtol=1e-5)
    with pytest.raises(ValueError, match="out of range"):
        projection.nearest_neighbors(x, 3)
    with pytest.raises(ValueError, match="metric"):
        projection.nearest_neighbors(x, 0, metric="hamming-ish")


def test_display_sample_keeps_everything_when_small_and_the_chosen_rows_when_large():
    labels = np.random.default_rng(0).choice([-1, 0, 1], size=1000, p=[0.6, 0.38, 0.02])
    np.testing.assert_array_equal(projection.display_sample(labels[:10], max_points=100), np.arange(10))
    chosen = projection.display_sample(labels, max_points=100, keep=[999, 5])
    assert 90 <= len(chosen) <= 102 and {999, 5} <= set(chosen.tolist())
    assert np.all(np.diff(chosen) > 0)
    np.testing.assert_array_equal(chosen, projection.display_sample(labels, max_points=100, keep=[999, 5]))


def test_display_sample_draws_a_rare_label_whole():
    labels = np.array([1] * 50 + [0] * 5_000 + [-1] * 50_000)
    drawn = projection.display_sample(labels, max_points=3_000)
    assert len(drawn) <= 3_000
    assert (labels[drawn] == 1).sum() == 50, "every censored record is drawn"
    assert (labels[drawn] == 0).sum() >= 500 and (labels[drawn] == -1).sum() >= 500


def test_fit_sample_keeps_every_label_and_the_bound():
    labels = np.array([1] * 30 + [0] * 3_000 + [-1] * 20_000)
    chosen = projection.fit_sample(labels, 2_000, seed=1)
    assert len(chosen) <= 2_000 and len(np.unique(chosen)) == len(chosen)
    kept = labels[chosen]
    assert (kept == 1).sum() == 30  # the rare class whole
    assert (kept == 0).sum() >= 2_000 // 6 and (kept == -1).sum() >= 2_000 // 6
    assert np.array_equal(projection.fit_sample(labels[:100], 2_000), np.arange(100))


def test_umap_at_scale_places_unfitted_rows_beside_their_group():
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=20, size=(3, 8))
    group = np.repeat([0, 1, 2], 400)
    latents = (centres[group] + rng.normal(size=(1_200, 8))).astype(np.float32)
    labels = np.where(group == 0, 1, -1)
    done = []
    coords = projection.umap_at_scale(latents, labels, fit_rows=300, seed=0, progress=lambda d, t: done.append((d, t)))
    assert coords.shape == (1_200, 2) and np.isfinite(coords).all()
    assert done[0] == (0, 1_200) and done[-1] == (1_200, 1_200)
    centroids = np.stack([coords[group == g].mean(axis=0) for g in range(3)])
    spread = max(np.linalg.norm(coords[group == g] - centroids[g], axis=1).mean() for g in range(3))
    gaps = min(np.linalg.norm(centroids[a] - centroids[b]) for a in range(3) for b in range(a + 1, 3))
    assert gaps > 2 * spread


def test_select_region_counts_points_that_are_not_drawn():
    grid = np.stack(np.meshgrid(np.arange(100.0), np.arange(100.0)), axis=-1).reshape(-1, 2)
    box = projection.select_region(grid, boxes=[(9.5, 19.5, 29.5, 39.5)])
    assert len(box) == 100 and set(grid[box, 0]) == set(range(10, 20))
    # A lasso triangle whose long side runs half a cell above the diagonal y = x.
    triangle = projection.select_region(grid, lassos=[([-1, 50.5, 50.5], [-0.5, -0.5, 51])])
    inside = grid[triangle]
    assert (inside[:, 1] <= inside[:, 0] + 0.5).all() and len(triangle) == sum(min(x + 1, 51) for x in range(51))
    both = projection.select_region(grid, boxes=[(9.5, 19.5, 29.5, 39.5)], lassos=[([-1, 50.5, 50.5], [-0.5, -0.5, 51])])
    assert len(both) == len(np.union1d(box, triangle))


def test_density_counts_every_point_once():
    coords = np.random.default_rng(0).normal(size=(10_000, 2))
    counts, ys, xs = projection.density(coords, bins=64)
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
        found = projection.select_region(points, lassos=[(xs, ys)])
        np.testing.assert_array_equal(found, _inside_by_every_edge(points, np.asarray(xs, float), np.asarray(ys, float)))
        assert 0 < len(found) < len(points)
    assert len(projection.select_region(points, lassos=[([0, 1], [0, 1])])) == 0, "two vertices enclose nothing"


def test_density_cells_hold_the_points_at_their_centres():
    coords = np.array([[0.0, 0.0], [0.0, 0.1], [1.0, 1.0]])
    counts, xs, ys = projection.density(coords, bins=2, extent=(0, 1, 0, 1))
    np.testing.assert_allclose(xs, [0.25, 0.75])
    np.testing.assert_allclose(ys, [0.25, 0.75])
    assert counts[0, 0] == 2 and counts[1, 1] == 1 and counts.sum() == 3
    lopsided = projection.density(np.array([[0.0, 0.9], [0.9, 0.0]]), bins=2, extent=(0, 1, 0, 1))[0]
    assert lopsided[1, 0] == 1 and lopsided[0, 1] == 1, "rows run along y"


def test_pca_of_many_rows_fits_on_a_subset_and_projects_every_row(monkeypatch):
    rng = np.random.default_rng(2)
    x = (rng.normal(size=(3_000, 6)) * [5, 3, 1, 0.5, 0.2, 0.1]).astype(np.float32)
    whole = projection.pca(x, 2)
    monkeypatch.setattr(projection, "_PCA_FIT_ROWS", 500)
    subset = projection.pca(x, 2)
    assert subset.shape == (3_000, 2)
    for axis in range(2):
        assert abs(np.corrcoef(whole[:, axis], subset[:, axis])[0, 1]) > 0.99
    np.testing.assert_array_equal(subset, projection.pca(x, 2))


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_nearest_reference_rows_match_the_full_distances(metric):
    import torch

    rng = np.random.default_rng(3)
    queries, reference = (torch.from_numpy(rng.normal(size=shape).astype(np.float32)) for shape in ((200, 12), (900, 12)))
    distances, nearest = projection._nearest(queries, reference, 7, metric)
    full = projection._distances(queries, reference, metric).numpy()
    expected = np.argsort(full, axis=1)[:, :7]
    np.testing.assert_array_equal(nearest.numpy(), expected)
    np.testing.assert_allclose(distances.numpy(), np.take_along_axis(full, expected, axis=1), atol=1e-4)
