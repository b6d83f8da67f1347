"""Labels and fingerprint matching: the rule of quack-format.md section 9, matcher of section 8."""

from __future__ import annotations

import functools
import json
import random
import re
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quack.ingest import QuackInputError, iter_rows
from quack.labels import Fingerprints, label_row

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "censoredplanet"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="shared Censored Planet samples not present")

SHIPPED = Fingerprints.load()
SHIPPED_PATHS = [Path(__file__).resolve().parents[1] / "quack" / "fingerprints" / name
                 for name in ("false_positives.json", "blockpages.json")]
SHIPPED_TEXT = [json.loads(line)["pattern"].replace("\\", "") for path in SHIPPED_PATHS
                for line in path.read_text(encoding="utf-8").splitlines()]


@functools.lru_cache(maxsize=None)
def shared_fingerprints() -> Fingerprints:
    return Fingerprints.load([str(SHARED / "blockpage_signatures.json"), str(SHARED / "false_positive_signatures.json")])


@functools.lru_cache(maxsize=None)
def naive_lists(paths: tuple[Path, ...]) -> dict:
    """Section 8 literally: a dict per list, so repeats keep first position and last pattern."""
    lists = {}
    for path in paths:
        entries = {}
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                item = json.loads(line)
                entries[item["fingerprint"]] = re.compile(item["pattern"], re.DOTALL)
        lists["false" not in path.name] = entries
    return lists


def naive_match(paths: list[Path], text: str):
    """Every pattern in order, false positives first; the first hit wins."""
    lists = naive_lists(tuple(paths))
    for blocked in (False, True):
        for name, regex in lists.get(blocked, {}).items():
            if regex.search(text):
                return blocked, name
    return None, None


# Labels per file with the shared lists, derived by hand from the bodies (section 9):
# probes that matched in records with no anomaly are -1; the rest go through the matcher.
# discard v1: 2 matches; 5 echo-style 503 Palo Alto pages hit the generic false positive
#   "503 Service Unavailable" first (-1); 5 timeouts with empty text (0).
# discard v2: 2 matches; 4 resets with "" (0); 4 Pakistani "Surf Safely" pages (1).
# echo v1: 2 matches; 5 + 3 more 503 pages (-1); 2 dial timeouts with no text (0).
# echo v2: 2 matches; 3 pages with "Server: ADM/2.1.1" hit r_fp_48 (-1); 1 bind error and
#   4 timeouts (0).
# http v1: 2 matches; 5 empty bodies (0); 5 Palo Alto "Web Page Blocked" bodies (1).
# http v2: 2 matches; 4 UCloud ICP-filing pages and 4 corporate "Access Denied" pages (1).
# https v1: 2 matches; a 302 body no pattern knows twice (0), then the retry that matched
#   in a record with no anomaly (-1); 5 Akamai "Access Denied" pages, a false positive (-1).
# https v2: 2 matches; a bank page that is a false positive (-1) and its matching retry (-1).
SHARED_LABELS = {
    "Quack-discard_v1/discard_results_v1.json": {-1: 7, 0: 5},
    "Quack-discard_v2/discard_results_v2.json": {-1: 2, 0: 4, 1: 4},
    "Quack-echo_v1/echo_results_v1.json": {-1: 10, 0: 2},
    "Quack-echo_v2/echo_results_v2.json": {-1: 5, 0: 5},
    "Quack-http_v1/http_results_v1.json": {-1: 2, 0: 5, 1: 5},
    "Quack-http_v2/http_results_v2.json": {-1: 2, 1: 8},
    "Quack-https_v1/https_results_v1.json": {-1: 8, 0: 2},
    "Quack-https_v2/https_results_v2.json": {-1: 4},
}

# The shipped list knows the Pakistani page, the Palo Alto default page (in the echo 503
# replies and the HTTP bodies) and the Akamai denial; it has no generic 503 false positive.
SHIPPED_LABELS = {
    "Quack-discard_v1/discard_results_v1.json": {-1: 2, 0: 10},
    "Quack-discard_v2/discard_results_v2.json": {-1: 2, 0: 4, 1: 4},
    "Quack-echo_v1/echo_results_v1.json": {-1: 2, 0: 2, 1: 8},
    "Quack-echo_v2/echo_results_v2.json": {-1: 2, 0: 8},
    "Quack-http_v1/http_results_v1.json": {-1: 2, 0: 5, 1: 5},
    "Quack-http_v2/http_results_v2.json": {-1: 2, 0: 8},
    "Quack-https_v1/https_results_v1.json": {-1: 8, 0: 2},
    "Quack-https_v2/https_results_v2.json": {-1: 3, 0: 1},
}


def labels_per_file(fingerprints: Fingerprints) -> dict:
    counts = defaultdict(Counter)
    for row in iter_rows(SHARED):
        counts[row["source"]][label_row(row, fingerprints)[0]] += 1
    return {source: dict(c) for source, c in counts.items()}


@needs_shared
def test_real_files_with_shared_lists():
    assert labels_per_file(shared_fingerprints()) == SHARED_LABELS


