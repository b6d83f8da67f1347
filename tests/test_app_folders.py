"""The dashboard opens what a user already has: raw files, a data set, an encoded folder.

Each kind is named at start with ``QUACK_DATA``, recognised from its contents, and used
as it is: a data set is not ingested again, an encoded folder's latents are read, not
computed. A folder that does not belong to its data set or checkpoint is one sentence.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from conftest import APP, TIMEOUT
from dashboard import jobs, responses, session

# Every page runs the whole app headless: seconds each.
pytestmark = pytest.mark.slow


torch.set_num_threads(1)


@pytest.fixture(scope="module")
def made(tmp_path_factory, trained_sample):
    """A small checkpoint, the data set it was trained on, a folder of two parts and encoded folders."""
    from quack.data.build import build_dataset
    from quack.model.encoding import load_checkpoint, write_encoded
    from quack.sample.generator import write_sample

    root = tmp_path_factory.mktemp("folders")
    (root / "raw").mkdir()
    records = Path(shutil.copy(trained_sample["records"], root / "raw" / "measurements.json"))
    shutil.copytree(trained_sample["data"], root / "data")
    checkpoint = trained_sample["checkpoint"]
    model = load_checkpoint(checkpoint)
    for seed, part in ((7, "a"), (8, "b")):
        more, _ = write_sample(root / f"part-{part}.json", n=60, seed=seed)
        build_dataset([str(more)], root / "parts" / part, tokenizer=model.tokenizer)
    write_encoded(model, root / "data", root / "encoded", with_loss=True, checkpoint=checkpoint)
    write_encoded(model, root / "data", root / "labelled", keep="labelled", checkpoint=checkpoint)
    # A checkpoint with the same tokenizer and other weights: not the one that encoded the folder.
    other = torch.load(checkpoint, map_location="cpu", weights_only=True)
    name = next(k for k in other["state_dict"] if k.endswith("weight"))
    other["state_dict"][name] = other["state_dict"][name] + 1.0
    torch.save(other, root / "other.ckpt")
    return {"root": root, "records": records, "checkpoint": Path(checkpoint), "other": root / "other.ckpt"}


@pytest.fixture()
def env(made, monkeypatch):
    monkeypatch.setenv("QUACK_CACHE_DIR", str(made["root"] / "cache"))
    monkeypatch.setenv("QUACK_CHECKPOINT_DIR", str(made["root"] / "checkpoints"))
    monkeypatch.delenv("QUACK_CHECKPOINT", raising=False)
    monkeypatch.delenv("QUACK_DATA_ROOTS", raising=False)
    monkeypatch.setenv("QUACK_SAMPLE_SIZE", "300")
    return made


def opened(path: Path, page: str = "data", **state) -> AppTest:
    """The app started with ``QUACK_DATA=path`` on one page."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for key, value in state.items():
        at.session_state[key] = value
    at.switch_page(f"app_pages/{page}.py").run()
    return at


def clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def records_shown(at: AppTest) -> int:
    return int({m.label: m.value for m in at.metric}["Records"].replace(",", ""))


def rows(folder: Path) -> int:
    from quack.data.datafolder import DataFolder

    return DataFolder.open(folder).n_rows


def one_sentence(at: AppTest) -> str:
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.error) == 1, [e.value for e in at.error]
    text = at.error[0].value
    assert "Traceback" not in text and "Something went wrong" not in text
    return text.replace("\\", "")


def test_raw_files_named_at_start_are_ingested_with_the_sessions_checkpoint(env, monkeypatch):
    monkeypatch.setenv("QUACK_DATA", str(env["records"]))
    at = opened(env["records"])
    clean(at)
    assert at.session_state["data_path"] == str(env["records"]), "the Data page shows the operator's path"
    built = list((env["root"] / "cache" / "datasets").glob("path-*/rows.parquet"))
    assert len(built) == 1 and records_shown(at) == rows(built[0].parent)


