"""A data set folder written by ``quack ingest``, and the one check that a folder is one.

A data set is a folder of three files, renamed into place together when it is built:

* ``rows.parquet``: one row per measurement probe, in id order, with the columns of
  :data:`quack.schema.ROW_SCHEMA`: the metadata columns, the other fields of the row, the
  display text (each text cut at :data:`quack.data.vocab.FIELD_CHARS` characters, exactly
  the text that was tokenized), ``tokens`` (list<int32>) and ``n_tokens``.
* ``tokenizer.json``: the :class:`~quack.data.tokenizer.QuackTokenizer` that made the tokens.
* ``info.json``: counts readable without a scan (rows, rows per label, longest sequence,
  vocabulary size, sources, skipped input by reason).

A folder whose subfolders are data sets made with one tokenizer (each written by its own
``quack ingest --tokenizer-from`` run, as the tasks of a cluster's array job write them)
is a data set too, a *folder of parts*: its rows are the parts' rows in the order of the
parts' names, numbered 0..N-1 across them, and its info sums theirs. Folders whose names
start with a dot (builds still running) are not parts. :class:`DataFolder` reads both
kinds alike, so every command takes either.

A new build may replace a folder only when it holds these three files and nothing else
(:func:`replace_blocker`), so that nothing a user put there is lost with it.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from quack.data.rowchecks import check_columns, check_tokens, parquet_rows
from quack.data.tokenizer import QuackTokenizer
from quack.errors import QuackInputError
from quack.jsonfiles import read_json
from quack.schema import columns as role_columns, schema_of

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DataFolder", "read_rows", "read_info", "replace_blocker", "ROWS_FILE", "INFO_FILE", "TOKENIZER_FILE",
           "DATA_SET_FILES"]

ROWS_FILE = "rows.parquet"
INFO_FILE = "info.json"
TOKENIZER_FILE = "tokenizer.json"
#: Everything a data set folder holds.
DATA_SET_FILES = (ROWS_FILE, INFO_FILE, TOKENIZER_FILE)
# Rows per batch when a folder's rows are streamed.
_BATCH_ROWS = 65536
# The end of every sentence refusing a data set's files.
_REBUILD = "build the data set again with `quack ingest`"
# An info.json lists counts, sources and signatures: a few kB, more for many sources.
_INFO_BYTES = 64 * 2**20


class DataFolder:
    """A quack data set on disk, one folder or a folder of parts; its info and tokenizer are read at most once.

    Parameters
    ----------
    path : str or path-like
        The folder; ``~`` is expanded.

    Attributes
    ----------
    path : pathlib.Path
        The folder.
    parts : list of pathlib.Path
        The data set folders whose rows it holds, in order: ``[path]`` for one data set,
        its part folders for a folder of parts.

    Raises
    ------
    QuackInputError
        When the folder lacks one of the data set's files, a folder of parts holds a
        folder that is not a data set, or its parts differ in tokenizer or columns.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path).expanduser()
        self.parts = _parts_of(self.path)
        if len(self.parts) > 1 or self.parts[0] != self.path:
            self._check_parts_agree()

    @classmethod
    def open(cls, path: str | os.PathLike, require_rows: bool = False) -> "DataFolder":
        """The data set at ``path``, checked: the one test that a folder is a quack data set.

        Parameters
        ----------
        path : str or path-like
            The folder: a data set, or a folder of parts.
        require_rows : bool, optional
            Also refuse a data set of no rows (nothing to train on or encode).

        Returns
        -------
        DataFolder

        Raises
        ------
        QuackInputError
            When the folder is not a data set, or it has no rows and ``require_rows``.
        """
        folder = cls(path)
        folder.check()
        if require_rows and folder.n_rows == 0:
            raise QuackInputError(f"The data set {folder.path} has no rows; ingest files that hold measurements.")
        return folder

    def __repr__(self) -> str:
        return f"DataFolder({str(self.path)!r})"

    @property
    def is_parted(self) -> bool:
        """Whether this is a folder of parts rather than one built data set."""
        return self.parts != [self.path]

    @property
    def rows_path(self) -> Path:
        """The ``rows.parquet`` file of a single data set; a folder of parts has :attr:`row_files` instead.

        Raises
        ------
        QuackInputError
            For a folder of parts.
        """
        if self.is_parted:
            raise QuackInputError(
                f"{self.path} is a folder of {len(self.parts)} data sets with no single rows file; "
                "read it with DataFolder.row_files, read_table or iter_batches."
            )
        return self.path / ROWS_FILE

    @property
    def row_files(self) -> list[Path]:
        """Every ``rows.parquet`` whose rows this data set holds, in row order."""
        return [part / ROWS_FILE for part in self.parts]

    @cached_property
    def info(self) -> dict:
        """The contents of ``info.json``; for a folder of parts, their counts summed and ``parts`` naming them."""
        infos = [_read_info(part) for part in self.parts]
        return infos[0] if not self.is_parted else _summed(infos, [part.name for part in self.parts])

    @cached_property
    def tokenizer(self) -> QuackTokenizer:
        """The tokenizer that made the data set's tokens."""
        return QuackTokenizer.load(self.parts[0] / TOKENIZER_FILE)

    @cached_property
    def part_rows(self) -> list[int]:
        """Rows of each part, from the Parquet footers (no scan), each count checked against its file (:func:`parquet_rows`)."""
        return [parquet_rows(rows, _REBUILD) for rows in self.row_files]

    @property
    def n_rows(self) -> int:
        """Number of rows, from the Parquet footers (no scan)."""
        return sum(self.part_rows)

    @property
    def version(self) -> str:
        """A short digest of the files' names, sizes and times: it changes whenever a part is rebuilt."""
        digest = hashlib.sha1()
        for part in self.parts:
            for name in DATA_SET_FILES:
                status = (part / name).stat()
                digest.update(f"{part / name}\0{status.st_size}\0{status.st_mtime_ns}\n".encode())
        return digest.hexdigest()[:16]

    def iter_batches(self, columns: Sequence[str] | None = None, batch_size: int = _BATCH_ROWS) -> Iterator[pa.RecordBatch]:
        """The rows (all columns, or the ones named) as Arrow record batches in id order, streamed.

        ``id`` counts the rows of the whole data set: a part's ids follow the last id of
        the part before it.
        """
        names, absent = self._present(columns)
        for offset, rows in zip(self._offsets(), self.row_files):
            for batch in pq.ParquetFile(rows).iter_batches(batch_size=batch_size, columns=names):
                yield _with_absent(_renumbered(self._checked_tokens(batch, rows), offset), columns, absent)

    def read_table(self, columns: Sequence[str] | None = None) -> pa.Table:
        """The rows (all columns, or the ones named) as one Arrow table in id order; ``id`` as :meth:`iter_batches`."""
        names, absent = self._present(columns)
        tables = [_renumbered(self._checked_tokens(pq.read_table(rows, columns=names), rows), offset)
                  for offset, rows in zip(self._offsets(), self.row_files)]
        table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
        return _with_absent(table, columns, absent)

    @cached_property
    def missing_columns(self) -> tuple[str, ...]:
        """Optional columns (:func:`quack.schema.columns` ``("optional")``) its rows were written without.

        A data set built before a column existed reads it as missing values (time
        unknown, no scan name) rather than being refused.
        """
        present = set(pq.read_schema(self.row_files[0]).names)
        return tuple(name for name in role_columns("optional") if name not in present)

    def _present(self, wanted: Sequence[str] | None) -> tuple[list[str] | None, list[str]]:
        """The columns to read from the files and the requested ones they lack."""
        if wanted is None:
            return None, []
        absent = [name for name in wanted if name in self.missing_columns]
        return [name for name in wanted if name not in absent], absent

    def read_rows(self, columns: Sequence[str] | None = None) -> "pd.DataFrame":
        """The rows (all columns, or the ones named) as a DataFrame in id order."""
        return self.read_table(columns).to_pandas()

    def check(self) -> None:
        """Refuse files that are not what they claim: rows files whose columns are not quack's or
        whose footers claim rows they cannot hold, an info.json or tokenizer.json that cannot be read.

        Only footers and the small JSON files are read (:mod:`quack.data.rowchecks`); the
        token ids are checked as they are read.

        Raises
        ------
        QuackInputError
            Naming the file and what is wrong with it.
        """
        for rows in self.row_files:
            try:
                footer = pq.ParquetFile(rows)
            except (OSError, pa.ArrowException) as error:
                raise QuackInputError(f"{rows} cannot be read as Parquet ({error}); {_REBUILD}.") from None
            check_columns(rows, footer.schema_arrow, _REBUILD)
            parquet_rows(rows, _REBUILD, footer.metadata)
        for part in self.parts:
            _read_info(part)
        try:
            _ = self.tokenizer  # read now, so a damaged one is refused with the rest
        except ValueError as error:
            raise QuackInputError(str(error)) from None

    def _checked_tokens(self, rows: pa.Table | pa.RecordBatch, file: Path) -> pa.Table | pa.RecordBatch:
        """``rows`` once every token id they hold is found below the tokenizer's vocabulary size."""
        check_tokens(rows, self.tokenizer.vocab_size, file, _REBUILD)
        return rows

    def _offsets(self) -> list[int]:
        return np.concatenate([[0], np.cumsum(self.part_rows[:-1], dtype=np.int64)]).astype(int).tolist()

    def _check_parts_agree(self) -> None:
        """Refuse parts whose tokens or columns mean different things."""
        documents = [(part / TOKENIZER_FILE).read_bytes() for part in self.parts]
        if len(set(documents)) > 1:
            # Files may differ in layout yet hold one tokenizer; compare what they mean.
            meaning = {}
            for part, document in zip(self.parts, documents):
                try:
                    meaning.setdefault(QuackTokenizer.from_json(document.decode("utf-8")).to_json(), part)
                except (UnicodeDecodeError, ValueError) as error:
                    raise QuackInputError(f"Cannot load the tokenizer of {part}: {error}") from error
            if len(meaning) > 1:
                first, other = list(meaning.values())[:2]
                raise QuackInputError(
                    f"The parts of {self.path} were tokenized by different tokenizers ({first.name} and {other.name} "
                    "differ); ingest every part with the same `quack ingest --tokenizer-from`."
                )
        schemas = [pq.read_schema(rows) for rows in self.row_files]
        for part, schema in zip(self.parts, schemas):
            if not schema.equals(schemas[0]):
                raise QuackInputError(
                    f"The parts of {self.path} have different columns ({self.parts[0].name} and {part.name} differ); "
                    "rebuild the older ones with `quack ingest`."
                )


