"""Stream raw Censored Planet Quack files into flat measurement rows.

Reads Hyperquack v1 and v2 records (echo, discard, HTTP, HTTPS) from ``.tar``,
``.tar.gz``/``.tgz``, ``.json``/``.jsonl`` and their ``.gz`` forms, one file or a folder
of them, and yields one :data:`quack.data.records.Row` per non-control probe. Everything
streams: a chunk of lines (:data:`CHUNK_BYTES`) is in memory at a time, so memory stays
flat however large the input.

The input is read in :class:`Chunk` objects, whole lines of one or more files in input
order (:func:`iter_chunks`), which :func:`chunk_rows` turns into rows in this process or
in another: ``quack ingest --workers`` parses chunks in parallel and keeps their order, so
the rows, their order and the counts are those of one process reading alone
(:func:`iter_rows`).

Bad records never stop a run. Each problem is counted by reason in
:class:`quack.data.records.IngestStats` and, when asked, listed with its file and line. A
file that cannot be opened at all, or that ends early or is corrupt, raises a
:class:`quack.errors.QuackInputError` naming it; a damaged file's earlier rows are kept
instead when the caller asks (``keep_partial``). Compressed input is read through
:func:`quack.data.decompression.bounded_decompression`, so a small file that expands
without end stops with an error naming it instead of running for hours.

Turning one record into rows (Hyperquack v1 and v2) lives in :mod:`quack.data.records`.

The format is described in ``docs/quack-format.md`` of the shared project notes; the
comments below refer to its sections.
"""

from __future__ import annotations

import bz2
import functools
import gzip
import lzma
import os
import re
import tarfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Callable, Iterable, Iterator

from quack.data import decompression as limits
from quack.data.records import IngestStats, Row, rows_of_line
from quack.errors import QuackInputError
from quack.schema import columns

#: Longest line read; a longer one is skipped without being held in memory.
MAX_LINE_BYTES = 32 * 1024 * 1024

#: Bytes of lines in a :class:`Chunk`: a few seconds of parsing, so chunks spread evenly over
#: worker processes while the lines in flight stay a small multiple of this per worker.
CHUNK_BYTES = 2 * 2**20

#: The keys of every row: the columns :data:`quack.schema.ROW_SCHEMA` marks "ingest".
ROW_KEYS = columns("ingest")

_SERVICES = ("echo", "discard", "http", "https")
# Section 1: test "https" before "http" when reading the scan type from a name.
_SERVICE_IN_NAME = re.compile(r"(?<![a-z])(https|http|echo|discard)(?![a-z])")
# A scan as Censored Planet names it: the scan type and its start, to the second.
_SCAN_IN_NAME = re.compile(r"CP_Quack-[A-Za-z]+-\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}")
_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".json", ".jsonl", ".json.gz", ".jsonl.gz")
_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz")
# Files that live beside measurements in a folder but hold none: signature lists and the
# ground truth of a generated sample.
_NOT_MEASUREMENTS = re.compile(r"signature|\.truth\.")

# What a damaged or truncated stream raises, whichever compression it uses.
_STREAM_ERRORS = (OSError, EOFError, zlib.error, lzma.LZMAError, tarfile.TarError)
# Compressions tarfile's own "r|*" would detect, found by their magic bytes so that each
# can be read through the decompression bound.
_COMPRESSIONS = (
    (b"\x1f\x8b", lambda handle: gzip.GzipFile(fileobj=handle)),
    (b"BZh", bz2.BZ2File),
    (b"\xfd7zXZ\x00", lzma.LZMAFile),
)

# Called as damaged(file_source, source, line, detail) when a file ends early or is corrupt.
_Damaged = Callable[[str, str, int, str], None]


@dataclass
class _Segment:
    """Lines of one file or archive member, and what the reader counted just before them."""

    before: IngestStats
    source: str
    service_hint: str
    scan: str = ""
    lines: list[tuple[int, bytes]] = field(default_factory=list)


@dataclass
class Chunk:
    """Whole lines of the input in order, with what reading them counted; picklable.

    Attributes
    ----------
    index : int
        Position among the chunks of one run, from 0.
    segments : list
        Lines of one file or member each, with the files opened, lines too long and
        damage the reader counted before them; at most about :data:`CHUNK_BYTES` of lines.
    """

    index: int
    segments: list[_Segment] = field(default_factory=list)


