"""Find censorship the fingerprints missed: clusters of the latent space, candidate
records ranked by a classifier, fingerprint patterns proposed from their responses,
and where the model's attention goes, field by field.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from quack.atomic import atomic_write
from quack.projection import pca

__all__ = [
    "cluster_latents",
    "cluster_summary",
    "rank_candidates",
    "propose_pattern",
    "save_user_fingerprint",
    "read_user_fingerprints",
    "relabel_rows",
    "attention_received",
    "attention_by_field",
]

# HDBSCAN's neighbour search degrades to brute force in hundreds of dimensions; the
# first principal components keep the cluster structure and make it fast.
_CLUSTER_DIMS = 16
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def cluster_latents(latents: np.ndarray, min_cluster_size: int = 25, min_samples: int | None = None) -> np.ndarray:
    """Group latents into dense clusters with scikit-learn's HDBSCAN.

    Parameters
    ----------
    latents : numpy.ndarray
        (N, H) latent vectors.
    min_cluster_size : int, optional
        Smallest group that counts as a cluster, by default 25.
    min_samples : int or None, optional
        How conservative the clustering is; None (default) uses ``min_cluster_size``.

    Returns
    -------
    numpy.ndarray
        (N,) int cluster number of each record, -1 for records in no cluster.

    Raises
    ------
    ValueError
        If ``min_cluster_size`` is below 2 or larger than the data set.
    """
    from sklearn.cluster import HDBSCAN

    x = np.asarray(latents, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"Clustering needs a 2-D array of latents, got shape {x.shape}.")
    if min_cluster_size < 2:
        raise ValueError(f"The smallest cluster size must be at least 2, got {min_cluster_size}.")
    if x.shape[0] < min_cluster_size:
        raise ValueError(
            f"The smallest cluster size ({min_cluster_size}) is larger than the data set ({x.shape[0]} records)."
        )
    if x.shape[1] > _CLUSTER_DIMS and x.shape[0] > _CLUSTER_DIMS:
        x = pca(x, _CLUSTER_DIMS)
    model = HDBSCAN(min_cluster_size=min_cluster_size, min_samples=min_samples, copy=True)
    return model.fit_predict(x).astype(np.int64)


def cluster_summary(
    clusters: np.ndarray, labels: np.ndarray, latents: np.ndarray, texts: list[str] | np.ndarray
) -> pd.DataFrame:
    """Describe each cluster: its size, label mix and most typical response.

    Parameters
    ----------
    clusters : numpy.ndarray
        (N,) cluster numbers from `cluster_latents` (-1 = no cluster).
    labels : numpy.ndarray
        (N,) labels: censored 1, undetermined 0, uncensored -1.
    latents : numpy.ndarray
        (N, H) latent vectors.
    texts : sequence of str
        (N,) the response text of each record.

    Returns
    -------
    pandas.DataFrame
        One row per cluster (noise left out), largest first, with columns ``cluster``,
        ``size``, ``censored``, ``undetermined``, ``uncensored``, ``undetermined_share``,
        ``representative`` (the row index closest to the cluster's centre) and
        ``representative_text``.
    """
    clusters = np.asarray(clusters)
    labels = np.asarray(labels)
    x = np.asarray(latents, dtype=np.float32)
    rows = []
    for c in np.unique(clusters):
        if c < 0:
            continue
        members = np.flatnonzero(clusters == c)
        centre = x[members].mean(axis=0)
        representative = int(members[np.argmin(((x[members] - centre) ** 2).sum(axis=1))])
        member_labels = labels[members]
        rows.append(
            {
                "cluster": int(c),
                "size": int(members.size),
                "censored": int((member_labels == 1).sum()),
                "undetermined": int((member_labels == 0).sum()),
                "uncensored": int((member_labels == -1).sum()),
                "undetermined_share": float((member_labels == 0).mean()),
                "representative": representative,
                "representative_text": str(texts[representative]),
            }
        )
    columns = [
        "cluster", "size", "censored", "undetermined", "uncensored",
        "undetermined_share", "representative", "representative_text",
    ]
    table = pd.DataFrame(rows, columns=columns)
    return table.sort_values(["size", "cluster"], ascending=[False, True], ignore_index=True)


def rank_candidates(probabilities: np.ndarray, labels: np.ndarray, top: int | None = None) -> np.ndarray:
    """Rank undetermined records by their probability of censorship.

    Parameters
    ----------
    probabilities : numpy.ndarray
        (N,) probability of censorship of each record.
    labels : numpy.ndarray
        (N,) labels; only records labelled 0 (undetermined) are ranked.
    top : int or None, optional
        Keep only the first ``top``; None (default) keeps all.

    Returns
    -------
    numpy.ndarray
        Row indices, most likely censored first (ties in row order).
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    undetermined = np.flatnonzero(np.asarray(labels) == 0)
    order = undetermined[np.argsort(-probabilities[undetermined], kind="stable")]
    return order if top is None else order[:top]


def _common_of_length(texts: list[str], length: int, needed: int) -> str | None:
    seen: set[str] = set()
    first = texts[0]
    for start in range(len(first) - length + 1):
        piece = first[start : start + length]
        if piece in seen or not piece.strip():
            continue
        seen.add(piece)
        if sum(piece in t for t in texts) >= needed:
            return piece
    return None


def propose_pattern(bodies: list[str], min_length: int = 8, share: float = 1.0, max_chars: int = 4000) -> str:
    """Propose a fingerprint pattern: the longest text common to the responses, escaped.

    Parameters
    ----------
    bodies : list of str
        Responses that should all match (those of one cluster, say).
    min_length : int, optional
        Shortest acceptable common text, by default 8 characters, so the pattern is
        specific enough to use.
    share : float, optional
        Fraction of the responses that must contain the text, by default 1.0 (all);
        lower it when a cluster holds a few unrelated responses.
    max_chars : int, optional
        Only the first ``max_chars`` characters of each response are compared, by
        default 4000: blockpages announce themselves early.

    Returns
    -------
    str
        A regular expression (Python ``re`` syntax, literal text escaped) that matches
        at least ``share`` of the responses.

    Raises
    ------
    ValueError
        If no response has text, or the responses share no text of ``min_length``
        characters.
    """
    texts = [str(b)[:max_chars] for b in bodies if b and str(b).strip()]
    if not texts:
        raise ValueError("None of the chosen responses has any text to build a pattern from.")
    if not 0.0 < share <= 1.0:
        raise ValueError(f"share must lie in (0, 1], got {share}.")
    needed = max(1, int(np.ceil(share * len(texts))))
    # With share < 1 the first response may be an outlier; try the shortest few.
    candidates = sorted(texts, key=len)[: len(texts) - needed + 1]
    best: str | None = None
    for first in candidates:
        ordered = [first] + [t for t in texts if t is not first]
        low, high = min_length, len(first)
        found = None
        # A common text of length L contains one of every shorter length, so the
        # longest length can be found by bisection.
        while low <= high:
            mid = (low + high) // 2
            piece = _common_of_length(ordered, mid, needed)
            if piece is not None:
                found, low = piece, mid + 1
            else:
                high = mid - 1
        if found is not None and (best is None or len(found) > len(best)):
            best = found
    if best is None:
        raise ValueError(
            f"The chosen responses share no text of at least {min_length} characters; write the pattern by hand."
        )
    # Spaces need no escape outside verbose mode, and control characters read better as
    # \r, \n, \t than as an escaped raw character in a fingerprint file.
    escaped = re.escape(best.strip()).replace("\\ ", " ")
    return escaped.replace("\\\r", "\\r").replace("\\\n", "\\n").replace("\\\t", "\\t")


def read_user_fingerprints(path: str | os.PathLike) -> list[dict]:
    """Read a fingerprint file in Censored Planet's format (one JSON object a line).

    Parameters
    ----------
    path : str or path-like
        The file; a missing file reads as empty.

    Returns
    -------
    list of dict
        ``{"fingerprint": name, "pattern": regex}`` entries in file order.
    """
    path = Path(path).expanduser()
    if not path.exists():
        return []
    entries = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            entries.append({"fingerprint": str(entry["fingerprint"]), "pattern": str(entry["pattern"])})
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise ValueError(f"{path}, line {number}, is not a fingerprint entry: {error}.") from None
    return entries


def save_user_fingerprint(path: str | os.PathLike, name: str, pattern: str) -> Path:
    """Add a blockpage fingerprint to a user fingerprint file.

    The file uses Censored Planet's format, one ``{"fingerprint": ..., "pattern": ...}``
    object a line, so it can be given to the labeller next to the shipped lists.
    The new file replaces the old one in one rename, so a failure leaves the old intact.

    Parameters
    ----------
    path : str or path-like
        The user fingerprint file; created with its folder when missing.
    name : str
        Fingerprint name: letters, digits, ``_``, ``.`` and ``-``; not already in the file.
    pattern : str
        Python regular expression, matched with DOTALL against response text.

    Returns
    -------
    pathlib.Path
        The file written.

    Raises
    ------
    ValueError
        If the name is empty, malformed or taken, or the pattern is empty or not a
        valid regular expression.
    """
    path = Path(path).expanduser()
    if not name or not _NAME.match(name):
        raise ValueError(f"Fingerprint name {name!r} must be letters, digits, '_', '.' or '-' and not empty.")
    if not pattern or not pattern.strip():
        raise ValueError("The fingerprint pattern is empty.")
    try:
        re.compile(pattern, re.DOTALL)
    except re.error as error:
        raise ValueError(f"The pattern is not a valid regular expression: {error}.") from None
    entries = read_user_fingerprints(path)
    if any(e["fingerprint"] == name for e in entries):
        raise ValueError(f"{path} already has a fingerprint named {name!r}; choose another name.")
    entries.append({"fingerprint": name, "pattern": pattern})
    text = "".join(json.dumps(entry, ensure_ascii=False) + "\n" for entry in entries).encode("utf-8")
    return atomic_write(path, lambda handle: handle.write(text))


def relabel_rows(
    frame: pd.DataFrame, extra_files: list[str | os.PathLike], base_files: list[str | os.PathLike] | None = None
) -> pd.DataFrame:
    """Label records again with more fingerprints, without tokenizing them again.

    Parameters
    ----------
    frame : pandas.DataFrame
        Records of a data set (``quack.dataset.read_rows``) with ``id``, ``label``,
        ``fingerprint``, ``anomaly`` and ``body``.
    extra_files : list of path
        User fingerprint files added after the base lists (later entries win a name).
    base_files : list of path, optional
        The lists the data set was labelled with; None means the shipped ones.

    Returns
    -------
    pandas.DataFrame
        ``id``, ``label`` and ``fingerprint`` of every record, in the frame's order.
    """
    from importlib import resources

    from quack.labels import Fingerprints, label_row

    if base_files is None:
        folder = resources.files("quack") / "fingerprints"
        base_files = sorted(str(p) for p in folder.iterdir() if str(p).endswith(".json"))
    fingerprints = Fingerprints.load([str(p) for p in base_files] + [str(p) for p in extra_files if Path(p).is_file()])
    new_labels, names = [], []
    for record in frame.to_dict("records"):
        if "matches_template" not in record:
            # Only a probe that matched its template in a normal record is labelled
            # uncensored without a fingerprint, so the flag can be recovered from that.
            fingerprint = record.get("fingerprint")
            unnamed = fingerprint is None or fingerprint == "" or bool(pd.isna(fingerprint))
            record["matches_template"] = int(record["label"]) == -1 and unnamed
        label, name = label_row(record, fingerprints)
        fingerprint = record.get("fingerprint")
        if name is None and label == 0 and isinstance(fingerprint, str) and fingerprint:
            # Ingest matched this fingerprint on the whole body, of which only the first
            # FIELD_CHARS characters are stored; the match stands.
            label, name = int(record["label"]), fingerprint
        new_labels.append(label)
        names.append(name)
    return pd.DataFrame({"id": frame["id"].to_numpy(), "label": np.asarray(new_labels, dtype=np.int64), "fingerprint": names})


def attention_received(attention: np.ndarray, n_decoded: int | None = None) -> np.ndarray:
    """How much attention each input token receives, averaged over decoder steps.

    Parameters
    ----------
    attention : numpy.ndarray
        (T_dec, T_enc) attention weights of one record (each row sums to 1).
    n_decoded : int or None, optional
        Number of real decoder steps; steps beyond (padding) are ignored.

    Returns
    -------
    numpy.ndarray
        (T_enc,) mean weight per input position; sums to 1 over the positions.
    """
    a = np.asarray(attention, dtype=np.float64)
    if n_decoded is not None:
        a = a[: max(1, n_decoded)]
    return a.mean(axis=0)


def attention_by_field(attention: np.ndarray, fields: list[str]) -> dict[str, float]:
    """Share of a record's attention that falls on each field.

    Parameters
    ----------
    attention : numpy.ndarray
        (T_dec, T_enc) attention weights of one record, or (T_enc,) weights already
        averaged over decoder steps.
    fields : list of str
        Field of each input position (``tokenizer.token_fields``), at least T_enc long
        or exactly the record's length; positions beyond it are ignored.

    Returns
    -------
    dict
        Field name -> share of the attention (shares sum to 1 over the fields).
    """
    a = np.asarray(attention, dtype=np.float64)
    received = a if a.ndim == 1 else a.mean(axis=0)
    n = min(len(fields), received.shape[0])
    totals: dict[str, float] = {}
    for field, weight in zip(fields[:n], received[:n]):
        totals[field] = totals.get(field, 0.0) + float(weight)
    whole = sum(totals.values())
    return {f: (w / whole if whole > 0 else 0.0) for f, w in totals.items()}
