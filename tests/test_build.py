"""Building a data set folder: two passes over the input, counts, and safe replacement."""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import quack.data.ingest
from quack.data.build import build_dataset
from quack.data.datafolder import DataFolder, read_info, read_rows
from quack.data.ingest import iter_rows
from quack.data.records import IngestStats
from quack.data.swap import renameat2
from quack.data.tokenizer import QuackTokenizer
from quack.data.vocab import FIELD_CHARS
from quack.errors import QuackInputError
from quack.sample.generator import write_sample
from quack.schema import ROW_SCHEMA, columns

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "censoredplanet"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="shared Censored Planet samples not present")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("ds")
    records, truth = write_sample(root / "raw" / "sample.json", n=300, seed=5)
    calls = []
    info = build_dataset(records, root / "data", vocab_size=1600, max_tokens=64,
                         progress=lambda done, stage: calls.append((done, stage)))
    return root / "data", records, truth, info, calls


def test_info_counts_match_the_rows(built):
    data, _, _, info, calls = built
    rows = read_rows(data)
    assert read_info(data) == info
    assert info["rows"] == len(rows) > 300
    assert info["rows_per_label"] == {str(k): int((rows["label"] == k).sum()) for k in (-1, 0, 1)}
    assert info["longest_sequence"] == rows["n_tokens"].max()
    assert info["mean_tokens"] == pytest.approx(rows["n_tokens"].mean())
    assert info["sources"] == ["sample.json"] and info["skipped"]["control probe"] > 0
    assert {stage for _, stage in calls} == {"ingest", "train", "tokenize"}
    assert calls[-1] == (info["rows"], "tokenize")


def test_rows_round_trip_and_join_with_truth(built):
    data, records, truth, info, _ = built
    table = pq.read_table(data / "rows.parquet")
    token_type = table.schema.field("tokens").type
    assert token_type.num_fields == 1 and token_type.value_type == pa.int32()
    rows = read_rows(data)
    assert rows["id"].tolist() == list(range(len(rows)))
    tokenizer = QuackTokenizer.load(data / "tokenizer.json")
    raw = list(iter_rows(records))
    assert [list(t) for t in rows["tokens"]] == tokenizer.encode_rows(raw)
    assert (rows["n_tokens"] == rows["tokens"].map(len)).all()
    assert all(max(t) < info["vocab_size"] for t in rows["tokens"])
    truths = {(t["source"], t["line"], t["probe"]) for t in map(json.loads, truth.read_text().splitlines())}
    assert set(zip(rows["source"], rows["line"], rows["probe"])) == truths
    assert rows["body"].str.len().max() <= FIELD_CHARS


def test_reused_tokenizer_is_kept(built, tmp_path):
    data, records, *_ = built
    tokenizer = QuackTokenizer.load(data / "tokenizer.json")
    info = build_dataset(records, tmp_path / "again", tokenizer=tokenizer)
    assert (tmp_path / "again" / "tokenizer.json").read_text() == tokenizer.to_json()
    assert info["vocab_size"] == tokenizer.vocab_size


def test_failed_build_leaves_old_data_set_untouched(built, tmp_path):
    data, records, *_ = built
    out = tmp_path / "out"
    build_dataset(records, out, vocab_size=1600, max_tokens=32)
    before = (out / "rows.parquet").read_bytes()
    with pytest.raises(QuackInputError, match=r"missing\.json does not exist"):
        build_dataset([records, tmp_path / "missing.json"], out)
    assert (out / "rows.parquet").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"], "no temporary folder is left behind"
    build_dataset(records, out, vocab_size=1600, max_tokens=16)
    assert read_info(out)["max_tokens"] == 16


def test_refuses_foreign_output_and_empty_input_when_asked(tmp_path):
    foreign = tmp_path / "home"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    empty = tmp_path / "empty.json"
    empty.write_text("\n")
    with pytest.raises(QuackInputError, match=r"home is not a quack data set that can be replaced \(it holds thesis\.tex\)"):
        build_dataset(empty, foreign)
    with pytest.raises(QuackInputError, match="no measurements"):
        build_dataset(empty, tmp_path / "new", allow_empty=False)
    assert not (tmp_path / "new").exists() and (foreign / "thesis.tex").read_text() == "precious"


def test_anomalies_only(built, tmp_path):
    _, records, *_ = built
    build_dataset(records, tmp_path / "a", vocab_size=1600, anomalies_only=True)
    rows = read_rows(tmp_path / "a", columns=["anomaly", "matches_template"])
    assert rows["anomaly"].all() and not rows["matches_template"].any()


