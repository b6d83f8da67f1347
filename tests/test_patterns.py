"""Bounded patterns: searches that end, with the results Python's ``re`` gives."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quack.data.ingest import iter_rows
from quack.fingerprints.patterns import PatternError, PatternTimeout, compile_pattern
from quack.sample.generator import write_sample

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "censoredplanet"
SHIPPED = sorted((REPO / "quack" / "fingerprints").glob("*.json"))
PUBLISHED = [SHARED / "blockpage_signatures.json", SHARED / "false_positive_signatures.json"]

# A regression to plain backtracking would run for hours; this only has to be finite.
HARD_LIMIT_S = 60

# Constructs whose meaning differs between Python, RE2 and regex unless translated with care.
TRICKY_PATTERNS = [
    r"a$", r"a$\n", r"(?m)a$", r"x|$", r"(a|b$)", r"a\Z", r"^a", r"(?m)^a", r"\Aa",
    r"\bfoo\b", r"\Bo", r"\B", r"\b", r"(?a)\b", r"(?a)\Bé",
    r"\d\s\w", r"[^\d]x", r"[\W\d]", r"\s", r"\S", r"\D\W", r"(?a)\w", r"(?a)\s",
    r"(?i)straße", r"(?i)k", r"(?ai)k", r"(?i)i", r"(?i)İ", r"(?i)ı", r"(?i)ſ", r"(?i)[k-m]", r"(?i)[^a-c]",
    r"(?i)[^\W]", r"(?i)中", r"(?i:a)A",
    r"(?s:.)", r"(?-s:.)x", r"[^a]", r"[\ud800]", r"\x00", r"a{2,3}", r"a{0,1200}b", r"(?:ab)*?c",
    r"(?=a)b|a", r"(a)\1", r"(?i)(a)\1", r"x*+", r"(?>a+)b", r"(?(1)a|b)(c)?", r"(?<=a)b", r"(?<!a)b",
]
TRICKY_TEXTS = [
    "", "a", "a\n", "a\n\n", "b\na", "foo", "xfoo", "Foo bar", "STRASSE", "straße", "K", "\u212a", "k",
    "1 _", "١ \x1c²", "aa", "aA", "Aa", "ab", "b", "İ", "ı", "I", "i", "\ud800x", "x", "ac", "é", "ée",
    "aab", "\x00", "ſ", "S", "s", "\x0b", "\x85", "\u3000", "中", "b\n", "abab c", "z" * 3000 + "b",
]


def finishes(code: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter, failing the test instead of hanging when it never ends."""
    try:
        return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                              timeout=HARD_LIMIT_S, check=True)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the search did not end within {HARD_LIMIT_S} s")


def read_patterns(path: Path) -> list[tuple[str, str]]:
    return [(f"{path.name} line {number}", json.loads(line)["pattern"])
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if line.strip()]


def bodies_of(paths) -> list[str]:
    return list(dict.fromkeys(row["body"] for row in iter_rows(paths) if row["body"]))


@pytest.fixture(scope="module")
def sample_bodies(tmp_path_factory) -> list[str]:
    folder = tmp_path_factory.mktemp("sample")
    measurements, _ = write_sample(folder / "sample.json", n=1500, seed=3)
    return bodies_of([measurements])


def assert_same_as_re(patterns: list[tuple[str, str]], texts: list[str]) -> int:
    """Every pattern on every text gives ``re``'s answer; returns how many pairs matched."""
    hits = 0
    for source, pattern in patterns:
        bounded, reference = compile_pattern(pattern, source), re.compile(pattern, re.DOTALL)
        for text in texts:
            expected = reference.search(text) is not None
            assert bounded.search(text) == expected, (source, pattern, text[:80])
            hits += expected
    return hits


@pytest.mark.parametrize("pattern", [r"(a+)+$", r"(a|aa)+$"])
def test_nested_repeat_on_a_long_text_ends(pattern):
    run = finishes(
        "from quack.fingerprints.patterns import compile_pattern\n"
        f"print(compile_pattern({pattern!r}, 'the test').search('a' * 5000 + 'b'))"
    )
    assert run.stdout.strip() == "False"


@pytest.mark.parametrize("pattern", ["(.+)+\\x00", "(.+)+\x00"], ids=["escape", "raw NUL"])
def test_discover_page_pattern_that_froze_the_server_ends(pattern):
    run = finishes(
        "from quack.fingerprints.patterns import compile_pattern\n"
        f"p = compile_pattern({pattern!r}, 'the Discover page\\'s pattern box')\n"
        "print(p.search('x' * 100_000), p.search('x' * 5000 + '\\x00'))"
    )
    assert run.stdout.split() == ["False", "True"]


