"""`quack fit`, `quack encode` and `quack classify` end to end on a small generated set."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from quack.autoencoder import QuackAutoEncoder, load_encoded
from quack.cli.main import main
from quack.data.build import build_dataset
from quack.data.datafolder import read_info
from quack.model.encoding import load_checkpoint
from quack.sample.generator import write_sample

TINY = ["--embed-size", "8", "--hidden-size", "16", "--batch-size", "32", "--logger", "none"]


@pytest.fixture(scope="module")
def sample_data(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("cli-model")
    records, _ = write_sample(work / "sample.json", n=300, seed=5)
    build_dataset([records], work / "data", vocab_size=400, max_tokens=32)
    return work / "data"


@pytest.fixture(scope="module")
def trained(sample_data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run")
    torch.set_num_threads(1)
    assert main(["fit", "--data", str(sample_data), "--out", str(out), "--max-epochs", "2", *TINY]) == 0
    return out


def test_fit_writes_a_checkpoint_that_carries_its_tokenizer(trained, sample_data, capsys):
    last = trained / "checkpoints" / "last.ckpt"
    assert last.is_file()
    raw = torch.load(last, map_location="cpu", weights_only=True)
    assert raw["epoch"] == 1
    model = QuackAutoEncoder.load_from_checkpoint(last, map_location="cpu")
    assert model.tokenizer.vocab_size == read_info(sample_data)["vocab_size"]
    assert model.hparams.hidden_size == 16


def test_fit_resumes_from_a_checkpoint(trained, sample_data, tmp_path, capsys):
    last = trained / "checkpoints" / "last.ckpt"
    code = main(
        ["fit", "--data", str(sample_data), "--out", str(tmp_path), "--max-epochs", "3", "--resume", str(last), *TINY]
    )
    assert code == 0
    resumed = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    # Two epochs came from the first run; resuming ran only the third.
    assert resumed["epoch"] == 2
    assert "reconstruction token accuracy" in capsys.readouterr().out


@pytest.mark.parametrize("layout", ["parquet", "indexed"])
def test_encode_then_classify(trained, sample_data, tmp_path, layout, capsys, caplog):
    ckpt = trained / "checkpoints" / "last.ckpt"
    out = tmp_path / "encoded"
    args = ["encode", "--data", str(sample_data), "--checkpoint", str(ckpt), "--out", str(out)]
    with caplog.at_level(logging.INFO):
        assert main([*args, "--layout", layout, "--accelerator", "cpu", "--batch-size", "64"]) == 0
    # Lightning's own notices about the run come through; its advertisements do not.
    assert any("GPU available" in r.getMessage() for r in caplog.records)
    assert not any("Tip:" in r.getMessage() for r in caplog.records)
    table = load_encoded(out)
    info = read_info(sample_data)
    assert len(table) == info["rows"]
    assert sorted(table["id"]) == list(range(info["rows"]))
    assert table["latent"].iloc[0].shape == (16,)
    summary = json.loads((out / "metadata.json").read_text())
    assert summary["total"] == info["rows"]

    assert main(["classify", "--encoded", str(out), "--epochs", "20"]) == 0
    scores = pd.read_parquet(out / "classifier" / "scores.parquet")
    assert len(scores) == info["rows"]
    assert scores["p_censored"].between(0, 1).all()
    assert scores["held_out"].sum() > 0
    assert "held-out accuracy" in capsys.readouterr().out


def test_encode_filtered_keeps_labelled_rows_only(trained, sample_data, tmp_path):
    ckpt = trained / "checkpoints" / "last.ckpt"
    out = tmp_path / "filtered"
    code = main(["encode", "--data", str(sample_data), "--checkpoint", str(ckpt), "--out", str(out), "--filtered"])
    assert code == 0
    table = load_encoded(out)
    assert set(np.unique(table["label"])) <= {1, -1}
    labels = read_info(sample_data)["rows_per_label"]
    assert len(table) == int(labels["1"]) + int(labels["-1"])


def bad(capsys, argv: list[str], expected: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert expected in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_missing_data_set(tmp_path, capsys):
    bad(capsys, ["fit", "--data", str(tmp_path / "nothing")], "is not a quack data set")


def test_option_out_of_range(sample_data, tmp_path, capsys):
    bad(capsys, ["fit", "--data", str(sample_data), "--out", str(tmp_path), "--hidden-size", "15"], "must be even")
    bad(capsys, ["fit", "--data", str(sample_data), "--teacher-forcing-ratio", "2"], "between 0 and 1")
    assert not any(tmp_path.iterdir())


def test_not_a_checkpoint(sample_data, tmp_path, capsys):
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint")
    out = tmp_path / "out"
    bad(capsys, ["encode", "--data", str(sample_data), "--checkpoint", str(junk), "--out", str(out)], "junk.ckpt")
    assert not out.exists()


def test_a_data_set_of_another_tokenizer_is_tokenized_again_as_a_fresh_ingest_would(trained, tmp_path, capsys):
    records, _ = write_sample(tmp_path / "other.json", n=120, seed=9)
    build_dataset([records], tmp_path / "other", vocab_size=300, max_tokens=16)
    ckpt = trained / "checkpoints" / "last.ckpt"
    build_dataset([records], tmp_path / "fresh", tokenizer=load_checkpoint(ckpt).tokenizer)
    encode = ["encode", "--checkpoint", str(ckpt), "--accelerator", "cpu"]
    capsys.readouterr()
    assert main([*encode, "--data", str(tmp_path / "other"), "--out", str(tmp_path / "again")]) == 0
    said = [line for line in capsys.readouterr().out.splitlines() if "tokenized by another tokenizer" in line]
    assert said == [f"{tmp_path / 'other'} was tokenized by another tokenizer than the checkpoint's; "
                    f"tokenizing its {read_info(tmp_path / 'other')['rows']:,} rows again with the checkpoint's"]
    assert main([*encode, "--data", str(tmp_path / "fresh"), "--out", str(tmp_path / "fresh-encoded")]) == 0
    assert "tokenized by another tokenizer" not in capsys.readouterr().out
    again, fresh = load_encoded(tmp_path / "again"), load_encoded(tmp_path / "fresh-encoded")
    assert again["id"].tolist() == fresh["id"].tolist() == list(range(read_info(tmp_path / "fresh")["rows"]))
    np.testing.assert_allclose(np.stack(again["latent"].to_numpy()), np.stack(fresh["latent"].to_numpy()), atol=1e-6)


def test_fit_and_encode_take_a_folder_of_parts(trained, tmp_path, capsys):
    ckpt = trained / "checkpoints" / "last.ckpt"
    tokenizer = load_checkpoint(ckpt).tokenizer
    for part, seed in (("part-1", 21), ("part-2", 22)):
        records, _ = write_sample(tmp_path / "raw" / f"{part}.json", n=40, seed=seed)
        build_dataset([records], tmp_path / "year" / part, tokenizer=tokenizer)
    rows = read_info(tmp_path / "year")["rows"]
    assert rows == sum(read_info(tmp_path / "year" / part)["rows"] for part in ("part-1", "part-2"))
    assert main(["fit", "--data", str(tmp_path / "year"), "--out", str(tmp_path / "run"), "--max-epochs", "1",
                 *TINY]) == 0
    out = tmp_path / "encoded"
    assert main(["encode", "--data", str(tmp_path / "year"), "--checkpoint", str(ckpt), "--out", str(out),
                 "--accelerator", "cpu"]) == 0
    assert "tokenized by another tokenizer" not in capsys.readouterr().out
    assert sorted(load_encoded(out)["id"]) == list(range(rows))


@pytest.mark.slow
def test_progress_into_a_pipe_is_a_few_lines_per_stage(sample_data, tmp_path):
    import os
    import subprocess
    import sys

    command = [sys.executable, "-m", "quack.cli.main"]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    fit = subprocess.run([*command, "fit", "--data", str(sample_data), "--out", str(tmp_path / "run"),
                          "--max-epochs", "3", *TINY, "--batch-size", "8"],
                         capture_output=True, text=True, env=environment, timeout=600)
    assert fit.returncode == 0, fit.stderr[-2000:]
    encode = subprocess.run([*command, "encode", "--data", str(sample_data), "--checkpoint",
                             str(tmp_path / "run" / "checkpoints" / "last.ckpt"), "--out", str(tmp_path / "encoded"),
                             "--accelerator", "cpu", "--batch-size", "4"],
                            capture_output=True, text=True, env=environment, timeout=600)
    assert encode.returncode == 0, encode.stderr[-2000:]
    for done, stage in ((fit, "quack fit: train "), (encode, "quack encode: encode ")):
        lines = [line for line in done.stderr.splitlines() if line.startswith(stage)]
        assert 2 <= len(lines) <= 11, done.stderr[-2000:]
        assert lines[-1].startswith(f"{stage}100%")
        # Lightning's own bar would redraw into the pipe, a line per step.
        assert "it/s]" not in done.stderr and "Epoch 0:" not in done.stderr


def test_output_that_exists_is_not_overwritten(trained, sample_data, tmp_path, capsys):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    ckpt = trained / "checkpoints" / "last.ckpt"
    bad(capsys, ["encode", "--data", str(sample_data), "--checkpoint", str(ckpt), "--out", str(out)], "not empty")
    assert (out / "keep.txt").read_text() == "mine"


def test_empty_data_set(tmp_path, capsys):
    empty = tmp_path / "empty.json"
    empty.write_text("")
    build_dataset([empty], tmp_path / "data", vocab_size=300, max_tokens=16)
    bad(capsys, ["fit", "--data", str(tmp_path / "data")], "has no rows")


def test_classify_without_encoded_output(tmp_path, capsys):
    bad(capsys, ["classify", "--encoded", str(tmp_path)], "No encoded output")


def test_a_second_run_into_a_used_folder_is_refused_before_training(trained, sample_data, capsys):
    before = (trained / "checkpoints" / "last.ckpt").stat().st_mtime_ns
    bad(capsys, ["fit", "--data", str(sample_data), "--out", str(trained), *TINY], "already holds the checkpoints")
    assert (trained / "checkpoints" / "last.ckpt").stat().st_mtime_ns == before


def test_overwrite_replaces_the_earlier_run_and_last_is_the_new_model(sample_data, tmp_path):
    run = ["fit", "--data", str(sample_data), "--out", str(tmp_path), "--max-steps", "2", "--max-epochs", "1", *TINY]
    assert main(run) == 0
    first = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert main([*run, "--overwrite", "--seed", "1"]) == 0
    second = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert not any(p.name.startswith("last-v") for p in (tmp_path / "checkpoints").iterdir())
    assert not torch.equal(first["state_dict"]["embed.weight"], second["state_dict"]["embed.weight"])


def test_fit_into_a_file_is_refused_before_training(sample_data, tmp_path, capsys):
    target = tmp_path / "notes.txt"
    target.write_text("mine")
    bad(capsys, ["fit", "--data", str(sample_data), "--out", str(target), *TINY], "is a file")
    assert target.read_text() == "mine"


def test_resume_with_other_model_options_is_one_sentence(trained, sample_data, tmp_path, capsys):
    last = trained / "checkpoints" / "last.ckpt"
    argv = ["fit", "--data", str(sample_data), "--out", str(tmp_path / "r"), "--resume", str(last), *TINY]
    bad(capsys, [*argv, "--hidden-size", "32"], "was trained with hidden_size 16, not 32")
    assert not (tmp_path / "r").exists()


class _Planted:
    """Pickles into a call that creates a file: what a crafted checkpoint would run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("content", ["pickle", "random", "truncated"])
