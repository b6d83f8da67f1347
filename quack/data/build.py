"""Build a data set folder from raw Quack files: ingest, label, tokenize.

:func:`build_dataset` streams the input in chunks (:func:`quack.data.ingest.iter_chunks`) so
memory stays flat, and renames the finished folder into place so a failed build leaves
nothing half-written. Given a tokenizer, each chunk is parsed, labelled and tokenized in
one pass; otherwise a first pass stages each chunk's labelled rows in a part file, the
tokenizer is trained on them, and a second pass tokenizes the parts. Chunks and parts
are handled in worker processes when asked (:class:`quack.data.parallel.Workers`) and joined
in input order, so the data set is the same whatever the number of workers. The
folder's layout is described in :mod:`quack.data.datafolder`; its columns come from
:data:`quack.schema.ROW_SCHEMA`.

A build works in a hidden ``.NAME.building-PID-XXXXXXXX`` folder beside the output, PID
being its process. On Linux the finished folder and an old data set are swapped in one
step, so the output always holds a whole data set, old or new; elsewhere the old one is
renamed aside to ``.NAME.old-PID-XXXXXXXX`` first. A build killed before it could tidy
up leaves these folders behind; the next build of the same output, seeing their process
gone, renames an old data set back where the output is missing and removes the rest.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import json
import os
import re
import shutil
import sys
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from quack.data.datafolder import INFO_FILE, ROWS_FILE, TOKENIZER_FILE, replace_blocker
from quack.data.ingest import Chunk, IngestStats, QuackInputError, chunk_rows, geoip_lookup, iter_chunks
from quack.fingerprints.labels import FingerprintWarning, Fingerprints, label_row
from quack.data.parallel import Workers
from quack.schema import Label, columns, schema_of
from quack.data.tokenizer import FIELD_CHARS, TEXT_FIELDS, QuackTokenizer, check_fields

__all__ = ["build_dataset"]


def _plain_schema(names: Iterable[str]) -> pa.Schema:
    # Roles describe how the code uses a column; the files keep the plain schema they always had.
    return pa.schema([f.remove_metadata() for f in schema_of(names)])


# Pass 1 stores each raw row with its label; pass 2 adds the id and the tokens.
_STAGED_SCHEMA = _plain_schema(columns("ingest") + ("label", "fingerprint"))
_STORED_SCHEMA = _plain_schema(columns())
_TEXTS = columns("text")
_FLAGS = columns("flag")
_INT32 = (-(2**31), 2**31 - 1)
_BATCH = 2048

Progress = Callable[[int, str], None]

# The hidden folders a build keeps beside its output, after ".NAME.".
_STAGE = re.compile(r"(building|old)-(\d+)-[0-9a-f]{8}")
# renameat2(2): the flag that swaps two paths, and the "relative to the working directory" fd.
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


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
    keep_partial: bool = False,
    max_expansion: float | None = None,
    workers: int = 1,
    fields: Iterable[str] | None = None,
) -> dict:
    """Ingest, label and tokenize raw Quack files into a data set folder.

    Parameters
    ----------
    paths : path or iterable of paths
        Raw files or folders, as for :func:`quack.data.ingest.iter_rows`.
    out_dir : path
        The data set folder, created with the user's umask; a link to a folder is
        followed. An existing data set there is replaced, only once the new one is
        complete; a folder holding anything besides a data set's own files is refused.
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
    keep_partial : bool
        Keep the rows of a truncated or corrupt input file read before the damage; by
        default such a file stops the build.
    max_expansion : float, optional
        Decompressed bytes allowed per compressed byte of an input; see
        :func:`quack.data.ingest.iter_rows`.
    workers : int
        Processes that parse, label and tokenize (the files and archives are read here);
        the data set, its row order and the counts are the same for any number.
    fields : sequence of str, optional
        For a newly trained tokenizer: the fields of each sequence in their order
        (:data:`quack.data.tokenizer.FIELDS`); None keeps the default layout.

    Returns
    -------
    dict
        The info written to ``info.json``.

    Raises
    ------
    QuackInputError
        For an unreadable or damaged input, an unusable output folder, a disk that cannot
        be written (naming the output), or (unless ``allow_empty``) input with no
        measurements.
    quack.data.decompression.ExpansionError
        When a compressed input expands past its allowance.
    """
    out = Path(out_dir).expanduser()
    if out.is_symlink():
        # The data set goes where the link points, as with any other path through a link.
        out = out.resolve()
    try:
        _recover(out)
    except OSError as error:
        raise _write_error(out, error) from error
    _check_output(out)
    if fields is not None and tokenizer is None:
        fields = check_fields(fields)
    fingerprints = Fingerprints.load(signatures)
    if geoip_db:
        geoip_lookup(geoip_db)
    stats = stats if stats is not None else IngestStats()
    report = progress or (lambda done, stage: None)
    work = _stage_name(out, "building")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        # os.mkdir applies the umask; tempfile.mkdtemp would make the folder private to the user.
        os.mkdir(work)
    except OSError as error:
        raise _write_error(out, error) from error
    try:
        staging = work / "staging"
        staging.mkdir()
        chunks = iter_chunks(paths, keep_partial=keep_partial, max_expansion=max_expansion,
                             keep_problems=stats.keep_problems)
        options = _RowOptions(staging, geoip_db, anomalies_only, stats.keep_problems)
        with Workers(workers) as pool, pq.ParquetWriter(work / ROWS_FILE, _STORED_SCHEMA) as writer:
            rows = _RowsWriter(writer)
            found = _Found(paths, stats, allow_empty, anomalies_only)
            results = _chunk_results(pool, chunks, options, fingerprints, stats, report, tokenizer)
            if tokenizer is not None:
                rows.write_all(results)
                found.check()
            else:
                parts = list(results)
                found.check()
                report(0, "train")
                tokenizer = QuackTokenizer.train(_staged_texts(parts), vocab_size=vocab_size, max_tokens=max_tokens,
                                                 fields=fields)
                report(found.rows, "train")
                tokenized = pool.map(_tokenize_part, parts, here=(tokenizer,), there=(tokenizer.to_json(),))
                rows.write_all(tokenized, lambda done: report(done, "tokenize"))
        shutil.rmtree(staging)
        n_rows, counts = rows.done, rows.counts
        tokenizer.save(work / TOKENIZER_FILE)
        info = {
            "rows": n_rows,
            "rows_per_label": {str(int(label)): counts.get(label, 0) for label in sorted(Label)},
            "longest_sequence": rows.longest,
            "mean_tokens": rows.total / n_rows if n_rows else 0.0,
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
    except ChildProcessError:
        # A worker died (for memory, say): its own sentence, not a disk's.
        shutil.rmtree(work, ignore_errors=True)
        raise
    except OSError as error:
        # Reading errors become QuackInputErrors in quack.data.ingest; what is left is the disk.
        shutil.rmtree(work, ignore_errors=True)
        raise _write_error(out, error) from error
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return info


def _write_error(out: Path, error: OSError) -> QuackInputError:
    reason = error.strerror or (str(error).strip().splitlines() or [type(error).__name__])[0]
    return QuackInputError(
        f"Cannot write the data set {out}: {reason}; free some space or choose a folder you can write to."
    )


def _check_output(out: Path) -> None:
    if os.path.lexists(out) and not out.is_dir():
        raise QuackInputError(f"The output {out} is a file; give a folder for the data set.")
    blocker = replace_blocker(out)
    if blocker is not None:
        raise QuackInputError(
            f"The output folder {out} is not a quack data set that can be replaced ({blocker}); "
            "choose an empty or new folder."
        )


def _stage_name(out: Path, kind: str) -> Path:
    """A new hidden path beside ``out`` that names this process, for :func:`_recover`."""
    return out.parent / f".{out.name}.{kind}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _running(pid: int) -> bool:
    """Whether process ``pid`` may still be running; unsure answers yes, so nothing live is removed."""
    if pid == os.getpid() or os.name != "posix":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _recover(out: Path) -> None:
    """Undo what builds of ``out`` killed half-way left: restore an old data set, remove the rest."""
    prefix = f".{out.name}."
    try:
        names = sorted(entry.name for entry in out.parent.iterdir() if entry.name.startswith(prefix))
    except FileNotFoundError:
        return
    for name in names:
        stage = _STAGE.fullmatch(name[len(prefix):])
        if stage is None or _running(int(stage.group(2))):
            continue
        path = out.parent / name
        if stage.group(1) == "old" and not os.path.lexists(out):
            # Killed between the two renames of a swap: the old data set goes back.
            os.rename(path, out)
        else:
            shutil.rmtree(path, ignore_errors=True)


def _replace(work: Path, out: Path) -> None:
    """Put the finished folder at ``out`` so that ``out`` holds a whole data set at every moment."""
    # The build may have taken hours: refuse again if the folder gained files meanwhile.
    _check_output(out)
    if not os.path.lexists(out):
        os.rename(work, out)
        return
    if _exchange(work, out):
        # ``work`` now holds the old data set.
        shutil.rmtree(work, ignore_errors=True)
        return
    old = _stage_name(out, "old")
    os.rename(out, old)
    try:
        os.rename(work, out)
    except BaseException:
        os.rename(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _exchange(first: Path, second: Path) -> bool:
    """Swap two existing paths in one step; False where the system or file system cannot."""
    rename = _renameat2()
    if rename is None:
        return False
    if rename(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(second))


@functools.lru_cache(maxsize=1)
def _renameat2() -> Callable[..., int] | None:
    """Linux's renameat2 from the C library, or None where there is none."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    function.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint)
    function.restype = ctypes.c_int
    return function


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


