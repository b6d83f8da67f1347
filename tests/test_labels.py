"""Labels and fingerprint matching: the rule of quack-format.md section 9, matcher of section 8."""

from __future__ import annotations

import functools
import json
import random
import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quack.data.build import build_dataset
from quack.data.datafolder import read_rows
from quack.data.ingest import iter_rows
from quack.fingerprints.labels import (
    Fingerprints,
    FingerprintWarning,
    label_row,
    read_user_fingerprints,
    response_text,
    relabel_rows,
    save_user_fingerprint,
    shipped_fingerprint_files,
)
from quack.schema import Label
from quack.data.vocab import FIELD_CHARS
from quack.errors import QuackInputError

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


# Labels per file with the shared lists and the body rule, derived by hand from the bodies (section 9):
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

# The whole-response rule reads the status line too: "503 Service Unavailable" is the generic
# false positive x_generic_503_4, first in order, so the 5 Palo Alto pages of http v1 and the 4
# corporate "Access Denied" pages of http v2, all served as 503s, are false positives there.
SHARED_FULL_LABELS = dict(SHARED_LABELS, **{
    "Quack-http_v1/http_results_v1.json": {-1: 7, 0: 5},
    "Quack-http_v2/http_results_v2.json": {-1: 6, 1: 4},
})

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


def labels_per_file(fingerprints: Fingerprints, match: str = "body") -> dict:
    counts = defaultdict(Counter)
    for row in iter_rows(SHARED):
        counts[row["source"]][label_row(row, fingerprints, match)[0]] += 1
    return {source: dict(c) for source, c in counts.items()}


@needs_shared
def test_real_files_with_shared_lists():
    assert labels_per_file(shared_fingerprints()) == SHARED_LABELS
    assert labels_per_file(shared_fingerprints(), "full") == SHARED_FULL_LABELS


@needs_shared
def test_real_files_with_shipped_list():
    assert labels_per_file(Fingerprints.load()) == SHIPPED_LABELS


@needs_shared
def test_shared_lists_dedupe_like_upstream():
    fps = shared_fingerprints()
    assert len(fps.blockpages) == 615 and len(fps.false_positives) == 456


@needs_shared
def test_fast_matcher_equals_naive_loop_on_real_and_generated_bodies(tmp_path):
    from quack.sample.generator import write_sample

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


@pytest.mark.parametrize("line", [
    pytest.param("{not json", id="not-json"),
    pytest.param('{"fingerprint": "a"}', id="no-pattern"),
    pytest.param('{"fingerprint": "a", "pattern": "("}', id="not-a-regex"),
    pytest.param("[1, 2]", id="not-an-object"),
    pytest.param("[" * 100_000, id="nested-100000-deep"),
    # Nested unbounded repeats beside a lookahead: no linear-time engine takes it.
    pytest.param('{"fingerprint": "a", "pattern": "(a+)+(?=b)"}', id="catastrophic"),
])
def test_bad_signature_file_names_file_and_line(tmp_path, line):
    path = tmp_path / "sig.json"
    path.write_text('{"fingerprint": "ok", "pattern": "x"}\n' + line + "\n")
    with pytest.raises(QuackInputError, match=r"sig\.json line 2") as caught:
        Fingerprints.load([str(path)])
    assert len(str(caught.value).splitlines()) == 1


def test_a_catastrophic_signature_labels_a_long_body_correctly(tmp_path):
    # Python's re backtracks exponentially on (a+)+$ against a run of a's that fails at the
    # end; the labeller must still answer, so it runs in a child that a hang would fail.
    path = tmp_path / "blockpage_signatures.json"
    path.write_text(json.dumps({"fingerprint": "b_runaway", "pattern": "(a+)+$"}) + "\n")
    script = (
        "import sys; from quack.fingerprints.labels import Fingerprints; fps = Fingerprints.load([sys.argv[1]]); "
        "print(fps.match('a' * 5000 + '!'), fps.match('<p>' + 'a' * 5000))"
    )
    done = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["(None,", "None)", "(True,", "'b_runaway')"]


def test_an_empty_signature_file_loads_with_a_warning_naming_it(tmp_path):
    path = tmp_path / "blockpage_signatures.json"
    path.write_text("\n")
    with pytest.warns(FingerprintWarning, match=r"blockpage_signatures\.json holds no fingerprints"):
        fps = Fingerprints.load([str(path)])
    assert len(fps) == 0 and fps.match("<h1>Blocked</h1>") == (None, None)


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
    # The body-only rule of the published model's pipeline (`quack ingest --match body`).
    assert label_row(row(**kw), SHIPPED, "body") == expected


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


