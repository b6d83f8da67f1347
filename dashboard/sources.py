"""Where data and checkpoints come from: the built-in sample, files on the server, uploads.

A data source is a small dict a session keeps: ``kind`` ("sample", "path" or
"upload"), ``paths`` (the files read) and ``name`` (what the sidebar shows).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from dashboard import settings
from quack.atomic import atomic_write


def sample_files() -> Path:
    """The built-in sample's records file, generated once per size into the cache folder.

    ``QUACK_SAMPLE_SIZE`` sets the number of measurements; each size has its own folder,
    so changing it makes a new sample instead of reusing the old one.
    """
    from quack.sample import write_sample

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


def path_source(path: str) -> dict:
    """A data source for a file or folder on the server.

    Raises
    ------
    ValueError
        When the path does not exist.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise ValueError(f"{p} does not exist on this server; give the path of a Quack results file or folder.")
    return {"kind": "path", "paths": [str(p.resolve())], "name": p.name or str(p)}


def save_upload(name: str, data: bytes) -> Path:
    """Keep an uploaded file in the cache folder, named by its content so a re-upload is reused."""
    safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in Path(name).name) or "upload"
    folder = settings.cache_root() / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{hashlib.sha1(data).hexdigest()[:10]}-{safe}"
    if not target.is_file():
        atomic_write(target, lambda handle: handle.write(data))
    return target


def upload_source(files: list[tuple[str, bytes]]) -> dict:
    """A data source for uploaded files, given as (name, content) pairs.

    Raises
    ------
    ValueError
        When no file was given.
    """
    if not files:
        raise ValueError("No file was uploaded.")
    paths = [str(save_upload(name, data)) for name, data in files]
    name = files[0][0] if len(files) == 1 else f"{len(files)} uploaded files"
    return {"kind": "upload", "paths": paths, "name": name}


def list_checkpoints() -> list[Path]:
    """Checkpoints on disk: the shipped one first, then trained and uploaded ones, newest first."""
    found = {p.resolve() for p in settings.checkpoint_root().rglob("*.ckpt")}
    found |= {p.resolve() for p in (settings.cache_root() / "uploads").glob("*.ckpt")}
    shipped = settings.shipped_checkpoint().resolve()
    others = sorted(found - {shipped}, key=lambda p: p.stat().st_mtime, reverse=True)
    return ([shipped] if shipped.is_file() else []) + others


def describe_checkpoint(path: str | Path) -> str:
    """A short name for a checkpoint in a list: marked when shipped, else relative to the repository."""
    path = Path(path)
    if path.resolve() == settings.shipped_checkpoint().resolve():
        return f"{path.name} (shipped)"
    try:
        return str(path.resolve().relative_to(settings.REPO))
    except ValueError:
        return str(path)
