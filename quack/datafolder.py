"""A data set folder written by ``quack ingest``, and the one check that a folder is one.

A data set is a folder of three files, renamed into place together when it is built:

* ``rows.parquet``: one row per measurement probe, in id order, with the columns of
  :data:`quack.schema.ROW_SCHEMA`: the metadata columns, the other fields of the row, the
  display text (each text cut at :data:`quack.tokenizer.FIELD_CHARS` characters, exactly
  the text that was tokenized), ``tokens`` (list<int32>) and ``n_tokens``.
* ``tokenizer.json``: the :class:`~quack.tokenizer.QuackTokenizer` that made the tokens.
* ``info.json``: counts readable without a scan (rows, rows per label, longest sequence,
  vocabulary size, sources, skipped input by reason).

A new build may replace a folder only when it holds these three files and nothing else
(:func:`replace_blocker`), so that nothing a user put there is lost with it.
"""

from __future__ import annotations

import json
import os
from functools import cached_property
from pathlib import Path
from typing import Sequence

import pandas as pd
import pyarrow.parquet as pq

from quack.ingest import QuackInputError
from quack.tokenizer import QuackTokenizer

__all__ = ["DataFolder", "read_rows", "read_info", "replace_blocker", "ROWS_FILE", "INFO_FILE", "TOKENIZER_FILE",
           "DATA_SET_FILES"]

ROWS_FILE = "rows.parquet"
INFO_FILE = "info.json"
TOKENIZER_FILE = "tokenizer.json"
#: Everything a data set folder holds.
DATA_SET_FILES = (ROWS_FILE, INFO_FILE, TOKENIZER_FILE)


class DataFolder:
    """A quack data set on disk; its info and tokenizer are read at most once.

    Parameters
    ----------
    path : str or path-like
        The folder; ``~`` is expanded.

    Raises
    ------
    QuackInputError
        When the folder lacks one of the data set's files.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path).expanduser()
        for name in DATA_SET_FILES:
            if not (self.path / name).is_file():
                raise QuackInputError(f"{self.path} is not a quack data set (no {name}); build one with `quack ingest`.")

    @classmethod
    def open(cls, path: str | os.PathLike, require_rows: bool = False) -> "DataFolder":
        """The data set at ``path``, checked: the one test that a folder is a quack data set.

        Parameters
        ----------
        path : str or path-like
            The folder.
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
        if require_rows and folder.n_rows == 0:
            raise QuackInputError(f"The data set {folder.path} has no rows; ingest files that hold measurements.")
        return folder

    def __repr__(self) -> str:
        return f"DataFolder({str(self.path)!r})"

    @property
    def rows_path(self) -> Path:
        """The ``rows.parquet`` file."""
        return self.path / ROWS_FILE

    @cached_property
    def info(self) -> dict:
        """The contents of ``info.json``."""
        try:
            return json.loads((self.path / INFO_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise QuackInputError(
                f"{self.path} is not a quack data set (no readable {INFO_FILE}); build one with `quack ingest`."
            ) from exc

    @cached_property
    def tokenizer(self) -> QuackTokenizer:
        """The tokenizer that made the data set's tokens."""
        return QuackTokenizer.load(self.path / TOKENIZER_FILE)

    @cached_property
    def n_rows(self) -> int:
        """Number of rows, from the Parquet footer (no scan)."""
        return pq.ParquetFile(self.rows_path).metadata.num_rows

    def read_rows(self, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """The rows (all columns, or the ones named) as a DataFrame in id order."""
        return pq.read_table(self.rows_path, columns=list(columns) if columns is not None else None).to_pandas()


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