def test_save_user_fingerprint_appends_in_censored_planet_format(tmp_path):
    path = tmp_path / "user" / "fingerprints.json"
    save_user_fingerprint(path, "e_unk_user_1", "Access denied \\(policy\\)")
    save_user_fingerprint(path, "e_unk_user_2", "Blocked")
    lines = path.read_text().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"fingerprint": "e_unk_user_1", "pattern": "Access denied \\(policy\\)"},
        {"fingerprint": "e_unk_user_2", "pattern": "Blocked"},
    ]
    assert read_user_fingerprints(path)[1]["fingerprint"] == "e_unk_user_2"
    assert list(path.parent.glob("*.tmp")) == []


@pytest.mark.parametrize(
    "name, pattern, message",
    [
        ("e_unk_user_1", "again", "already has"),
        ("bad name", "x", "must be letters"),
        ("", "x", "must be letters"),
        ("ok", "(unclosed", "not a valid regular expression"),
        ("ok", "(x+)+(?!y)", "nested repeat"),
        ("ok", "  ", "empty"),
    ],
)
def test_save_user_fingerprint_refuses_bad_entries_and_keeps_the_file(tmp_path, name, pattern, message):
    path = tmp_path / "fingerprints.json"
    save_user_fingerprint(path, "e_unk_user_1", "Blocked")
    before = path.read_text()
    with pytest.raises(ValueError, match=message):
        save_user_fingerprint(path, name, pattern)
    assert path.read_text() == before


def test_read_user_fingerprints_names_the_bad_line(tmp_path):
    path = tmp_path / "f.json"
    path.write_text('{"fingerprint": "a", "pattern": "x"}\n\nnot json\n')
    with pytest.raises(ValueError, match="line 3"):
        read_user_fingerprints(path)
    assert read_user_fingerprints(tmp_path / "missing.json") == []


def test_relabel_rows_adds_user_fingerprints_without_touching_template_matches(tmp_path):
    user = tmp_path / "user-fingerprints.json"
    save_user_fingerprint(user, "e_unk_user_regional", "Regional content filter")
    frame = pd.DataFrame(
        {
            "id": [0, 1, 2, 3, 4],
            "label": [-1, 0, 0, 1, 0],
            "fingerprint": [None, None, None, "a_prod_fortiguard_title", None],
            "anomaly": [False, True, True, True, True],
            "body": [
                "Regional content filter (but the probe matched its template)",
                "<html>Regional content filter: access denied</html>",
                "",
                "<h1>FortiGuard Web Filter Service</h1>",
                "an ordinary page",
            ],
        }
    )
    before = relabel_rows(frame, [])
    assert before["label"].tolist() == [-1, 0, 0, 1, 0]
    after = relabel_rows(frame, [user])
    assert after["label"].tolist() == [-1, 1, 0, 1, 0]
    assert after["fingerprint"].tolist()[1] == "e_unk_user_regional"
    assert after["id"].tolist() == [0, 1, 2, 3, 4]


def test_relabel_keeps_a_match_ingest_found_beyond_the_stored_text(tmp_path):
    # A page whose blockpage signature lies past the part of the body a data set keeps.
    body = "<html>" + "x" * (FIELD_CHARS + 500) + "<h1>FortiGuard Web Filter Service</h1></html>"
    record = {
        "vp": "1.2.3.4", "location": {"country_code": "XX"}, "service": "http", "test_url": "example.com",
        "start_time": "2021-06-01T00:00:00Z", "end_time": "2021-06-01T00:00:01Z", "anomaly": True,
        "controls_failed": False, "stateful_block": False,
        "response": [{"matches_template": False, "response": {"status_line": "200 OK", "headers": {}, "body": body},
                      "start_time": "2021-06-01T00:00:00Z", "end_time": "2021-06-01T00:00:01Z"}],
    }
    source = tmp_path / "long.json"
    source.write_text(json.dumps(record) + "\n")
    build_dataset([source], tmp_path / "data", vocab_size=300, max_tokens=64)
    frame = read_rows(tmp_path / "data", columns=["id", "label", "fingerprint", "anomaly", "body"])
    assert frame["label"].tolist() == [1] and len(frame["body"][0]) <= FIELD_CHARS
    user = tmp_path / "user-fingerprints.json"
    save_user_fingerprint(user, "e_unk_user_regional", "Regional content filter")
    after = relabel_rows(frame, [user])
    assert after["label"].tolist() == [1]
    assert after["fingerprint"].tolist() == frame["fingerprint"].tolist()


