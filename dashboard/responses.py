"""A data set's rows read by id or streamed: the responses a page shows, never all at once.

Pages hold only per-record metadata (:func:`dashboard.loaders.rows`); the text of a
response is read from the row files only for the records asked for (:func:`texts`,
:func:`bodies`, :func:`read_at`, which reads only the row groups holding them), and work
that must see every record streams them (:func:`batches`, :func:`iter_bodies`). The map's
hover snippets are one Arrow column made once per data set version (:func:`snippets`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import streamlit as st

from dashboard import jobs, settings, tables
from dashboard.jobs import stamp
from quack.atomic import atomic_write
from quack.schema import schema_of

#: The columns a response is read from (:func:`dashboard.tables.response_texts`).
TEXT_COLUMNS = ("status", "headers", "body", "error")
# Rows per batch when every record is streamed.
_STREAM_ROWS = 8192
# Responses of at most this many records at once are kept in memory once read.
_CACHED_TEXTS = 64


def _version(data_dir: Path) -> tuple[str, str]:
    return jobs.data_version(data_dir)


@st.cache_resource(show_spinner=False, max_entries=8)
def _folder(path: str, version: str):
    from quack.data.datafolder import DataFolder

    return DataFolder.open(path)


def folder(data_dir: Path):
    """The data set (:class:`quack.data.datafolder.DataFolder`), opened once per version."""
    return _folder(*_version(data_dir))


@st.cache_resource(show_spinner=False, max_entries=8)
def _row_groups(path: str, version: str) -> tuple[np.ndarray, list[tuple[str, int]]]:
    """Where each row group of the data set starts (a record id), and its file and index."""
    starts, places, at = [], [], 0
    for file in _folder(path, version).row_files:
        meta = pq.ParquetFile(file).metadata
        for group in range(meta.num_row_groups):
            starts.append(at)
            places.append((str(file), group))
            at += meta.row_group(group).num_rows
    starts.append(at)
    return np.asarray(starts, dtype=np.int64), places


def read_at(data_dir: Path, ids, names: Sequence[str]) -> pa.Table:
    """The named columns of the records ``ids``, in that order, reading only the row groups that hold them.

    Raises
    ------
    ValueError
        When an id is not a record of the data set.
    """
    starts, places = _row_groups(*_version(data_dir))
    wanted = np.asarray(ids, dtype=np.int64).reshape(-1)
    if not len(wanted):
        return schema_of(names).empty_table()
    if wanted.min() < 0 or wanted.max() >= starts[-1]:
        bad = int(wanted[(wanted < 0) | (wanted >= starts[-1])][0])
        raise ValueError(
            f"There is no record {bad} in this data set of {int(starts[-1]):,} records; choose another id."
        )
    unique, inverse = np.unique(wanted, return_inverse=True)
    group_of = np.searchsorted(starts, unique, side="right") - 1
    pieces = []
    for group in np.unique(group_of):
        file, index = places[group]
        local = unique[group_of == group] - starts[group]
        pieces.append(pq.ParquetFile(file).read_row_group(index, columns=list(names)).take(pa.array(local)))
    return pa.concat_tables(pieces).take(pa.array(inverse))


@st.cache_resource(show_spinner=False, max_entries=256)
def _texts(path: str, version: str, ids: tuple[int, ...]) -> np.ndarray:
    frame = read_at(Path(path), ids, TEXT_COLUMNS).to_pandas()
    return tables.response_texts(frame).to_numpy(dtype=object)


def texts(data_dir: Path, ids) -> np.ndarray:
    """The responses of the records ``ids``, in that order (:func:`dashboard.tables.response_texts`).

    A few records (what a page shows on every rerun) are kept in memory once read; a
    large selection is read each time, so it is never held longer than the page needs it.
    """
    wanted = np.asarray(ids, dtype=np.int64).reshape(-1)
    if len(wanted) <= _CACHED_TEXTS:
        return _texts(*_version(data_dir), tuple(int(i) for i in wanted))
    return tables.response_texts(read_at(data_dir, wanted, TEXT_COLUMNS).to_pandas()).to_numpy(dtype=object)


def bodies(data_dir: Path, ids) -> np.ndarray:
    """The payload texts of the records ``ids`` (what fingerprints are matched against), in that order."""
    return read_at(data_dir, ids, ["body"]).column("body").fill_null("").to_numpy(zero_copy_only=False)


def batches(data_dir: Path, names: Sequence[str], size: int = _STREAM_ROWS) -> Iterator[pd.DataFrame]:
    """Every record's named columns, a batch of records at a time in id order, for work that must see them all."""
    for batch in folder(data_dir).iter_batches(list(names), batch_size=size):
        yield batch.to_pandas()


def iter_bodies(data_dir: Path) -> Iterator[str]:
    """Every record's payload text in id order, streamed: the whole data set is never in memory."""
    for frame in batches(data_dir, ["body"]):
        yield from frame["body"].fillna("").astype(str)


class RowTexts:
    """The records' responses by id, read when asked: a sequence for code that indexes every record's text."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.n = folder(data_dir).n_rows

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, record: int) -> str:
        return str(texts(self.data_dir, [int(record)])[0])


def _snippet_file(data_dir: Path) -> Path:
    return settings.cache_root() / "snippets" / f"{_version(data_dir)[1]}.parquet"


@st.cache_resource(show_spinner=False, max_entries=4)
def _snippet_column(path: str, size: int, mtime: int) -> pa.Array:
    return pq.read_table(path).column("snippet").combine_chunks()


def snippets(data_dir: Path) -> pa.Array:
    """Every record's response snippet (an Arrow string array), made once per data set version, streamed."""
    file = _snippet_file(data_dir)
    if not file.is_file():
        total = folder(data_dir).n_rows
        bar = st.progress(0.0, text="Making the response snippets the map shows")
        pieces, done = [], 0
        try:
            for frame in batches(data_dir, TEXT_COLUMNS, size=65536):
                pieces.append(tables.snippet_array(tables.response_texts(frame)))
                done += len(frame)
                bar.progress(min(done / max(total, 1), 1.0),
                             text=f"Making the response snippets — {done:,} / {total:,}")
        finally:
            bar.empty()
        table = pa.table({"snippet": pa.chunked_array(pieces, type=pa.string())})
        file.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(file, lambda handle: pq.write_table(table, handle))
    return _snippet_column(*stamp(file))
