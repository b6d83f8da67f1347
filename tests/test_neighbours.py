"""Distances and exact nearest neighbours in latent space."""

import numpy as np
import pytest

from quack.latents import neighbours


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


@pytest.mark.parametrize("metric", neighbours.METRICS)
def test_exact_neighbours_match_brute_force_with_each_record_first(metric):
    x = np.random.default_rng(3).normal(size=(90, 6)).astype(np.float64)
    x[10] = x[11] = x[12]  # repeated records lie at distance 0 from each other
    indices, distances = neighbours.exact_knn(x.astype(np.float32), 5, metric)
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


def test_exact_neighbours_in_blocks_equal_one_block():
    x = np.random.default_rng(4).normal(size=(300, 4)).astype(np.float32)
    whole = neighbours.exact_knn(x, 4, "euclidean")
    # 1,000 distances a block: blocks of 3 rows, each placed at its own offset.
    blocked = neighbours.exact_knn(x, 4, "euclidean", block_values=1000)
    np.testing.assert_array_equal(blocked[0], whole[0])
    np.testing.assert_allclose(blocked[1], whole[1], atol=1e-5)


def test_nearest_neighbors_finds_the_closest_rows_and_leaves_out_the_query():
    x = np.array([[0.0, 0.0], [1.0, 0.0], [5.0, 0.0], [0.5, 0.0], [-3.0, 0.0]], dtype=np.float32)
    index, distance = neighbours.nearest_neighbors(x, 0, k=3)
    assert index.tolist() == [3, 1, 4]
    np.testing.assert_allclose(distance, [0.5, 1.0, 3.0])
    index, _ = neighbours.nearest_neighbors(x, 0, k=10)
    assert 0 not in index and len(index) == 4


def test_records_sharing_the_query_latent_are_counted_and_left_out_apart():
    # Rows 0, 2 and 5 are one latent (records of the same few tokens): all at distance 0.
    x = np.array([[1.0, 2.0], [1.0, 2.5], [1.0, 2.0], [4.0, 0.0], [1.0, 2.0001], [1.0, 2.0]], dtype=np.float32)
    assert neighbours.identical_rows(x, 0).tolist() == [2, 5]
    assert neighbours.identical_rows(x, 3).tolist() == []
    index, distance = neighbours.nearest_neighbors(x, 0, k=3)
    assert set(index.tolist()) == {2, 4, 5} and np.allclose(distance, 0.0, atol=1e-3)
    index, distance = neighbours.nearest_neighbors(x, 0, k=10, apart=True)
    assert index.tolist() == [4, 1, 3] and list(distance) == sorted(distance)


def test_nearest_neighbors_other_metrics_and_bad_input():
    x = np.array([[1.0, 0.0], [10.0, 0.1], [0.0, 1.0]], dtype=np.float32)
    index, _ = neighbours.nearest_neighbors(x, 0, k=1, metric="cosine")
    assert index.tolist() == [1]
    index, distance = neighbours.nearest_neighbors(x, 0, k=2, metric="manhattan")
    assert index.tolist() == [2, 1]
    np.testing.assert_allclose(distance, [2.0, 9.1], rtol=1e-5)
    with pytest.raises(ValueError, match="out of range"):
        neighbours.nearest_neighbors(x, 3)
    with pytest.raises(ValueError, match="metric"):
        neighbours.nearest_neighbors(x, 0, metric="hamming-ish")


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_nearest_reference_rows_match_the_full_distances(metric):
    import torch

    rng = np.random.default_rng(3)
    queries, reference = (torch.from_numpy(rng.normal(size=shape).astype(np.float32)) for shape in ((200, 12), (900, 12)))
    distances, nearest = neighbours.nearest_rows(queries, reference, 7, metric)
    full = neighbours.pairwise_distances(queries, reference, metric).numpy()
    expected = np.argsort(full, axis=1)[:, :7]
    np.testing.assert_array_equal(nearest.numpy(), expected)
    np.testing.assert_allclose(distances.numpy(), np.take_along_axis(full, expected, axis=1), atol=1e-4)
