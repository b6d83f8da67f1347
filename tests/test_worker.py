"""The dashboard's worker process: the same map, a lower priority, progress sent back, a dead worker survived."""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest

from dashboard import worker
from quack.latents import maps


@pytest.fixture(scope="module")
def latents() -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.concatenate([rng.normal(size=(150, 16)), rng.normal(size=(150, 16)) + 6]).astype(np.float32)


def test_the_worker_fits_the_map_the_server_would(latents):
    there = worker.umap_project(latents, 2, n_neighbors=10, seed=0)
    here = maps.umap_project(latents, 2, n_neighbors=10, seed=0)
    assert there.shape == (300, 2) and np.allclose(there, here, atol=1e-4)
    worker.warm()
    assert worker._executor().submit(int).result(timeout=120) == 0
    assert worker.ready()


def test_the_worker_runs_below_the_server():
    pid = worker._executor().submit(os.getpid).result(timeout=120)
    assert pid != os.getpid()
    mine = os.getpriority(os.PRIO_PROCESS, 0)
    assert os.getpriority(os.PRIO_PROCESS, pid) >= min(19, mine + worker.NICENESS)


def test_a_dead_worker_costs_one_fit_in_the_server_and_the_next_gets_a_new_one(latents):
    pid = worker._executor().submit(os.getpid).result(timeout=120)
    os.kill(pid, signal.SIGKILL)
    coords = worker.umap_project(latents, 2, n_neighbors=10, seed=0)
    assert coords.shape == (300, 2) and np.isfinite(coords).all()
    again = worker._executor().submit(os.getpid).result(timeout=120)
    assert again not in (pid, os.getpid())
    # The dead worker's progress listener has ended; one listens for the new worker.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _listeners() > 1:
        time.sleep(0.1)
    assert _listeners() == 1


def _listeners() -> int:
    return sum(thread.name == "quack-worker-progress" and thread.is_alive() for thread in threading.enumerate())


def _counting(n: int, progress) -> int:
    for i in range(n):
        progress(i + 1, n)
    time.sleep(1.0)  # the reports reach the server before the result does
    return os.getpid()


def _refusing(reason: str) -> None:
    raise ValueError(reason)


def test_a_call_runs_in_the_worker_and_its_progress_comes_back_in_order():
    seen: list[tuple[int, int]] = []
    pid = worker.call(_counting, 200, progress=lambda done, total: seen.append((done, total)))
    assert pid != os.getpid()
    assert seen == [(i + 1, 200) for i in range(200)]
    # A second call's reports do not reach the first call's listener.
    assert worker.call(_counting, 3, progress=lambda *values: None) == pid
    assert len(seen) == 200


def test_a_call_that_fails_raises_its_error_here():
    with pytest.raises(ValueError, match="no family large enough"):
        worker.call(_refusing, "no family large enough")


def test_the_discover_evaluation_in_the_worker_is_the_one_the_server_would_run():
    from quack.discovery import evaluation
    from tests.test_evaluate import synthetic

    data = synthetic("text")
    lines: list[str] = []
    there = worker.call(evaluation.evaluate_data, data, hide=["h"], top=(30,), progress=lines.append)
    here = evaluation.evaluate_data(data, hide=["h"], top=(30,))
    assert there.methods == here.methods
    aps = [{m: f["scores"][m]["ap"] for m in here.methods} for f in here.folds]
    assert [{m: f["scores"][m]["ap"] for m in there.methods} for f in there.folds] == [
        pytest.approx(one, abs=1e-6) for one in aps]
    assert lines, "the evaluation's progress reached the server"
