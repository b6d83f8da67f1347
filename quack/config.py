"""The options of a model and of a training run: defaults, bounds and checks in one place.

:class:`AutoencoderConfig` and :class:`TrainConfig` are frozen dataclasses that validate
themselves. Each field carries its help text and bounds, from which the ``quack fit``
flags (:func:`add_arguments`) and the dashboard's training form are generated, so a
default or a bound is written once. Checkpoints keep plain hyperparameters:
:meth:`AutoencoderConfig.model_kwargs` is what ``QuackAutoEncoder`` receives.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from quack.schema import UNK

__all__ = [
    "AutoencoderConfig",
    "TrainConfig",
    "Option",
    "options",
    "check_model_options",
    "parse_devices",
    "add_arguments",
    "from_arguments",
]

#: Largest vocabulary a checkpoint may claim; quack's tokenizers stay far below it.
MAX_VOCABULARY = 1_000_000


@dataclass(frozen=True)
class Option:
    """What a person needs to set one option: its help, bounds and form widget.

    Attributes
    ----------
    help : str
        One line for ``--help`` and the form's tooltip.
    label : str
        The form's label.
    parse : callable
        Turns a command-line string into the value.
    low, high : number or None
        Inclusive bounds of a valid value (None: unbounded).
    form_high : number or None
        The form's upper end where it is tighter than ``high``.
    step : number or None
        The form's step.
    choices : tuple or None
        The only valid values.
    in_form : bool
        Whether the dashboard's training form shows it.
    """

    help: str
    label: str
    parse: Callable[[str], Any]
    low: float | None = None
    high: float | None = None
    form_high: float | None = None
    step: float | None = None
    choices: tuple | None = None
    in_form: bool = True


def _option(default: Any, help: str, label: str, parse: Callable[[str], Any], **more: Any) -> Any:
    return dataclasses.field(default=default, metadata={"option": Option(help, label, parse, **more)})


def _int_or_none(text: str) -> int | None:
    return None if text.lower() in ("none", "") else int(text)


def parse_devices(text: str) -> int | str:
    """A device count (``2``) or Lightning's other forms (``auto``, ``0,1``), from a command line."""
    return int(text) if text.isdigit() else text


def _none_or_text(text: str) -> str | None:
    return None if text.lower() in ("none", "") else text


def options(config: type) -> Iterator[tuple[dataclasses.Field, Option]]:
    """The fields of a config class with their :class:`Option`, in declaration order."""
    for f in dataclasses.fields(config):
        yield f, f.metadata["option"]


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _check_values(config: type, values: dict[str, Any], display: Callable[[str], str]) -> None:
    """Check the values given for fields of ``config`` against their types and bounds."""
    for f, option in options(config):
        if f.name not in values:
            continue
        value, name = values[f.name], display(f.name)
        if value is None and f.default is None:
            continue
        if option.choices is not None and value not in option.choices:
            raise ValueError(f"{name} must be one of {', '.join(map(str, option.choices))}, got {value!r}.")
        if option.low is None and option.high is None:
            continue
        wants_int = isinstance(f.default, int) or f.default is None
        if isinstance(value, bool) or not isinstance(value, int if wants_int else (int, float)):
            raise ValueError(f"{name} must be {'an integer' if wants_int else 'a number'}, got {value!r}.")
        low, high = option.low, option.high
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = f"lie between {low:g} and {high:g}" if low is not None and high is not None else (
                f"be at least {low:g}" if low is not None else f"be at most {high:g}")
            raise ValueError(f"{name} must {bounds}, got {value}.")


@dataclass(frozen=True)
class AutoencoderConfig:
    """Hyperparameters of a :class:`quack.autoencoder.QuackAutoEncoder` trained by quack.

    The vocabulary size is not here: it comes from the data set's tokenizer.
    """

    # The defaults are the shipped checkpoint's (checkpoints/quack-sample.json), the best
    # setting of the leave-fingerprints-out evaluation (BENCHMARKS.md); the seed's
    # QuackAutoEncoder keeps its own.
    embed_size: int = _option(64, "embedding size E", "Embedding size", int, low=1, high=4096, form_high=1024, step=8)
    hidden_size: int = _option(128, "latent size H; even, half per encoder direction", "Hidden size (even)", int,
                               low=2, high=8192, form_high=2048, step=8)
    layers: int = _option(1, "depth of the encoder and decoder GRUs", "Layers", int, low=1, high=8, form_high=4, step=1)
    max_decode_length: int | None = _option(None, "decode at most this many steps (default: the whole input)",
                                            "Most decoded steps", _int_or_none, low=1, in_form=False)
    # The seed's default of 0.1 makes AdamW diverge on token sequences of this size;
    # 3e-3 trains steadily on the sample and on the real shared files.
    learning_rate: float = _option(3e-3, "AdamW's initial learning rate", "Learning rate", float,
                                   low=1e-8, high=1.0, step=1e-4)
    learning_rate_min: float = _option(1e-4, "floor of the cosine learning-rate schedule", "Lowest learning rate",
                                       float, low=0.0, high=1.0, in_form=False)
    lr_max_epochs: int = _option(-1, "period of the cosine schedule in epochs (-1: the run's epochs)",
                                 "Schedule period", int, low=-1, in_form=False)
    teacher_forcing_ratio: float = _option(0.5, "chance that a training batch is decoded with teacher forcing",
                                           "Teacher forcing ratio", float, low=0.0, high=1.0, step=0.05)
    response_weight: float = _option(1.0, "weight of the response's tokens (status, headers, body) in the loss; "
                                     "the others weigh 1", "Response weight", float, low=0.0, high=100.0, step=0.5)
    pooling: str = _option("mean", "the latent: final (each direction's final state) or mean (of every token's "
                           "state)", "Pooling", str, choices=("final", "mean"), in_form=False)

    def __post_init__(self) -> None:
        _check_values(AutoencoderConfig, self.model_kwargs(), _flag)
        _check_even(self.hidden_size, "--hidden-size")

    def model_kwargs(self) -> dict[str, Any]:
        """The hyperparameters as plain values, as ``QuackAutoEncoder`` takes them."""
        return dataclasses.asdict(self)


