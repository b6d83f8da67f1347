"""Bounds on what one input file can make the program hold or do.

Two inputs cost far more than their size: a compressed file, which can expand a
thousandfold, and a checkpoint, whose hyperparameters decide how much memory the model
built from it takes before any weight is loaded. :func:`bounded_decompression` wraps a
decompressing stream and stops it once it has produced more than a set multiple of the
compressed size; :func:`check_checkpoint_shapes` compares a checkpoint's hyperparameters
with the bounds quack trains within and each of its tensors with the shape those
hyperparameters imply, by arithmetic alone, so that nothing is allocated for a
checkpoint that does not hold the weights it claims.
"""

from __future__ import annotations

import io
import os
from typing import IO, Any, Mapping

from quack.config import check_model_options

__all__ = [
    "DEFAULT_MAX_EXPANSION",
    "EXPANSION_VARIABLE",
    "MIN_ALLOWANCE",
    "ExpansionError",
    "bounded_decompression",
    "check_checkpoint_shapes",
    "expected_shapes",
    "max_expansion",
]

#: Decompressed bytes allowed per compressed byte. Quack's JSON lines compress 4 to 11
#: times (the published samples; the built-in sample 8.5), so ten times that leaves room
#: while a crafted file (deflate reaches about 1000) is stopped early.
DEFAULT_MAX_EXPANSION = 100.0

#: The environment variable that overrides :data:`DEFAULT_MAX_EXPANSION`.
EXPANSION_VARIABLE = "QUACK_MAX_EXPANSION"

#: Bytes any compressed input may expand to whatever its size, so that a small file of
#: repetitive records is never refused.
MIN_ALLOWANCE = 1 << 20

_REQUIRED_HPARAMS = ("num_embeddings", "embed_size", "hidden_size")


class ExpansionError(ValueError):
    """A compressed input that expands past its allowance; the message names it."""


def max_expansion(ratio: float | None = None, environ: Mapping[str, str] | None = None) -> float:
    """The expansion ratio in force: ``ratio`` if given, else ``QUACK_MAX_EXPANSION``, else the default.

    Raises
    ------
    ValueError
        When the ratio, or the variable, is not a number of at least 1.
    """
    if ratio is None:
        text = (os.environ if environ is None else environ).get(EXPANSION_VARIABLE, "").strip()
        if not text:
            return DEFAULT_MAX_EXPANSION
        try:
            ratio = float(text)
        except ValueError:
            ratio = float("nan")
        if not ratio >= 1 or ratio == float("inf"):
            raise ValueError(f"{EXPANSION_VARIABLE} must be a number of at least 1, got {text!r}; fix it and restart.")
        return ratio
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 1 <= ratio < float("inf"):
        raise ValueError(f"The expansion ratio must be a number of at least 1, got {ratio!r}.")
    return float(ratio)


class _CountingReader(io.RawIOBase):
    """Reads a decompressing stream and fails once it has given more than ``allowance`` bytes."""

    def __init__(self, stream: IO[bytes], allowance: int, message: str) -> None:
        self._stream = stream
        self._allowance = allowance
        self._message = message
        self._given = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        # One byte past the allowance is enough to know it is exceeded.
        wanted = min(len(buffer), self._allowance - self._given + 1)
        data = self._stream.read(wanted)
        self._given += len(data)
        if self._given > self._allowance:
            raise ExpansionError(self._message)
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._stream.close()
        super().close()


def bounded_decompression(stream: IO[bytes], compressed_size: int, source: str,
                          ratio: float | None = None) -> io.BufferedReader:
    """A decompressing stream that stops with :class:`ExpansionError` past its allowance.

    The allowance is ``ratio`` times ``compressed_size``, and never less than
    :data:`MIN_ALLOWANCE`. Reading goes on normally below it; the read that crosses it
    raises, so decompression stops within one buffer of the allowance.

    Parameters
    ----------
    stream : binary file object
        The decompressed side: a ``gzip.GzipFile``, or a ``tarfile`` member stream.
    compressed_size : int
        Bytes of the compressed input: the file's size, or the archive member's.
    source : str
        The file (or ``archive:member``) as messages should name it.
    ratio : float, optional
        Decompressed bytes allowed per compressed byte; see :func:`max_expansion`.

    Returns
    -------
    io.BufferedReader
        With ``read``, ``readline`` and ``peek``; closing it closes ``stream``.

    Raises
    ------
    ValueError
        When ``ratio`` or ``QUACK_MAX_EXPANSION`` is not a number of at least 1.
    """
    ratio = max_expansion(ratio)
    allowance = max(int(ratio * max(compressed_size, 0)), MIN_ALLOWANCE)
    message = (
        f"{source} expands to more than {ratio:g} times its compressed size when decompressed "
        f"({allowance:,} bytes), so it was not read further; if it is a genuine measurement file, "
        f"raise {EXPANSION_VARIABLE}."
    )
    return io.BufferedReader(_CountingReader(stream, allowance, message))


