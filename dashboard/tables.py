"""The tables the pages show and download, made from plain frames and arrays.

Nothing here knows about Streamlit or caching: each function takes the records
(the data set's metadata columns), labels and whatever else it lists, and returns a
frame or an array. Text is plain; whoever puts it into HTML escapes it there.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from quack.schema import Label, columns, label_names

#: Columns of a record table, after the id and the label name.
RECORD_COLUMNS = ("country", "domain", "service", "vp", "status")
#: Columns a map point's hover box shows, in this order.
HOVER_COLUMNS = ("id", "domain", "vp", "country", "status", "snippet")


def snippet(text: str | None, length: int = 120) -> str:
    """A one-line beginning of a response: whitespace collapsed, cut at ``length`` with an ellipsis."""
    flat = " ".join(str(text or "").split())
    return flat if len(flat) <= length else flat[: length - 1] + "…"


def _text(frame: pd.DataFrame, column: str) -> pd.Series:
    if column not in frame:
        return pd.Series([""] * len(frame), index=frame.index)
    return frame[column].astype(object).fillna("").astype(str)


def response_texts(frame: pd.DataFrame) -> pd.Series:
    """Each record's response as a person would read it: status line, headers, body.

    A probe that got no reply at all reads ``(no response: <error>)``.
    """
    # HTTP(S) replies are stored in parts; echo/discard replies are whole in the body.
    head = (_text(frame, "status") + "\n" + _text(frame, "headers")).str.strip()
    body = _text(frame, "body")
    whole = (head + "\n\n" + body).where(head != "", body)
    error = _text(frame, "error")
    return whole.where(whole.str.strip() != "", ("(no response: " + error + ")").where(error != "", ""))


# What str.split() treats as whitespace, for Arrow's regular expressions (RE2's \s is ASCII only).
_SPACE = r"[\s\x0b\x1c-\x1f\x85\xa0\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}]+"


def snippet_array(texts: pd.Series | pa.Array, length: int = 120) -> pa.Array:
    """The :func:`snippet` of every text, computed in Arrow (no Python object per record).

    Only the first ``8 * length`` characters of each text are looked at, enough for a
    snippet unless a text opens with that much whitespace.
    """
    array = pa.array(texts, type=pa.string(), from_pandas=True).fill_null("")
    head = pc.utf8_slice_codeunits(array, 0, 8 * length)
    flat = pc.utf8_trim(pc.replace_substring_regex(head, _SPACE, " "), " ")
    long = pc.greater(pc.utf8_length(flat), length)
    cut = pc.binary_join_element_wise(pc.utf8_slice_codeunits(flat, 0, length - 1), pa.scalar("…"), "")
    return pc.if_else(long, cut, flat)


def value_counts(values: pd.Series, blank: str = "(unknown)") -> pd.Series:
    """How many records hold each value, most first; empty and missing values counted as ``blank``.

    Works on a categorical column as on strings: the counts are taken first and only
    their labels renamed, so no category is added to the shared records.
    """
    counts = values.value_counts(dropna=False)
    names = ["" if pd.isna(name) else str(name) for name in counts.index]
    merged = pd.Series(counts.to_numpy(), index=[name or blank for name in names]).groupby(level=0, sort=False).sum()
    return merged[merged > 0].sort_values(ascending=False, kind="stable")


def record_table(
    frame: pd.DataFrame, labels: np.ndarray, texts, ids: list[int] | np.ndarray
) -> pd.DataFrame:
    """A readable table of some records: id, label name, metadata and a response snippet.

    ``texts`` holds the responses of the records ``ids``, in that order.
    """
    idx = np.asarray(ids, dtype=np.int64)
    table = frame.iloc[idx][[c for c in RECORD_COLUMNS if c in frame.columns]].astype(object)
    table.insert(0, "label", label_names(labels[idx]))
    table.insert(0, "id", frame["id"].to_numpy()[idx])
    table["response"] = [snippet(t, 100) for t in texts]
    return table.reset_index(drop=True)


def _taken(values: np.ndarray | pa.Array, idx: np.ndarray) -> np.ndarray:
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        return values.take(pa.array(idx, type=pa.int64())).to_numpy(zero_copy_only=False)
    return np.asarray(values)[idx]


def hover_table(frame: pd.DataFrame, snippet_of: np.ndarray | pa.Array, drawn: np.ndarray) -> pd.DataFrame:
    """What the hover box of each drawn map point says (the columns of :data:`HOVER_COLUMNS`).

    ``snippet_of`` holds every record's snippet (:func:`snippet_array`).
    """
    idx = np.asarray(drawn, dtype=np.int64)
    shown = frame.iloc[idx]
    return pd.DataFrame(
        {
            "id": shown["id"].to_numpy(),
            "domain": shown["domain"].to_numpy(dtype=object),
            "vp": shown["vp"].to_numpy(dtype=object),
            "country": shown["country"].to_numpy(dtype=object),
            "status": _text(shown, "status").to_numpy(),
            "snippet": _taken(snippet_of, idx),
        }
    )


def filter_records(
    frame: pd.DataFrame, labels: np.ndarray, countries: list[str], services: list[str], wanted: list[str], search: str
) -> np.ndarray:
    """Row indices of the records passing the Data page's filters (an empty filter restricts nothing).

    ``wanted`` holds label display names; ``search`` is a part of the domain, any case.
    """
    keep = np.ones(len(frame), dtype=bool)
    if countries:
        keep &= frame["country"].isin(countries).to_numpy()
    if services:
        keep &= frame["service"].isin(services).to_numpy()
    if wanted:
        keep &= np.isin(label_names(labels), wanted)
    if search.strip():
        keep &= frame["domain"].astype(str).str.contains(search.strip(), case=False, regex=False).to_numpy()
    return np.flatnonzero(keep)


def balanced_subset(ids: list[int], labels: np.ndarray, limit: int, seed: int = 0) -> list[int]:
    """At most ``limit`` of the ids, shared as evenly as the selection allows between labels."""
    ids_array = np.asarray(ids, dtype=np.int64)
    rng = np.random.default_rng(seed)
    groups = [rng.permutation(ids_array[labels[ids_array] == label]) for label in Label.by_display().values()]
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


def mean_shares(shares: list[dict[str, float]]) -> dict[str, float]:
    """The mean share of every field over records (a field a record lacks counts 0)."""
    fields = sorted({f for share in shares for f in share})
    return {f: float(np.mean([share.get(f, 0.0) for share in shares])) for f in fields}


def truth_column(frame: pd.DataFrame, truth: pd.DataFrame) -> np.ndarray:
    """The sample generator's truth of each record ("" where it has none), joined by source, line, probe."""
    keys = ["source", "line", "probe"]
    joined = frame[keys].merge(truth[keys + ["truth"]], on=keys, how="left")
    return joined["truth"].fillna("").to_numpy(dtype=object)


