"""Shared state of the dashboard: where things live, what the session has chosen, and
every cached loader and computation, in one place.

Pages read the current data set and checkpoint from here and ask here for latents,
maps, scores and attention; nothing is computed twice for the same data and
checkpoint. Results are keyed by the files' paths, sizes and modification times, so a
replaced file is picked up and an unchanged one is never recomputed.

Long computations show a progress bar only when they actually run; a result already
computed (in this session or another) comes back at once.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import streamlit as st

from quack.atomic import atomic_write

REPO = Path(__file__).resolve().parents[1]

# Session keys, all in one place so pages agree on them.
SOURCE = "quack.source"  # dict: kind ("sample" | "path" | "upload"), paths, name
CHECKPOINT = "quack.checkpoint"  # str path of the chosen checkpoint
RECORD = "quack.record"  # int id of the record opened on the Attention page
SECOND_RECORD = "quack.second_record"  # int id shown beside it
SELECTION = "quack.selection"  # list of record ids selected on the map
TRAINING = "quack.training"  # id of this session's training run
FINGERPRINTS = "quack.user_fingerprints"  # str path of the user fingerprint file
LABEL_OVERRIDE = "quack.relabelled"  # str path of a relabelled copy of the data set


def cache_root() -> Path:
    """The dashboard's cache folder: ``QUACK_CACHE_DIR`` or ``.quack-cache/`` in the repository."""
    root = Path(os.environ.get("QUACK_CACHE_DIR") or REPO / ".quack-cache").expanduser()
    root.mkdir(parents=True, exist_ok=True)
    return root


def checkpoint_root() -> Path:
    """Where checkpoints trained in the dashboard are saved: ``QUACK_CHECKPOINT_DIR`` or ``checkpoints/``."""
    root = Path(os.environ.get("QUACK_CHECKPOINT_DIR") or REPO / "checkpoints").expanduser()
    root.mkdir(parents=True, exist_ok=True)
    return root


def start_umap_warmup() -> None:
    """Compile UMAP in a background thread (once per process)."""
    from quack.projection import warm_umap

    warm_umap()


# numba reads its cache folder when first imported, which may be in any page's job;
# keep its cache with the dashboard's unless the user chose another place.
os.environ.setdefault("NUMBA_CACHE_DIR", str(cache_root() / "numba"))


def stamp(path: str | os.PathLike) -> tuple[str, int, int]:
    """Identity of a file for cache keys: resolved path, size and modification time."""
    p = Path(path).expanduser().resolve()
    s = p.stat()
    return (str(p), s.st_size, s.st_mtime_ns)


def _digest(*parts: Any) -> str:
    return hashlib.sha1(repr(parts).encode()).hexdigest()[:12]


# ----------------------------------------------------------------------------------
# Process-wide store of computed results, with progress shown only when computing.


class _Store:
    def __init__(self, max_items: int = 48) -> None:
        self.items: OrderedDict[Any, Any] = OrderedDict()
        self.max_items = max_items
        self.lock = threading.Lock()
        self.jobs: dict[Any, Future] = {}
        self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="quack-job")

    def get(self, key: Any) -> Any:
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key]
        return _MISSING

    def put(self, key: Any, value: Any) -> None:
        with self.lock:
            self.items[key] = value
            self.items.move_to_end(key)
            while len(self.items) > self.max_items:
                self.items.popitem(last=False)


_MISSING = object()


@st.cache_resource(show_spinner=False)
def _store() -> _Store:
    return _Store()


def computed(key: Any, compute: Callable[[Callable[[int, int], None]], Any], label: str) -> Any:
    """Return the result stored under ``key``, computing it with a progress bar if absent.

    Parameters
    ----------
    key : hashable
        Identity of the result (built from file stamps and options).
    compute : callable
        ``compute(progress)`` returns the result; ``progress(done, total)`` moves the bar.
    label : str
        What the progress bar says.

    Returns
    -------
    object
        The result, shared across sessions: treat it as read-only.
    """
    store = _store()
    value = store.get(key)
    if value is not _MISSING:
        return value
    bar = st.progress(0.0, text=label)
    started = time.perf_counter()

    def progress(done: int, total: int) -> None:
        share = min(done / total, 1.0) if total else 1.0
        rate = done / max(time.perf_counter() - started, 1e-9)
        bar.progress(share, text=f"{label} — {done:,} / {total:,} ({rate:,.0f}/s)")

    try:
        value = compute(progress)
    finally:
        bar.empty()
    store.put(key, value)
    return value


