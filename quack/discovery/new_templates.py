"""New templates: censored or undetermined records of a later period unlike anything of the earlier one.

A blockpage that starts in a country, or an ISP's filter page met for the first time, gives
records whose latent neighbourhood holds only records of the later period. For each such
record of the later period (a *candidate*) :func:`new_templates` compares the distance to
the nearest censored or undetermined record of the earlier period with the distance to
its ``k``-th nearest fellow candidate: a candidate is new when no earlier record is as
near as that. New candidates that neighbour each other form one template; each is
summed up with its countries, vantage points, domains, the first time it was seen and an
example record, whose response snippet :func:`snippets` reads.

At scale both sides are made of distinct latent vectors (records that flatten alike
share one) and capped by a deterministic sample, so the search is bounded whatever the
data set's size.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from quack.data.datafolder import DataFolder
from quack.latents.neighbours import nearest_rows, torch_view
from quack.schema import Label

__all__ = ["MAX_CANDIDATES", "MAX_REFERENCE", "new_templates", "snippets"]

#: Most distinct latent vectors of the later period searched; more are sampled down to it.
MAX_CANDIDATES = 20000
#: Most distinct latent vectors of the earlier period searched against.
MAX_REFERENCE = 60000
# Query rows per block of the search, and the most distances held at once (128 MB of them).
_BLOCK = 2048
_CELLS = 2**25
# One odd 64-bit number per word of a latent vector (up to 4,096 dimensions), for :func:`_row_keys`.
_MIX = np.random.default_rng(20211014).integers(0, 2**63, size=2048, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
_SUMMARY = ["template", "records", "censored", "undetermined", "countries", "vps", "domains", "first_seen",
            "example"]


def _row_keys(latents: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """A 64-bit key of each row's bytes, read a block at a time: equal vectors share a key.

    The key is a sum of the row's 64-bit words, each times its own odd number, modulo
    2^64; vectors that differ in one word never share a key, and two random ones share it
    with a chance of 2^-64.
    """
    keys = np.empty(rows.size, np.uint64)
    for start in range(0, rows.size, _BLOCK * 16):
        x = np.ascontiguousarray(latents[rows[start:start + _BLOCK * 16]], dtype=np.float32)
        if x.shape[1] % 2:
            x = np.pad(x, ((0, 0), (0, 1)))
        words = x.view(np.uint64)
        keys[start:start + len(x)] = (words * _MIX[:words.shape[1]]).sum(axis=1, dtype=np.uint64)
    return keys


def _distinct(latents: np.ndarray, rows: np.ndarray, most: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct latent vectors among ``rows`` (at most ``most``, sampled), their records' copies and each row's vector.

    Only the kept vectors are copied: the rows are told apart by :func:`_row_keys`.
    """
    if rows.size == 0:
        return np.empty((0, latents.shape[1]), np.float32), np.empty(0, np.int64), np.empty(0, np.int64)
    _, first, inverse, counts = np.unique(_row_keys(latents, rows), return_index=True, return_inverse=True,
                                          return_counts=True)
    kept = np.arange(first.size)
    if first.size > most:
        kept = np.sort(np.random.default_rng(seed).choice(first.size, most, replace=False))
    position = np.full(first.size, -1, np.int64)
    position[kept] = np.arange(kept.size)
    vectors = np.ascontiguousarray(latents[rows[first[kept]]], dtype=np.float32)
    return vectors, counts[kept], position[inverse.ravel()]