def test_resume_never_unpickles_and_refuses_bad_files_in_one_sentence(
    trained, sample_data, tmp_path, capsys, monkeypatch, content
):
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    marker = tmp_path / "ran"
    crafted = tmp_path / "crafted.ckpt"
    if content == "pickle":
        torch.save({"state_dict": {}, "hyper_parameters": {"x": _Planted(marker)}}, crafted)
    elif content == "random":
        crafted.write_bytes(np.random.default_rng(0).bytes(4096))
    else:
        crafted.write_bytes((trained / "checkpoints" / "last.ckpt").read_bytes()[:5000])
    argv = ["fit", "--data", str(sample_data), "--out", str(tmp_path / "r"), "--resume", str(crafted), *TINY]
    bad(capsys, argv, "crafted.ckpt")
    assert not marker.exists()


@pytest.mark.slow
def test_sigterm_during_encode_gives_one_sentence_and_a_rerun_can_start_over(trained, sample_data, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "encoded"
    argv = [sys.executable, "-m", "quack.cli.main", "encode", "--data", str(sample_data), "--checkpoint",
            str(trained / "checkpoints" / "last.ckpt"), "--out", str(out), "--batch-size", "1", "--accelerator", "cpu"]
    process = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 120
    while not list(out.glob("part-*.parquet")) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "quack encode: interrupted after" in err and "Traceback" not in err
    assert not (out / "metadata.json").exists()
    assert main(argv[3:] + ["--overwrite"]) == 0
    assert len(load_encoded(out)) == read_info(sample_data)["rows"]