def _parts_of(path: Path) -> list[Path]:
    """``[path]`` for a data set, its part folders in order for a folder of parts; else refused."""
    if any((path / name).exists() for name in DATA_SET_FILES) or not path.is_dir():
        _check_data_set(path)
        return [path]
    folders = sorted(entry for entry in path.iterdir() if entry.is_dir() and not entry.name.startswith("."))
    if not any((folder / ROWS_FILE).is_file() for folder in folders):
        _check_data_set(path)
    for folder in folders:
        missing = next((name for name in DATA_SET_FILES if not (folder / name).is_file()), None)
        if missing is not None:
            raise QuackInputError(
                f"{path} is a folder of data sets, but {folder.name} in it is not one (no {missing}); "
                "remove it or build it with `quack ingest`."
            )
    return folders


def _check_data_set(path: Path) -> None:
    for name in DATA_SET_FILES:
        if not (path / name).is_file():
            raise QuackInputError(f"{path} is not a quack data set (no {name}); build one with `quack ingest`.")


def _read_info(folder: Path) -> dict:
    try:
        info = read_json(folder / INFO_FILE, max_bytes=_INFO_BYTES)
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise QuackInputError(
            f"{folder} is not a quack data set (no readable {INFO_FILE}: {reason}); build one with `quack ingest`."
        ) from None
    if not isinstance(info, dict):
        raise QuackInputError(
            f"{folder} is not a quack data set (no readable {INFO_FILE}: a JSON {type(info).__name__}, not an object); "
            "build one with `quack ingest`."
        )
    return info


