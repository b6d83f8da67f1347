"""The data set folder: the one check that a folder is a data set, and what it reads once."""

from __future__ import annotations

import shutil

import pyarrow as pa
import pytest

from quack.data.build import build_dataset
from quack.data.datafolder import DATA_SET_FILES, DataFolder, read_info, read_rows, replace_blocker
from quack.sample.generator import write_sample
from quack.data.tokenizer import QuackTokenizer
from quack.errors import QuackInputError


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


@pytest.fixture(scope="module")
def parts(tmp_path_factory, data):
    """Two parts ingested apart with the data set's tokenizer, and one ingest of both inputs."""
    root = tmp_path_factory.mktemp("parts")
    tokenizer = DataFolder.open(data).tokenizer
    first, _ = write_sample(root / "raw" / "a.json", n=40, seed=3)
    second, _ = write_sample(root / "raw" / "b.json", n=30, seed=4)
    build_dataset(first, root / "year" / "part-01", tokenizer=tokenizer)
    build_dataset(second, root / "year" / "part-02", tokenizer=tokenizer)
    build_dataset([first, second], root / "whole", tokenizer=tokenizer)
    return root


def test_a_folder_of_parts_reads_as_one_ingest_of_all_their_inputs(parts, data):
    year, whole = DataFolder.open(parts / "year", require_rows=True), DataFolder.open(parts / "whole")
    assert year.is_parted and not whole.is_parted
    assert year.parts == [parts / "year" / "part-01", parts / "year" / "part-02"]
    assert year.row_files == [part / "rows.parquet" for part in year.parts]
    assert year.n_rows == whole.n_rows == sum(year.part_rows) and min(year.part_rows) > 0
    table = whole.read_table()
    assert year.read_table().equals(table)
    assert year.read_table(["id", "tokens"]).equals(whole.read_table(["id", "tokens"]))
    assert year.read_table(["id"]).column("id").to_pylist() == list(range(year.n_rows))
    streamed = pa.Table.from_batches(list(year.iter_batches(["id", "label", "tokens"], batch_size=17)))
    assert streamed.equals(table.select(["id", "label", "tokens"]))
    assert year.read_rows(["id", "source"]).equals(whole.read_rows(["id", "source"]))
    assert year.tokenizer.to_json() == whole.tokenizer.to_json() == DataFolder.open(data).tokenizer.to_json()
    summed, one = year.info, whole.info
    for key in ("rows", "rows_per_label", "longest_sequence", "vocab_size", "max_tokens", "files", "lines",
                "skipped", "sources", "signatures", "anomalies_only"):
        assert summed[key] == one[key], key
    assert summed["mean_tokens"] == pytest.approx(one["mean_tokens"])
    assert summed["parts"] == ["part-01", "part-02"]
    assert read_info(parts / "year") == summed
    with pytest.raises(QuackInputError, match="is a folder of 2 data sets with no single rows file"):
        year.rows_path


def test_the_version_of_a_folder_of_parts_changes_when_a_part_is_rebuilt(parts, tmp_path):
    folder = tmp_path / "year"
    shutil.copytree(parts / "year", folder)
    before = DataFolder.open(folder).version
    assert DataFolder.open(folder).version == before
    build_dataset(parts / "raw" / "b.json", folder / "part-02", tokenizer=DataFolder.open(folder).tokenizer)
    assert DataFolder.open(folder).version != before


def test_builds_still_running_beside_the_parts_are_not_parts(parts, tmp_path):
    folder = tmp_path / "year"
    shutil.copytree(parts / "year", folder)
    (folder / ".part-03.building-1-0123abcd").mkdir()
    (folder / "slurm-1234.out").write_text("log of the array job")
    assert DataFolder.open(folder).parts == [folder / "part-01", folder / "part-02"]


def test_parts_of_different_tokenizers_are_refused(parts, tmp_path):
    folder = tmp_path / "year"
    shutil.copytree(parts / "year", folder)
    build_dataset(parts / "raw" / "a.json", folder / "part-03", vocab_size=300, max_tokens=16)
    message = (rf"The parts of {folder} were tokenized by different tokenizers \(part-01 and part-03 differ\); "
               r"ingest every part with the same `quack ingest --tokenizer-from`\.")
    with pytest.raises(QuackInputError, match=message):
        DataFolder.open(folder)


def test_a_folder_among_the_parts_that_is_no_data_set_is_refused(parts, tmp_path):
    folder = tmp_path / "year"
    shutil.copytree(parts / "year", folder)
    (folder / "notes").mkdir()
    with pytest.raises(QuackInputError, match=rf"{folder} is a folder of data sets, but notes in it is not one "
                                              r"\(no rows.parquet\); remove it or build it with `quack ingest`"):
        DataFolder.open(folder)


def test_a_folder_of_other_folders_is_no_data_set(tmp_path):
    (tmp_path / "photos").mkdir()
    with pytest.raises(QuackInputError, match=rf"{tmp_path} is not a quack data set \(no rows.parquet\)"):
        DataFolder.open(tmp_path)
