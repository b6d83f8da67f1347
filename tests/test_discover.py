"""Clusters, candidate ranking, fingerprint proposals and attention per field."""

import json
import re

import numpy as np
import pytest

from quack import discover


def test_cluster_latents_finds_two_dense_groups():
    rng = np.random.default_rng(0)
    x = rng.normal(scale=0.3, size=(300, 64)).astype(np.float32)
    x[:150, :5] += 8.0
    clusters = discover.cluster_latents(x, min_cluster_size=20)
    assert clusters.shape == (300,)
    top_a = np.bincount(clusters[:150][clusters[:150] >= 0]).argmax()
    top_b = np.bincount(clusters[150:][clusters[150:] >= 0]).argmax()
    assert top_a != top_b
    assert (clusters[:150] == top_a).mean() > 0.9 and (clusters[150:] == top_b).mean() > 0.9


def test_cluster_latents_rejects_sizes_out_of_range():
    with pytest.raises(ValueError, match="at least 2"):
        discover.cluster_latents(np.zeros((10, 3)), min_cluster_size=1)
    with pytest.raises(ValueError, match="larger than the data set"):
        discover.cluster_latents(np.zeros((10, 3)), min_cluster_size=50)


def test_cluster_summary_counts_labels_and_picks_the_central_response():
    latents = np.array([[0.0], [1.0], [2.0], [10.0], [11.0], [50.0]], dtype=np.float32)
    clusters = np.array([0, 0, 0, 1, 1, -1])
    labels = np.array([1, 0, 0, -1, -1, 0])
    texts = ["a", "b", "c", "d", "e", "f"]
    table = discover.cluster_summary(clusters, labels, latents, texts)
    assert table["cluster"].tolist() == [0, 1]
    first = table.iloc[0]
    assert (first["size"], first["censored"], first["undetermined"], first["uncensored"]) == (3, 1, 2, 0)
    assert first["representative"] == 1 and first["representative_text"] == "b"
    assert table.iloc[1]["undetermined_share"] == 0.0


def test_rank_candidates_keeps_only_undetermined_rows_most_likely_first():
    probabilities = np.array([0.9, 0.2, 0.8, 0.95, 0.5])
    labels = np.array([1, 0, 0, -1, 0])
    assert discover.rank_candidates(probabilities, labels).tolist() == [2, 4, 1]
    assert discover.rank_candidates(probabilities, labels, top=1).tolist() == [2]


def test_propose_pattern_matches_every_response_and_escapes_regex_characters():
    bodies = [
        "<html><title>Access denied (policy 7.1)</title> id=1</html>",
        "HTTP/1.1 200 OK\r\n\r\n<html><title>Access denied (policy 7.1)</title> id=22</html>",
        "<title>Access denied (policy 7.1)</title>",
    ]
    pattern = discover.propose_pattern(bodies)
    assert "Access denied \\(policy 7\\.1\\)" in pattern
    assert all(re.search(pattern, b, re.DOTALL) for b in bodies)
    assert not re.search(pattern, "Access denied (policy 7x1)")


def test_propose_pattern_tolerates_an_outlier_when_asked():
    bodies = ["Blocked by the national filter #1", "Blocked by the national filter #2", "something else entirely"]
    with pytest.raises(ValueError, match="share no text"):
        discover.propose_pattern(bodies, min_length=12)
    pattern = discover.propose_pattern(bodies, min_length=12, share=0.6)
    assert pattern.startswith("Blocked by the national filter")


def test_propose_pattern_needs_text():
    with pytest.raises(ValueError, match="no|None"):
        discover.propose_pattern(["", "   "])


