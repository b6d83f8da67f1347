"""Files made to mislead: links out of the shared folders, forged counts, deep JSON, wrong types, bad ids.

Each is refused in one sentence naming the file, before anything is sized by what the
file claims, and nothing already written is lost.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from streamlit.testing.v1 import AppTest

from conftest import APP, TIMEOUT, assert_clean
from quack.cli.main import main
from quack.data.datafolder import DataFolder
from quack.errors import QuackInputError
from quack.jsonfiles import loads_bounded
from quack.model.reader import load_encoded, read_metadata
from quack.roots import Roots

DEEP = "[" * 100_000 + "]" * 100_000


def copied(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def one_sentence(capsys, argv: list[str]) -> str:
    """Run a command that must refuse its input: exit status 2, one line, no traceback."""
    assert main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in captured.err, captured.err
    return err


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def forge_rows(file: Path, claim: int) -> None:
    """Make every count of ``file``'s footer (file, row groups, column chunks) that says its rows say ``claim``."""
    data = file.read_bytes()
    rows = pq.ParquetFile(file).metadata.num_rows
    length = int.from_bytes(data[-8:-4], "little")
    footer = data[-8 - length:-8]
    # Thrift compact: an i64 field one after the field before it, zigzag varint.
    forged = footer.replace(b"\x16" + _varint(2 * rows), b"\x16" + _varint(2 * claim))
    assert forged != footer
    file.write_bytes(data[:-8 - length] + forged + len(forged).to_bytes(4, "little") + b"PAR1")


# ----------------------------------------------------------------------------- 6: links


def test_a_data_set_of_links_to_files_outside_the_shared_folders_is_refused(tmp_path, trained_sample):
    shared, outside = tmp_path / "shared", copied(trained_sample["data"], tmp_path / "private")
    (shared / "sets" / "linked").mkdir(parents=True)
    for name in ("rows.parquet", "info.json", "tokenizer.json"):
        (shared / "sets" / "linked" / name).symlink_to(outside / name)
    (shared / "parts").mkdir()
    (shared / "parts" / "a").symlink_to(outside, target_is_directory=True)
    roots = Roots([shared])
    for typed, link in (("sets/linked", "sets/linked/"), ("sets", "sets/linked/"), ("parts", "parts/a")):
        with pytest.raises(ValueError, match="is a link that leads outside the folders this server shares") as caught:
            roots.resolve_readable(typed)
        assert str(shared / link) in str(caught.value) and str(outside) not in str(caught.value)
    # Links that stay inside are followed as before.
    inside = copied(trained_sample["data"], shared / "real")
    (shared / "inside").mkdir()
    for name in ("rows.parquet", "info.json", "tokenizer.json"):
        (shared / "inside" / name).symlink_to(inside / name)
    assert roots.resolve_readable("inside") == shared / "inside"


def test_an_encoded_folder_typed_in_a_browser_refuses_a_data_set_of_links_out(tmp_path, trained_sample, monkeypatch):
    from dashboard import sources
    from quack.model.encoding import load_checkpoint, write_encoded

    shared, outside = tmp_path / "shared", copied(trained_sample["data"], tmp_path / "private")
    (shared / "data").mkdir(parents=True)
    for name in ("rows.parquet", "info.json", "tokenizer.json"):
        (shared / "data" / name).symlink_to(outside / name)
    write_encoded(load_checkpoint(trained_sample["checkpoint"]), outside, shared / "encoded")
    monkeypatch.setenv("QUACK_DATA_ROOTS", str(shared))
    monkeypatch.delenv("QUACK_DATA", raising=False)
    source = sources.path_source(str(shared / "encoded"))
    with pytest.raises(ValueError, match="leads outside the folders this server shares"):
        sources.encoded_parts({**source, "data": str(shared / "data")})


# ----------------------------------------------------------------------------- 7: forged row counts


