"""What is computed from the model: latents, maps, the classifier, clusters, attention.

Results live in the job store (:mod:`dashboard.jobs`) under keys its builders make from
the session's :class:`~dashboard.jobs.Identity`, so nothing is computed twice for the
same data set and checkpoint. Long work shows a progress bar only while it runs; a
result already there comes back at once.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Hashable, Iterator

import numpy as np
import streamlit as st

from dashboard import jobs, loaders, responses, session, tables, worker
from dashboard.jobs import UMAP_DEFAULTS
from dashboard.loaders import Session, labels, load_model
from quack.schema import Label, label_names

#: The UMAP options a map starts with; other pages use the map made with them.
#: ``fit_rows``: UMAP is fitted on at most this many records, the others placed by them (0: all).


@contextmanager
def progress_bar(label: str) -> Iterator[Callable[[int, int], None]]:
    """A progress bar for the block, moved by calling ``progress(done, total)``; removed at the end."""
    bar = st.progress(0.0, text=label)
    started = time.perf_counter()

    def progress(done: int, total: int) -> None:
        share = min(done / total, 1.0) if total else 1.0
        rate = done / max(time.perf_counter() - started, 1e-9)
        bar.progress(share, text=f"{label} — {done:,} / {total:,} ({rate:,.0f}/s)")

    try:
        yield progress
    finally:
        bar.empty()


def computed(key: Hashable, compute: Callable[[Callable[[int, int], None]], Any], label: str) -> Any:
    """The result stored under ``key``, computed now with a progress bar when absent.

    ``compute(progress)`` makes it; the result is shared by every session: read-only. A
    session computes one result at a time, and waits for one another session computes.

    Raises
    ------
    dashboard.job_store.QueueFull
        When the session or the server already computes as much as it may.
    """
    store = jobs.store()
    with store.foreground(key, session.session_id()) as needed:
        if needed:
            with progress_bar(label) as progress:
                value = compute(progress)
            store.put(key, value)
            return value
    found = store.get(key)
    if found is None:
        # Dropped again at once by the store's memory bound: computed here without the cache.
        with progress_bar(label) as progress:
            found = compute(progress)
    return found


def encoded(s: Session):
    """Latents of every record (quack.model.encoding.Encoded), losses included once computed.

    A session on an encoded folder reads them from it (losses too, when it has them);
    otherwise the first map needs only the latents, computed alone (about half the work),
    and :func:`encoded_with_loss` adds the reconstruction losses when asked.
    """
    from dashboard.loaders import encoded_latents
    from quack.model.encoding import encode_dataset

    store = jobs.store()
    # The latents alone first: their rate and device are the encoding's, which a later
    # pass for the losses must not replace on the page.
    for with_loss in (False, True):
        found = store.get(jobs.encoded_key(s.identity, with_loss))
        if found is not None:
            return found
    if s.encoded_dir is not None:
        if folder_holds_loss(s):
            return encoded_with_loss(s)
        return computed(jobs.encoded_key(s.identity, False), lambda progress: encoded_latents(s, progress),
                        "Reading the latents of the encoded folder")
    return computed(jobs.encoded_key(s.identity, False),
                    lambda progress: encode_dataset(s.model, s.data_dir, progress=progress, with_loss=False),
                    "Encoding the data set")


def folder_holds_loss(s: Session) -> bool:
    """Whether the session opened an encoded folder that holds every record's reconstruction loss."""
    from quack.model.reader import holds_loss

    return s.encoded_dir is not None and holds_loss(s.encoded_dir)


def encoding_with_loss(s: Session, progress: Callable[[int, int], None] | None = None, background: bool = False):
    """Latents and reconstruction losses of every record, without the store or the page.

    Read from the session's encoded folder when it holds the losses; the model runs
    over the data set only when nothing written has them: in this process for a page that
    waits for them, in the worker process (:mod:`dashboard.worker`) for a ``background`` job.
    """
    from dashboard.loaders import encoded_latents
    from quack.model.encoding import encode_dataset

    if folder_holds_loss(s):
        return encoded_latents(s, progress)
    if background:
        return worker.call(encode_dataset, s.model, s.data_dir, progress=progress, with_loss=True)
    return encode_dataset(s.model, s.data_dir, progress=progress, with_loss=True)