class _Found:
    """The rows a build found, and its refusal of input with none (unless a data set of no rows is allowed)."""

    def __init__(self, paths, stats: IngestStats, allow_empty: bool, anomalies_only: bool) -> None:
        self.paths, self.stats, self.allow_empty, self.anomalies_only = paths, stats, allow_empty, anomalies_only
        self.before = stats.rows

    @property
    def rows(self) -> int:
        return self.stats.rows - self.before

    def check(self) -> None:
        if self.rows == 0 and not self.allow_empty:
            raise QuackInputError(
                f"Found no measurements in {_describe(self.paths)} ({_skipped_text(self.stats)}); "
                "give Censored Planet Quack files" + (" or drop --anomalies-only." if self.anomalies_only else ".")
            )


@dataclass(frozen=True)
class _RowOptions:
    """How a chunk becomes labelled rows; the same in every process."""

    staging: Path
    geoip_db: str | None
    anomalies_only: bool
    keep_problems: bool


def _chunk_results(
    pool: Workers, chunks: Iterable[Chunk], options: _RowOptions, fingerprints: Fingerprints, stats: IngestStats,
    report: Progress, tokenizer: QuackTokenizer | None,
) -> Iterator[pa.Table | Path]:
    """Each chunk's labelled rows in input order: tokenized, given a tokenizer, else as a staging part.

    Each chunk's counts join ``stats`` as its result comes back, so they add up in input
    order, as one process reading alone would count them; a chunk with no rows gives nothing.
    """
    before = stats.rows
    here = (options, fingerprints, tokenizer)
    there = (options, tuple(fingerprints.sources), tokenizer.to_json() if tokenizer is not None else None)
    for chunk_stats, result in pool.map(_chunk_rows, chunks, here=here, there=there):
        stats.merge(chunk_stats)
        report(stats.rows - before, "ingest")
        if result is not None:
            yield result
    report(stats.rows - before, "ingest")


