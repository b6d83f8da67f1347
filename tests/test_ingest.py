"""Ingest: real Censored Planet files, archives, and every kind of bad input."""

from __future__ import annotations

import gzip
import importlib.util
import io
import json
import pickle
import random
import re
import tarfile
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quack.data.decompression import ExpansionError
from quack.data.ingest import ROW_KEYS, chunk_rows, iter_chunks, iter_rows
from quack.data.records import BODY_CHARS, IngestStats
from quack.errors import QuackInputError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "censoredplanet"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="shared Censored Planet samples not present")

# Rows per file, derived by hand from docs/quack-format.md sections 2, 3 and 5:
# v1: the test probes are Results[0..Retries]; the probe after them sends to a control domain.
#   echo/discard/http v1: two records with Retries 0 (1 probe each) and two with Retries 4
#   (5 tests + 1 control) -> 1 + 1 + 5 + 5 = 12.
#   https v1: Retries 0, 0, then Retries 2 with 3 probes and no control, then Retries 4 with a
#   control -> 1 + 1 + 3 + 5 = 10.
# v2: probes with control_url are controls. echo/discard/http v2: two records of
#   [control, test] and two of [control, 4 tests, control] (the echo one has a second
#   control for the stateful check) -> 1 + 1 + 4 + 4 = 10.
#   https v2: [control, test] twice, [control, test, test], and a record that is one failed
#   control and no test at all -> 1 + 1 + 2 + 0 = 4.
REAL_ROWS = {
    "Quack-discard_v1/discard_results_v1.json": 12,
    "Quack-discard_v2/discard_results_v2.json": 10,
    "Quack-echo_v1/echo_results_v1.json": 12,
    "Quack-echo_v2/echo_results_v2.json": 10,
    "Quack-http_v1/http_results_v1.json": 12,
    "Quack-http_v2/http_results_v2.json": 10,
    "Quack-https_v1/https_results_v1.json": 10,
    "Quack-https_v2/https_results_v2.json": 4,
}


def v2_record(**overrides) -> dict:
    """A small valid HTTP v2 trial: a pre-control and one matching test probe."""
    record = {
        "vp": "1.2.3.4",
        "location": {"country_name": "Kenya", "country_code": "KE"},
        "service": "http",
        "test_url": "example.org",
        "response": [
            {"matches_template": True, "control_url": "control-abc.com",
             "start_time": "2021-08-01T10:00:00.1-04:00", "end_time": "2021-08-01T10:00:00.2-04:00"},
            {"matches_template": True,
             "start_time": "2021-08-01T10:00:01.123456789-04:00", "end_time": "2021-08-01T10:00:01.623456789-04:00"},
        ],
        "anomaly": False,
        "controls_failed": False,
        "stateful_block": False,
        "tag": "2021-08-01T01:01:01",
    }
    record.update(overrides)
    return record


def write_lines(path: Path, lines: list) -> Path:
    with open(path, "wb") as f:
        for line in lines:
            f.write(line if isinstance(line, bytes) else json.dumps(line).encode() + b"\n")
    return path


@needs_shared
@pytest.mark.parametrize("name", sorted(REAL_ROWS))
def test_every_real_file_gives_its_rows(name):
    stats = IngestStats(keep_problems=True)
    rows = list(iter_rows(SHARED / name, stats))
    assert len(rows) == REAL_ROWS[name]
    assert stats.problems == []
    assert {r["service"] for r in rows} == {name.split("-")[1].split("_")[0]}
    assert {r["format"] for r in rows} == {name[-7:-5]}
    for row in rows:
        assert set(row) == set(ROW_KEYS)


@needs_shared
def test_real_folder_reads_every_file_and_ignores_signature_lists():
    stats = IngestStats(keep_problems=True)
    rows = list(iter_rows(SHARED, stats))
    assert Counter(r["source"] for r in rows) == REAL_ROWS
    assert stats.files == 8 and stats.problems == []
    # Controls. v1: one after each Retries-4 record, two in echo/discard/http and one in
    # https = 7. v2: one pre-control per record plus one after each failed record; the
    # stateful echo record has three -> echo 7, discard 6, http 6, https 4 = 23.
    assert stats.skipped["control probe"] == 30


