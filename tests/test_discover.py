"""Clusters, candidate ranking and fingerprint proposals."""

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
    with pytest.raises(ValueError, match="None of the chosen responses has any text"):
        discover.propose_pattern(["", "   "])


def test_propose_pattern_writes_control_characters_readably():
    bodies = ["HTTP/1.1 403 Forbidden\r\nConnection: close\r\n\r\n<b>blocked\tnow</b> 1",
              "HTTP/1.1 403 Forbidden\r\nConnection: close\r\n\r\n<b>blocked\tnow</b> 22"]
    pattern = discover.propose_pattern(bodies)
    assert "\r" not in pattern and "\n" not in pattern and "\t" not in pattern
    assert "Forbidden\\r\\nConnection" in pattern
    assert all(re.search(pattern, b, re.DOTALL) for b in bodies)
