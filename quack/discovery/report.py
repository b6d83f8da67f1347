"""Scores of a ranking and the report of an evaluation.

The scores (:func:`rank`, :func:`precision_at`, :func:`recall_at`,
:func:`average_precision`, and all of them at once: :func:`ranking_scores`) judge one
method's ranking of the undetermined rows; :class:`EvaluationReport` holds the figures of
every fold, summarises them over folds and writes them as JSON or as a text table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from quack.discovery.rankers import METHODS, NEIGHBOURS
from quack.schema import Label

__all__ = ["EvaluationReport", "rank", "precision_at", "distinct_at", "recall_at", "average_precision", "ranking_scores",
           "purity_reach"]


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


def distinct_at(pages: np.ndarray, k: int) -> int:
    """How many distinct pages (families) the first ``k`` of a ranking hold; ``""`` (not one sought) is none."""
    first = [page for page in np.asarray(pages, dtype=object)[:k] if page]
    return len(set(first))


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


def ranking_scores(hits: np.ndarray, top: Sequence[int]) -> dict[str, float]:
    """The figures of one ranking: ``p@K`` and ``r@K`` for each K of ``top``, then ``ap``.

    Parameters
    ----------
    hits : numpy.ndarray
        (N,) bool: whether each ranked row, best first, is one being looked for.
    top : sequence of int
        The K of precision and recall at K.
    """
    figures = {}
    for k in top:
        figures[f"p@{k}"] = precision_at(hits, k)
    for k in top:
        figures[f"r@{k}"] = recall_at(hits, k)
    figures["ap"] = average_precision(hits)
    return figures


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
        if not self.folds:
            lines = [f"no family hidden; {self.rows} rows ({_label_counts(self.rows_per_label)})"]
        else:
            lines += _figure_table(self.summary(), self.top, spread=True, censorship=censorship)
        if censorship:
            lines.append(f"C@{self.top[0]}: share of the first {self.top[0]} that the truth calls a blockpage, "
                         "hidden or unknown to every fingerprint")
        if self.folds:
            lines.append(
                f"purity: {_number(self.purity['mean'])} of the {NEIGHBOURS} nearest latents of a hidden record are "
                f"of its own family (mean over {self.purity['records']} records); {purity_reach(self.purity)}"
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
                                   self.top, spread=False, distinct="f@" + str(self.top[0]) in scores["random"])
            if "f@" + str(self.top[0]) in scores["random"]:
                lines.append("F@K: distinct unknown pages (families) among the first K")
            lines.append(f"purity of unknown pages: {_number(truth['purity']['mean'])} "
                         f"(mean over {truth['purity']['records']} records); {purity_reach(truth['purity'])}")
        return "\n".join(lines)


def purity_reach(purity: dict) -> str:
    """The purity's ceiling and its figure within reach, for a family of fewer than eleven rows."""
    return (f"at most {_number(purity['ceiling'])} with families this small, "
            f"{_number(purity['within_reach'])} of the nearest a family can fill")


def _label_counts(rows_per_label: dict[str, int]) -> str:
    return ", ".join(f"{rows_per_label.get(str(label.value), 0)} {label.display}"
                     for label in Label.ordered())


def _figure_table(summary: dict, top: Sequence[int], spread: bool, censorship: bool = False,
                  distinct: bool = False) -> list[str]:
    figures = [f"p@{k}" for k in top] + [f"r@{k}" for k in top] + ["ap"] + ([f"c@{top[0]}"] if censorship else [])
    figures += [f"f@{k}" for k in top] if distinct else []
    width = 11 if spread else 6
    header = f"{'method':<20}" + "".join(f"{f.upper():>{width + 1}}" for f in figures)
    lines = [header]
    for method, values in summary.items():
        cells = []
        for figure in figures:
            mean, sd = values[figure]["mean"], values[figure]["sd"]
            if figure.startswith("f@") and not spread and mean is not None and float(mean).is_integer():
                cells.append(str(int(mean)))  # a count of pages in one run
            else:
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
    if figure.startswith("f@"):
        return float("nan")
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