@needs_shared
def test_real_v1_fields():
    rows = list(iter_rows(SHARED / "Quack-https_v1/https_results_v1.json"))
    first = rows[0]
    assert first["domain"] == "uploaded.to" and first["sent"] == "uploaded.to"
    assert first["matches_template"] is True and first["anomaly"] is False
    blocked = rows[-1]
    assert blocked["domain"] == "discover.com" and blocked["status"]
    assert blocked["error"].startswith("Incorrect web response")
    assert "Access Denied" in blocked["body"]


@needs_shared
def test_real_v2_fields():
    rows = list(iter_rows(SHARED / "Quack-discard_v2/discard_results_v2.json"))
    pk = [r for r in rows if r["country"] == "PK"]
    assert len(pk) == 4 and all("Surf Safely" in r["body"] for r in pk)
    assert [r["probe"] for r in pk] == [1, 2, 3, 4]
    assert pk[0]["sent"] == "GET / HTTP/1.1\r\nHost: www.youporn.com\r\n\r\n"
    assert all(r["elapsed_ms"] is not None and r["elapsed_ms"] >= 0 for r in rows)


def test_v2_https_tls_fields_and_headers(tmp_path):
    probe = {"matches_template": False, "error": "Certificates do not match;",
             "response": {"status_line": "200 OK", "headers": {"Server": ["nginx"], "Set-Cookie": ["a=1", "b=2"]},
                          "body": "<html>hi</html>", "TlsVersion": 771, "CipherSuite": 49199,
                          "Certificate": ["MIIBexample"]},
             "start_time": "2021-08-01T10:00:01-04:00", "end_time": "2021-08-01T10:00:02-04:00"}
    record = v2_record(service="https", anomaly=True, response=[probe])
    [row] = iter_rows(write_lines(tmp_path / "x.json", [record]))
    assert row["tls_version"] == 771 and row["cipher_suite"] == 49199 and row["certificate"] is True
    assert row["headers"] == "Server: nginx\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2"
    assert row["status"] == "200 OK" and row["elapsed_ms"] == 1000.0


def test_v1_control_by_sent_domain_and_by_position(tmp_path):
    record = {
        "Server": "5.6.7.8", "Keyword": "site.example", "Retries": 1, "Blocked": True,
        "FailSanity": False, "StatefulBlock": False,
        "Results": [
            {"Sent": "", "Success": False, "Error": "i/o timeout"},
            {"Sent": "GET / HTTP/1.1\r\nHost: site.example\r\n\r\n", "Success": False, "Received": "x"},
            {"Sent": "GET / HTTP/1.1\r\nHost: example5718349450314.com\r\n\r\n", "Success": True},
            {"Sent": "", "Success": False, "Error": "i/o timeout"},
        ],
    }
    stats = IngestStats()
    rows = list(iter_rows(write_lines(tmp_path / "CP_Quack-echo-2020.json", [record]), stats))
    assert [r["probe"] for r in rows] == [0, 1]
    assert {r["service"] for r in rows} == {"echo"}
    assert rows[0]["domain"] == "site.example" and rows[0]["country"] == ""
    assert stats.skipped["control probe"] == 2


def test_tar_gz_archive_reads_results_members(tmp_path):
    payload = (json.dumps(v2_record()) + "\n").encode() * 3
    archive = tmp_path / "CP_Quack-http-2021-08-01-01-01-01.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, data in [("CP_Quack-http-2021/results.json", payload), ("CP_Quack-http-2021/servers.txt", b"1.2.3.4\n")]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    stats = IngestStats()
    rows = list(iter_rows(archive, stats))
    assert len(rows) == 3 and stats.files == 1
    assert rows[0]["source"] == "CP_Quack-http-2021-08-01-01-01-01.tar.gz:CP_Quack-http-2021/results.json"


