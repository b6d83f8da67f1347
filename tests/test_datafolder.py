"""The data set folder: the one check that a folder is a data set, and what it reads once."""

from __future__ import annotations

import pytest

from quack.build import build_dataset
from quack.datafolder import DATA_SET_FILES, DataFolder, read_info, read_rows, replace_blocker
from quack.ingest import QuackInputError
from quack.sample import write_sample
from quack.tokenizer import QuackTokenizer


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("folder")
    records, _ = write_sample(root / "sample.json", n=60, seed=2)
    build_dataset(records, root / "data", vocab_size=600, max_tokens=32)
    return root / "data"


def test_a_built_folder_opens_with_its_rows_info_and_tokenizer(data):
    folder = DataFolder.open(data, require_rows=True)
    assert folder.path == data and folder.rows_path == data / "rows.parquet"
    assert folder.n_rows == folder.info["rows"] == len(folder.read_rows(["id"])) > 0
    assert isinstance(folder.tokenizer, QuackTokenizer)
    assert folder.tokenizer.vocab_size == folder.info["vocab_size"]
    assert folder.read_rows(["id", "label"]).columns.tolist() == ["id", "label"]
    assert read_info(data) == folder.info and read_rows(data, ["id"]).equals(folder.read_rows(["id"]))


def test_info_and_tokenizer_are_read_once(data):
    folder = DataFolder.open(data)
    assert folder.info is folder.info and folder.tokenizer is folder.tokenizer


@pytest.mark.parametrize("missing", ["rows.parquet", "info.json", "tokenizer.json"])
def test_a_folder_missing_a_file_is_refused_naming_folder_and_file(tmp_path, data, missing):
    partial = tmp_path / "partial"
    partial.mkdir()
    for name in {"rows.parquet", "info.json", "tokenizer.json"} - {missing}:
        (partial / name).write_bytes((data / name).read_bytes())
    message = rf"{partial} is not a quack data set \(no {missing}\); build one with `quack ingest`"
    with pytest.raises(QuackInputError, match=message):
        DataFolder.open(partial)
    for reader in (read_info, read_rows):
        with pytest.raises(QuackInputError, match=message):
            reader(partial)


def test_an_unreadable_info_file_is_refused(tmp_path, data):
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("rows.parquet", "tokenizer.json"):
        (broken / name).write_bytes((data / name).read_bytes())
    (broken / "info.json").write_text("{not json")
    with pytest.raises(QuackInputError, match="no readable info.json"):
        read_info(broken)


def test_a_data_set_of_no_rows_is_refused_only_when_rows_are_required(tmp_path):
    empty = tmp_path / "empty.json"
    empty.write_text("")
    build_dataset(empty, tmp_path / "data", vocab_size=300)
    assert DataFolder.open(tmp_path / "data").n_rows == 0
    with pytest.raises(QuackInputError, match=r"data set .*data has no rows; ingest files that hold measurements"):
        DataFolder.open(tmp_path / "data", require_rows=True)


def test_only_a_folder_of_exactly_a_data_sets_files_may_be_replaced(tmp_path, data):
    assert replace_blocker(tmp_path / "new") is None
    folder = tmp_path / "ds"
    folder.mkdir()
    assert replace_blocker(folder) is None
    for name in DATA_SET_FILES:
        (folder / name).write_bytes((data / name).read_bytes())
    assert replace_blocker(folder) is None
    (folder / "thesis.tex").write_text("precious")
    (folder / "notes").mkdir()
    assert replace_blocker(folder) == "it holds notes and 1 other entry"
    (folder / "notes").rmdir()
    assert replace_blocker(folder) == "it holds thesis.tex"
    (folder / "thesis.tex").unlink()
    (folder / "info.json").unlink()
    (folder / "info.json").mkdir()
    assert replace_blocker(folder) == "its info.json is missing or not a plain file"