def iter_rows(
    paths: str | os.PathLike | Iterable[str | os.PathLike],
    stats: IngestStats | None = None,
    geoip_db: str | None = None,
    anomalies_only: bool = False,
    keep_partial: bool = False,
    max_expansion: float | None = None,
) -> Iterator[Row]:
    """Yield one row per non-control probe of every measurement under ``paths``.

    Parameters
    ----------
    paths : path or iterable of paths
        Files or folders. Folders are walked in sorted order; files with other suffixes
        (``servers.txt``, ...), signature lists and sample truth files in them are ignored.
    stats : IngestStats, optional
        Filled in while iterating.
    geoip_db : str, optional
        MaxMind country or city database, used to fill ``country`` for v1 records
        (needs the ``geoip2`` package).
    anomalies_only : bool
        Keep only probes that failed to match in anomalous records, as the published
        model was trained.
    keep_partial : bool
        Keep the rows read from a file before it ended early or turned out corrupt,
        counting it as a ``"truncated file"``; by default such a file raises.
    max_expansion : float, optional
        Decompressed bytes allowed per compressed byte of a ``.gz`` file, a compressed
        archive or a compressed archive member; None reads ``QUACK_MAX_EXPANSION``, else
        :data:`quack.data.decompression.DEFAULT_MAX_EXPANSION`.

    Yields
    ------
    dict
        A row with every key of :data:`ROW_KEYS`; missing values are ``None`` or ``""``.

    Raises
    ------
    QuackInputError
        When a path does not exist, has an unsupported suffix, cannot be opened, or
        (unless ``keep_partial``) ends early or is corrupt.
    quack.data.decompression.ExpansionError
        When a compressed input expands past its allowance.
    ValueError
        When ``max_expansion`` or ``QUACK_MAX_EXPANSION`` is not a number of at least 1.
    """
    stats = stats if stats is not None else IngestStats()
    if geoip_db:
        geoip_lookup(geoip_db)
    chunks = iter_chunks(paths, keep_partial=keep_partial, max_expansion=max_expansion,
                         keep_problems=stats.keep_problems)
    for chunk in chunks:
        yield from chunk_rows(chunk, stats, geoip_db=geoip_db, anomalies_only=anomalies_only)


def iter_chunks(
    paths: str | os.PathLike | Iterable[str | os.PathLike],
    keep_partial: bool = False,
    max_expansion: float | None = None,
    keep_problems: bool = False,
) -> Iterator[Chunk]:
    """The input's lines in :class:`Chunk` objects, in input order, for :func:`chunk_rows`.

    Reading (opening, decompressing within bounds, cutting lines) happens here, in one
    process; parsing and everything after it happens in :func:`chunk_rows`, anywhere.

    Parameters
    ----------
    paths, keep_partial, max_expansion
        As for :func:`iter_rows`.
    keep_problems : bool
        List the reader's problems (lines too long, damaged files) with their place.

    Yields
    ------
    Chunk

    Raises
    ------
    QuackInputError, quack.data.decompression.ExpansionError, ValueError
        As :func:`iter_rows`, when the reading reaches the file at fault.
    """
    ratio = limits.max_expansion(max_expansion)
    # What the reader counts goes, in order, before the lines that follow it.
    counted = IngestStats(keep_problems=keep_problems)
    chunk, size = Chunk(0), 0
    for path, source in _expand(paths):
        damaged = _damage_handler(path, counted, keep_partial)
        for member_source, stream in _open_streams(path, source, ratio, damaged):
            counted.files += 1
            # v1 records do not name their service: the archive or folder name does.
            service_hint = _service_from_name(member_source) or _service_from_name(path.parent.as_posix())
            scan = scan_name(member_source, source)
            segment = None
            for line_no, raw in _read_lines(stream, member_source, source, counted, damaged):
                if segment is None or not counted.is_empty():
                    segment = _Segment(counted.take(), member_source, service_hint, scan)
                    chunk.segments.append(segment)
                segment.lines.append((line_no, raw))
                size += len(raw)
                if size >= CHUNK_BYTES:
                    yield chunk
                    chunk, size, segment = Chunk(chunk.index + 1), 0, None
    if not counted.is_empty():
        chunk.segments.append(_Segment(counted.take(), "", ""))
    if chunk.segments:
        yield chunk