def _chunk_rows(
    chunk: Chunk, options: _RowOptions, fingerprints: Fingerprints | tuple[str, ...],
    tokenizer: QuackTokenizer | str | None,
) -> tuple[IngestStats, pa.Table | Path | None]:
    """One chunk's rows, labelled, display text cut: tokenized, or else in a staging part of their own."""
    if not isinstance(fingerprints, Fingerprints):
        fingerprints = _worker_fingerprints(fingerprints)
    stats = IngestStats(keep_problems=options.keep_problems)
    tables, batch = [], []
    for row in chunk_rows(chunk, stats, geoip_db=options.geoip_db, anomalies_only=options.anomalies_only):
        row["label"], row["fingerprint"] = label_row(row, fingerprints)
        batch.append(row)
        if len(batch) == _BATCH:
            tables.append(_rows_table(batch))
            batch = []
    if batch:
        tables.append(_rows_table(batch))
    if not tables:
        return stats, None
    table = pa.concat_tables(tables)
    if tokenizer is not None:
        return stats, _with_tokens(table, tokenizer)
    part = options.staging / f"part-{chunk.index:08d}.parquet"
    pq.write_table(table, part)
    return stats, part


@functools.lru_cache(maxsize=1)
def _worker_fingerprints(sources: tuple[str, ...]) -> Fingerprints:
    """The build's fingerprints in a worker process, loaded for its first chunk only."""
    with warnings.catch_warnings():
        # The build warned of an empty list once already, in its own process.
        warnings.simplefilter("ignore", FingerprintWarning)
        return Fingerprints.load(list(sources))


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


