"""The model and training options: defaults, bounds, and the flags generated from them."""

from __future__ import annotations

import argparse
import inspect

import pytest

from quack.autoencoder import QuackAutoEncoder
from quack.config import (
    AutoencoderConfig,
    TrainConfig,
    add_arguments,
    check_model_options,
    from_arguments,
    options,
)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    add_arguments(p, AutoencoderConfig)
    add_arguments(p, TrainConfig)
    return p


def test_flags_come_from_the_config_with_its_defaults():
    args = parser().parse_args([])
    assert from_arguments(AutoencoderConfig, args) == AutoencoderConfig()
    assert from_arguments(TrainConfig, args) == TrainConfig()
    changed = parser().parse_args(["--hidden-size", "32", "--no-bucket-by-length", "--devices", "2", "--precision", "bf16-mixed"])
    assert from_arguments(AutoencoderConfig, changed).hidden_size == 32
    train = from_arguments(TrainConfig, changed)
    assert (train.bucket_by_length, train.devices, train.precision) == (False, 2, "bf16-mixed")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(hidden_size=15), "--hidden-size must be even"),
        (dict(teacher_forcing_ratio=2.0), "--teacher-forcing-ratio must lie between 0 and 1"),
        (dict(embed_size=0), "--embed-size must lie between 1 and 4096"),
        (dict(layers=1.5), "--layers must be an integer"),
        (dict(learning_rate=0.0), "--learning-rate must lie between"),
    ],
)
def test_a_bad_model_option_is_one_sentence_naming_the_flag(options, message):
    with pytest.raises(ValueError, match=message):
        AutoencoderConfig(**options)


@pytest.mark.parametrize(
    ("options", "message"),
    [(dict(batch_size=0), "--batch-size must be at least 1"), (dict(logger="wandb"), "--logger must be one of"),
     (dict(patience=-1), "--patience must be at least 0")],
)
def test_a_bad_training_option_is_one_sentence_naming_the_flag(options, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**options)


def test_the_model_class_keeps_the_seed_defaults_and_the_config_changes_the_learning_rate_and_pooling():
    """The seed's constructor keeps its defaults; quack's config trains as the shipped checkpoint was."""
    seed = {name: p.default for name, p in inspect.signature(QuackAutoEncoder.__init__).parameters.items()
            if p.default is not inspect.Parameter.empty}
    ours = AutoencoderConfig().model_kwargs()
    assert (seed["learning_rate"], seed["pooling"]) == (1e-1, "final")
    differs = {name for name in seed if name in ours and seed[name] != ours[name]}
    assert differs == {"learning_rate", "pooling"}


def test_an_absurd_vocabulary_is_refused_before_anything_is_allocated():
    with pytest.raises(ValueError, match="num_embeddings must be an integer above 3"):
        check_model_options(64, 256, num_embeddings=3_000_000)
    with pytest.raises(ValueError, match="num_embeddings"):
        QuackAutoEncoder(num_embeddings=3_000_000, embed_size=64, hidden_size=256)


def test_every_option_has_help_and_a_label():
    for config in (AutoencoderConfig, TrainConfig):
        for field, option in options(config):
            assert option.help and option.label, field.name