def chunk_rows(
    chunk: Chunk, stats: IngestStats, geoip_db: str | None = None, anomalies_only: bool = False
) -> Iterator[Row]:
    """Yield the rows of a chunk's lines, adding its counts to ``stats`` in input order.

    Parameters
    ----------
    chunk : Chunk
        From :func:`iter_chunks`.
    stats : IngestStats
        Filled in while iterating; merging the stats of every chunk in order gives the
        counts and problems of :func:`iter_rows`.
    geoip_db, anomalies_only
        As for :func:`iter_rows`.

    Yields
    ------
    dict
        Rows as :func:`iter_rows` yields them.
    """
    country_of = geoip_lookup(geoip_db) if geoip_db else None
    for segment in chunk.segments:
        stats.merge(segment.before)
        for line_no, raw in segment.lines:
            stats.lines += 1
            for row in rows_of_line(raw, segment.source, line_no, segment.service_hint, stats, anomalies_only):
                if country_of is not None and not row["country"]:
                    row["country"] = country_of(row["vp"])
                row["scan"] = segment.scan
                stats.rows += 1
                yield row


# --- files -------------------------------------------------------------------------------

def _damage_handler(path: Path, stats: IngestStats, keep_partial: bool) -> _Damaged:
    """What to do when ``path`` ends early or is corrupt: count it, or refuse it."""

    def damaged(file_source: str, source: str, line: int, detail: str) -> None:
        if not keep_partial:
            raise QuackInputError(
                f"{path} ends early or is corrupt ({detail}); replace it with a complete copy, or keep the rows "
                "read before the damage with `quack ingest --keep-partial`."
            )
        stats.damage(file_source, source, line, detail)

    return damaged