def background(key: Any, compute: Callable[[], Any], start: bool = True) -> Future | None:
    """Run ``compute`` in a worker thread once per key; its result is stored under ``key``.

    Returns
    -------
    concurrent.futures.Future or None
        The job; already done when the result was stored before. With ``start=False``
        no job is started: None unless one exists.
    """
    store = _store()
    value = store.get(key)
    if value is not _MISSING:
        done: Future = Future()
        done.set_result(value)
        return done
    with store.lock:
        job = store.jobs.get(key)
        if not start:
            return job
        if job is None or (job.done() and job.exception() is not None and not job.running()):
            def run() -> Any:
                result = compute()
                store.put(key, result)
                return result

            job = store.pool.submit(run)
            store.jobs[key] = job
        return job


def forget(key: Any) -> None:
    """Drop a stored result and a failed job, so the next ask computes again."""
    store = _store()
    with store.lock:
        store.items.pop(key, None)
        store.jobs.pop(key, None)


# ----------------------------------------------------------------------------------
# Checkpoint and data set.


def shipped_checkpoint() -> Path:
    """The checkpoint that ships with the repository."""
    from quack.encoding import SHIPPED_CHECKPOINT

    return Path(SHIPPED_CHECKPOINT)


def checkpoint_path() -> Path:
    """The session's checkpoint: the one chosen, else ``QUACK_CHECKPOINT``, else the shipped one."""
    return Path(st.session_state.get(CHECKPOINT) or os.environ.get("QUACK_CHECKPOINT") or shipped_checkpoint())


@st.cache_resource(show_spinner="Loading the checkpoint…", max_entries=4)
def _load_model(path: str, size: int, mtime: int):
    from quack.encoding import load_checkpoint

    return load_checkpoint(path)


def load_model(path: str | os.PathLike | None = None):
    """The autoencoder of a checkpoint (the session's by default), loaded once per file version.

    Raises
    ------
    ValueError
        When the file is missing or not a quack checkpoint.
    """
    path = Path(path) if path is not None else checkpoint_path()
    if not path.is_file():
        raise ValueError(f"Checkpoint {path} does not exist; choose another on the Model page.")
    return _load_model(*stamp(path))


def tokenizer_key(model) -> str:
    """Short digest of a model's tokenizer: data sets are tokenized per tokenizer."""
    return _digest(model.tokenizer_json)


def list_checkpoints() -> list[Path]:
    """Checkpoints on disk: the shipped one first, then those under the checkpoint folder, newest first."""
    found = {p.resolve() for p in checkpoint_root().rglob("*.ckpt")}
    found |= {p.resolve() for p in (cache_root() / "uploads").glob("*.ckpt")}
    shipped = shipped_checkpoint().resolve()
    others = sorted(found - {shipped}, key=lambda p: p.stat().st_mtime, reverse=True)
    return ([shipped] if shipped.is_file() else []) + others


def source() -> dict:
    """The session's data source; the built-in sample unless another was chosen."""
    return st.session_state.get(SOURCE) or {"kind": "sample", "paths": [], "name": "Built-in sample"}


def sample_files() -> Path:
    """The built-in sample's records file, generated once into the cache folder.

    ``QUACK_SAMPLE_SIZE`` sets the number of measurements (5000 by default).
    """
    from quack.sample import write_sample

    folder = cache_root() / "sample"
    records = folder / "sample.json"
    if not records.is_file():
        # Written in a private folder renamed at the end, so an interrupted start leaves
        # no half-written sample; the file keeps its final name, which the ground
        # truth refers to.
        work = Path(tempfile.mkdtemp(prefix=".sample-", dir=cache_root()))
        try:
            write_sample(work / "sample.json", n=int(os.environ.get("QUACK_SAMPLE_SIZE", "5000")), seed=0)
            try:
                os.replace(work, folder)
            except OSError:
                if not records.is_file():  # another session did not finish it either
                    raise
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return records


