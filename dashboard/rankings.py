"""The Discover page's rankings: the evaluation that picks the best method, and the ranking by each method.

The leave-fingerprints-out evaluation (:func:`quack.discovery.evaluation.evaluate_data`) runs in the
background on the session's data set, latents and labels, bounded in rows and folds so
that a browser cannot start unbounded work; its progress is kept here for the page to
show. Once it is done the page ranks the undetermined records by the method it finds
best (by average precision), any other method one choice away. Fingerprint proposals
are in :mod:`dashboard.proposals`.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Hashable

import numpy as np
import pandas as pd

from dashboard import jobs, results, session, worker
from dashboard.loaders import Session
from quack.discovery.options import EVALUATION
from quack.schema import Label

if TYPE_CHECKING:
    from quack.discovery.report import EvaluationReport

#: Records the dashboard evaluates at most; a larger data set is evaluated with `quack evaluate`.
MAX_ROWS = 50_000
#: Folds at most: with more families than this, they are split into this many groups.
MAX_FOLDS = 5
#: The dashboard's evaluation: `quack evaluate`'s smallest family and seed, and more K, the
#: points of the precision-at-K curve.
CONFIG = replace(EVALUATION, top=(5, 10, 20, 50, 100, 200, 500))
#: The K the table shows.
TABLE_TOP = (50, 100)
#: The ranking choice that follows the evaluation.
BEST = "best"
#: The method ranking before the evaluation is done.
LATENT = "latent_classifier"

_progress: dict[Hashable, tuple[float, str]] = {}
_progress_lock = threading.Lock()


def _report(key: Hashable, share: float, text: str) -> None:
    with _progress_lock:
        _progress[key] = (min(max(share, 0.0), 1.0), text)


def progress_of(key: Hashable) -> tuple[float, str]:
    """How far a background evaluation is: (share done, what it is doing)."""
    with _progress_lock:
        return _progress.get(key, (0.0, "waiting for a free worker"))


# ----------------------------------------------------------------------------------
# The evaluation.


def check_size(labels: np.ndarray) -> None:
    """Refuse a data set larger than the dashboard evaluates.

    Raises
    ------
    ValueError
        One sentence naming the limit and the command line that has none.
    """
    if len(labels) > MAX_ROWS:
        raise ValueError(
            f"This data set has {len(labels):,} records, more than the {MAX_ROWS:,} the dashboard evaluates; "
            "evaluate a sample of it with `quack evaluate` on the command line."
        )


def fold_count(family_of_rows: np.ndarray) -> int:
    """Folds the dashboard runs: one per family of ``CONFIG.min_rows`` records or more, :data:`MAX_FOLDS` at most.

    Raises
    ------
    ValueError
        When no family labels enough records to be hidden.
    """
    named = family_of_rows[family_of_rows != ""].astype(str)
    _, counts = np.unique(named, return_counts=True)
    eligible = int((counts >= CONFIG.min_rows).sum())
    if not eligible:
        raise ValueError(
            f"No fingerprint family labels {CONFIG.min_rows} records or more of this data set, so there is no "
            "family to hide and nothing to evaluate; the evaluation needs blockpages the fingerprints know."
        )
    return min(eligible, MAX_FOLDS)


def _evaluation_data(s: Session, labels: np.ndarray, relabelled: Path | None, report: Callable[[float, str], None],
                     truth: np.ndarray | None = None):
    """The data set as the methods see it, on the session's labels (stored for the rankings).

    With the sample's ground truth, the evaluation also scores each method against every
    blockpage no fingerprint knows, as ``quack evaluate --truth`` does.
    """
    from quack.discovery.evaluation_data import EvaluationData, families_of

    store = jobs.store()
    key = jobs.evaluation_data_key(s.identity, labels)
    data = store.get(key)
    if data is not None:
        return data
    encoded = store.get(jobs.encoded_key(s.identity, True))
    if encoded is None:
        def encoding(done: int, total: int) -> None:
            report(0.6 * done / max(total, 1), f"the latents and losses of the records, {done:,} / {total:,}")

        # An encoded folder that holds the losses is read: the model runs on no record.
        encoded = results.encoding_with_loss(s, encoding, background=True)
        store.put(jobs.encoded_key(s.identity, True), encoded)
    report(0.6, "reading every record's tokens and response text")
    data = EvaluationData.from_dataset(s.data_dir, encoded.latents, encoded.loss)
    if relabelled is not None:
        # The session's own fingerprints labelled some records: their families count too.
        names = pd.read_parquet(relabelled, columns=["fingerprint"])["fingerprint"].to_numpy()
        data.labels, data.families = np.asarray(labels, dtype=np.int64), families_of(labels, names)
    if truth is not None and ((truth == "unknown_blockpage") & (data.labels == Label.UNDETERMINED)).any():
        data.truth = np.asarray(truth, dtype=object)
    store.put(key, data)
    return data


def evaluation_key(s: Session, labels: np.ndarray) -> tuple:
    """The key the session's evaluation is stored under."""
    return jobs.evaluation_key(s.identity, labels, MAX_FOLDS, CONFIG.top)


