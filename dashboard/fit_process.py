"""UMAP fits in a worker process that runs at a lower priority than the server's page runs.

UMAP's numba code holds the interpreter lock while it fits: fitted in the server's own
process, one session's new map stalls every other session's page run (BENCHMARKS.md,
"Where the interpreter went"). Here the fit runs in one worker process at niceness
:data:`NICENESS`, so it takes the interpreter from no page run and only the processor
time the page runs leave. Only the fitted sample crosses to the worker (at most the map's
``fit_rows`` latents); placing the other records stays in the server, in torch, which
lets go of the lock. The worker compiles UMAP once when it starts (:func:`warm`). Should
the worker die, the next fit starts a new one, and the fit that was running is done in
the server instead.
"""

from __future__ import annotations

import os
import signal
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import numpy as np

#: How much lower the worker's priority is than the server's.
NICENESS = 10
# One process: a second would hold another copy of UMAP, numba and torch (about 400 MB).
_WORKERS = 1

_pool: ProcessPoolExecutor | None = None
_warmed: Future | None = None
_lock = threading.Lock()


def _end_with_parent() -> None:
    """Ask Linux to stop this worker when the process that started it ends."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _start() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _end_with_parent()
    try:
        os.nice(NICENESS)
    except OSError:
        pass
    from quack.latents.maps import umap_project

    # Compile numba's code now, with the dashboard's options, so the first map does not wait for it.
    umap_project(np.random.default_rng(0).normal(size=(256, 8)).astype(np.float32), seed=0)


def _executor() -> ProcessPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            from quack.data.parallel import process_context

            _pool = ProcessPoolExecutor(max_workers=_WORKERS, mp_context=process_context("quack.latents.maps"),
                                        initializer=_start)
        return _pool


def warm() -> None:
    """Start the worker, which compiles UMAP, unless it is running already."""
    global _warmed
    pool = _executor()
    with _lock:
        if _warmed is None or (_warmed.done() and _warmed.exception() is not None):
            _warmed = pool.submit(int)


def ready() -> bool:
    """Whether the worker has started and compiled UMAP, so a fit begins at once."""
    return _warmed is not None and _warmed.done() and _warmed.exception() is None


def umap_project(latents: np.ndarray, *args, **kwargs) -> np.ndarray:
    """:func:`quack.latents.maps.umap_project`, fitted in the worker process."""
    global _pool, _warmed
    from quack.latents import maps

    try:
        return _executor().submit(maps.umap_project, latents, *args, **kwargs).result()
    except BrokenProcessPool:
        with _lock:
            _pool = None
            _warmed = None
        return maps.umap_project(latents, *args, **kwargs)
