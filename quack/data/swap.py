"""Build a data set in a hidden folder beside its output, then swap it in whole.

A build works in a hidden ``.NAME.building-PID-XXXXXXXX`` folder beside the output, PID
being its process (:func:`building`). On Linux the finished folder and an old data set are
swapped in one step (:func:`swap_in`), so the output always holds a whole data set, old or
new; elsewhere the old one is renamed aside to ``.NAME.old-PID-XXXXXXXX`` first. A build
killed before it could tidy up leaves these folders behind; the next build of the same
output (:func:`output_folder`), seeing their process gone, renames an old data set back
where the output is missing and removes the rest.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import os
import re
import shutil
import sys
import uuid
from pathlib import Path
from typing import Callable, Iterator

from quack.atomic import process_running
from quack.data.datafolder import replace_blocker
from quack.errors import QuackInputError

__all__ = ["output_folder", "building", "swap_in", "exchange", "renameat2"]

# The hidden folders a build keeps beside its output, after ".NAME.".
_STAGE = re.compile(r"(building|old)-(\d+)-[0-9a-f]{8}")
# renameat2(2): the flag that swaps two paths, and the "relative to the working directory" fd.
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def output_folder(out_dir: str | os.PathLike) -> Path:
    """The folder a data set goes to, checked, after tidying up what killed builds of it left.

    A link to a folder is followed.

    Raises
    ------
    QuackInputError
        When the output is a file, holds anything besides a data set's own files, or
        cannot be written.
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
    return out


@contextlib.contextmanager
def building(out: Path) -> Iterator[Path]:
    """A new hidden work folder beside ``out``, created with the user's umask, removed if the build fails.

    Raises
    ------
    QuackInputError
        For an error of the disk, in creating the folder or in the build: the reading
        errors of an input are QuackInputErrors already and pass as they are.
    """
    work = _stage_name(out, "building")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        # os.mkdir applies the umask; tempfile.mkdtemp would make the folder private to the user.
        os.mkdir(work)
    except OSError as error:
        raise _write_error(out, error) from error
    try:
        yield work
    except BaseException as error:
        shutil.rmtree(work, ignore_errors=True)
        # A worker that died (for memory, say) has its own sentence, not a disk's.
        if isinstance(error, OSError) and not isinstance(error, ChildProcessError):
            raise _write_error(out, error) from error
        raise


def swap_in(work: Path, out: Path) -> None:
    """Put the finished folder ``work`` at ``out`` so that ``out`` holds a whole data set at every moment."""
    # The build may have taken hours: refuse again if the folder gained files meanwhile.
    _check_output(out)
    if not os.path.lexists(out):
        os.rename(work, out)
        return
    if exchange(work, out):
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


def exchange(first: Path, second: Path) -> bool:
    """Swap two existing paths in one step; False where the system or file system cannot."""
    rename = renameat2()
    if rename is None:
        return False
    if rename(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(second))


@functools.lru_cache(maxsize=1)
def renameat2() -> Callable[..., int] | None:
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


def _recover(out: Path) -> None:
    """Undo what builds of ``out`` killed half-way left: restore an old data set, remove the rest."""
    prefix = f".{out.name}."
    try:
        names = sorted(entry.name for entry in out.parent.iterdir() if entry.name.startswith(prefix))
    except FileNotFoundError:
        return
    for name in names:
        stage = _STAGE.fullmatch(name[len(prefix):])
        if stage is None or process_running(int(stage.group(2))):
            continue
        path = out.parent / name
        if stage.group(1) == "old" and not os.path.lexists(out):
            # Killed between the two renames of a swap: the old data set goes back.
            os.rename(path, out)
        else:
            shutil.rmtree(path, ignore_errors=True)