@pytest.mark.parametrize("mode", ["w", "w:gz", "w:bz2", "w:xz"])
def test_a_tar_archive_is_read_whatever_its_compression(tmp_path, mode):
    payload = (json.dumps(v2_record()) + "\n").encode() * 2
    archive = tmp_path / "scan.tar"
    with tarfile.open(archive, mode) as tar:
        info = tarfile.TarInfo("scan/results.json")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    assert len(list(iter_rows(archive))) == 2


def test_gzip_json_lines(tmp_path):
    path = tmp_path / "results.jsonl.gz"
    with gzip.open(path, "wb") as f:
        f.write((json.dumps(v2_record()) + "\n").encode() * 2)
    assert len(list(iter_rows(path))) == 2


def varied_lines(count: int, seed: int = 0) -> bytes:
    """JSON lines that compress about as well as real measurements, not a thousandfold."""
    rnd = random.Random(seed)
    return b"".join((json.dumps(v2_record(test_url=rnd.randbytes(40).hex())) + "\n").encode() for _ in range(count))


def test_truncated_archive_is_refused_naming_it_unless_partial_rows_are_wanted(tmp_path):
    archive = tmp_path / "a.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for i in range(3):
            data = varied_lines(2000, seed=i)
            info = tarfile.TarInfo(f"d{i}/results.json")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    whole = archive.read_bytes()
    archive.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(QuackInputError, match=rf"{archive} ends early or is corrupt .*--keep-partial") as caught:
        list(iter_rows(archive))
    assert len(str(caught.value).splitlines()) == 1
    stats = IngestStats(keep_problems=True)
    rows = list(iter_rows(archive, stats, keep_partial=True))
    assert 0 < len(rows) < 6000
    assert stats.skipped["truncated file"] == 1, "one damaged archive is one problem"
    assert stats.problems and stats.problems[0][0].startswith("a.tar.gz")


def test_bad_lines_are_counted_and_listed(tmp_path):
    good = v2_record()
    missing = v2_record()
    del missing["test_url"]
    lines = [
        good,
        b"{not json\n",
        b'{"vp": "1.2.3.4", "service": "echo", "test_url": "\xff\xfe"}\n',
        [1, 2, 3],
        {"hello": "world"},
        missing,
        v2_record(anomaly="yes"),
        v2_record(response=[{"matches_template": True}, 7]),
        v2_record(response=[{"matches_template": True, "response": 12}]),
        v2_record(location=None, controls_failed=None),
        b"\n",
        good,
    ]
    stats = IngestStats(keep_problems=True)
    rows = list(iter_rows(write_lines(tmp_path / "bad.json", lines), stats))
    assert len(rows) == 4  # two good, one surviving probe of the probe-7 record, the null-field record
    assert stats.skipped["not JSON"] == 1
    assert stats.skipped["not UTF-8"] == 1
    assert stats.skipped["unknown shape"] == 2
    assert stats.skipped["missing field"] == 1
    assert stats.skipped["mistyped field"] == 3
    assert [line for _, line, _ in stats.problems] == [2, 3, 4, 5, 6, 7, 8, 9]
    nulls = rows[2]
    assert nulls["country"] == "" and nulls["controls_failed"] is None
    assert stats.lines == 11


def test_satellite_and_evaluation_records_are_not_trials(tmp_path):
    satellite = {"vp": "8.8.8.8", "test_url": "a.com", "response": [{"url": "a.com", "has_type_a": True}]}
    evaluation = {"vp": "1.1.1.1", "service": "echo", "template": {}, "issue": "",
                  "response": [{"test_url": "a.com", "matches_template": True}]}
    stats = IngestStats(keep_problems=True)
    assert list(iter_rows(write_lines(tmp_path / "m.json", [satellite, evaluation]), stats)) == []
    assert stats.skipped["satellite record"] == 1 and stats.skipped["evaluation record"] == 1
    assert stats.problems == []


