"""The built-in sample and its harder, realistic form: deterministic, and labelled as their truth says."""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import zlib
from collections import Counter, defaultdict

import pyarrow.parquet as pq
import pytest

from quack.cli.main import main
from quack.data.ingest import iter_rows
from quack.data.records import IngestStats
from quack.fingerprints.labels import Fingerprints, label_row
from quack.sample.generator import KNOWN, ORDINARY, REALISTIC_FAMILIES, RESET, TIMEOUT, UNKNOWN, write_sample


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    records, truth = write_sample(tmp_path_factory.mktemp("sample") / "quack-sample.json", n=1000, seed=7)
    rows = list(iter_rows(records))
    truths = {(t["source"], t["line"], t["probe"]): t for t in map(json.loads, truth.read_text().splitlines())}
    return records, rows, truths


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    a = write_sample(tmp_path / "a" / "s.json", n=200, seed=1)
    b = write_sample(tmp_path / "b" / "s.json", n=200, seed=1)
    c = write_sample(tmp_path / "c" / "s.json", n=200, seed=2)
    assert a[0].read_bytes() == b[0].read_bytes() and a[1].read_bytes() == b[1].read_bytes()
    assert a[0].read_bytes() != c[0].read_bytes()
    assert a[1] == tmp_path / "a" / "s.truth.jsonl"


def test_raw_format_goes_through_ingest_cleanly(sample):
    records, rows, truths = sample
    raw = records.read_text(encoding="utf-8")
    assert len(raw.splitlines()) == 1000
    assert "\\u003c" in raw and "<" not in raw, "bodies are escaped as Go writes them"
    stats = IngestStats(keep_problems=True)
    assert len(list(iter_rows(records, stats))) == len(rows)
    assert stats.problems == [] and set(stats.skipped) == {"control probe"}


def test_every_row_has_exactly_one_truth(sample):
    _, rows, truths = sample
    keys = [(r["source"], r["line"], r["probe"]) for r in rows]
    assert len(set(keys)) == len(keys) and set(keys) == set(truths)


def test_proportions_are_realistic(sample):
    _, _, truths = sample
    shares = {k: v / len(truths) for k, v in Counter(t["truth"] for t in truths.values()).items()}
    assert 0.6 < shares[ORDINARY] < 0.8
    assert 0.05 < shares[KNOWN] < 0.12 and 0.05 < shares[UNKNOWN] < 0.12
    assert 0.07 < shares[RESET] + shares[TIMEOUT] < 0.2


def test_variety_of_countries_vantage_points_services_and_tls(sample):
    _, rows, _ = sample
    assert len({r["country"] for r in rows}) >= 30
    assert len({r["vp"] for r in rows}) >= 60
    assert {r["service"] for r in rows} == {"echo", "discard", "http", "https"}
    tls = [r for r in rows if r["tls_version"] is not None]
    assert tls and all(r["service"] == "https" and r["certificate"] and r["cipher_suite"] for r in tls)


def test_shipped_fingerprints_know_the_known_pages_and_not_the_unknown(sample):
    _, rows, truths = sample
    fingerprints = Fingerprints.load()
    by_truth = defaultdict(Counter)
    for row in rows:
        by_truth[truths[(row["source"], row["line"], row["probe"])]["truth"]][label_row(row, fingerprints)[0]] += 1
    assert set(by_truth[KNOWN]) == {1}
    assert set(by_truth[UNKNOWN]) == {0}
    assert set(by_truth[RESET]) == set(by_truth[TIMEOUT]) == {0}
    assert 1 not in by_truth[ORDINARY]
    undetermined = sum(c[0] for c in by_truth.values())
    assert by_truth[UNKNOWN][0] / undetermined > 0.25, "unknown blockpages are a real share of the undetermined pool"


def test_unknown_pages_are_few_and_shared_across_countries(sample):
    _, rows, truths = sample
    countries = defaultdict(set)
    for row in rows:
        truth = truths[(row["source"], row["line"], row["probe"])]
        if truth["truth"] == UNKNOWN:
            countries[truth["page"]].add(row["country"])
    assert 3 <= len(countries) <= 6
    assert all(len(c) >= 2 for c in countries.values())


@pytest.mark.parametrize("name,n,message", [
    ("s.txt", 10, r"s\.txt must end in \.json or \.jsonl \(or either with \.gz\)"),
    ("s.gz", 10, r"s\.gz must end in \.json or \.jsonl"),
    ("s.json", 0, "n must be a positive number of measurements, got 0"),
    ("s.json", "many", "n must be a positive number of measurements, got 'many'"),
])
def test_bad_arguments_are_refused(tmp_path, name, n, message):
    with pytest.raises(ValueError, match=message):
        write_sample(tmp_path / name, n=n)


