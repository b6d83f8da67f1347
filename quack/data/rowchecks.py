"""What a Parquet file of rows claims, checked before anything is sized by it.

A Parquet footer says how many rows the file holds, and readers size arrays by it before
a page is read; a footer edited to claim millions of rows would make them allocate for
millions. The stored columns decide what each value means: a label stored as text is
no label at all. And a token id outside the tokenizer's vocabulary ends a model's
embedding lookup in an index error. Each is refused here in one sentence naming the file.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from quack.errors import QuackInputError
from quack.schema import ROW_SCHEMA, roles

__all__ = ["MIN_ROW_BYTES", "parquet_rows", "check_columns", "check_tokens"]

#: Bytes of file every row takes at least. quack's rows take about a hundred (a data set)
#: or four per latent dimension (encoded output), so a genuine file is never refused.
MIN_ROW_BYTES = 1


def parquet_rows(file: str | os.PathLike, advice: str, metadata: pq.FileMetaData | None = None) -> int:
    """The rows a Parquet file's footer claims, once the claim is found possible.

    The claim must equal the sum of the row groups' own counts and fit in the file: at
    most one row per :data:`MIN_ROW_BYTES` bytes of it.

    Parameters
    ----------
    file : str or os.PathLike
        The Parquet file.
    advice : str
        What the user should do, ending the sentence (``"build the data set again with `quack ingest`"``).
    metadata : pyarrow.parquet.FileMetaData, optional
        Its footer, when already read.

    Returns
    -------
    int

    Raises
    ------
    FileNotFoundError
        When the file is missing.
    QuackInputError
        When the file is not Parquet, or the claim is impossible.
    """
    path = Path(file)
    try:
        meta = metadata if metadata is not None else pq.ParquetFile(path).metadata
        size = path.stat().st_size
    except FileNotFoundError:
        raise  # the caller says what a missing file means
    except (OSError, pa.ArrowException) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        raise QuackInputError(f"{path} cannot be read as Parquet ({reason}); {advice}.") from None
    claimed = meta.num_rows
    grouped = sum(meta.row_group(i).num_rows for i in range(meta.num_row_groups))
    if claimed < 0 or grouped != claimed or claimed * MIN_ROW_BYTES > size:
        raise QuackInputError(
            f"{path} is damaged or was altered: its footer claims {claimed:,} rows, its row groups {grouped:,}, "
            f"in a file of {size:,} bytes; {advice}."
        )
    return claimed


def check_columns(file: str | os.PathLike, schema: pa.Schema, advice: str) -> None:
    """Refuse a rows file whose columns are not stored as quack stores them.

    Every column of :data:`quack.schema.ROW_SCHEMA` must be there (an ``optional`` one
    may be missing) with its type.

    Raises
    ------
    QuackInputError
        Naming the file, the first wrong column and its type.
    """
    for field in ROW_SCHEMA:
        index = schema.get_field_index(field.name)
        if index < 0:
            if "optional" in roles(field):
                continue
            raise QuackInputError(f"{file} has no column {field.name!r}; {advice}.")
        stored = schema.field(index).type
        if not stored.equals(field.type):
            raise QuackInputError(
                f"{file} stores the column {field.name!r} as {stored}, not {field.type} as quack writes it; {advice}."
            )


def check_tokens(rows: pa.Table | pa.RecordBatch, vocab_size: int, file: str | os.PathLike, advice: str) -> None:
    """Refuse rows whose ``tokens`` hold an id outside ``0 .. vocab_size - 1``.

    Raises
    ------
    QuackInputError
        Naming the file, the row's ``id`` (as stored in the file) and the id.
    """
    if "tokens" not in rows.schema.names or not rows.num_rows:
        return
    tokens = rows.column("tokens")
    chunks = tokens.chunks if isinstance(tokens, pa.ChunkedArray) else [tokens]
    before = 0
    for chunk in chunks:
        values = pc.list_flatten(chunk)
        extremes = pc.min_max(values)
        if not len(values) or (extremes["min"].as_py() >= 0 and extremes["max"].as_py() < vocab_size):
            before += len(chunk)
            continue
        outside = pc.or_(pc.less(values, 0), pc.greater_equal(values, vocab_size))
        first = pc.index(outside, True).as_py()
        row = before + pc.list_parent_indices(chunk)[first].as_py()
        where = f"row id {rows.column('id')[row].as_py()}" if "id" in rows.schema.names else f"row {row}"
        raise QuackInputError(
            f"{file} holds token id {values[first].as_py()} in {where}, outside its tokenizer's "
            f"{vocab_size:,} ids; {advice}."
        )
