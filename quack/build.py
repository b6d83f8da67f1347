"""Build a data set folder from raw Quack files: ingest, label, tokenize.

:func:`build_dataset` streams the input twice over a staging file (once to ingest and
label, once to tokenize) so memory stays flat, and renames the finished folder into place
so a failed build leaves nothing half-written. The folder's layout is described in
:mod:`quack.datafolder`; its columns come from :data:`quack.schema.ROW_SCHEMA`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from quack.datafolder import INFO_FILE, ROWS_FILE, TOKENIZER_FILE, DataFolder
from quack.ingest import IngestStats, QuackInputError, iter_rows
from quack.labels import Fingerprints, label_row
from quack.schema import Label, columns, schema_of
from quack.tokenizer import FIELD_CHARS, TEXT_FIELDS, QuackTokenizer

__all__ = ["build_dataset"]


def _plain_schema(names: Iterable[str]) -> pa.Schema:
    # Roles describe how the code uses a column; the files keep the plain schema they always had.
    return pa.schema([f.remove_metadata() for f in schema_of(names)])


# Pass 1 stores each raw row with its label; pass 2 adds the id and the tokens.
_STAGED_SCHEMA = _plain_schema(columns("ingest") + ("label", "fingerprint"))
_STORED_SCHEMA = _plain_schema(columns())
_TEXTS = columns("text")
_FLAGS = columns("flag")
_TOKENIZED = list(columns("tokenized"))
_INT32 = (-(2**31), 2**31 - 1)
_BATCH = 2048

Progress = Callable[[int, str], None]


def build_dataset(
    paths: str | os.PathLike | Iterable[str | os.PathLike],
    out_dir: str | os.PathLike,
    signatures: list[str] | None = None,
    tokenizer: QuackTokenizer | None = None,
    vocab_size: int = 4000,
    max_tokens: int = 256,
    geoip_db: str | None = None,
    anomalies_only: bool = False,
    progress: Progress | None = None,
    stats: IngestStats | None = None,
    allow_empty: bool = True,
) -> dict:
    """Ingest, label and tokenize raw Quack files into a data set folder.

    Parameters
    ----------
    paths : path or iterable of paths
        Raw files or folders, as for :func:`quack.ingest.iter_rows`.
    out_dir : path
        The data set folder. An existing data set there is replaced, only once the new
        one is complete; a folder holding anything else is refused.
    signatures : list of str, optional
        Fingerprint files; None uses the list shipped with quack.
    tokenizer : QuackTokenizer, optional
        Reuse this tokenizer (a checkpoint's, say); None trains one on the input.
    vocab_size, max_tokens : int
        For a newly trained tokenizer.
    geoip_db : str, optional
        MaxMind database for v1 countries.
    anomalies_only : bool
        Keep only failed probes of anomalous records.
    progress : callable, optional
        Called as ``progress(done_rows, stage)`` with stage ``"ingest"``, ``"train"`` or
        ``"tokenize"``.
    stats : IngestStats, optional
        Filled with the ingest counts (pass ``IngestStats(keep_problems=True)`` to list problems).
    allow_empty : bool
        Write a data set of no rows when the input holds no measurements; when False,
        raise instead and leave ``out_dir`` as it was.

    Returns
    -------
    dict
        The info written to ``info.json``.

    Raises
    ------
    QuackInputError
        For an unreadable input, an unusable output folder, or (unless ``allow_empty``)
        input with no measurements.
    """
    out = Path(out_dir).expanduser()
    _check_output(out)
    fingerprints = Fingerprints.load(signatures)
    stats = stats if stats is not None else IngestStats()
    report = progress or (lambda done, stage: None)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.building-", dir=out.parent))
    try:
        staging = work / "staging.parquet"
        n_rows = _ingest(paths, staging, fingerprints, stats, geoip_db, anomalies_only, report)
        if n_rows == 0 and not allow_empty:
            raise QuackInputError(
                f"Found no measurements in {_describe(paths)} ({_skipped_text(stats)}); "
                "give Censored Planet Quack files" + (" or drop --anomalies-only." if anomalies_only else ".")
            )
        if tokenizer is None:
            report(0, "train")
            tokenizer = QuackTokenizer.train(_staged_texts(staging), vocab_size=vocab_size, max_tokens=max_tokens)
            report(n_rows, "train")
        counts, longest, total_tokens = _tokenize(staging, work / ROWS_FILE, tokenizer, report)
        staging.unlink()
        tokenizer.save(work / TOKENIZER_FILE)
        info = {
            "rows": n_rows,
            "rows_per_label": {str(int(label)): counts.get(label, 0) for label in sorted(Label)},
            "longest_sequence": longest,
            "mean_tokens": total_tokens / n_rows if n_rows else 0.0,
            "vocab_size": tokenizer.vocab_size,
            "max_tokens": tokenizer.max_tokens,
            "files": stats.files,
            "lines": stats.lines,
            "skipped": dict(sorted(stats.skipped.items())),
            "sources": _sources(work / ROWS_FILE),
            "signatures": fingerprints.sources,
            "anomalies_only": anomalies_only,
        }
        (work / INFO_FILE).write_text(json.dumps(info, indent=2), encoding="utf-8")
        _replace(work, out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return info


def _check_output(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise QuackInputError(f"The output {out} is a file; give a folder for the data set.")
    if out.is_dir() and any(out.iterdir()):
        try:
            DataFolder.open(out)
        except QuackInputError:
            raise QuackInputError(
                f"The output folder {out} holds files that are not a quack data set; choose an empty or new folder."
            ) from None


def _replace(work: Path, out: Path) -> None:
    """Move the finished folder into place; an old data set goes only after that succeeded."""
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        os.replace(out, old / "data")
    try:
        os.replace(work, out)
    except OSError:
        if old is not None:
            os.replace(old / "data", out)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _describe(paths) -> str:
    if isinstance(paths, (str, os.PathLike)):
        return str(paths)
    paths = [str(p) for p in paths]
    return ", ".join(paths[:3]) + (" ..." if len(paths) > 3 else "")


def _skipped_text(stats: IngestStats) -> str:
    if not stats.skipped:
        return f"{stats.lines} lines read"
    parts = ", ".join(f"{n} {reason}" for reason, n in stats.skipped.most_common())
    return f"{stats.lines} lines read; skipped: {parts}"


def _ingest(paths, staging: Path, fingerprints: Fingerprints, stats: IngestStats, geoip_db, anomalies_only, report) -> int:
    """Pass 1: rows with labels, display text cut, into a staging Parquet file."""
    n_rows = 0
    with pq.ParquetWriter(staging, _STAGED_SCHEMA) as writer:
        batch: list[dict] = []
        for row in iter_rows(paths, stats, geoip_db=geoip_db, anomalies_only=anomalies_only):
            row["label"], row["fingerprint"] = label_row(row, fingerprints)
            batch.append(row)
            if len(batch) == _BATCH:
                writer.write_table(_rows_table(batch))
                n_rows += len(batch)
                batch = []
                report(n_rows, "ingest")
        if batch:
            writer.write_table(_rows_table(batch))
            n_rows += len(batch)
    report(n_rows, "ingest")
    return n_rows


def _rows_table(rows: list[dict]) -> pa.Table:
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
    for name in ("tls_version", "cipher_suite"):
        values[name] = [v if isinstance(v, int) and _INT32[0] <= v <= _INT32[1] else None for v in (r.get(name) for r in rows)]
    return pa.table({f.name: pa.array(values[f.name], type=f.type) for f in _STAGED_SCHEMA}, schema=_STAGED_SCHEMA)


def _cut(value: Any) -> str:
    return value[:FIELD_CHARS] if isinstance(value, str) else ""


def _staged_texts(staging: Path) -> Iterator[dict]:
    for batch in pq.ParquetFile(staging).iter_batches(batch_size=_BATCH, columns=list(TEXT_FIELDS)):
        texts = [batch.column(name).to_pylist() for name in TEXT_FIELDS]
        for row in zip(*texts):
            yield dict(zip(TEXT_FIELDS, row))


def _tokenize(staging: Path, target: Path, tokenizer: QuackTokenizer, report) -> tuple[dict, int, int]:
    """Pass 2: add ids and tokens to the staged rows."""
    counts: dict[int, int] = {}
    longest = total = done = 0
    with pq.ParquetWriter(target, _STORED_SCHEMA) as writer:
        for batch in pq.ParquetFile(staging).iter_batches(batch_size=_BATCH):
            table = pa.Table.from_batches([batch])
            rows = table.select(_TOKENIZED).to_pylist()
            token_lists = tokenizer.encode_rows(rows)
            lengths = np.fromiter((len(t) for t in token_lists), dtype=np.int32, count=len(token_lists))
            offsets = np.zeros(len(token_lists) + 1, dtype=np.int32)
            np.cumsum(lengths, out=offsets[1:])
            flat = np.fromiter((i for t in token_lists for i in t), dtype=np.int32, count=int(offsets[-1]))
            tokens = pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat))
            ids = pa.array(np.arange(done, done + len(rows), dtype=np.int64))
            table = table.add_column(0, "id", ids).append_column("tokens", tokens).append_column("n_tokens", pa.array(lengths))
            writer.write_table(table.cast(_STORED_SCHEMA))
            for label, n in zip(*np.unique(table.column("label").to_numpy(), return_counts=True)):
                counts[int(label)] = counts.get(int(label), 0) + int(n)
            longest = max(longest, int(lengths.max()))
            total += int(lengths.sum())
            done += len(rows)
            report(done, "tokenize")
    return counts, longest, total


def _sources(rows_path: Path) -> list[str]:
    sources = pq.read_table(rows_path, columns=["source"]).column("source")
    return sorted(str(s) for s in pc.unique(sources).to_pylist())