def test_ten_megabyte_body_is_cut_not_fatal(tmp_path):
    probe = {"matches_template": False, "response": {"status_line": "200 OK", "headers": {}, "body": "A" * 10_000_000}}
    path = write_lines(tmp_path / "big.json", [v2_record(anomaly=True, response=[probe]), v2_record()])
    rows = list(iter_rows(path))
    assert len(rows) == 2 and len(rows[0]["body"]) == BODY_CHARS


def test_lone_surrogate_escapes_become_replacement_characters(tmp_path):
    probe = {"matches_template": False, "response": "HTTP/1.1 200 OK\r\n\r\n\\ud800 oops"}
    path = tmp_path / "s.json"
    path.write_text(json.dumps(v2_record(service="echo", response=[probe])).replace("\\\\ud800", "\\ud800") + "\n")
    [row] = iter_rows(path)
    row["body"].encode("utf-8")
    assert row["status"] == "200 OK"


def test_anomalies_only_keeps_failed_probes_of_anomalies(tmp_path):
    failed = {"matches_template": False, "error": "read: connection reset by peer", "response": ""}
    lines = [v2_record(), v2_record(anomaly=True, service="echo", response=[failed, failed, {"matches_template": True}])]
    stats = IngestStats()
    rows = list(iter_rows(write_lines(tmp_path / "a.json", lines), stats, anomalies_only=True))
    assert len(rows) == 2 and all(r["anomaly"] for r in rows)
    assert stats.skipped["not anomalous"] == 2


@pytest.mark.parametrize("content,name", [(b"not a tar at all" * 100, "x.tar"), (b"plain text", "x.json.gz"),
                                           (b"", "x.tgz")])
def test_unopenable_file_is_one_clear_error(tmp_path, content, name):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(QuackInputError, match=name):
        list(iter_rows(path))


def test_missing_path_and_wrong_suffix_are_clear_errors(tmp_path):
    with pytest.raises(QuackInputError, match="does not exist"):
        list(iter_rows(tmp_path / "nope.json"))
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(QuackInputError, match="notes.txt"):
        list(iter_rows(tmp_path / "notes.txt"))


def test_v1_control_without_retries_is_found_by_domain(tmp_path):
    record = {"Server": "5.6.7.8", "Keyword": "a.org", "Blocked": False, "Results": [
        {"Sent": "a.org", "Success": True}, {"Sent": "rtyutgyhefdafioasfjhjhi.com", "Success": True}]}
    rows = list(iter_rows(write_lines(tmp_path / "Quack-http.json", [record])))
    assert [r["probe"] for r in rows] == [0] and rows[0]["service"] == "http"


def test_geoip_problem_is_a_clear_error(tmp_path):
    # Without geoip2 the message says to install it; with it, the missing database is named.
    expected = "geoip2" if importlib.util.find_spec("geoip2") is None else "x.mmdb"
    with pytest.raises(QuackInputError, match=expected):
        list(iter_rows(write_lines(tmp_path / "a.json", [v2_record()]), geoip_db=str(tmp_path / "x.mmdb")))


def test_v1_service_from_the_folder_name(tmp_path):
    folder = tmp_path / "CP_Quack-discard-2020-11-14-07-54-49"
    folder.mkdir()
    record = {"Server": "5.6.7.8", "Keyword": "a.org", "Retries": 0, "Blocked": False,
              "Results": [{"Sent": "GET / HTTP/1.1\r\nHost: a.org\r\n\r\n", "Success": True}]}
    [row] = iter_rows(write_lines(folder / "results.json", [record]))
    assert row["service"] == "discard" and row["source"] == "results.json"


def test_folder_walk_skips_other_files(tmp_path):
    write_lines(tmp_path / "b.json", [v2_record()])
    (tmp_path / "servers.txt").write_text("1.2.3.4\n")
    write_lines(tmp_path / "b.truth.jsonl", [{"truth": "ordinary"}])
    sub = tmp_path / "sub"
    sub.mkdir()
    write_lines(sub / "a.jsonl", [v2_record(), v2_record()])
    rows = list(iter_rows(tmp_path))
    assert [r["source"] for r in rows] == ["b.json", "sub/a.jsonl", "sub/a.jsonl"]


