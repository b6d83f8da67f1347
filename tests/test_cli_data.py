"""`quack sample` and `quack ingest` end to end."""

from __future__ import annotations

import gzip
import io
import json
import random
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from quack.cli.main import main
from quack.data.datafolder import read_info

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "censoredplanet"


def test_sample_then_ingest_in_a_real_process(tmp_path):
    assert main(["sample", "--out", str(tmp_path / "s.json"), "--n", "200", "--seed", "3"]) == 0
    assert (tmp_path / "s.truth.jsonl").is_file()
    # One real process shows the installed entry point's wiring; it pays torch's import time once.
    done = subprocess.run([sys.executable, "-m", "quack.cli.main", "ingest", str(tmp_path), "--out", str(tmp_path / "ds"),
                           "--vocab-size", "1500", "--max-tokens", "48"],
                          capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr
    # Into a pipe, progress is a line or so per stage, never a bar redrawn line after line.
    stages = [line.split()[2] for line in done.stderr.splitlines() if line.startswith("quack ingest: ")]
    assert stages == ["ingest", "train", "tokenize"], done.stderr
    info = read_info(tmp_path / "ds")
    assert f"rows {info['rows']}" in done.stdout
    assert f"censored (1) {info['rows_per_label']['1']}" in done.stdout
    assert "tokens per row: mean" in done.stdout and "control probe" in done.stdout


def test_list_problems_names_file_and_line(tmp_path, capsys):
    assert main(["sample", "--out", str(tmp_path / "raw" / "s.json"), "--n", "50"]) == 0
    with open(tmp_path / "raw" / "s.json", "a", encoding="utf-8") as f:
        f.write("{broken\n")
    code = main(["ingest", str(tmp_path / "raw" / "s.json"), "--out", str(tmp_path / "ds"), "--vocab-size", "1500",
                 "--list-problems"])
    out = capsys.readouterr().out
    assert code == 0
    assert "not JSON 1" in out and "s.json:51: not JSON" in out


def test_reuses_a_tokenizer_file(tmp_path, capsys):
    main(["sample", "--out", str(tmp_path / "s.json"), "--n", "60"])
    main(["ingest", str(tmp_path / "s.json"), "--out", str(tmp_path / "a"), "--vocab-size", "1500"])
    main(["ingest", str(tmp_path / "s.json"), "--out", str(tmp_path / "b"), "--tokenizer-from",
          str(tmp_path / "a" / "tokenizer.json")])
    assert (tmp_path / "a" / "tokenizer.json").read_text() == (tmp_path / "b" / "tokenizer.json").read_text()


@pytest.mark.parametrize("argv,message", [
    (["ingest", "{tmp}/missing.json", "--out", "{tmp}/ds"], "does not exist"),
    (["ingest", "{tmp}/s.json", "--out", "{tmp}/ds", "--vocab-size", "100"], "--vocab-size"),
    (["ingest", "{tmp}/s.truth.jsonl", "--out", "{tmp}/ds"], "no measurements"),
    (["ingest", "{tmp}/s.json", "--out", "{tmp}/ds", "--max-tokens", "2"], "--max-tokens"),
    (["ingest", "{tmp}/s.json", "--out", "{tmp}/ds", "--signatures", "{tmp}/nope.json"], "nope.json"),
    (["ingest", "{tmp}/s.json", "--out", "{tmp}/ds", "--tokenizer-from", "{tmp}/nope.ckpt"], "nope.ckpt"),
    (["ingest", "{tmp}/s.json", "--out", "{tmp}/ds", "--max-expansion", "0.5"], "--max-expansion must be"),
    (["ingest", "{tmp}/s.json", "--out", "{tmp}/ds", "--workers", "0"], "--workers must be at least 1, got 0"),
    (["sample", "--out", "{tmp}/s.txt"], ".json"),
    (["sample", "--out", "{tmp}/t.json", "--n", "0"], "n must be"),
])
def test_errors_are_one_sentence_and_exit_2(tmp_path, capsys, argv, message):
    main(["sample", "--out", str(tmp_path / "s.json"), "--n", "20"])
    capsys.readouterr()
    code = main([a.format(tmp=tmp_path) for a in argv])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "ds").exists()


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared Censored Planet samples not present")
def test_ingest_real_files_with_their_signatures(tmp_path, capsys):
    code = main(["ingest", str(SHARED), "--out", str(tmp_path / "real"), "--vocab-size", "1500",
                 "--signatures", str(SHARED / "blockpage_signatures.json"), str(SHARED / "false_positive_signatures.json")])
    assert code == 0
    out = capsys.readouterr().out
    assert "files 8, lines 32, rows 80" in out
    # The whole-response rule (the default): the counts of tests/test_labels.py's SHARED_FULL_LABELS.
    assert "censored (1) 8, undetermined (0) 23, uncensored (-1) 49" in out
    assert json.loads((tmp_path / "real" / "info.json").read_text())["rows"] == 80


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_a_truncated_archive_fails_naming_it_unless_partial_rows_are_kept(tmp_path, capsys):
    main(["sample", "--out", str(tmp_path / "s.json"), "--n", "400"])
    lines = (tmp_path / "s.json").read_bytes().splitlines(keepends=True)
    rnd = random.Random(0)
    archive = tmp_path / "CP_Quack-http.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for i in range(4):
            data = b"".join(rnd.sample(lines, len(lines)))
            info = tarfile.TarInfo(f"d{i}/results.json")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    whole = archive.read_bytes()
    archive.write_bytes(whole[: len(whole) // 2])
    capsys.readouterr()
    assert main(["ingest", str(archive), "--out", str(tmp_path / "ds"), "--vocab-size", "1500"]) == 2
    err = one_line_error(capsys)
    assert f"quack ingest: {archive} ends early or is corrupt" in err and "--keep-partial" in err
    assert not (tmp_path / "ds").exists()
    assert main(["ingest", str(archive), "--out", str(tmp_path / "ds"), "--vocab-size", "1500", "--keep-partial"]) == 0
    assert "truncated file 1" in capsys.readouterr().out
    assert 0 < read_info(tmp_path / "ds")["rows"]


def test_a_file_that_expands_too_far_is_refused_unless_allowed(tmp_path, capsys, monkeypatch):
    main(["sample", "--out", str(tmp_path / "s.json"), "--n", "1"])
    line = (tmp_path / "s.json").read_bytes().splitlines(keepends=True)[0]
    bomb = tmp_path / "results.json.gz"
    bomb.write_bytes(gzip.compress(line * (2 * 2**20 // len(line))))
    capsys.readouterr()
    argv = ["ingest", str(bomb), "--out", str(tmp_path / "ds"), "--vocab-size", "1500"]
    assert main(argv) == 2
    err = one_line_error(capsys)
    assert f"{bomb} expands to more than 100 times" in err and "--max-expansion" in err
    assert not (tmp_path / "ds").exists()
    assert main(argv + ["--max-expansion", "100000"]) == 0
    monkeypatch.setenv("QUACK_MAX_EXPANSION", "100000")
    assert main(argv) == 0


def test_an_empty_signature_file_is_named_in_a_warning(tmp_path, capsys):
    main(["sample", "--out", str(tmp_path / "s.json"), "--n", "40"])
    (tmp_path / "blockpage_signatures.json").write_text("")
    capsys.readouterr()
    code = main(["ingest", str(tmp_path / "s.json"), "--out", str(tmp_path / "ds"), "--vocab-size", "1500",
                 "--signatures", str(tmp_path / "blockpage_signatures.json")])
    captured = capsys.readouterr()
    assert code == 0 and "censored (1) 0" in captured.out
    warning, *progress = captured.err.strip().splitlines()
    assert warning == (
        f"quack ingest: warning: The signature file {tmp_path / 'blockpage_signatures.json'} holds no fingerprints; "
        "no record is labelled by it, so check that it is the file you meant."
    )
    assert [line.split()[2] for line in progress] == ["ingest", "train", "tokenize"]


def test_out_holding_more_than_a_data_set_is_left_alone(tmp_path, capsys):
    main(["sample", "--out", str(tmp_path / "s.json"), "--n", "40"])
    argv = ["ingest", str(tmp_path / "s.json"), "--out", str(tmp_path / "ds"), "--vocab-size", "1500"]
    assert main(argv) == 0
    (tmp_path / "ds" / "thesis.tex").write_text("precious")
    capsys.readouterr()
    assert main(argv) == 2
    assert "it holds thesis.tex" in one_line_error(capsys)
    assert (tmp_path / "ds" / "thesis.tex").read_text() == "precious"


def test_workers_write_the_data_set_one_process_writes(tmp_path, capsys, monkeypatch):
    for seed in range(3):
        main(["sample", "--out", str(tmp_path / "raw" / f"s{seed}.json"), "--n", "150", "--seed", str(seed)])
    # Chunks small enough that the three files spread over both workers.
    monkeypatch.setattr("quack.data.ingest.CHUNK_BYTES", 20_000)
    outputs = []
    for workers in ("1", "2"):
        capsys.readouterr()
        assert main(["ingest", str(tmp_path / "raw"), "--out", str(tmp_path / workers), "--vocab-size", "400",
                     "--list-problems", "--workers", workers]) == 0
        outputs.append(capsys.readouterr().out.replace(str(tmp_path / workers), "OUT"))
    assert outputs[0] == outputs[1]
    assert (tmp_path / "1" / "rows.parquet").read_bytes() == (tmp_path / "2" / "rows.parquet").read_bytes()
