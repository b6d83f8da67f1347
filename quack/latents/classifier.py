"""The latent classifier of the original design.

A small dense network over latent vectors that tells censored measurements from
uncensored ones. It trains on labelled rows only (censored 1, uncensored -1), with
the classes balanced, and then scores undetermined rows (0) with a probability of
censorship: high scores are censorship the fingerprints missed.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from quack.atomic import atomic_folder
from quack.schema import Label

if TYPE_CHECKING:
    import pandas as pd


class _Dropout(nn.Module):
    """Dropout whose masks come from the given generator (torch's global one when None).

    A dashboard trains the autoencoder in another thread from the global generator; the
    classifier draws from its own, so neither run changes the other's random numbers.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p
        self.generator: torch.Generator | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.bernoulli(torch.full_like(x, 1.0 - self.p), generator=self.generator)
        return x * keep / (1.0 - self.p)


def _linear(n_in: int, n_out: int, generator: torch.Generator | None) -> nn.Linear:
    """``nn.Linear(n_in, n_out)`` with torch's default initialisation drawn from ``generator``."""
    layer = nn.utils.skip_init(nn.Linear, n_in, n_out)
    nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
    bound = 1.0 / math.sqrt(n_in) if n_in > 0 else 0.0
    nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
    return layer


class LatentClassifier(nn.Module):
    """Dense network from a latent vector to the logit of censorship.

    Parameters
    ----------
    latent_size : int
        Width of the latent vectors.
    hidden_size : int
        Width of the hidden layer.
    dropout : float
        Dropout before the output layer while training.
    generator : torch.Generator, optional
        Draws the initial weights and the dropout masks; None draws from torch's global
        generator, as torch's own layers do.
    """

    def __init__(
        self, latent_size: int, hidden_size: int = 64, dropout: float = 0.2, generator: torch.Generator | None = None
    ) -> None:
        super().__init__()
        self.latent_size = latent_size
        dropout_layer = _Dropout(dropout)
        dropout_layer.generator = generator
        self.net = nn.Sequential(
            _linear(latent_size, hidden_size, generator),
            nn.ReLU(),
            dropout_layer,
            _linear(hidden_size, 1, generator),
        )
        # Standardisation learned from the training latents; kept as buffers so a
        # saved classifier scores new latents exactly as it scored its own.
        self.register_buffer("mean", torch.zeros(latent_size))
        self.register_buffer("scale", torch.ones(latent_size))

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        """Logit of censorship for each row of ``latents`` (N, H) -> (N,)."""
        return self.net((latents - self.mean) / self.scale).squeeze(-1)

    @torch.no_grad()
    def predict_proba(self, latents: np.ndarray | torch.Tensor) -> np.ndarray:
        """Probability of censorship for each latent vector.

        Parameters
        ----------
        latents : array of shape (N, H)

        Returns
        -------
        numpy.ndarray of shape (N,), float32 in [0, 1].
        """
        x = torch.as_tensor(np.asarray(latents, dtype=np.float32))
        if x.ndim != 2 or x.shape[1] != self.latent_size:
            raise ValueError(
                f"The classifier expects latents of width {self.latent_size}, got shape {tuple(x.shape)}; "
                "score latents from the same checkpoint it was trained on."
            )
        self.eval()
        return torch.sigmoid(self(x)).numpy().astype(np.float32)


@dataclass
class ClassifierReport:
    """A trained classifier and how it did on held-out labelled rows.

    Attributes
    ----------
    model : LatentClassifier
    accuracy, f1 : float
        On the held-out rows; F1 of the censored class.
    confusion : list of list of int
        2 x 2 counts; rows are the true class (uncensored, censored), columns the prediction.
    test_index : numpy.ndarray
        Positions in the input arrays of the held-out rows.
    train_size : int
        Rows trained on after balancing.
    """

    model: LatentClassifier
    accuracy: float
    f1: float
    confusion: list[list[int]]
    test_index: np.ndarray = field(repr=False)
    train_size: int = 0


def binary_scores(truth: np.ndarray, predicted: np.ndarray) -> tuple[float, float, list[list[int]]]:
    """Accuracy, F1 of the positive class and the 2 x 2 confusion matrix of two 0/1 arrays."""
    # Kept in NumPy: 0.02 ms for 1,000 rows and 1.8 ms for 1M, against 4.4 ms and 349 ms for sklearn.metrics.
    truth = np.asarray(truth, dtype=bool)
    predicted = np.asarray(predicted, dtype=bool)
    tp = int(np.sum(truth & predicted))
    tn = int(np.sum(~truth & ~predicted))
    fp = int(np.sum(~truth & predicted))
    fn = int(np.sum(truth & ~predicted))
    accuracy = (tp + tn) / max(len(truth), 1)
    f1 = 2 * tp / max(2 * tp + fp + fn, 1)
    return accuracy, f1, [[tn, fp], [fn, tp]]


def split_labelled(labels: np.ndarray, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified split of the labelled positions, then the training part balanced.

    Returns the training positions (as many censored as uncensored, the larger class
    sampled down) and the held-out positions (the natural mix).
    """
    # Kept in NumPy: 0.2 ms for 7,000 labels and 27 ms for 1M, against 3.7 ms and 212 ms for sklearn's train_test_split.
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    train, test = [], []
    for label in Label.labelled():
        idx = np.flatnonzero(labels == label)
        rng.shuffle(idx)
        n_test = int(round(len(idx) * test_size))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    smaller = min(len(part) for part in train)
    train = [part[:smaller] for part in train]
    train_idx = np.concatenate(train)
    rng.shuffle(train_idx)
    return train_idx, np.sort(np.concatenate(test))


def train_classifier(
    latents: np.ndarray,
    labels: np.ndarray,
    seed: int = 0,
    test_size: float = 0.2,
    epochs: int = 200,
    hidden_size: int = 64,
    learning_rate: float = 1e-2,
) -> ClassifierReport:
    """Train the latent classifier on the labelled rows and score it on held-out ones.

    Parameters
    ----------
    latents : array of shape (N, H)
    labels : array of shape (N,)
        1 censored, 0 undetermined (ignored here), -1 uncensored.
    seed : int
        Seeds the split, the balancing, the weights and the dropout; torch's global
        generator is neither used nor reseeded.
    test_size : float
        Share of each labelled class held out for the scores.
    epochs : int
        Full-batch optimisation steps.
    hidden_size : int
        Width of the hidden layer.
    learning_rate : float
        AdamW learning rate.

    Returns
    -------
    ClassifierReport

    Raises
    ------
    ValueError
        When the shapes disagree or either class has fewer than two labelled rows.
    """
    latents = np.asarray(latents, dtype=np.float32)
    labels = np.asarray(labels)
    if latents.ndim != 2 or len(latents) != len(labels):
        raise ValueError(
            f"Latents of shape {latents.shape} and {len(labels)} labels do not match; pass one label per latent row."
        )
    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must lie between 0 and 1, got {test_size}.")
    for label in Label.labelled():
        if np.sum(labels == label) < 2:
            raise ValueError(
                f"The classifier needs at least two {label.display} rows and found {int(np.sum(labels == label))}; "
                "use a data set with both labels (or more fingerprints)."
            )
    train_idx, test_idx = split_labelled(labels, test_size, seed)
    model = LatentClassifier(latents.shape[1], hidden_size, generator=torch.Generator().manual_seed(seed))
    x = torch.from_numpy(latents[train_idx])
    y = torch.from_numpy((labels[train_idx] == Label.CENSORED).astype(np.float32))
    model.mean.copy_(x.mean(0))
    model.scale.copy_(x.std(0).clamp_min(1e-6))
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=1e-3)
    loss_fn = nn.BCEWithLogitsLoss()
    model.train()
    for _ in range(epochs):
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
    model.eval()
    predicted = model.predict_proba(latents[test_idx]) >= 0.5
    accuracy, f1, confusion = binary_scores(labels[test_idx] == Label.CENSORED, predicted)
    return ClassifierReport(model, accuracy, f1, confusion, test_idx, len(train_idx))


#: The folder ``quack classify`` writes in an encoded folder: every row's score and the classifier that gave them.
CLASSIFIED_FOLDER = "classifier"
SCORES_FILE = "scores.parquet"
CLASSIFIER_FILE = "classifier.pt"


def write_classified(encoded: str | os.PathLike, scores: pd.DataFrame, model: LatentClassifier) -> Path:
    """Write the scores and the classifier into the encoded folder's :data:`CLASSIFIED_FOLDER`, as one unit.

    Both files are written into a hidden folder that then replaces the earlier run's
    (:func:`quack.atomic.atomic_folder`), so a run killed at any moment never leaves one
    run's scores beside another run's classifier; what killed runs left is removed.

    Returns
    -------
    pathlib.Path
        The written folder.
    """
    def write(folder: Path) -> None:
        scores.to_parquet(folder / SCORES_FILE, index=False)
        torch.save(model.state_dict(), folder / CLASSIFIER_FILE)

    return atomic_folder(Path(encoded) / CLASSIFIED_FOLDER, write)
