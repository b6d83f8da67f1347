"""A fixed pool of daemon threads for the dashboard's background work.

``concurrent.futures.ThreadPoolExecutor`` joins its threads when the interpreter exits, so
a server stopped with Ctrl-C (or SIGTERM) waits for a running UMAP fit or training run to
end, tens of seconds or more. Work here only fills the in-memory store or writes files
atomically, so nothing is lost when the process ends under it: the pool's threads are
daemons, and the process exits at once.
"""

from __future__ import annotations

import atexit
import os
import queue
import sys
import threading
from concurrent.futures import Future
from typing import Any, Callable


class DaemonPool:
    """Runs submitted callables on ``workers`` daemon threads, first come first served.

    Parameters
    ----------
    workers : int
        Threads, started at once.
    name : str
        Prefix of the threads' names.
    """

    def __init__(self, workers: int, name: str) -> None:
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._running = 0
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._serve, name=f"{name}_{i}", daemon=True) for i in range(workers)]
        for thread in self._threads:
            thread.start()
        atexit.register(self._end_if_busy)

    @property
    def busy(self) -> bool:
        """Whether a thread is running a job now."""
        with self._lock:
            return self._running > 0

    def _end_if_busy(self) -> None:
        # A thread still inside torch or numba while the interpreter finalises aborts the
        # process ("terminate called without an active exception", status 134). Its work only
        # fills memory or writes files atomically, so the process ends here instead, as stopped.
        if self.busy:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Future:
        """Queue ``fn(*args, **kwargs)``; its future may be cancelled until a thread starts it."""
        future: Future = Future()
        self._queue.put((future, fn, args, kwargs))
        return future

    def shutdown(self, wait: bool = True) -> None:
        """Let the threads end once the queued work is done; with ``wait``, wait for them."""
        for _ in self._threads:
            self._queue.put(None)
        if wait:
            for thread in self._threads:
                thread.join()

    def _serve(self) -> None:
        while (item := self._queue.get()) is not None:
            future, fn, args, kwargs = item
            if not future.set_running_or_notify_cancel():
                continue
            with self._lock:
                self._running += 1
            try:
                result = fn(*args, **kwargs)
            except BaseException as error:  # noqa: BLE001 - handed to whoever waits on the future
                future.set_exception(error)
            else:
                future.set_result(result)
            finally:
                with self._lock:
                    self._running -= 1