def test_a_data_set_named_at_start_is_used_where_it_lies(env, monkeypatch):
    monkeypatch.setenv("QUACK_DATA", str(env["root"] / "data"))
    before = set((env["root"] / "cache").glob("datasets/*"))
    monkeypatch.setenv("QUACK_CHECKPOINT", str(env["checkpoint"]))
    at = opened(env["root"] / "data")
    clean(at)
    assert records_shown(at) == rows(env["root"] / "data")
    assert set((env["root"] / "cache").glob("datasets/*")) == before, "nothing was ingested again"


def test_a_data_set_of_another_tokenizer_is_read_with_the_checkpoints_tokenizer(env, monkeypatch):
    """The shipped checkpoint on the small model's data set: used where it lies, its texts tokenized again."""
    from dashboard import results
    from quack.data.datafolder import DataFolder
    from quack.model.encoding import SHIPPED_CHECKPOINT, load_checkpoint
    from quack.data.tokenizer import TOKENIZED_COLUMNS

    data = env["root"] / "data"
    monkeypatch.setenv("QUACK_DATA", str(data))
    before = set((env["root"] / "cache").glob("datasets/*"))
    at = opened(data)
    clean(at)
    assert records_shown(at) == rows(data)
    attention = opened(data, page="attention")
    clean(attention)
    assert set((env["root"] / "cache").glob("datasets/*")) == before, "nothing was ingested again"
    stored = DataFolder.open(data).read_table(["tokens", *TOKENIZED_COLUMNS]).slice(0, 1)
    shipped = load_checkpoint(SHIPPED_CHECKPOINT).tokenizer.encode_table(stored).to_pylist()[0]
    assert shipped != stored.column("tokens").to_pylist()[0], "the two tokenizers differ"
    record = results._inspect(str(SHIPPED_CHECKPOINT), str(data), ("test",), (0,), True)[0]
    assert record["input"].tolist() == shipped, "the model read the record in its own tokens"


def test_a_folder_of_two_parts_reads_as_one_data_set(env, monkeypatch):
    monkeypatch.setenv("QUACK_DATA", str(env["root"] / "parts"))
    monkeypatch.setenv("QUACK_CHECKPOINT", str(env["checkpoint"]))
    at = opened(env["root"] / "parts")
    clean(at)
    both = rows(env["root"] / "parts" / "a") + rows(env["root"] / "parts" / "b")
    assert records_shown(at) == both
    # The record ids run on across the parts: the last one is in part b.
    attention = opened(env["root"] / "parts", page="attention")
    clean(attention)
    attention.number_input(key="attention_record").set_value(both - 1).run()
    clean(attention)


def test_an_encoded_folder_brings_its_checkpoint_and_its_latents_are_read_not_computed(env, monkeypatch):
    from quack.model.reader import load_encoded

    monkeypatch.setenv("QUACK_DATA", str(env["root"] / "encoded"))
    at = opened(env["root"] / "encoded", page="export")
    clean(at)
    identity = jobs.Identity.of(env["root"] / "data", env["checkpoint"])
    # The folder holds the losses, so what was read is the whole result, losses included.
    stored = jobs.store().get(jobs.encoded_key(identity, True))
    assert stored is not None, "the session used the checkpoint that encoded the folder"
    assert "read from the encoded folder" in stored.device
    written = load_encoded(env["root"] / "encoded")
    np.testing.assert_array_equal(stored.latents, np.stack(written["latent"].to_numpy()))
    np.testing.assert_allclose(stored.loss, written["reconstruction_loss"].to_numpy(), rtol=1e-6)
    data = opened(env["root"] / "encoded")
    clean(data)
    assert records_shown(data) == rows(env["root"] / "data")


def test_the_data_page_opens_an_encoded_folder_typed_in_a_shared_folder(env, monkeypatch):
    monkeypatch.setenv("QUACK_DATA_ROOTS", str(env["root"]))
    monkeypatch.setenv("QUACK_CHECKPOINT", str(env["checkpoint"]))
    at = opened(env["root"] / "encoded")
    at.radio(key="data_kind").set_value("path").run()
    at.text_input(key="data_path").input(str(env["root"] / "encoded")).run()
    at.button(key="data_load").click().run()
    clean(at)
    chosen = at.session_state[session.SOURCE]
    assert chosen["holds"] == "encoded" and records_shown(at) == rows(env["root"] / "data")