def expected_shapes(hparams: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """The shape of every tensor of a ``QuackAutoEncoder`` state dict with these hyperparameters.

    Follows the layers ``QuackAutoEncoder.__init__`` builds: the embedding, the
    bidirectional encoder GRU (``hidden_size // 2`` per direction), the decoder GRU and
    the word predictor (Linear, LayerNorm, Linear, LayerNorm, Linear); the attention
    modules hold no weights. Nothing is allocated.

    Parameters
    ----------
    hparams : mapping
        ``num_embeddings``, ``embed_size``, ``hidden_size`` and optionally ``layers`` (1).

    Returns
    -------
    dict
        State-dict key to shape.
    """
    vocabulary, embed, hidden = hparams["num_embeddings"], hparams["embed_size"], hparams["hidden_size"]
    layers = hparams.get("layers", 1)
    half = hidden // 2
    shapes: dict[str, tuple[int, ...]] = {"embed.weight": (vocabulary, embed)}
    for layer in range(layers):
        # A GRU stacks its three gates in one matrix; a deeper layer reads both directions.
        for suffix in ("", "_reverse"):
            shapes.update({
                f"encoder.weight_ih_l{layer}{suffix}": (3 * half, embed if layer == 0 else 2 * half),
                f"encoder.weight_hh_l{layer}{suffix}": (3 * half, half),
                f"encoder.bias_ih_l{layer}{suffix}": (3 * half,),
                f"encoder.bias_hh_l{layer}{suffix}": (3 * half,),
            })
    for layer in range(layers):
        shapes.update({
            f"decoder.weight_ih_l{layer}": (3 * hidden, embed if layer == 0 else hidden),
            f"decoder.weight_hh_l{layer}": (3 * hidden, hidden),
            f"decoder.bias_ih_l{layer}": (3 * hidden,),
            f"decoder.bias_hh_l{layer}": (3 * hidden,),
        })
    shapes.update({
        "predict_word.0.weight": (hidden, 2 * hidden), "predict_word.0.bias": (hidden,),
        "predict_word.2.weight": (hidden,), "predict_word.2.bias": (hidden,),
        "predict_word.3.weight": (hidden, hidden), "predict_word.3.bias": (hidden,),
        "predict_word.5.weight": (hidden,), "predict_word.5.bias": (hidden,),
        "predict_word.6.weight": (vocabulary, hidden), "predict_word.6.bias": (vocabulary,),
    })
    return shapes


def check_checkpoint_shapes(state_dict: Any, hparams: Any, source: str) -> None:
    """Refuse a checkpoint whose hyperparameters are out of bounds or whose tensors do not fit them.

    Run it after ``torch.load(..., weights_only=True)`` and before the model is built:
    the model's size follows from the hyperparameters alone, so a small file claiming a
    huge vocabulary would otherwise allocate gigabytes before ``load_state_dict`` failed.

    Parameters
    ----------
    state_dict : mapping
        The checkpoint's ``state_dict``: key to tensor (anything with a ``shape``).
    hparams : mapping
        The checkpoint's ``hyper_parameters``.
    source : str
        The checkpoint file as messages should name it.

    Raises
    ------
    ValueError
        One sentence naming ``source`` and what does not fit.
    """
    if not isinstance(hparams, Mapping) or not isinstance(state_dict, Mapping):
        raise ValueError(f"{source} is not a quack autoencoder checkpoint: it holds no hyperparameters and weights.")
    missing = [name for name in _REQUIRED_HPARAMS if name not in hparams]
    if missing:
        raise ValueError(f"{source} is not a quack autoencoder checkpoint: its hyperparameters lack {missing[0]}.")
    try:
        check_model_options(**{key: value for key, value in hparams.items() if isinstance(key, str)})
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"{source} claims hyperparameters quack does not build ({str(error).rstrip('.')}); "
            "use a checkpoint written by quack."
        ) from None
    expected = expected_shapes(hparams)
    problem = None
    for key in state_dict:
        if key not in expected:
            problem = f"it holds an unexpected tensor {key!r}"
            break
    else:
        for key, shape in expected.items():
            found = getattr(state_dict.get(key), "shape", None)
            if found is None:
                problem = f"it lacks the tensor {key!r}"
                break
            if tuple(found) != shape:
                problem = f"{key!r} is {_dims(tuple(found))} where its hyperparameters imply {_dims(shape)}"
                break
    if problem:
        raise ValueError(
            f"{source} does not fit the model its own hyperparameters describe: {problem}; "
            "use the checkpoint as quack wrote it."
        )


def _dims(shape: tuple[int, ...]) -> str:
    return " x ".join(map(str, shape)) or "a scalar"
