"""Served to a team, one session cannot slow, fill or mislead the others (SECURITY.md, Bounds)."""

import io
import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from dashboard import job_store, session, sources, uploads
from quack.fingerprints.patterns import MAX_PATTERN_CHARS, PatternError, PatternTimeout, compile_pattern
from test_app import click, env, errors_of, pattern_box, run_page, workspace  # noqa: F401  (page fixtures)

CJK = "".join(chr(0x4E00 + i) for i in range(20_000))


@pytest.fixture()
def store():
    made = job_store.JobStore(max_items=8, work_workers=1, training_workers=1, max_queued=3,
                              max_queued_per_session=2)
    yield made
    made.shutdown()


@pytest.fixture()
def busy(store):
    """The store's one work thread held until the test lets it go."""
    gate, running = threading.Event(), threading.Event()
    holder = store.submit(("hold", 0), lambda: (running.set(), gate.wait(30)))
    # Until its thread takes it, the holder itself would count as waiting.
    assert running.wait(30)
    yield gate
    gate.set()
    holder.result(timeout=30)


# ----------------------------------------------------------------------------------
# Finding 1: waiting work, superseded jobs and the store's memory.


def test_a_superseded_job_nobody_waits_for_is_cancelled_before_it_runs(store, busy):
    ran = []
    first = store.submit(("umap", 15), lambda: ran.append(15), owner="a")
    second = store.submit(("umap", 16), lambda: ran.append(16), owner="a")
    assert first.cancelled() and not second.done()
    assert store.submit(("umap", 15), lambda: None, start=False) is None
    busy.set()
    second.result(timeout=30)
    assert ran == [16]


def test_a_job_another_session_waits_for_is_not_cancelled(store, busy):
    shared = store.submit(("umap", 15), lambda: "map", owner="a")
    assert store.submit(("umap", 15), lambda: "map", owner="b") is shared
    store.submit(("umap", 16), lambda: "other", owner="a")
    assert not shared.cancelled()
    busy.set()
    assert shared.result(timeout=30) == "map"


def test_waiting_work_is_bounded_per_session_and_in_total(store, busy):
    store.submit(("umap", 1), lambda: 1, owner="a")
    store.submit(("evaluation", 1), lambda: 1, owner="a")
    with pytest.raises(job_store.QueueFull, match="This session already has 2 computations waiting"):
        store.submit(("clusters", 1), lambda: 1, owner="a")
    store.submit(("umap", 2), lambda: 1, owner="b")
    with pytest.raises(job_store.QueueFull, match="The server already has 3 computations waiting"):
        store.submit(("evaluation", 2), lambda: 1, owner="b")
    assert store.queued() == 3 and store.queued("a") == 2


def test_pressing_an_option_ten_times_leaves_one_job_waiting(store, busy):
    for neighbours in range(5, 15):
        store.submit(("umap", neighbours), lambda: None, owner="a")
    assert store.queued() == 1 and store.queued("a") == 1


def test_a_finished_job_keeps_no_result_beyond_the_stores_bounds(store):
    for i in range(3):
        store.submit(("map", i), lambda i=i: np.full(10, i)).result(timeout=30)
    for i in range(3, 20):
        store.put(("other", i), i)
    assert store.finished(("map", 0)) is None and not store.has(("map", 0))


def test_results_are_bounded_by_bytes():
    bounded = job_store.JobStore(max_bytes=10_000, work_workers=1, training_workers=1)
    try:
        for i in range(5):
            bounded.put(("latents", i), np.zeros(1000, np.float32))  # 4,000 bytes each
        assert bounded.stored_bytes() <= 10_000
        assert bounded.has(("latents", 4)) and not bounded.has(("latents", 0))
        bounded.put(("huge", 0), np.zeros(10_000, np.float32))
        assert bounded.has(("huge", 0)), "the newest result is kept whatever its size"
        assert bounded.stored_bytes() == 40_000
    finally:
        bounded.shutdown()


def test_result_bytes_counts_arrays_inside_results():
    @dataclass
    class Encoded:
        latents: np.ndarray
        loss: np.ndarray

    value = (Encoded(np.zeros((100, 8), np.float32), np.zeros(100, np.float32)), np.zeros(50, np.int64))
    assert job_store.result_bytes(value) == 100 * 8 * 4 + 100 * 4 + 50 * 8