def test_default_sample_is_unchanged(tmp_path):
    """The shipped checkpoint's recorded scores are measured on these exact bytes."""
    records, truth = write_sample(tmp_path / "s.json", n=200, seed=0)
    assert hashlib.sha256(records.read_bytes()).hexdigest() == \
        "cdbc4358386a744398ceb93a5e2debd1e5d76e7dd3454ef3e1c1dde1c51c97cf"
    assert hashlib.sha256(truth.read_bytes()).hexdigest() == \
        "718c99600eb25a8c4abb19ca165af2d1a8d7b948cf9328d434e9ffbc200e5b70"


@pytest.fixture(scope="module")
def realistic(tmp_path_factory):
    records, truth = write_sample(tmp_path_factory.mktemp("realistic") / "r.json", n=1500, seed=3, realistic=True)
    rows = list(iter_rows(records))
    truths = {(t["source"], t["line"], t["probe"]): t for t in map(json.loads, truth.read_text().splitlines())}
    return records, rows, [truths[(r["source"], r["line"], r["probe"])] for r in rows]


def test_realistic_sample_is_deterministic_and_differs_from_the_default(tmp_path):
    a = write_sample(tmp_path / "a" / "s.json", n=100, seed=1, realistic=True)
    b = write_sample(tmp_path / "b" / "s.json", n=100, seed=1, realistic=True)
    plain = write_sample(tmp_path / "c" / "s.json", n=100, seed=1)
    assert a[0].read_bytes() == b[0].read_bytes() and a[1].read_bytes() == b[1].read_bytes()
    assert a[0].read_bytes() != plain[0].read_bytes()


def test_realistic_families_appear_in_the_truth_and_escape_the_shipped_fingerprints(realistic):
    _, rows, truths = realistic
    assert {t["page"] for t in truths if t["truth"] == UNKNOWN} == set(REALISTIC_FAMILIES)
    fingerprints = Fingerprints.load()
    labels = defaultdict(Counter)
    for row, truth in zip(rows, truths):
        labels[truth["truth"]][label_row(row, fingerprints)[0]] += 1
    assert set(labels[UNKNOWN]) == {0} and set(labels[KNOWN]) == {1}
    assert 1 not in labels[ORDINARY]
    undetermined = sum(c[0] for c in labels.values())
    # Ordinary pages outnumber unknown blockpages among the undetermined, as in real scans.
    assert labels[ORDINARY][0] > labels[UNKNOWN][0] > 0.1 * undetermined


def test_realistic_pages_vary_per_request_and_speak_their_countries_languages(realistic):
    records, rows, truths = realistic
    by_record = defaultdict(list)
    for row, truth in zip(rows, truths):
        if truth["truth"] == UNKNOWN and truth["page"] == "u_suite_endpoint":
            by_record[(row["source"], row["line"])].append(row["body"])
    assert by_record and all(len(set(bodies)) == len(bodies) == 4 for bodies in by_record.values())
    languages = {match for row, truth in zip(rows, truths) if truth["truth"] == UNKNOWN
                 for match in re.findall(r'<html lang="(\w+)"', row["body"] or "")}
    assert len(languages) >= 5


def test_realistic_blockpages_share_boilerplate_and_emptiness_with_ordinary_pages(realistic):
    _, rows, truths = realistic

    def kinds(test) -> set[str]:
        return {truth["truth"] for row, truth in zip(rows, truths) if row["service"] in ("http", "https") and test(row)}

    assert {ORDINARY, UNKNOWN} <= kinds(lambda row: "bootstrap.min.css" in (row["body"] or ""))
    assert {ORDINARY, UNKNOWN} <= kinds(lambda row: not row["body"] and "Connection: close" in (row["headers"] or "")
                                        and row["status"])


def test_quack_sample_realistic_writes_the_realistic_sample(tmp_path, capsys):
    assert main(["sample", "--out", str(tmp_path / "cli.json"), "--n", "50", "--seed", "2", "--realistic"]) == 0
    expected, _ = write_sample(tmp_path / "lib" / "cli.json", n=50, seed=2, realistic=True)
    assert (tmp_path / "cli.json").read_bytes() == expected.read_bytes()


def test_realistic_sample_is_unchanged(tmp_path):
    """Real-size pages and gzip output came later; the realistic sample without them kept its bytes."""
    records, truth = write_sample(tmp_path / "s.json", n=200, seed=0, realistic=True)
    assert hashlib.sha256(records.read_bytes()).hexdigest() == \
        "85bbb82a034469d0f3061e3a2c5859ae891abb143d7bfebfb3857eaf5dc59653"
    assert hashlib.sha256(truth.read_bytes()).hexdigest() == \
        "271cf80ec68d0855d4618fa4b54c466494b458a26a1475b119baadae34f7cdf8"