@needs_shared
def test_real_files_with_shipped_list():
    assert labels_per_file(Fingerprints.load()) == SHIPPED_LABELS


@needs_shared
def test_shared_lists_dedupe_like_upstream():
    fps = shared_fingerprints()
    assert len(fps.blockpages) == 615 and len(fps.false_positives) == 456


@needs_shared
def test_fast_matcher_equals_naive_loop_on_real_and_generated_bodies(tmp_path):
    from quack.sample import write_sample

    paths = [SHARED / "false_positive_signatures.json", SHARED / "blockpage_signatures.json"]
    fps = shared_fingerprints()
    bodies = [r["body"] for r in iter_rows(SHARED) if r["body"]]
    records, _ = write_sample(tmp_path / "s.json", n=400, seed=11)
    bodies += sorted({r["body"] for r in iter_rows(records) if r["body"]})
    rnd = random.Random(0)
    patterns = [p.regex.pattern for p in fps.blockpages + fps.false_positives if "\\" not in p.regex.pattern]
    # Texts built from raw pattern strings hit the literal prefilter and the regexes together.
    bodies += [" ".join(rnd.sample(patterns, 3)) for _ in range(200)]
    for text in bodies:
        assert fps.match(text) == naive_match(paths, text)


def test_repeated_name_keeps_first_position_and_last_pattern(tmp_path):
    path = tmp_path / "blockpage_signatures.json"
    path.write_text("\n".join([
        '{"fingerprint": "a", "pattern": "alpha"}',
        "",
        '{"fingerprint": "b", "pattern": "beta"}',
        '{"fingerprint": "a", "pattern": "beta"}',
    ]) + "\n")
    fps = Fingerprints.load([str(path)])
    assert fps.match("beta") == (True, "a")
    assert fps.match("alpha") == (None, None)


def test_false_positive_wins_even_when_blockpage_hits_earlier_in_text(tmp_path):
    (tmp_path / "block.json").write_text('{"fingerprint": "b_x", "pattern": "Blocked"}\n')
    (tmp_path / "false_positive.json").write_text('{"fingerprint": "x_y", "pattern": "503 Service Unavailable"}\n')
    fps = Fingerprints.load([str(tmp_path / "block.json"), str(tmp_path / "false_positive.json")])
    assert fps.match("Blocked ... 503 Service Unavailable") == (False, "x_y")


def test_dotall_case_sensitive_and_unanchored(tmp_path):
    path = tmp_path / "b.json"
    path.write_text('{"fingerprint": "b", "pattern": "start.*end"}\n')
    fps = Fingerprints.load([str(path)])
    assert fps.match("xx start\nmiddle\nend") == (True, "b")
    assert fps.match("START end") == (None, None)


@pytest.mark.parametrize("line", ["{not json", '{"fingerprint": "a"}', '{"fingerprint": "a", "pattern": "("}'])
def test_bad_signature_file_names_file_and_line(tmp_path, line):
    path = tmp_path / "sig.json"
    path.write_text('{"fingerprint": "ok", "pattern": "x"}\n' + line + "\n")
    with pytest.raises(QuackInputError, match=r"sig\.json line 2"):
        Fingerprints.load([str(path)])


def row(**kw):
    base = {"matches_template": False, "anomaly": True, "body": ""}
    base.update(kw)
    return base


@pytest.mark.parametrize("kw,expected", [
    ({"matches_template": True, "anomaly": False, "body": "Surf Safely"}, (-1, None)),
    ({"matches_template": True, "anomaly": True, "body": ""}, (0, None)),
    ({"body": "<title>Surf Safely</title>"}, (1, "b_nat_pk_surf_safely")),
    ({"body": "<title>Welcome to nginx!</title>"}, (-1, "x_nginx_default")),
    ({"body": "nothing known"}, (0, None)),
    ({"body": ""}, (0, None)),
    ({"matches_template": None, "anomaly": None, "body": None}, (0, None)),
    ({"matches_template": False, "anomaly": False, "body": '<iframe src="http://10.10.34.34?type=Invalid">'},
     (1, "b_nat_ir_peyvandha")),
])
def test_label_rule(kw, expected):
    assert label_row(row(**kw), SHIPPED) == expected


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=40), st.sampled_from(SHIPPED_TEXT)), max_size=6))
def test_shipped_matcher_equals_naive_on_arbitrary_text(pieces):
    text = " ".join(pieces)
    assert SHIPPED.match(text) == naive_match(SHIPPED_PATHS, text)


@pytest.mark.parametrize("pattern,text", [
    ("(?i)BLOCKED page", "a blocked Page"),
    ("(?:optional)?required", "required"),
    ("(?:abc|defg)hij", "xx defghij"),
    ("x{0}always", "always"),
    ("(?:one|t(?i:WO))three", "twothree"),
    ("(?:ab)+c", "ababc"),
    ("ab|cd", "cd"),
])
def test_prefilter_never_hides_a_match(tmp_path, pattern, text):
    path = tmp_path / "blockpage_signatures.json"
    path.write_text(json.dumps({"fingerprint": "p", "pattern": pattern}) + "\n")
    assert Fingerprints.load([str(path)]).match(text) == (True, "p")