def test_foreground_work_is_computed_once_and_one_at_a_time_per_session(store):
    entered, release, calls = threading.Event(), threading.Event(), []

    def first() -> None:
        with store.foreground("encoded", "a") as needed:
            assert needed
            calls.append("a")
            entered.set()
            release.wait(30)
            store.put("encoded", "latents")

    thread = threading.Thread(target=first)
    thread.start()
    assert entered.wait(30)
    with pytest.raises(job_store.QueueFull, match="This session is still computing"):
        with store.foreground("classifier", "a"):
            pass
    waited = []
    other = threading.Thread(target=lambda: waited.append(store.foreground("encoded", "b").__enter__()))
    other.start()
    # A rerun of session a asks for what its run before still computes: it waits for it, it is not refused.
    again = threading.Thread(target=lambda: waited.append(store.foreground("encoded", "a").__enter__()))
    again.start()
    release.set()
    thread.join(30)
    other.join(30)
    again.join(30)
    assert calls == ["a"] and waited == [False, False], "the second session and the rerun took the first one's result"


# ----------------------------------------------------------------------------------
# Finding 2: a pattern's length and its compilation's deadline.


def test_a_pattern_over_the_length_bound_is_refused_before_any_work():
    with pytest.raises(PatternError, match=f"more than the {MAX_PATTERN_CHARS:,} allowed"):
        compile_pattern("(?i)" + CJK, "the Discover page's pattern box")
    assert MAX_PATTERN_CHARS == 2_000


def test_compiling_stops_at_its_deadline():
    with pytest.raises(PatternTimeout, match="did not compile within the time allowed"):
        compile_pattern("(?i)[a-z]+Blocked", "the Discover page's pattern box", deadline=time.monotonic() - 1)


def test_a_scan_deadline_covers_compiling_its_patterns():
    from quack.discovery.proposals import match_counts

    with pytest.raises(PatternTimeout):
        match_counts(["(?i)denied"], [["Access denied"]], np.array([0]), deadline=time.monotonic() - 1)


def test_uncased_characters_ignoring_case_match_exactly_what_python_matches():
    import re

    pattern = compile_pattern("(?i)" + CJK[:1990], "a test")
    assert pattern.search("x" + CJK[:1990] + "y")
    assert not pattern.search(CJK[1:1991])
    # Every character both of whose case mappings are itself, as one case-insensitive class:
    # Python's re must find exactly those characters among all of Unicode.
    uncased = [c for c in map(chr, range(0x110000)) if c.lower() == c and c.upper() == c]
    ranges = []
    for code in sorted(map(ord, uncased)):
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])
    text = "".join(map(chr, range(0x110000)))
    spelled = "".join(f"\\U{lo:08x}-\\U{hi:08x}" for lo, hi in ranges)
    assert len(re.findall(f"(?i)[{spelled}]", text)) == len(uncased)


# ----------------------------------------------------------------------------------
# Finding 4: a relabelling has a bound on its whole run.


def test_relabelling_stops_at_its_deadline_naming_the_file(tmp_path):
    from quack.fingerprints.labels import relabel_rows

    user = tmp_path / "mine.json"
    user.write_text(json.dumps({"fingerprint": "e_unk_mine", "pattern": "Blocked"}) + "\n")
    frame = pd.DataFrame({"id": [0, 1], "label": [0, 0], "fingerprint": ["", ""], "anomaly": [True, True],
                          "body": ["Blocked", "fine"]})
    assert relabel_rows(frame, [user], match="body")["label"].tolist() == [1, 0]
    with pytest.raises(PatternTimeout, match=r"Labelling with mine\.json did not finish in the time allowed"):
        relabel_rows(frame, [user], match="body", deadline=time.monotonic() - 1)


# ----------------------------------------------------------------------------------
# Finding 5: two writers of one export name.


