"""Run the jobs of one command in worker processes, results in the order the jobs came.

:class:`Workers` is a pool of fresh processes, never forks of the calling one (which may
hold threads): forked from a clean server process that has imported the jobs' module once,
where the system has one, else spawned. Jobs and their arguments are therefore sent by
pickling, and a job sees nothing of the caller's state. The calling process is one of the
workers: it does a job itself whenever the oldest one is not back yet, so it never idles
while others work and a pool of N workers starts only N - 1 processes, and only when a
map has at least two jobs, so a small input never pays for starting processes. A map
reads its jobs lazily and keeps a few per worker in flight, so the input may be far
larger than memory; results come back in job order, which keeps every output the same
whatever the number of workers.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver
import os
import signal
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.context import BaseContext
from typing import Any, Callable, Iterable, Iterator, TypeVar

__all__ = ["Workers", "available_cores", "process_context"]

T = TypeVar("T")


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity where the system tells it)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def process_context(module: str) -> BaseContext:
    """Where workers come from: a fork server that imported ``module`` (one import for all), else spawn."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    # Only read when the server starts, once per process; later pools reuse it as it is.
    context.set_forkserver_preload([module])
    # Start it now: it imports while the caller works, instead of while the first worker waits.
    multiprocessing.forkserver.ensure_running()
    return context


def _start_worker() -> None:
    # Ctrl-C reaches every process of the terminal's group; the parent alone decides what
    # stops, and tells its workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # One thread per worker for the tokenizer's native pool: the workers are the parallelism.
    os.environ["RAYON_NUM_THREADS"] = "1"


class Workers:
    """``count`` workers for the maps of one command, this process and ``count - 1`` others; a context manager.

    Parameters
    ----------
    count : int
        Workers, this process included; 1 runs every job here.

    Raises
    ------
    ValueError
        When ``count`` is not a positive integer.
    """

    def __init__(self, count: int) -> None:
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise ValueError(f"The number of workers must be a positive integer, got {count!r}.")
        self.count = count
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> "Workers":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def started(self) -> bool:
        """Whether worker processes are running: a map of two jobs or more starts them, given two workers or more."""
        return self._pool is not None

    def close(self) -> None:
        """Stop the workers; a job already running is let finish, waiting ones are dropped."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def map(
        self, function: Callable[..., T], jobs: Iterable[Any], here: tuple = (), there: tuple = ()
    ) -> Iterator[T]:
        """``function(job, *args)`` for every job, results in job order.

        Parameters
        ----------
        function : callable
            A module-level function (worker processes import it by name).
        jobs : iterable
            Read lazily; an error raised while reading is raised after the results of the
            jobs read before it, as a loop in one process would.
        here : tuple
            Further arguments when the job runs in this process (loaded objects, say).
        there : tuple
            Further arguments when it runs in a worker: picklable and cheap to send with
            every job (paths, documents), from which the function builds what it needs.

        Yields
        ------
        object
            Each job's result.

        Raises
        ------
        ChildProcessError
            When a worker process died (killed for memory, say).
        """
        if self.count == 1:
            for job in jobs:
                yield function(job, *here)
            return
        reader = _Reader(iter(jobs))
        ahead = [job for job in (reader.next(), reader.next()) if job is not _END]
        if len(ahead) < 2:
            for job in ahead:
                yield function(job, *here)
            reader.raise_failure()
            return
        reader.ahead.extend(ahead)
        yield from self._remote(function, reader, here, there)

    def _remote(self, function: Callable[..., T], reader: "_Reader", here: tuple, there: tuple) -> Iterator[T]:
        others = self.count - 1
        # The other workers' futures and the jobs done here, in job order; at most a few
        # per worker, waiting or done, so that the jobs in memory stay few.
        pending: deque[Future | _Ran] = deque()
        if self._pool is None:
            context = process_context(function.__module__)
            # The first job is done here while the workers' processes start.
            pending.append(_Ran.of(function, reader.next(), here))
            self._pool = ProcessPoolExecutor(others, mp_context=context, initializer=_start_worker)
        most = 4 * self.count
        try:
            while True:
                while reader.more and len(pending) < most and _running(pending) < 2 * others:
                    job = reader.next()
                    if job is not _END:
                        pending.append(self._pool.submit(function, job, *there))
                if not pending:
                    break
                head = pending[0]
                if isinstance(head, Future) and not head.done() and reader.more and len(pending) < most:
                    job = reader.next()
                    if job is not _END:
                        pending.append(_Ran.of(function, job, here))
                    continue
                pending.popleft()
                yield head.result() if isinstance(head, _Ran) else _result(head)
        finally:
            for future in pending:
                if isinstance(future, Future):
                    future.cancel()
        reader.raise_failure()


_END = object()


class _Reader:
    """Jobs read one at a time; an error while reading ends them and waits to be raised in turn."""

    def __init__(self, jobs: Iterator[Any]) -> None:
        self.jobs = jobs
        # Jobs read already and to be handed out first.
        self.ahead: deque[Any] = deque()
        self.open = True
        self.failure: Exception | None = None

    @property
    def more(self) -> bool:
        """Whether there may be another job."""
        return bool(self.ahead) or self.open

    def next(self) -> Any:
        """The next job, or ``_END`` when the jobs ran out or reading them failed."""
        if self.ahead:
            return self.ahead.popleft()
        if not self.open:
            return _END
        try:
            return next(self.jobs)
        except StopIteration:
            self.open = False
        except Exception as error:
            self.open = False
            self.failure = error
        return _END

    def raise_failure(self) -> None:
        if self.failure is not None:
            raise self.failure


class _Ran:
    """A job done in this process: its result, or the error to raise when its turn comes."""

    def __init__(self, value: Any = None, error: BaseException | None = None) -> None:
        self.value, self.error = value, error

    @classmethod
    def of(cls, function: Callable[..., Any], job: Any, here: tuple) -> "_Ran":
        try:
            return cls(function(job, *here))
        except Exception as error:
            return cls(error=error)

    def result(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.value


def _running(pending: deque) -> int:
    return sum(isinstance(entry, Future) and not entry.done() for entry in pending)


def _result(future: Future) -> Any:
    try:
        return future.result()
    except BrokenProcessPool:
        raise ChildProcessError(
            "A worker process ended without finishing its work (out of memory?); run again with fewer workers."
        ) from None
