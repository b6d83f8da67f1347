"""Build a data set folder from raw Quack files: ingest, label, tokenize.

:func:`build_dataset` streams the input in chunks (:func:`quack.data.ingest.iter_chunks`) so
memory stays flat, and builds in a hidden folder that is swapped into place whole
(:mod:`quack.data.swap`), so a failed build leaves nothing half-written. Given a tokenizer,
each chunk is parsed, labelled and tokenized in one pass; otherwise a first pass stages
each chunk's labelled rows in a part file, the tokenizer is trained on them, and a second
pass tokenizes the parts. Chunks and parts are handled in worker processes when asked
(:class:`quack.data.parallel.Workers`) and joined in input order, so the data set is the
same whatever the number of workers. The folder's layout is described in
:mod:`quack.data.datafolder`; its rows are made in :mod:`quack.data.rows`, their columns
from :data:`quack.schema.ROW_SCHEMA`.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from quack.data.datafolder import INFO_FILE, ROWS_FILE, TOKENIZER_FILE
from quack.data.ingest import Chunk, chunk_rows, geoip_lookup, iter_chunks
from quack.data.parallel import Workers
from quack.data.records import IngestStats
from quack.data.rows import STORED_SCHEMA, TABLE_ROWS, RowsWriter, rows_table, staged_texts, with_tokens
from quack.data.swap import building, output_folder, swap_in
from quack.data.tokenizer import QuackTokenizer
from quack.data.vocab import check_fields
from quack.errors import QuackInputError
from quack.fingerprints.labels import MATCH_RULES, FingerprintWarning, Fingerprints, label_row
from quack.schema import Label

__all__ = ["build_dataset"]

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
    keep_partial: bool = False,
    max_expansion: float | None = None,
    workers: int = 1,
    fields: Iterable[str] | None = None,
    match: str = "full",
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
    stats : quack.data.records.IngestStats, optional
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
        (:data:`quack.data.vocab.FIELDS`); None keeps the default layout.
    match : {"full", "body"}
        What the fingerprints are matched against (:func:`quack.fingerprints.labels.label_row`):
        the whole response, as Censored Planet's analysis pipeline does, or the body alone,
        as the published model's pipeline did; recorded in ``info.json``.

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
    out = output_folder(out_dir)
    # Checked before any work, though only a tokenizer trained here reads them.
    fields = check_fields(fields) if fields is not None and tokenizer is None else fields
    if match not in MATCH_RULES:
        raise QuackInputError(f"Unknown match rule {match!r}; choose one of {', '.join(MATCH_RULES)}.")
    fingerprints = Fingerprints.load(signatures)
    if geoip_db:
        # A database that cannot be opened stops the build before it reads anything.
        geoip_lookup(geoip_db)
    stats = stats if stats is not None else IngestStats()
    found = _Found(paths, stats, allow_empty, anomalies_only)
    report = progress or (lambda done, stage: None)
    with building(out) as work:
        chunks = iter_chunks(paths, keep_partial=keep_partial, max_expansion=max_expansion,
                             keep_problems=stats.keep_problems)
        options = _RowOptions(work / "staging", geoip_db, anomalies_only, stats.keep_problems, match)
        options.staging.mkdir()
        with Workers(workers) as pool:
            labelled = _labelled_chunks(pool, chunks, options, fingerprints, found, report, tokenizer)
            given = tokenizer if tokenizer is not None else _Training(vocab_size, max_tokens, fields)
            rows, tokenizer = _write_rows(work / ROWS_FILE, pool, labelled, found, report, given)
        shutil.rmtree(options.staging)
        tokenizer.save(work / TOKENIZER_FILE)
        info = _info(work / ROWS_FILE, rows, tokenizer, stats, fingerprints, anomalies_only)
        info["match"] = match
        (work / INFO_FILE).write_text(json.dumps(info, indent=2), encoding="utf-8")
        swap_in(work, out)
    return info


@dataclass(frozen=True)
class _Training:
    """How a build given no tokenizer trains one."""

    vocab_size: int
    max_tokens: int
    fields: tuple[str, ...] | None

    def train(self, parts: list[Path]) -> QuackTokenizer:
        return QuackTokenizer.train(staged_texts(parts), vocab_size=self.vocab_size, max_tokens=self.max_tokens,
                                    fields=self.fields)


@dataclass(frozen=True)
class _RowOptions:
    """How a chunk becomes labelled rows; the same in every process."""

    staging: Path
    geoip_db: str | None
    anomalies_only: bool
    keep_problems: bool
    match: str = "full"


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


def _write_rows(
    path: Path, pool: Workers, labelled: Iterable[pa.Table | Path], found: _Found, report: Progress,
    tokenizer: QuackTokenizer | _Training,
) -> tuple[RowsWriter, QuackTokenizer]:
    """The rows file, and the tokenizer of its tokens: the one given, or one trained on the staged parts.

    Given a tokenizer, the labelled chunks come tokenized and are written as they come;
    otherwise they come as staging parts, and the tokenizer is trained on all of them
    before the parts are tokenized and written.
    """
    with pq.ParquetWriter(path, STORED_SCHEMA) as writer:
        rows = RowsWriter(writer)
        if isinstance(tokenizer, QuackTokenizer):
            rows.write_all(labelled)
            found.check()
            return rows, tokenizer
        parts = list(labelled)
        found.check()
        report(0, "train")
        trained = tokenizer.train(parts)
        report(found.rows, "train")
        tokenized = pool.map(_tokenize_part, parts, here=(trained,), there=(trained.to_json(),))
        rows.write_all(tokenized, lambda done: report(done, "tokenize"))
    return rows, trained


def _info(
    rows_path: Path, rows: RowsWriter, tokenizer: QuackTokenizer, stats: IngestStats, fingerprints: Fingerprints,
    anomalies_only: bool,
) -> dict:
    """What ``info.json`` says of a data set."""
    return {
        "rows": rows.done,
        "rows_per_label": {str(int(label)): rows.counts.get(label, 0) for label in sorted(Label)},
        "longest_sequence": rows.longest,
        "mean_tokens": rows.total / rows.done if rows.done else 0.0,
        "vocab_size": tokenizer.vocab_size,
        "max_tokens": tokenizer.max_tokens,
        "files": stats.files,
        "lines": stats.lines,
        "skipped": dict(sorted(stats.skipped.items())),
        "sources": _sources(rows_path),
        "signatures": fingerprints.sources,
        "anomalies_only": anomalies_only,
    }


def _sources(rows_path: Path) -> list[str]:
    """The files (and archive members) the rows came from, sorted."""
    sources = pq.read_table(rows_path, columns=["source"]).column("source")
    return sorted(str(s) for s in pc.unique(sources).to_pylist())


def _labelled_chunks(
    pool: Workers, chunks: Iterable[Chunk], options: _RowOptions, fingerprints: Fingerprints, found: _Found,
    report: Progress, tokenizer: QuackTokenizer | None,
) -> Iterator[pa.Table | Path]:
    """Each chunk's labelled rows in input order: tokenized, given a tokenizer, else as a staging part.

    Each chunk's counts join the build's as its result comes back, so they add up in input
    order, as one process reading alone would count them; a chunk with no rows gives nothing.
    """
    here = (options, fingerprints, tokenizer)
    there = (options, tuple(fingerprints.sources), tokenizer.to_json() if tokenizer is not None else None)
    for chunk_stats, result in pool.map(_chunk_rows, chunks, here=here, there=there):
        found.stats.merge(chunk_stats)
        report(found.rows, "ingest")
        if result is not None:
            yield result
    report(found.rows, "ingest")


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
        row["label"], row["fingerprint"] = label_row(row, fingerprints, options.match)
        batch.append(row)
        if len(batch) == TABLE_ROWS:
            tables.append(rows_table(batch))
            batch = []
    if batch:
        tables.append(rows_table(batch))
    if not tables:
        return stats, None
    table = pa.concat_tables(tables)
    if tokenizer is not None:
        return stats, with_tokens(table, _worker_tokenizer(tokenizer))
    part = options.staging / f"part-{chunk.index:08d}.parquet"
    pq.write_table(table, part)
    return stats, part


def _tokenize_part(part: Path, tokenizer: QuackTokenizer | str) -> pa.Table:
    """A staging part with its tokens."""
    return with_tokens(pq.read_table(part), _worker_tokenizer(tokenizer))


def _worker_tokenizer(tokenizer: QuackTokenizer | str) -> QuackTokenizer:
    """The build's tokenizer: itself in the build's own process, its document read once in a worker."""
    return tokenizer if isinstance(tokenizer, QuackTokenizer) else _tokenizer_of(tokenizer)


@functools.lru_cache(maxsize=1)
def _tokenizer_of(document: str) -> QuackTokenizer:
    """A worker's copy of the build's tokenizer, read for its first job only."""
    return QuackTokenizer.from_json(document)


@functools.lru_cache(maxsize=1)
def _worker_fingerprints(sources: tuple[str, ...]) -> Fingerprints:
    """The build's fingerprints in a worker process, loaded for its first chunk only."""
    with warnings.catch_warnings():
        # The build warned of an empty list once already, in its own process.
        warnings.simplefilter("ignore", FingerprintWarning)
        return Fingerprints.load(list(sources))
