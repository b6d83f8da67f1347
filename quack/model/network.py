"""The network's parts: attention, the encoder's two routes, decoding, the word predictor and the loss.

:class:`quack.model.module.QuackAutoEncoder` builds its layers from these and holds them
itself, so its checkpoints keep the seed's state-dict keys. Batches are batch-first
``LongTensor`` of shape (B, T), right-padded with ``<pad>``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from quack.data.vocab import RESPONSE_MARKERS, TEXT_FIELDS, TEXT_OFFSET
from quack.schema import BOS, PAD

__all__ = [
    "AttentionScore",
    "AttentionModule",
    "encode_packed",
    "encode_reversed",
    "word_predictor",
    "decode_teacher_forced",
    "decode_stepwise",
    "response_positions",
    "per_step_loss",
    "per_token_loss",
]


class AttentionScore(nn.Module):
    """Scaled dot-product attention scores.

    Parameters
    ----------
    dim : int
        The size H of the states and the context; scores are divided by ``sqrt(H)``.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        if dim < 1:
            raise ValueError(f"AttentionScore needs a positive dimension, got {dim}.")
        self.dim = dim
        self.scale = 1.0 / math.sqrt(dim)

    def forward(self, states: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Score every state against one context, or against several at once.

        Parameters
        ----------
        states : torch.Tensor
            (B, T, H) states to be attended over.
        context : torch.Tensor
            (B, H) one context per record, or (B, S, H) for S contexts per record
            (all decoder steps at once).

        Returns
        -------
        torch.Tensor
            (B, T, 1) scores ``h_t . c / sqrt(H)`` for a (B, H) context, or (B, T, S)
            for a (B, S, H) context.
        """
        if context.dim() == 2:
            return torch.bmm(states, context.unsqueeze(2)) * self.scale
        return torch.bmm(states, context.transpose(1, 2)) * self.scale


class AttentionModule(nn.Module):
    """Softmax attention weights over states, padding excluded."""

    def forward(
        self,
        states: torch.Tensor,
        attention_scores: torch.Tensor,
        mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Weigh the states by their scores for one context.

        Parameters
        ----------
        states : torch.Tensor
            (B, T, H) states.
        attention_scores : torch.Tensor
            (B, T, 1) score of each state.
        mask : torch.Tensor or None
            (B, T) bool, True where a state is valid; None when all are.

        Returns
        -------
        tuple of torch.Tensor
            The context (B, H) and the weights (B, T, 1): 0 at masked positions,
            summing to 1 over the valid ones. The inputs are not modified.
        """
        context, weights = self.attend_all(states, attention_scores, mask)
        return context.squeeze(1), weights

    def attend_all(
        self,
        states: torch.Tensor,
        attention_scores: torch.Tensor,
        mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Weigh the states for S contexts at once.

        Parameters
        ----------
        states : torch.Tensor
            (B, T, H) states.
        attention_scores : torch.Tensor
            (B, T, S) score of each state for each of S contexts.
        mask : torch.Tensor or None
            (B, T) bool, True where a state is valid; None when all are.

        Returns
        -------
        tuple of torch.Tensor
            The contexts (B, S, H) and the weights (B, T, S), each column summing to 1
            over the valid states.
        """
        if mask is not None:
            # The dtype's lowest finite value rather than -inf: a record with no valid
            # state then gets uniform weights instead of NaN, and valid ones still get
            # exactly zero weight on padding.
            fill = torch.finfo(attention_scores.dtype).min
            attention_scores = attention_scores.masked_fill(~mask.unsqueeze(2), fill)
        weights = F.softmax(attention_scores, dim=1)
        contexts = torch.bmm(weights.transpose(1, 2), states)
        return contexts, weights


def encode_packed(encoder: nn.GRU, embedded: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Run a bidirectional encoder over packed sequences, so padding is skipped.

    Parameters
    ----------
    encoder : torch.nn.GRU
        Bidirectional and batch-first, H/2 per direction.
    embedded : torch.Tensor
        (B, T, E) embedded tokens, right-padded.
    lengths : torch.Tensor
        (B,) each record's number of tokens, at least 1.

    Returns
    -------
    tuple of torch.Tensor
        ``final`` (B, H): the last layer's forward and backward final states joined;
        ``sequence`` (B, T, H): the last layer's states, zero at padding.
    """
    batch, time, _ = embedded.shape
    half = encoder.hidden_size
    packed = pack_padded_sequence(embedded, lengths.cpu(), batch_first=True, enforce_sorted=False)
    states, last = encoder(packed)
    sequence, _ = pad_packed_sequence(states, batch_first=True, total_length=time)
    # ``last`` is (layers * 2, B, H/2), ordered layer by layer, forward then backward.
    last = last.view(-1, 2, batch, half)[-1]
    return last.permute(1, 0, 2).reshape(batch, 2 * half), sequence


def _reorder(states: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """Permute each record's time steps: ``out[b, t] = states[b, order[b, t]]``."""
    return states.gather(1, order.unsqueeze(2).expand(-1, -1, states.size(2)))


def encode_reversed(
    encoder: nn.GRU, embedded: torch.Tensor, lengths: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run a bidirectional encoder unpacked, each backward direction on a reversed copy of the records.

    Gives the states :func:`encode_packed` gives. On the CPU, backpropagating through a
    packed GRU is several times slower than through a plain one, so training there takes
    this route.

    Parameters
    ----------
    encoder : torch.nn.GRU
        Bidirectional and batch-first, H/2 per direction, without dropout.
    embedded : torch.Tensor
        (B, T, E) embedded tokens, right-padded.
    lengths : torch.Tensor
        (B,) each record's number of tokens, at least 1.

    Returns
    -------
    tuple of torch.Tensor
        ``final`` (B, H) and ``sequence`` (B, T, H), as :func:`encode_packed`.
    """
    batch, time, _ = embedded.shape
    half = encoder.hidden_size
    positions = torch.arange(time, device=embedded.device).expand(batch, time)
    valid = positions < lengths.unsqueeze(1)
    # Reverses each record's valid tokens in place and leaves padding where it is;
    # applying it twice gives the identity.
    order = torch.where(valid, lengths.unsqueeze(1) - 1 - positions, positions)
    last_index = (lengths - 1).view(batch, 1, 1)
    hidden = embedded.new_zeros(1, batch, half)
    states = embedded
    for layer in range(encoder.num_layers):
        directions = []
        for suffix in ("", "_reverse"):
            weights = [getattr(encoder, f"{name}_l{layer}{suffix}")
                       for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            inputs = states if not suffix else _reorder(states, order)
            # Padding comes after each record's tokens, so it never reaches a valid state.
            outputs, _ = torch.gru(inputs, hidden, weights, True, 1, 0.0, encoder.training, False, True)
            directions.append(outputs if not suffix else _reorder(outputs, order))
        states = torch.cat(directions, dim=2)
    sequence = states * valid.unsqueeze(2).to(states.dtype)
    forward_final = sequence[..., :half].gather(1, last_index.expand(-1, 1, half))
    backward_final = sequence[:, :1, half:]
    return torch.cat([forward_final, backward_final], dim=2).squeeze(1), sequence


def word_predictor(hidden_size: int, num_embeddings: int) -> nn.Sequential:
    """The network that turns a decoder state and its attention context into token logits.

    Parameters
    ----------
    hidden_size : int
        H: it takes the context and the state joined, (..., 2H).
    num_embeddings : int
        V: it gives (..., V) logits.

    Returns
    -------
    torch.nn.Sequential
        Linear, LeakyReLU, LayerNorm, Linear, LeakyReLU, LayerNorm, Linear (the
        indices :func:`quack.model.checkpoint.expected_shapes` follows).
    """
    return nn.Sequential(
        nn.Linear(2 * hidden_size, hidden_size),
        nn.LeakyReLU(),
        nn.LayerNorm(hidden_size),
        nn.Linear(hidden_size, hidden_size),
        nn.LeakyReLU(),
        nn.LayerNorm(hidden_size),
        nn.Linear(hidden_size, num_embeddings),
    )


def _decoded_steps(model: nn.Module, x: torch.Tensor) -> int:
    steps = x.size(1)
    if model.max_decode_length is not None:
        steps = min(steps, model.max_decode_length)
    return steps


def _initial_hidden(model: nn.Module, final: torch.Tensor) -> torch.Tensor:
    return final.unsqueeze(0).repeat(model.decoder.num_layers, 1, 1).contiguous()


def decode_teacher_forced(
    model: nn.Module, x: torch.Tensor, final: torch.Tensor, sequence: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Decoder states and attention contexts for all steps at once, the true previous token as each input.

    Parameters
    ----------
    model : QuackAutoEncoder
        Its ``embed``, ``decoder``, ``attention_score`` and ``attention`` layers and its
        ``max_decode_length`` are used.
    x : torch.Tensor
        (B, T) token ids.
    final : torch.Tensor
        (B, H) latents, the decoder's initial state.
    sequence : torch.Tensor
        (B, T, H) encoder states to attend over.
    mask : torch.Tensor
        (B, T) bool, True where a token is not padding.

    Returns
    -------
    tuple of torch.Tensor
        The word predictor's input (B, S, 2H), each step's context and state joined,
        and the attention weights (B, T, S).
    """
    steps = _decoded_steps(model, x)
    start = torch.full((x.size(0), 1), BOS, dtype=x.dtype, device=x.device)
    inputs = torch.cat([start, x[:, : steps - 1]], dim=1)
    decoded, _ = model.decoder(model.embed(inputs), _initial_hidden(model, final))
    scores = model.attention_score(sequence, decoded)
    contexts, weights = model.attention.attend_all(sequence, scores, mask)
    return torch.cat([contexts, decoded], dim=2), weights


def decode_stepwise(
    model: nn.Module,
    x: torch.Tensor,
    final: torch.Tensor,
    sequence: torch.Tensor,
    mask: torch.Tensor,
    mode: str = "teacher",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode one step at a time.

    Parameters
    ----------
    model : QuackAutoEncoder
        Its ``embed``, ``decoder``, ``attention_score``, ``attention`` and
        ``predict_word`` layers and its ``max_decode_length`` are used.
    x, final, sequence, mask : torch.Tensor
        As for :func:`decode_teacher_forced`.
    mode : {"teacher", "sample", "greedy"}
        The next input: the true previous token, a token drawn from the prediction, or
        the most likely one.

    Returns
    -------
    tuple of torch.Tensor
        The logits (B, S, V) and the attention weights (B, T, S).
    """
    steps = _decoded_steps(model, x)
    hidden = _initial_hidden(model, final)
    token = torch.full((x.size(0),), BOS, dtype=x.dtype, device=x.device)
    all_logits, all_weights = [], []
    for t in range(steps):
        out, hidden = model.decoder(model.embed(token).unsqueeze(1), hidden)
        state = out[:, 0]
        context, weights = model.attention(sequence, model.attention_score(sequence, state), mask)
        logits = model.predict_word(torch.cat([context, state], dim=1))
        all_logits.append(logits)
        all_weights.append(weights)
        with torch.no_grad():
            if mode == "teacher":
                token = x[:, t]
            elif mode == "sample":
                token = torch.multinomial(F.softmax(logits.float(), dim=1), 1)[:, 0]
            else:
                token = logits.argmax(dim=1)
    return torch.stack(all_logits, 1), torch.cat(all_weights, 2)


def response_positions(tokens: torch.Tensor) -> torch.Tensor:
    """Where a batch holds the response: the status, headers and body tokens, their markers included.

    Parameters
    ----------
    tokens : torch.Tensor
        (B, T) token ids of any field layout.

    Returns
    -------
    torch.Tensor
        (B, T) bool. A text token belongs to the field of the last marker before it.
    """
    low, high = RESPONSE_MARKERS
    marker = tokens.ge(TEXT_OFFSET - len(TEXT_FIELDS)) & tokens.lt(TEXT_OFFSET)
    positions = torch.arange(tokens.size(1), device=tokens.device).expand_as(tokens)
    last = torch.where(marker, positions, torch.full_like(positions, -1)).cummax(dim=1).values
    opened = tokens.gather(1, last.clamp(min=0))
    in_response = last.ge(0) & opened.ge(low) & opened.le(high)
    text = tokens.ge(TEXT_OFFSET) | (tokens.ge(low) & tokens.le(high))
    return in_response & text


def per_step_loss(ce: torch.Tensor, valid: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
    """Sum over time steps of each step's mean cross-entropy.

    Parameters
    ----------
    ce : torch.Tensor
        (N,) cross-entropy of each valid target.
    valid : torch.Tensor
        (B, S) bool mask of valid targets (N of them are True).
    steps : torch.Tensor
        (N,) the time step of each valid target.

    Returns
    -------
    torch.Tensor
        Scalar loss; steps without any valid target add nothing (rather than NaN).
    """
    num_steps = valid.size(1)
    totals = torch.zeros(num_steps, dtype=ce.dtype, device=ce.device).index_add_(0, steps, ce)
    counts = valid.sum(dim=0).to(ce.dtype)
    return (totals / counts.clamp(min=1.0)).sum()


def per_token_loss(loss: torch.Tensor, tokens: torch.Tensor, max_decode_length: int | None = None) -> torch.Tensor:
    """A batch's :func:`per_step_loss` per decoded step: the mean cross-entropy of a token, detached.

    The loss sums each step's mean over the steps, so a batch of long records weighs
    hundreds of times a batch of short ones; per step, batches of any length compare and
    a healthy run's curve reads as one.

    Parameters
    ----------
    loss : torch.Tensor
        The batch's scalar loss.
    tokens : torch.Tensor
        (B, T) token ids of the batch.
    max_decode_length : int, optional
        The model's limit on decoded steps, when it has one.

    Returns
    -------
    torch.Tensor
        Scalar.
    """
    steps = tokens.size(1) if max_decode_length is None else min(tokens.size(1), max_decode_length)
    counted = tokens[:, :steps].ne(PAD).any(dim=0).sum().clamp(min=1)
    return loss.detach() / counted
