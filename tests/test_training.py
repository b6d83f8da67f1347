"""Training with Lightning's real Trainer: the loss per token, the epoch means, and a run stopped by request."""

import math

import numpy as np
import pytorch_lightning as pl
import torch

from quack.model.network import per_token_loss
from quack.model.training import LossRecorder, fit
from quack.schema import PAD

SMALL = {"embed_size": 8, "hidden_size": 16}


def test_the_loss_per_token_divides_by_the_decoded_steps_that_hold_a_token():
    tokens = torch.tensor([[0, 5, 6, 2, PAD, PAD], [0, 7, 2, PAD, PAD, PAD]])
    assert math.isclose(float(per_token_loss(torch.tensor(8.0), tokens)), 2.0)
    # A model that decodes three steps at most counts three.
    assert math.isclose(float(per_token_loss(torch.tensor(8.0), tokens, max_decode_length=3)), 8 / 3, rel_tol=1e-6)


class StopAtEpochEnd(pl.Callback):
    """Asks the recorder to stop at the end of the first epoch."""

    def __init__(self, recorder: LossRecorder) -> None:
        self.recorder = recorder

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.recorder.stop()


def spread(values: list[float]) -> float:
    return max(values) / min(values)


def test_a_run_records_the_loss_per_token_with_epoch_and_validation_means(trained_sample, tmp_path):
    recorder = LossRecorder()
    # Stopped in its second epoch: a whole epoch recorded, without measuring the test split.
    fit(trained_sample["data"], tmp_path / "run", SMALL, max_epochs=3, batch_size=32,
        callbacks=[StopAtEpochEnd(recorder), recorder], progress_bar=False, logger="none", patience=0)
    history = recorder.snapshot()
    batches = [h for h in history if "token_loss" in h]
    assert batches and all(h["token_loss"] < h["train_loss"] for h in batches)
    # Batches of short and long records differ by their length in the summed loss, not per token.
    assert spread([h["token_loss"] for h in batches]) < spread([h["train_loss"] for h in batches])
    epochs = [h for h in history if "epoch_token_loss" in h]
    assert [h["epoch"] for h in epochs] == [0.0, 1.0], "the first epoch, then the batch the stop ended"
    first = [h["token_loss"] for h in batches if h["epoch"] == 0]
    assert math.isclose(epochs[0]["epoch_token_loss"], float(np.mean(first)), rel_tol=1e-6)
    assert any("val_token_loss" in h for h in history)


class StopAt(pl.Callback):
    """Asks the recorder to stop once the run has taken ``step`` optimiser steps, as the Stop button does."""

    def __init__(self, recorder: LossRecorder, step: int) -> None:
        self.recorder, self.step = recorder, step

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step == self.step:
            self.recorder.stop()


def test_a_stop_takes_effect_after_the_batch_it_was_asked_in_and_keeps_a_checkpoint(trained_sample, tmp_path):
    recorder = LossRecorder()
    result = fit(trained_sample["data"], tmp_path / "run", SMALL, max_epochs=50, batch_size=16,
                 callbacks=[StopAt(recorder, 3), recorder], progress_bar=False, logger="none", patience=0)
    assert recorder.stopped_at == 3
    assert max(h["step"] for h in result.history if "train_loss" in h) == 3, "no batch after the stop"
    assert result.checkpoint.is_file() and "epoch=00" in result.checkpoint.name, "validated at the stop, kept"
    # The slow measurement of the test split is skipped: the run is over when it is stopped.
    assert math.isnan(result.token_accuracy) and math.isnan(result.test_loss)
