"""Where data and checkpoints come from: the built-in sample, files on the server, uploads.

A data source is a small dict a session keeps: ``kind`` ("sample", "path" or
"upload"), ``paths`` (the files read), ``name`` (what the sidebar shows), for files
``keep_partial`` (whether a truncated file's earlier rows are kept), and for a path what
it ``holds``, recognised from its contents (:func:`holds`): raw Censored Planet files
("raw", ingested in the dashboard), a data set written by ``quack ingest`` ("dataset",
one folder or a folder of parts) or a folder written by ``quack encode`` ("encoded",
whose latents and data set are used as they are). ``trusted`` marks the path the
operator opened at start (:func:`dashboard.settings.start_data`).

A browser names server files only inside the shared folders, and its uploads are kept
within one limit for all sessions; a checkpoint upload is kept only once it loads.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

from dashboard import settings, uploads
from quack.atomic import atomic_write
from quack.data.datafolder import INFO_FILE, ROWS_FILE
from quack.model.provenance import find_data_set, recorded_checkpoint
from quack.model.reader import is_encoded


def sample_files() -> Path:
    """The built-in sample's records file, generated once per size into the cache folder.

    ``QUACK_SAMPLE_SIZE`` sets the number of measurements; each size has its own folder,
    so changing it makes a new sample instead of reusing the old one.
    """
    from quack.sample.generator import write_sample

    size = settings.sample_size()
    folder = settings.sample_folder(size)
    records = folder / "sample.json"
    if records.is_file():
        return records
    root = settings.cache_root()
    root.mkdir(parents=True, exist_ok=True)
    # Written in a private folder renamed at the end, so an interrupted start leaves no
    # half-written sample; the file keeps the name its ground truth refers to.
    work = Path(tempfile.mkdtemp(prefix=".sample-", dir=root))
    try:
        write_sample(work / "sample.json", n=size, seed=settings.SAMPLE_SEED)
        try:
            os.replace(work, folder)
        except OSError:
            if not records.is_file():  # another session did not finish it either
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return records


def sample_truth_file() -> Path:
    """The ground truth the generator wrote beside the built-in sample (it may not exist yet)."""
    return settings.sample_folder(settings.sample_size()) / "sample.truth.jsonl"


def files_of(source: dict) -> list[str]:
    """The files a source reads, generating the sample when it is the one."""
    return [str(sample_files())] if source["kind"] == "sample" else [str(p) for p in source["paths"]]


def holds(path: Path) -> str:
    """What a path holds, from its contents: "encoded" (``metadata.json``), "dataset" (a data set or a
    folder of parts) or "raw" (files to ingest)."""
    if is_encoded(path):
        return "encoded"
    if path.is_dir() and ((path / ROWS_FILE).exists() or (path / INFO_FILE).exists() or any(
            (child / ROWS_FILE).is_file() for child in path.iterdir() if child.is_dir())):
        return "dataset"
    return "raw"


def open_path(path: Path, keep_partial: bool = False, trusted: bool = False) -> dict:
    """A data source for a path already allowed (typed and checked, or the operator's)."""
    source = {"kind": "path", "paths": [str(path)], "name": path.name or str(path), "keep_partial": keep_partial,
              "holds": holds(path)}
    if trusted:
        source["trusted"] = True
    return source


def start_source() -> dict | None:
    """The source a new session opens: what the operator named at start, trusted; None when nothing was."""
    path = settings.start_data()
    return None if path is None else open_path(path, trusted=True)


def encoded_parts(source: dict) -> tuple[Path, Path | None]:
    """The data set of an encoded source, and the checkpoint that encoded it when it is on this server.

    For a path typed in a browser, the data set must lie in a shared folder too, and the
    checkpoint is used only from a shared folder or the listed checkpoints.

    Raises
    ------
    ValueError
        When the encoded folder records no data set, it cannot be found, or it lies
        outside the shared folders.
    """
    root = Path(source["paths"][0])
    roots = settings.data_roots()
    data = find_data_set(root, source.get("data"), allowed=None if source.get("trusted") else roots.contains)
    if not source.get("trusted") and not roots.contains(data):
        raise ValueError(
            f"The encoded folder {root.name} was made from a data set outside the folders this server shares; "
            "put the data set folder beside the encoded folder and open it again."
        )
    if not source.get("trusted"):
        roots.check_links(data)
    listed = list_checkpoints()
    checkpoint = recorded_checkpoint(root, also=listed)
    shared = source.get("trusted") or checkpoint in listed or (checkpoint is not None and roots.contains(checkpoint))
    if not shared:
        checkpoint = None
    return data, checkpoint


def path_source(text: str, keep_partial: bool = False) -> dict:
    """A data source for a file or folder on the server, typed in a browser.

    Only a path inside a shared folder (:func:`dashboard.settings.data_roots`) is
    accepted, after ``..`` and links are resolved. Raw files, a data set and an encoded
    folder are all accepted; which one it is comes from its contents (:func:`holds`).

    Parameters
    ----------
    text : str
        The path as typed; a relative one is looked for in each shared folder.
    keep_partial : bool
        Keep the rows of a truncated file read before the damage.

    Raises
    ------
    ValueError
        One sentence, the same whether the path is outside the shared folders or missing.
    """
    return open_path(settings.data_roots().resolve_readable(text), keep_partial)


# Uploads from every session are checked against one limit; the check and the write
# happen under this lock, so two uploads at once cannot both pass it.
_UPLOADS = threading.Lock()


def _upload_name(name: str, data: uploads.Content, suffix: str = "") -> str:
    """A file name for an upload: its content's hash, then its own name made safe."""
    safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in Path(name).name) or "upload"
    if suffix and not safe.endswith(suffix):
        safe += suffix
    return f"{uploads.digest(data)[:10]}-{safe}"


