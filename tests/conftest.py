"""Fixtures shared by the dashboard's tests."""

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