@needs_shared
def test_real_files_with_shared_signatures(tmp_path):
    info = build_dataset(SHARED, tmp_path / "real", vocab_size=1600, max_tokens=64,
                         signatures=[str(SHARED / "blockpage_signatures.json"), str(SHARED / "false_positive_signatures.json")])
    # The sums of the per-file counts of the whole-response rule (the default) in tests/test_labels.py.
    assert info["rows"] == 80
    assert info["rows_per_label"] == {"-1": 49, "0": 23, "1": 8}
    assert len(info["sources"]) == 8


def test_stored_columns_are_the_row_schema(built):
    data, *_ = built
    schema = pq.read_schema(DataFolder.open(data).rows_path)
    assert schema.names == list(columns())
    assert [field.type for field in schema] == [field.type for field in ROW_SCHEMA]


def test_text_columns_are_cut_and_flags_never_missing(built):
    data, *_ = built
    rows = read_rows(data, columns=columns("text") + columns("flag"))
    assert all(rows[name].str.len().max() <= FIELD_CHARS for name in columns("text"))
    assert rows[list(columns("flag"))].notna().all().all()


def test_a_data_set_with_anything_beside_it_is_not_replaced(built, tmp_path):
    data, records, *_ = built
    out = tmp_path / "thesis"
    build_dataset(records, out, vocab_size=1600, max_tokens=32)
    (out / "thesis.tex").write_text("precious")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(QuackInputError, match=rf"{out} is not a quack data set that can be replaced \(it holds thesis\.tex\)"):
        build_dataset(records, out, vocab_size=1600, max_tokens=16)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thesis"]


# A build in a child process that dies (os._exit, as SIGKILL would leave it) at a chosen step.
KILLED_BUILD = textwrap.dedent("""
    import os, sys
    from pathlib import Path
    import quack.data.build as build
    import quack.data.swap as swap

    records, out, step = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    if step == "between renames":
        swap.exchange = lambda first, second: False
        real_rename = os.rename

        def rename(source, target):
            real_rename(source, target)
            if Path(source) == out:
                os._exit(9)

        os.rename = rename
    elif step == "after the swap":
        real_exchange = swap.exchange

        def exchange(first, second):
            assert real_exchange(first, second), "this file system cannot swap folders"
            os._exit(9)

        swap.exchange = exchange
    elif step == "while tokenizing":
        def progress(done, stage):
            if stage == "tokenize":
                os._exit(9)

    build.build_dataset(records, out, vocab_size=1600, max_tokens=16,
                        progress=progress if step == "while tokenizing" else None)
""")