def _megabytes(size: int) -> str:
    return f"{size / 1e6:,.1f} MB"


def _keep(target: Path, name: str, data: uploads.Content) -> bool:
    """Write ``data`` to ``target`` a chunk at a time unless it is there; False when it was.

    Raises
    ------
    ValueError
        When keeping it would take the uploads past :func:`dashboard.settings.upload_limit_bytes`.
    """
    with _UPLOADS:
        if target.is_file():
            return False
        limit = settings.upload_limit_bytes()
        folder = settings.upload_folder()
        used = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0
        size = uploads.size_of(data)
        if used + size > limit:
            raise ValueError(
                f"{name!r} ({_megabytes(size)}) was not kept: uploads already take {_megabytes(used)} of the "
                f"{_megabytes(limit)} this server keeps for them (QUACK_UPLOAD_LIMIT_MB), so ask its operator "
                "to make room or put the file in a shared folder."
            )
        target.parent.mkdir(parents=True, exist_ok=True)

        def write(handle) -> None:
            for chunk in uploads.chunks(data):
                handle.write(chunk)

        atomic_write(target, write)
        return True


def save_upload(name: str, data: uploads.Content) -> Path:
    """Keep an uploaded file in the upload folder, named by its content so a re-upload is reused.

    Raises
    ------
    ValueError
        When keeping it would take the uploads past their limit.
    """
    target = settings.upload_folder() / _upload_name(name, data)
    _keep(target, name, data)
    return target


@contextmanager
def upload_source(files: list[tuple[str, uploads.Content]], keep_partial: bool = False) -> Iterator[dict]:
    """A data source for uploaded files, given as (name, content) pairs, for the block's use.

    The files this call newly keeps are deleted again when the block raises, so uploads
    that make no data set do not stay behind.

    Parameters
    ----------
    files : list of (str, bytes or file object)
        The uploads, at most :data:`dashboard.uploads.MAX_FILES` of them.
    keep_partial : bool
        Keep the rows of a truncated file read before the damage.

    Raises
    ------
    ValueError
        When no file was given, or the uploads would pass one upload's bounds or their limit.
    """
    if not files:
        raise ValueError("No file was uploaded.")
    uploads.check_batch(files)
    paths, created = [], []
    try:
        for name, data in files:
            target = settings.upload_folder() / _upload_name(name, data)
            if _keep(target, name, data):
                created.append(target)
            paths.append(str(target))
        name = files[0][0] if len(files) == 1 else f"{len(files)} uploaded files"
        yield {"kind": "upload", "paths": paths, "name": name, "keep_partial": keep_partial}
    except BaseException:
        for path in created:
            path.unlink(missing_ok=True)
        raise


def checkpoint_upload_folder() -> Path:
    """Where uploaded checkpoints are kept once they have loaded; only these are offered."""
    return settings.upload_folder() / "checkpoints"


def save_checkpoint_upload(name: str, data: uploads.Content) -> Path:
    """Keep an uploaded checkpoint if it loads as a quack checkpoint; a refused one is deleted at once.

    It is written under a name no listing offers, loaded, and only then given its
    ``.ckpt`` name in :func:`checkpoint_upload_folder`.

    Returns
    -------
    pathlib.Path
        The kept checkpoint.

    Raises
    ------
    ValueError
        One sentence naming the upload when it is not a usable checkpoint or would take
        the uploads past their limit.
    """
    from quack.model.encoding import load_checkpoint

    target = checkpoint_upload_folder() / _upload_name(name, data, ".ckpt")
    if target.is_file():
        return target
    pending = settings.upload_folder() / f".pending-{uuid.uuid4().hex}"
    _keep(pending, name, data)
    try:
        load_checkpoint(pending)
    except ValueError as error:
        pending.unlink(missing_ok=True)
        # The library names the file it read; the person knows it by the name they uploaded.
        raise ValueError(str(error).replace(str(pending), repr(name))) from None
    except BaseException:
        pending.unlink(missing_ok=True)
        raise
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(pending, target)
    return target


def list_checkpoints(uploaded: Iterable[str | Path] = ()) -> list[Path]:
    """Checkpoints on disk: the shipped one first, then trained ones and the session's uploads, newest first.

    An upload is offered only to the session that uploaded it (``uploaded``); the operator
    shares one by moving it into the checkpoint folder.
    """
    found = {p.resolve() for p in settings.checkpoint_root().rglob("*.ckpt")}
    mine = {Path(p).resolve() for p in uploaded}
    found |= {p.resolve() for p in checkpoint_upload_folder().glob("*.ckpt") if p.resolve() in mine}
    shipped = settings.shipped_checkpoint().resolve()
    others = sorted(found - {shipped}, key=lambda p: p.stat().st_mtime, reverse=True)
    return ([shipped] if shipped.is_file() else []) + others


def describe_checkpoint(path: str | Path) -> str:
    """A short name for a checkpoint in a list, naming no server folder.

    Marked when shipped or uploaded; relative to the repository or the checkpoint folder
    when inside one; else its file name.
    """
    real = Path(path).resolve()
    if real == settings.shipped_checkpoint().resolve():
        return f"{real.name} (shipped)"
    if real.parent == checkpoint_upload_folder().resolve():
        return f"{real.name} (uploaded)"
    for folder in (settings.REPO, settings.checkpoint_root().resolve()):
        if real.is_relative_to(folder):
            return str(real.relative_to(folder))
    return real.name
