"""The shipped checkpoint loads safely and reproduces its recorded scores on the sample."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from quack.model.encoding import SHIPPED_CHECKPOINT, load_checkpoint
from quack.data.vocab import DEFAULT_FIELDS

ROOT = Path(__file__).resolve().parents[1]
RECORD = json.loads(SHIPPED_CHECKPOINT.with_suffix(".json").read_text())


def load_script():
    spec = importlib.util.spec_from_file_location("train_sample_checkpoint", ROOT / "scripts" / "train_sample_checkpoint.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_checkpoint_is_small_weights_only_and_carries_its_tokenizer():
    assert SHIPPED_CHECKPOINT.stat().st_size < 20 * 2**20
    raw = torch.load(SHIPPED_CHECKPOINT, map_location="cpu", weights_only=True)
    assert "optimizer_states" not in raw
    assert isinstance(raw["quack_tokenizer"], str)
    model = load_checkpoint(SHIPPED_CHECKPOINT)
    assert model.tokenizer.vocab_size == model.hparams.num_embeddings
    assert model.hparams.hidden_size == RECORD["model"]["hidden_size"]
    assert list(model.tokenizer.fields) == RECORD["tokenizer"].get("fields", list(DEFAULT_FIELDS))
    assert model.hparams.get("pooling", "final") == RECORD["model"].get("pooling", "final")


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """One folder for both evaluations, so the sample's data set is built once."""
    return tmp_path_factory.mktemp("shipped")


@pytest.mark.slow
def test_reproduces_recorded_held_out_scores(work):
    torch.set_num_threads(2)
    figures = load_script().evaluate(SHIPPED_CHECKPOINT, work)
    recorded = RECORD["evaluation"]
    assert figures["rows"] == recorded["rows"]
    assert figures["rows_per_label"] == recorded["rows_per_label"]
    for name in ("latent_classifier", "bag_of_tokens_logistic_regression"):
        assert figures[name]["accuracy"] == pytest.approx(recorded[name]["accuracy"], abs=0.01)
        assert figures[name]["f1"] == pytest.approx(recorded[name]["f1"], abs=0.03)
        assert figures[name]["discovery_top50"] == pytest.approx(recorded[name]["discovery_top50"], abs=0.1)


@pytest.mark.slow
def test_reproduces_recorded_leave_fingerprints_out_figures(work):
    torch.set_num_threads(2)
    # The distance to censored latents stands for the latent methods: it needs no training per fold.
    figures = load_script().leave_fingerprints_out(SHIPPED_CHECKPOINT, work, methods=["censored_distance"])
    recorded = RECORD["leave_fingerprints_out"]
    assert figures["folds"] == recorded["folds"]
    assert figures["purity"] == pytest.approx(recorded["purity"], abs=0.01)
    assert figures["unknown_blockpage_purity"] == pytest.approx(recorded["unknown_blockpage_purity"], abs=0.01)
    latent, expected = figures["methods"]["censored_distance"], recorded["methods"]["censored_distance"]
    assert latent["ap"] == pytest.approx(expected["ap"], abs=0.02)
    assert latent["truth_ap"] == pytest.approx(expected["truth_ap"], abs=0.02)
