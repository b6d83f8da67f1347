"""The torch dataset, collate functions and the Lightning data module over a data set folder."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

import numpy as np
import pytest
import torch

from quack.data.build import build_dataset
from quack.data.datafolder import read_info, read_rows
from quack.model.dataset import METADATA_COLUMNS, QuackDataModule, QuackDataset, collate_tokens, collate_with_metadata
from quack.errors import QuackInputError
from quack.sample.generator import write_sample
from quack.data.tokenizer import QuackTokenizer
from quack.schema import PAD


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("ds")
    records, _ = write_sample(root / "raw" / "sample.json", n=300, seed=5)
    build_dataset(records, root / "data", vocab_size=1600, max_tokens=64)
    return root / "data"


def test_dataset_items_and_metadata(data):
    rows = read_rows(data)
    ds = QuackDataset(data)
    assert len(ds) == len(rows)
    item = ds[5]
    assert item.dtype == torch.long and item.tolist() == list(rows["tokens"][5])
    assert ds[-1].tolist() == list(rows["tokens"].iloc[-1])
    with pytest.raises(IndexError, match="out of range"):
        ds[len(ds)]
    meta, tokens = QuackDataset(data, with_metadata=True)[7]
    assert list(meta) == METADATA_COLUMNS and meta["id"] == 7 and torch.equal(tokens, ds[7])
    # Plain Python values a writer stores as they are: the measurement's time as a datetime (UTC).
    assert all(type(v) in (int, str, bool) for k, v in meta.items() if k != "time")
    assert meta["time"] is None or (isinstance(meta["time"], datetime) and meta["time"].utcoffset() == timedelta(0))
    assert meta["fingerprint"] == rows["fingerprint"][7] and meta["label"] == rows["label"][7]


def test_collate_pads_right_with_pad():
    batch = collate_tokens([torch.tensor([0, 5, 2]), torch.tensor([0, 2])])
    assert batch.tolist() == [[0, 5, 2], [0, 2, PAD]]
    metas, tokens = collate_with_metadata([({"id": 1}, torch.tensor([0, 2])), ({"id": 2}, torch.tensor([0, 9, 9, 2]))])
    assert metas == [{"id": 1}, {"id": 2}] and tokens.shape == (2, 4) and tokens[0, 2:].tolist() == [PAD, PAD]


def test_split_is_reproducible_disjoint_and_70_20_10(data):
    n = read_info(data)["rows"]
    a, b, c = QuackDataModule(data, seed=3), QuackDataModule(data, seed=3), QuackDataModule(data, seed=4)
    parts = [a.split_ids(name) for name in ("train", "val", "test")]
    assert sorted(np.concatenate(parts).tolist()) == list(range(n))
    assert [len(p) for p in parts] == pytest.approx([0.7 * n, 0.2 * n, 0.1 * n], abs=1)
    assert all(np.array_equal(p, b.split_ids(name)) for p, name in zip(parts, ("train", "val", "test")))
    assert not np.array_equal(parts[0], c.split_ids("train"))


def test_loaders_yield_padded_batches(data):
    dm = QuackDataModule(data, batch_size=16, seed=0)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch.dtype == torch.long and batch.shape[0] == 16 and (batch[:, 0] == 0).all()
    assert sum(len(b) for b in dm.val_dataloader()) == len(dm.split_ids("val"))
    assert dm.tokenizer.vocab_size == read_info(data)["vocab_size"]


def test_predict_loader_covers_every_row_in_id_order(data):
    dm = QuackDataModule(data, batch_size=64)
    ids = []
    for metas, tokens in dm.predict_dataloader():
        assert tokens.shape[0] == len(metas)
        ids += [m["id"] for m in metas]
    assert ids == list(range(read_info(data)["rows"]))


def test_length_buckets_cut_padding_and_keep_every_row(data):
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


def test_empty_input_gives_an_empty_data_set(tmp_path):
    empty = tmp_path / "empty.json"
    empty.write_text("")
    info = build_dataset(empty, tmp_path / "data", vocab_size=300)
    assert info["rows"] == 0 and info["rows_per_label"] == {"-1": 0, "0": 0, "1": 0} and info["longest_sequence"] == 0
    assert len(QuackDataset(tmp_path / "data")) == 0
    dm = QuackDataModule(tmp_path / "data")
    assert list(dm.train_dataloader()) == [] and list(dm.predict_dataloader()) == []


def test_another_tokenizer_tokenizes_the_stored_rows_as_a_fresh_ingest_with_it_would(data, tmp_path):
    records = data.parent / "raw" / "sample.json"
    build_dataset(records, tmp_path / "fresh", vocab_size=400, max_tokens=24)
    fresh = QuackDataset(tmp_path / "fresh")
    other = QuackTokenizer.load(tmp_path / "fresh" / "tokenizer.json")
    calls = []
    again = QuackDataset(data, with_metadata=True, tokenizer=other, progress=lambda done, total: calls.append((done, total)))
    assert again.retokenized and len(again) == len(fresh)
    assert all(torch.equal(again[i][1], fresh[i]) for i in range(len(fresh)))
    assert np.array_equal(again.lengths, fresh.lengths)
    assert again[3][0] == QuackDataset(data, with_metadata=True)[3][0]
    assert calls[-1] == (len(fresh), len(fresh))
    same = QuackDataset(data, tokenizer=QuackTokenizer.load(data / "tokenizer.json"))
    assert not same.retokenized and torch.equal(same[5], QuackDataset(data)[5])
