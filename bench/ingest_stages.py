"""Where one ingest spends its time: each step of ``quack ingest`` timed apart, on one thread.

    RAYON_NUM_THREADS=1 python bench/ingest_stages.py FILE_OR_FOLDER [...]

Reads the input into chunks as ``quack ingest`` does, then times, over all chunks: pickling
and unpickling a chunk (what goes to a worker), parsing the lines into rows, labelling them
with the shipped fingerprints, making the Arrow table, tokenizing with the shipped
checkpoint's tokenizer, pickling and unpickling the table (what comes back), and writing the
rows file. The reading, the pickling of chunks and the writing happen in the first
process whatever the number of workers; the rest is spread over the workers.
"""

from __future__ import annotations

import pickle
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

from quack.data.ingest import chunk_rows, iter_chunks
from quack.data.records import IngestStats
from quack.data.rows import STORED_SCHEMA, RowsWriter, rows_table, with_tokens
from quack.fingerprints.labels import Fingerprints, label_row
from quack.model.encoding import SHIPPED_CHECKPOINT, load_checkpoint


def main(paths: list[str]) -> None:
    tokenizer = load_checkpoint(SHIPPED_CHECKPOINT).tokenizer
    fingerprints = Fingerprints.load(None)
    spent: dict[str, float] = {}

    def timed(name: str, work):
        start = time.perf_counter()
        value = work()
        spent[name] = spent.get(name, 0.0) + time.perf_counter() - start
        return value

    chunks = timed("read and decompress (first process)", lambda: list(iter_chunks(paths)))
    sent = timed("pickle chunks (first process)", lambda: [pickle.dumps(c) for c in chunks])
    timed("unpickle chunks (worker)", lambda: [pickle.loads(b) for b in sent])
    tables = []
    for chunk in chunks:
        rows = timed("parse lines (worker)", lambda: list(chunk_rows(chunk, IngestStats())))

        def label() -> None:
            for row in rows:
                row["label"], row["fingerprint"] = label_row(row, fingerprints)

        timed("label (worker)", label)
        table = timed("Arrow table (worker)", lambda: rows_table(rows))
        tables.append(timed("tokenize (worker)", lambda: with_tokens(table, tokenizer)))
    back = timed("pickle tables (worker)", lambda: [pickle.dumps(t) for t in tables])
    tables = timed("unpickle tables (first process)", lambda: [pickle.loads(b) for b in back])
    with tempfile.TemporaryDirectory() as tmp:
        def write() -> None:
            with pq.ParquetWriter(Path(tmp) / "rows.parquet", STORED_SCHEMA) as writer:
                RowsWriter(writer).write_all(tables)

        timed("write Parquet (first process)", write)
    total = sum(spent.values())
    rows = sum(t.num_rows for t in tables)
    print(f"{rows:,} rows in {len(chunks)} chunks: {total:.1f} s, {rows / total:,.0f} rows/s on one thread")
    for name, seconds in spent.items():
        print(f"  {name:40s} {seconds:7.2f} s {100 * seconds / total:5.1f} %")
    first = sum(v for k, v in spent.items() if "first process" in k) / total
    print(f"first process alone: {100 * first:.1f} % -> at most {1 / (first + (1 - first) / 2):.2f}x with 2 workers")


if __name__ == "__main__":
    main(sys.argv[1:])