def _source_key(src: dict) -> str:
    if src["kind"] == "sample":
        return "sample"
    return _digest([stamp(p) for p in src["paths"]])


def dataset_dir(src: dict | None = None, model=None) -> Path:
    """The tokenized data set of a source under a model's tokenizer, built on first use.

    Parameters
    ----------
    src : dict, optional
        Data source (the session's by default).
    model : QuackAutoEncoder, optional
        Whose tokenizer to use (the session checkpoint's by default).

    Returns
    -------
    pathlib.Path
        Folder with ``rows.parquet``, ``tokenizer.json`` and ``info.json``.

    Raises
    ------
    ValueError
        When the files cannot be read or hold no measurements.
    """
    from quack.dataset import build_dataset

    src = src or source()
    model = model or load_model()
    out = cache_root() / "datasets" / f"{_source_key(src)}-{tokenizer_key(model)}"
    if (out / "rows.parquet").is_file():
        return out
    paths = [str(sample_files())] if src["kind"] == "sample" else [str(p) for p in src["paths"]]
    bar = st.progress(0.0, text=f"Reading {src['name']}…")
    seen = {"ingest": 0}
    stages = {"ingest": (0.0, 0.45, "Reading"), "train": (0.45, 0.55, "Training a tokenizer on"),
              "tokenize": (0.55, 1.0, "Tokenizing")}

    def progress(done: int, stage: str) -> None:
        low, high, verb = stages.get(stage, (0.0, 1.0, "Preparing"))
        if stage == "ingest":
            seen["ingest"] = done
            share = 0.5  # the number of records is unknown until the files are read
        else:
            share = done / seen["ingest"] if seen["ingest"] else 0.0
        bar.progress(low + (high - low) * min(share, 1.0), text=f"{verb} {src['name']} — {done:,} records")

    try:
        build_dataset(paths, out, tokenizer=model.tokenizer, progress=progress, allow_empty=False)
    finally:
        bar.empty()
    return out


@st.cache_resource(show_spinner=False, max_entries=8)
def _rows(path: str, size: int, mtime: int) -> pd.DataFrame:
    from quack.dataset import read_rows

    frame = read_rows(Path(path).parent)
    return frame.drop(columns=[c for c in ("tokens",) if c in frame.columns])


def rows(data_dir: Path) -> pd.DataFrame:
    """The data set's records without their token lists, loaded once per file version.

    The frame is shared between sessions: read it, never change it in place.
    """
    return _rows(*stamp(Path(data_dir) / "rows.parquet"))


@st.cache_resource(show_spinner=False, max_entries=8)
def _texts(path: str, size: int, mtime: int) -> pd.Series:
    frame = _rows(path, size, mtime)
    empty = pd.Series([""] * len(frame), index=frame.index)
    status = frame["status"].fillna("").astype(str) if "status" in frame else empty
    headers = frame["headers"].fillna("").astype(str) if "headers" in frame else empty
    body = frame["body"].fillna("").astype(str) if "body" in frame else empty
    # HTTP(S) replies are stored in parts; echo/discard replies are whole in the body.
    error = frame["error"].fillna("").astype(str) if "error" in frame else empty
    head = (status + "\n" + headers).str.strip()
    whole = (head + "\n\n" + body).where(head != "", body)
    # A probe that got no reply at all still says why (a timeout, a reset).
    return whole.where(whole.str.strip() != "", ("(no response: " + error + ")").where(error != "", ""))


def texts(data_dir: Path) -> pd.Series:
    """Each record's response as a person would read it: status line, headers, body."""
    return _texts(*stamp(Path(data_dir) / "rows.parquet"))


def bodies(data_dir: Path) -> pd.Series:
    """Each record's payload text, the text the fingerprints are matched against."""
    return _bodies(*stamp(Path(data_dir) / "rows.parquet"))


@st.cache_resource(show_spinner=False, max_entries=8)
def _bodies(path: str, size: int, mtime: int) -> pd.Series:
    return _rows(path, size, mtime)["body"].fillna("").astype(str)


@st.cache_resource(show_spinner=False, max_entries=8)
def _snippets(path: str, size: int, mtime: int) -> np.ndarray:
    from dashboard.charts import snippet

    return np.array([snippet(t) for t in _texts(path, size, mtime).to_numpy()], dtype=object)


