"""Where the dashboard keeps things, and what it lets a browser do, as the environment sets it.

Every environment variable the dashboard reads is read here, when asked and not at
import, so a test or a second server can point the same code elsewhere:

- ``QUACK_DATA`` (or ``--data PATH`` after ``--`` on the command line): what a new
  session opens (:func:`start_data`): raw files, a data set or an encoded folder.
- ``QUACK_CACHE_DIR``: computed data sets, samples, uploads, exports (``.quack-cache/``).
- ``QUACK_CHECKPOINT``: the checkpoint a new session starts with (the shipped one).
- ``QUACK_CHECKPOINT_DIR``: where trained checkpoints are saved and found (``checkpoints/``).
- ``QUACK_SAMPLE_SIZE``: measurements in the built-in sample (5000).
- ``QUACK_DATA_ROOTS``: the folders whose files a path typed in a browser may name
  (:func:`data_roots`).
- ``QUACK_UPLOAD_LIMIT_MB``: megabytes all uploads together may take (4096).
- ``QUACK_UPLOAD_MAX_ROWS``: measurements an uploaded data source may hold (2,000,000).
- ``QUACK_MAX_POINTS``: points drawn on a map at most (20,000); a density layer shows all.
- ``QUACK_JOB_MEMORY_MB``: megabytes of computed results (latents, maps) kept for all
  sessions (2048); the least recently used go first.

Nothing here creates a folder; whoever writes into one creates it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from quack.roots import Roots

REPO = Path(__file__).resolve().parents[1]

DEFAULT_SAMPLE_SIZE = 5000
#: The built-in sample is always drawn with this seed, so its ground truth is stable.
SAMPLE_SEED = 0
#: Megabytes of uploads kept at most, all sessions together.
DEFAULT_UPLOAD_LIMIT_MB = 4096
#: Measurements an uploaded data source may hold; larger data belongs in a shared folder.
DEFAULT_UPLOAD_MAX_ROWS = 2_000_000
#: Points a map draws at most; more make the browser sluggish.
DEFAULT_MAX_POINTS = 20_000
#: Megabytes of computed results kept, all sessions together.
DEFAULT_JOB_MEMORY_MB = 2048
#: Seconds one relabelling of a data set may take in all; larger relabelling belongs on the command line.
RELABEL_SECONDS = 120


def _positive_whole_number(variable: str, default: int) -> int:
    """The value of an environment variable that must be a positive whole number.

    Raises
    ------
    ValueError
        When the variable is set to anything else.
    """
    text = os.environ.get(variable, "").strip()
    if not text:
        return default
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"{variable} must be a positive whole number, got {text!r}; fix it and restart.")
    return int(text)


def cache_root() -> Path:
    """The dashboard's cache folder: ``QUACK_CACHE_DIR`` or ``.quack-cache/`` in the repository."""
    return Path(os.environ.get("QUACK_CACHE_DIR") or REPO / ".quack-cache").expanduser()


def checkpoint_root() -> Path:
    """Where checkpoints trained in the dashboard go: ``QUACK_CHECKPOINT_DIR`` or ``checkpoints/``."""
    return Path(os.environ.get("QUACK_CHECKPOINT_DIR") or REPO / "checkpoints").expanduser()


def shipped_checkpoint() -> Path:
    """The checkpoint that ships with the repository."""
    from quack.model.encoding import SHIPPED_CHECKPOINT

    return Path(SHIPPED_CHECKPOINT)


def default_checkpoint() -> Path:
    """The checkpoint a session starts with: ``QUACK_CHECKPOINT``, else the shipped one."""
    chosen = os.environ.get("QUACK_CHECKPOINT")
    return Path(chosen).expanduser() if chosen else shipped_checkpoint()


