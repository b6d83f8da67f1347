"""The dashboard's settings and sources: read from the environment when asked, never on import."""

import json
import os
import subprocess
import sys

import pytest

from dashboard import settings, sources

STATE_MODULES = ("settings", "jobs", "session", "sources", "loaders", "results", "tables", "training_runs")


def test_importing_the_state_layer_creates_nothing_and_leaves_the_view_alone(tmp_path):
    cache = tmp_path / "not-yet"
    imports = "; ".join(f"import dashboard.{m}" for m in STATE_MODULES)
    code = f"import sys, os; {imports}; print('dashboard.charts' in sys.modules, 'NUMBA_CACHE_DIR' in os.environ)"
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["QUACK_CACHE_DIR"] = str(cache)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.split() == ["False", "False"]
    assert not cache.exists()


def test_settings_read_the_environment_when_asked(monkeypatch, tmp_path):
    monkeypatch.setenv("QUACK_CACHE_DIR", str(tmp_path / "c"))
    monkeypatch.setenv("QUACK_CHECKPOINT_DIR", str(tmp_path / "k"))
    monkeypatch.setenv("QUACK_CHECKPOINT", str(tmp_path / "m.ckpt"))
    monkeypatch.delenv("QUACK_SAMPLE_SIZE", raising=False)
    assert settings.cache_root() == tmp_path / "c" and settings.checkpoint_root() == tmp_path / "k"
    assert settings.default_checkpoint() == tmp_path / "m.ckpt"
    assert settings.sample_size() == settings.DEFAULT_SAMPLE_SIZE
    assert settings.sample_folder(300) != settings.sample_folder(400)
    monkeypatch.delenv("QUACK_CHECKPOINT")
    assert settings.default_checkpoint() == settings.shipped_checkpoint()


@pytest.mark.parametrize("value", ["0", "-5", "lots", "1.5"])
def test_a_bad_sample_size_is_one_sentence_naming_the_variable(monkeypatch, value):
    monkeypatch.setenv("QUACK_SAMPLE_SIZE", value)
    with pytest.raises(ValueError, match=r"^QUACK_SAMPLE_SIZE must be a positive whole number, got .*; fix it and restart\.$"):
        settings.sample_size()


def test_another_sample_size_makes_another_sample(monkeypatch, tmp_path):
    monkeypatch.setenv("QUACK_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("QUACK_SAMPLE_SIZE", "20")
    small = sources.sample_files()
    monkeypatch.setenv("QUACK_SAMPLE_SIZE", "30")
    larger = sources.sample_files()
    assert small != larger and small.name == larger.name == "sample.json"
    assert len(small.read_text().splitlines()) == 20 and len(larger.read_text().splitlines()) == 30
    assert sources.sample_truth_file().parent == larger.parent
    assert sources.sample_files() == larger, "an existing sample is reused"


def test_a_missing_path_is_one_sentence(tmp_path):
    with pytest.raises(ValueError, match="does not exist on this server"):
        sources.path_source(str(tmp_path / "nothing.json"))


def test_uploads_are_kept_by_content(monkeypatch, tmp_path):
    monkeypatch.setenv("QUACK_CACHE_DIR", str(tmp_path))
    source = sources.upload_source([("my file?.json", b'{"a": 1}\n')])
    again = sources.upload_source([("my file?.json", b'{"a": 1}\n')])
    assert source == again and source["name"] == "my file?.json"
    (path,) = source["paths"]
    assert path.endswith("-my_file_.json") and json.loads(open(path).read()) == {"a": 1}
    with pytest.raises(ValueError, match="No file was uploaded"):
        sources.upload_source([])