def test_truncated_gzip_is_refused_naming_it_unless_partial_rows_are_wanted(tmp_path):
    path = tmp_path / "results.json.gz"
    with gzip.open(path, "wb") as f:
        f.write(varied_lines(5000))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(QuackInputError, match=rf"{path} ends early or is corrupt"):
        list(iter_rows(path))
    stats = IngestStats(keep_problems=True)
    rows = list(iter_rows(path, stats, keep_partial=True))
    assert 0 < len(rows) < 5000 and stats.skipped["truncated file"] == 1


BOMB_BYTES = 24 * 2**20


def bomb_gzip(path: Path) -> Path:
    """A gzip file of blank text: some 24 KB that expand a thousandfold."""
    with gzip.open(path, "wb") as f:
        f.write(b" " * BOMB_BYTES)
    return path


def bomb_archive(path: Path, inner_gzip: bool) -> Path:
    """A tar.gz whose member expands a thousandfold, or a plain tar holding such a .json.gz."""
    data = b" " * BOMB_BYTES
    name = "d/results.json"
    if inner_gzip:
        data, name = gzip.compress(data), name + ".gz"
    with tarfile.open(path, "w" if inner_gzip else "w:gz") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize("make,named", [
    (lambda tmp: bomb_gzip(tmp / "results.json.gz"), "results.json.gz"),
    (lambda tmp: bomb_archive(tmp / "a.tar.gz", inner_gzip=False), "a.tar.gz"),
    (lambda tmp: bomb_archive(tmp / "b.tar", inner_gzip=True), "b.tar:d/results.json.gz"),
])
def test_a_file_that_expands_without_bound_stops_naming_it(tmp_path, make, named):
    path = make(tmp_path)
    with pytest.raises(ExpansionError, match=rf"{tmp_path}/{re.escape(named)} expands to more than 100 times") as caught:
        list(iter_rows(path))
    assert len(str(caught.value).splitlines()) == 1
    # A larger ratio, given or from the environment, reads the same file to its end.
    assert list(iter_rows(path, max_expansion=5000)) == []


def test_the_expansion_ratio_comes_from_the_environment(tmp_path, monkeypatch):
    path = bomb_gzip(tmp_path / "results.json.gz")
    monkeypatch.setenv("QUACK_MAX_EXPANSION", "5000")
    assert list(iter_rows(path)) == []
    monkeypatch.setenv("QUACK_MAX_EXPANSION", "lots")
    with pytest.raises(ValueError, match="QUACK_MAX_EXPANSION must be a number"):
        list(iter_rows(path))


def test_deeply_nested_line_is_not_json(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text("[" * 200000 + "\n" + json.dumps(v2_record()) + "\n")
    stats = IngestStats()
    assert len(list(iter_rows(path, stats))) == 1 and stats.skipped["not JSON"] == 1


json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20))
json_any = st.recursive(json_leaf, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                        max_leaves=8)
V1_RECORD = {"Server": "5.6.7.8", "Keyword": "a.org", "Retries": 1, "Blocked": True, "FailSanity": False,
             "StatefulBlock": False, "Results": []}
V1_PROBE = {"Sent": "a.org", "Success": False, "Error": "Incorrect web response: status lines don't match",
            "Received": {"status_line": "403 Forbidden", "headers": {"Server": ["x"]}, "body": "blocked",
                         "tls": {"version": 771, "cipher_suite": 49199, "cert": "MII"}},
            "StartTime": "2020-11-14T07:54:49.246304766-05:00", "EndTime": "2020-11-14T07:54:50-05:00"}
V2_PROBE = {"matches_template": False, "error": "Bodies do not match;", "start_time": "2021-08-01T10:00:01-04:00",
            "end_time": "2021-08-01T10:00:02.5-04:00",
            "response": {"status_line": "200 OK", "headers": {"A": ["b"]}, "body": "<html>Surf Safely</html>",
                         "TlsVersion": 772, "CipherSuite": 4865, "Certificate": ["MII"]}}