@pytest.mark.parametrize("realistic,n", [(False, 2000), (True, 600)])
def test_real_size_pages_are_kilobytes_and_blockpages_stay_small(tmp_path, realistic, n):
    small, small_truth = write_sample(tmp_path / "small.json", n=n, seed=5, realistic=realistic)
    real, real_truth = write_sample(tmp_path / "real.json", n=n, seed=5, realistic=realistic, real_size=True)
    assert real_truth.read_text() == small_truth.read_text().replace('"small.json"', '"real.json"')
    truths = [json.loads(line) for line in real_truth.read_text().splitlines()]
    small_rows, real_rows = list(iter_rows(small)), list(iter_rows(real))
    assert len(real_rows) == len(small_rows) == len(truths)
    pages = []
    for before, after, truth in zip(small_rows, real_rows, truths):
        assert {k: v for k, v in after.items() if k not in ("body", "source", "scan")} == \
            {k: v for k, v in before.items() if k not in ("body", "source", "scan")}
        if truth["truth"] != ORDINARY or not before["body"] or before["status"].startswith("3"):
            assert after["body"] == before["body"], "blockpages, redirects and empty replies keep their size"
        else:
            pages.append(after["body"])
            assert after["body"].startswith("<!DOCTYPE html>") and "<style>" in after["body"]
    assert len(pages) >= 20
    sizes = sorted(len(p.encode()) for p in pages)
    assert 2_000 <= sizes[0] and sizes[-1] <= 65_536 and 6_000 < sizes[len(sizes) // 2] < 25_000
    blockpages = [r["body"] or "" for r, t in zip(real_rows, truths) if t["truth"] in (KNOWN, UNKNOWN)]
    assert blockpages and max(map(len, blockpages)) < 2_000
    raw = real.read_bytes()
    assert 3 < len(raw) / len(zlib.compress(raw, 9)) < 20, "compresses as real HTML does, far below 100x"


def test_gzip_sample_ingests_to_the_same_rows_as_the_plain_one(tmp_path):
    args = ["--n", "150", "--seed", "4", "--realistic", "--real-size"]
    assert main(["sample", "--out", str(tmp_path / "m.json")] + args) == 0
    assert main(["sample", "--out", str(tmp_path / "m.jsonl.gz")] + args) == 0
    assert gzip.decompress((tmp_path / "m.jsonl.gz").read_bytes()) == (tmp_path / "m.json").read_bytes()
    assert (tmp_path / "m.truth.jsonl").is_file()
    tables = []
    for name in ("m.json", "m.jsonl.gz"):
        assert main(["ingest", str(tmp_path / name), "--out", str(tmp_path / f"{name}.set"), "--workers", "1",
                     "--tokenizer-from", str(tmp_path / "m.json.set" / "tokenizer.json")]
                    if name.endswith(".gz") else
                    ["ingest", str(tmp_path / name), "--out", str(tmp_path / f"{name}.set"), "--workers", "1"]) == 0
        tables.append(pq.read_table(tmp_path / f"{name}.set" / "rows.parquet").drop_columns(["source"]))
    assert tables[0].num_rows > 150 and tables[0].equals(tables[1])


def test_sample_of_days_is_deterministic_and_its_changes_show_in_the_truth(tmp_path, capsys):
    for name in ("a", "b"):
        assert main(["sample", "--days", "8", "--n", "150", "--seed", "3", "--out", str(tmp_path / name)]) == 0
    a, b = sorted((tmp_path / "a").iterdir()), sorted((tmp_path / "b").iterdir())
    assert [p.name for p in a] == [p.name for p in b] and all(x.read_bytes() == y.read_bytes() for x, y in zip(a, b))
    events = json.loads((tmp_path / "a" / "events.truth.json").read_text())
    assert len(events["scans"]) == 8 and events["quiet_days"]
    rows = list(iter_rows(tmp_path / "a"))
    assert {r["scan"] for r in rows} == set(events["scans"])
    pages = Counter((r["country"], r["scan"]) for r in rows if r["body"] and "NCC/" in r["body"])
    new = next(e for e in events["events"] if e["kind"] == "new_blockpage")
    assert {scan for _, scan in pages} == set(events["scans"][new["day"]:])
    assert {country for country, _ in pages} == {new["country"]}
    assert main(["sample", "--days", "3", "--out", str(tmp_path / "c")]) == 2
    assert "at least 8" in capsys.readouterr().err
