"""The built-in sample and its harder, realistic form: deterministic, and labelled as their truth says."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter, defaultdict

import pytest

from quack.cli import main
from quack.ingest import IngestStats, iter_rows
from quack.labels import Fingerprints, label_row
from quack.sample import KNOWN, ORDINARY, REALISTIC_FAMILIES, RESET, TIMEOUT, UNKNOWN, write_sample


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