def _summed(infos: list[dict], names: list[str]) -> dict:
    """The info of a folder of parts: counts added, the longest the longest, the mean weighted by rows."""
    rows = sum(info.get("rows", 0) for info in infos)
    labels: Counter = Counter()
    skipped: Counter = Counter()
    for info in infos:
        labels.update({label: int(n) for label, n in info.get("rows_per_label", {}).items()})
        skipped.update(info.get("skipped", {}))
    signatures = list(dict.fromkeys(name for info in infos for name in info.get("signatures", [])))
    return {
        "rows": rows,
        "rows_per_label": {label: labels.get(label, 0) for label in infos[0].get("rows_per_label", {})},
        "longest_sequence": max(info.get("longest_sequence", 0) for info in infos),
        "mean_tokens": sum(info.get("mean_tokens", 0.0) * info.get("rows", 0) for info in infos) / rows if rows else 0.0,
        "vocab_size": infos[0].get("vocab_size"),
        "max_tokens": infos[0].get("max_tokens"),
        "files": sum(info.get("files", 0) for info in infos),
        "lines": sum(info.get("lines", 0) for info in infos),
        "skipped": dict(sorted(skipped.items())),
        "sources": sorted({source for info in infos for source in info.get("sources", [])}),
        "signatures": signatures,
        "anomalies_only": all(info.get("anomalies_only", False) for info in infos),
        "parts": names,
    }


