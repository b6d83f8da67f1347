"""Files that appear whole or not at all."""

from __future__ import annotations

import os
import re
import shutil
import uuid
from pathlib import Path
from typing import IO, Callable


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Write a file under a hidden temporary name in its directory, then rename it.

    A rename within one directory is atomic, so ``path`` either keeps its old content or
    gets the whole new one; the temporary file is removed if writing fails.

    Parameters
    ----------
    path : path
        The file to write; its folder is created when missing.
    write : callable
        Called with a binary file handle open for writing.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    path = Path(path)
    temporary = path.with_name(f"{_stem(path)}.tmp")
    try:
        with open(temporary, "xb") as handle:
            write(handle)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def atomic_folder(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Write a folder of files as one unit: into a hidden temporary folder beside it, then swapped in.

    A reader sees the whole earlier folder, the whole new one, or (only if the process is
    killed between the two renames of the swap) none; never files of both. Hidden
    temporary folders of processes no longer running are removed first
    (:func:`remove_stale`).

    Parameters
    ----------
    path : path
        The folder to write; its parent is created when missing.
    write : callable
        Called with the temporary folder to fill.

    Returns
    -------
    pathlib.Path
        The folder written, ``path``.
    """
    path = Path(path)
    stem = _stem(path)
    remove_stale(path.parent)
    fresh, old = path.with_name(f"{stem}.tmp"), path.with_name(f"{stem}.old.tmp")
    try:
        fresh.mkdir()
        write(fresh)
        if path.exists():
            os.replace(path, old)
        os.replace(fresh, path)
    finally:
        shutil.rmtree(fresh, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return path


def remove_stale(folder: str | os.PathLike) -> list[str]:
    """Remove the hidden temporary files and folders that killed writers left in ``folder``.

    Only entries named as :func:`atomic_write` and :func:`atomic_folder` name them, and
    only those of processes that are no longer running on this machine.

    Returns
    -------
    list of str
        The names removed.
    """
    removed = []
    for entry in Path(folder).glob(".*.tmp"):
        match = _TEMPORARY.fullmatch(entry.name)
        if match is None or process_running(int(match.group("pid"))):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry.name)
    return removed


# ".{name}.{pid}.{8 hex}.tmp" (atomic_write, atomic_folder) or ".{name}.{pid}.{8 hex}.old.tmp" (a swap's earlier folder).
_TEMPORARY = re.compile(r"\..+\.(?P<pid>\d+)\.[0-9a-f]{8}(?:\.old)?\.tmp")


def _stem(path: Path) -> str:
    """A hidden name beside ``path``, this process's and this call's alone; the folder for it made."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}"


def process_running(pid: int) -> bool:
    """Whether process ``pid`` may still be running; unsure answers yes, so nothing live is removed."""
    # Off POSIX os.kill would end the process, not ask about it: leave every file there.
    if pid == os.getpid() or os.name != "posix":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # someone else's process, or one we cannot ask about: leave its files
    return True