@st.cache_data(show_spinner=False, max_entries=8)
def _info(path: str, size: int, mtime: int) -> dict:
    from quack.dataset import read_info

    return read_info(Path(path).parent)


def info(data_dir: Path) -> dict:
    """The data set's info (rows, counts per label, sources, skipped lines)."""
    return _info(*stamp(Path(data_dir) / "info.json"))


def labels(data_dir: Path) -> np.ndarray:
    """Labels of the records, with the session's relabelling applied when there is one."""
    relabelled = st.session_state.get(LABEL_OVERRIDE)
    if relabelled and Path(relabelled).is_file():
        frame = pd.read_parquet(relabelled)
        if len(frame) == len(rows(data_dir)):
            return frame["label"].to_numpy()
    return rows(data_dir)["label"].to_numpy()


# ----------------------------------------------------------------------------------
# Latents, maps, scores.


@dataclass
class Session:
    """What the pages work on: the data set, the checkpoint and their cache identity."""

    data_dir: Path
    checkpoint: Path
    model: Any
    key: tuple = field(default=())


def current() -> Session:
    """The session's data set and checkpoint, loading and building what is missing.

    Raises
    ------
    ValueError
        When the checkpoint or the data cannot be used (a sentence saying why).
    """
    path = checkpoint_path()
    model = load_model(path)
    data_dir = dataset_dir(model=model)
    return Session(data_dir, path, model, (stamp(data_dir / "rows.parquet"), stamp(path)))


def encoded(s: Session):
    """Latents of every record (quack.encoding.Encoded), losses included once computed.

    The first map needs only the latents, so they are computed alone (about half the
    work); `encoded_with_loss` adds the reconstruction losses when they are asked for.
    """
    from quack.encoding import encode_dataset

    full = _store().get(("encoded", s.key, True))
    if full is not _MISSING:
        return full
    return computed(
        ("encoded", s.key, False),
        lambda progress: encode_dataset(s.model, s.data_dir, progress=progress, with_loss=False),
        "Encoding the data set",
    )


def encoded_with_loss(s: Session):
    """Latents and per-record reconstruction losses of every record."""
    from quack.encoding import encode_dataset

    return computed(
        ("encoded", s.key, True),
        lambda progress: encode_dataset(s.model, s.data_dir, progress=progress, with_loss=True),
        "Computing every record's reconstruction loss",
    )


def pca_map(s: Session, dims: int = 2) -> np.ndarray:
    """PCA coordinates of the latents (fast; the first map)."""
    from quack.projection import pca

    latents = encoded(s).latents
    return computed(("pca", s.key, dims), lambda progress: pca(latents, dims), "Projecting with PCA")


def umap_job(
    s: Session, dims: int, n_neighbors: int, min_dist: float, metric: str, start: bool = True
) -> tuple[tuple, Future | None]:
    """Start (or find) the UMAP map for these options in the background.

    Returns
    -------
    tuple
        The result's key and the job computing it (None when ``start`` is False and
        no job was started before).
    """
    from quack.projection import umap_project

    latents = encoded(s).latents
    key = ("umap", s.key, dims, n_neighbors, round(min_dist, 4), metric)
    return key, background(
        key,
        lambda: umap_project(latents, dims, n_neighbors=n_neighbors, min_dist=min_dist, metric=metric, seed=0),
        start=start,
    )


def classifier(s: Session, seed: int = 0):
    """The latent classifier trained on the labelled records, and every record's probability.

    Returns
    -------
    tuple
        (quack.classifier.ClassifierReport, (N,) probabilities of censorship).
    """
    from quack.classifier import train_classifier

    latents = encoded(s).latents
    lab = labels(s.data_dir)

    def fit(progress: Callable[[int, int], None]):
        progress(0, 1)
        report = train_classifier(latents, lab, seed=seed)
        progress(1, 1)
        return report, report.model.predict_proba(latents)

    return computed(("classifier", s.key, _digest(lab.tobytes()), seed), fit, "Training the latent classifier")


def clusters(s: Session, min_cluster_size: int) -> np.ndarray:
    """HDBSCAN cluster number of each record (-1: in no cluster)."""
    from quack.discover import cluster_latents

    latents = encoded(s).latents
    return computed(
        ("clusters", s.key, min_cluster_size),
        lambda progress: cluster_latents(latents, min_cluster_size=min_cluster_size),
        "Clustering the latent space",
    )