def _staged_texts(parts: list[Path]) -> Iterator[dict]:
    for part in parts:
        for batch in pq.ParquetFile(part).iter_batches(batch_size=_BATCH, columns=list(TEXT_FIELDS)):
            texts = [batch.column(name).to_pylist() for name in TEXT_FIELDS]
            for row in zip(*texts):
                yield dict(zip(TEXT_FIELDS, row))


class _RowsWriter:
    """Writes tokenized tables to the rows file in order, numbering the rows and counting what info.json says."""

    def __init__(self, writer: pq.ParquetWriter) -> None:
        self.writer = writer
        self.counts: dict[int, int] = {}
        self.longest = self.total = self.done = 0

    def write_all(self, tables: Iterable[pa.Table], report: Callable[[int], None] | None = None) -> None:
        for table in tables:
            ids = pa.array(np.arange(self.done, self.done + table.num_rows, dtype=np.int64))
            self.writer.write_table(table.add_column(0, "id", ids).cast(_STORED_SCHEMA))
            labels, n = np.unique(table.column("label").to_numpy(), return_counts=True)
            for label, count in zip(labels.tolist(), n.tolist()):
                self.counts[label] = self.counts.get(label, 0) + count
            lengths = table.column("n_tokens").to_numpy()
            self.longest = max(self.longest, int(lengths.max()))
            self.total += int(lengths.sum())
            self.done += table.num_rows
            if report is not None:
                report(self.done)


def _tokenize_part(part: Path, tokenizer: QuackTokenizer | str) -> pa.Table:
    """A staging part with its tokens."""
    return _with_tokens(pq.read_table(part), tokenizer)


def _with_tokens(table: pa.Table, tokenizer: QuackTokenizer | str) -> pa.Table:
    """Labelled rows with their ``tokens`` and ``n_tokens`` columns added."""
    if not isinstance(tokenizer, QuackTokenizer):
        tokenizer = _worker_tokenizer(tokenizer)
    tokens = tokenizer.encode_table(table)
    return table.append_column("tokens", tokens).append_column("n_tokens", pc.list_value_length(tokens))


@functools.lru_cache(maxsize=1)
def _worker_tokenizer(document: str) -> QuackTokenizer:
    """The build's tokenizer in a worker process, read for its first job only."""
    return QuackTokenizer.from_json(document)


def _sources(rows_path: Path) -> list[str]:
    sources = pq.read_table(rows_path, columns=["source"]).column("source")
    return sorted(str(s) for s in pc.unique(sources).to_pylist())