def test_a_footer_claiming_millions_of_rows_is_refused_before_anything_is_sized_by_it(tmp_path, trained_sample):
    forged = copied(trained_sample["data"], tmp_path / "forged")
    forge_rows(forged / "rows.parquet", 8_000_000)
    assert pq.ParquetFile(forged / "rows.parquet").metadata.num_rows == 8_000_000
    with pytest.raises(QuackInputError, match=r"forged/rows.parquet is damaged or was altered: its footer claims "
                                              r"8,000,000 rows") as caught:
        DataFolder.open(forged)
    assert len(str(caught.value).splitlines()) == 1


def test_row_groups_that_do_not_add_up_to_the_footer_are_refused(tmp_path, trained_sample):
    table = pq.read_table(trained_sample["data"] / "rows.parquet")
    forged = copied(trained_sample["data"], tmp_path / "forged")
    pq.write_table(table, forged / "rows.parquet", row_group_size=len(table) // 2 + 1)
    data = (forged / "rows.parquet").read_bytes()
    length = int.from_bytes(data[-8:-4], "little")
    footer = data[-8 - length:-8]
    # Only the file's own count (FileMetaData field 3, the i64 after the schema list) changes.
    at = footer.index(b"\x16" + _varint(2 * len(table)))
    changed = footer[:at] + b"\x16" + _varint(2 * (len(table) + 7)) + footer[at + 1 + len(_varint(2 * len(table))):]
    (forged / "rows.parquet").write_bytes(data[:-8 - length] + changed + len(changed).to_bytes(4, "little") + b"PAR1")
    with pytest.raises(QuackInputError, match="its row groups"):
        DataFolder.open(forged)


def test_evaluate_refuses_a_billion_row_claim_in_one_sentence(tmp_path, trained_sample, capsys):
    forged = copied(trained_sample["data"], tmp_path / "forged")
    forge_rows(forged / "rows.parquet", 10**9)
    err = one_sentence(capsys, ["evaluate", "--data", str(forged), "--checkpoint", str(trained_sample["checkpoint"])])
    assert "claims 1,000,000,000 rows" in err


# ----------------------------------------------------------------------------- 8: deep JSON


def test_deep_json_is_refused_in_a_clause_not_a_recursion_error():
    with pytest.raises(ValueError, match="nests 100,000 levels deep"):
        loads_bounded(DEEP)
    with pytest.raises(ValueError, match="nests 65 levels deep"):
        loads_bounded("[" * 65 + "]" * 65)
    # Brackets inside a string do not nest.
    assert loads_bounded(json.dumps({"a": "[" * 70 + '\\"[', "b": [[1]]})) == {"a": "[" * 70 + '\\"[', "b": [[1]]}


@pytest.mark.parametrize("name", ["info.json", "tokenizer.json"])
def test_a_data_set_with_deep_json_is_one_sentence_on_the_command_line(tmp_path, trained_sample, capsys, name):
    deep = copied(trained_sample["data"], tmp_path / "deep")
    (deep / name).write_text(DEEP)
    err = one_sentence(capsys, ["encode", "--data", str(deep), "--checkpoint", str(trained_sample["checkpoint"]),
                                "--out", str(tmp_path / "out")])
    assert f"{deep}" in err and "nests 100,000 levels deep" in err


def test_encoded_output_with_deep_metadata_is_one_sentence(tmp_path, capsys):
    (tmp_path / "metadata.json").write_text(DEEP)
    err = one_sentence(capsys, ["classify", "--encoded", str(tmp_path)])
    assert "metadata.json cannot be read (its JSON nests 100,000 levels deep" in err


def test_a_truth_file_nested_deep_is_one_sentence(tmp_path):
    from quack.discovery.evaluation import read_truth

    (tmp_path / "t.truth.jsonl").write_text(DEEP + "\n")
    with pytest.raises(ValueError, match=r"t.truth.jsonl line 1 is not a ground-truth line \(its JSON nests"):
        read_truth(tmp_path / "t.truth.jsonl", {"source": ["a"], "line": [1], "probe": [0]})


@pytest.mark.slow
def test_the_data_page_shows_one_sentence_for_a_data_set_with_deep_info(tmp_path, trained_sample, dashboard_env,
                                                                        monkeypatch):
    root = dashboard_env("forged-deep", 120)
    deep = copied(trained_sample["data"], root / "shared" / "deep")
    (deep / "info.json").write_text(DEEP)
    shutil.copy(trained_sample["checkpoint"], root / "model.ckpt")
    monkeypatch.setenv("QUACK_DATA_ROOTS", str(root / "shared"))
    monkeypatch.setenv("QUACK_CHECKPOINT", str(root / "model.ckpt"))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.switch_page("app_pages/data.py").run()
    at.radio(key="data_kind").set_value("path").run()
    at.text_input(key="data_path").set_value(str(deep)).run()
    at.button(key="data_load").click().run()
    assert not at.exception, [e.value for e in at.exception]
    shown = " ".join(e.value for e in at.error).replace("\\", "")  # shown escaped as Markdown
    assert "nests 100,000 levels deep" in shown and "RecursionError" not in shown


# ----------------------------------------------------------------------------- 11: records without a location


@pytest.mark.slow
def test_records_without_a_location_show_on_the_data_page(tmp_path, dashboard_env, monkeypatch):
    root = dashboard_env("forged-no-location", 120)
    (root / "shared").mkdir(parents=True)
    lines = [{"vp": f"1.2.3.{k}", "test_url": f"site{k}.com", "response": [{"matches_template": True}]}
             for k in range(1, 6)]
    (root / "shared" / "v1.json").write_text("".join(json.dumps(line) + "\n" for line in lines))
    monkeypatch.setenv("QUACK_DATA_ROOTS", str(root / "shared"))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.switch_page("app_pages/data.py").run()
    at.radio(key="data_kind").set_value("path").run()
    at.text_input(key="data_path").set_value("v1.json").run()
    at.button(key="data_load").click().run()
    assert_clean(at)
    assert {m.label: m.value for m in at.metric}["Records"] == "5"


def test_counts_of_a_categorical_column_name_blanks_unknown():
    import pandas as pd

    from dashboard.tables import value_counts

    counts = value_counts(pd.Series(["", "DE", "", None, "FR", "DE"], dtype="category"))
    assert counts.to_dict() == {"(unknown)": 3, "DE": 2, "FR": 1}


# ----------------------------------------------------------------------------- 12: crafted files on the command line


@pytest.fixture(scope="module")
def encoded(tmp_path_factory, trained_sample) -> Path:
    """Encoded output of the trained sample, several shards."""
    from quack.model.encoding import load_checkpoint, write_encoded

    out = tmp_path_factory.mktemp("forged-encoded") / "out"
    write_encoded(load_checkpoint(trained_sample["checkpoint"]), trained_sample["data"], out, batch_size=64)
    return out


def test_metadata_listing_a_shard_fewer_is_refused(tmp_path, encoded, capsys):
    short = copied(encoded, tmp_path / "short")
    info = json.loads((short / "metadata.json").read_text())
    assert len(info["shards"]) > 1
    info["shards"] = info["shards"][:-1]
    (short / "metadata.json").write_text(json.dumps(info))
    err = one_sentence(capsys, ["classify", "--encoded", str(short), "--epochs", "2"])
    assert "is incomplete or was altered" in err
    assert not (short / "classifier").exists()
    # Counts edited to agree with the shorter listing still disagree with the data set it records.
    kept = sum(shard["rows"] for shard in info["shards"])
    info.update(total=kept, censored=0, undetermined=0, uncensored=kept)
    (short / "metadata.json").write_text(json.dumps(info))
    with pytest.raises(ValueError, match=f"a data set of {info['data_set']['rows']:,} rows"):
        read_metadata(short)
    with pytest.raises(ValueError, match="is incomplete or was altered"):
        load_encoded(short)


def test_a_negative_id_in_tokenizer_json_is_one_sentence(tmp_path, trained_sample, capsys):
    bad = copied(trained_sample["data"], tmp_path / "bad")
    document = json.loads((bad / "tokenizer.json").read_text())
    vocab = document["bpe"]["model"]["vocab"]
    vocab[next(iter(vocab))] = -5
    (bad / "tokenizer.json").write_text(json.dumps(document))
    err = one_sentence(capsys, ["encode", "--data", str(bad), "--checkpoint", str(trained_sample["checkpoint"]),
                                "--out", str(tmp_path / "out")])
    assert "tokenizer.json" in err and "-5" in err


@pytest.mark.parametrize("command", ["encode", "fit"])
@pytest.mark.parametrize("token", [2_000_000, -7])
def test_token_ids_outside_the_vocabulary_are_one_sentence(tmp_path, trained_sample, capsys, command, token):
    bad = copied(trained_sample["data"], tmp_path / "bad")
    table = pq.read_table(bad / "rows.parquet")
    tokens = table.column("tokens").combine_chunks()
    values = tokens.values.to_numpy().copy()
    values[len(values) // 2] = token
    table = table.set_column(table.schema.get_field_index("tokens"), table.schema.field("tokens"),
                             pa.ListArray.from_arrays(tokens.offsets, pa.array(values, pa.int32())))
    pq.write_table(table, bad / "rows.parquet")
    argv = ([command, "--data", str(bad), "--out", str(tmp_path / "out")]
            + (["--checkpoint", str(trained_sample["checkpoint"])] if command == "encode" else ["--max-epochs", "1"]))
    err = one_sentence(capsys, argv)
    assert f"holds token id {token} in row id" in err and "rows.parquet" in err
    assert not (tmp_path / "out" / "metadata.json").exists()


def test_a_label_column_stored_as_text_is_refused(tmp_path, trained_sample, capsys):
    bad = copied(trained_sample["data"], tmp_path / "bad")
    table = pq.read_table(bad / "rows.parquet")
    table = table.set_column(table.schema.get_field_index("label"), "label", pc.cast(table.column("label"), pa.string()))
    pq.write_table(table, bad / "rows.parquet")
    err = one_sentence(capsys, ["encode", "--data", str(bad), "--checkpoint", str(trained_sample["checkpoint"]),
                                "--out", str(tmp_path / "out")])
    assert "stores the column 'label' as string, not int8" in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_classify_writes_scores_and_classifier_as_one_unit_and_clears_what_a_kill_left(tmp_path, encoded, capsys):
    out = copied(encoded, tmp_path / "out")
    # What a classify killed mid-write (old layout or new) leaves: hidden files of a dead process.
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    (out / f".scores.parquet.{pid}.0123abcd.tmp").write_bytes(b"half")
    (out / f".classifier.{pid}.89abcdef.tmp").mkdir()
    assert main(["classify", "--encoded", str(out), "--epochs", "2", "--seed", "1"]) == 0
    first = (out / "classifier" / "classifier.pt").read_bytes()
    assert sorted(p.name for p in (out / "classifier").iterdir()) == ["classifier.pt", "scores.parquet"]
    assert not list(out.glob(".*.tmp"))
    assert main(["classify", "--encoded", str(out), "--epochs", "3", "--seed", "2"]) == 0
    assert (out / "classifier" / "classifier.pt").read_bytes() != first
    assert not list(out.glob(".*"))


def test_kill_during_classify_never_leaves_scores_of_one_run_beside_the_classifier_of_another(tmp_path, encoded):
    out = copied(encoded, tmp_path / "out")
    assert main(["classify", "--encoded", str(out), "--epochs", "2"]) == 0
    before = {p.name: p.read_bytes() for p in (out / "classifier").iterdir()}
    # Killed at the moment the new pair is written, before the swap.
    script = ("import os, signal, sys; import quack.latents.classifier as c; "
              "real = c.atomic_folder\n"
              "def killed(path, write):\n"
              "    return real(path, lambda folder: (write(folder), os.kill(os.getpid(), signal.SIGKILL)))\n"
              "c.atomic_folder = killed\n"
              "from quack.cli.main import main; main(sys.argv[1:])")
    run = subprocess.run([sys.executable, "-c", script, "classify", "--encoded", str(out), "--epochs", "3",
                          "--seed", "5"], capture_output=True, text=True)
    assert run.returncode == -signal.SIGKILL
    assert {p.name: p.read_bytes() for p in (out / "classifier").iterdir()} == before
    assert main(["classify", "--encoded", str(out), "--epochs", "3", "--seed", "5"]) == 0
    assert not list(out.glob(".*.tmp")) and os.listdir(out / "classifier") != []