def record_tokens(s: Session, ids: list[int]):
    """Token tensors of some records, padded into one batch (B, T)."""
    from quack.dataset import QuackDataset, collate_tokens

    dataset = QuackDataset(s.data_dir)
    return collate_tokens([dataset[int(i)] for i in ids])


@st.cache_data(show_spinner="Running the model on the record…", max_entries=256)
def _inspect(key: tuple, data_dir: str, ids: tuple[int, ...], teacher_forcing: bool) -> list[dict]:
    import torch

    s = Session(Path(data_dir), Path(key[1][0]), load_model(key[1][0]), key)
    tokens = record_tokens(s, list(ids))
    with torch.inference_mode():
        out = s.model.inspect(tokens, teacher_forcing=teacher_forcing)
    results = []
    for b, record in enumerate(ids):
        n = int((tokens[b] != 1).sum())
        results.append(
            {
                "id": int(record),
                "input": tokens[b, :n].numpy(),
                "output": out["ids"][b, :n].numpy(),
                "probs": out["probs"][b, :n].float().numpy(),
                "attention": out["attention"][b, :n, :n].float().numpy(),
                "loss": float(out["loss"][b]),
            }
        )
    return results


def inspect(s: Session, ids: list[int], teacher_forcing: bool = True) -> list[dict]:
    """Reconstruction and attention of records, one dict each (input, output, probs, attention, loss)."""
    return _inspect(s.key, str(s.data_dir), tuple(int(i) for i in ids), teacher_forcing)


# ----------------------------------------------------------------------------------
# Training runs in the background.


@dataclass
class TrainingRun:
    """A training run going on in a worker thread."""

    run_id: str
    out_dir: Path
    recorder: Any
    future: Future
    options: dict
    started: float = field(default_factory=time.time)


@st.cache_resource(show_spinner=False)
def _runs() -> dict[str, TrainingRun]:
    return {}


def start_training(data_dir: Path, model_options: dict, max_epochs: int, batch_size: int, seed: int) -> TrainingRun:
    """Start training a new autoencoder on ``data_dir`` in a worker thread.

    The best checkpoint is copied to ``<checkpoint folder>/trained/<run>.ckpt`` when
    the run ends, where the Model page lists it.
    """
    from quack.training import LossRecorder, fit

    run_id = time.strftime("quack-%Y%m%d-%H%M%S")
    out_dir = cache_root() / "runs" / run_id
    recorder = LossRecorder()

    def train() -> Path:
        result = fit(
            data_dir,
            out_dir,
            model_options=model_options,
            max_epochs=max_epochs,
            batch_size=batch_size,
            seed=seed,
            accelerator="auto",
            devices=1,
            callbacks=[recorder],
            progress_bar=False,
            logger="csv",
        )
        target = checkpoint_root() / "trained" / f"{run_id}.ckpt"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(result.checkpoint, target)
        return target

    future = _store().pool.submit(train)
    run = TrainingRun(run_id, out_dir, recorder, future, {**model_options, "max_epochs": max_epochs})
    _runs()[run_id] = run
    return run


def training_run(run_id: str | None) -> TrainingRun | None:
    """A training run started in this process, by id."""
    return _runs().get(run_id) if run_id else None


# ----------------------------------------------------------------------------------
# Tables for the pages.

_TABLE_COLUMNS = ["id", "label", "country", "domain", "service", "vp", "status", "response"]


def record_table(data_dir: Path, labels: np.ndarray, ids: list[int]) -> pd.DataFrame:
    """A readable table of some records: metadata, label name and a response snippet."""
    from dashboard.charts import label_names, snippet

    frame = rows(data_dir)
    idx = np.asarray(ids, dtype=np.int64)
    table = frame.iloc[idx][[c for c in _TABLE_COLUMNS[2:-1] if c in frame.columns]].copy()
    table.insert(0, "label", label_names(labels[idx]))
    table.insert(0, "id", frame["id"].to_numpy()[idx])
    table["response"] = [snippet(t, 100, for_html=False) for t in texts(data_dir).to_numpy()[idx]]
    return table.reset_index(drop=True)