def test_shipped_files_are_the_lists_the_default_load_and_relabel_use():
    files = shipped_fingerprint_files()
    assert sorted(p.name for p in files) == ["blockpages.json", "false_positives.json"]
    assert all(p.is_file() for p in files)
    assert Fingerprints.load().sources == [str(p) for p in files]
    # Relabelling with no base lists given uses the shipped ones.
    frame = pd.DataFrame({"id": [0, 1], "label": [0, 0], "fingerprint": [None, None], "anomaly": [True, True],
                          "body": ["<title>Surf Safely</title>", "nothing known"]})
    assert relabel_rows(frame, [])["label"].tolist() == [1, 0]
    assert relabel_rows(frame, [], base_files=files)["label"].tolist() == [1, 0]


def test_label_row_gives_label_members():
    label, name = label_row(row(body="<title>Surf Safely</title>"), SHIPPED)
    assert label is Label.CENSORED and name == "b_nat_pk_surf_safely"


def test_read_user_fingerprints_refuses_a_pattern_that_is_no_regex(tmp_path):
    path = tmp_path / "user.json"
    path.write_text('{"fingerprint": "a", "pattern": "(unclosed"}\n')
    with pytest.raises(QuackInputError, match=r"user\.json line 1 is not a valid regular expression"):
        read_user_fingerprints(path)


def test_save_user_fingerprint_names_a_file_it_cannot_write(tmp_path, monkeypatch):
    import quack.fingerprints.labels

    def full_disk(path, write):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(quack.fingerprints.labels, "atomic_write", full_disk)
    path = tmp_path / "fingerprints.json"
    with pytest.raises(ValueError, match=rf"Cannot write the fingerprint file {re.escape(str(path))}: No space left"):
        save_user_fingerprint(path, "e_unk_user_1", "Blocked")


# The whole-response rule of Censored Planet's analysis pipeline, on replies shaped like the
# records of its published tests: an HTTP reply of status line, Go-canonical headers and body.
WHOLE = Fingerprints(
    [("r_fp_28", r"Set-Cookie:.*domain=\."), ("x_generic_404", "404 Not Found")],
    [("d_corp_ru_pstu", r"Location: http://blocked\.pstu\.ru"), ("a_prod_barracuda_2", "Server: Barracuda/NGFirewall"),
     ("b_nat_ir_peyvandha", r"iframe src=\"http://10\.10\.34\.3[456]")],
)


def http_row(status, headers, body, anomaly=True, service="http"):
    return {"matches_template": False, "anomaly": anomaly, "service": service, "status": status,
            "headers": "\r\n".join(f"{key}: {value}" for key, value in headers), "body": body}


def test_response_text_is_status_headers_blank_line_body():
    http = http_row("302 Found", [("Location", "http://blocked.pstu.ru/"), ("Server", "nginx")], "<p>moved</p>")
    assert response_text(http) == "302 Found\r\nLocation: http://blocked.pstu.ru/\r\nServer: nginx\r\n\r\n<p>moved</p>"
    assert response_text(http_row("200 OK", [], "")) == "200 OK\r\n\r\n"
    # Echo and discard: the received string is matched as it came.
    echo = {"service": "echo", "status": "403 Forbidden", "headers": "", "body": "HTTP/1.1 403 Forbidden\r\n\r\nx"}
    assert response_text(echo) == "HTTP/1.1 403 Forbidden\r\n\r\nx"


def test_a_redirect_signature_fires_on_the_location_header():
    redirect = http_row("302 Moved Temporarily", [("Content-Length", "0"), ("Location", "http://blocked.pstu.ru/?u=x")], "")
    assert label_row(redirect, WHOLE) == (Label.CENSORED, "d_corp_ru_pstu")
    assert label_row(redirect, WHOLE, "body") == (Label.UNDETERMINED, None)
    banner = http_row("403 Forbidden", [("Server", "Barracuda/NGFirewall")], "<html>Access denied</html>")
    assert label_row(banner, WHOLE) == (Label.CENSORED, "a_prod_barracuda_2")