def start_data() -> Path | None:
    """What a new session opens, as the operator named it at start; None for the built-in sample.

    ``streamlit run dashboard/app.py -- --data PATH`` (Streamlit hands the script what
    follows ``--``), else ``QUACK_DATA``. Raw Censored Planet files, a data set written by
    ``quack ingest`` or a folder written by ``quack encode``, recognised by its contents.
    """
    args = sys.argv[1:]
    for i, arg in enumerate(args):
        if arg == "--data" and i + 1 < len(args):
            return Path(args[i + 1]).expanduser().absolute()
        if arg.startswith("--data="):
            return Path(arg.split("=", 1)[1]).expanduser().absolute()
    value = os.environ.get("QUACK_DATA", "").strip()
    return Path(value).expanduser().absolute() if value else None


def own_folders() -> list[Path]:
    """The folders shared when ``QUACK_DATA_ROOTS`` is unset: the cache folder, the checkpoint
    folder and the repository's own ``checkpoints/`` (the shipped model), all absolute."""
    return [folder.absolute() for folder in (cache_root(), checkpoint_root(), shipped_checkpoint().parent)]


def data_roots() -> Roots:
    """The folders a path typed in a browser may name: ``QUACK_DATA_ROOTS``, else :func:`own_folders`.

    The data the operator opened at start (:func:`start_data`) is shared too: the
    operator chose it, so a browser may open it again and messages may name it.

    Raises
    ------
    ValueError
        When ``QUACK_DATA_ROOTS`` names a folder that is not absolute.
    """
    roots = Roots.from_environment(own_folders())
    start = start_data()
    return roots if start is None else Roots([*roots.folders, start])


def upload_limit_bytes() -> int:
    """Bytes all uploads together may take: ``QUACK_UPLOAD_LIMIT_MB`` megabytes, 4096 by default.

    Raises
    ------
    ValueError
        When the variable is not a positive whole number.
    """
    return _positive_whole_number("QUACK_UPLOAD_LIMIT_MB", DEFAULT_UPLOAD_LIMIT_MB) * 1_000_000


def upload_max_rows() -> int:
    """Measurements an uploaded data source may hold: ``QUACK_UPLOAD_MAX_ROWS``, 2,000,000 by default.

    Raises
    ------
    ValueError
        When the variable is not a positive whole number.
    """
    return _positive_whole_number("QUACK_UPLOAD_MAX_ROWS", DEFAULT_UPLOAD_MAX_ROWS)


def max_points() -> int:
    """Points a map draws at most: ``QUACK_MAX_POINTS``, 20,000 by default.

    Raises
    ------
    ValueError
        When the variable is not a positive whole number.
    """
    return _positive_whole_number("QUACK_MAX_POINTS", DEFAULT_MAX_POINTS)


def job_memory_bytes() -> int:
    """Bytes of computed results kept for all sessions: ``QUACK_JOB_MEMORY_MB`` megabytes, 2048 by default.

    Raises
    ------
    ValueError
        When the variable is not a positive whole number.
    """
    return _positive_whole_number("QUACK_JOB_MEMORY_MB", DEFAULT_JOB_MEMORY_MB) * 1024 * 1024


def sample_size() -> int:
    """Measurements in the built-in sample: ``QUACK_SAMPLE_SIZE``, 5000 by default.

    Raises
    ------
    ValueError
        When the variable is not a positive whole number.
    """
    return _positive_whole_number("QUACK_SAMPLE_SIZE", DEFAULT_SAMPLE_SIZE)


def sample_folder(size: int, seed: int = SAMPLE_SEED) -> Path:
    """The folder of the built-in sample of this size and seed (one folder per pair)."""
    return cache_root() / f"sample-{size}-{seed}"


def upload_folder() -> Path:
    """Where uploaded files are kept, named by their content."""
    return cache_root() / "uploads"


def export_folder() -> Path:
    """The one folder the Export page writes into; a browser names only a folder inside it."""
    return cache_root() / "exports"


def fingerprint_folder() -> Path:
    """The one folder of user fingerprint files; a browser names only a file inside it."""
    return cache_root() / "fingerprints"


def numba_cache_dir() -> Path:
    """Where numba keeps UMAP's compiled code: beside the dashboard's other caches."""
    return cache_root() / "numba"