def hover_table(data_dir: Path, drawn: np.ndarray) -> pd.DataFrame:
    """Hover details of the drawn map points (id, domain, vantage point, country, status, snippet)."""
    frame = rows(data_dir)
    return pd.DataFrame(
        {
            "id": frame["id"].to_numpy()[drawn],
            "domain": frame["domain"].to_numpy()[drawn],
            "vp": frame["vp"].to_numpy()[drawn],
            "country": frame["country"].to_numpy()[drawn],
            "status": frame["status"].fillna("").astype(str).to_numpy()[drawn],
            "snippet": _snippets(*stamp(Path(data_dir) / "rows.parquet"))[drawn],
        }
    )


def filter_records(
    frame: pd.DataFrame, labels: np.ndarray, countries: list[str], services: list[str], wanted: list[str], search: str
) -> np.ndarray:
    """Row indices of the records passing the Data page's filters (empty filter: no restriction)."""
    from dashboard.charts import label_names

    keep = np.ones(len(frame), dtype=bool)
    if countries:
        keep &= frame["country"].isin(countries).to_numpy()
    if services:
        keep &= frame["service"].isin(services).to_numpy()
    if wanted:
        keep &= np.isin(label_names(labels), wanted)
    if search.strip():
        keep &= frame["domain"].fillna("").str.contains(search.strip(), case=False, regex=False).to_numpy()
    return np.flatnonzero(keep)


def nearest(s: Session, record: int, k: int = 10) -> np.ndarray:
    """Ids of a record's nearest neighbours in latent space."""
    from quack.projection import nearest_neighbors

    return nearest_neighbors(encoded(s).latents, record, k=k)[0]


def best_map(s: Session) -> np.ndarray:
    """The best 2-D map already computed: UMAP with default options when done, else PCA."""
    key, job = umap_job(s, 2, 15, 0.1, "euclidean", start=False)
    if job is not None and job.done() and job.exception() is None:
        return job.result()
    return pca_map(s, 2)


