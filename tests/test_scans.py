"""Each measurement's time (UTC) and scan, from v1 and v2 files and archives, carried into encoded output."""

import shutil
import tarfile
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from quack.data.build import build_dataset
from quack.data.datafolder import DataFolder
from quack.data.ingest import iter_rows, scan_name
from quack.discovery.changes import TIME_UNKNOWN, time_known
from quack.discovery.comparison import records_frame
from quack.schema import columns

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "censoredplanet"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="shared Censored Planet samples not present")
SCAN = "CP_Quack-https-2021-05-30-01-01-01"


def utc(text: str) -> datetime:
    """A probe's start time as ingest should store it: UTC, to the microsecond."""
    return datetime.fromisoformat(text[:26] + text[-6:] if "." in text else text).astimezone(timezone.utc)


@needs_shared
@pytest.mark.parametrize("version", ["v1", "v2"])
def test_times_are_utc_and_a_plain_file_is_its_own_scan(version):
    file = SHARED / f"Quack-https_{version}" / f"https_results_{version}.json"
    rows = list(iter_rows(file))
    assert rows
    for row in rows:
        assert row["time"].tzinfo is not None and row["time"].utcoffset().total_seconds() == 0
        assert row["time"] == utc(row["start_time"])
        assert row["scan"] == f"https_results_{version}"


@needs_shared
@pytest.mark.parametrize("version", ["v1", "v2"])
def test_an_archive_names_the_scan_of_its_members(tmp_path, version):
    archive = tmp_path / f"{SCAN}.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(SHARED / f"Quack-https_{version}" / f"https_results_{version}.json", arcname="Quack/results.json")
    rows = list(iter_rows(archive))
    assert rows and {row["scan"] for row in rows} == {SCAN}
    assert all(row["time"] is not None for row in rows)


def test_a_scan_folder_names_the_files_in_it(tmp_path):
    folder = tmp_path / "data" / SCAN
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(
        '{"vp":"1.2.3.4","location":{"country_code":"US"},"service":"https","test_url":"a.com","response":'
        '[{"matches_template":true,"start_time":"2021-05-30T01:02:03.123456789Z","end_time":"2021-05-30T01:02:04Z"}],'
        '"anomaly":false,"controls_failed":false,"stateful_block":false}\n')
    (row,) = list(iter_rows(tmp_path / "data"))
    assert row["scan"] == SCAN
    assert row["time"] == datetime(2021, 5, 30, 1, 2, 3, 123456, tzinfo=timezone.utc)


def test_scan_names():
    assert scan_name(f"x/{SCAN}.tar.gz:{SCAN}/results.json", f"x/{SCAN}.tar.gz") == SCAN
    assert scan_name("day1/results.json", "day1/results.json") == "day1/results"
    assert scan_name("a.tar.gz:results.json", "a.tar.gz") == "a"


def test_a_probe_without_a_readable_time_has_none(tmp_path):
    file = tmp_path / "bad.json"
    file.write_text('{"vp":"1.2.3.4","service":"echo","test_url":"a.com","response":[{"matches_template":true,'
                    '"start_time":"yesterday"}],"anomaly":false}\n')
    (row,) = list(iter_rows(file))
    assert row["time"] is None and row["scan"] == "bad"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    from quack.sample.generator import write_sample

    root = tmp_path_factory.mktemp("scans")
    records, _ = write_sample(root / f"{SCAN}.json", n=150, seed=4)
    build_dataset([str(records)], root / "data", vocab_size=800, max_tokens=64)
    return root / "data"


def test_a_data_set_stores_time_and_scan(built):
    table = DataFolder.open(built).read_table(["time", "scan"])
    assert table.schema.field("time").type == pa.timestamp("us", tz="UTC")
    assert table.column("time").null_count == 0
    assert set(table.column("scan").to_pylist()) == {SCAN}
    assert time_known(records_frame(built))


def old_copy(built: Path, target: Path) -> Path:
    """The data set as quack wrote it before times and scans were columns."""
    shutil.copytree(built, target)
    rows = target / "rows.parquet"
    table = pq.read_table(rows)
    pq.write_table(table.drop_columns(list(columns("optional"))), rows)
    return target


def test_an_old_data_set_keeps_opening_with_time_unknown(built, tmp_path):
    old = DataFolder.open(old_copy(built, tmp_path / "old"))
    assert old.missing_columns == ("time", "scan")
    table = old.read_table(list(columns("metadata")))
    assert table.column_names == list(columns("metadata"))
    assert table.column("time").null_count == table.num_rows == old.n_rows
    batches = list(old.iter_batches(["id", "scan"]))
    assert sum(b.num_rows for b in batches) == old.n_rows and batches[0].schema.names == ["id", "scan"]
    assert not time_known(records_frame(old.path))
    assert "time is unknown" in TIME_UNKNOWN
    assert DataFolder.open(built).missing_columns == ()


def test_encoded_output_carries_time_and_scan(built, tmp_path, trained_sample):
    from quack.model.encoding import load_checkpoint, write_encoded
    from quack.model.reader import load_encoded

    # The checkpoint has its own tokenizer: the data set is tokenized again with it.
    write_encoded(load_checkpoint(trained_sample["checkpoint"]), built, tmp_path / "enc", accelerator="cpu")
    encoded = load_encoded(tmp_path / "enc")
    assert set(encoded["scan"]) == {SCAN}
    assert encoded["time"].notna().all() and str(encoded["time"].dt.tz) == "UTC"
    rows = DataFolder.open(built).read_table(["id", "time"]).to_pandas()
    assert (encoded.sort_values("id")["time"].to_numpy() == rows["time"].to_numpy()).all()


def test_indexed_output_writes_times_as_text(built, tmp_path, trained_sample):
    from quack.model.encoding import load_checkpoint, write_encoded

    write_encoded(load_checkpoint(trained_sample["checkpoint"]), built, tmp_path / "enc", layout="indexed",
                  accelerator="cpu")
    items = sorted(p for p in (tmp_path / "enc").rglob("*.json") if p.name != "metadata.json")
    text = items[0].read_text()
    assert '"time": "2021-' in text and f'"scan": "{SCAN}"' in text
