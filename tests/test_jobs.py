"""The dashboard's job store and its cache keys, without Streamlit."""

import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from dashboard import jobs


@pytest.fixture()
def store():
    made = jobs.JobStore(max_items=3, work_workers=1, training_workers=1)
    yield made
    made.shutdown()


@pytest.fixture()
def identity(tmp_path):
    (tmp_path / "data").mkdir()
    for name in ("rows.parquet", "info.json", "tokenizer.json"):
        (tmp_path / "data" / name).write_bytes(b"data set file")
    (tmp_path / "model.ckpt").write_bytes(b"weights")
    return jobs.Identity.of(tmp_path / "data", tmp_path / "model.ckpt")


def test_a_long_training_job_does_not_block_a_projection(store):
    release = threading.Event()
    training = store.training.submit(release.wait, 60)
    try:
        projection = store.submit(("umap", "x"), lambda: "map")
        assert projection.result(timeout=10) == "map"
        assert not training.done(), "training was still running meanwhile"
    finally:
        release.set()
    assert training.result(timeout=10) is True


def test_each_key_is_computed_once_and_shared(store):
    calls = []
    gate = threading.Event()

    def compute():
        calls.append(1)
        gate.wait(10)
        return 42

    first = store.submit("k", compute)
    second = store.submit("k", compute)
    assert second is first
    gate.set()
    assert first.result(timeout=10) == 42
    assert store.get("k") == 42 and store.finished("k") == 42
    assert store.submit("k", compute).result(timeout=1) == 42
    assert len(calls) == 1


def test_without_start_nothing_runs(store):
    assert store.submit("absent", lambda: 1, start=False) is None
    assert store.finished("absent") is None
    store.put("there", 7)
    assert store.submit("there", lambda: 1, start=False).result(timeout=1) == 7


def test_a_failed_job_is_tried_again(store):
    attempts = []

    def flaky():
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("first try fails")
        return "ok"

    job = store.submit("flaky", flaky)
    with pytest.raises(RuntimeError, match="first try fails"):
        job.result(timeout=10)
    assert store.finished("flaky") is None
    assert store.submit("flaky", flaky).result(timeout=10) == "ok"


def test_forget_drops_a_result(store):
    store.put("k", 1)
    store.forget("k")
    assert not store.has("k") and store.get("k") is None


def test_the_least_recently_used_result_goes_first(store):
    for key in "abc":
        store.put(key, key)
    store.get("a")
    store.put("d", "d")
    assert [store.has(k) for k in "abcd"] == [True, False, True, True]


def test_the_process_store_is_one_object():
    assert jobs.store() is jobs.store()
    assert jobs.store().work is not jobs.store().training


def test_result_keys_are_equal_for_equal_inputs_and_differ_otherwise(identity, tmp_path):
    same = jobs.Identity.of(tmp_path / "data", tmp_path / "model.ckpt")
    assert same == identity
    labels = np.array([1, 0, -1])
    assert jobs.encoded_key(same, False) == jobs.encoded_key(identity, False) != jobs.encoded_key(identity, True)
    assert jobs.pca_key(same, 2) == jobs.pca_key(identity, 2) != jobs.pca_key(identity, 3)
    assert jobs.umap_key(same, 2, 15, 0.1, "euclidean") == jobs.umap_key(identity, 2, 15, 0.100001, "euclidean")
    assert jobs.umap_key(identity, 2, 15, 0.1, "euclidean") != jobs.umap_key(identity, 2, 15, 0.1, "cosine")
    assert jobs.classifier_key(same, labels.copy()) == jobs.classifier_key(identity, labels)
    assert jobs.classifier_key(identity, labels) != jobs.classifier_key(identity, np.array([1, 1, -1]))
    assert jobs.clusters_key(same, 25) == jobs.clusters_key(identity, 25) != jobs.clusters_key(identity, 10)


