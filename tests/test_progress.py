"""Progress: a bar on a terminal, a line per tenth (or per doubling) in a log."""

from __future__ import annotations

import io

import pytest

import quack.data.ingest
from quack.cli.main import main
from quack.progress import Progress, Stages
from quack.sample.generator import write_sample


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_a_known_total_gives_a_line_per_tenth_at_most():
    log = io.StringIO()
    with Progress("quack encode", "encode", total=1000, stream=log) as progress:
        for done in range(0, 1001, 7):
            progress.update(done)
        progress.update(1000)
    said = lines(log)
    assert len(said) == 10
    assert said[0].startswith("quack encode: encode 10% (105 of 1,000 rows, ")
    assert said[-1].startswith("quack encode: encode 100% (1,000 of 1,000 rows, ")


def test_an_unknown_total_gives_a_line_each_time_the_count_doubles_and_one_at_the_end():
    log = io.StringIO()
    with Progress("quack ingest", "ingest", stream=log) as progress:
        for done in range(100, 5001, 100):
            progress.update(done)
    counts = [line.split()[3] for line in lines(log)]
    assert counts == ["100", "200", "400", "800", "1,600", "3,200", "5,000"]
    assert lines(log)[-1].startswith("quack ingest: ingest 5,000 rows, done (")


def test_a_terminal_gets_a_bar_and_no_lines():
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Terminal()
    with Progress("quack encode", "encode", total=50, stream=screen) as progress:
        for done in range(51):
            progress.update(done)
    assert "\r" in screen.getvalue() and "quack encode:" not in screen.getvalue()


def test_stages_close_each_other_and_take_their_totals_from_an_earlier_stage():
    log = io.StringIO()
    with Stages("quack ingest", totals_from={"tokenize": "ingest"}, stream=log) as stages:
        stages(300, "ingest")
        stages(600, "ingest")
        for done in (200, 400, 600):
            stages(done, "tokenize")
    assert [line.split(" (")[0] for line in lines(log)] == [
        "quack ingest: ingest 300 rows", "quack ingest: ingest 600 rows",
        "quack ingest: tokenize 30%", "quack ingest: tokenize 60%", "quack ingest: tokenize 100%"]


def test_ingest_into_a_log_prints_a_few_lines_per_stage(tmp_path, capsys, monkeypatch):
    write_sample(tmp_path / "s.json", n=300, seed=1)
    monkeypatch.setattr(quack.data.ingest, "CHUNK_BYTES", 4000)
    assert main(["ingest", str(tmp_path / "s.json"), "--out", str(tmp_path / "ds"), "--vocab-size", "400",
                 "--workers", "1"]) == 0
    said = capsys.readouterr().err.splitlines()
    for stage in ("ingest", "train", "tokenize"):
        count = sum(line.startswith(f"quack ingest: {stage} ") for line in said)
        assert 1 <= count <= 11, said
    assert sum(line.startswith("quack ingest: ingest ") for line in said) > 3


def test_a_stop_request_ends_the_work_at_the_next_report():
    from quack.progress import STOP

    progress = Progress("quack encode", "encode", total=10, stream=io.StringIO())
    progress.update(1)
    STOP.set()
    try:
        with pytest.raises(KeyboardInterrupt):
            progress.update(2)
    finally:
        STOP.clear()
    progress.update(3)
