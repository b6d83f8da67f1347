"""Leave-fingerprints-out evaluation: would a method have found a blockpage family the fingerprints did not know?

Discovery cannot be scored on undetermined records, whose truth nobody knows. It can be
scored on records whose truth is known, by pretending it is not: hide some fingerprint
families, so that the records they labelled censored become undetermined, train each
method on the labels that remain, rank every undetermined record, and see how many of the
hidden families' records come first. A method that ranks them high would have found
those blockpages had their fingerprints not been written yet.

A **family** is a fingerprint name with a trailing ``_<digits>`` removed, since Censored
Planet numbers the variants of one product's or one country's page
(``a_prod_fortinet_1`` ... ``_8`` are the family ``a_prod_fortinet``): hiding one variant
while its siblings still label the same pages would tell a method the answer. ``groups``
merges further: every name that starts with one of the given prefixes (``b_nat_ir_``)
is one family named by the prefix. A row belongs to the family of the fingerprint stored
with it, the first that matched when the data set was built; only censored rows have one.
Hiding a family makes exactly its rows undetermined; another fingerprint that would also
have matched them does not rescue them, as the data set keeps one name a row.

The methods, side by side (:data:`METHODS`): the seed's latent classifier, logistic
regression on bag-of-tokens counts and on TF-IDF of the response text, the
reconstruction loss as an anomaly score, the distance to the nearest censored latents
and the censored share of a row's HDBSCAN cluster. The supervised ones train on the same
rows, those the latent classifier trains on (:func:`quack.classifier.split_labelled`:
80 % of each labelled class, the larger class sampled down to the smaller).

Each fold is scored by precision and recall at each K of ``top`` and by average
precision, over the ranking of all undetermined rows (ties in a random order drawn from
the seed); the report gives each figure per fold and its mean and standard deviation
over folds. The **purity** of a hidden record is the share of its ten nearest latents
(among all rows, itself left out) that belong to its own family: how well the latent
space alone keeps a family together, whatever the method.

With a ground-truth file (the built-in sample writes one), one more run trains on every
fingerprint label and scores the ranking against the records the truth calls unknown
blockpages: the discovery the project is about, measured directly. Each fold then also
gives ``c@K``, the share of the first K that is censorship of any kind, hidden or unknown
to every fingerprint: precision at K counts a blockpage no fingerprint knows as a miss,
and where such pages are many (the samples) they take the ranks the hidden family would.

The data set is encoded once per call and every fold reuses the latents, the losses,
the clusters and the neighbour index. Token counts and hashed text counts are built in
batches from the Parquet files, so the text of every row is never in memory at once; the
latents and the sparse counts are. HDBSCAN's time grows faster than the rows, so evaluate
a sample of a large scan (hundreds of thousands of rows, not millions).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Sequence

import numpy as np

from quack.schema import Label

if TYPE_CHECKING:
    from scipy import sparse

__all__ = [
    "METHODS",
    "EvaluationData",
    "EvaluationReport",
    "family_of",
    "token_counts",
    "text_counts",
    "read_truth",
    "rank",
    "precision_at",
    "recall_at",
    "average_precision",
    "evaluate",
    "evaluate_data",
]

#: Neighbours averaged by the purity figure and by the censored-distance method.
NEIGHBOURS = 10
#: Share of each labelled class the latent classifier holds out; every supervised method
#: trains on the same remaining rows.
TEST_SIZE = 0.2
# Hashed text features: enough buckets that collisions between words are rare.
_TEXT_BUCKETS = 2**20
# Rows read from Parquet at a time when counting tokens and words.
_BATCH_ROWS = 4096
_VARIANT = re.compile(r"_\d+$")

Progress = Callable[[str], None]


def family_of(name: str, groups: Sequence[str] = ()) -> str:
    """The family of a fingerprint name: its longest prefix in ``groups``, else the name less a trailing ``_<digits>``.

    Parameters
    ----------
    name : str
        A fingerprint name (``a_prod_fortinet_3``).
    groups : sequence of str
        Prefixes that each make one family of every name starting with them.

    Returns
    -------
    str
        ``a_prod_fortinet`` for ``a_prod_fortinet_3``; the prefix itself when one matches.
    """
    matching = [prefix for prefix in groups if prefix and name.startswith(prefix)]
    if matching:
        return max(matching, key=len)
    return _VARIANT.sub("", name)


def token_counts(sequences: Iterable[Sequence[int]], vocab_size: int) -> sparse.csr_matrix:
    """Bag-of-tokens counts: one row per sequence, one column per token id.

    Parameters
    ----------
    sequences : iterable of sequences of int
        Token ids of each record, each below ``vocab_size``.
    vocab_size : int

    Returns
    -------
    scipy.sparse.csr_matrix
        (N, vocab_size) float32 counts.
    """
    from scipy import sparse

    arrays = [np.asarray(s, dtype=np.int64) for s in sequences]
    indptr = np.concatenate([[0], np.cumsum([len(a) for a in arrays], dtype=np.int64)])
    indices = np.concatenate(arrays) if arrays else np.zeros(0, np.int64)
    counts = sparse.csr_matrix(
        (np.ones(len(indices), np.float32), indices, indptr), shape=(len(arrays), vocab_size)
    )
    counts.sum_duplicates()
    return counts


def text_counts(texts: Iterable[str]) -> sparse.csr_matrix:
    """Hashed counts of the words and word pairs of each response text.

    Hashing needs no vocabulary, so batches of a large data set can be counted one at a
    time and stacked; :func:`evaluate_data` turns the counts into TF-IDF.

    Parameters
    ----------
    texts : iterable of str

    Returns
    -------
    scipy.sparse.csr_matrix
        (N, 2**20) float32 counts.
    """
    from sklearn.feature_extraction.text import HashingVectorizer

    vectorizer = HashingVectorizer(
        n_features=_TEXT_BUCKETS, ngram_range=(1, 2), alternate_sign=False, norm=None, dtype=np.float32
    )
    return vectorizer.transform(list(texts)).tocsr()


@dataclass
class EvaluationData:
    """What the methods see of a data set: labels, families, latents, losses and counts.

    Attributes
    ----------
    labels : numpy.ndarray
        (N,) the data set's labels (censored 1, undetermined 0, uncensored -1).
    families : numpy.ndarray
        (N,) str: the family of a censored row's fingerprint, ``""`` for other rows.
    latents : numpy.ndarray
        (N, H) float32.
    loss : numpy.ndarray
        (N,) reconstruction loss of each row.
    tokens : scipy.sparse.csr_matrix
        (N, V) bag-of-tokens counts (:func:`token_counts`).
    words : scipy.sparse.csr_matrix
        (N, F) hashed word counts of the response text (:func:`text_counts`).
    truth : numpy.ndarray or None
        (N,) str ground truth of each row (``unknown_blockpage``, ...), when known.
    pages : numpy.ndarray or None
        (N,) str page of each row's ground truth (``""`` when it names none).
    """

    labels: np.ndarray
    families: np.ndarray
    latents: np.ndarray
    loss: np.ndarray
    tokens: sparse.csr_matrix
    words: sparse.csr_matrix
    truth: np.ndarray | None = None
    pages: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64)
        self.families = np.asarray(self.families, dtype=object)
        self.latents = np.asarray(self.latents, dtype=np.float32)
        self.loss = np.asarray(self.loss, dtype=np.float64)
        n = len(self.labels)
        shapes = [len(self.families), self.latents.shape[0], len(self.loss), self.tokens.shape[0], self.words.shape[0]]
        if any(size != n for size in shapes):
            raise ValueError(f"Every input of the evaluation needs one entry per row ({n}); got {shapes}.")

    @classmethod
    def from_dataset(
        cls,
        data_dir: str | os.PathLike,
        latents: np.ndarray,
        loss: np.ndarray,
        vocab_size: int,
        groups: Sequence[str] = (),
        truth: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> "EvaluationData":
        """Read a data set's labels, fingerprints, tokens and response text in batches.

        Parameters
        ----------
        data_dir : path
            A data set written by ``quack ingest``.
        latents, loss : numpy.ndarray
            The data set's encoding, in row-id order.
        vocab_size : int
            The tokenizer's vocabulary, the width of the token counts.
        groups : sequence of str
            Family prefixes (:func:`family_of`).
        truth : (numpy.ndarray, numpy.ndarray), optional
            The truth and page of each row (:func:`read_truth`).
        """
        from scipy import sparse

        from quack.datafolder import DataFolder

        folder = DataFolder.open(data_dir, require_rows=True)
        labels, names, tokens, words = [], [], [], []
        for batch in folder.iter_batches(["label", "fingerprint", "tokens", "status", "headers", "body"],
                                         batch_size=_BATCH_ROWS):
            part = batch.to_pydict()
            labels.append(np.asarray(part["label"], dtype=np.int64))
            names.extend(name or "" for name in part["fingerprint"])
            tokens.append(token_counts(part["tokens"], vocab_size))
            words.append(text_counts(
                "\n".join(value or "" for value in fields)
                for fields in zip(part["status"], part["headers"], part["body"])
            ))
        label_array = np.concatenate(labels)
        truth_of, pages = truth if truth is not None else (None, None)
        return cls(label_array, _families(label_array, names, groups), latents, loss, sparse.vstack(tokens).tocsr(),
                   sparse.vstack(words).tocsr(), truth_of, pages)


def _families(labels: np.ndarray, names: Sequence[str | None], groups: Sequence[str]) -> np.ndarray:
    """The family of each censored row's fingerprint, ``""`` for the other rows."""
    return np.array([family_of(name, groups) if label == Label.CENSORED and name else ""
                     for name, label in zip(names, labels)], dtype=object)