def export_table(
    frame: pd.DataFrame,
    labels: np.ndarray,
    pca: np.ndarray,
    umap: np.ndarray | None = None,
    loss: np.ndarray | None = None,
    probability: np.ndarray | None = None,
    latents: np.ndarray | None = None,
) -> pd.DataFrame:
    """Every record's metadata with its label, map coordinates and whichever scores are given.

    Parameters
    ----------
    frame : pandas.DataFrame
        The records.
    labels : numpy.ndarray
        (N,) labels in use (relabelled ones when the session has them).
    pca, umap : numpy.ndarray
        (N, 2) map coordinates; UMAP's only when computed.
    loss, probability : numpy.ndarray, optional
        (N,) reconstruction losses and the classifier's probabilities of censorship.
    latents : numpy.ndarray, optional
        (N, H) latent vectors, kept as one list column.
    """
    table = frame[[c for c in columns("metadata") if c in frame.columns]].copy()
    table["label"] = labels
    # The codes stay (censored 1, undetermined 0, uncensored -1); the names read as every page says them.
    table["label_name"] = label_names(labels)
    table["pca_x"], table["pca_y"] = pca[:, 0], pca[:, 1]
    if umap is not None:
        table["umap_x"], table["umap_y"] = umap[:, 0], umap[:, 1]
    if loss is not None:
        table["reconstruction_loss"] = loss
    if probability is not None:
        table["p_censored"] = probability
    if latents is not None:
        table["latent"] = list(latents)
    return table


def export_bytes(table: pd.DataFrame, fmt: str, name: str) -> tuple[bytes, str, str]:
    """The table as a file: Parquet (latents as a list column) or CSV (one column per latent dimension).

    Returns
    -------
    tuple
        (content, file name ``<name>.parquet`` or ``<name>.csv``, MIME type).
    """
    buffer = io.BytesIO()
    if fmt == "CSV":
        flat = table.drop(columns=["latent"]) if "latent" in table else table
        if "latent" in table:
            latents = np.stack(table["latent"].to_numpy())
            per_dimension = pd.DataFrame(latents, columns=[f"latent_{i}" for i in range(latents.shape[1])])
            flat = pd.concat([flat.reset_index(drop=True), per_dimension], axis=1)
        flat.to_csv(buffer, index=False)
        return buffer.getvalue(), f"{name}.csv", "text/csv"
    table.to_parquet(buffer, index=False)
    return buffer.getvalue(), f"{name}.parquet", "application/vnd.apache.parquet"


def written_files(folder: str | Path, limit: int = 200) -> pd.DataFrame:
    """The files an export wrote, relative to its folder, with their sizes (the first ``limit``)."""
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file())[:limit]
    return pd.DataFrame(
        {"file": [str(p.relative_to(folder)) for p in files], "bytes": [p.stat().st_size for p in files]}
    )


def latent_preview(encoded: pd.DataFrame, rows: int = 20, dims: int = 4) -> pd.DataFrame:
    """The first rows of encoded output, each latent cut to its first dimensions for reading."""
    head = encoded.head(rows)
    return head.assign(latent=[np.round(np.asarray(v, dtype=np.float64)[:dims], 3).tolist() for v in head["latent"]])
