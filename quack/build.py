"""Build a data set folder from raw Quack files: ingest, label, tokenize.

:func:`build_dataset` streams the input twice over a staging file (once to ingest and
label, once to tokenize) so memory stays flat, and renames the finished folder into place
so a failed build leaves nothing half-written. The folder's layout is described in
:mod:`quack.datafolder`; its columns come from :data:`quack.schema.ROW_SCHEMA`.

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
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from quack.datafolder import INFO_FILE, ROWS_FILE, TOKENIZER_FILE, replace_blocker
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
) -> dict:
    """Ingest, label and tokenize raw Quack files into a data set folder.

    Parameters
    ----------
    paths : path or iterable of paths
        Raw files or folders, as for :func:`quack.ingest.iter_rows`.
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
        :func:`quack.ingest.iter_rows`.

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
    quack.limits.ExpansionError
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
    fingerprints = Fingerprints.load(signatures)
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
        staging = work / "staging.parquet"
        rows = iter_rows(paths, stats, geoip_db=geoip_db, anomalies_only=anomalies_only,
                         keep_partial=keep_partial, max_expansion=max_expansion)
        n_rows = _ingest(rows, staging, fingerprints, report)
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
    except OSError as error:
        # Reading errors become QuackInputErrors in quack.ingest; what is left is the disk.
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


def _ingest(rows: Iterable[dict], staging: Path, fingerprints: Fingerprints, report) -> int:
    """Pass 1: rows with labels, display text cut, into a staging Parquet file."""
    n_rows = 0
    with pq.ParquetWriter(staging, _STAGED_SCHEMA) as writer:
        batch: list[dict] = []
        for row in rows:
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
