"""A fixed pool of daemon threads for the dashboard's background work.

``concurrent.futures.ThreadPoolExecutor`` joins its threads when the interpreter exits, so
a server stopped with Ctrl-C (or SIGTERM) waits for a running UMAP fit or training run to
end, tens of seconds or more. Work here only fills the in-memory store or writes files
atomically, so nothing is lost when the process ends under it: the pool's threads are
daemons, and the process exits at once.
"""

from __future__ import annotations

import queue
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
        self._threads = [threading.Thread(target=self._serve, name=f"{name}_{i}", daemon=True) for i in range(workers)]
        for thread in self._threads:
            thread.start()

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
            try:
                result = fn(*args, **kwargs)
            except BaseException as error:  # noqa: BLE001 - handed to whoever waits on the future
                future.set_exception(error)
            else:
                future.set_result(result)