def mutated(base: dict, keys: list[str]):
    """``base`` with some keys dropped or set to arbitrary JSON."""
    return st.builds(
        lambda changes, drops: {k: v for k, v in {**base, **changes}.items() if k not in drops},
        st.dictionaries(st.sampled_from(keys), json_any, max_size=1),
        st.sets(st.sampled_from(keys), max_size=1),
    )


def record_with(base: dict, probe: dict, probes_key: str):
    probe_keys = sorted(probe) + sorted(probe["response" if "response" in probe else "Received"])
    return st.builds(lambda r, ps: {**r, probes_key: ps} if probes_key not in r or isinstance(r[probes_key], list) else r,
                     st.just(base) | mutated(base, sorted(base)),
                     st.lists(st.one_of(st.just(probe), mutated(probe, probe_keys), json_any), max_size=4))


records = st.one_of(record_with(v2_record(), V2_PROBE, "response"), record_with(V1_RECORD, V1_PROBE, "Results"),
                    st.dictionaries(st.text(max_size=5), json_any, max_size=4))


@pytest.fixture(scope="module")
def labeling_tools():
    """The shipped fingerprints and a tiny tokenizer, built once for all examples."""
    from quack.fingerprints.labels import Fingerprints
    from quack.data.tokenizer import QuackTokenizer

    return Fingerprints.load(), QuackTokenizer.train(["<html>blocked page</html>"] * 20, vocab_size=1500, max_tokens=32)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(records, min_size=1, max_size=4))
def test_arbitrary_records_never_raise_and_tokenize_in_range(tmp_path, labeling_tools, lines):
    from quack.fingerprints.labels import label_row

    fingerprints, tokenizer = labeling_tools
    path = write_lines(tmp_path / "h.json", lines)
    stats = IngestStats(keep_problems=True)
    rows = list(iter_rows(path, stats))
    assert stats.lines == len(lines)
    for row in rows:
        assert set(row) == set(ROW_KEYS)
        assert label_row(row, fingerprints)[0] in (-1, 0, 1)
    assert all(0 <= i < tokenizer.vocab_size for ids in tokenizer.encode_rows(rows) for i in ids)


def test_chunks_parsed_apart_and_merged_in_order_count_as_one_reading(tmp_path, monkeypatch):
    rnd = random.Random(1)
    lines = []
    for i in range(300):
        lines.append(v2_record(test_url=f"site{i}.example"))
        if i % 37 == 0:
            lines.append(b"{not json\n")
        if i % 53 == 0:
            lines.append(b"x" * 3000 + b"\n")
    write_lines(tmp_path / "a.json", lines[:200])
    (tmp_path / "empty.json").write_bytes(b"")
    write_lines(tmp_path / "b.json", rnd.sample(lines, 150))
    monkeypatch.setattr("quack.data.ingest.CHUNK_BYTES", 8000)
    monkeypatch.setattr("quack.data.ingest.MAX_LINE_BYTES", 2048)
    whole = IngestStats(keep_problems=True)
    rows = list(iter_rows(tmp_path, whole))
    chunks = [pickle.loads(pickle.dumps(chunk)) for chunk in iter_chunks(tmp_path, keep_problems=True)]
    assert len(chunks) > 5 and [chunk.index for chunk in chunks] == list(range(len(chunks)))
    merged, merged_rows = IngestStats(keep_problems=True), []
    for chunk in chunks:
        part = IngestStats(keep_problems=True)
        merged_rows += chunk_rows(chunk, part)
        merged.merge(part)
    assert merged_rows == rows and merged == whole
    assert whole.files == 3 and whole.skipped["line too long"] > 1 and whole.skipped["not JSON"] > 1
    assert [line for source, line, _ in whole.problems if source == "a.json"] == sorted(
        line for source, line, _ in whole.problems if source == "a.json")
