"""The built-in sample: deterministic, realistic, and labelled as its truth says."""

from __future__ import annotations

import json
from collections import Counter, defaultdict

import pytest

from quack.ingest import IngestStats, iter_rows
from quack.labels import Fingerprints, label_row
from quack.sample import KNOWN, ORDINARY, RESET, TIMEOUT, UNKNOWN, write_sample


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
    ("s.txt", 10, r"s\.txt must end in \.json or \.jsonl"),
    ("s.json", 0, "n must be a positive number of measurements, got 0"),
    ("s.json", "many", "n must be a positive number of measurements, got 'many'"),
])
def test_bad_arguments_are_refused(tmp_path, name, n, message):
    with pytest.raises(ValueError, match=message):
        write_sample(tmp_path / name, n=n)
