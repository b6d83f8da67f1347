"""Where the dashboard keeps things, as the environment sets it.

Every environment variable the dashboard reads is read here, when asked and not at
import, so a test or a second server can point the same code elsewhere:

- ``QUACK_CACHE_DIR``: computed data sets, samples, uploads, exports (``.quack-cache/``).
- ``QUACK_CHECKPOINT``: the checkpoint a new session starts with (the shipped one).
- ``QUACK_CHECKPOINT_DIR``: where trained checkpoints are saved and found (``checkpoints/``).
- ``QUACK_SAMPLE_SIZE``: measurements in the built-in sample (5000).

Nothing here creates a folder; whoever writes into one creates it.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

DEFAULT_SAMPLE_SIZE = 5000
#: The built-in sample is always drawn with this seed, so its ground truth is stable.
SAMPLE_SEED = 0


def cache_root() -> Path:
    """The dashboard's cache folder: ``QUACK_CACHE_DIR`` or ``.quack-cache/`` in the repository."""
    return Path(os.environ.get("QUACK_CACHE_DIR") or REPO / ".quack-cache").expanduser()


def checkpoint_root() -> Path:
    """Where checkpoints trained in the dashboard go: ``QUACK_CHECKPOINT_DIR`` or ``checkpoints/``."""
    return Path(os.environ.get("QUACK_CHECKPOINT_DIR") or REPO / "checkpoints").expanduser()


def shipped_checkpoint() -> Path:
    """The checkpoint that ships with the repository."""
    from quack.encoding import SHIPPED_CHECKPOINT

    return Path(SHIPPED_CHECKPOINT)


def default_checkpoint() -> Path:
    """The checkpoint a session starts with: ``QUACK_CHECKPOINT``, else the shipped one."""
    chosen = os.environ.get("QUACK_CHECKPOINT")
    return Path(chosen).expanduser() if chosen else shipped_checkpoint()


def sample_size() -> int:
    """Measurements in the built-in sample: ``QUACK_SAMPLE_SIZE``, 5000 by default.

    Raises
    ------
    ValueError
        When the variable is not a positive whole number.
    """
    text = os.environ.get("QUACK_SAMPLE_SIZE", "").strip()
    if not text:
        return DEFAULT_SAMPLE_SIZE
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"QUACK_SAMPLE_SIZE must be a positive whole number, got {text!r}; fix it and restart.")
    return int(text)


def sample_folder(size: int, seed: int = SAMPLE_SEED) -> Path:
    """The folder of the built-in sample of this size and seed (one folder per pair)."""
    return cache_root() / f"sample-{size}-{seed}"


def numba_cache_dir() -> Path:
    """Where numba keeps UMAP's compiled code: beside the dashboard's other caches."""
    return cache_root() / "numba"
