"""An encoded folder is read, not encoded again: no page runs the model over the records.

``quack encode`` writes each record's reconstruction loss beside its latent, so the
Latent map's colour by loss, the Discover page's background evaluation and the Export
page read them. Lightning's ``Trainer`` is what runs the model over records (encoding,
the loss pass, training); its constructor is counted with a wrapper around the real one.
A folder written without the losses (``--no-loss``, or before they were written) still
opens, and its losses are computed once asked for.
"""

import shutil
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from streamlit.testing.v1 import AppTest

from conftest import APP, TIMEOUT, assert_clean
from dashboard import jobs, rankings
from quack.cli.main import main

torch.set_num_threads(1)

PAGES = ("data", "latent_map", "attention", "discover", "model", "export")


@pytest.fixture(scope="module")
def folders(tmp_path_factory, trained_sample):
    """Two copies of the small data set, one encoded by `quack encode` as it is, one with --no-loss.

    Each encoded folder has a data set of its own, so nothing one computes is found by the other.
    """
    root = tmp_path_factory.mktemp("encoded-app")
    checkpoint = str(trained_sample["checkpoint"])
    for name, extra in (("with-loss", []), ("no-loss", ["--no-loss"])):
        shutil.copytree(trained_sample["data"], root / f"data-{name}")
        code = main(["encode", "--data", str(root / f"data-{name}"), "--checkpoint", checkpoint,
                     "--out", str(root / f"encoded-{name}"), "--accelerator", "cpu", *extra])
        assert code == 0
    # A data set opened as it is, to be encoded in the dashboard.
    shutil.copytree(trained_sample["data"], root / "data-plain")
    return root


@pytest.fixture()
def trainers(monkeypatch):
    """How many Lightning Trainers were constructed since the test began (any thread)."""
    made = []
    real = pl.Trainer.__init__

    def counted(self, *args, **kwargs):
        made.append(1)
        real(self, *args, **kwargs)

    monkeypatch.setattr(pl.Trainer, "__init__", counted)
    return made


@pytest.fixture()
def env(folders, dashboard_env, monkeypatch):
    dashboard_env("encoded-app", 300)
    return folders


def page(name: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.switch_page(f"app_pages/{name}.py").run()
    assert_clean(at)
    return at


def encoded_at(at: AppTest) -> tuple[str, str]:
    metric = next(m for m in at.metric if m.label == "Encoded at")
    return metric.value, metric.proto.help


def wait_for_evaluation(folder: Path) -> None:
    """The Discover page's background evaluation, once done, as the page started it."""
    from quack.data.datafolder import read_rows
    from quack.model.reader import unchecked_metadata

    data = Path(unchecked_metadata(folder)["data_set"]["path"])
    checkpoint = unchecked_metadata(folder)["checkpoint"]["path"]
    labels = read_rows(data, ["label"])["label"].to_numpy()
    key = jobs.evaluation_key(jobs.Identity.of(data, checkpoint), labels, rankings.MAX_FOLDS, rankings.CONFIG.top)
    job = jobs.store().submit(key, lambda: None, start=False)
    assert job is not None, "the Discover page started its evaluation"
    assert job.result(timeout=600).folds


def test_quack_encode_writes_the_losses_by_default(env):
    from quack.model.reader import holds_loss, load_encoded

    assert holds_loss(env / "encoded-with-loss") and not holds_loss(env / "encoded-no-loss")
    losses = load_encoded(env / "encoded-with-loss")["reconstruction_loss"].to_numpy()
    assert len(losses) and (losses > 0).all()


def test_no_page_of_an_encoded_folder_runs_the_model_over_the_records(env, monkeypatch, trainers):
    monkeypatch.setenv("QUACK_DATA", str(env / "encoded-with-loss"))
    for name in PAGES:
        at = page(name)
        if name == "latent_map":
            at.selectbox(key="map_colour").set_value("loss").run()
            assert_clean(at)
        if name == "discover":
            wait_for_evaluation(env / "encoded-with-loss")
            at.run()
            assert_clean(at)
    assert not trainers, f"{len(trainers)} Trainer(s) started on the pages of an encoded folder"


def test_an_encoded_folder_without_losses_opens_and_computes_them_when_asked(env, monkeypatch, trainers):
    monkeypatch.setenv("QUACK_DATA", str(env / "encoded-no-loss"))
    at = page("latent_map")
    assert not trainers, "the latents were read"
    shown = encoded_at(at)
    assert "read from the encoded folder" in shown[1]
    at.selectbox(key="map_colour").set_value("loss").run()
    assert_clean(at)
    assert len(trainers) == 1, "the losses the folder lacks were computed by the model, once"
    at.run()
    assert_clean(at)
    assert encoded_at(at) == shown, "the loss pass does not change the encoding's rate or device"


def test_the_encoding_rate_stays_the_encodings_after_the_loss_pass(env, monkeypatch, trained_sample):
    monkeypatch.setenv("QUACK_DATA", str(env / "data-plain"))
    monkeypatch.setenv("QUACK_CHECKPOINT", str(trained_sample["checkpoint"]))
    at = page("latent_map")
    shown = encoded_at(at)
    at.selectbox(key="map_colour").set_value("loss").run()
    at.run()
    assert_clean(at)
    assert encoded_at(at) == shown
