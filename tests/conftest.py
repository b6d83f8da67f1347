"""What the tests share: the dashboard's entry point and checks, its environment, one small trained model."""

import base64
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture()
def dashboard_env(tmp_path_factory, monkeypatch):
    """Make the environment of a dashboard under test: ``make(name, sample_size)`` -> its root folder.

    The dashboard keeps its cache and checkpoints under the root (shared by the tests of one
    name, so what one test built the next reuses), opens the built-in sample of
    ``sample_size`` measurements, and neither a checkpoint nor shared folders from the
    caller's environment.
    """

    def make(name: str, sample_size: int):
        root = tmp_path_factory.getbasetemp() / name
        monkeypatch.setenv("QUACK_CACHE_DIR", str(root / "cache"))
        monkeypatch.setenv("QUACK_CHECKPOINT_DIR", str(root / "checkpoints"))
        monkeypatch.setenv("QUACK_SAMPLE_SIZE", str(sample_size))
        monkeypatch.delenv("QUACK_CHECKPOINT", raising=False)
        monkeypatch.delenv("QUACK_DATA_ROOTS", raising=False)
        return root

    return make


#: The dashboard's entry point, run by every AppTest.
APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
#: Seconds an AppTest run may take: a cold start encodes, clusters and projects on 2 cores.
TIMEOUT = 300


def assert_clean(at) -> None:
    """Fail on any exception or error box the page shows."""
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


@pytest.fixture(scope="session")
def trained_sample(tmp_path_factory) -> dict[str, Path]:
    """A generated sample, the data set built from it and a small model trained on it, made once per test process.

    Tests read these and never write into them: a test that changes a data set copies it first.
    Returns ``{"records", "data", "checkpoint"}``.
    """
    from quack.data.build import build_dataset
    from quack.model.training import fit
    from quack.sample.generator import write_sample

    root = tmp_path_factory.mktemp("trained-sample")
    records, _ = write_sample(root / "measurements.json", n=400, seed=3)
    build_dataset([str(records)], root / "data", vocab_size=1500, max_tokens=96)
    result = fit(root / "data", root / "run", model_options={"embed_size": 16, "hidden_size": 32},
                 max_epochs=1, batch_size=64, progress_bar=False, logger="none", patience=0)
    return {"records": records, "data": root / "data", "checkpoint": Path(result.checkpoint)}


def pytest_collection_modifyitems(items) -> None:
    """A browser test is a slow test too, so ``-m "not slow"`` leaves every browser out."""
    for item in items:
        if item.get_closest_marker("browser"):
            item.add_marker(pytest.mark.slow)


def pytest_sessionfinish(session, exitstatus) -> None:
    """Let the background work of the dashboards the tests ran end before the interpreter does.

    The dashboard's work threads are daemons, so a stopped server exits at once; a thread
    still inside torch or numba while the interpreter shuts down aborts the process, which
    would end a passing run with SIGABRT.
    """
    import sys

    jobs = sys.modules.get("dashboard.jobs")
    if jobs is None:
        return
    jobs.store().shutdown()


def plotly_array(value) -> np.ndarray:
    """An array of a figure's JSON, where Plotly may send numeric arrays as typed base64."""
    if isinstance(value, dict):
        flat = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        shape = value.get("shape")
        return flat.reshape([int(v) for v in str(shape).split(",")]) if shape else flat
    return np.asarray(value, dtype=float)