def balanced_subset(ids: list[int], labels: np.ndarray, limit: int, seed: int = 0) -> list[int]:
    """At most ``limit`` of the ids, shared as evenly as the selection allows between labels."""
    ids_array = np.asarray(ids, dtype=np.int64)
    groups = [np.random.default_rng(seed).permutation(ids_array[labels[ids_array] == lab]) for lab in (1, -1, 0)]
    chosen: list[int] = []
    quota = limit
    # Hand out the quota round by round so a small group leaves its share to the others.
    while quota > 0 and any(len(g) for g in groups):
        share = max(1, quota // sum(1 for g in groups if len(g)))
        for i, g in enumerate(groups):
            take = g[:share][: limit - len(chosen)]
            chosen.extend(int(v) for v in take)
            groups[i] = g[len(take):]
        quota = limit - len(chosen)
    return chosen


def field_attention(s: Session, ids: list[int], labels: np.ndarray, teacher_forcing: bool) -> dict[str, dict[str, float]]:
    """Mean attention share per field over records, grouped by label name."""
    from dashboard.charts import label_names
    from quack.discover import attention_by_field

    tokenizer = s.model.tokenizer
    groups: dict[str, list[dict[str, float]]] = {}
    names = label_names(labels[np.asarray(ids, dtype=np.int64)])
    bar = st.progress(0.0, text="Running the model over the selection")
    for start in range(0, len(ids), 64):
        batch = ids[start : start + 64]
        for result, name in zip(inspect(s, batch, teacher_forcing), names[start : start + 64]):
            fields = tokenizer.token_fields(result["input"].tolist())
            groups.setdefault(str(name), []).append(attention_by_field(result["attention"], fields))
        done = min(start + 64, len(ids))
        bar.progress(done / len(ids), text=f"Running the model over the selection — {done:,} / {len(ids):,}")
    bar.empty()
    order = [n for n in ("censored", "uncensored", "undetermined") if n in groups]
    return {
        name: {f: float(np.mean([share.get(f, 0.0) for share in groups[name]])) for f in {k for g in groups[name] for k in g}}
        for name in order
    }


def sample_truth(data_dir: Path) -> np.ndarray | None:
    """The generator's ground truth of every record of the built-in sample, else None.

    Values: ordinary, known_blockpage, unknown_blockpage, reset, timeout ("" when a
    record has none).
    """
    truth_file = cache_root() / "sample" / "sample.truth.jsonl"
    if source()["kind"] != "sample" or not truth_file.is_file():
        return None
    return _truth(*stamp(Path(data_dir) / "rows.parquet"), *stamp(truth_file))


@st.cache_resource(show_spinner=False, max_entries=4)
def _truth(path: str, size: int, mtime: int, truth_path: str, truth_size: int, truth_mtime: int) -> np.ndarray:
    keys = ["source", "line", "probe"]
    frame = _rows(path, size, mtime)[keys]
    truth = pd.read_json(truth_path, lines=True)[keys + ["truth"]]
    joined = frame.merge(truth, on=keys, how="left")
    return joined["truth"].fillna("").to_numpy(dtype=object)


@st.cache_data(show_spinner="Looking for text the responses share…", max_entries=64)
def propose(bodies: tuple[str, ...], share: float) -> str:
    """A fingerprint pattern common to the responses (quack.discover.propose_pattern), cached.

    Raises
    ------
    ValueError
        When the responses share no usable text.
    """
    from quack.discover import propose_pattern

    return propose_pattern(list(bodies), share=share)


# ----------------------------------------------------------------------------------
# Sources, uploads and checkpoints.


def path_source(path: str) -> dict:
    """A data source for a file or folder on the server.

    Raises
    ------
    ValueError
        When the path does not exist.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise ValueError(f"{p} does not exist on this server; give the path of a Quack results file or folder.")
    return {"kind": "path", "paths": [str(p.resolve())], "name": p.name or str(p)}


def save_upload(name: str, data: bytes) -> Path:
    """Keep an uploaded file in the cache folder, named by its content so re-uploads are reused."""
    safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in Path(name).name) or "upload"
    folder = cache_root() / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{hashlib.sha1(data).hexdigest()[:10]}-{safe}"
    if not target.is_file():
        atomic_write(target, lambda handle: handle.write(data))
    return target


def upload_source(files: list[tuple[str, bytes]]) -> dict:
    """A data source for uploaded files (kept in the cache folder)."""
    if not files:
        raise ValueError("No file was uploaded.")
    paths = [str(save_upload(name, data)) for name, data in files]
    name = files[0][0] if len(files) == 1 else f"{len(files)} uploaded files"
    return {"kind": "upload", "paths": paths, "name": name}


def describe_checkpoint(path: Path) -> str:
    """A short name for a checkpoint in a list."""
    path = Path(path)
    if path.resolve() == shipped_checkpoint().resolve():
        return f"{path.name} (shipped)"
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def user_fingerprint_file() -> Path:
    """The session's user fingerprint file (``user-fingerprints.json`` in the cache folder by default)."""
    return Path(st.session_state.get(FINGERPRINTS) or cache_root() / "user-fingerprints.json")


def relabel(s: Session, fingerprint_file: str | os.PathLike) -> int:
    """Label the data set again with the shipped fingerprints plus a user file.

    Only labels change (tokens stay); the new labels are kept beside the data set and
    used by this session's pages.

    Returns
    -------
    int
        How many records changed label.
    """
    from quack.discover import relabel_rows

    frame = rows(s.data_dir)
    new = relabel_rows(frame, [fingerprint_file])
    out = cache_root() / "relabelled" / f"{s.data_dir.name}-{_digest(stamp(fingerprint_file))}.parquet"
    atomic_write(out, lambda handle: new.to_parquet(handle, index=False))
    st.session_state[LABEL_OVERRIDE] = str(out)
    return int((new["label"].to_numpy() != frame["label"].to_numpy()).sum())


# ----------------------------------------------------------------------------------
# Export.


def default_export_dir(s: Session) -> Path:
    """A fresh folder for written output, under the cache folder."""
    return cache_root() / "exports" / time.strftime(f"{s.data_dir.name}-%Y%m%d-%H%M%S")


def write_encoded(s: Session, storage: str, layout: str, filtered: bool, evaluate: bool) -> Path:
    """Encode the data set with ``Trainer.predict`` and ``AutoencoderWriter``, with a progress bar.

    Raises
    ------
    ValueError
        When the folder exists and is not empty, or both filters are asked for.
    """
    import pytorch_lightning as pl

    from quack.autoencoder import AutoencoderWriter
    from quack.dataset import QuackDataModule
    from quack.encoding import BATCH_SIZES, best_device

    out = Path(storage).expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"{out} already exists and is not empty; choose a new folder.")
    if filtered and evaluate:
        raise ValueError("Choose labelled rows or undetermined rows, not both.")
    device = best_device()
    bar = st.progress(0.0, text="Writing the encoded data set")

    class _Progress(pl.Callback):
        def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
            total = trainer.num_predict_batches[0] if trainer.num_predict_batches else 1
            bar.progress(min((batch_idx + 1) / max(total, 1), 1.0),
                         text=f"Writing the encoded data set — batch {batch_idx + 1:,} of {total:,}")

    writer = AutoencoderWriter(write_interval="batch", storage_path=str(out), filtered=filtered, evaluate=evaluate, layout=layout)
    trainer = pl.Trainer(
        accelerator={"cuda": "gpu", "mps": "mps"}.get(device.type, "cpu"),
        devices=1,
        callbacks=[writer, _Progress()],
        logger=False,
        enable_model_summary=False,
        enable_progress_bar=False,
    )
    data = QuackDataModule(s.data_dir, batch_size=BATCH_SIZES.get(device.type, 256))
    try:
        trainer.predict(s.model, datamodule=data, return_predictions=False)
    finally:
        bar.empty()
        s.model.cpu().eval()
    return out


