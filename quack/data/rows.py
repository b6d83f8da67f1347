"""Labelled measurement rows as Arrow tables, their tokens, and the rows file written in order.

A build makes a table of each batch of labelled rows (:func:`rows_table`), in the staged
schema: display text cut to :data:`quack.data.vocab.FIELD_CHARS`, missing flags false.
:func:`with_tokens` adds the tokens, and :class:`RowsWriter` numbers the rows and writes
them in the stored schema, :data:`quack.schema.ROW_SCHEMA` without its roles.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from quack.data.records import Row
from quack.data.tokenizer import QuackTokenizer
from quack.data.vocab import FIELD_CHARS, TEXT_FIELDS
from quack.schema import columns, schema_of

__all__ = ["TABLE_ROWS", "STAGED_SCHEMA", "STORED_SCHEMA", "rows_table", "with_tokens", "staged_texts", "RowsWriter"]


def _plain_schema(names: Iterable[str]) -> pa.Schema:
    # Roles describe how the code uses a column; the files keep the plain schema they always had.
    return pa.schema([f.remove_metadata() for f in schema_of(names)])


#: Rows in one table at a time: memory stays bounded, and the BPE gets a batch worth running in parallel.
TABLE_ROWS = 2048
#: A raw row with its label, as a build stages it before any tokenizer exists.
STAGED_SCHEMA = _plain_schema(columns("ingest") + ("label", "fingerprint"))
#: A row of the rows file: the staged row with its id and tokens.
STORED_SCHEMA = _plain_schema(columns())

_TEXTS = columns("text")
_FLAGS = columns("flag")
_INT32 = (-(2**31), 2**31 - 1)


def rows_table(rows: list[Row]) -> pa.Table:
    """Labelled rows as a table of :data:`STAGED_SCHEMA`.

    Parameters
    ----------
    rows : list of dict
        Rows as :func:`quack.data.ingest.iter_rows` yields them, with ``label`` and
        ``fingerprint`` added.

    Returns
    -------
    pyarrow.Table
        Text cut to :data:`quack.data.vocab.FIELD_CHARS`, missing flags false, numbers out
        of their column's range missing.
    """
    values: dict[str, list] = {}
    for name in _TEXTS:
        values[name] = [_cut(r.get(name)) for r in rows]
    for name in _FLAGS:
        # Missing flags count as false, as the published model's pipeline did.
        values[name] = [r.get(name) is True for r in rows]
    values["label"] = [r["label"] for r in rows]
    values["line"] = [r.get("line") for r in rows]
    values["probe"] = [r.get("probe") for r in rows]
    values["elapsed_ms"] = [r.get("elapsed_ms") for r in rows]
    values["time"] = [r.get("time") for r in rows]
    for name in ("tls_version", "cipher_suite"):
        values[name] = [v if isinstance(v, int) and _INT32[0] <= v <= _INT32[1] else None for v in (r.get(name) for r in rows)]
    return pa.table({f.name: pa.array(values[f.name], type=f.type) for f in STAGED_SCHEMA}, schema=STAGED_SCHEMA)


def _cut(value: Any) -> str:
    return value[:FIELD_CHARS] if isinstance(value, str) else ""


def with_tokens(table: pa.Table, tokenizer: QuackTokenizer) -> pa.Table:
    """Labelled rows with their ``tokens`` and ``n_tokens`` columns added."""
    tokens = tokenizer.encode_table(table)
    return table.append_column("tokens", tokens).append_column("n_tokens", pc.list_value_length(tokens))


def staged_texts(parts: list[Path]) -> Iterator[dict]:
    """The text fields of every row of staged Parquet parts, in order, for training a tokenizer."""
    for part in parts:
        for batch in pq.ParquetFile(part).iter_batches(batch_size=TABLE_ROWS, columns=list(TEXT_FIELDS)):
            texts = [batch.column(name).to_pylist() for name in TEXT_FIELDS]
            for row in zip(*texts):
                yield dict(zip(TEXT_FIELDS, row))


class RowsWriter:
    """Writes tokenized tables to the rows file in order, numbering the rows and counting what info.json says.

    Parameters
    ----------
    writer : pyarrow.parquet.ParquetWriter
        Open on the rows file with :data:`STORED_SCHEMA`.

    Attributes
    ----------
    counts : dict
        Rows written per label code.
    longest, total, done : int
        The longest sequence, the tokens of all sequences and the rows written.
    """

    def __init__(self, writer: pq.ParquetWriter) -> None:
        self.writer = writer
        self.counts: dict[int, int] = {}
        self.longest = self.total = self.done = 0

    def write_all(self, tables: Iterable[pa.Table], report: Callable[[int], None] | None = None) -> None:
        """Write tables of :func:`with_tokens` in order, calling ``report(rows written)`` after each."""
        for table in tables:
            ids = pa.array(np.arange(self.done, self.done + table.num_rows, dtype=np.int64))
            self.writer.write_table(table.add_column(0, "id", ids).cast(STORED_SCHEMA))
            labels, n = np.unique(table.column("label").to_numpy(), return_counts=True)
            for label, count in zip(labels.tolist(), n.tolist()):
                self.counts[label] = self.counts.get(label, 0) + count
            lengths = table.column("n_tokens").to_numpy()
            self.longest = max(self.longest, int(lengths.max()))
            self.total += int(lengths.sum())
            self.done += table.num_rows
            if report is not None:
                report(self.done)
