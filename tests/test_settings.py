"""The dashboard's settings and sources: read from the environment when asked, never on import."""

import json
import os
import subprocess
import sys

from pathlib import Path

import pytest

from dashboard import settings, sources

STATE_MODULES = ("settings", "jobs", "session", "sources", "loaders", "results", "tables", "training_runs")


@pytest.mark.slow
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


def test_data_roots_default_to_the_dashboards_own_folders_and_follow_the_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("QUACK_CACHE_DIR", str(tmp_path / "c"))
    monkeypatch.setenv("QUACK_CHECKPOINT_DIR", str(tmp_path / "k"))
    monkeypatch.delenv("QUACK_DATA_ROOTS", raising=False)
    shared = settings.data_roots().folders
    assert shared == (tmp_path / "c", tmp_path / "k", settings.shipped_checkpoint().parent)
    monkeypatch.setenv("QUACK_DATA_ROOTS", os.pathsep.join([str(tmp_path / "a"), str(tmp_path / "b")]))
    assert settings.data_roots().folders == (tmp_path / "a", tmp_path / "b")


@pytest.mark.parametrize("variable, read, default, three", [
    ("QUACK_UPLOAD_LIMIT_MB", settings.upload_limit_bytes, 4_096_000_000, 3_000_000),
    ("QUACK_UPLOAD_MAX_ROWS", settings.upload_max_rows, 2_000_000, 3),
])
def test_upload_bounds_read_their_variables(monkeypatch, variable, read, default, three):
    monkeypatch.delenv(variable, raising=False)
    assert read() == default
    monkeypatch.setenv(variable, "3")
    assert read() == three
    monkeypatch.setenv(variable, "lots")
    with pytest.raises(ValueError, match=f"^{variable} must be a positive whole number"):
        read()


def test_a_path_outside_the_shared_folders_reads_as_missing(monkeypatch, tmp_path):
    shared, outside = tmp_path / "shared", tmp_path / "outside"
    shared.mkdir(), outside.mkdir()
    (outside / "real.json").write_text("{}\n")
    (shared / "inside.json").write_text("{}\n")
    (shared / "link.json").symlink_to(outside / "real.json")
    monkeypatch.setenv("QUACK_DATA_ROOTS", str(shared))
    refusals = set()
    for typed in (outside / "real.json", outside / "missing.json", shared / "missing.json", "link.json",
                  "../outside/real.json", "/"):
        with pytest.raises(ValueError) as refused:
            sources.path_source(str(typed))
        refusals.add(str(refused.value))
    (refusal,) = refusals
    assert str(outside) not in refusal and str(shared) in refusal
    source = sources.path_source("inside.json", keep_partial=True)
    assert source == {"kind": "path", "paths": [str((shared / "inside.json").resolve())], "name": "inside.json",
                      "keep_partial": True, "holds": "raw"}


def test_uploads_are_kept_by_content(monkeypatch, tmp_path):
    monkeypatch.setenv("QUACK_CACHE_DIR", str(tmp_path))
    with sources.upload_source([("my file?.json", b'{"a": 1}\n')]) as source:
        pass
    with sources.upload_source([("my file?.json", b'{"a": 1}\n')]) as again:
        pass
    assert source == again and source["name"] == "my file?.json"
    (path,) = source["paths"]
    assert path.endswith("-my_file_.json") and json.loads(open(path).read()) == {"a": 1}
    with pytest.raises(ValueError, match="No file was uploaded"):
        with sources.upload_source([]):
            pass


def test_uploads_that_make_no_data_set_are_deleted_and_a_reused_one_is_kept(monkeypatch, tmp_path):
    monkeypatch.setenv("QUACK_CACHE_DIR", str(tmp_path))
    with sources.upload_source([("kept.json", b"1\n")]) as kept:
        pass
    with pytest.raises(ValueError, match="no data set"):
        with sources.upload_source([("kept.json", b"1\n"), ("new.json", b"2\n")]):
            raise ValueError("no data set")
    assert [p.name for p in settings.upload_folder().iterdir()] == [Path(kept["paths"][0]).name]


