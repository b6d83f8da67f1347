"""Training runs started from the dashboard, going on in the background.

A run trains on the job store's training executor, so maps and other work keep their
own threads meanwhile. Runs are kept per process: a page finds its session's run by
id, draws the loss curve from the run's recorder while it trains, and can stop it.
"""

from __future__ import annotations

import os
import secrets
import shutil
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

from dashboard import jobs, settings
from quack.config import AutoencoderConfig, TrainConfig


@dataclass
class TrainingRun:
    """A training run in a worker thread.

    Attributes
    ----------
    run_id : str
        Names the run and its checkpoint.
    out_dir : pathlib.Path
        Lightning's checkpoints and logs of the run.
    recorder : quack.model.training.LossRecorder
        The run's progress and losses, readable while it trains.
    future : concurrent.futures.Future
        Gives the saved checkpoint's path when the run ends.
    model, train : AutoencoderConfig, TrainConfig
        What was asked for.
    started : float
        When it started (seconds since the epoch).
    kept : str
        The name of the checkpoint the run kept (its epoch and validation loss), once it has ended.
    """

    run_id: str
    out_dir: Path
    recorder: object
    future: Future
    model: AutoencoderConfig
    train: TrainConfig
    started: float = field(default_factory=time.time)
    kept: str = ""


_runs: dict[str, TrainingRun] = {}
_lock = threading.Lock()


def start(data_dir: Path, model: AutoencoderConfig, train: TrainConfig) -> TrainingRun:
    """Start training a new autoencoder on ``data_dir`` in the background.

    The best checkpoint is copied to ``<checkpoint folder>/trained/<run id>.ckpt`` when
    the run ends, where the Model page lists it.
    """
    from quack.model.training import LossRecorder, fit

    run_id = time.strftime("quack-%Y%m%d-%H%M%S-") + secrets.token_hex(2)
    out_dir = settings.cache_root() / "runs" / run_id
    recorder = LossRecorder()

    def train_and_keep() -> Path:
        # One device: a distributed run cannot start from the server's background thread.
        result = fit(data_dir, out_dir, model, train, callbacks=[recorder], progress_bar=False, devices=1)
        target = settings.checkpoint_root() / "trained" / f"{run_id}.ckpt"
        target.parent.mkdir(parents=True, exist_ok=True)
        # Copied whole or not at all: the server may exit under this daemon thread.
        partial = target.with_name(f".{target.name}.partial")
        shutil.copyfile(result.checkpoint, partial)
        os.replace(partial, target)
        run.kept = result.checkpoint.name
        return target

    run = TrainingRun(run_id, out_dir, recorder, Future(), model, train)
    run.future = jobs.store().training.submit(train_and_keep)
    with _lock:
        _runs[run_id] = run
    return run


def find(run_id: str | None) -> TrainingRun | None:
    """A training run started in this process, by id (None for an unknown id or None)."""
    with _lock:
        return _runs.get(run_id) if run_id else None


def stop(run_id: str) -> None:
    """Ask a run to stop after its current batch; it still saves its best checkpoint."""
    run = find(run_id)
    if run is not None:
        run.recorder.stop()