def test_save_user_fingerprint_appends_in_censored_planet_format(tmp_path):
    path = tmp_path / "user" / "fingerprints.json"
    discover.save_user_fingerprint(path, "e_unk_user_1", "Access denied \\(policy\\)")
    discover.save_user_fingerprint(path, "e_unk_user_2", "Blocked")
    lines = path.read_text().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"fingerprint": "e_unk_user_1", "pattern": "Access denied \\(policy\\)"},
        {"fingerprint": "e_unk_user_2", "pattern": "Blocked"},
    ]
    assert discover.read_user_fingerprints(path)[1]["fingerprint"] == "e_unk_user_2"
    assert list(path.parent.glob("*.tmp")) == []


@pytest.mark.parametrize(
    "name, pattern, message",
    [
        ("e_unk_user_1", "again", "already has"),
        ("bad name", "x", "must be letters"),
        ("", "x", "must be letters"),
        ("ok", "(unclosed", "not a valid regular expression"),
        ("ok", "  ", "empty"),
    ],
)
def test_save_user_fingerprint_refuses_bad_entries_and_keeps_the_file(tmp_path, name, pattern, message):
    path = tmp_path / "fingerprints.json"
    discover.save_user_fingerprint(path, "e_unk_user_1", "Blocked")
    before = path.read_text()
    with pytest.raises(ValueError, match=message):
        discover.save_user_fingerprint(path, name, pattern)
    assert path.read_text() == before


def test_read_user_fingerprints_names_the_bad_line(tmp_path):
    path = tmp_path / "f.json"
    path.write_text('{"fingerprint": "a", "pattern": "x"}\n\nnot json\n')
    with pytest.raises(ValueError, match="line 3"):
        discover.read_user_fingerprints(path)
    assert discover.read_user_fingerprints(tmp_path / "missing.json") == []


def test_attention_received_and_by_field():
    attention = np.array([[0.5, 0.5, 0.0], [0.0, 0.5, 0.5], [1.0, 0.0, 0.0]])
    np.testing.assert_allclose(discover.attention_received(attention, n_decoded=2), [0.25, 0.5, 0.25])
    shares = discover.attention_by_field(attention, ["special", "body", "body"])
    assert shares == pytest.approx({"special": 0.5, "body": 0.5})
    shares = discover.attention_by_field(np.array([0.2, 0.3, 0.5]), ["status", "body", "special"])
    assert shares == pytest.approx({"status": 0.2, "body": 0.3, "special": 0.5})


def test_relabel_rows_adds_user_fingerprints_without_touching_template_matches(tmp_path):
    import pandas as pd

    user = tmp_path / "user-fingerprints.json"
    discover.save_user_fingerprint(user, "e_unk_user_regional", "Regional content filter")
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
    before = discover.relabel_rows(frame, [])
    assert before["label"].tolist() == [-1, 0, 0, 1, 0]
    after = discover.relabel_rows(frame, [user])
    assert after["label"].tolist() == [-1, 1, 0, 1, 0]
    assert after["fingerprint"].tolist()[1] == "e_unk_user_regional"
    assert after["id"].tolist() == [0, 1, 2, 3, 4]


def test_relabel_keeps_a_match_ingest_found_beyond_the_stored_text(tmp_path):
    from quack.dataset import build_dataset, read_rows
    from quack.tokenizer import FIELD_CHARS

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
    discover.save_user_fingerprint(user, "e_unk_user_regional", "Regional content filter")
    after = discover.relabel_rows(frame, [user])
    assert after["label"].tolist() == [1]
    assert after["fingerprint"].tolist() == frame["fingerprint"].tolist()


def test_propose_pattern_writes_control_characters_readably():
    bodies = ["HTTP/1.1 403 Forbidden\r\nConnection: close\r\n\r\n<b>blocked\tnow</b> 1",
              "HTTP/1.1 403 Forbidden\r\nConnection: close\r\n\r\n<b>blocked\tnow</b> 22"]
    pattern = discover.propose_pattern(bodies)
    assert "\r" not in pattern and "\n" not in pattern and "\t" not in pattern
    assert "Forbidden\\r\\nConnection" in pattern
    assert all(re.search(pattern, b, re.DOTALL) for b in bodies)