# The optimiser's options: the seed's model takes any learning rate and schedule, so
# check_model_options holds only the network's options to their bounds.
_OPTIMISER_OPTIONS = ("learning_rate", "learning_rate_min", "lr_max_epochs")


def check_model_options(embed_size: int, hidden_size: int, *, num_embeddings: int | None = None,
                        **others: Any) -> None:
    """Raise a ValueError with one sentence when a model's hyperparameters are unusable.

    Checks what any :class:`QuackAutoEncoder` needs and the bounds of
    :class:`AutoencoderConfig`, so an absurd claim is refused before any weight is
    allocated. An option not given keeps its default, which is valid; names that are
    not options are ignored.

    Parameters
    ----------
    embed_size, hidden_size : int
        The embedding and latent sizes.
    num_embeddings : int, optional
        The vocabulary size.
    **others
        More of :class:`AutoencoderConfig`'s options (``layers``, ``pooling``, ...).
    """
    if num_embeddings is not None and (
        isinstance(num_embeddings, bool) or not isinstance(num_embeddings, int)
        or not UNK < num_embeddings <= MAX_VOCABULARY
    ):
        raise ValueError(
            f"num_embeddings must be an integer above {UNK} (the special tokens) and at most {MAX_VOCABULARY:,}, "
            f"got {num_embeddings!r}."
        )
    values = {name: value for name, value in others.items() if name not in _OPTIMISER_OPTIONS}
    values.update(embed_size=embed_size, hidden_size=hidden_size)
    _check_values(AutoencoderConfig, values, str)
    _check_even(hidden_size, "hidden_size")


def _check_even(hidden_size: int, name: str) -> None:
    if hidden_size % 2:
        raise ValueError(f"{name} must be even (half per encoder direction), got {hidden_size}.")


@dataclass(frozen=True)
class TrainConfig:
    """How a model is trained: Lightning's Trainer options and the data loading.

    Epochs, batch and patience default to the shipped checkpoint's run.
    """

    max_epochs: int = _option(7, "epochs at most", "Epochs", int, low=1, form_high=500, step=1)
    max_steps: int = _option(-1, "optimiser steps at most (-1: no limit)", "Steps at most", int, low=-1, in_form=False)
    batch_size: int = _option(64, "records per batch", "Batch size", int, low=1, form_high=1024, step=1)
    seed: int = _option(0, "seeds the split, the shuffling and the weights", "Seed", int, low=0, high=2**31 - 1, step=1)
    accelerator: str = _option("auto", "auto, cpu, gpu or mps", "Accelerator", str, in_form=False)
    devices: int | str = _option("auto", "auto, a count, or a list such as 0,1", "Devices", parse_devices, in_form=False)
    strategy: str = _option("auto", "auto, ddp, ddp_spawn, ...", "Strategy", str, in_form=False)
    num_nodes: int = _option(1, "machines taking part", "Nodes", int, low=1, in_form=False)
    precision: str | None = _option(None, "32-true, bf16-mixed, 16-mixed, ...", "Precision", _none_or_text, in_form=False)
    patience: int = _option(3, "epochs without a better validation loss before stopping early (0: off)",
                            "Patience", int, low=0, in_form=False)
    logger: str = _option("csv", "where metrics are logged, offline", "Logger", str,
                          choices=("csv", "tensorboard", "none"), in_form=False)
    num_workers: int = _option(0, "data loader worker processes", "Loader workers", int, low=0, in_form=False)
    bucket_by_length: bool = _option(True, "batch records of similar length together to cut padding",
                                     "Bucket by length", bool, in_form=False)

    def __post_init__(self) -> None:
        _check_values(TrainConfig, dataclasses.asdict(self), _flag)


def add_arguments(group: argparse._ActionsContainer, config: type) -> None:
    """Add one ``--flag`` per field of ``config`` to an argparse parser or group."""
    for f, option in options(config):
        flag = _flag(f.name)
        if f.type == "bool":
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default, help=option.help)
        else:
            default = "" if f.default is None else f" (default: {f.default})"
            group.add_argument(flag, type=option.parse, default=f.default, choices=option.choices,
                               help=option.help + default)


def from_arguments(config: type, args: argparse.Namespace) -> Any:
    """Build ``config`` from parsed arguments; a bad value raises one sentence naming the flag."""
    return config(**{f.name: getattr(args, f.name) for f, _ in options(config)})
