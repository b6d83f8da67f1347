"""Train a QuackAutoEncoder on a tokenized data set with Lightning's Trainer.

One function, :func:`fit`, serves the command line and the dashboard: it builds the
data module, the model (its tokenizer embedded), the callbacks and the trainer, fits,
tests on the held-out split and measures reconstruction accuracy there.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint

from quack.config import AutoencoderConfig, TrainConfig
from quack.model.module import QuackAutoEncoder
from quack.model.network import per_token_loss
from quack.schema import PAD


class LossRecorder(pl.Callback):
    """Keeps the losses and progress of a run where another thread can read them.

    The dashboard trains in a background thread and draws the loss curve from
    :attr:`history` while it runs; :meth:`stop` asks the trainer to end after the
    current batch. Each batch's entry has ``train_loss`` (the objective) and
    ``token_loss`` (per decoded step, which compares across batches of different
    lengths); each epoch's end adds ``epoch_token_loss``, each validation ``val_loss`` and
    ``val_token_loss``. :attr:`stopped_at` is the step a stop took effect at.
    """

    def __init__(self) -> None:
        self.history: list[dict[str, float]] = []
        self.step = 0
        self.total_steps = 0
        self.epoch = 0
        self.stopped_at: int | None = None
        self._epoch_losses: list[float] = []
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
        tokens = batch[1] if isinstance(batch, (tuple, list)) else batch
        per_token = per_token_loss(loss, tokens, getattr(pl_module, "max_decode_length", None))
        with self._lock:
            self.history.append({"step": float(self.step), "epoch": float(self.epoch), "train_loss": float(loss),
                                 "token_loss": float(per_token)})
        self._epoch_losses.append(float(per_token))
        # Checked after every batch: a stop ends the run within one batch (and the
        # validation Lightning runs before stopping), not at the epoch's end.
        if self._stop.is_set() and self.stopped_at is None:
            self.stopped_at = self.step
            trainer.should_stop = True

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._epoch_losses = []

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._epoch_losses:
            with self._lock:
                self.history.append({"step": float(trainer.global_step), "epoch": float(trainer.current_epoch),
                                     "epoch_token_loss": sum(self._epoch_losses) / len(self._epoch_losses)})

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or "val_loss" not in trainer.callback_metrics:
            return
        metrics = trainer.callback_metrics
        entry = {"step": float(trainer.global_step), "epoch": float(trainer.current_epoch),
                 "val_loss": float(metrics["val_loss"])}
        if "val_token_loss" in metrics:
            entry["val_token_loss"] = float(metrics["val_token_loss"])
        with self._lock:
            self.history.append(entry)


@dataclass
class FitResult:
    """What a training run produced.

    Attributes
    ----------
    checkpoint : pathlib.Path
        The best checkpoint by validation loss (the last one when there was no validation).
    test_loss : float
        Mean loss over the held-out test split (NaN for a run stopped by :meth:`LossRecorder.stop`).
    token_accuracy : float
        Share of the test split's tokens that greedy decoding reconstructs exactly (NaN
        for a stopped run: decoding the split greedily takes longer than a stop may).
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
        mask = tokens != PAD
        right += int(((out["ids"] == tokens) & mask).sum())
        total += int(mask.sum())
    return right / max(total, 1)


def fit(
    data_dir: str | Path,
    out_dir: str | Path,
    model_options: AutoencoderConfig | dict[str, Any] | None = None,
    train: TrainConfig | None = None,
    *,
    resume: str | Path | None = None,
    overwrite: bool = False,
    callbacks: list[pl.Callback] | None = None,
    progress_bar: bool = True,
    **train_options: Any,
) -> FitResult:
    """Train, test and measure an autoencoder on the data set in ``data_dir``.

    Parameters
    ----------
    data_dir : path
        A data set written by ``quack ingest``.
    out_dir : path
        Checkpoints and logs go here (``checkpoints/`` and ``logs/`` inside).
    model_options : AutoencoderConfig or dict, optional
        The model's hyperparameters; a dict overrides :class:`AutoencoderConfig`'s defaults.
    train : TrainConfig, optional
        How to train; :class:`TrainConfig`'s defaults when None.
    resume : path, optional
        A checkpoint of an earlier run to continue from; it must have the model options
        and tokenizer of this run.
    overwrite : bool
        Replace the checkpoints of an earlier run in ``out_dir``; without it (or
        ``resume``) a folder that holds checkpoints is refused.
    callbacks : list of Callback, optional
        More callbacks, such as a :class:`LossRecorder`.
    progress_bar : bool
        Show Lightning's progress bar.
    **train_options
        Fields of :class:`TrainConfig` (``max_epochs``, ``batch_size``, ...) that
        override ``train``.

    Returns
    -------
    FitResult

    Raises
    ------
    ValueError
        Before any training, with one sentence: an option out of its bounds, an output
        that is a file or already holds checkpoints, a ``resume`` checkpoint that is not
        a quack checkpoint or does not fit this run.
    """
    from quack.model.dataset import QuackDataModule

    config = model_options if isinstance(model_options, AutoencoderConfig) else AutoencoderConfig(**(model_options or {}))
    run = dataclasses.replace(train or TrainConfig(), **train_options)
    out_dir = Path(out_dir).expanduser()
    _check_output(out_dir, resume is not None or overwrite)
    data = QuackDataModule(
        data_dir, batch_size=run.batch_size, seed=run.seed, num_workers=run.num_workers,
        bucket_by_length=run.bucket_by_length,
    )
    if resume is not None:
        _check_resume(Path(resume).expanduser(), config, data.tokenizer)
    if overwrite:
        _clear_checkpoints(out_dir)
    pl.seed_everything(run.seed, workers=True)
    model = _new_model(config, data.tokenizer)
    checkpointing = _checkpointing(out_dir)
    trainer = _trainer(run, out_dir, [checkpointing, *(callbacks or []), *_early_stopping(run)], progress_bar)
    # weights_only whatever the environment says: a checkpoint may come from anyone.
    trainer.fit(model, datamodule=data, ckpt_path=str(resume) if resume else None, weights_only=True)
    return _tested(trainer, model, data, checkpointing, callbacks or [], progress_bar)


