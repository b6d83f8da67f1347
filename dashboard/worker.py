"""The dashboard's long background computations in a worker process below the server's page runs.

UMAP's numba code holds the interpreter lock while it fits, and the Discover evaluation
(the model's loss pass, its methods' classifiers) keeps torch's and scikit-learn's threads
busy for half a minute and more: done in the server's own process, one session's new map
or first Discover visit slows every other session's page runs (BENCHMARKS.md, "Where the
interpreter went" and "The Discover page's work in the worker"). Here they run in one
worker process at niceness :data:`NICENESS`, in a scheduling group of its own, threads and
all, so they take the interpreter from no page run and only the processor time others
leave. What a page waits for (the classifier, a ranking, the clusters) is computed in the
server: here it would queue behind other sessions' fits and evaluations.

Only what a computation needs crosses to the worker (a map's fitted sample, the latents,
the evaluation's counts), and only its result comes back. A computation that reports
progress has its reports sent back as they come (:func:`call`). The worker compiles UMAP
once, after a page run that finds it idle (:func:`warm`), or before its first map. Should
the worker die, the computation that was running is done in the server instead and the
next one starts a new worker.
"""

from __future__ import annotations

import itertools
import os
import signal
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable

import numpy as np

#: How much lower the worker's priority is than the server's.
NICENESS = 10
# One process: a second would hold another copy of UMAP, numba and torch (about 400 MB).
_WORKERS = 1

_pool: ProcessPoolExecutor | None = None
_warmed: Future | None = None
_lock = threading.Lock()
# The server's side: who waits for the progress of each running call.
_listeners: dict[int, Callable[..., None]] = {}
_queue = None
_tokens = itertools.count()
# Calls waiting for the worker or running in it.
_in_flight = 0
# The worker's side: where its calls' progress goes, and whether UMAP is compiled.
_reports = None
_compiled = False


def _end_with_parent() -> None:
    """Ask Linux to stop this worker when the process that started it ends."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _own_autogroup() -> None:
    """Put this worker in a scheduling group of its own, at niceness :data:`NICENESS`.

    Where Linux groups processes by session for scheduling (autogroup), niceness orders
    processes only within their group, and each group gets an equal share of a processor:
    the worker would take as much as a browser or a terminal of another session, whatever
    its niceness. A session of its own with the group's niceness lowered puts it behind them too.
    """
    try:
        os.setsid()
        with open("/proc/self/autogroup", "w") as group:
            group.write(str(NICENESS))
    except OSError:
        pass


def _start(reports) -> None:
    global _reports
    _reports = reports
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _end_with_parent()
    try:
        os.nice(NICENESS)
    except OSError:
        pass
    _own_autogroup()


def _compile() -> None:
    """Compile UMAP's numba code with the dashboard's options, once per worker, so that the first map does not wait."""
    global _compiled
    if not _compiled:
        from quack.latents.maps import umap_project

        umap_project(np.random.default_rng(0).normal(size=(256, 8)).astype(np.float32), seed=0)
        _compiled = True


def _compiled_umap(latents: np.ndarray, *args, **kwargs) -> np.ndarray:
    """A map fitted after the compiling: a first fit that compiles as it goes may place the records otherwise."""
    from quack.latents import maps

    _compile()
    return maps.umap_project(latents, *args, **kwargs)


def _listen(reports) -> None:
    """Hand each progress report from the worker to the call that waits for it (server side)."""
    while True:
        try:
            item = reports.get()
        except (EOFError, OSError, ValueError):
            return
        if item is None:  # the worker was replaced: its queue is done
            return
        token, values = item
        listener = _listeners.get(token)
        if listener is not None:
            try:
                listener(*values)
            except Exception:  # noqa: BLE001 - a progress display must not stop the reports of other calls
                pass


def _executor() -> ProcessPoolExecutor:
    global _pool, _queue
    with _lock:
        if _pool is None:
            from quack.data.parallel import process_context

            context = process_context("quack.latents.maps")
            reports = _queue = context.Queue()
            threading.Thread(target=_listen, args=(reports,), name="quack-worker-progress", daemon=True).start()
            _pool = ProcessPoolExecutor(max_workers=_WORKERS, mp_context=context, initializer=_start,
                                        initargs=(reports,))
        return _pool


def warm() -> None:
    """Start the worker and have it compile UMAP when it has nothing else to do, unless it has compiled already.

    The dashboard calls this after every page run. While a computation runs in the worker
    (a first visit's evaluation), the compiling waits for a later call, so that nothing
    asked for waits behind it; a map fitted before then compiles what it needs itself.
    """
    global _warmed
    pool = _executor()
    with _lock:
        if _in_flight == 0 and (_warmed is None or (_warmed.done() and _warmed.exception() is not None)):
            _warmed = pool.submit(_compile)


def ready() -> bool:
    """Whether the worker has started and compiled UMAP, so a fit begins at once."""
    return _warmed is not None and _warmed.done() and _warmed.exception() is None


def _run(token: int, function: Callable[..., Any], args: tuple, kwargs: dict, reporting: bool) -> Any:
    """One call in the worker; its ``progress`` reports go back to the server."""
    if reporting:
        kwargs = dict(kwargs, progress=lambda *values: _reports.put((token, values)))
    return function(*args, **kwargs)


def call(function: Callable[..., Any], *args: Any, progress: Callable[..., None] | None = None, **kwargs: Any) -> Any:
    """``function(*args, **kwargs)`` in the worker process; waits for it and returns its result.

    ``function`` is a module-level function and its arguments and result can be pickled.
    With ``progress``, ``function`` is given a ``progress`` argument of its own, and each
    call of it in the worker calls ``progress`` here with the same values (reports that
    arrive after the result are dropped). An exception ``function`` raises is raised here.
    """
    global _pool, _warmed, _in_flight
    token = next(_tokens)
    if progress is not None:
        _listeners[token] = progress
    with _lock:
        _in_flight += 1
    try:
        pool = _executor()
        return pool.submit(_run, token, function, args, kwargs, progress is not None).result()
    except BrokenProcessPool:
        with _lock:
            if _pool is pool:  # not already replaced by another call that saw it die
                _queue.put(None)  # ends the dead worker's listener
                _pool = None
                _warmed = None
        return function(*args, **kwargs, **({} if progress is None else {"progress": progress}))
    finally:
        _listeners.pop(token, None)
        with _lock:
            _in_flight -= 1


def umap_project(latents: np.ndarray, *args, **kwargs) -> np.ndarray:
    """:func:`quack.latents.maps.umap_project`, fitted in the worker process."""
    return call(_compiled_umap, latents, *args, **kwargs)
