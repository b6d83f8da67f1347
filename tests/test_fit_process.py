"""UMAP fits in the dashboard's worker process: the same map, a lower priority, a dead worker survived."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

from dashboard import fit_process
from quack.latents import maps


@pytest.fixture(scope="module")
def latents() -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.concatenate([rng.normal(size=(150, 16)), rng.normal(size=(150, 16)) + 6]).astype(np.float32)


def test_the_worker_fits_the_map_the_server_would(latents):
    there = fit_process.umap_project(latents, 2, n_neighbors=10, seed=0)
    here = maps.umap_project(latents, 2, n_neighbors=10, seed=0)
    assert there.shape == (300, 2) and np.allclose(there, here, atol=1e-4)
    fit_process.warm()
    assert fit_process._executor().submit(int).result(timeout=120) == 0
    assert fit_process.ready()


def test_the_worker_runs_below_the_server():
    worker = fit_process._executor().submit(os.getpid).result(timeout=120)
    assert worker != os.getpid()
    mine = os.getpriority(os.PRIO_PROCESS, 0)
    assert os.getpriority(os.PRIO_PROCESS, worker) >= min(19, mine + fit_process.NICENESS)


def test_a_dead_worker_costs_one_fit_in_the_server_and_the_next_gets_a_new_one(latents):
    worker = fit_process._executor().submit(os.getpid).result(timeout=120)
    os.kill(worker, signal.SIGKILL)
    coords = fit_process.umap_project(latents, 2, n_neighbors=10, seed=0)
    assert coords.shape == (300, 2) and np.isfinite(coords).all()
    again = fit_process._executor().submit(os.getpid).result(timeout=120)
    assert again not in (worker, os.getpid())