def test_uploads_past_the_limit_are_refused_in_one_sentence(monkeypatch, tmp_path):
    monkeypatch.setenv("QUACK_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("QUACK_UPLOAD_LIMIT_MB", "1")
    with sources.upload_source([("first.json", b"x" * 600_000)]):
        pass
    with pytest.raises(ValueError, match=r"^'second\.json' \(0\.6 MB\) was not kept: uploads already take 0\.6 MB "
                                         r"of the 1\.0 MB .*QUACK_UPLOAD_LIMIT_MB.*\.$"):
        with sources.upload_source([("second.json", b"y" * 600_000)]):
            pass
    with pytest.raises(ValueError, match="QUACK_UPLOAD_LIMIT_MB"):
        sources.save_checkpoint_upload("big.ckpt", b"z" * 600_000)
    assert len(list(settings.upload_folder().rglob("*"))) == 1, "only the first upload is kept"


def crafted_checkpoint(vocabulary: int) -> bytes:
    """A small checkpoint claiming a model of ``vocabulary`` tokens."""
    import io

    import torch

    buffer = io.BytesIO()
    torch.save({"state_dict": {"embed.weight": torch.zeros(2, 2)},
                "hyper_parameters": {"num_embeddings": vocabulary, "embed_size": 16, "hidden_size": 32}}, buffer)
    return buffer.getvalue()


def test_a_refused_checkpoint_upload_is_deleted_at_once_and_never_listed(monkeypatch, tmp_path):
    monkeypatch.setenv("QUACK_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("QUACK_CHECKPOINT_DIR", str(tmp_path / "checkpoints"))
    for name, data in (("huge.ckpt", crafted_checkpoint(10**9)), ("junk.ckpt", b"not a checkpoint")):
        with pytest.raises(ValueError, match=f"^'{name}' "):
            sources.save_checkpoint_upload(name, data)
    assert not [p for p in settings.upload_folder().rglob("*") if p.is_file()]
    assert sources.list_checkpoints() == [settings.shipped_checkpoint().resolve()]


def test_checkpoints_are_described_without_naming_server_folders(monkeypatch, tmp_path):
    monkeypatch.setenv("QUACK_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("QUACK_CHECKPOINT_DIR", str(tmp_path / "checkpoints"))
    shipped = settings.shipped_checkpoint()
    assert sources.describe_checkpoint(shipped) == f"{shipped.name} (shipped)"
    assert sources.describe_checkpoint(sources.checkpoint_upload_folder() / "1a2b-mine.ckpt") == "1a2b-mine.ckpt (uploaded)"
    assert sources.describe_checkpoint(tmp_path / "checkpoints" / "trained" / "run.ckpt") == "trained/run.ckpt"
    assert sources.describe_checkpoint(tmp_path / "elsewhere" / "other.ckpt") == "other.ckpt"


def test_the_data_opened_at_start_comes_from_the_command_line_else_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("QUACK_DATA", raising=False)
    monkeypatch.setattr(sys, "argv", ["dashboard/app.py"])
    assert settings.start_data() is None
    monkeypatch.setenv("QUACK_DATA", str(tmp_path / "encoded"))
    assert settings.start_data() == tmp_path / "encoded"
    monkeypatch.setattr(sys, "argv", ["dashboard/app.py", "--data", str(tmp_path / "data")])
    assert settings.start_data() == tmp_path / "data"
    monkeypatch.setattr(sys, "argv", ["dashboard/app.py", f"--data={tmp_path / 'raw.json'}"])
    assert settings.start_data() == tmp_path / "raw.json"
    monkeypatch.setenv("QUACK_DATA_ROOTS", str(tmp_path / "shared"))
    assert settings.data_roots().contains(tmp_path / "raw.json"), "the operator's data is shared"
    assert not settings.data_roots().contains(tmp_path / "other.json")