def test_keys_change_when_a_file_changes(identity, tmp_path):
    time.sleep(0.01)
    (tmp_path / "model.ckpt").write_bytes(b"other weights")
    changed = jobs.Identity.of(tmp_path / "data", tmp_path / "model.ckpt")
    assert changed.data == identity.data and changed != identity
    assert jobs.pca_key(changed, 2) != jobs.pca_key(identity, 2)


def test_the_sample_key_follows_its_size_and_folder(monkeypatch, tmp_path):
    sample = {"kind": "sample", "paths": [], "name": "Built-in sample"}
    monkeypatch.setenv("QUACK_CACHE_DIR", str(tmp_path / "a"))
    monkeypatch.setenv("QUACK_SAMPLE_SIZE", "300")
    first = jobs.source_key(sample)
    assert jobs.source_key(dict(sample)) == first
    monkeypatch.setenv("QUACK_SAMPLE_SIZE", "400")
    assert jobs.source_key(sample) != first
    monkeypatch.setenv("QUACK_SAMPLE_SIZE", "300")
    monkeypatch.setenv("QUACK_CACHE_DIR", str(tmp_path / "b"))
    assert jobs.source_key(sample) != first
    assert jobs.dataset_key(sample, "tokenizer A") != jobs.dataset_key(sample, "tokenizer B")


def test_a_file_source_key_follows_the_file(tmp_path):
    records = tmp_path / "r.json"
    records.write_text("{}\n")
    source = {"kind": "path", "paths": [str(records)], "name": "r.json"}
    first = jobs.source_key(source)
    assert jobs.source_key(source) == first and first.startswith("path-")
    records.write_text("{}\n{}\n")
    assert jobs.source_key(source) != first


def test_keeping_a_damaged_files_first_rows_makes_another_data_set(tmp_path):
    records = tmp_path / "r.json"
    records.write_text("{}\n")
    whole = {"kind": "upload", "paths": [str(records)], "name": "r.json", "keep_partial": False}
    assert jobs.source_key(whole) != jobs.source_key(dict(whole, keep_partial=True))
    assert jobs.source_key(whole) == jobs.source_key({k: v for k, v in whole.items() if k != "keep_partial"})


def test_array_digests_name_contents_dtype_and_shape():
    labels = np.array([1, 0, -1, 0], dtype=np.int64)
    assert jobs.array_digest(labels) == jobs.array_digest(labels.copy()) == jobs.array_digest([1, 0, -1, 0], np.int64)
    changed = labels.copy()
    changed[2] = 1
    others = {jobs.array_digest(changed), jobs.array_digest(labels.astype(np.int32)),
              jobs.array_digest(labels.reshape(2, 2)), jobs.array_digest(labels[::2])}
    assert jobs.array_digest(labels) not in others and len(others) == 4
    # A slice is read as the values it holds, not the memory under it.
    assert jobs.array_digest(labels[::2]) == jobs.array_digest(np.array([1, -1], dtype=np.int64))


def test_a_process_ending_while_a_job_runs_in_torch_exits_cleanly():
    # A daemon thread still inside torch while the interpreter finalises aborts the process
    # with "terminate called without an active exception"; a stopped server must simply end.
    code = textwrap.dedent("""
        import time, torch
        from dashboard.daemon_pool import DaemonPool
        def work():
            x = torch.randn(300, 300)
            end = time.monotonic() + 60
            while time.monotonic() < end:
                x = torch.tanh(x @ x)
        DaemonPool(1, "work").submit(work)
        time.sleep(2)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr[-500:]
    assert "terminate called" not in done.stderr


def test_a_waiting_map_holds_no_thread_the_other_work_needs():
    store = jobs.JobStore(work_workers=1, map_workers=1, training_workers=1)
    release = threading.Event()
    try:
        fitting = store.submit("map", lambda: release.wait(30) and "map", maps=True)
        other = store.submit("evaluation", lambda: "done")
        assert other.result(timeout=10) == "done" and not fitting.done()
    finally:
        release.set()
    assert fitting.result(timeout=10) == "map"
    store.shutdown()