def evaluation_job(s: Session, labels: np.ndarray, relabelled: Path | None, start: bool = True,
                   truth: np.ndarray | None = None) -> Future | None:
    """Start (or, with ``start=False``, only find) the leave-fingerprints-out evaluation in the background.

    Returns
    -------
    concurrent.futures.Future or None
        Its result is a :class:`quack.discovery.evaluation.EvaluationReport`; it fails with a
        ValueError of one sentence when the data cannot be evaluated.

    Raises
    ------
    ValueError
        When the data set is larger than :data:`MAX_ROWS`.
    """
    from quack.discovery.evaluation import evaluate_data

    check_size(labels)
    key = evaluation_key(s, labels)
    labels = np.array(labels, copy=True)

    def compute():
        data = _evaluation_data(s, labels, relabelled, lambda share, text: _report(key, 0.5 * share, text), truth)
        folds = fold_count(data.families)
        done = [0]

        def say(line: str) -> None:
            done[0] += 1
            _report(key, 0.5 + 0.5 * done[0] / (folds + 2), line)

        # In the worker process: its models keep every thread they start busy for minutes.
        return worker.call(evaluate_data, data, folds=folds, top=CONFIG.top, seed=CONFIG.seed,
                           min_rows=CONFIG.min_rows, progress=say, where="this data set")

    return jobs.store().submit(key, compute, start=start, owner=session.session_id())


def evaluation(s: Session, labels: np.ndarray, relabelled: Path | None, truth: np.ndarray | None = None) -> Future:
    """The session's evaluation job, started when there is none; a failed one stays failed (no retry loop).

    Raises
    ------
    ValueError
        When the data set is larger than :data:`MAX_ROWS`.
    """
    return (evaluation_job(s, labels, relabelled, start=False)
            or evaluation_job(s, labels, relabelled, truth=truth))


@dataclass(frozen=True)
class EvaluationState:
    """The session's evaluation as one run of the page sees it.

    Read once per run: the job may end while the page runs, and the page shows one state of it.

    Attributes
    ----------
    job : concurrent.futures.Future or None
        The background job; None when the data set is refused.
    refused : ValueError or None
        Why the dashboard does not evaluate this data set (too large).
    report : quack.discovery.report.EvaluationReport or None
        The result, once the job is done.
    failure : BaseException or None
        Why the job failed, when it did.
    aps : dict
        Each method's mean average precision (empty until done).
    best : str or None
        The method of the highest mean average precision (None until done).
    """

    job: Future | None
    refused: ValueError | None
    report: EvaluationReport | None
    failure: BaseException | None
    aps: dict[str, float]
    best: str | None


def evaluation_state(s: Session, labels: np.ndarray, relabelled: Path | None,
                     truth: np.ndarray | None = None) -> EvaluationState:
    """Start the session's evaluation when there is none, and read where it stands.

    ``truth`` is the sample's ground truth (:func:`dashboard.loaders.sample_truth`), when the session has one.
    """
    try:
        job, refused = evaluation(s, labels, relabelled, truth), None
    except ValueError as error:
        job, refused = None, error
    report, failure = None, None
    if job is not None and job.done():
        failure = job.exception()
        report = job.result() if failure is None else None
    if report is None:
        return EvaluationState(job, refused, None, failure, {}, None)
    return EvaluationState(job, refused, report, failure, average_precisions(report), best_method(report))


