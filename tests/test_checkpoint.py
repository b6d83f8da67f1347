"""Checkpoints that must hold what they claim: bounded hyperparameters, tensors of the implied shapes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from quack.model.checkpoint import check_checkpoint_shapes, expected_shapes

REPO = Path(__file__).resolve().parents[1]
SHIPPED_CHECKPOINT = REPO / "checkpoints" / "quack-sample.ckpt"


@pytest.fixture(scope="module")
def shipped():
    torch = pytest.importorskip("torch")
    return torch.load(SHIPPED_CHECKPOINT, map_location="cpu", weights_only=True)


def test_shipped_checkpoint_passes(shipped):
    check_checkpoint_shapes(shipped["state_dict"], shipped["hyper_parameters"], str(SHIPPED_CHECKPOINT))


def test_shapes_match_a_real_model_with_several_layers():
    from quack.model.module import QuackAutoEncoder

    hparams = dict(num_embeddings=40, embed_size=6, hidden_size=10, layers=3)
    state = QuackAutoEncoder(**hparams).state_dict()
    assert {key: tuple(value.shape) for key, value in state.items()} == expected_shapes(hparams)
    check_checkpoint_shapes(state, hparams, "deep.ckpt")


CRAFTED = """
import resource, sys, torch
from quack.model.checkpoint import check_checkpoint_shapes
state = torch.load(sys.argv[1], map_location="cpu", weights_only=True)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    check_checkpoint_shapes(state["state_dict"], state["hyper_parameters"], sys.argv[1])
except ValueError as error:
    print(error)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024, "MB")
"""


@pytest.mark.parametrize("claimed, refusal", [
    (3_000_000, "claims hyperparameters quack does not build (num_embeddings must be"),
    (900_000, "'embed.weight' is 3309 x 64 where its hyperparameters imply 900000 x 64"),
])
def test_small_checkpoint_claiming_a_huge_vocabulary_is_refused_without_allocating(tmp_path, shipped, claimed,
                                                                                   refusal):
    torch = pytest.importorskip("torch")
    crafted = tmp_path / "huge.ckpt"
    torch.save({"state_dict": shipped["state_dict"],
                "hyper_parameters": dict(shipped["hyper_parameters"], num_embeddings=claimed)}, crafted)
    assert crafted.stat().st_size < 5 << 20
    run = subprocess.run([sys.executable, "-c", CRAFTED, str(crafted)], cwd=REPO, capture_output=True, text=True,
                         timeout=120, check=True)
    message, growth = run.stdout.strip().splitlines()
    assert message.startswith(str(crafted)) and refusal in message
    assert int(growth.split()[0]) < 200


@pytest.mark.parametrize("change, refusal", [
    (lambda s: s.pop("decoder.bias_hh_l0"), "lacks the tensor 'decoder.bias_hh_l0'"),
    (lambda s: s.update(extra=s["embed.weight"]), "holds an unexpected tensor 'extra'"),
    (lambda s: s.update({"predict_word.6.bias": s["predict_word.6.bias"][:10]}),
     "'predict_word.6.bias' is 10 where its hyperparameters imply 3309"),
])
def test_tensors_that_do_not_fit_are_named(shipped, change, refusal):
    state = dict(shipped["state_dict"])
    change(state)
    with pytest.raises(ValueError, match=f"^model.ckpt does not fit .*{refusal}"):
        check_checkpoint_shapes(state, shipped["hyper_parameters"], "model.ckpt")


@pytest.mark.parametrize("hparams, refusal", [
    ([], "holds no hyperparameters and weights"),
    ({"embed_size": 64, "hidden_size": 128}, "hyperparameters lack num_embeddings"),
    ({"num_embeddings": 100, "embed_size": 64, "hidden_size": 127}, "hidden_size must be even"),
    ({"num_embeddings": 100, "embed_size": 64, "hidden_size": 128, "layers": 1000}, "layers must lie between"),
    ({"num_embeddings": 100.5, "embed_size": 64, "hidden_size": 128}, "num_embeddings must be an integer"),
])
def test_unusable_hyperparameters_are_refused_by_name(hparams, refusal):
    with pytest.raises(ValueError, match=f"^odd.ckpt .*{refusal}"):
        check_checkpoint_shapes({}, hparams, "odd.ckpt")
