"""Clusters, candidate ranking, fingerprint proposals and their counts over a data set."""

import re

import numpy as np
import pytest

from quack import discover
from quack.datafolder import read_rows
from quack.labels import Fingerprints, save_user_fingerprint
from quack.sample import write_sample
from quack.schema import Label


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
    with pytest.raises(ValueError, match="None of the chosen responses has any text"):
        discover.propose_pattern(["", "   "])


def test_propose_pattern_writes_control_characters_readably():
    bodies = ["HTTP/1.1 403 Forbidden\r\nConnection: close\r\n\r\n<b>blocked\tnow</b> 1",
              "HTTP/1.1 403 Forbidden\r\nConnection: close\r\n\r\n<b>blocked\tnow</b> 22"]
    pattern = discover.propose_pattern(bodies)
    assert "\r" not in pattern and "\n" not in pattern and "\t" not in pattern
    assert "Forbidden\\r\\nConnection" in pattern
    assert all(re.search(pattern, b, re.DOTALL) for b in bodies)


def _page(title: str, body: str, request: int) -> str:
    """A page with the boilerplate blockpages and ordinary pages share, and a per-request id."""
    return ('<!DOCTYPE html><html><head><meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<link rel="stylesheet" href="https://cdn.example/bootstrap.min.css"><title>{title}</title></head>'
            f'<body><div class="container">{body}<p>request {request:08x}</p></div></body></html>')


# A blockpage family (two languages, a product name they share) and ordinary pages built
# of the same parts; one ordinary page even says "blocked".
CLUSTER = [_page("Zugriff verweigert" if i % 2 else "Access refused",
                 "<h1>Shieldline Gateway (policy 4.2) [web-filter]</h1>", 977 * i) for i in range(12)]
OTHERS = [_page(f"News {i}", f"<h1>Headlines of day {i}</h1><p>Cookies blocked? Reload.</p>", 31 * i)
          for i in range(40)]


def test_propose_patterns_match_their_cluster_and_nothing_else():
    proposals = discover.propose_patterns(CLUSTER, OTHERS, share=0.8)
    assert proposals and proposals[0].precision == 1.0
    for proposal in proposals:
        assert 8 <= len(proposal.text) <= 120
        assert re.fullmatch(proposal.pattern, proposal.text, re.DOTALL), "an escaped literal of its text"
        hits = sum(bool(re.search(proposal.pattern, text, re.DOTALL)) for text in CLUSTER)
        assert hits / len(CLUSTER) == proposal.cluster_share >= 0.8
        outside = sum(bool(re.search(proposal.pattern, text, re.DOTALL)) for text in OTHERS)
        assert outside / len(OTHERS) == proposal.other_share
        if proposal.precision == 1.0:
            assert outside == 0
    best = proposals[0].text
    assert "Shieldline" in best or "policy" in best or "web-filter" in best
    assert best not in "".join(OTHERS)
    assert all(p.precision >= q.precision for p, q in zip(proposals, proposals[1:]))


def test_propose_patterns_prefers_the_shortest_text_that_only_the_cluster_has():
    proposals = discover.propose_patterns(CLUSTER, OTHERS, share=1.0, top=10)
    exclusive = [p for p in proposals if p.precision == 1.0]
    # The boilerplate is longer and shared by every page, so it is never proposed as exclusive.
    assert all("bootstrap" not in p.text and "viewport" not in p.text for p in exclusive)
    assert min(len(p.text) for p in exclusive) <= len("Shieldline")
    # Proposals come from different places of the page, not one phrase shifted by a character.
    texts = [p.text for p in proposals]
    assert all(a not in b for a in texts for b in texts if a is not b)


def test_propose_patterns_escape_regex_characters_and_save_in_the_labeller_format(tmp_path):
    cluster = [f"<p>Blocked (rule #{i}) [cat: *gambling*] + more?</p>" for i in range(5)]
    proposals = discover.propose_patterns(cluster, ["<p>Blocked (rule) elsewhere</p>"], share=1.0, min_length=10)
    path = tmp_path / "user_fingerprints.json"
    exclusive = [p for p in proposals if p.precision == 1.0]
    for number, proposal in enumerate(exclusive):
        save_user_fingerprint(path, f"e_unk_proposal_{number}", proposal.pattern)
    fingerprints = Fingerprints.load([path])
    assert len(fingerprints) == len(exclusive) > 0
    assert all(fingerprints.match(text)[0] is True for text in cluster)
    assert fingerprints.match("<p>Blocked (rule) elsewhere</p>") == (None, None)
    assert any("\\*gambling" in p.pattern or "\\+ more\\?" in p.pattern for p in exclusive), "characters escaped"


def test_propose_patterns_refuse_what_they_cannot_do():
    with pytest.raises(ValueError, match="None of the chosen responses has any text"):
        discover.propose_patterns(["", " "], OTHERS)
    with pytest.raises(ValueError, match="share no text of at least 8 characters"):
        discover.propose_patterns(["alpha beta gamma", "delta epsilon zeta"], OTHERS, share=1.0)
    with pytest.raises(ValueError, match="share must lie"):
        discover.propose_patterns(CLUSTER, OTHERS, share=0)
    with pytest.raises(ValueError, match="min_length <= max_length"):
        discover.propose_patterns(CLUSTER, OTHERS, min_length=20, max_length=10)


def test_propose_pattern_gives_the_longest_shared_text_which_contrast_improves_on():
    """The one-pattern proposal takes the longest text in common, here boilerplate every page has."""
    pattern = discover.propose_pattern(CLUSTER)
    assert all(re.search(pattern, text, re.DOTALL) for text in CLUSTER)
    assert all(re.search(pattern, text, re.DOTALL) for text in OTHERS)
    best = discover.propose_patterns(CLUSTER, OTHERS)[0].pattern
    assert not any(re.search(best, text, re.DOTALL) for text in OTHERS)


def test_propose_pattern_takes_equal_responses_that_are_one_object():
    # Arrow hands equal strings over as one Python object.
    body = "<html><head><title>Blocked here</title></head></html>"
    assert discover.propose_pattern([body, body, body]) == "<html><head><title>Blocked here</title></head></html>"


@pytest.fixture(scope="module")
def sample_data(tmp_path_factory):
    from quack.build import build_dataset
    from quack.encoding import SHIPPED_CHECKPOINT, load_checkpoint

    work = tmp_path_factory.mktemp("discover")
    records, _ = write_sample(work / "s.json", n=120, seed=4)
    build_dataset([records], work / "data", tokenizer=load_checkpoint(SHIPPED_CHECKPOINT).tokenizer)
    return work / "data"


def test_count_matches_counts_rows_per_label_over_a_data_set(sample_data):
    rows = read_rows(sample_data, columns=["label", "body"])
    pattern = re.escape("<title>")
    table = discover.count_matches(pattern, sample_data, batch_rows=7).set_index("label")
    for label in (Label.CENSORED, Label.UNDETERMINED, Label.UNCENSORED):
        chosen = rows[rows["label"] == label]
        expected = sum(bool(re.search(pattern, body or "", re.DOTALL)) for body in chosen["body"])
        assert table.loc[label.display, "rows"] == len(chosen)
        assert table.loc[label.display, "matches"] == expected
    assert table.loc["censored", "matches"] > 0


def test_count_matches_refuses_an_unbounded_pattern(sample_data):
    with pytest.raises(ValueError, match="proposed fingerprint"):
        discover.count_matches("(a+)+(?=b)", sample_data)
