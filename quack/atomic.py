"""Files that appear whole or not at all."""

from __future__ import annotations

import os
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
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(temporary, "xb") as handle:
            write(handle)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path