def encoded_with_loss(s: Session):
    """Latents and per-record reconstruction losses of every record (read from an encoded folder that has them)."""
    key = jobs.encoded_key(s.identity, True)
    found = jobs.store().get(key)
    if found is not None:
        return found
    label = "Reading the latents and losses of the encoded folder" if folder_holds_loss(s) else \
        "Computing every record's reconstruction loss"
    return computed(key, lambda progress: encoding_with_loss(s, progress), label)


def pca_map(s: Session, dims: int = 2) -> np.ndarray:
    """PCA coordinates of the latents (fast; the first map)."""
    from quack.latents.maps import pca

    latents = encoded(s).latents
    return computed(jobs.pca_key(s.identity, dims), lambda progress: pca(latents, dims), "Projecting with PCA")


def umap_job(
    s: Session, dims: int, n_neighbors: int, min_dist: float, metric: str,
    fit_rows: int = UMAP_DEFAULTS["fit_rows"], start: bool = True,
):
    """Start (or, with ``start=False``, only find) the UMAP map for these options in the background.

    UMAP is fitted on at most ``fit_rows`` records chosen with every label represented
    (0: on all), and the others are placed by their nearest fitted records
    (:func:`quack.latents.maps.umap_at_scale`). The job reports how far it is into
    ``jobs.store().progress(key)``.

    Returns
    -------
    tuple
        The result's key and the job computing it (None when not started).
    """
    from quack.latents.maps import umap_at_scale

    latents = encoded(s).latents
    # The data set's own labels choose the fitted records, so relabelling does not move the map.
    fitted_by = loaders.rows(s.data_dir)["label"].to_numpy()
    key = jobs.umap_key(s.identity, dims, n_neighbors, min_dist, metric, fit_rows)
    progress = jobs.store().progress(key)

    def compute() -> np.ndarray:
        return umap_at_scale(latents, fitted_by, dims, fit_rows=fit_rows, n_neighbors=n_neighbors,
                             min_dist=min_dist, metric=metric, seed=0, progress=progress,
                             project=worker.umap_project)

    return key, jobs.store().submit(key, compute, start=start, owner=session.session_id(), maps=True)


def default_umap(s: Session) -> np.ndarray | None:
    """The 2-D UMAP map with the default options when it is computed, else None."""
    return jobs.store().finished(jobs.umap_key(s.identity, 2, **UMAP_DEFAULTS))


def best_map(s: Session) -> np.ndarray:
    """The best 2-D map already computed: the default UMAP when done, else PCA."""
    found = default_umap(s)
    return found if found is not None else pca_map(s, 2)


def classifier(s: Session, seed: int = 0):
    """The latent classifier trained on the labelled records, and every record's probability of censorship.

    Returns
    -------
    tuple
        (quack.latents.classifier.ClassifierReport, (N,) probabilities).
    """
    from quack.latents.classifier import train_classifier

    latents, lab = encoded(s).latents, labels(s.data_dir)

    def fit(progress: Callable[[int, int], None]):
        progress(0, 1)
        report = train_classifier(latents, lab, seed=seed)
        progress(1, 1)
        return report, report.model.predict_proba(latents)

    return computed(jobs.classifier_key(s.identity, lab, seed), fit, "Training the latent classifier")


def stored_probability(s: Session) -> np.ndarray | None:
    """Every record's probability of censorship when the classifier was trained on the current labels."""
    stored = jobs.store().get(jobs.classifier_key(s.identity, labels(s.data_dir)))
    return None if stored is None else stored[1]


