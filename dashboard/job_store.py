"""The process's store of computed results, and the bounded queues of work that fills it.

Every session shares one store (:func:`dashboard.jobs.store`), so one session must not be
able to slow or starve the others. The store bounds:

- background jobs waiting for a thread, per session (:data:`MAX_QUEUED_PER_SESSION`) and in
  all (:data:`MAX_QUEUED`): past either, a new job is refused with one sentence;
- a session's superseded jobs: a session waits for one job of each kind (one map, one
  evaluation); asking for another drops its wait on the previous one, and a queued job no
  session waits for any more is cancelled before it starts;
- work a page runs in the foreground (encoding, the classifier): one at a time per session,
  :data:`MAX_FOREGROUND` in all, and one session computing what another already computes
  waits for that result instead;
- results kept, by count and by bytes, the least recently used dropped first; a finished
  job keeps no reference to its result, so nothing outlives those bounds.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import fields, is_dataclass
from typing import Any, Callable, Hashable, Iterator

import numpy as np
import pandas as pd

from dashboard.daemon_pool import DaemonPool

#: Background jobs one session may have waiting for a thread.
MAX_QUEUED_PER_SESSION = 2
#: Background jobs all sessions together may have waiting for a thread.
MAX_QUEUED = 8
#: Foreground computations running at once, all sessions together.
MAX_FOREGROUND = 4
#: Bytes of results kept by default.
DEFAULT_MAX_BYTES = 2048 * 1024 * 1024
#: Results the ``kept`` rule spares from the count and byte bounds, the most recent first.
MAX_KEPT = 8


class QueueFull(ValueError):
    """Work refused because too much is already waiting; the message says what to do."""


def result_bytes(value: Any, depth: int = 3) -> int:
    """Memory a result holds: its arrays and tables, looked for inside tuples, lists, dicts and dataclasses."""
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if isinstance(value, (pd.DataFrame, pd.Series)):
        return int(np.sum(value.memory_usage(deep=True)))
    if depth > 0:
        if isinstance(value, (tuple, list)):
            return sum(result_bytes(v, depth - 1) for v in value)
        if isinstance(value, dict):
            return sum(result_bytes(v, depth - 1) for v in value.values())
        if is_dataclass(value) and not isinstance(value, type):
            return sum(result_bytes(getattr(value, f.name), depth - 1) for f in fields(value))
    return sys.getsizeof(value)


def kind_of(key: Hashable) -> Hashable:
    """What a key is a result of (a map, an evaluation, ...): a session waits for one job of each kind."""
    return key[0] if isinstance(key, tuple) and key else key


#: Progress records kept, finished jobs' included; the oldest go first past it.
MAX_PROGRESS = 1024


class Progress:
    """How far a background job has come: the job calls it as ``progress(done, total)``, pages read it."""

    def __init__(self) -> None:
        self.done, self.total, self.started = 0, 0, time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        if done == 0:
            self.started = time.monotonic()
        self.done, self.total = int(done), int(total)

    def elapsed(self) -> float:
        """Seconds since the job reported its start."""
        return time.monotonic() - self.started


class JobStore:
    """Computed results, most recently used kept, and the executors that compute them.

    Parameters
    ----------
    max_items : int
        Results kept; the least recently used goes first.
    work_workers : int
        Threads for background work other than UMAP maps.
    map_workers : int
        Threads for UMAP maps. Each waits while the dashboard's worker process fits
        (:mod:`dashboard.worker`), so maps queue here instead of holding the work
        threads the evaluation needs.
    training_workers : int
        Threads for training runs.
    max_bytes : int
        Bytes of results kept (:func:`result_bytes`); the least recently used go first,
        the newest result is kept whatever its size.
    max_queued, max_queued_per_session, max_foreground : int
        The bounds on waiting and foreground work described in the module's notes.
    kept : callable, optional
        Which results every visitor needs (a data set's latents and first maps): of those,
        the ``max_kept`` most recently stored are dropped only when nothing else is left
        to drop, so other sessions' many small results cannot push them out.
    """

    def __init__(self, max_items: int = 48, work_workers: int = 2, training_workers: int = 2, map_workers: int = 1,
                 max_bytes: int = DEFAULT_MAX_BYTES, max_queued: int = MAX_QUEUED,
                 max_queued_per_session: int = MAX_QUEUED_PER_SESSION, max_foreground: int = MAX_FOREGROUND,
                 kept: Callable[[Hashable], bool] | None = None, max_kept: int = MAX_KEPT) -> None:
        self.max_items, self.max_bytes = max_items, max_bytes
        self.kept, self.max_kept = kept or (lambda key: False), max_kept
        # Kept results, the most recently stored last: only the newest max_kept are spared.
        self._kept: OrderedDict[Hashable, None] = OrderedDict()
        self.max_queued, self.max_queued_per_session, self.max_foreground = (
            max_queued, max_queued_per_session, max_foreground)
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._sizes: dict[Hashable, int] = {}
        self._jobs: dict[Hashable, Future] = {}
        self._waiters: dict[Hashable, set[str]] = {}
        self._waits: dict[str, dict[Hashable, Hashable]] = {}
        self._progress: dict[Hashable, Progress] = {}
        self._foreground: dict[Hashable, threading.Event] = {}
        self._foreground_owners: set[str] = set()
        self._lock = threading.Lock()
        # Daemon threads: a stopped server exits without waiting for a running map or run.
        self.work = DaemonPool(work_workers, "quack-work")
        self.maps = DaemonPool(map_workers, "quack-maps")
        self.training = DaemonPool(training_workers, "quack-train")

    def get(self, key: Hashable, default: Any = None) -> Any:
        """The result stored under ``key``, else ``default``."""
        with self._lock:
            if key not in self._items:
                return default
            self._items.move_to_end(key)
            return self._items[key]

    def has(self, key: Hashable) -> bool:
        """Whether a result is stored under ``key``."""
        with self._lock:
            return key in self._items

    def stored_bytes(self) -> int:
        """Bytes the stored results hold, as :func:`result_bytes` counts them."""
        with self._lock:
            return sum(self._sizes.values())

    def put(self, key: Hashable, value: Any) -> None:
        """Store a result, dropping the least recently used beyond ``max_items`` or ``max_bytes``."""
        size = result_bytes(value)
        with self._lock:
            self._items[key] = value
            self._sizes[key] = size
            self._items.move_to_end(key)
            if self.kept(key):
                self._kept[key] = None
                self._kept.move_to_end(key)
                while len(self._kept) > self.max_kept:
                    self._kept.popitem(last=False)
            while len(self._items) > 1 and (
                    len(self._items) > self.max_items or sum(self._sizes.values()) > self.max_bytes):
                # The least recently used goes first; a kept result only when nothing else is left.
                dropped = next((k for k in self._items if k not in self._kept and k != key), None)
                if dropped is None:
                    dropped = next(k for k in self._items if k != key)
                self._items.pop(dropped)
                self._sizes.pop(dropped, None)
                self._kept.pop(dropped, None)

    def queued(self, owner: str | None = None) -> int:
        """Background jobs waiting for a thread: all, or those ``owner`` waits for."""
        with self._lock:
            return self._queued(owner)

    def _queued(self, owner: str | None) -> int:
        return sum(1 for key, job in self._jobs.items() if not job.done() and not job.running()
                   and (owner is None or owner in self._waiters.get(key, ())))

    def submit(self, key: Hashable, compute: Callable[[], Any], start: bool = True,
               owner: str | None = None, maps: bool = False) -> Future | None:
        """Compute a result on the work executor (``maps``: the maps' executor), once per key; it is stored under ``key``.

        Parameters
        ----------
        owner : str, optional
            The session asking; it then waits for this job instead of its previous job of
            the same kind (:func:`kind_of`), which is cancelled when queued and nobody else
            waits for it.

        Returns
        -------
        concurrent.futures.Future or None
            The job, already done when the result was stored before. With
            ``start=False`` nothing is started: None unless a job exists.

        Raises
        ------
        QueueFull
            When starting it would pass the session's or the server's bound on waiting jobs.
        """
        with self._lock:
            if key in self._items:
                done: Future = Future()
                done.set_result(self._items[key])
                return done
            job = self._jobs.get(key)
            if not start:
                return job
            if owner is not None:
                self._wait(owner, key)
            # A failed job is tried again; a running or finished one is shared.
            if job is None or (job.done() and job.exception() is not None):
                if owner is not None and self._queued(owner) >= self.max_queued_per_session:
                    raise QueueFull(f"This session already has {self.max_queued_per_session} computations waiting; "
                                    "wait for them to finish before asking for another.")
                if self._queued(None) >= self.max_queued:
                    raise QueueFull(f"The server already has {self.max_queued} computations waiting for all "
                                    "sessions; try again in a minute.")
                job = (self.maps if maps else self.work).submit(self._run, key, compute)
                self._jobs[key] = job
            return job

    def _wait(self, owner: str, key: Hashable) -> None:
        """Make ``owner`` wait for ``key``, dropping its wait on the previous job of that kind (lock held)."""
        waits = self._waits.setdefault(owner, {})
        previous = waits.get(kind_of(key))
        waits[kind_of(key)] = key
        self._waiters.setdefault(key, set()).add(owner)
        if previous is None or previous == key:
            return
        left = self._waiters.get(previous, set())
        left.discard(owner)
        job = self._jobs.get(previous)
        if not left and job is not None and job.cancel():
            self._jobs.pop(previous, None)
            self._waiters.pop(previous, None)
            self._progress.pop(previous, None)

    def _run(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        result = compute()
        self.put(key, result)
        with self._lock:
            # The result is in the store now; the finished job holds nothing beyond its bounds.
            # Its progress (three numbers) stays, so a page can still say how long it took.
            self._jobs.pop(key, None)
            self._waiters.pop(key, None)
        return result

    def finished(self, key: Hashable) -> Any:
        """The result under ``key`` when it is stored or its job has succeeded, else None."""
        job = self.submit(key, lambda: None, start=False)
        if job is not None and job.done() and job.exception() is None:
            return job.result()
        return None

    def progress(self, key: Hashable) -> Progress:
        """The progress of the job under ``key`` (made on first ask), shared by the job and its readers."""
        with self._lock:
            if key not in self._progress and len(self._progress) >= MAX_PROGRESS:
                # The oldest first: dicts keep insertion order.
                self._progress.pop(next(iter(self._progress)))
            return self._progress.setdefault(key, Progress())

    @contextmanager
    def foreground(self, key: Hashable, owner: str | None) -> Iterator[bool]:
        """A slot to compute ``key`` in the asking thread; yields whether it must be computed.

        Yields False when the result is there, or another session (or this session's run
        before) has just computed it.

        Raises
        ------
        QueueFull
            When the session is computing something else already, or the server as much
            as :attr:`max_foreground` at once.
        """
        running = mine = None
        with self._lock:
            there = key in self._items
            if not there:
                # The result being computed already, by another session or by this one's earlier run (a rerun
                # starts while the run it replaces still computes): wait for it; it adds no work.
                running = self._foreground.get(key)
                if running is None:
                    if owner is not None and owner in self._foreground_owners:
                        raise QueueFull("This session is still computing a result from an earlier request; "
                                        "wait for it to finish, then try again.")
                    if len(self._foreground) >= self.max_foreground:
                        raise QueueFull(f"The server is computing {self.max_foreground} results for other "
                                        "sessions; try again in a minute.")
                    mine = self._foreground[key] = threading.Event()
                    if owner is not None:
                        self._foreground_owners.add(owner)
        if mine is None:
            if running is not None:
                running.wait()
            yield not self.has(key)
            return
        try:
            yield True
        finally:
            with self._lock:
                self._foreground.pop(key, None)
                self._foreground_owners.discard(owner)
            mine.set()

    def forget(self, key: Hashable) -> None:
        """Drop a stored result and its job, so the next ask computes it again."""
        with self._lock:
            self._items.pop(key, None)
            self._kept.pop(key, None)
            self._sizes.pop(key, None)
            self._jobs.pop(key, None)
            self._waiters.pop(key, None)
            self._progress.pop(key, None)

    def shutdown(self) -> None:
        """Stop both executors once their jobs end."""
        self.work.shutdown(wait=True)
        self.maps.shutdown(wait=True)
        self.training.shutdown(wait=True)
