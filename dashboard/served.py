"""The dashboard served by ``streamlit run`` in a process of its own, as a user starts it.

The browser tests and the benchmarks that open the dashboard in Chromium start it here,
so they agree on how it is started, when it counts as up and how it is stopped.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Mapping

REPO = Path(__file__).resolve().parents[1]

#: Debian's Chromium, and the flags it runs headless with.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run",
]


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Served:
    """A running dashboard: its address, its process and when it was started (``time.perf_counter``)."""

    url: str
    process: subprocess.Popen
    started: float
    log: Path


def interrupt(running: Served, timeout_s: float = 60) -> float:
    """Send the server SIGINT, as Ctrl-C in its terminal does, and wait for it to exit.

    Returns
    -------
    float
        Seconds from the signal to the process's exit.

    Raises
    ------
    subprocess.TimeoutExpired
        When it is still running after ``timeout_s`` seconds.
    """
    sent = time.perf_counter()
    running.process.send_signal(signal.SIGINT)
    running.process.wait(timeout=timeout_s)
    return time.perf_counter() - sent


@contextmanager
def served(env: Mapping[str, str], log: Path, timeout_s: float = 120,
           preexec_fn: Callable[[], None] | None = None) -> Iterator[Served]:
    """Start ``streamlit run dashboard/app.py`` on a free port and wait until it answers; stop it at the end.

    Parameters
    ----------
    env : mapping
        The server's environment.
    log : path
        File its output goes to.
    timeout_s : float
        Seconds it may take to answer on ``/_stcore/health``.
    preexec_fn : callable, optional
        Run in the child before it starts (for example to pin it to cores).

    Raises
    ------
    RuntimeError
        When it stops or does not answer in time; the message ends with its last output.
    """
    port = free_port()
    command = [sys.executable, "-m", "streamlit", "run", "dashboard/app.py", "--server.port", str(port),
               "--server.headless", "true"]
    handle = open(log, "w")
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=REPO, env=dict(env), stdout=handle, stderr=subprocess.STDOUT,
                               preexec_fn=preexec_fn)
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.perf_counter() - started > timeout_s:
                handle.flush()
                raise RuntimeError(f"streamlit did not start: {Path(log).read_text()[-2000:]}")
            time.sleep(0.3)
        yield Served(url, process, started, Path(log))
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        handle.close()
