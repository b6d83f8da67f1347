"""Maps of the latent space: PCA, UMAP, UMAP at scale and its warm-up."""

import warnings

import numpy as np
import pytest

from quack.latents import maps


def two_blobs(n=120, h=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, h)).astype(np.float32)
    x[: n // 2] += 6.0
    return x


def test_pca_separates_two_groups_on_the_first_axis():
    x = two_blobs()
    coords = maps.pca(x, 2)
    assert coords.shape == (120, 2) and coords.dtype == np.float32
    first, second = coords[:60, 0], coords[60:, 0]
    assert first.min() > second.max() or first.max() < second.min()


def test_pca_is_deterministic_and_centred():
    x = two_blobs()
    a, b = maps.pca(x, 3), maps.pca(x.copy(), 3)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(a.mean(axis=0), 0, atol=1e-3)


def test_pca_equals_the_svd_of_the_centred_latents_with_fixed_signs():
    x = two_blobs(n=300, h=32, seed=4)
    x[:, 3] *= 4.0
    centred = x.astype(np.float64) - x.mean(axis=0, dtype=np.float64)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    components = vt[:3] * np.sign(vt[:3][np.arange(3), np.abs(vt[:3]).argmax(axis=1)])[:, None]
    np.testing.assert_allclose(maps.pca(x, 3), centred @ components.T, rtol=1e-3, atol=1e-3)


def test_pca_of_identical_or_narrow_latents():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(maps.pca(np.ones((10, 4), np.float32), 2), np.zeros((10, 2)))
    narrow = maps.pca(np.arange(6, dtype=np.float32).reshape(6, 1), 2)
    assert narrow.shape == (6, 2) and not narrow[:, 1].any()
    np.testing.assert_allclose(np.abs(narrow[:, 0]), [2.5, 1.5, 0.5, 0.5, 1.5, 2.5])


def test_pca_rejects_bad_input_with_a_sentence():
    with pytest.raises(ValueError, match="at least 3 records"):
        maps.pca(np.zeros((2, 4)), 2)
    with pytest.raises(ValueError, match="NaN"):
        maps.pca(np.full((5, 4), np.nan), 2)
    with pytest.raises(ValueError, match="2-D"):
        maps.pca(np.zeros(5), 2)


@pytest.mark.slow
def test_umap_maps_neighbours_close_together():
    x = two_blobs(n=200)
    coords = maps.umap_project(x, 2, n_neighbors=10, seed=0)
    assert coords.shape == (200, 2)
    centre_a, centre_b = coords[:100].mean(axis=0), coords[100:].mean(axis=0)
    spread = max(coords[:100].std(), coords[100:].std())
    assert np.linalg.norm(centre_a - centre_b) > 2 * spread


def test_umap_three_dimensions_and_same_seed_same_map():
    x = two_blobs(n=80, h=8)
    a = maps.umap_project(x, 3, n_neighbors=8, seed=1)
    b = maps.umap_project(x, 3, n_neighbors=8, seed=1)
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
        maps.umap_project(two_blobs(n=30, h=4), **options)

def test_fit_sample_keeps_every_label_and_the_bound():
    labels = np.array([1] * 30 + [0] * 3_000 + [-1] * 20_000)
    chosen = maps.fit_sample(labels, 2_000, seed=1)
    assert len(chosen) <= 2_000 and len(np.unique(chosen)) == len(chosen)
    kept = labels[chosen]
    assert (kept == 1).sum() == 30  # the rare class whole
    assert (kept == 0).sum() >= 2_000 // 6 and (kept == -1).sum() >= 2_000 // 6
    assert np.array_equal(maps.fit_sample(labels[:100], 2_000), np.arange(100))


def test_umap_at_scale_places_unfitted_rows_beside_their_group():
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=20, size=(3, 8))
    group = np.repeat([0, 1, 2], 400)
    latents = (centres[group] + rng.normal(size=(1_200, 8))).astype(np.float32)
    labels = np.where(group == 0, 1, -1)
    done = []
    coords = maps.umap_at_scale(latents, labels, fit_rows=300, seed=0, progress=lambda d, t: done.append((d, t)))
    assert coords.shape == (1_200, 2) and np.isfinite(coords).all()
    assert done[0] == (0, 1_200) and done[-1] == (1_200, 1_200)
    centroids = np.stack([coords[group == g].mean(axis=0) for g in range(3)])
    spread = max(np.linalg.norm(coords[group == g] - centroids[g], axis=1).mean() for g in range(3))
    gaps = min(np.linalg.norm(centroids[a] - centroids[b]) for a in range(3) for b in range(a + 1, 3))
    assert gaps > 2 * spread


def test_pca_of_many_rows_fits_on_a_subset_and_projects_every_row():
    rng = np.random.default_rng(2)
    x = (rng.normal(size=(3_000, 6)) * [5, 3, 1, 0.5, 0.2, 0.1]).astype(np.float32)
    whole = maps.pca(x, 2)
    subset = maps.pca(x, 2, fit_rows=500)
    assert subset.shape == (3_000, 2)
    for axis in range(2):
        assert abs(np.corrcoef(whole[:, axis], subset[:, axis])[0, 1]) > 0.99
    np.testing.assert_array_equal(subset, maps.pca(x, 2, fit_rows=500))
