"""The latent classifier: balanced training on labelled rows, scores on held-out ones."""

import numpy as np
import pytest
import torch

from quack.latents.classifier import binary_scores, split_labelled, train_classifier


def clusters(n_censored: int, n_uncensored: int, n_undetermined: int, width: int = 16, seed: int = 0):
    """Latents where censored rows sit around +1 and uncensored around -1 on every axis."""
    rng = np.random.default_rng(seed)
    latents = np.concatenate(
        [
            rng.normal(1.0, 0.7, (n_censored, width)),
            rng.normal(-1.0, 0.7, (n_uncensored, width)),
            rng.normal(1.0, 0.7, (n_undetermined, width)),
        ]
    ).astype(np.float32)
    labels = np.array([1] * n_censored + [-1] * n_uncensored + [0] * n_undetermined)
    return latents, labels


def test_separable_latents_are_learned_and_undetermined_scored():
    latents, labels = clusters(60, 300, 40)
    report = train_classifier(latents, labels, seed=1, epochs=100)
    assert report.accuracy > 0.95
    assert report.f1 > 0.9
    assert sum(map(sum, report.confusion)) == len(report.test_index)
    # The undetermined rows were drawn from the censored cluster: they score high.
    scores = report.model.predict_proba(latents[labels == 0])
    assert scores.mean() > 0.8


def test_training_is_balanced_and_held_out_rows_are_labelled_only():
    latents, labels = clusters(30, 200, 50)
    train_idx, test_idx = split_labelled(labels, 0.2, seed=0)
    assert np.sum(labels[train_idx] == 1) == np.sum(labels[train_idx] == -1) == 24
    assert set(labels[test_idx]) == {1, -1}
    assert not set(train_idx) & set(test_idx)
    assert np.sum(labels[test_idx] == -1) == 40


def test_same_seed_same_scores_and_torch_global_generator_untouched():
    latents, labels = clusters(40, 80, 20, seed=3)
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    first = train_classifier(latents, labels, seed=7, epochs=30).model.predict_proba(latents)
    assert torch.equal(torch.random.get_rng_state(), before)
    # Draws from the global generator between runs (another thread training) change nothing.
    torch.rand(1000)
    second = train_classifier(latents, labels, seed=7, epochs=30).model.predict_proba(latents)
    np.testing.assert_array_equal(first, second)
    other = train_classifier(latents, labels, seed=8, epochs=30).model.predict_proba(latents)
    assert not np.array_equal(first, other)


def test_dropout_is_active_while_training_only():
    latents, labels = clusters(20, 20, 0)
    model = train_classifier(latents, labels, epochs=5).model
    x = torch.from_numpy(latents)
    model.train()
    assert not torch.equal(model(x), model(x))
    model.eval()
    assert torch.equal(model(x), model(x))


def test_one_class_only_is_refused_with_a_sentence():
    latents, labels = clusters(0, 50, 10)
    with pytest.raises(ValueError, match="at least two censored rows"):
        train_classifier(latents, labels)


def test_wrong_width_is_refused():
    latents, labels = clusters(20, 20, 0)
    model = train_classifier(latents, labels, epochs=5).model
    with pytest.raises(ValueError, match="latents of width 16"):
        model.predict_proba(np.zeros((3, 8), np.float32))


def test_binary_scores_by_hand():
    accuracy, f1, confusion = binary_scores(np.array([1, 1, 0, 0, 1]), np.array([1, 0, 0, 1, 1]))
    assert confusion == [[1, 1], [1, 2]]
    assert accuracy == pytest.approx(3 / 5)
    assert f1 == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))


def test_binary_scores_agree_with_scikit_learn():
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

    rng = np.random.default_rng(2)
    truth, predicted = rng.random(500) < 0.3, rng.random(500) < 0.4
    accuracy, f1, confusion = binary_scores(truth, predicted)
    assert accuracy == pytest.approx(accuracy_score(truth, predicted))
    assert f1 == pytest.approx(f1_score(truth, predicted))
    assert confusion == confusion_matrix(truth, predicted).tolist()


def test_split_holds_out_each_class_in_proportion():
    labels = np.array([1] * 50 + [-1] * 150 + [0] * 30)
    train_idx, test_idx = split_labelled(labels, 0.2, seed=1)
    assert np.sum(labels[test_idx] == 1) == 10 and np.sum(labels[test_idx] == -1) == 30
    assert not np.any(labels[np.concatenate([train_idx, test_idx])] == 0)
    other, _ = split_labelled(labels, 0.2, seed=2)
    assert not np.array_equal(np.sort(train_idx), np.sort(other))