def clusters(s: Session, min_cluster_size: int) -> np.ndarray:
    """HDBSCAN cluster number of each record (-1: in no cluster)."""
    from quack.discovery.clusters import cluster_latents

    latents = encoded(s).latents
    return computed(jobs.clusters_key(s.identity, min_cluster_size),
                    lambda progress: cluster_latents(latents, min_cluster_size=min_cluster_size),
                    "Clustering the latent space")


@st.cache_resource(show_spinner=False, max_entries=64)
def _nearest(identity: jobs.Identity, record: int, k: int, _latents: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    from quack.latents.neighbours import identical_rows, nearest_neighbors

    ids, distances = nearest_neighbors(_latents, record, k=k, apart=True)
    ids.flags.writeable = distances.flags.writeable = False  # shared by every session
    return ids, distances, len(identical_rows(_latents, record))


def nearest(s: Session, record: int, k: int = 10) -> tuple[np.ndarray, np.ndarray, int]:
    """A record's nearest neighbours in latent space, their distances, and how many records share its latent.

    Records whose latent equals the chosen one's exactly (short records of the same few
    tokens) are all at distance 0, in no order: they are counted, not listed. The search
    reads every latent (a second at a million records), so a page that reruns for a
    colour change or a selection finds the chosen record's neighbours here instead.
    """
    return _nearest(s.identity, int(record), int(k), encoded(s).latents)


@st.cache_data(show_spinner="Running the model on the record…", max_entries=256)
def _inspect(
    checkpoint: str, data_dir: str, version: tuple, ids: tuple[int, ...], teacher_forcing: bool
) -> list[dict]:
    # ``version`` (the files' stamps) only keys the cache: a replaced file is run again.
    import torch

    from quack.model.dataset import collate_tokens
    from quack.data.tokenizer import TOKENIZED_COLUMNS
    from quack.schema import PAD

    model = load_model(checkpoint)
    # Only the row groups holding these records are read, never every record's text. The
    # stored text is exactly what was tokenized, so the checkpoint's tokenizer gives the
    # stored tokens under that tokenizer, and its own tokens under any other.
    texts = responses.read_at(Path(data_dir), list(ids), list(TOKENIZED_COLUMNS))
    tokens = collate_tokens([torch.tensor(t, dtype=torch.long)
                             for t in model.tokenizer.encode_table(texts).to_pylist()])
    with torch.inference_mode():
        out = model.inspect(tokens, teacher_forcing=teacher_forcing)
    answers = []
    for b, record in enumerate(ids):
        n = int((tokens[b] != PAD).sum())
        answers.append({
            "id": record, "input": tokens[b, :n].numpy(), "output": out["ids"][b, :n].numpy(),
            "probs": out["probs"][b, :n].float().numpy(), "attention": out["attention"][b, :n, :n].float().numpy(),
            "loss": float(out["loss"][b]),
        })
    return answers


def inspect(s: Session, ids: list[int], teacher_forcing: bool = True) -> list[dict]:
    """Reconstruction and attention of records, one dict each (id, input, output, probs, attention, loss)."""
    version = (s.identity.checkpoint, s.identity.data)
    return _inspect(str(s.checkpoint), str(s.data_dir), version, tuple(int(i) for i in ids), teacher_forcing)


def field_attention(s: Session, ids: list[int], teacher_forcing: bool) -> dict[str, dict[str, float]]:
    """Mean attention share per field over records, grouped by label name (censored first)."""
    from quack.latents.attention_stats import attention_by_field

    names = label_names(labels(s.data_dir)[np.asarray(ids, dtype=np.int64)])
    groups: dict[str, list[dict[str, float]]] = {}
    with progress_bar("Running the model over the selection") as progress:
        for start in range(0, len(ids), 64):
            for result, name in zip(inspect(s, ids[start : start + 64], teacher_forcing), names[start : start + 64]):
                fields = s.model.tokenizer.token_fields(result["input"].tolist())
                groups.setdefault(str(name), []).append(attention_by_field(result["attention"], fields))
            progress(min(start + 64, len(ids)), len(ids))
    return {name: tables.mean_shares(groups[name]) for name in Label.by_display() if name in groups}