def test_backtracking_only_pattern_is_stopped_with_a_sentence_naming_it():
    # The lookahead keeps it off RE2, and alternation is not a nested repeat, so only the timeout can stop it.
    run = finishes(
        "from quack.fingerprints.patterns import compile_pattern, PatternTimeout\n"
        "p = compile_pattern('(a|aa)+$(?=)', 'mine.json line 7', timeout=0.2)\n"
        "try:\n"
        "    p.search('a' * 60 + 'b')\n"
        "except PatternTimeout as error:\n"
        "    print(error)\n"
    )
    message = run.stdout.strip()
    assert "(a|aa)+$(?=)" in message and "mine.json line 7" in message and "0.2 s" in message
    assert message.count(". ") == 0 and message.endswith(".")


def test_other_threads_keep_running_while_a_slow_pattern_is_stopped():
    pattern = compile_pattern("(a|aa)+$(?=)", "the test", timeout=0.3)
    done = threading.Event()

    def slow() -> None:
        with pytest.raises(PatternTimeout):
            pattern.search("a" * 60 + "b")
        done.set()

    worker = threading.Thread(target=slow)
    worker.start()
    time.sleep(0.01)
    ticks = 0
    while not done.is_set():
        ticks += 1
        time.sleep(0)
    worker.join()
    # A search that held the interpreter lock would leave this thread a handful of ticks at most.
    assert ticks > 1000


def test_nested_repeat_that_only_backtracking_can_run_is_refused_before_it_runs():
    with pytest.raises(PatternError, match=r"'\(\?:a\+\)\+\(\?=b\)' in the Discover page's pattern box"):
        compile_pattern("(?:a+)+(?=b)", "the Discover page's pattern box")


def test_nested_repeat_that_re2_runs_is_accepted():
    assert compile_pattern("(?:<br>\\s*)+done", "the test").search("<br> <br>\ndone")


def test_invalid_pattern_names_where_it_came_from():
    with pytest.raises(PatternError, match=r"'a\(b' in user-fingerprints\.json line 2 is not a valid regular"):
        compile_pattern("a(b", "user-fingerprints.json line 2")


def test_overlong_pattern_is_refused():
    with pytest.raises(PatternError, match="shorten it"):
        compile_pattern("a" * 30_000, "the test")


def test_a_scan_stops_at_its_deadline():
    pattern = compile_pattern("blocked", "the Discover page's pattern box")
    assert pattern.search("site blocked", deadline=time.monotonic() + 60)
    with pytest.raises(PatternTimeout, match="within the time allowed for this search"):
        pattern.search("site blocked", deadline=time.monotonic() - 1)


@pytest.mark.parametrize("pattern", TRICKY_PATTERNS)
@pytest.mark.parametrize("engine", ["re2 where it can", "regex"])
def test_tricky_constructs_match_as_re_does(pattern, engine):
    # An empty lookahead changes nothing but keeps the pattern off RE2.
    written = pattern + ("(?=)" if engine == "regex" else "")
    assert_same_as_re([("the test", written)], TRICKY_TEXTS)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(TRICKY_PATTERNS), st.text(alphabet="aAbB iIİı\n_1²\x1c\u212akK中é\x00", max_size=12))
def test_random_texts_match_as_re_does(pattern, text):
    assert_same_as_re([("the test", pattern)], [text])


def test_shipped_signatures_match_as_re_does_on_sample_bodies(sample_bodies):
    patterns = [entry for path in SHIPPED for entry in read_patterns(path)]
    assert assert_same_as_re(patterns, sample_bodies + TRICKY_TEXTS) > 0


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared Censored Planet samples not present")
def test_published_signatures_match_as_re_does_on_real_and_sample_bodies(sample_bodies):
    patterns = [entry for path in PUBLISHED for entry in read_patterns(path)]
    real = bodies_of([SHARED])
    assert real
    assert assert_same_as_re(patterns, real + sample_bodies) > 0


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared Censored Planet samples not present")
def test_published_signatures_all_compile_and_almost_all_run_in_linear_time():
    compiled = [compile_pattern(pattern, source) for path in PUBLISHED for source, pattern in read_patterns(path)]
    assert sum(p.engine == "regex" for p in compiled) <= 1
