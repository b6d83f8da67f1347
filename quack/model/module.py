"""The sequence-to-sequence GRU autoencoder with attention, as a Lightning module.

The encoder is a bidirectional GRU whose final state is a record's latent vector; the
decoder is a GRU started from that state that reconstructs the sequence while attending
over the encoder's states. The design follows Duncan & Chen (Computers & Security 128,
2023), itself adapted from Raff, *Inside Deep Learning* (Manning, 2022), chapter 11. The
layers come from :mod:`quack.model.network`; this module adds decoding, the training,
evaluation and prediction steps, the optimiser and the checkpoint hooks.

Token ids follow the XLM-R convention: ``<s>`` = 0, ``<pad>`` = 1, ``</s>`` = 2,
``<unk>`` = 3. Batches are batch-first ``LongTensor`` of shape (B, T), right-padded with 1.

The decoder's first input is ``<s>``; at step ``t`` it predicts ``x[:, t]``. With teacher
forcing its input at step ``t`` is ``x[:, t - 1]``, so all steps are computed at once; when
it samples, its input is a token drawn from its own previous prediction, one step at a time.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn

from quack.config import check_model_options
from quack.model.checkpoint import read_checkpoint
from quack.model.network import (
    AttentionModule,
    AttentionScore,
    decode_stepwise,
    decode_teacher_forced,
    encode_packed,
    encode_reversed,
    per_step_loss,
    per_token_loss,
    response_positions,
    word_predictor,
)
from quack.model.writer import LOSS
from quack.schema import PAD

__all__ = ["QuackAutoEncoder"]


class QuackAutoEncoder(pl.LightningModule):
    """Sequence-to-sequence GRU autoencoder with attention.

    Parameters
    ----------
    num_embeddings : int
        Vocabulary size V; every token id must be below it.
    embed_size : int
        Embedding size E.
    hidden_size : int
        Latent size H (even: the bidirectional encoder has H // 2 per direction).
    layers : int
        Depth of the encoder and decoder GRUs.
    max_decode_length : int or None
        Decode at most this many steps; None decodes the full input length.
    learning_rate : float
        AdamW's initial learning rate.
    learning_rate_min : float
        The cosine schedule's floor.
    lr_max_epochs : int
        The cosine schedule's period in epochs; -1 takes the trainer's ``max_epochs``,
        and the rate stays constant when that is unset too.
    *args : Any
        Passed to ``LightningModule``.
    teacher_forcing_ratio : float
        Chance that a training batch is decoded with teacher forcing rather than by
        sampling from the decoder's own predictions.
    response_weight : float
        Weight of the response's tokens (status, headers, body:
        :func:`quack.model.network.response_positions`) in the training loss, the
        other tokens weighing 1; above 1 the latents must carry more of the response
        to reconstruct it.
    pooling : str
        How the encoder's states make the latent the decoder starts from: ``"final"``
        joins each direction's final state (the seed's), ``"mean"`` averages the states
        of every token, so no position (the first or the last) outweighs the others.
    **kwargs : Any
        Passed to ``LightningModule``.

    Attributes
    ----------
    tokenizer_json : str or None
        The tokenizer the model was trained with, serialised; stored in checkpoints.
    predict_loss : bool
        ``predict_step`` also gives each record's teacher-forced reconstruction loss
        (one decoder pass more); False by default.
    """

    def __init__(
        self,
        num_embeddings: int,
        embed_size: int,
        hidden_size: int,
        layers: int = 1,
        max_decode_length: int | None = None,
        learning_rate: float = 1e-1,
        learning_rate_min: float = 1e-4,
        lr_max_epochs: int = -1,
        *args: Any,
        teacher_forcing_ratio: float = 0.5,
        response_weight: float = 1.0,
        pooling: str = "final",
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        check_model_options(embed_size, hidden_size, num_embeddings=num_embeddings, layers=layers,
                            max_decode_length=max_decode_length, teacher_forcing_ratio=teacher_forcing_ratio,
                            response_weight=response_weight, pooling=pooling)
        self.save_hyperparameters()
        self.response_weight = float(response_weight)
        self.pooling = pooling
        self.hidden_size = hidden_size
        self.max_decode_length = max_decode_length
        self.teacher_forcing_ratio = teacher_forcing_ratio
        self.learning_rate = learning_rate
        self.learning_rate_min = learning_rate_min
        self.lr_max_epochs = lr_max_epochs
        self.tokenizer_json: str | None = None
        self.predict_loss = False
        self._tokenizer_cache: tuple[str, Any] | None = None

        self.embed = nn.Embedding(num_embeddings, embed_size, padding_idx=PAD)
        self.encoder = nn.GRU(embed_size, hidden_size // 2, num_layers=layers,
                              batch_first=True, bidirectional=True)
        self.decoder = nn.GRU(embed_size, hidden_size, num_layers=layers, batch_first=True)
        self.attention_score = AttentionScore(hidden_size)
        self.attention = AttentionModule()
        self.predict_word = word_predictor(hidden_size, num_embeddings)

    # ------------------------------------------------------------------ encoding

    def mask_input(self, padded: torch.Tensor) -> torch.Tensor:
        """Mark the tokens that are not padding.

        Parameters
        ----------
        padded : torch.Tensor
            (B, T) token ids.

        Returns
        -------
        torch.Tensor
            (B, T) bool, True where the token is not ``<pad>``; a new tensor.
        """
        return padded.ne(PAD)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode a batch.

        Parameters
        ----------
        x : torch.Tensor
            (B, T) token ids, right-padded with ``<pad>``.

        Returns
        -------
        tuple of torch.Tensor
            ``final`` (B, H): the latent vectors, the last layer's forward and backward
            final states joined (or, with ``pooling="mean"``, the mean of its states);
            ``sequence`` (B, T, H): the encoder's states, zero at padding, always T long.
        """
        lengths = self.mask_input(x).sum(dim=1).clamp(min=1)
        embedded = self.embed(x)
        # Packing skips padding, and cuDNN runs packed sequences natively. On the CPU,
        # though, backpropagating through a packed GRU is several times slower than
        # through a plain one, so when training there each direction runs unpacked on a
        # suitably ordered copy of the batch, which gives the same states.
        if x.is_cuda or not torch.is_grad_enabled():
            final, sequence = encode_packed(self.encoder, embedded, lengths)
        else:
            final, sequence = encode_reversed(self.encoder, embedded, lengths)
        if self.pooling == "mean":
            final = sequence.sum(dim=1) / lengths.unsqueeze(1).to(sequence.dtype)
        return final, sequence

    @torch.no_grad()
    def encode(self, tokens: torch.Tensor) -> torch.Tensor:
        """Latent vectors of a batch, in evaluation mode without gradients.

        Parameters
        ----------
        tokens : torch.Tensor
            (B, T) token ids.

        Returns
        -------
        torch.Tensor
            (B, H) latent vectors on the model's device.
        """
        was_training = self.training
        self.eval()
        try:
            final, _ = self(tokens.to(self.device))
        finally:
            self.train(was_training)
        return final

    def loss_over_time(self, original: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
        """Sum over time steps of each step's mean cross-entropy, padding ignored.

        Parameters
        ----------
        original : torch.Tensor
            (B, T) target token ids.
        output : torch.Tensor
            (B, S, V) logits; only the first ``min(T, S)`` steps are compared.

        Returns
        -------
        torch.Tensor
            Scalar loss. A step where every record is padding adds nothing. The response's
        tokens weigh :attr:`response_weight` each.
        """
        steps = min(original.size(1), output.size(1))
        target = original[:, :steps]
        valid = self.mask_input(target)
        ce = F.cross_entropy(output[:, :steps][valid].float(), target[valid], reduction="none")
        return per_step_loss(self._weighted(ce, target, valid), valid, valid.nonzero()[:, 1])

    def _weighted(self, ce: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """The cross-entropy of each valid target, the response's times :attr:`response_weight`."""
        if self.response_weight == 1.0:
            return ce
        weights = torch.where(response_positions(target)[valid], self.response_weight, 1.0)
        return ce * weights.to(ce.dtype)

    def batch_loss(self, x: torch.Tensor, teacher_forcing: bool, stepwise: bool = False) -> torch.Tensor:
        """The reconstruction loss of one batch, as the training and evaluation steps take it.

        With teacher forcing the decoder runs all steps at once and the prediction network
        only sees steps whose target is a real token; ``stepwise=True`` runs the same
        computation one step at a time instead (the reference the fast path must match).

        Parameters
        ----------
        x : torch.Tensor
            (B, T) token ids.
        teacher_forcing : bool
            Feed the decoder the true previous token (True) or one sampled from its own
            prediction (False, always step by step).
        stepwise : bool
            Decode one step at a time even with teacher forcing.

        Returns
        -------
        torch.Tensor
            The scalar loss, as :meth:`loss_over_time` weighs it.
        """
        final, sequence = self(x)
        mask = self.mask_input(x)
        if not teacher_forcing or stepwise:
            logits, _ = decode_stepwise(self, x, final, sequence, mask, "teacher" if teacher_forcing else "sample")
            return self.loss_over_time(x, logits)
        features, _ = decode_teacher_forced(self, x, final, sequence, mask)
        target = x[:, : features.size(1)]
        valid = self.mask_input(target)
        logits = self.predict_word(features[valid])
        ce = F.cross_entropy(logits.float(), target[valid], reduction="none")
        return per_step_loss(self._weighted(ce, target, valid), valid, valid.nonzero()[:, 1])

    # ------------------------------------------------------------------ Lightning hooks

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        """Loss of a training batch, decoded with teacher forcing or by sampling.

        Parameters
        ----------
        batch : torch.Tensor
            (B, T) token ids.
        batch_idx : int
            Index of the batch.

        Returns
        -------
        torch.Tensor
            The loss, logged as ``train_loss``.
        """
        teacher_forcing = bool(torch.rand(()) < self.teacher_forcing_ratio)
        loss = self.batch_loss(batch, teacher_forcing)
        self.log("train_loss", loss, on_step=True, on_epoch=True, prog_bar=True,
                 batch_size=batch.size(0))
        self.log("train_token_loss", per_token_loss(loss, batch, self.max_decode_length), on_step=True,
                 on_epoch=True, batch_size=batch.size(0))
        return loss

    def _evaluation_step(self, batch: torch.Tensor, name: str) -> torch.Tensor:
        # Always teacher-forced: a sampled decode would make the logged losses of
        # different batches and epochs incomparable.
        loss = self.batch_loss(batch, teacher_forcing=True)
        self.log(name, loss, on_epoch=True, prog_bar=True, sync_dist=True, batch_size=batch.size(0))
        self.log(name.replace("_loss", "_token_loss"), per_token_loss(loss, batch, self.max_decode_length),
                 on_epoch=True, sync_dist=True, batch_size=batch.size(0))
        return loss

    def validation_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        """Teacher-forced loss of a validation batch, logged as ``val_loss``.

        Parameters
        ----------
        batch : torch.Tensor
            (B, T) token ids.
        batch_idx : int
            Index of the batch.

        Returns
        -------
        torch.Tensor
            The loss.
        """
        return self._evaluation_step(batch, "val_loss")

    def test_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        """Teacher-forced loss of a test batch, logged as ``test_loss``.

        Parameters
        ----------
        batch : torch.Tensor
            (B, T) token ids.
        batch_idx : int
            Index of the batch.

        Returns
        -------
        torch.Tensor
            The loss.
        """
        return self._evaluation_step(batch, "test_loss")

    def predict_step(
        self, batch: Any, batch_idx: int = 0, dataloader_idx: int = 0
    ) -> tuple[list[dict], torch.Tensor]:
        """Latent vectors of a batch with its metadata.

        Parameters
        ----------
        batch : tuple of (list of dict, torch.Tensor)
            One metadata dict per record and the (B, T) token ids; a bare tensor gets
            empty metadata.
        batch_idx : int
            Index of the batch.
        dataloader_idx : int
            Index of the data loader.

        Returns
        -------
        tuple
            The metadata list, unchanged (each dict gains ``reconstruction_loss`` when
            :attr:`predict_loss` is set), and the (B, H) latents as float32 on the CPU.
        """
        if isinstance(batch, torch.Tensor):
            metadata, tokens = [{} for _ in range(batch.size(0))], batch
        else:
            metadata, tokens = batch
        if self.predict_loss:
            out = self.inspect(tokens, teacher_forcing=True)
            losses = out["loss"].tolist()
            metadata = [{**meta, LOSS: loss} for meta, loss in zip(metadata, losses)]
            return metadata, out["latent"]
        final, _ = self(tokens)
        return metadata, final.detach().float().cpu()

    def configure_optimizers(self) -> dict:
        """AdamW with a cosine-annealed learning rate.

        Returns
        -------
        dict
            ``optimizer``: AdamW; ``lr_scheduler``: CosineAnnealingLR stepped each epoch
            over ``lr_max_epochs`` epochs (or the trainer's ``max_epochs``), flat at
            ``learning_rate`` when neither is set.
        """
        optimizer = torch.optim.AdamW(self.parameters(), lr=self.learning_rate)
        period = self.lr_max_epochs
        if period is None or period < 1:
            max_epochs = self.trainer.max_epochs if self._trainer is not None else None
            period = max_epochs if max_epochs is not None and max_epochs > 0 else None
        if period is None:
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
                optimizer, T_max=1, eta_min=self.learning_rate)
        else:
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
                optimizer, T_max=period, eta_min=self.learning_rate_min)
        return {"optimizer": optimizer, "lr_scheduler": scheduler}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Store the tokenizer (a plain string) in the checkpoint."""
        checkpoint["quack_tokenizer"] = self.tokenizer_json

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Restore the tokenizer stored by ``on_save_checkpoint``."""
        stored = checkpoint.get("quack_tokenizer")
        self.tokenizer_json = stored if isinstance(stored, str) else None

    # ------------------------------------------------------------------ for users

    @property
    def tokenizer(self) -> Any:
        """The ``quack.data.tokenizer.QuackTokenizer`` the model was trained with, or None."""
        if self.tokenizer_json is None:
            return None
        if self._tokenizer_cache is None or self._tokenizer_cache[0] != self.tokenizer_json:
            from quack.data.tokenizer import QuackTokenizer

            self._tokenizer_cache = (self.tokenizer_json, QuackTokenizer.from_json(self.tokenizer_json))
        return self._tokenizer_cache[1]

    @torch.no_grad()
    def inspect(self, tokens: torch.Tensor, teacher_forcing: bool = True) -> dict[str, torch.Tensor]:
        """Reconstruct a batch and show where the decoder looked.

        Parameters
        ----------
        tokens : torch.Tensor
            (B, T) token ids.
        teacher_forcing : bool
            Feed the decoder the true previous token (True) or its own most likely
            one (False, greedy decoding).

        Returns
        -------
        dict of torch.Tensor, all on the CPU
            ``ids`` (B, S) long: the most likely token at each step; ``probs`` (B, S):
            its probability; ``target_probs`` (B, S): the probability given to the true
            token; ``attention`` (B, S, T): the decoder's weights over the input
            positions; ``loss`` (B,): each record's mean cross-entropy; ``latent``
            (B, H): the encoder's final state, as :meth:`encode` gives it. S is the number
            of decoded steps (T unless ``max_decode_length`` is smaller); at padding
            positions ``ids`` is ``<pad>`` and the probabilities are 0.
        """
        was_training = self.training
        self.eval()
        try:
            x = tokens.to(self.device)
            final, sequence = self(x)
            mask = self.mask_input(x)
            if teacher_forcing:
                features, weights = decode_teacher_forced(self, x, final, sequence, mask)
                logits = self.predict_word(features)
            else:
                logits, weights = decode_stepwise(self, x, final, sequence, mask, "greedy")
        finally:
            self.train(was_training)
        target = x[:, : logits.size(1)]
        valid = self.mask_input(target)
        log_probs = F.log_softmax(logits.float(), dim=2)
        best, ids = log_probs.max(dim=2)
        target_log_probs = log_probs.gather(2, target.unsqueeze(2)).squeeze(2)
        ce = -(target_log_probs * valid).sum(dim=1) / valid.sum(dim=1).clamp(min=1)
        zero = torch.zeros((), device=x.device)
        return {
            "ids": ids.masked_fill(~valid, PAD).cpu(),
            "probs": torch.where(valid, best.exp(), zero).cpu(),
            "target_probs": torch.where(valid, target_log_probs.exp(), zero).cpu(),
            "attention": weights.transpose(1, 2).float().cpu(),
            "loss": ce.cpu(),
            "latent": final.float().cpu(),
        }

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, map_location: Any = "cpu") -> "QuackAutoEncoder":
        """Load a model from a Lightning checkpoint without unpickling arbitrary objects.

        Parameters
        ----------
        path, map_location
            The checkpoint file and where to put its weights, as
            :func:`quack.model.checkpoint.read_checkpoint` takes them.

        Returns
        -------
        QuackAutoEncoder
            The model in evaluation mode, with its tokenizer restored.

        Raises
        ------
        ValueError
            When the file is missing, unreadable or not a quack autoencoder checkpoint.
        """
        checkpoint = read_checkpoint(path, map_location)
        try:
            model = cls(**checkpoint["hyper_parameters"])
            model.load_state_dict(checkpoint["state_dict"])
        except (TypeError, ValueError, RuntimeError):
            raise ValueError(
                f"{Path(path).expanduser()} is not a quack autoencoder checkpoint: its hyperparameters or weights "
                "do not fit."
            ) from None
        model.on_load_checkpoint(checkpoint)
        return model.eval()