def test_a_false_positive_in_the_headers_outranks_a_blockpage_in_the_body():
    # The body alone looks like a blockpage; the headers show an ordinary site's reply.
    page = http_row("200 OK", [("Set-Cookie", "sid=1; path=/; domain=.example.com")],
                    '<iframe src="http://10.10.34.34?type=Invalid">')
    assert label_row(page, WHOLE, "body") == (Label.CENSORED, "b_nat_ir_peyvandha")
    assert label_row(page, WHOLE) == (Label.UNCENSORED, "r_fp_28")
    # A status line alone can be a known false positive.
    assert label_row(http_row("404 Not Found", [], "<html>gone</html>"), WHOLE) == (Label.UNCENSORED, "x_generic_404")


def test_whole_response_rule_calls_a_blockpage_censored_only_in_an_anomaly():
    body = '<iframe src="http://10.10.34.34?type=Invalid">'
    assert label_row(http_row("200 OK", [], body), WHOLE) == (Label.CENSORED, "b_nat_ir_peyvandha")
    # A failed retry in a record whose other probes matched: the pipeline matches nothing.
    assert label_row(http_row("200 OK", [], body, anomaly=False), WHOLE) == (Label.UNDETERMINED, None)
    assert label_row(http_row("404 Not Found", [], "", anomaly=False), WHOLE) == (Label.UNCENSORED, "x_generic_404")
    with pytest.raises(ValueError, match="match rule"):
        label_row(http_row("200 OK", [], body), WHOLE, "headers")


def test_ingest_labels_by_the_whole_response_unless_told_body(tmp_path):
    record = {
        "vp": "1.2.3.4", "location": {"country_code": "RU"}, "service": "http", "test_url": "example.com",
        "anomaly": True, "controls_failed": False, "stateful_block": False,
        "response": [{"matches_template": False, "response": {
            "status_line": "302 Found", "headers": {"Location": ["http://blocked.pstu.ru/"]}, "body": ""}}],
    }
    source = tmp_path / "redirect.json"
    source.write_text(json.dumps(record) + "\n")
    signatures = tmp_path / "blockpage_signatures.json"
    signatures.write_text(json.dumps({"fingerprint": "d_corp_ru_pstu", "pattern": r"Location: http://blocked\.pstu\.ru"}) + "\n")
    whole = build_dataset([source], tmp_path / "whole", signatures=[str(signatures)], vocab_size=300, max_tokens=64)
    body = build_dataset([source], tmp_path / "body", signatures=[str(signatures)], vocab_size=300, max_tokens=64,
                         match="body")
    assert whole["match"] == "full" and whole["rows_per_label"]["1"] == 1
    assert body["match"] == "body" and body["rows_per_label"]["1"] == 0 and body["rows_per_label"]["0"] == 1
    frame = read_rows(tmp_path / "body", columns=["id", "label", "fingerprint", "anomaly", "body", "status", "headers",
                                                  "service"])
    assert relabel_rows(frame, [], base_files=[signatures])["label"].tolist() == [1]
    assert relabel_rows(frame, [], base_files=[signatures], match="body")["label"].tolist() == [0]


REALPAGES = Path(__file__).resolve().parents[2] / "shared" / "data" / "realpages"


@pytest.mark.skipif(not (REALPAGES / "truth.jsonl.gz").is_file() or not SHARED.is_dir(),
                    reason="shared real pages not present")
def test_whole_response_labels_equal_censored_planets_on_the_real_pages(tmp_path):
    signatures = [str(SHARED / "blockpage_signatures.json"), str(SHARED / "false_positive_signatures.json")]
    fingerprints = Fingerprints.load(signatures)
    truth = pd.read_json(REALPAGES / "truth.jsonl.gz", lines=True)
    expected = {(int(t.line), int(t.probe)): (t.cp_full_label, t.cp_full_fingerprint) for t in truth.itertuples()}
    compared = 0
    for item in iter_rows([REALPAGES / "measurements.jsonl.gz"]):
        label, fingerprint = expected[(item["line"], item["probe"])]
        if pd.isna(label):
            continue  # a template match or no reply: the pipeline matches nothing
        assert label_row(item, fingerprints) == (Label(int(label)), fingerprint if isinstance(fingerprint, str) else None)
        compared += 1
    assert compared > 4000