def test_an_encoded_folder_of_a_changed_data_set_is_one_sentence(env, monkeypatch):
    from quack.data.build import build_dataset
    from quack.model.encoding import load_checkpoint, write_encoded

    root = env["root"]
    shutil.copytree(root / "data", root / "changing")
    model = load_checkpoint(env["checkpoint"])
    write_encoded(model, root / "changing", root / "changing-encoded", checkpoint=env["checkpoint"])
    more, _ = write_sample_file(root)
    build_dataset([str(more)], root / "changing", tokenizer=model.tokenizer)
    monkeypatch.setenv("QUACK_DATA", str(root / "changing-encoded"))
    text = one_sentence(opened(root / "changing-encoded"))
    assert "changing-encoded" in text and "has changed since" in text and "quack encode" in text


def write_sample_file(root: Path):
    from quack.sample.generator import write_sample

    return write_sample(root / "other-measurements.json", n=50, seed=9)


def test_an_encoded_folder_under_another_checkpoint_says_which_to_choose(env, monkeypatch):
    monkeypatch.setenv("QUACK_DATA", str(env["root"] / "encoded"))
    at = opened(env["root"] / "encoded", **{session.CHECKPOINT: str(env["other"])})
    text = one_sentence(at)
    assert "encoded" in text and env["checkpoint"].name in text and "Model page" in text


def test_encoded_latents_of_some_records_only_are_refused_in_one_sentence(env, monkeypatch):
    monkeypatch.setenv("QUACK_DATA", str(env["root"] / "labelled"))
    text = one_sentence(opened(env["root"] / "labelled"))
    assert "labelled records only" in text and "quack encode" in text


def test_a_moved_encoded_folder_finds_its_data_set_beside_it(env, monkeypatch, tmp_path):
    shutil.copytree(env["root"] / "data", tmp_path / "data-copy")
    shutil.copytree(env["root"] / "encoded", tmp_path / "encoded")
    info = json.loads((tmp_path / "encoded" / "metadata.json").read_text())
    info["data_set"]["path"] = str(tmp_path / "gone")
    (tmp_path / "encoded" / "metadata.json").write_text(json.dumps(info))
    monkeypatch.setenv("QUACK_DATA", str(tmp_path / "encoded"))
    at = opened(tmp_path / "encoded")
    clean(at)
    assert records_shown(at) == rows(env["root"] / "data")


def test_data_named_at_start_that_is_not_there_is_one_sentence(env, monkeypatch):
    monkeypatch.setenv("QUACK_DATA", str(env["root"] / "nowhere"))
    text = one_sentence(opened(env["root"] / "nowhere"))
    assert "nowhere does not exist" in text and "QUACK_DATA" in text


def test_texts_are_read_for_the_ids_asked_and_streamed_whole_across_parts(env):
    from dashboard import loaders, tables
    from quack.data.datafolder import DataFolder

    folder = env["root"] / "parts"
    whole = DataFolder.open(folder).read_rows(list(responses.TEXT_COLUMNS))
    n = len(whole)
    ids = [n - 1, 0, 5, n - 1, 70]
    assert list(responses.texts(folder, ids)) == list(tables.response_texts(whole).to_numpy()[ids])
    assert list(responses.bodies(folder, ids)) == whole["body"].fillna("").to_numpy()[ids].tolist()
    assert list(responses.iter_bodies(folder)) == whole["body"].fillna("").tolist()
    assert responses.snippets(folder).to_pylist() == [tables.snippet(t) for t in tables.response_texts(whole)]
    records = loaders.rows(folder)
    assert records["id"].tolist() == list(range(n)) and records["country"].dtype == "category"
    assert "body" not in records, "the records frame holds no response text"
    with pytest.raises(ValueError, match=f"no record {n} in this data set"):
        responses.texts(folder, [n])
