"""Train a QuackAutoEncoder on a tokenized data set with Lightning's Trainer.

One function, :func:`fit`, serves the command line and the dashboard: it builds the
data module, the model (its tokenizer embedded), the callbacks and the trainer, fits,
tests on the held-out split and measures reconstruction accuracy there.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint

from quack.autoencoder import QuackAutoEncoder

MODEL_DEFAULTS: dict[str, Any] = {
    "embed_size": 64,
    "hidden_size": 256,
    "layers": 1,
    "max_decode_length": None,
    "learning_rate": 3e-3,
    "learning_rate_min": 1e-4,
    "lr_max_epochs": -1,
    "teacher_forcing_ratio": 0.5,
}


class LossRecorder(pl.Callback):
    """Keeps the losses and progress of a run where another thread can read them.

    The dashboard trains in a background thread and draws the loss curve from
    :attr:`history` while it runs; :meth:`stop` asks the trainer to end after the
    current batch.
    """

    def __init__(self) -> None:
        self.history: list[dict[str, float]] = []
        self.step = 0
        self.total_steps = 0
        self.epoch = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def stop(self) -> None:
        """Ask the trainer to stop at the end of the current batch."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def snapshot(self) -> list[dict[str, float]]:
        """A copy of the history, safe to use from another thread."""
        with self._lock:
            return list(self.history)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.total_steps = int(trainer.estimated_stepping_batches)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.step = trainer.global_step
        self.epoch = trainer.current_epoch
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        with self._lock:
            self.history.append({"step": float(self.step), "epoch": float(self.epoch), "train_loss": float(loss)})
        if self._stop.is_set():
            trainer.should_stop = True

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or "val_loss" not in trainer.callback_metrics:
            return
        with self._lock:
            self.history.append(
                {
                    "step": float(trainer.global_step),
                    "epoch": float(trainer.current_epoch),
                    "val_loss": float(trainer.callback_metrics["val_loss"]),
                }
            )


@dataclass
class FitResult:
    """What a training run produced.

    Attributes
    ----------
    checkpoint : pathlib.Path
        The best checkpoint by validation loss (the last one when there was no validation).
    test_loss : float
        Mean loss over the held-out test split.
    token_accuracy : float
        Share of the test split's tokens that greedy decoding reconstructs exactly.
    epochs : int
        Epochs run.
    history : list of dict
        Losses as recorded by :class:`LossRecorder`.
    """

    checkpoint: Path
    test_loss: float
    token_accuracy: float
    epochs: int
    history: list[dict[str, float]] = field(default_factory=list)


@torch.no_grad()
def token_accuracy(model: QuackAutoEncoder, loader, teacher_forcing: bool = False) -> float:
    """Share of non-padding tokens that the model reconstructs exactly (greedy by default)."""
    model.eval()
    right = total = 0
    for batch in loader:
        tokens = batch[1] if isinstance(batch, (tuple, list)) else batch
        tokens = tokens.to(model.device)
        out = model.inspect(tokens, teacher_forcing=teacher_forcing)
        # With max_decode_length set the model reconstructs only the first steps.
        tokens = tokens[:, : out["ids"].size(1)]
        mask = tokens != 1
        right += int(((out["ids"] == tokens) & mask).sum())
        total += int(mask.sum())
    return right / max(total, 1)


def fit(
    data_dir: str | Path,
    out_dir: str | Path,
    model_options: dict[str, Any] | None = None,
    max_epochs: int = 10,
    batch_size: int = 32,
    seed: int = 0,
    accelerator: str = "auto",
    devices: int | str = "auto",
    strategy: str = "auto",
    num_nodes: int = 1,
    precision: str | None = None,
    patience: int = 3,
    resume: str | Path | None = None,
    logger: str = "csv",
    bucket_by_length: bool = True,
    num_workers: int = 0,
    callbacks: list[pl.Callback] | None = None,
    progress_bar: bool = True,
    max_steps: int = -1,
) -> FitResult:
    """Train, test and measure an autoencoder on the data set in ``data_dir``.

    Parameters
    ----------
    data_dir : path
        A data set written by ``quack ingest``.
    out_dir : path
        Checkpoints and logs go here (``checkpoints/`` and ``logs/`` inside).
    model_options : dict, optional
        Hyperparameters of :class:`QuackAutoEncoder` over :data:`MODEL_DEFAULTS`.
    max_epochs, batch_size, seed, accelerator, devices, strategy, num_nodes, precision
        As Lightning's Trainer and the data module take them.
    patience : int
        Epochs without a better validation loss before stopping early (0 turns it off).
    resume : path, optional
        A checkpoint of an earlier run to continue from.
    logger : {"csv", "tensorboard", "none"}
        Where the metrics are logged, offline.
    bucket_by_length : bool
        Batch records of similar length together to cut padding.
    num_workers : int
        Data loader worker processes.
    callbacks : list of Callback, optional
        More callbacks, such as a :class:`LossRecorder`.
    progress_bar : bool
        Show Lightning's progress bar.
    max_steps : int
        Stop after this many optimiser steps (-1: no limit).

    Returns
    -------
    FitResult
    """
    from quack.dataset import QuackDataModule

    pl.seed_everything(seed, workers=True)
    out_dir = Path(out_dir).expanduser()
    data = QuackDataModule(
        data_dir, batch_size=batch_size, seed=seed, num_workers=num_workers, bucket_by_length=bucket_by_length
    )
    options = {**MODEL_DEFAULTS, **(model_options or {})}
    model = QuackAutoEncoder(num_embeddings=data.tokenizer.vocab_size, **options)
    model.tokenizer_json = data.tokenizer.to_json()
    checkpointing = ModelCheckpoint(
        dirpath=out_dir / "checkpoints", filename="quack-{epoch:02d}-{val_loss:.4f}", monitor="val_loss", save_last=True
    )
    all_callbacks: list[pl.Callback] = [checkpointing, *(callbacks or [])]
    if patience > 0:
        all_callbacks.append(EarlyStopping(monitor="val_loss", patience=patience))
    if logger == "csv":
        run_logger = pl.loggers.CSVLogger(out_dir, name="logs")
    elif logger == "tensorboard":
        import importlib.util

        if not (importlib.util.find_spec("tensorboard") or importlib.util.find_spec("tensorboardX")):
            raise ValueError("TensorBoard logging needs the tensorboard package: `pip install tensorboard`, or log with csv.")
        run_logger = pl.loggers.TensorBoardLogger(out_dir, name="logs")
    else:
        run_logger = False
    trainer = pl.Trainer(
        max_epochs=max_epochs,
        max_steps=max_steps,
        accelerator=accelerator,
        devices=devices,
        strategy=strategy,
        num_nodes=num_nodes,
        precision=precision,
        callbacks=all_callbacks,
        logger=run_logger,
        enable_progress_bar=progress_bar,
        enable_model_summary=progress_bar,
        deterministic=True,
        default_root_dir=out_dir,
        log_every_n_steps=10,
    )
    trainer.fit(model, datamodule=data, ckpt_path=str(resume) if resume else None)
    best = checkpointing.best_model_path or checkpointing.last_model_path
    tested = trainer.test(model, datamodule=data, ckpt_path=best or None, verbose=progress_bar)
    test_loss = float(tested[0]["test_loss"]) if tested else float("nan")
    accuracy = token_accuracy(model, data.test_dataloader())
    history = next((c.snapshot() for c in all_callbacks if isinstance(c, LossRecorder)), [])
    return FitResult(Path(best), test_loss, accuracy, trainer.current_epoch, history)
