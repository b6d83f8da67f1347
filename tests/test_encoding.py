"""The one encoding path: the map's in-memory latents and the writer's files agree."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from quack.autoencoder import QuackAutoEncoder, load_encoded
from quack.data.build import build_dataset
from quack.data.datafolder import DataFolder, read_rows
from quack.model.dataset import QuackDataset
from quack.model.encoding import encode_dataset, write_encoded
from quack.sample.generator import write_sample
from quack.schema import Label

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("encoding")
    records, _ = write_sample(work / "sample.json", n=150, seed=11)
    build_dataset([records], work / "data", vocab_size=300, max_tokens=24)
    return work / "data"


@pytest.fixture()
def model(data) -> QuackAutoEncoder:
    torch.manual_seed(0)
    tokenizer = DataFolder.open(data).tokenizer
    net = QuackAutoEncoder(num_embeddings=tokenizer.vocab_size, embed_size=8, hidden_size=16)
    net.tokenizer_json = tokenizer.to_json()
    return net.eval()


def test_latents_come_back_in_id_order_although_batches_are_sorted_by_length(data, model):
    encoded = encode_dataset(model, data, batch_size=16, with_loss=False)
    rows = read_rows(data, columns=["id", "n_tokens"])
    assert len(np.unique(rows["n_tokens"])) > 1, "the sample must mix lengths for this test to mean anything"
    dataset_tokens = QuackDataset(data)
    for record in (0, 7, len(rows) - 1):
        alone = model.encode(dataset_tokens[record].unsqueeze(0))[0].numpy()
        np.testing.assert_allclose(encoded.latents[record], alone, atol=1e-5)
    assert np.isnan(encoded.loss).all()


def test_the_writer_gets_the_same_latents_and_losses_as_the_map(data, model, tmp_path):
    in_memory = encode_dataset(model, data, with_loss=True)
    assert np.isfinite(in_memory.loss).all()
    summary = write_encoded(model, data, tmp_path / "out", with_loss=True, batch_size=32)
    table = load_encoded(tmp_path / "out")
    assert summary["total"] == len(table) == len(in_memory.ids)
    np.testing.assert_allclose(np.stack(table["latent"].to_numpy()), in_memory.latents, atol=1e-5)
    np.testing.assert_allclose(table["reconstruction_loss"].to_numpy(), in_memory.loss, rtol=1e-5)
    # The model is handed back as it came: on the CPU, in eval mode, without the loss pass.
    assert next(model.parameters()).device.type == "cpu" and not model.training and not model.predict_loss


@pytest.mark.parametrize(("keep", "wanted"), [("labelled", {Label.CENSORED, Label.UNCENSORED}),
                                              ("undetermined", {Label.UNDETERMINED})])
def test_keep_chooses_the_rows_written(data, model, tmp_path, keep, wanted):
    write_encoded(model, data, tmp_path / keep, keep=keep)
    table = load_encoded(tmp_path / keep)
    labels = read_rows(data, columns=["label"])["label"].to_numpy()
    assert set(table["label"]) <= set(wanted)
    assert len(table) == int(np.isin(labels, list(wanted)).sum()) > 0


def test_bad_requests_are_refused_before_anything_is_written(data, model, tmp_path):
    with pytest.raises(ValueError, match="Rows to keep must be one of all, labelled, undetermined"):
        write_encoded(model, data, tmp_path / "a", keep="some")
    assert not (tmp_path / "a").exists()
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="already exists and is not empty"):
        write_encoded(model, data, taken)
    assert (taken / "notes.txt").read_text() == "mine"


def test_an_interrupted_write_says_what_it_left_and_overwrite_starts_it_over(data, model, tmp_path):
    out = tmp_path / "out"

    def interrupt_after_two_batches(done: int, total: int) -> None:
        if done >= 64:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt, match=r"interrupted after 64 of \d+ records; .* --overwrite"):
        write_encoded(model, data, out, batch_size=32, progress=interrupt_after_two_batches)
    assert len(list(out.glob("part-*.parquet"))) == 2 and not (out / "metadata.json").exists()
    with pytest.raises(ValueError, match="not empty"):
        write_encoded(model, data, out)
    summary = write_encoded(model, data, out, overwrite=True)
    assert summary["total"] == DataFolder.open(data).n_rows == len(load_encoded(out))


def test_overwrite_never_removes_files_the_writer_did_not_write(data, model, tmp_path):
    out = tmp_path / "mixed"
    out.mkdir()
    (out / "thesis.tex").write_text("mine")
    with pytest.raises(ValueError, match=r"holds files that are not encoded output \(thesis.tex\)"):
        write_encoded(model, data, out, overwrite=True)
    assert (out / "thesis.tex").read_text() == "mine"


def test_a_folder_of_parts_encodes_as_one_data_set_of_both_inputs(data, model, tmp_path):
    tokenizer = DataFolder.open(data).tokenizer
    first, _ = write_sample(tmp_path / "raw" / "a.json", n=30, seed=12)
    second, _ = write_sample(tmp_path / "raw" / "b.json", n=20, seed=13)
    build_dataset(first, tmp_path / "parts" / "1", tokenizer=tokenizer)
    build_dataset(second, tmp_path / "parts" / "2", tokenizer=tokenizer)
    build_dataset([first, second], tmp_path / "whole", tokenizer=tokenizer)
    parts = encode_dataset(model, tmp_path / "parts", batch_size=8, with_loss=False)
    whole = encode_dataset(model, tmp_path / "whole", batch_size=8, with_loss=False)
    np.testing.assert_allclose(parts.latents, whole.latents, atol=1e-6)
    write_encoded(model, tmp_path / "parts", tmp_path / "out", batch_size=8)
    table = load_encoded(tmp_path / "out")
    assert sorted(table["id"]) == list(range(DataFolder.open(tmp_path / "whole").n_rows))


def test_a_model_of_another_tokenizer_encodes_the_rows_tokenized_again(data, tmp_path):
    build_dataset(data.parent / "sample.json", tmp_path / "fresh", vocab_size=400, max_tokens=16)
    other = DataFolder.open(tmp_path / "fresh").tokenizer
    torch.manual_seed(1)
    net = QuackAutoEncoder(num_embeddings=other.vocab_size, embed_size=8, hidden_size=16)
    net.tokenizer_json = other.to_json()
    net.eval()
    calls = []
    again = encode_dataset(net, data, batch_size=16, with_loss=False,
                           retokenize_progress=lambda done, total: calls.append((done, total)))
    fresh = encode_dataset(net, tmp_path / "fresh", batch_size=16, with_loss=False)
    np.testing.assert_allclose(again.latents, fresh.latents, atol=1e-6)
    assert calls and calls[-1] == (len(fresh.ids), len(fresh.ids))


@pytest.mark.parametrize("layout", ["parquet", "indexed"])
def test_encoded_output_records_what_made_it_and_reads_back_as_one_array(data, model, tmp_path, layout):
    from quack.model.provenance import check_provenance, find_data_set
    from quack.model.reader import read_latents, read_metadata

    checkpoint = tmp_path / "model.ckpt"
    checkpoint.write_bytes(b"the checkpoint's bytes")
    write_encoded(model, data, tmp_path / "out", layout=layout, with_loss=True, checkpoint=checkpoint)
    info = read_metadata(tmp_path / "out")
    assert info["data_set"]["path"] == str(data.resolve()) and info["data_set"]["version"] == DataFolder(data).version
    assert info["data_set"]["rows"] == DataFolder(data).n_rows
    assert info["checkpoint"]["path"] == str(checkpoint.resolve()) and len(info["checkpoint"]["sha256"]) == 64
    assert find_data_set(tmp_path / "out") == data.resolve()
    check_provenance(tmp_path / "out", data, checkpoint)
    latents, loss = read_latents(tmp_path / "out", DataFolder(data).n_rows)
    table = load_encoded(tmp_path / "out")
    assert latents.dtype == np.float32 and latents.shape == (len(table), model.hparams.hidden_size)
    np.testing.assert_array_equal(latents, np.stack(table["latent"].to_numpy()))
    np.testing.assert_array_equal(loss, table["reconstruction_loss"].to_numpy(dtype=np.float32))
    checkpoint.write_bytes(b"other weights")
    with pytest.raises(ValueError, match=r"not by the session's checkpoint model\.ckpt; choose model\.ckpt") as refused:
        check_provenance(tmp_path / "out", data, checkpoint)
    assert str(tmp_path / "out") in str(refused.value) and "\n" not in str(refused.value)


def test_a_data_set_rebuilt_since_it_was_encoded_is_refused_and_a_moved_one_is_found(data, model, tmp_path):
    import shutil

    from quack.model.provenance import check_provenance, find_data_set

    shutil.copytree(data, tmp_path / "data")
    write_encoded(model, tmp_path / "data", tmp_path / "out")
    shutil.move(tmp_path / "data", tmp_path / "moved")
    found = find_data_set(tmp_path / "out")
    assert found == tmp_path / "moved"
    check_provenance(tmp_path / "out", found)
    records, _ = write_sample(tmp_path / "more.json", n=40, seed=12)
    build_dataset([records], tmp_path / "moved", tokenizer=DataFolder(found).tokenizer)
    with pytest.raises(ValueError, match="has changed since; encode it again with `quack encode"):
        check_provenance(tmp_path / "out", found)
    shutil.rmtree(tmp_path / "moved")
    with pytest.raises(ValueError, match="which is not there, and no folder beside out holds it"):
        find_data_set(tmp_path / "out")
