"""`quack sample` and `quack ingest` end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from quack.cli import main
from quack.datafolder import read_info

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "censoredplanet"


def test_sample_then_ingest_in_a_real_process(tmp_path):
    assert main(["sample", "--out", str(tmp_path / "s.json"), "--n", "200", "--seed", "3"]) == 0
    assert (tmp_path / "s.truth.jsonl").is_file()
    # One real process shows the installed entry point's wiring; it pays torch's import time once.
    done = subprocess.run([sys.executable, "-m", "quack.cli", "ingest", str(tmp_path), "--out", str(tmp_path / "ds"),
                           "--vocab-size", "1500", "--max-tokens", "48"],
                          capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr
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
    assert "censored (1) 17, undetermined (0) 23, uncensored (-1) 40" in out
    assert json.loads((tmp_path / "real" / "info.json").read_text())["rows"] == 80
