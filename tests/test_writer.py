"""Tests of the prediction writer and the loader of its output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from quack.autoencoder import AutoencoderWriter, QuackAutoEncoder, item_path, load_encoded, read_metadata
from quack.model.dataset import collate_with_metadata
from quack.schema import BOS, EOS, SPECIALS

REPO = Path(__file__).resolve().parents[1]
VOCAB = 30
LABELS = (1, 0, -1, -1, 0, 0)

torch.set_num_threads(1)

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*does not have many workers"),
    pytest.mark.filterwarnings("ignore:.*isinstance\\(treespec, LeafSpec\\)"),
]


def records(count: int, seed: int = 0) -> list[tuple[dict, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    out = []
    for i in range(count):
        length = int(torch.randint(3, 9, (1,), generator=generator))
        tokens = torch.randint(len(SPECIALS), VOCAB, (length,), generator=generator)
        tokens[0], tokens[-1] = BOS, EOS
        meta = {"id": i, "label": LABELS[i % len(LABELS)], "country": ["US", "CN", "IR"][i % 3],
                "anomaly": bool(i % 2), "line": i + 1}
        out.append((meta, tokens))
    return out


def model() -> QuackAutoEncoder:
    pl.seed_everything(0)
    return QuackAutoEncoder(VOCAB, 8, 16)


def predict(storage: str | Path, rows: list, **options) -> QuackAutoEncoder:
    net = model()
    writer = AutoencoderWriter(storage_path=str(storage), **options)
    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[writer])
    trainer.predict(net, DataLoader(rows, batch_size=4, collate_fn=collate_with_metadata), return_predictions=False)
    return net


def expected_latents(net: QuackAutoEncoder, rows: list) -> dict[int, np.ndarray]:
    metadata, tokens = collate_with_metadata(rows)
    latents = net.encode(tokens).numpy()
    return {meta["id"]: latents[i] for i, meta in enumerate(metadata)}


def check_output(table, net, rows, kept_labels):
    kept = [(meta, t) for meta, t in rows if meta["label"] in kept_labels]
    assert table["id"].tolist() == [meta["id"] for meta, _ in kept]
    expected = expected_latents(net, rows)
    for index, latent in zip(table["id"], table["latent"]):
        assert latent.dtype == np.float32 and latent.shape == (16,)
        np.testing.assert_allclose(latent, expected[index], rtol=1e-5, atol=1e-6)
    for column in ("label", "country", "anomaly", "line"):
        assert table[column].tolist() == [meta[column] for meta, _ in kept]


@pytest.mark.parametrize("layout", ["parquet", "indexed"])
@pytest.mark.parametrize(
    ("options", "kept_labels"),
    [({}, (1, 0, -1)), ({"filtered": True}, (1, -1)), ({"evaluate": True}, (0,))],
)
def test_both_layouts_round_trip_with_counts_and_filters(tmp_path, layout, options, kept_labels):
    rows = records(14)
    net = predict(tmp_path / "out", rows, layout=layout, **options)
    table = load_encoded(tmp_path / "out")
    check_output(table, net, rows, kept_labels)

    info = read_metadata(tmp_path / "out")
    labels = [meta["label"] for meta, _ in rows if meta["label"] in kept_labels]
    assert info["censored"] == labels.count(1)
    assert info["undetermined"] == labels.count(0)
    assert info["uncensored"] == labels.count(-1)
    assert info["total"] == len(labels) == len(table)
    assert info["layout"] == layout and info["latent_size"] == 16


def test_parquet_shards_are_plain_parquet(tmp_path):
    rows = records(10)
    predict(tmp_path, rows)
    shards = sorted(tmp_path.glob("part-*.parquet"))
    assert len(shards) == 3
    table = pq.read_table(shards[0])
    assert table.num_rows == 4
    assert table.schema.field("latent").type.list_size == 16
    assert set(table.column_names) == {"id", "label", "label_name", "country", "anomaly", "line", "latent"}


def test_each_record_carries_its_label_name_beside_its_code(tmp_path):
    predict(tmp_path, records(10))
    table = pd.concat([pq.read_table(p).to_pandas() for p in sorted(tmp_path.glob("part-*.parquet"))])
    names = {1: "censored", 0: "undetermined", -1: "uncensored"}
    assert (table["label_name"] == table["label"].map(names)).all()


def test_indexed_layout_places_items_by_id(tmp_path):
    rows = records(5)
    predict(tmp_path, rows, layout="indexed")
    for meta, _ in rows:
        item = tmp_path / item_path(meta["id"], "npz").lstrip("/")
        with np.load(item, allow_pickle=False) as archive:
            assert archive["latent"].shape == (16,)
        names = {1: "censored", 0: "undetermined", -1: "uncensored"}
        assert json.loads(item.with_suffix(".json").read_text()) == {**meta, "label_name": names[meta["label"]]}


def test_epoch_interval_writes_the_same_rows(tmp_path):
    rows = records(9)
    net = predict(tmp_path / "batch", rows)
    predict(tmp_path / "epoch", rows, write_interval="epoch")
    check_output(load_encoded(tmp_path / "epoch"), net, rows, (1, 0, -1))
    assert read_metadata(tmp_path / "epoch")["total"] == 9


def test_batches_from_default_collate_are_written(tmp_path):
    rows = [(meta, torch.cat([tokens, torch.ones(10 - len(tokens), dtype=torch.long)]))
            for meta, tokens in records(6)]
    net = model()
    writer = AutoencoderWriter(storage_path=str(tmp_path))
    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[writer])
    trainer.predict(net, DataLoader(rows, batch_size=4), return_predictions=False)
    check_output(load_encoded(tmp_path), net, rows, (1, 0, -1))


def test_storage_path_expands_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    rows = records(3)
    predict("~/encoded", rows)
    assert (tmp_path / "encoded" / "metadata.json").is_file()
    assert len(load_encoded("~/encoded")) == 3


def test_a_new_run_replaces_an_old_one(tmp_path):
    predict(tmp_path, records(12))
    predict(tmp_path, records(5))
    assert load_encoded(tmp_path)["id"].tolist() == list(range(5))


@pytest.mark.parametrize("layout", ["parquet", "indexed"])
def test_interrupted_write_leaves_no_partial_file(tmp_path, monkeypatch, layout):
    rows = records(8)
    predict(tmp_path, rows, layout=layout)
    before = {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()}

    real_write = pq.write_table if layout == "parquet" else np.savez

    def write_then_fail(data, handle, *args, **kwargs):
        # Write part of the file, then fail as a full disk would.
        if layout == "parquet":
            real_write(data, handle, *args, **kwargs)
        else:
            real_write(handle, data, *args, **kwargs)
        handle.truncate(handle.tell() // 2)
        raise OSError(28, "No space left on device")

    if layout == "parquet":
        monkeypatch.setattr(pq, "write_table", write_then_fail)
    else:
        monkeypatch.setattr(np, "savez", lambda handle, **arrays: write_then_fail(arrays["latent"], handle))
    named = "part-.*\\.parquet" if layout == "parquet" else "0/0/0\\.npz"
    with pytest.raises(OSError, match=rf"^Cannot write {tmp_path}/{named}: No space left on device; free some space"):
        predict(tmp_path, records(8, seed=1), layout=layout)
    monkeypatch.undo()

    after = {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()}
    # The earlier output is intact and nothing half-written or temporary was left behind.
    assert after == before
    table = load_encoded(tmp_path)
    assert table["id"].tolist() == list(range(8))


def test_loader_ignores_temporary_files(tmp_path):
    predict(tmp_path, records(4))
    (tmp_path / ".part-stray.parquet.123.tmp").write_bytes(b"PAR1 half")
    assert len(load_encoded(tmp_path)) == 4


def test_bad_options_and_metadata_raise(tmp_path):
    with pytest.raises(ValueError, match="filtered or evaluate"):
        AutoencoderWriter(filtered=True, evaluate=True)
    with pytest.raises(ValueError, match="layout"):
        AutoencoderWriter(layout="csv")
    with pytest.raises(ValueError, match="'id'"):
        rows = [({"label": 1}, tokens) for _, tokens in records(2)]
        predict(tmp_path / "noid", rows, layout="indexed")
    with pytest.raises(ValueError, match="'blob'"):
        rows = [(dict(meta, blob=[1, 2]), tokens) for meta, tokens in records(2)]
        predict(tmp_path / "blob", rows)
    with pytest.raises(ValueError, match="does not exist"):
        load_encoded(tmp_path / "nowhere")


DDP_SCRIPT = textwrap.dedent(
    """
    import sys
    import pytorch_lightning as pl
    import torch
    from torch.utils.data import DataLoader
    from quack.autoencoder import AutoencoderWriter, QuackAutoEncoder
    from quack.model.dataset import collate_with_metadata

    if __name__ == "__main__":
        weights, data, storage = sys.argv[1:4]
        torch.set_num_threads(1)
        rows = torch.load(data, weights_only=True)
        rows = [(meta, tokens) for meta, tokens in zip(rows["metadata"], rows["tokens"])]
        model = QuackAutoEncoder(30, 8, 16)
        model.load_state_dict(torch.load(weights, weights_only=True))
        writer = AutoencoderWriter(storage_path=storage)
        trainer = pl.Trainer(accelerator="cpu", devices=2, strategy="ddp_spawn", logger=False,
                             enable_progress_bar=False, enable_model_summary=False, callbacks=[writer])
        trainer.predict(model, DataLoader(rows, batch_size=4, collate_fn=collate_with_metadata), return_predictions=False)
    """
)


@pytest.mark.slow
def test_two_process_ddp_predict_writes_every_row_once(tmp_path):
    rows = records(21)
    net = model()
    torch.save(net.state_dict(), tmp_path / "weights.pt")
    torch.save({"metadata": [meta for meta, _ in rows], "tokens": [t for _, t in rows]}, tmp_path / "rows.pt")
    script = tmp_path / "ddp_predict.py"
    script.write_text(DDP_SCRIPT)
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
                       OMP_NUM_THREADS="1", PL_DISABLE_FORK="1")
    result = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "weights.pt"), str(tmp_path / "rows.pt"),
         str(tmp_path / "out")],
        cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]

    shards = sorted((tmp_path / "out").glob("part-*.parquet"))
    assert {shard.name.split("-")[2] for shard in shards} == {"r00000", "r00001"}
    table = load_encoded(tmp_path / "out")
    check_output(table, net, rows, (1, 0, -1))
    info = read_metadata(tmp_path / "out")
    labels = [meta["label"] for meta, _ in rows]
    assert (info["total"], info["world_size"]) == (21, 2)
    assert [shard["file"] for shard in info["shards"]] == [shard.name for shard in shards]
    assert sum(shard["rows"] for shard in info["shards"]) == 21
    assert (info["censored"], info["undetermined"], info["uncensored"]) == (
        labels.count(1), labels.count(0), labels.count(-1))


def test_metadata_lists_every_shard_with_its_rows(tmp_path):
    predict(tmp_path, records(10))
    info = read_metadata(tmp_path)
    assert info["shards"] == [{"file": shard.name, "rows": pq.ParquetFile(shard).metadata.num_rows}
                              for shard in sorted(tmp_path.glob("part-*.parquet"))]
    assert [shard["rows"] for shard in info["shards"]] == [4, 4, 2]


def assert_refused(folder: Path, message: str) -> None:
    for reader in (load_encoded, read_metadata):
        with pytest.raises(ValueError, match=message) as caught:
            reader(folder)
        assert len(str(caught.value).splitlines()) == 1
        assert f"encode it again with `quack encode --out {folder} --overwrite`" in str(caught.value)


@pytest.mark.parametrize("layout", ["parquet", "indexed"])
def test_output_of_a_killed_encode_is_refused(tmp_path, layout):
    predict(tmp_path, records(14), layout=layout)
    # Killed before the end of prediction: every record written, metadata.json never.
    (tmp_path / "metadata.json").unlink()
    assert_refused(tmp_path, rf"{tmp_path} is incomplete: it has no metadata\.json, so the encode that wrote it did not finish")


def test_output_missing_a_shard_is_refused(tmp_path):
    predict(tmp_path, records(14))
    shard = sorted(tmp_path.glob("part-*.parquet"))[1]
    shard.unlink()
    assert_refused(tmp_path, rf"{tmp_path} is incomplete: its shard {shard.name} is missing")


def test_a_shard_with_other_rows_is_refused(tmp_path):
    predict(tmp_path, records(14))
    shard = sorted(tmp_path.glob("part-*.parquet"))[0]
    pq.write_table(pq.read_table(shard).slice(0, 1), shard)
    assert_refused(tmp_path, rf"its shard {shard.name} holds 1 rows where metadata\.json lists 4")


def test_indexed_output_missing_a_record_is_refused(tmp_path):
    predict(tmp_path, records(14), layout="indexed")
    (tmp_path / item_path(5, "npz").lstrip("/")).unlink()
    assert_refused(tmp_path, rf"{tmp_path} is incomplete: it holds 13 of the 14 records")


def test_a_folder_without_encoded_output_says_so(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=rf"No encoded output at {tmp_path}; write one with `quack encode"):
        load_encoded(tmp_path)


def test_classify_refuses_output_missing_a_shard(tmp_path, capsys):
    from quack.cli.main import main

    predict(tmp_path, records(40))
    sorted(tmp_path.glob("part-*.parquet"))[-1].unlink()
    assert main(["classify", "--encoded", str(tmp_path), "--epochs", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"quack classify: {tmp_path} is incomplete: its shard") and len(err.splitlines()) == 1
    assert not (tmp_path / "scores.parquet").exists()
