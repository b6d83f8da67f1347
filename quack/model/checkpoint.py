"""Reading a checkpoint safely: weights only, and only when it holds what it claims.

A checkpoint's hyperparameters decide how much memory the model built from it takes
before any weight is loaded. :func:`read_checkpoint` loads a file with ``weights_only``
semantics and :func:`check_checkpoint_shapes` compares its hyperparameters with the
bounds quack trains within and each of its tensors with the shape those hyperparameters
imply, by arithmetic alone, so that nothing is allocated for a checkpoint that does not
hold the weights it claims.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import torch

from quack.config import check_model_options

__all__ = ["REQUIRED_HPARAMS", "read_checkpoint", "expected_shapes", "check_checkpoint_shapes",
           "check_checkpoint_tokenizer"]

#: Hyperparameters a checkpoint must carry for the model to be rebuilt from it.
REQUIRED_HPARAMS = ("num_embeddings", "embed_size", "hidden_size")


def read_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """A quack checkpoint's contents, loaded without unpickling arbitrary objects and checked.

    Parameters
    ----------
    path : str or os.PathLike
        The checkpoint file; ``~`` is expanded.
    map_location : Any
        Where to put the weights, as for ``torch.load``.

    Returns
    -------
    dict
        The checkpoint: ``hyper_parameters`` within quack's bounds and a ``state_dict``
        whose every tensor has the shape they imply, with whatever else it stores.

    Raises
    ------
    ValueError
        When the file is missing, unreadable or not a quack autoencoder checkpoint.
    """
    file = Path(path).expanduser()
    if not file.is_file():
        raise ValueError(f"Checkpoint {file} does not exist.")
    try:
        checkpoint = torch.load(file, map_location=map_location, weights_only=True)
    except Exception as error:
        raise ValueError(f"{file} is not a readable checkpoint ({error.__class__.__name__}).") from None
    hparams = checkpoint.get("hyper_parameters") if isinstance(checkpoint, dict) else None
    state = checkpoint.get("state_dict") if isinstance(checkpoint, dict) else None
    if not isinstance(hparams, dict) or not isinstance(state, dict) \
            or any(name not in hparams for name in REQUIRED_HPARAMS):
        raise ValueError(f"{file} is not a quack autoencoder checkpoint.")
    # The claimed sizes are checked against the stored tensors before the model is
    # built, so a small file cannot make the server allocate gigabytes.
    check_checkpoint_shapes(state, hparams, str(file))
    check_checkpoint_tokenizer(checkpoint.get("quack_tokenizer"), hparams["num_embeddings"], str(file))
    return checkpoint


def check_checkpoint_tokenizer(document: Any, num_embeddings: int, source: str) -> None:
    """Refuse a checkpoint's tokenizer that claims more than quack's bounds or than the model holds.

    The tokenizer sets every record's length (``max_tokens``, at most
    :data:`quack.data.tokenizer.MAX_MAX_TOKENS`) and its ids must all lie below the
    model's vocabulary, so both are checked before any record is encoded with it.

    Parameters
    ----------
    document : str or None
        The checkpoint's ``quack_tokenizer`` (:meth:`quack.data.tokenizer.QuackTokenizer.to_json`);
        None when it carries none.
    num_embeddings : int
        The model's vocabulary size, already checked.
    source : str
        The file, named in the message.

    Raises
    ------
    ValueError
        One sentence naming the file and the claim.
    """
    from quack.data.tokenizer import QuackTokenizer

    if document is None:
        return
    if not isinstance(document, str):
        raise ValueError(f"{source} is not a quack autoencoder checkpoint: its tokenizer is not a document.")
    try:
        tokenizer = QuackTokenizer.from_json(document)
    except ValueError as error:
        raise ValueError(f"The tokenizer in {source} is refused: {error}") from None
    if tokenizer.vocab_size > num_embeddings:
        raise ValueError(f"The tokenizer in {source} has {tokenizer.vocab_size:,} tokens, more than the model's "
                         f"{num_embeddings:,}; it was not saved with this model.")


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
    missing = [name for name in REQUIRED_HPARAMS if name not in hparams]
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
