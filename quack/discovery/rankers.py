"""The ranking methods the leave-fingerprints-out evaluation compares.

Each method scores every row of a :class:`quack.discovery.evaluation_data.EvaluationData` by how
likely it is censored, given the labels of one fold; :data:`METHODS` holds them all by name,
in the order reports list them. :class:`SharedFeatures` holds what every fold of one
evaluation reuses: TF-IDF, clusters and a neighbour index.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Callable, Iterator

import numpy as np

from quack.discovery.options import EVALUATION
from quack.schema import Label

if TYPE_CHECKING:
    from scipy import sparse

    from quack.discovery.evaluation_data import EvaluationData

__all__ = ["COPY_NEIGHBOURS", "COPY_SAMPLE", "LATENT_WEIGHT", "METHODS", "Method", "NEIGHBOURS", "PU_FOLDS", "TEST_SIZE",
           "SharedFeatures", "copy_weights", "latents_and_text", "score_rows", "unlabelled_logistic"]

#: Neighbours averaged by the purity figure and by the censored-distance method.
NEIGHBOURS = 10
#: Parts the positive-unlabelled latent classifier splits the undetermined rows into.
PU_FOLDS = 5
#: Weight of each standardised latent beside the TF-IDF words in ``latents_and_text``
#: (0, 0.05, 0.1 and 0.3 measured with the copy weights on the real dev set and the realistic sample, with the
#: shipped checkpoint and two trained on real-like pages: 0.05 gave the best realistic folds with all three;
#: 0 is ``text_latent_copies``; 0.3 was best before the copy weights; the other figures are in BENCHMARKS.md).
LATENT_WEIGHT = 0.05
#: Near copies of an undetermined row counted among this many nearest latents (``copy_weights``).
COPY_NEIGHBOURS = 20
#: Most undetermined rows the copies are counted among; beyond it a sample, its counts scaled up.
COPY_SAMPLE = 20_000
#: Share of each labelled class the latent classifier holds out; every supervised method
#: trains on the same remaining rows.
TEST_SIZE = 0.2


class SharedFeatures:
    """What every fold of one evaluation reuses, each computed when first asked for.

    Parameters
    ----------
    data : EvaluationData
        The rows every fold ranks.
    min_cluster_size : int
        HDBSCAN's smallest cluster for :attr:`clusters`.
    """

    def __init__(self, data: EvaluationData, min_cluster_size: int) -> None:
        self.data = data
        self.min_cluster_size = min_cluster_size

    @cached_property
    def tfidf(self) -> sparse.csr_matrix:
        """(N, F) TF-IDF of every row's word counts."""
        from sklearn.feature_extraction.text import TfidfTransformer

        return TfidfTransformer(sublinear_tf=True).fit_transform(self.data.words).tocsr()

    @cached_property
    def clusters(self) -> np.ndarray:
        """(N,) HDBSCAN cluster of every row's latent, -1 for a row in none."""
        from quack.discovery.clusters import cluster_latents

        n = len(self.data.labels)
        return cluster_latents(self.data.latents, min_cluster_size=max(2, min(self.min_cluster_size, n)))

    @cached_property
    def index(self):
        """A nearest-neighbour index over every row's latent."""
        from sklearn.neighbors import NearestNeighbors

        return NearestNeighbors().fit(self.data.latents)

    def neighbours(self, rows: np.ndarray) -> np.ndarray:
        """(len(rows), k) the nearest other rows of each of ``rows`` in latent space, nearest first."""
        k = min(NEIGHBOURS, len(self.data.labels) - 1)
        _, found = self.index.kneighbors(self.data.latents[rows], n_neighbors=k + 1)
        # Leave the row itself out; among exact duplicates it need not come first.
        own = found == np.asarray(rows)[:, None]
        drop = np.where(own.any(axis=1), own.argmax(axis=1), k)
        keep = np.ones_like(found, dtype=bool)
        keep[np.arange(len(rows)), drop] = False
        return found[keep].reshape(len(rows), k)


def _training_rows(labels: np.ndarray, seed: int) -> np.ndarray:
    from quack.latents.classifier import split_labelled

    return split_labelled(labels, TEST_SIZE, seed)[0]