def test_two_writers_of_one_new_name_one_is_refused_and_the_folder_is_the_others(trained_sample, tmp_path):
    from quack.model.encoding import load_checkpoint, write_encoded
    from quack.model.reader import load_encoded, read_metadata

    model = load_checkpoint(trained_sample["checkpoint"])
    target = tmp_path / "exports" / "same-name"
    start, outcomes = threading.Barrier(2), []

    def write() -> None:
        start.wait(30)
        try:
            write_encoded(model, trained_sample["data"], target, new=True, accelerator="cpu", batch_size=128)
            outcomes.append("wrote")
        except ValueError as error:
            outcomes.append(str(error))

    threads = [threading.Thread(target=write) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert sorted(outcomes)[1] == "wrote", outcomes
    assert sorted(outcomes)[0] == ("An output named 'same-name' already exists or is being written right now; "
                                   "choose another name.")
    assert len(load_encoded(target)) == read_metadata(target)["total"]


# ----------------------------------------------------------------------------------
# Finding 9: what an upload may hold, and a line's responses.


def test_an_upload_of_too_many_files_is_refused_before_anything_is_kept(dashboard_env):
    root = dashboard_env("team-bounds", 300)
    files = [(f"part-{i}.json", f'{{"n": {i}}}\n'.encode()) for i in range(uploads.MAX_FILES + 1)]
    with pytest.raises(ValueError, match=f"upload at most {uploads.MAX_FILES} at a time"):
        with sources.upload_source(files):
            pass
    assert not (root / "cache" / "uploads").exists() or not any((root / "cache" / "uploads").iterdir())


def test_an_upload_larger_than_one_upload_may_hold_is_refused_unread(tmp_path):
    big = tmp_path / "sparse.json"
    with open(big, "wb") as handle:
        handle.truncate(uploads.MAX_BATCH_BYTES + 1)  # sparse: nothing is written or read
    with open(big, "rb") as handle, pytest.raises(ValueError, match="more than the 1,000 MB one upload may hold"):
        uploads.check_batch([("sparse.json", handle)])


def test_an_upload_reaches_disk_from_its_file_object_unchanged(dashboard_env):
    dashboard_env("team-bounds", 300)
    content = b"".join(b'{"line": %d}\n' % i for i in range(200_000))  # several chunks
    buffer = io.BytesIO(content)
    with sources.upload_source([("lines.json", buffer)]) as source:
        kept = Path(source["paths"][0])
        assert kept.read_bytes() == content
        assert kept.name.startswith(uploads.digest(content)[:10])


def test_a_line_with_more_responses_than_a_measurement_holds_is_skipped():
    from quack.data.records import MAX_PROBES, IngestStats, rows_of_line

    probe = {"matches_template": False, "response": {"status": "200 OK", "body": "x"}}
    record = {"vp": "1.2.3.4", "test_url": "example.com", "service": "http", "anomaly": True,
              "response": [probe] * (MAX_PROBES + 1)}
    stats = IngestStats()
    assert rows_of_line(json.dumps(record).encode(), "big.json", 1, "http", stats, False) == []
    assert stats.skipped["too many responses"] == 1
    record["response"] = [probe] * 3
    assert len(rows_of_line(json.dumps(record).encode(), "ok.json", 1, "http", IngestStats(), False)) == 3


# ----------------------------------------------------------------------------------
# Finding 10: a checkpoint's tokenizer, and whom an upload is offered to.


def test_a_checkpoint_whose_tokenizer_claims_too_much_is_refused(tmp_path):
    from quack.data.tokenizer import MAX_MAX_TOKENS
    from quack.model.checkpoint import read_checkpoint
    from quack.model.encoding import SHIPPED_CHECKPOINT

    checkpoint = torch.load(SHIPPED_CHECKPOINT, map_location="cpu", weights_only=True)
    tokenizer = json.loads(checkpoint["quack_tokenizer"])
    tokenizer["max_tokens"] = 100_000
    checkpoint["quack_tokenizer"] = json.dumps(tokenizer)
    crafted = tmp_path / "crafted.ckpt"
    torch.save(checkpoint, crafted)
    with pytest.raises(ValueError, match=f"tokenizer in .*crafted.ckpt is refused: max_tokens must be an integer "
                                         f"from 16 to {MAX_MAX_TOKENS:,}, got 100000"):
        read_checkpoint(crafted)


def test_an_uploaded_checkpoint_is_offered_only_to_the_session_that_uploaded_it(dashboard_env):
    dashboard_env("team-bounds", 300)
    folder = sources.checkpoint_upload_folder()
    folder.mkdir(parents=True, exist_ok=True)
    uploaded = folder / "0123456789-mine.ckpt"
    uploaded.write_bytes(b"kept once it loaded")
    assert uploaded.resolve() not in sources.list_checkpoints()
    assert uploaded.resolve() in sources.list_checkpoints([uploaded])


# ----------------------------------------------------------------------------------
# Findings 3 and 4 on the Discover page, two sessions side by side.


@pytest.mark.slow
def test_one_sessions_fingerprints_relabel_anothers_data_only_when_shared_by_choice(env):
    first = run_page("discover")
    first.slider(key="cluster_size").set_value(10).run()
    offered_first = first.text_input(key="fp_file").value
    [t for t in first.text_input if t.label == "Fingerprint name"][0].input("e_unk_everything").run()
    pattern_box(first).input("(?s).").run()
    click(first, "Save fingerprint")
    assert any("your fingerprint file" in s.value for s in first.success), errors_of(first)

    second = run_page("discover")
    second.slider(key="cluster_size").set_value(10).run()
    offered_second = second.text_input(key="fp_file").value
    assert offered_second != offered_first
    click(second, "Relabel the data with my fingerprints")
    assert errors_of(second) == [f"There is no fingerprint file named {offered_second!r} yet; "
                                 "save a fingerprint to it first."]
    second.text_input(key="fp_file").input(offered_first).run()
    click(second, "Relabel the data with my fingerprints")
    assert len(errors_of(second)) == 1 and "was not written in this session" in errors_of(second)[0]
    assert session.RELABELLED not in second.session_state
    second.checkbox(key="fp_shared").check().run()
    click(second, "Relabel the data with my fingerprints")
    assert any(f"shared fingerprint file {offered_first}" in s.value.replace("\\", "") for s in second.success)


@pytest.mark.slow
def test_save_refuses_what_the_pattern_box_refuses(env):
    at = run_page("discover")
    at.slider(key="cluster_size").set_value(10).run()
    at.text_input(key="fp_file").input("runaway.json").run()
    pattern_box(at).input("(.|.)+(?<=\\x00)").run(timeout=60)
    assert len(errors_of(at)) == 1, "the box refuses it"
    click(at, "Save fingerprint")
    assert not at.exception and len(errors_of(at)) == 2
    assert "ran longer than" in errors_of(at)[1] and "the fingerprint to save" in errors_of(at)[1]
    assert not (Path(env["root"]) / "cache" / "fingerprints" / "runaway.json").exists()


def test_many_small_results_of_other_sessions_do_not_push_out_what_every_visitor_needs():
    from dashboard import jobs

    identity = jobs.Identity(("data", "v1"), ("checkpoint", 1, 1))
    first = [jobs.encoded_key(identity, False), jobs.pca_key(identity, 2), jobs.umap_key(identity, 2, **jobs.UMAP_DEFAULTS)]
    assert all(jobs.first_view(key) for key in first)
    assert not jobs.first_view(jobs.umap_key(identity, 2, 16, 0.1, "euclidean", 50_000))
    assert not jobs.first_view(jobs.pca_key(identity, 3))
    made = job_store.JobStore(max_items=5, work_workers=1, training_workers=1, kept=jobs.first_view, max_kept=3)
    try:
        for key in first:
            made.put(key, np.zeros(4))
        for neighbours in range(20, 60):
            made.put(jobs.umap_key(identity, 2, neighbours, 0.1, "euclidean", 50_000), np.zeros(4))
        assert all(made.has(key) for key in first), "the first view survives forty other maps"
        assert sum(made.has(jobs.umap_key(identity, 2, n, 0.1, "euclidean", 50_000)) for n in range(20, 60)) == 2
        # Only the newest max_kept are spared: a fourth data set's first view pushes out the oldest.
        other = jobs.Identity(("other", "v1"), ("checkpoint", 1, 1))
        made.put(jobs.encoded_key(other, False), np.zeros(4))
        assert not made.has(first[0]) and made.has(first[2])
    finally:
        made.shutdown()