def describe_written(folder: str | os.PathLike) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """What a writer run left: its metadata summary, its files and the first rows read back."""
    import json

    from quack.autoencoder import load_encoded

    folder = Path(folder)
    summary = json.loads((folder / "metadata.json").read_text()) if (folder / "metadata.json").is_file() else {}
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    listing = pd.DataFrame(
        {"file": [str(p.relative_to(folder)) for p in files[:200]], "bytes": [p.stat().st_size for p in files[:200]]}
    )
    table = load_encoded(folder)
    preview = table.head(20).assign(latent=lambda t: [np.round(np.asarray(v)[:4], 3).tolist() for v in t["latent"]])
    return summary, listing, preview


def export_table(s: Session, with_latents: bool, with_loss: bool = False) -> pd.DataFrame:
    """Metadata, map coordinates, scores and (optionally) latents and losses of every record."""
    from quack.dataset import METADATA_COLUMNS

    frame = rows(s.data_dir)
    enc = encoded(s)
    table = frame[[c for c in METADATA_COLUMNS if c in frame.columns]].copy()
    table["label"] = labels(s.data_dir)
    coords = pca_map(s, 2)
    table["pca_x"], table["pca_y"] = coords[:, 0], coords[:, 1]
    key, job = umap_job(s, 2, 15, 0.1, "euclidean", start=False)
    if job is not None and job.done() and job.exception() is None:
        umap_coords = job.result()
        table["umap_x"], table["umap_y"] = umap_coords[:, 0], umap_coords[:, 1]
    if with_loss:
        table["reconstruction_loss"] = encoded_with_loss(s).loss
    stored = _store().get(("classifier", s.key, _digest(labels(s.data_dir).tobytes()), 0))
    if stored is not _MISSING:
        table["p_censored"] = stored[1]
    if with_latents:
        table["latent"] = list(enc.latents)
    return table


def export_bytes(s: Session, table: pd.DataFrame, fmt: str, with_latents: bool) -> tuple[bytes, str, str]:
    """The table as Parquet (latents as a list column) or CSV (one column per latent dimension)."""
    import io

    name = f"quack-{s.data_dir.name}"
    buffer = io.BytesIO()
    if fmt == "CSV":
        flat = table.drop(columns=["latent"]) if "latent" in table else table
        if with_latents and "latent" in table:
            latents = np.stack(table["latent"].to_numpy())
            flat = pd.concat([flat, pd.DataFrame(latents, columns=[f"latent_{i}" for i in range(latents.shape[1])])], axis=1)
        flat.to_csv(buffer, index=False)
        return buffer.getvalue(), f"{name}.csv", "text/csv"
    table.to_parquet(buffer, index=False)
    return buffer.getvalue(), f"{name}.parquet", "application/vnd.apache.parquet"