def _used_columns(features):
    """A sparse matrix without its all-zero columns (most of the hashed word buckets).

    A column no row uses gets no weight under the L2 penalty, so the fitted scores are the
    same; the solver's vectors shrink from a million entries to the words in use.
    """
    from scipy import sparse

    if not sparse.issparse(features):
        return features
    features = features.tocsr()
    return features[:, np.unique(features.indices)]


def _logistic(features: sparse.csr_matrix, labels: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression

    features = _used_columns(features)
    train = _training_rows(labels, seed)
    model = LogisticRegression(max_iter=2000, random_state=seed)
    model.fit(features[train], labels[train] == Label.CENSORED)
    return model.predict_proba(features)[:, 1]


@contextmanager
def _one_thread() -> Iterator[None]:
    """Torch on one thread for a while.

    A full batch of a few thousand latents gains nothing from more threads, and on a
    busy machine threads waiting for each other made each fold several times slower.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _latent_classifier(data: EvaluationData, shared: SharedFeatures, labels: np.ndarray, seed: int) -> np.ndarray:
    from quack.latents.classifier import train_classifier

    with _one_thread():
        report = train_classifier(data.latents, labels, seed=seed, test_size=TEST_SIZE)
        return report.model.predict_proba(data.latents).astype(np.float64)


def _out_of_fold(labels: np.ndarray, seed: int,
                 learn_and_score: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> np.ndarray:
    """Every row's score by models that learn the undetermined rows as uncensored (positive-unlabelled).

    The undetermined rows are split into :data:`PU_FOLDS` parts at random.
    ``learn_and_score(left_out, scored)`` learns from every row but ``left_out`` (the
    undetermined ones as uncensored) and returns the probability of each ``scored`` row: an
    undetermined row is scored by the model that left its part out, never by one that
    learned it; a labelled row gets the mean of the parts' scores.
    """
    undetermined = labels == Label.UNDETERMINED
    part = np.random.default_rng(seed).integers(0, PU_FOLDS, len(labels))
    scores = np.zeros(len(labels), dtype=np.float64)
    for fold in range(PU_FOLDS):
        left_out = undetermined & (part == fold)
        scored = left_out | ~undetermined
        probability = np.asarray(learn_and_score(left_out, scored), dtype=np.float64)
        rows = np.flatnonzero(scored)
        own = undetermined[rows]
        scores[rows[own]] = probability[own]
        scores[rows[~own]] += probability[~own] / PU_FOLDS
    return scores


def _latent_unlabelled(data: EvaluationData, shared: SharedFeatures, labels: np.ndarray, seed: int) -> np.ndarray:
    """The latent classifier with the undetermined rows as its uncensored examples (positive-unlabelled).

    Most undetermined rows are ordinary pages, and they are the pages a blockpage no
    fingerprint knows must be told from: learning them as uncensored teaches the
    classifier the ordinary pages of this data set, not only the template replies the
    fingerprints label. Each undetermined row is scored out of fold (:func:`_out_of_fold`).
    A family no fingerprint knows that is served many times is mostly learned as
    uncensored by the model that scores it: on the realistic sample's hidden families this
    loses to TF-IDF (BENCHMARKS.md).
    """
    from quack.latents.classifier import train_classifier

    undetermined = labels == Label.UNDETERMINED
    if not undetermined.any():
        return _latent_classifier(data, shared, labels, seed)

    def learn_and_score(left_out: np.ndarray, scored: np.ndarray) -> np.ndarray:
        learn = np.asarray(labels).copy()
        # The left-out part stays undetermined, which the classifier does not learn from.
        learn[undetermined & ~left_out] = Label.UNCENSORED
        model = train_classifier(data.latents, learn, seed=seed, test_size=TEST_SIZE).model
        return model.predict_proba(data.latents[scored])

    with _one_thread():
        return _out_of_fold(labels, seed, learn_and_score)


def unlabelled_logistic(features, labels: np.ndarray, seed: int, weights: np.ndarray | None = None) -> np.ndarray:
    """Logistic regression learned positive-unlabelled (:func:`_out_of_fold`), the classes weighed equally.

    ``weights``, when given, weigh each row as an example (:func:`copy_weights`).
    """
    from sklearn.linear_model import LogisticRegression

    features = _used_columns(features)
    censored = labels == Label.CENSORED

    def learn_and_score(left_out: np.ndarray, scored: np.ndarray) -> np.ndarray:
        model = LogisticRegression(max_iter=3000, class_weight="balanced", random_state=seed)
        model.fit(features[~left_out], censored[~left_out], sample_weight=None if weights is None else weights[~left_out])
        return model.predict_proba(features[scored])[:, 1]

    return _out_of_fold(labels, seed, learn_and_score)


def copy_weights(latents: np.ndarray, labels: np.ndarray, seed: int) -> np.ndarray:
    """Each row's weight as an example: 1 for a labelled row, 1 / (1 + its near copies) for an undetermined one.

    A template served many times, a blockpage no fingerprint knows as much as a CDN's error
    page, gives many near-identical undetermined rows. Learned each at full weight as
    uncensored, a family the fingerprints miss is learned as ordinary by its number alone;
    weighed so, a template counts about once and an ordinary page, which has no copies,
    fully. A copy is one of the row's :data:`COPY_NEIGHBOURS` nearest undetermined latents
    no farther than the median distance from an undetermined row to its nearest other one.
    Beyond :data:`COPY_SAMPLE` undetermined rows they are counted among a sample of that
    many, and the counts scaled up.
    """
    from sklearn.neighbors import NearestNeighbors

    weights = np.ones(len(labels), dtype=np.float64)
    rows = np.flatnonzero(labels == Label.UNDETERMINED)
    if rows.size < 3:
        return weights
    sample = rows
    if rows.size > COPY_SAMPLE:
        sample = np.sort(np.random.default_rng(seed).choice(rows, COPY_SAMPLE, replace=False))
    x = np.asarray(latents, dtype=np.float32)
    index = NearestNeighbors(n_neighbors=min(COPY_NEIGHBOURS + 1, sample.size)).fit(x[sample])
    distances, found = index.kneighbors(x[rows])
    own = sample[found] == rows[:, None]
    nearest_other = np.where(own, np.inf, distances).min(axis=1)
    radius = np.median(nearest_other[np.isin(rows, sample)])
    copies = ((distances <= radius) & ~own).sum(axis=1) * (rows.size / sample.size)
    weights[rows] = 1.0 / (1.0 + copies)
    return weights


def latents_and_text(data: EvaluationData, shared: SharedFeatures, labels: np.ndarray, seed: int,
                     weights: np.ndarray | None = None, latent_weight: float = LATENT_WEIGHT) -> np.ndarray:
    """The ``latents_and_text`` method: every row's score, with each row weighed as an example by ``weights``.

    ``weights`` default to :func:`copy_weights`, as the method in :data:`METHODS` has them;
    ``latent_weight`` scales the standardised latents beside the words (0: the words alone,
    ``text_latent_copies``). ``bench/bench_copy_weights.py`` measures it with other values of both.
    """
    from scipy import sparse

    latents = data.latents.astype(np.float64)
    standard = (latents - latents.mean(axis=0)) / (latents.std(axis=0) + 1e-6)
    features = sparse.hstack([shared.tfidf, sparse.csr_matrix(standard * latent_weight)]).tocsr()
    if weights is None:
        weights = copy_weights(data.latents, labels, seed)
    return unlabelled_logistic(features, labels, seed, weights=weights)


def _text_latent_copies(data: EvaluationData, shared: SharedFeatures, labels: np.ndarray, seed: int) -> np.ndarray:
    """The TF-IDF words learned positive-unlabelled, each undetermined row weighed by :func:`copy_weights`.

    The latents decide which rows are copies of one template; the words alone score them.
    """
    return latents_and_text(data, shared, labels, seed, latent_weight=0.0)


def _bag_of_tokens(data: EvaluationData, shared: SharedFeatures, labels: np.ndarray, seed: int) -> np.ndarray:
    return _logistic(data.tokens, labels, seed)


def _tfidf_text(data: EvaluationData, shared: SharedFeatures, labels: np.ndarray, seed: int) -> np.ndarray:
    return _logistic(shared.tfidf, labels, seed)


def _reconstruction_loss(data: EvaluationData, shared: SharedFeatures, labels: np.ndarray, seed: int) -> np.ndarray:
    return data.loss


def _censored_distance(data: EvaluationData, shared: SharedFeatures, labels: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.neighbors import NearestNeighbors

    censored = data.latents[labels == Label.CENSORED]
    k = min(NEIGHBOURS, len(censored))
    # Only undetermined rows are ranked; the others need no distance.
    ranked = labels == Label.UNDETERMINED
    distances, _ = NearestNeighbors(n_neighbors=k).fit(censored).kneighbors(data.latents[ranked])
    scores = np.full(len(labels), -np.inf)
    # Smaller distance, likelier censored: negate so that higher ranks first.
    scores[ranked] = -distances.mean(axis=1)
    return scores


def _hdbscan_clusters(data: EvaluationData, shared: SharedFeatures, labels: np.ndarray, seed: int) -> np.ndarray:
    clusters = shared.clusters
    censored = labels == Label.CENSORED
    labelled = labels != Label.UNDETERMINED
    # Rows in no cluster get the censored share of all labelled rows.
    scores = np.full(len(labels), censored.sum() / max(labelled.sum(), 1), dtype=np.float64)
    inside = clusters >= 0
    in_cluster = np.bincount(clusters[inside], weights=censored[inside])
    labelled_in_cluster = np.bincount(clusters[inside], weights=labelled[inside])
    # One censored and one uncensored pseudo-row: a cluster with no label at all scores
    # 0.5, above clusters of mostly uncensored rows, as something new should.
    scores[inside] = ((in_cluster + 1) / (labelled_in_cluster + 2))[clusters[inside]]
    return scores


@dataclass(frozen=True)
class Method:
    """A way of ranking undetermined rows by how likely they are censored."""

    name: str
    description: str
    score: Callable[[EvaluationData, SharedFeatures, np.ndarray, int], np.ndarray] = field(repr=False)


#: Every method, by name, in the order reports list them.
METHODS: dict[str, Method] = {m.name: m for m in (
    Method("latent_classifier", "the seed's dense classifier over latents (quack.latents.classifier)",
           _latent_classifier),
    Method("latent_unlabelled", "the latent classifier with the undetermined rows learned as uncensored, each scored "
           f"by the classifier of the other {PU_FOLDS - 1} of {PU_FOLDS} parts (positive-unlabelled)",
           _latent_unlabelled),
    Method("latents_and_text", "logistic regression on the latents and the TF-IDF words together, learned as "
           "latent_unlabelled learns (undetermined rows as uncensored, out of fold), each undetermined row weighed "
           "1 / (1 + its near copies in latent space)", latents_and_text),
    Method("text_latent_copies", "logistic regression on the TF-IDF words alone, learned and weighed as "
           "latents_and_text learns: the latents decide which rows are copies of one template, the words score them",
           _text_latent_copies),
    Method("bag_of_tokens", "logistic regression on counts of each token id", _bag_of_tokens),
    Method("tfidf_text", "logistic regression on TF-IDF of the words of status, headers and body", _tfidf_text),
    Method("reconstruction_loss", "the autoencoder's reconstruction loss, higher first (no labels)",
           _reconstruction_loss),
    Method("censored_distance", f"mean latent distance to the {NEIGHBOURS} nearest censored rows, nearer first",
           _censored_distance),
    Method("hdbscan_clusters", "censored share of the row's HDBSCAN cluster among its labelled rows",
           _hdbscan_clusters),
)}


def score_rows(method: str, data: EvaluationData, labels: np.ndarray, seed: int = EVALUATION.seed,
               min_cluster_size: int = EVALUATION.min_rows) -> np.ndarray:
    """Every row's score by one method of :data:`METHODS` trained on ``labels``, higher likelier censored.

    For a single ranking outside an evaluation; an evaluation shares TF-IDF, clusters and
    the neighbour index between its folds instead.
    """
    shared = SharedFeatures(data, min_cluster_size=min_cluster_size)
    return np.asarray(METHODS[method].score(data, shared, labels, seed), dtype=np.float64)