def read_truth(path: str | os.PathLike, keys) -> tuple[np.ndarray, np.ndarray]:
    """Join a ground-truth file of the sample with a data set's rows.

    Parameters
    ----------
    path : path
        JSON lines of ``{"source", "line", "probe", "truth", "page"}``
        (:func:`quack.sample.write_sample`).
    keys : pandas.DataFrame
        ``source``, ``line`` and ``probe`` of each row; sources are matched by file name.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        The truth of each row (``""`` for a row the file does not name) and its page.

    Raises
    ------
    ValueError
        When the file cannot be read, is not a truth file, or names none of the rows.
    """
    path = Path(path).expanduser()
    found: dict[tuple[str, int, int], tuple[str, str]] = {}
    try:
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    item = json.loads(line)
                    key = (Path(item["source"]).name, int(item["line"]), int(item["probe"]))
                    found[key] = (str(item["truth"]), str(item.get("page") or ""))
                except (ValueError, KeyError, TypeError) as error:
                    raise ValueError(
                        f"{path} line {number} is not a ground-truth line ({error}); give the .truth.jsonl file "
                        "that `quack sample` wrote beside the measurements."
                    ) from None
    except OSError as error:
        raise ValueError(f"Cannot read the truth file {path} ({error.strerror or error}); check the path.") from None
    joined = [found.get((Path(s).name, int(l), int(p)), ("", "")) for s, l, p in
              zip(keys["source"], keys["line"], keys["probe"])]
    truth = np.array([t for t, _ in joined], dtype=object)
    if not (truth != "").any():
        raise ValueError(f"The truth file {path} names none of the data set's rows; give the truth of the "
                         "measurements the data set was built from.")
    return truth, np.array([p for _, p in joined], dtype=object)