def _nearest(queries: np.ndarray, reference: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each query's ``k`` nearest reference rows, in blocks: (Q, k) distances and indices."""
    import torch

    ref = torch_view(reference)
    distances, indices = np.empty((len(queries), k), np.float32), np.empty((len(queries), k), np.int64)
    block = max(64, min(_BLOCK, _CELLS // max(len(reference), 1)))
    with torch.no_grad():
        for start in range(0, len(queries), block):
            d, i = nearest_rows(torch_view(queries[start:start + block]), ref, k, "euclidean")
            distances[start:start + block], indices[start:start + block] = d.numpy(), i.numpy()
    return distances, indices


def _kth_fellow(distances: np.ndarray, indices: np.ndarray, counts: np.ndarray, k: int) -> np.ndarray:
    """The distance to each candidate's ``k``-th nearest fellow record, copies of a vector counted."""
    # Column 0 is the vector itself: its other copies lie at distance 0.
    weights = counts[indices].astype(np.int64)
    weights[:, 0] -= 1
    reached = np.cumsum(weights, axis=1) >= k
    column = np.where(reached.any(axis=1), reached.argmax(axis=1), distances.shape[1] - 1)
    return distances[np.arange(len(distances)), column]


def _components(new: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Templates of the new vectors: connected through neighbours that are new too; -1 for the others."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    rows = np.repeat(np.arange(len(indices)), indices.shape[1])
    cols = indices.ravel()
    keep = new[rows] & new[cols]
    graph = coo_matrix((np.ones(int(keep.sum()), np.int8), (rows[keep], cols[keep])), shape=(len(new), len(new)))
    _, component = connected_components(graph, directed=True, connection="weak")
    return np.where(new, component, -1)


def new_templates(
    latents: np.ndarray,
    frame: pd.DataFrame,
    before: np.ndarray,
    after: np.ndarray,
    k: int = 40,
    min_records: int = 10,
    max_candidates: int = MAX_CANDIDATES,
    max_reference: int = MAX_REFERENCE,
    seed: int = 0,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Censored or undetermined records of ``after`` whose latent neighbourhood holds none of ``before``, grouped.

    Parameters
    ----------
    latents : numpy.ndarray
        (N, H) latent vectors, row ``i`` the record of ``frame``'s row ``i``.
    frame : pandas.DataFrame
        Records with ``label``, ``country``, ``vp``, ``domain``, ``time`` and ``id``.
    before, after : numpy.ndarray
        Boolean masks of the earlier and the later period.
    k : int
        Fellow candidates a new record must have nearer than any earlier record. A
        measurement's retries lie next to each other, so ``k`` spans several
        measurements; 40 kept every quiet day of the sample of days free of false
        templates (``BENCHMARKS.md``). A template of ``k`` records or fewer cannot be
        found: lower ``k`` for small scans.
    min_records : int
        Smallest template reported.
    max_candidates, max_reference : int
        Most distinct vectors searched on each side (:data:`MAX_CANDIDATES`, :data:`MAX_REFERENCE`).
    seed : int
        Seed of the sampling down to those caps.

    Returns
    -------
    (pandas.DataFrame, numpy.ndarray)
        One row per template, the largest first: ``template`` (a number), ``records``,
        ``censored``, ``undetermined``, ``countries`` (most first, with counts), ``vps``
        (how many), ``domains`` (most first), ``first_seen``, ``example`` (the id of its
        first record); and each record's template (-1 for none), (N,) int64.
    """
    if latents.shape[0] != len(frame):
        raise ValueError(f"The latents hold {latents.shape[0]} records and the data set {len(frame)}; encode the data "
                         "set again so that they belong together.")
    if k < 1 or min_records < 1:
        raise ValueError("k and min_records must be at least 1.")
    labels = frame["label"].to_numpy()
    flagged = (labels == Label.CENSORED) | (labels == Label.UNDETERMINED)
    candidates = np.flatnonzero(np.asarray(after, bool) & flagged)
    earlier = np.flatnonzero(np.asarray(before, bool) & flagged)
    template = np.full(len(frame), -1, np.int64)
    if candidates.size == 0:
        return pd.DataFrame(columns=_SUMMARY), template
    cand, counts, where = _distinct(latents, candidates, max_candidates, seed)
    ref, _, _ = _distinct(latents, earlier, max_reference, seed + 1)
    near = min(len(cand), k + 1)
    fellow_d, fellow_i = _nearest(cand, cand, near)
    kth = _kth_fellow(fellow_d, fellow_i, counts, k)
    if len(ref):
        to_earlier = _nearest(cand, ref, 1)[0][:, 0]
    else:
        to_earlier = np.full(len(cand), np.inf, np.float32)
    new = to_earlier > kth
    component = _components(new, fellow_i)
    placed = where >= 0
    template[candidates[placed]] = component[where[placed]]
    return _summaries(frame, template, min_records), template


def _summaries(frame: pd.DataFrame, template: np.ndarray, min_records: int) -> pd.DataFrame:
    members = frame.loc[template >= 0, ["label", "country", "vp", "domain", "time", "id"]].copy()
    members["template"] = template[template >= 0]
    found = []
    for number, group in members.groupby("template", sort=False):
        if len(group) < min_records:
            continue
        times = pd.to_datetime(group["time"], utc=True)
        first = group.iloc[int(np.argmin(times.fillna(pd.Timestamp.max.tz_localize("UTC")).to_numpy()))]
        found.append({
            "template": int(number), "records": len(group),
            "censored": int((group["label"] == Label.CENSORED).sum()),
            "undetermined": int((group["label"] == Label.UNDETERMINED).sum()),
            "countries": _most(group["country"]), "vps": int(group["vp"].nunique()), "domains": _most(group["domain"]),
            "first_seen": times.min(), "example": int(first["id"]),
        })
    table = pd.DataFrame(found, columns=_SUMMARY)
    table = table.sort_values("records", ascending=False, kind="stable", ignore_index=True)
    # Numbered by size, so the same comparison names its templates alike each time.
    renumber = np.full(int(template.max()) + 2, -1, np.int64)
    renumber[table["template"].to_numpy(np.int64)] = np.arange(len(table))
    template[:] = renumber[template]
    table["template"] = np.arange(len(table))
    return table


def _most(values: pd.Series, top: int = 5) -> str:
    counts = values.astype(str).value_counts()
    shown = ", ".join(f"{name or '?'} {n}" for name, n in counts.head(top).items())
    return shown + (f" (+{len(counts) - top} more)" if len(counts) > top else "")


def snippets(data_dir: str, ids: Sequence[int], chars: int = 200) -> dict[int, str]:
    """The first ``chars`` characters of the response (status, then body) of each record in ``ids``.

    The data set's text is streamed a batch at a time, so memory stays bounded.
    """
    wanted = set(int(i) for i in ids)
    found: dict[int, str] = {}
    done = 0
    for batch in DataFolder.open(data_dir).iter_batches(["status", "body", "error"]):
        local = [i - done for i in wanted if done <= i < done + batch.num_rows]
        if local:
            picked = batch.take(np.asarray(local)).to_pydict()
            for offset, status, body, error in zip(local, picked["status"], picked["body"], picked["error"]):
                text = " ".join(part for part in (status, body or error) if part)
                found[offset + done] = " ".join(text.split())[:chars]
        done += batch.num_rows
        if len(found) == len(wanted):
            break
    return found