def summary_table(report) -> pd.DataFrame:
    """Each method's figures as ``mean ± sd`` over folds, the best AP first, the random ranking last."""
    summary = report.summary()
    ks = [k for k in TABLE_TOP if k in report.top]
    figures = [f"p@{k}" for k in ks] + [f"r@{k}" for k in ks] + ["ap"]
    aps = average_precisions(report)
    order = sorted(report.methods, key=lambda m: -aps[m] if np.isfinite(aps[m]) else np.inf)
    rows = []
    for method in [*order, "random"]:
        row = {"method": method_name(method)}
        for figure in figures:
            mean, sd = summary[method][figure]["mean"], summary[method][figure]["sd"]
            row[figure.upper()] = "–" if not np.isfinite(mean) else f"{mean:.2f} ± {sd:.2f}"
        if report.truth is not None:
            row.update(_truth_figures(report.truth, method, ks[:1]))
        rows.append(row)
    return pd.DataFrame(rows)


def _truth_figures(truth: dict, method: str, ks: list[int]) -> dict[str, str]:
    """A method's figures against the sample's ground truth, every fingerprint used (one run: no sd).

    The random ranking's are its expectation, the share of unknown blockpages among the ranked.
    """
    base = truth["positives"] / max(truth["ranked"], 1)
    scores = truth["scores"].get(method, {f"p@{k}": base for k in ks} | {"ap": base})
    return {f"truth {figure.upper()}": "–" if not np.isfinite(scores[figure]) else f"{scores[figure]:.2f}"
            for figure in [f"p@{k}" for k in ks] + ["ap"]}


def precision_curves(report) -> dict[str, tuple[list[int], list[float]]]:
    """Mean precision at each K of the report up to the undetermined records ranked, per method and random."""
    most = max((fold["ranked"] for fold in report.folds), default=0)
    ks = [k for k in report.top if k <= most] or report.top[:1]
    summary = report.summary()
    return {method: (ks, [summary[method][f"p@{k}"]["mean"] for k in ks]) for method in summary}


def average_precisions(report) -> dict[str, float]:
    """Each method's mean average precision over folds."""
    summary = report.summary()
    return {method: summary[method]["ap"]["mean"] for method in report.methods}


def best_method(report) -> str:
    """The method with the highest mean average precision (the first listed among equals)."""
    scores = average_precisions(report)
    finite = {m: v for m, v in scores.items() if v is not None and np.isfinite(v)}
    return max(finite, key=finite.get) if finite else LATENT


# ----------------------------------------------------------------------------------
# Ranking.


def method_name(method: str) -> str:
    """How a method of :data:`quack.discovery.rankers.METHODS` reads on the page."""
    return method.replace("_", " ")


def methods() -> list[str]:
    """The ranking choices: the evaluation's best, then every method."""
    from quack.discovery.rankers import METHODS

    return [BEST, *METHODS]


def scores(s: Session, labels: np.ndarray, method: str) -> np.ndarray | None:
    """Every record's score by a method trained on the labels, higher likelier censored.

    The latent classifier is the page's own (:func:`dashboard.results.classifier`); the
    other methods need what the evaluation reads of the data set: None until it is read.
    """
    if method == LATENT:
        return results.classifier(s)[1]
    data = jobs.store().get(jobs.evaluation_data_key(s.identity, labels))
    if data is None:
        return None

    def compute(progress: Callable[[int, int], None]) -> np.ndarray:
        from quack.discovery.rankers import score_rows

        progress(0, 1)
        values = score_rows(method, data, labels, CONFIG.seed, min_cluster_size=CONFIG.min_rows)
        progress(1, 1)
        return values

    return results.computed(jobs.ranking_key(s.identity, labels, method), compute,
                            f"Ranking by {method_name(method)}")