# ----------------------------------------------------------------------------- scoring


def rank(scores: np.ndarray, candidates: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The candidate rows, highest score first; ties (and NaN, last) in a random order from ``rng``.

    A fixed order for ties, such as row order, would reward a method for where the
    hidden rows happen to sit in the file.
    """
    values = np.nan_to_num(np.asarray(scores, dtype=np.float64)[candidates], nan=-np.inf)
    tiebreak = rng.permutation(len(candidates))
    return np.asarray(candidates)[np.lexsort((tiebreak, -values))]


def precision_at(hits: np.ndarray, k: int) -> float:
    """Share of the first ``k`` of a ranking that are hits (of all of it, when it is shorter).

    Parameters
    ----------
    hits : numpy.ndarray
        (N,) bool: whether each ranked row, best first, is one being looked for.
    k : int
    """
    first = np.asarray(hits, dtype=bool)[:k]
    return float(first.mean()) if len(first) else float("nan")


def recall_at(hits: np.ndarray, k: int) -> float:
    """Share of all the hits that are among the first ``k`` of the ranking (NaN when there are none)."""
    hits = np.asarray(hits, dtype=bool)
    total = int(hits.sum())
    return float(hits[:k].sum() / total) if total else float("nan")


def average_precision(hits: np.ndarray) -> float:
    """Mean of the precision at the rank of each hit (NaN when there are none).

    The area under the precision-recall curve of the ranking, as
    ``sklearn.metrics.average_precision_score`` computes it for scores without ties.
    """
    hits = np.asarray(hits, dtype=bool)
    if not hits.any():
        return float("nan")
    positions = np.flatnonzero(hits)
    return float(np.mean(np.arange(1, len(positions) + 1) / (positions + 1)))


def _scores(hits: np.ndarray, top: Sequence[int]) -> dict[str, float]:
    figures = {}
    for k in top:
        figures[f"p@{k}"] = precision_at(hits, k)
    for k in top:
        figures[f"r@{k}"] = recall_at(hits, k)
    figures["ap"] = average_precision(hits)
    return figures


# ----------------------------------------------------------------------------- methods


class _Shared:
    """What every fold of one evaluation reuses: TF-IDF, clusters, a neighbour index."""

    def __init__(self, data: EvaluationData, min_cluster_size: int) -> None:
        self.data = data
        self.min_cluster_size = min_cluster_size

    @cached_property
    def tfidf(self) -> sparse.csr_matrix:
        from sklearn.feature_extraction.text import TfidfTransformer

        return TfidfTransformer(sublinear_tf=True).fit_transform(self.data.words).tocsr()

    @cached_property
    def clusters(self) -> np.ndarray:
        from quack.discover import cluster_latents

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
    from quack.classifier import split_labelled

    return split_labelled(labels, TEST_SIZE, seed)[0]


def _logistic(features: sparse.csr_matrix, labels: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression

    train = _training_rows(labels, seed)
    model = LogisticRegression(max_iter=2000, random_state=seed)
    model.fit(features[train], labels[train] == Label.CENSORED)
    return model.predict_proba(features)[:, 1]


def _latent_classifier(data: EvaluationData, shared: _Shared, labels: np.ndarray, seed: int) -> np.ndarray:
    import torch

    from quack.classifier import train_classifier

    # A full batch of a few thousand latents gains nothing from more threads, and on a
    # busy machine threads waiting for each other made each fold several times slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        report = train_classifier(data.latents, labels, seed=seed, test_size=TEST_SIZE)
        return report.model.predict_proba(data.latents).astype(np.float64)
    finally:
        torch.set_num_threads(threads)


def _bag_of_tokens(data: EvaluationData, shared: _Shared, labels: np.ndarray, seed: int) -> np.ndarray:
    return _logistic(data.tokens, labels, seed)


def _tfidf_text(data: EvaluationData, shared: _Shared, labels: np.ndarray, seed: int) -> np.ndarray:
    return _logistic(shared.tfidf, labels, seed)


def _reconstruction_loss(data: EvaluationData, shared: _Shared, labels: np.ndarray, seed: int) -> np.ndarray:
    return data.loss


def _censored_distance(data: EvaluationData, shared: _Shared, labels: np.ndarray, seed: int) -> np.ndarray:
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


def _hdbscan_clusters(data: EvaluationData, shared: _Shared, labels: np.ndarray, seed: int) -> np.ndarray:
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
    score: Callable[[EvaluationData, _Shared, np.ndarray, int], np.ndarray] = field(repr=False)


#: Every method, by name, in the order reports list them.
METHODS: dict[str, Method] = {m.name: m for m in (
    Method("latent_classifier", "the seed's dense classifier over latents (quack.classifier)", _latent_classifier),
    Method("bag_of_tokens", "logistic regression on counts of each token id", _bag_of_tokens),
    Method("tfidf_text", "logistic regression on TF-IDF of the words of status, headers and body", _tfidf_text),
    Method("reconstruction_loss", "the autoencoder's reconstruction loss, higher first (no labels)",
           _reconstruction_loss),
    Method("censored_distance", f"mean latent distance to the {NEIGHBOURS} nearest censored rows, nearer first",
           _censored_distance),
    Method("hdbscan_clusters", "censored share of the row's HDBSCAN cluster among its labelled rows",
           _hdbscan_clusters),
)}


# ----------------------------------------------------------------------------- the report


@dataclass
class EvaluationReport:
    """The figures of one evaluation, per fold and summarised.

    Attributes
    ----------
    data : str
        The data set (or a description of the arrays) evaluated.
    checkpoint : str or None
        The checkpoint whose latents were used.
    rows : int
    rows_per_label : dict
        Rows per label code (``"1"``, ``"0"``, ``"-1"``).
    families : dict
        Censored rows per family, largest first.
    top : list of int
        The K of precision and recall at K.
    methods : list of str
    folds : list of dict
        Per fold: ``hidden`` (families), ``positives`` (their rows), ``ranked`` (the
        undetermined rows ranked), ``scores`` (method -> figure -> value) and, with a
        truth, ``censorship`` (ranked rows the truth calls a blockpage).
    purity : dict
        ``mean`` over the hidden records, ``records``, and ``by_family`` means.
    truth : dict or None
        The run scored against the ground truth's unknown blockpages: ``positives``,
        ``ranked``, ``scores`` and ``purity`` (by unknown page), when a truth was given.
    settings : dict
        Seed, minimum rows of a family, prefixes, cluster size, neighbours.
    """

    data: str
    checkpoint: str | None
    rows: int
    rows_per_label: dict[str, int]
    families: dict[str, int]
    top: list[int]
    methods: list[str]
    folds: list[dict]
    purity: dict
    truth: dict | None = None
    settings: dict = field(default_factory=dict)

    def summary(self) -> dict[str, dict[str, dict[str, float]]]:
        """Per method and figure, the ``mean`` and ``sd`` (population) over folds."""
        out: dict[str, dict[str, dict[str, float]]] = {}
        for method in self.methods:
            figures = self.folds[0]["scores"][method].keys() if self.folds else ()
            out[method] = {
                figure: _mean_sd([fold["scores"][method][figure] for fold in self.folds]) for figure in figures
            }
        out["random"] = {
            figure: _mean_sd([_random_expectation(fold, figure) for fold in self.folds])
            for figure in (self.folds[0]["scores"][self.methods[0]].keys() if self.folds and self.methods else ())
        }
        return out

    def to_json(self) -> dict:
        """Everything in the report as plain JSON types (NaN as null)."""
        document = {
            "data": self.data,
            "checkpoint": self.checkpoint,
            "rows": self.rows,
            "rows_per_label": self.rows_per_label,
            "families": self.families,
            "top": self.top,
            "methods": {name: METHODS[name].description for name in self.methods},
            "settings": self.settings,
            "summary": self.summary(),
            "folds": self.folds,
            "purity": self.purity,
            "truth": self.truth,
        }
        return _plain(document)

    def table(self) -> str:
        """The summary as a fixed-width text table, then the purity and the truth run."""
        hidden = sum(fold["positives"] for fold in self.folds)
        lines = [
            f"leave-fingerprints-out: {len(self.folds)} fold{'s' if len(self.folds) != 1 else ''} over "
            f"{sum(len(fold['hidden']) for fold in self.folds)} of {len(self.families)} families, "
            f"{hidden} hidden rows; {self.rows} rows ({_label_counts(self.rows_per_label)})",
            "mean ± sd over folds; random = the expectation of a random ranking",
        ]
        censorship = bool(self.folds) and "censorship" in self.folds[0]
        lines += _figure_table(self.summary(), self.top, spread=True, censorship=censorship)
        if censorship:
            lines.append(f"C@{self.top[0]}: share of the first {self.top[0]} that the truth calls a blockpage, "
                         "hidden or unknown to every fingerprint")
        lines.append(
            f"purity: {_number(self.purity['mean'])} of the {NEIGHBOURS} nearest latents of a hidden record are "
            f"of its own family (mean over {self.purity['records']} records)"
        )
        if self.truth is not None:
            truth = self.truth
            lines.append("")
            lines.append(
                f"against the ground truth: {truth['positives']} unknown-blockpage rows among {truth['ranked']} "
                "undetermined, every fingerprint label used"
            )
            scores = dict(truth["scores"])
            scores["random"] = {figure: _random_expectation(truth, figure) for figure in
                                next(iter(truth["scores"].values()))}
            lines += _figure_table({m: {f: {"mean": v, "sd": 0.0} for f, v in s.items()} for m, s in scores.items()},
                                   self.top, spread=False)
            lines.append(f"purity of unknown pages: {_number(truth['purity']['mean'])} "
                         f"(mean over {truth['purity']['records']} records)")
        return "\n".join(lines)


def _label_counts(rows_per_label: dict[str, int]) -> str:
    return ", ".join(f"{rows_per_label.get(str(label.value), 0)} {label.display}"
                     for label in (Label.CENSORED, Label.UNDETERMINED, Label.UNCENSORED))


def _figure_table(summary: dict, top: Sequence[int], spread: bool, censorship: bool = False) -> list[str]:
    figures = [f"p@{k}" for k in top] + [f"r@{k}" for k in top] + ["ap"] + ([f"c@{top[0]}"] if censorship else [])
    width = 11 if spread else 6
    header = f"{'method':<20}" + "".join(f"{f.upper():>{width + 1}}" for f in figures)
    lines = [header]
    for method, values in summary.items():
        cells = []
        for figure in figures:
            mean, sd = values[figure]["mean"], values[figure]["sd"]
            cells.append(f"{_number(mean)}±{_number(sd)}" if spread else _number(mean))
        lines.append(f"{method:<20}" + "".join(f"{cell:>{width + 1}}" for cell in cells))
    return lines


def _number(value: float | None) -> str:
    return "  -" if value is None or not np.isfinite(value) else f"{value:.2f}"


def _mean_sd(values: list[float]) -> dict[str, float]:
    finite = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=np.float64)
    if not len(finite):
        return {"mean": float("nan"), "sd": float("nan")}
    return {"mean": float(finite.mean()), "sd": float(finite.std())}


def _random_expectation(run: dict, figure: str) -> float:
    """What a ranking in random order scores, in expectation, on a run with these counts.

    For AP, the share of positives among the ranked rows: the expectation for long rankings.
    """
    positives, ranked = run["positives"], run["ranked"]
    if figure.startswith("c@"):
        return run["censorship"] / ranked
    if figure.startswith("p@") or figure == "ap":
        return positives / ranked
    k = int(figure[2:])
    return min(k, ranked) / ranked


def _plain(value):
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    return value


# ----------------------------------------------------------------------------- the protocol


def _folds(
    labels: np.ndarray, families: np.ndarray, hide: Sequence[str] | None, folds: int | None, min_rows: int,
    groups: Sequence[str], seed: int, where: str,
) -> list[list[str]]:
    """The families each fold hides; every option is checked here, before anything is encoded."""
    counts = _family_counts(families)
    if not counts:
        raise ValueError(
            f"{where} has no rows a blockpage fingerprint labelled censored, so there is no family to hide; "
            "build it with fingerprints that match some of its rows."
        )
    if hide:
        chosen = list(dict.fromkeys(family_of(name, groups) for name in hide))
        unknown = [name for name in chosen if name not in counts]
        if unknown:
            names = sorted(counts)
            listed = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
            raise ValueError(
                f"No fingerprint family named {unknown[0]!r} labels rows of {where}; its families are {listed}."
            )
        return _trainable([chosen], labels, counts, where)
    eligible = sorted(name for name, n in counts.items() if n >= min_rows)
    if not eligible:
        raise ValueError(
            f"No fingerprint family labels at least {min_rows} rows of {where}; lower --min-rows "
            f"(the largest family has {max(counts.values())})."
        )
    if folds is None:
        folds = len(eligible)
    if not 1 <= folds <= len(eligible):
        raise ValueError(
            f"--folds must be between 1 and the {len(eligible)} families that label at least {min_rows} rows, "
            f"got {folds}."
        )
    order = np.random.default_rng(seed).permutation(len(eligible))
    return _trainable([sorted(eligible[i] for i in part) for part in np.array_split(order, folds)], labels, counts,
                      where)


def _family_counts(families: np.ndarray) -> dict[str, int]:
    names, counts = np.unique(families[families != ""].astype(str), return_counts=True)
    return dict(sorted(zip(names.tolist(), counts.tolist()), key=lambda item: (-item[1], item[0])))


def _trainable(parts: list[list[str]], labels: np.ndarray, counts: dict[str, int], where: str) -> list[list[str]]:
    """The folds, once sure that each leaves two rows of each label to learn from."""
    uncensored = int(np.sum(labels == Label.UNCENSORED))
    if uncensored < 2:
        raise ValueError(f"The methods need at least two uncensored rows to learn from and {where} has {uncensored}; "
                         "use a data set with both labels.")
    for hidden in parts:
        left = sum(counts.values()) - sum(counts[name] for name in hidden)
        if left < 2:
            raise ValueError(
                f"The methods need at least two censored rows to learn from and hiding {', '.join(hidden)} leaves "
                f"{left}; hide fewer families, or use more folds."
            )
    return parts


def _run(
    data: EvaluationData, shared: _Shared, labels: np.ndarray, positives: np.ndarray, methods: Sequence[str],
    top: Sequence[int], seed: int, censorship: np.ndarray | None = None,
) -> dict:
    """Rank the undetermined rows of ``labels`` by each method and score against ``positives``.

    With ``censorship`` (every row the truth calls a blockpage), each method also gets
    ``c@K``, the share of its first K rows that are censorship of any kind.
    """
    candidates = np.flatnonzero(labels == Label.UNDETERMINED)
    scores = {}
    for name in methods:
        ranking = rank(METHODS[name].score(data, shared, labels, seed), candidates, np.random.default_rng(seed))
        scores[name] = _scores(positives[ranking], top)
        if censorship is not None:
            scores[name].update({f"c@{k}": precision_at(censorship[ranking], k) for k in top})
    result = {"positives": int(positives[candidates].sum()), "ranked": int(len(candidates)), "scores": scores}
    if censorship is not None:
        result["censorship"] = int(censorship[candidates].sum())
    return result


def _purity(shared: _Shared, rows: np.ndarray, groups: np.ndarray) -> dict:
    """Share of each row's nearest latents in its own group: mean over rows and per group."""
    if not len(rows):
        return {"mean": float("nan"), "records": 0, "by_family": {}}
    share = (groups[shared.neighbours(rows)] == groups[rows][:, None]).mean(axis=1)
    by_family = {str(name): float(share[groups[rows] == name].mean()) for name in np.unique(groups[rows])}
    return {"mean": float(share.mean()), "records": int(len(rows)), "by_family": by_family}


def _check_options(methods: Sequence[str] | None, top: Sequence[int], min_rows: int) -> tuple[list[str], list[int]]:
    """The methods and the K of ``top`` to use, checked."""
    chosen = list(METHODS) if methods is None else list(dict.fromkeys(methods))
    unknown = [name for name in chosen if name not in METHODS]
    if unknown or not chosen:
        raise ValueError(
            f"Unknown method {unknown[0] if unknown else '(none)'!r}; the methods are {', '.join(METHODS)}."
        )
    ks = sorted({int(k) for k in top})
    if not ks or ks[0] < 1:
        raise ValueError(f"--top needs positive numbers of rows, got {list(top)}.")
    if min_rows < 1:
        raise ValueError(f"--min-rows must be at least 1, got {min_rows}.")
    return chosen, ks


def evaluate_data(
    data: EvaluationData,
    hide: Sequence[str] | None = None,
    folds: int | None = None,
    top: Sequence[int] = (50, 100, 500),
    seed: int = 0,
    methods: Sequence[str] | None = None,
    progress: Progress | None = None,
    min_rows: int = 5,
    groups: Sequence[str] = (),
    where: str = "the data set",
) -> EvaluationReport:
    """Run the leave-fingerprints-out protocol on data already read and encoded.

    Parameters
    ----------
    data : EvaluationData
    hide : sequence of str, optional
        Families (or fingerprint names, mapped to their family) to hide, as one fold.
    folds : int, optional
        Without ``hide``: split the families of at least ``min_rows`` rows into this many
        folds at random (seeded); None hides each such family on its own.
    top : sequence of int
        The K of precision and recall at K.
    seed : int
        Seeds the folds, the training split, the methods and the order of ties.
    methods : sequence of str, optional
        Names from :data:`METHODS`; None runs them all.
    progress : callable, optional
        Called with a short line before each step.
    min_rows : int
        Smallest family ``folds`` hides; also HDBSCAN's smallest cluster, so that a
        family that small can form one.
    groups : sequence of str
        Family prefixes (:func:`family_of`), for the names in ``hide``.
    where : str
        How messages name the data.

    Returns
    -------
    EvaluationReport

    Raises
    ------
    ValueError
        One sentence: an unknown method or family, a bad ``top``, ``folds`` or
        ``min_rows``, no censored rows, or too few labelled rows left to train on.
    """
    say = progress or (lambda message: None)
    methods, top = _check_options(methods, top, min_rows)
    parts = _folds(data.labels, data.families, hide, folds, min_rows, groups, seed, where)
    shared = _Shared(data, min_cluster_size=min_rows)
    fold_results, hidden_rows = [], []
    for number, hidden in enumerate(parts, 1):
        say(f"fold {number}/{len(parts)}: hiding {', '.join(hidden)}")
        positives = np.isin(data.families, hidden)
        labels = data.labels.copy()
        labels[positives] = Label.UNDETERMINED
        censorship = positives | (data.truth == "unknown_blockpage") if data.truth is not None else None
        fold_results.append({"hidden": hidden, **_run(data, shared, labels, positives, methods, top, seed, censorship)})
        hidden_rows.append(np.flatnonzero(positives))
    say("purity of the hidden families")
    purity = _purity(shared, np.concatenate(hidden_rows), data.families)
    truth = None
    if data.truth is not None:
        say("ranking against the ground truth")
        unknown_rows = data.truth == "unknown_blockpage"
        if not (unknown_rows & (data.labels == Label.UNDETERMINED)).any():
            raise ValueError(f"The ground truth marks no undetermined row of {where} as an unknown blockpage, "
                             "so there is nothing to find; give the truth of another sample.")
        truth = _run(data, shared, data.labels, unknown_rows, methods, top, seed)
        pages = data.pages if data.pages is not None else data.truth
        truth["purity"] = _purity(shared, np.flatnonzero(unknown_rows), np.where(unknown_rows, pages, ""))
    rows_per_label = {str(label.value): int(np.sum(data.labels == label)) for label in Label}
    return EvaluationReport(
        data=where, checkpoint=None, rows=int(len(data.labels)), rows_per_label=rows_per_label,
        families=_family_counts(data.families), top=top, methods=methods, folds=fold_results, purity=purity,
        truth=truth,
        settings={"seed": seed, "min_rows": min_rows, "groups": list(groups), "neighbours": NEIGHBOURS,
                  "min_cluster_size": min_rows, "test_size": TEST_SIZE},
    )


def evaluate(
    data_dir: str | os.PathLike,
    model=None,
    hide: Sequence[str] | None = None,
    folds: int | None = None,
    top: Sequence[int] = (50, 100, 500),
    seed: int = 0,
    methods: Sequence[str] | None = None,
    progress: Progress | None = None,
    min_rows: int = 5,
    groups: Sequence[str] = (),
    truth: str | os.PathLike | None = None,
    device: str | None = None,
) -> EvaluationReport:
    """Encode a data set once and run the leave-fingerprints-out protocol on it.

    Parameters
    ----------
    data_dir : path
        A data set written by ``quack ingest`` with the checkpoint's tokenizer.
    model : QuackAutoEncoder or path, optional
        The model, or its checkpoint file; None uses the shipped checkpoint.
    hide, folds, top, seed, methods, progress, min_rows, groups
        As :func:`evaluate_data` takes them.
    truth : path, optional
        The sample's ground truth, for one more run scored against its unknown blockpages.
    device : str, optional
        Where to encode (``cpu``, ``cuda``, ...); by default the best device present.

    Returns
    -------
    EvaluationReport

    Raises
    ------
    ValueError
        One sentence, as :func:`evaluate_data`, or when the data set is not one or was
        tokenized by another tokenizer than the model's.
    """
    from quack.datafolder import DataFolder
    from quack.encoding import SHIPPED_CHECKPOINT, check_tokenizer_matches, encode_dataset, load_checkpoint

    say = progress or (lambda message: None)
    folder = DataFolder.open(data_dir, require_rows=True)
    where = str(folder.path)
    # Every option and input is checked before the encoding, the one slow step.
    _check_options(methods, top, min_rows)
    stored = folder.read_rows(["label", "fingerprint"])
    labels = stored["label"].to_numpy()
    _folds(labels, _families(labels, stored["fingerprint"].tolist(), groups), hide, folds, min_rows,
           groups, seed, where)
    truth_arrays = read_truth(truth, folder.read_rows(["source", "line", "probe"])) if truth is not None else None
    checkpoint = None
    if model is None or isinstance(model, (str, os.PathLike)):
        checkpoint = str(model or SHIPPED_CHECKPOINT)
        model = load_checkpoint(checkpoint)
    check_tokenizer_matches(model, folder.path)
    say(f"encoding {folder.n_rows} rows")
    encoded = encode_dataset(model, folder.path, device=device, with_loss=True)
    say("reading labels, tokens and text")
    data = EvaluationData.from_dataset(folder.path, encoded.latents, encoded.loss, model.hparams.num_embeddings,
                                       groups=groups, truth=truth_arrays)
    report = evaluate_data(data, hide=hide, folds=folds, top=top, seed=seed, methods=methods, progress=progress,
                           min_rows=min_rows, groups=groups, where=where)
    report.checkpoint = checkpoint
    return report