def _with_absent(rows: pa.Table | pa.RecordBatch, wanted: Sequence[str] | None,
                 absent: list[str]) -> pa.Table | pa.RecordBatch:
    """``rows`` with each absent optional column added as missing values, in the order asked for."""
    if not absent:
        return rows
    kinds = schema_of(absent)
    arrays = {name: rows.column(name) for name in rows.schema.names}
    arrays.update({name: pa.nulls(rows.num_rows, kinds.field(name).type) for name in absent})
    names = list(wanted)
    build = pa.Table if isinstance(rows, pa.Table) else pa.RecordBatch
    return build.from_arrays([arrays[name] for name in names], names=names)


def _renumbered(rows: pa.Table | pa.RecordBatch, offset: int) -> pa.Table | pa.RecordBatch:
    """Rows of a part with ``id`` moved past the rows of the parts before it."""
    if offset == 0 or "id" not in rows.schema.names:
        return rows
    index = rows.schema.get_field_index("id")
    ids = pa.array(rows.column(index).to_numpy() + offset)
    return rows.set_column(index, rows.schema.field(index), ids)


def read_rows(data_dir: str | os.PathLike, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """The rows of the data set in ``data_dir`` (all columns, or the ones named) in id order.

    Raises
    ------
    QuackInputError
        When the folder is not a quack data set.
    """
    return DataFolder.open(data_dir).read_rows(columns)


def read_info(data_dir: str | os.PathLike) -> dict:
    """The ``info.json`` of the data set in ``data_dir``.

    Raises
    ------
    QuackInputError
        When the folder is not a quack data set.
    """
    return DataFolder.open(data_dir).info


def replace_blocker(path: str | os.PathLike) -> str | None:
    """Why a new data set may not replace the folder at ``path``, or None when it may.

    A folder may be replaced when it is missing, empty, or holds exactly a data set's own
    files as plain files; whatever else it holds would be lost with it.

    Parameters
    ----------
    path : str or path-like
        The folder a build would write.

    Returns
    -------
    str or None
        A clause for a message, such as ``"it holds thesis.tex"``, or None.
    """
    folder = Path(path).expanduser()
    if not folder.is_dir():
        return None
    names = sorted(entry.name for entry in folder.iterdir())
    if not names:
        return None
    others = [name for name in names if name not in DATA_SET_FILES]
    if others:
        extra = len(others) - 1
        more = f" and {extra} other {'entry' if extra == 1 else 'entries'}" if extra else ""
        return f"it holds {others[0]}{more}"
    for name in DATA_SET_FILES:
        entry = folder / name
        if entry.is_symlink() or not entry.is_file():
            return f"its {name} is missing or not a plain file"
    return None