def _expand(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> Iterator[tuple[Path, str]]:
    """(path, source name) for every input file; the source is relative to a given folder."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    for given in paths:
        p = Path(given).expanduser()
        if p.is_dir():
            for root, dirs, files in os.walk(p):
                dirs.sort()
                for name in sorted(files):
                    if name.lower().endswith(_SUFFIXES) and not _NOT_MEASUREMENTS.search(name.lower()):
                        f = Path(root) / name
                        yield f, f.relative_to(p).as_posix()
        elif p.is_file():
            if not p.name.lower().endswith(_SUFFIXES):
                raise QuackInputError(
                    f"{p} is not a Quack file; give .tar, .tar.gz, .tgz, .json, .jsonl or their .gz forms."
                )
            yield p, p.name
        else:
            raise QuackInputError(f"{p} does not exist; check the path.")


def _open(path: Path) -> IO[bytes]:
    try:
        return open(path, "rb")
    except OSError as exc:
        raise QuackInputError(f"Cannot open {path} ({exc.strerror}); check that it is readable.") from exc


def _open_streams(path: Path, source: str, ratio: float, damaged: _Damaged) -> Iterator[tuple[str, IO[bytes]]]:
    """Binary streams of the measurement files in ``path``: itself, or the archive's members."""
    name = path.name.lower()
    if name.endswith(_TAR_SUFFIXES):
        yield from _tar_members(path, source, ratio, damaged)
        return
    with _open(path) as handle:
        if name.endswith(".gz"):
            stream = limits.bounded_decompression(gzip.GzipFile(fileobj=handle), path.stat().st_size, str(path), ratio)
            try:
                stream.peek(1)
            except (OSError, EOFError, zlib.error) as exc:
                raise QuackInputError(f"Cannot open {path}: it is not a readable gzip file ({exc}).") from exc
            yield source, stream
        else:
            yield source, handle


def _tar_members(path: Path, source: str, ratio: float, damaged: _Damaged) -> Iterator[tuple[str, IO[bytes]]]:
    """Members whose name contains ``results.json`` (section 1), read as a stream."""
    with _open(path) as handle:
        stream: IO[bytes] = handle
        magic = handle.peek(6)[:6]
        for prefix, decompressor in _COMPRESSIONS:
            if magic.startswith(prefix):
                stream = limits.bounded_decompression(decompressor(handle), path.stat().st_size, str(path), ratio)
                break
        try:
            archive = tarfile.open(fileobj=stream, mode="r|")
        except _STREAM_ERRORS as exc:
            raise QuackInputError(f"Cannot open {path} as a tar archive ({exc}); check the file.") from exc
        with archive:
            try:
                for member in archive:
                    if not member.isfile() or "results.json" not in member.name:
                        continue
                    member_stream = archive.extractfile(member)
                    if member_stream is None:
                        continue
                    member_source = f"{source}:{member.name}"
                    if member.name.endswith(".gz"):
                        member_stream = limits.bounded_decompression(
                            gzip.GzipFile(fileobj=member_stream), member.size, f"{path}:{member.name}", ratio
                        )
                    yield member_source, member_stream
            except _STREAM_ERRORS as exc:
                damaged(source, source, 0, str(exc))


def _read_lines(
    stream: IO[bytes], source: str, file_source: str, stats: IngestStats, damaged: _Damaged
) -> Iterator[tuple[int, bytes]]:
    """Non-blank lines with their 1-based numbers; a damaged stream ends the file."""
    line_no = 0
    try:
        while True:
            raw = stream.readline(MAX_LINE_BYTES)
            if not raw:
                return
            line_no += 1
            if len(raw) == MAX_LINE_BYTES and not raw.endswith(b"\n"):
                while True:
                    rest = stream.readline(MAX_LINE_BYTES)
                    if not rest or rest.endswith(b"\n"):
                        break
                stats.skip(source, line_no, "line too long", f"over {MAX_LINE_BYTES} bytes")
                continue
            if raw.strip():
                yield line_no, raw
    except _STREAM_ERRORS as exc:
        damaged(file_source, source, line_no + 1, str(exc))


def scan_name(member_source: str, file_source: str) -> str:
    """The scan a file or archive member belongs to, as its rows' ``scan`` column names it.

    Censored Planet names each scan in its archive and file names
    (``CP_Quack-https-2021-05-30-01-01-01.tar.gz``); the first such name in the member's
    path wins. Input named otherwise is its own scan, named by the file (the archive for
    a member) as given, without its suffix.

    Parameters
    ----------
    member_source : str
        The source of the rows: a file relative to the folder given, or ``archive:member``.
    file_source : str
        The file that holds them: the archive for a member, else ``member_source``.

    Returns
    -------
    str
    """
    found = _SCAN_IN_NAME.search(member_source)
    if found:
        return found.group(0)
    lowered = file_source.lower()
    for suffix in sorted(_SUFFIXES, key=len, reverse=True):
        if lowered.endswith(suffix):
            return file_source[: -len(suffix)]
    return file_source


def _service_from_name(source: str) -> str:
    """The scan type named in a file or archive name, or ``""``."""
    found = _SERVICE_IN_NAME.findall(source.lower())
    return found[-1] if found else ""


def geoip_lookup(db_path: str) -> Callable[[str | None], str]:
    """A function from IP to country code backed by a MaxMind database, opened once per version of the file.

    Raises
    ------
    QuackInputError
        When the ``geoip2`` package is missing or the file is not a MaxMind database.
    """
    try:
        version = os.stat(db_path).st_mtime_ns
    except OSError:
        version = None
    return _open_geoip(db_path, version)


@functools.lru_cache(maxsize=2)
def _open_geoip(db_path: str, version: int | None) -> Callable[[str | None], str]:
    try:
        import geoip2.database
        import geoip2.errors
    except ImportError as exc:
        raise QuackInputError("--geoip needs the geoip2 package; install it with `pip install geoip2`.") from exc
    try:
        reader = geoip2.database.Reader(db_path)
    except (OSError, ValueError) as exc:
        raise QuackInputError(f"Cannot open the GeoIP database {db_path} ({exc}); give a MaxMind .mmdb file.") from exc
    lookup = reader.city if "city" in reader.metadata().database_type.lower() else reader.country

    def country_of(ip: str | None) -> str:
        try:
            return lookup(ip).country.iso_code or ""
        except (ValueError, TypeError, geoip2.errors.AddressNotFoundError):
            return ""

    return country_of
