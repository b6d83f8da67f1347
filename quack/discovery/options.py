"""The options of the leave-fingerprints-out evaluation and of counting patterns, with their defaults.

:data:`EVALUATION` holds what :func:`quack.discovery.evaluation.evaluate` and ``quack
evaluate`` use unless told otherwise; a caller with other needs (the dashboard's longer
precision-at-K curve) makes its own :class:`EvaluationConfig` from it with
:func:`dataclasses.replace`, so every default is written here once.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["EvaluationConfig", "EVALUATION", "SCAN_SECONDS"]


@dataclass(frozen=True)
class EvaluationConfig:
    """How an evaluation is run and scored.

    Attributes
    ----------
    top : tuple of int
        The K of precision and recall at K.
    min_rows : int
        Smallest fingerprint family a fold hides; also HDBSCAN's smallest cluster, so
        that a family that small can form one.
    seed : int
        Seeds the folds, the training split, the methods and the order of ties.
    """

    top: tuple[int, ...] = (50, 100, 500)
    min_rows: int = 5
    seed: int = 0


#: The evaluation's defaults.
EVALUATION = EvaluationConfig()

#: Seconds patterns may search a whole data set for when counted while someone waits
#: (the dashboard's proposals and pattern box); past it the counts cover the records
#: scanned so far, so no pattern holds a server.
SCAN_SECONDS = 10.0
