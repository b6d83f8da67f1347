"""Data set on disk, torch dataset, collate functions and the Lightning data module."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from quack.dataset import (
    METADATA_COLUMNS,
    QuackDataModule,
    QuackDataset,
    build_dataset,
    collate_tokens,
    collate_with_metadata,
    read_info,
    read_rows,
)
from quack.ingest import QuackInputError, iter_rows
from quack.sample import write_sample
from quack.tokenizer import FIELD_CHARS, PAD, QuackTokenizer

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


def test_dataset_items_and_metadata(built):
    data, *_ = built
    rows = read_rows(data)
    ds = QuackDataset(data)
    assert len(ds) == len(rows)
    item = ds[5]
    assert item.dtype == torch.long and item.tolist() == list(rows["tokens"][5])
    assert ds[-1].tolist() == list(rows["tokens"].iloc[-1])
    with pytest.raises(IndexError):
        ds[len(ds)]
    meta, tokens = QuackDataset(data, with_metadata=True)[7]
    assert list(meta) == METADATA_COLUMNS and meta["id"] == 7 and torch.equal(tokens, ds[7])
    assert all(type(v) in (int, str, bool) for v in meta.values())
    assert meta["fingerprint"] == rows["fingerprint"][7] and meta["label"] == rows["label"][7]


def test_collate_pads_right_with_pad():
    batch = collate_tokens([torch.tensor([0, 5, 2]), torch.tensor([0, 2])])
    assert batch.tolist() == [[0, 5, 2], [0, 2, PAD]]
    metas, tokens = collate_with_metadata([({"id": 1}, torch.tensor([0, 2])), ({"id": 2}, torch.tensor([0, 9, 9, 2]))])
    assert metas == [{"id": 1}, {"id": 2}] and tokens.shape == (2, 4) and tokens[0, 2:].tolist() == [PAD, PAD]


def test_split_is_reproducible_disjoint_and_70_20_10(built):
    data, *_ = built
    n = read_info(data)["rows"]
    a, b, c = QuackDataModule(data, seed=3), QuackDataModule(data, seed=3), QuackDataModule(data, seed=4)
    parts = [a.split_ids(name) for name in ("train", "val", "test")]
    assert sorted(np.concatenate(parts).tolist()) == list(range(n))
    assert [len(p) for p in parts] == pytest.approx([0.7 * n, 0.2 * n, 0.1 * n], abs=1)
    assert all(np.array_equal(p, b.split_ids(name)) for p, name in zip(parts, ("train", "val", "test")))
    assert not np.array_equal(parts[0], c.split_ids("train"))


def test_loaders_yield_padded_batches(built):
    data, *_ = built
    dm = QuackDataModule(data, batch_size=16, seed=0)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch.dtype == torch.long and batch.shape[0] == 16 and (batch[:, 0] == 0).all()
    assert sum(len(b) for b in dm.val_dataloader()) == len(dm.split_ids("val"))
    assert dm.tokenizer.vocab_size == read_info(data)["vocab_size"]


def test_predict_loader_covers_every_row_in_id_order(built):
    data, *_ = built
    dm = QuackDataModule(data, batch_size=64)
    ids = []
    for metas, tokens in dm.predict_dataloader():
        assert tokens.shape[0] == len(metas)
        ids += [m["id"] for m in metas]
    assert ids == list(range(read_info(data)["rows"]))


def test_length_buckets_cut_padding_and_keep_every_row(built):
    data, *_ = built
    plain = QuackDataModule(data, batch_size=8, seed=1)
    bucketed = QuackDataModule(data, batch_size=8, seed=1, bucket_by_length=True)
    pads = lambda dm: sum(int((b == PAD).sum()) for b in dm.train_dataloader())
    assert pads(bucketed) < pads(plain)
    seen = Counter()
    loader = bucketed.train_dataloader()
    for index in loader.sampler:
        seen[index] += 1
    assert sorted(seen) == list(range(len(bucketed.split_ids("train")))) and set(seen.values()) == {1}


def test_bad_module_options():
    with pytest.raises(ValueError, match="split"):
        QuackDataModule(".", split=(0.5, 0.2, 0.1))
    with pytest.raises(ValueError, match="batch_size"):
        QuackDataModule(".", batch_size=0)
    with pytest.raises(QuackInputError, match="not a quack data set"):
        QuackDataModule("/nonexistent/place")


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
    with pytest.raises(QuackInputError):
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
    with pytest.raises(QuackInputError, match="not a quack data set"):
        build_dataset(empty, foreign)
    with pytest.raises(QuackInputError, match="no measurements"):
        build_dataset(empty, tmp_path / "new", allow_empty=False)
    assert not (tmp_path / "new").exists() and (foreign / "thesis.tex").read_text() == "precious"


def test_empty_input_gives_an_empty_data_set(tmp_path):
    empty = tmp_path / "empty.json"
    empty.write_text("")
    info = build_dataset(empty, tmp_path / "data", vocab_size=300)
    assert info["rows"] == 0 and info["rows_per_label"] == {"-1": 0, "0": 0, "1": 0} and info["longest_sequence"] == 0
    assert len(QuackDataset(tmp_path / "data")) == 0
    dm = QuackDataModule(tmp_path / "data")
    assert list(dm.train_dataloader()) == [] and list(dm.predict_dataloader()) == []


def test_anomalies_only(built, tmp_path):
    _, records, *_ = built
    build_dataset(records, tmp_path / "a", vocab_size=1600, anomalies_only=True)
    rows = read_rows(tmp_path / "a", columns=["anomaly", "matches_template"])
    assert rows["anomaly"].all() and not rows["matches_template"].any()


@needs_shared
def test_real_files_with_shared_signatures(tmp_path):
    info = build_dataset(SHARED, tmp_path / "real", vocab_size=1600, max_tokens=64,
                         signatures=[str(SHARED / "blockpage_signatures.json"), str(SHARED / "false_positive_signatures.json")])
    # The sums of the per-file counts in tests/test_labels.py.
    assert info["rows"] == 80
    assert info["rows_per_label"] == {"-1": 40, "0": 23, "1": 17}
    assert len(info["sources"]) == 8