def _clear_checkpoints(out_dir: Path) -> None:
    for old in (out_dir / "checkpoints").glob("*.ckpt"):
        old.unlink()


def _new_model(config: AutoencoderConfig, tokenizer: Any) -> QuackAutoEncoder:
    """A fresh model sized for the tokenizer, which it carries into its checkpoints."""
    model = QuackAutoEncoder(num_embeddings=tokenizer.vocab_size, **config.model_kwargs())
    model.tokenizer_json = tokenizer.to_json()
    return model


def _checkpointing(out_dir: Path) -> ModelCheckpoint:
    return ModelCheckpoint(
        dirpath=out_dir / "checkpoints", filename="quack-{epoch:02d}-{val_loss:.4f}", monitor="val_loss", save_last=True,
        # The folder holds this run's checkpoints only, so last.ckpt is always the newest.
        enable_version_counter=False,
    )


def _early_stopping(run: TrainConfig) -> list[pl.Callback]:
    if run.patience <= 0:
        return []
    # Not strict: a run cut short by max_steps may end before its first validation.
    return [EarlyStopping(monitor="val_loss", patience=run.patience, strict=False)]


def _logger(run: TrainConfig, out_dir: Path) -> Any:
    """The run's offline logger, or False for none."""
    if run.logger == "csv":
        return pl.loggers.CSVLogger(out_dir, name="logs")
    if run.logger == "tensorboard":
        import importlib.util

        if not (importlib.util.find_spec("tensorboard") or importlib.util.find_spec("tensorboardX")):
            raise ValueError("TensorBoard logging needs the tensorboard package: `pip install tensorboard`, or log with csv.")
        return pl.loggers.TensorBoardLogger(out_dir, name="logs")
    return False


def _trainer(run: TrainConfig, out_dir: Path, callbacks: list[pl.Callback], progress_bar: bool) -> pl.Trainer:
    return pl.Trainer(
        max_epochs=run.max_epochs,
        max_steps=run.max_steps,
        accelerator=run.accelerator,
        devices=run.devices,
        strategy=run.strategy,
        num_nodes=run.num_nodes,
        precision=run.precision,
        callbacks=callbacks,
        logger=_logger(run, out_dir),
        enable_progress_bar=progress_bar,
        enable_model_summary=progress_bar,
        deterministic=True,
        default_root_dir=out_dir,
        log_every_n_steps=10,
    )


def _tested(trainer: pl.Trainer, model: QuackAutoEncoder, data: Any, checkpointing: ModelCheckpoint,
            callbacks: list[pl.Callback], progress_bar: bool) -> FitResult:
    """Test the best checkpoint on the held-out split and measure its reconstruction there."""
    best = checkpointing.best_model_path or checkpointing.last_model_path
    recorder = next((c for c in callbacks if isinstance(c, LossRecorder)), None)
    if recorder is not None and recorder.stopped_at is not None:
        # Whoever stopped the run wants it over: the best checkpoint is kept, unmeasured.
        return FitResult(Path(best), float("nan"), float("nan"), trainer.current_epoch, recorder.snapshot())
    tested = trainer.test(model, datamodule=data, ckpt_path=best or None, verbose=progress_bar)
    test_loss = float(tested[0]["test_loss"]) if tested else float("nan")
    accuracy = token_accuracy(model, data.test_dataloader())
    history = next((c.snapshot() for c in callbacks if isinstance(c, LossRecorder)), [])
    return FitResult(Path(best), test_loss, accuracy, trainer.current_epoch, history)


def _check_output(out_dir: Path, reuse: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"The output {out_dir} is a file; give a folder for checkpoints and logs.")
    if not reuse and any((out_dir / "checkpoints").glob("*.ckpt")):
        raise ValueError(
            f"The output {out_dir} already holds the checkpoints of a run; choose a new folder, "
            "resume that run with --resume, or replace it with --overwrite."
        )


def _check_resume(path: Path, config: AutoencoderConfig, tokenizer: Any) -> None:
    """Refuse a checkpoint to resume from that would not fit this run, before any training."""
    earlier = QuackAutoEncoder.from_checkpoint(path)
    claimed = {name: earlier.hparams.get(name) for name in config.model_kwargs()}
    # The optimiser's settings may change on resuming; the network's shape may not.
    for name in ("embed_size", "hidden_size", "layers"):
        if claimed[name] != getattr(config, name):
            raise ValueError(
                f"The checkpoint {path} was trained with {name} {claimed[name]}, not {getattr(config, name)}; "
                f"resume with --{name.replace('_', '-')} {claimed[name]} or start a new run."
            )
    if earlier.tokenizer_json is not None and earlier.tokenizer.to_json() != tokenizer.to_json():
        raise ValueError(
            f"The checkpoint {path} was trained on data of another tokenizer; resume it on its own data set "
            "or start a new run."
        )
