"""Results computed once per process, the threads that compute them, and their keys.

A result (latents, a map, a classifier) is stored under a key built from what it was
computed from: the data set's and the checkpoint's file versions (an :class:`Identity`)
and the options. One builder per kind of result makes its key, and both the code that
computes a result and every reader ask that builder, so no key is ever put together by
hand and a reader cannot miss a result that is there.

Training runs for minutes and takes every core it is given; maps and other work must
not wait behind it. Each has its own executor.
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dashboard import settings
from dashboard.job_store import JobStore

Stamp = tuple[str, int, int]
#: Identity of a data set version: its resolved folder and :attr:`quack.data.datafolder.DataFolder.version`.
DataVersion = tuple[str, str]


def stamp(path: str | os.PathLike) -> Stamp:
    """Identity of a file version: resolved path, size and modification time."""
    p = Path(path).expanduser().resolve()
    s = p.stat()
    return (str(p), s.st_size, s.st_mtime_ns)


def data_version(data_dir: str | os.PathLike) -> DataVersion:
    """Identity of a data set as its files are now (one folder or a folder of parts).

    Raises
    ------
    quack.errors.QuackInputError
        When the folder is not a data set.
    """
    from quack.data.datafolder import DataFolder

    folder = DataFolder(Path(data_dir).expanduser().resolve())
    return (str(folder.path), folder.version)


def digest(*parts: Any) -> str:
    """A short, stable name for some values (their ``repr``)."""
    return hashlib.sha1(repr(parts).encode()).hexdigest()[:12]


def array_digest(values: Any, dtype: Any = None) -> str:
    """A short, stable name for an array's contents (its bytes, dtype and shape), read once without copies."""
    array = np.ascontiguousarray(values, dtype=dtype)
    named = hashlib.sha1(f"{array.dtype.str}{array.shape}".encode())
    named.update(memoryview(array).cast("B"))
    return named.hexdigest()[:12]


@dataclass(frozen=True)
class Identity:
    """What every computed result of a session depends on.

    Attributes
    ----------
    data : DataVersion
        The data set (:func:`data_version`).
    checkpoint : Stamp
        The checkpoint file.
    """

    data: DataVersion
    checkpoint: Stamp

    @classmethod
    def of(cls, data_dir: str | os.PathLike, checkpoint: str | os.PathLike) -> "Identity":
        """The identity of a data set folder under a checkpoint, as the files are now."""
        return cls(data_version(data_dir), stamp(checkpoint))


# ----------------------------------------------------------------------------------
# Key builders: the only places a key is made.


def source_key(source: dict) -> str:
    """Name of a data source in the cache: the sample by size, seed and folder; files by version.

    Files read keeping a truncated file's first rows make another data set than the same
    files read whole.
    """
    if source["kind"] == "sample":
        size = settings.sample_size()
        return "sample-" + digest(size, settings.SAMPLE_SEED, str(settings.sample_folder(size).resolve()))
    partial = "-partial" if source.get("keep_partial") else ""
    return source["kind"] + "-" + digest([stamp(p) for p in source["paths"]]) + partial


def dataset_key(source: dict, tokenizer_json: str) -> str:
    """Folder name of a source's data set tokenized by one tokenizer."""
    return f"{source_key(source)}-{digest(tokenizer_json)}"


def encoded_key(identity: Identity, with_loss: bool) -> tuple:
    """Key of the latents of every record (with reconstruction losses or without)."""
    return ("encoded", identity, bool(with_loss))


def pca_key(identity: Identity, dims: int) -> tuple:
    """Key of the PCA map."""
    return ("pca", identity, int(dims))


#: The map a visitor sees first: UMAP's options before anyone changes them.
UMAP_DEFAULTS = {"n_neighbors": 15, "min_dist": 0.1, "metric": "euclidean", "fit_rows": 50_000}


def umap_key(
    identity: Identity, dims: int, n_neighbors: int, min_dist: float, metric: str, fit_rows: int = 0
) -> tuple:
    """Key of a UMAP map fitted on at most ``fit_rows`` records (0: all); distances equal to four places are the same map."""
    return ("umap", identity, int(dims), int(n_neighbors), round(float(min_dist), 4), str(metric), int(fit_rows))


def classifier_key(identity: Identity, labels: np.ndarray, seed: int = 0) -> tuple:
    """Key of the latent classifier trained on these labels."""
    return ("classifier", identity, array_digest(labels), int(seed))


def clusters_key(identity: Identity, min_cluster_size: int) -> tuple:
    """Key of the HDBSCAN clusters."""
    return ("clusters", identity, int(min_cluster_size))


def evaluation_key(identity: Identity, labels: np.ndarray, folds: int, top: tuple[int, ...]) -> tuple:
    """Key of the leave-fingerprints-out evaluation on these labels."""
    return ("evaluation", identity, array_digest(labels), int(folds), tuple(top))


def evaluation_data_key(identity: Identity, labels: np.ndarray) -> tuple:
    """Key of what the evaluation's methods see of the data set (quack.discovery.evaluation.EvaluationData)."""
    return ("evaluation-data", identity, array_digest(labels))


def ranking_key(identity: Identity, labels: np.ndarray, method: str) -> tuple:
    """Key of every record's score by one ranking method trained on these labels."""
    return ("ranking", identity, array_digest(labels), str(method))


def proposals_key(identity: Identity, labels: np.ndarray, rows: np.ndarray, share: float) -> tuple:
    """Key of the fingerprints proposed for some records and their matches over the data set."""
    return ("proposals", identity, array_digest(labels),
            array_digest(rows, np.int64), round(float(share), 4))


# ----------------------------------------------------------------------------------
# The store (:mod:`dashboard.job_store`).


_store: JobStore | None = None
_store_lock = threading.Lock()


def first_view(key) -> bool:
    """Whether a result is one every visitor of a data set needs: its latents, its 2-D PCA and its default UMAP map."""
    if not isinstance(key, tuple) or len(key) < 3:
        return False
    if key[0] == "encoded" or key[0] == "pca" and key[2] == 2:
        return True
    return key[0] == "umap" and key == umap_key(key[1], 2, **UMAP_DEFAULTS)


def store() -> JobStore:
    """The process's store, shared by every session (made on first use)."""
    global _store
    with _store_lock:
        if _store is None:
            _store = JobStore(max_bytes=settings.job_memory_bytes(), kept=first_view)
        return _store