def killed_build(records: Path, out: Path, step: str) -> None:
    done = subprocess.run([sys.executable, "-c", KILLED_BUILD, str(records), str(out), step], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 9, done.stderr[-2000:]


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_a_build_killed_between_the_renames_is_restored_by_the_next_one(built, tmp_path):
    data, records, *_ = built
    out = tmp_path / "ds"
    build_dataset(records, out, vocab_size=1600, max_tokens=32)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    killed_build(records, out, "between renames")
    assert not out.exists()
    assert [re.sub(r"-\d+-[0-9a-f]{8}$", "", name) for name in hidden(tmp_path)] == [".ds.building", ".ds.old"]
    # The next build, even one that fails, first puts the old data set back and tidies up.
    with pytest.raises(QuackInputError, match="does not exist"):
        build_dataset([records, tmp_path / "missing.json"], out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert hidden(tmp_path) == []


@pytest.mark.skipif(renameat2() is None, reason="no renameat2 on this system")
def test_a_build_killed_after_the_swap_leaves_the_new_data_set(built, tmp_path):
    data, records, *_ = built
    out = tmp_path / "ds"
    build_dataset(records, out, vocab_size=1600, max_tokens=32)
    killed_build(records, out, "after the swap")
    assert read_info(out)["max_tokens"] == 16
    assert len(hidden(tmp_path)) == 1, "the old data set waits in the building folder"
    build_dataset(records, out, vocab_size=1600, max_tokens=24)
    assert read_info(out)["max_tokens"] == 24 and hidden(tmp_path) == []


def test_folders_of_killed_builds_are_removed_and_live_ones_kept(built, tmp_path):
    data, records, *_ = built
    out = tmp_path / "ds"
    killed_build(records, out, "while tokenizing")
    assert not out.exists() and len(hidden(tmp_path)) == 1
    live = tmp_path / f".ds.building-{os.getpid()}-0123abcd"
    live.mkdir()
    other = tmp_path / ".other.building-1-0123abcd"
    other.mkdir()
    build_dataset(records, out, vocab_size=1600, max_tokens=16)
    assert hidden(tmp_path) == [live.name, other.name]
    assert DataFolder.open(out).n_rows > 0


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_the_data_set_folder_follows_the_umask(built, tmp_path, umask):
    _, records, *_ = built
    previous = os.umask(umask)
    try:
        build_dataset(records, tmp_path / "ds", vocab_size=1600, max_tokens=16)
    finally:
        os.umask(previous)
    assert (tmp_path / "ds").stat().st_mode & 0o777 == 0o777 & ~umask


def test_a_disk_error_names_the_output_and_keeps_the_old_data_set(built, tmp_path, monkeypatch):
    _, records, *_ = built
    out = tmp_path / "ds"
    build_dataset(records, out, vocab_size=1600, max_tokens=32)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def full_disk(self, path):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(QuackTokenizer, "save", full_disk)
    with pytest.raises(QuackInputError, match=rf"^Cannot write the data set {out}: No space left on device; free some"):
        build_dataset(records, out, vocab_size=1600, max_tokens=16)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before and hidden(tmp_path) == []

    def read_only(path, mode=0o777):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(os, "mkdir", read_only)
    with pytest.raises(QuackInputError, match=rf"^Cannot write the data set {tmp_path / 'new'}: Permission denied"):
        build_dataset(records, tmp_path / "new")


def test_an_output_given_as_a_link_builds_where_it_points(built, tmp_path):
    _, records, *_ = built
    target = tmp_path / "disk" / "target"
    build_dataset(records, target, vocab_size=1600, max_tokens=32)
    (tmp_path / "link").symlink_to(target)
    build_dataset(records, tmp_path / "link", vocab_size=1600, max_tokens=16)
    assert (tmp_path / "link").is_symlink() and read_info(target)["max_tokens"] == 16
    assert hidden(tmp_path) == [] and hidden(tmp_path / "disk") == []


@pytest.mark.slow
def test_workers_build_the_same_data_set_as_one_process(tmp_path, monkeypatch):
    raw = tmp_path / "raw"
    for seed in range(3):
        write_sample(raw / f"s{seed}.json", n=120, seed=seed)
    lines = (raw / "s0.json").read_bytes()
    with tarfile.open(raw / "scan.tar.gz", "w:gz") as tar:
        for name in ("a/results.json", "b/results.json"):
            member = tarfile.TarInfo(name)
            member.size = len(lines)
            tar.addfile(member, io.BytesIO(lines))
    with open(raw / "s1.json", "ab") as f:
        f.write(b"{broken\n" + b"x" * 3000 + b"\n")
    damaged = gzip.compress(lines)
    (raw / "t.json.gz").write_bytes(damaged[: len(damaged) * 2 // 3])
    # Small chunks and a low line bound, so that the input spreads over many chunks and
    # every kind of problem the reader and the parser count falls between them.
    monkeypatch.setattr(quack.data.ingest, "CHUNK_BYTES", 30_000)
    monkeypatch.setattr(quack.data.ingest, "MAX_LINE_BYTES", 2048)
    built = {}
    for workers, tokenizer in ((1, None), (2, None), (1, "given"), (2, "given")):
        given = QuackTokenizer.load(tmp_path / "1-None" / "tokenizer.json") if tokenizer else None
        stats = IngestStats(keep_problems=True)
        out = tmp_path / f"{workers}-{tokenizer}"
        info = build_dataset(raw, out, vocab_size=600, max_tokens=32, keep_partial=True, stats=stats,
                             workers=workers, tokenizer=given)
        built[workers, tokenizer] = pq.read_table(out / "rows.parquet"), stats, info
    first_rows, first_stats, first_info = built[1, None]
    for rows, stats, info in built.values():
        assert rows.equals(first_rows) and stats == first_stats and info == first_info
    assert {reason.split(":")[0] for _, _, reason in first_stats.problems} == {
        "not JSON", "line too long", "truncated file"}
    assert first_info["sources"] == ["s0.json", "s1.json", "s2.json", "scan.tar.gz:a/results.json",
                                     "scan.tar.gz:b/results.json", "t.json.gz"]
    with pytest.raises(QuackInputError, match=r"t\.json\.gz ends early or is corrupt"):
        build_dataset(raw, tmp_path / "refused", workers=2)
    assert not (tmp_path / "refused").exists()


def test_fields_of_a_new_tokenizer_shape_every_row(built, tmp_path, capsys):
    from quack.cli.main import main

    _, records, *_ = built
    code = main(["ingest", str(records), "--out", str(tmp_path / "response"), "--vocab-size", "600",
                 "--max-tokens", "32", "--workers", "1", "--fields", "status,headers", "body", "error"])
    assert code == 0
    tokenizer = QuackTokenizer.load(tmp_path / "response" / "tokenizer.json")
    assert tokenizer.fields == ("status", "headers", "body", "error")
    rows = read_rows(tmp_path / "response")
    for tokens in rows["tokens"][:50]:
        fields = tokenizer.token_fields(tokens)
        assert fields[-2:] == ["error", "special"] and not {"ip", "sent", "service"} & set(fields)
    capsys.readouterr()
    assert main(["ingest", str(records), "--out", str(tmp_path / "bad"), "--fields", "body", "colour"]) == 2
    assert "--fields: Unknown field 'colour'" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
