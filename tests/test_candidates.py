"""The candidate list: near-identical responses collapsed into one candidate, diverse first screen."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quack.discovery.candidates import CANDIDATE_COLUMNS, collapse_candidates, rows_like
from quack.discovery.collapse import template_key, template_keys

TEMPLATE = ("<html><h1>Access to {domain} is blocked</h1><p>Request id {rid}, {when}, client {ip}.</p>"
            "<a href='http://block.{isp}.net/appeal?u={domain}'>appeal</a></html>")


def served(domain: str, rid: str, when: str, ip: str, isp: str = "example-isp") -> str:
    return TEMPLATE.format(domain=domain, rid=rid, when=when, ip=ip, isp=isp)


def test_one_template_served_with_per_request_differences_is_one_key():
    copies = [
        served("news.example.org", "9f86d081884c7d65", "2021-06-01 10:00:01", "10.0.0.1"),
        served("video.example.com", "2c26b46b68ffc68f", "2021-06-02 23:59:59", "192.168.7.42"),
        served("a.b.example.co.uk", "fcde2b2edba56bf4", "2022-01-30 00:00:00", "172.16.0.9"),
    ]
    assert len({template_key("403 Forbidden", body) for body in copies}) == 1


@pytest.mark.parametrize("other", [
    "<html><h1>This site is not available in your country</h1></html>",
    served("news.example.org", "9f86d081884c7d65", "2021-06-01", "10.0.0.1").replace("blocked", "filtered"),
])
def test_different_words_are_different_templates(other):
    page = served("news.example.org", "9f86d081884c7d65", "2021-06-01", "10.0.0.1")
    assert template_key("403 Forbidden", page) != template_key("403 Forbidden", other)
    # The status line is part of the template.
    assert template_key("403 Forbidden", page) != template_key("200 OK", page)


def test_collapse_gives_one_candidate_per_template_with_its_count_and_spread():
    bodies = [served(f"site{i}.example.org", f"{i:016x}", f"2021-06-0{i % 9 + 1}", f"10.0.{i}.1") for i in range(6)]
    bodies += ["<html>an ordinary page about cooking</html>", "<html>an ordinary page about cars</html>", ""]
    labels = np.array([0] * 6 + [0, 0, 1])
    scores = np.array([0.9, 0.95, 0.8, 0.85, 0.7, 0.75, 0.6, 0.5, 0.99])
    keys = template_keys(["403 Forbidden"] * 9, bodies)
    meta = pd.DataFrame({"country": ["RU", "RU", "KZ", "RU", "KZ", "BY", "US", "US", "RU"],
                         "vp": [f"1.1.1.{i % 4}" for i in range(9)],
                         "domain": [f"site{i}.example.org" for i in range(9)]})
    listed = collapse_candidates(scores, labels, keys, meta)
    assert list(listed.columns) == CANDIDATE_COLUMNS
    # Six copies of the blockpage make one candidate; the censored record is not listed.
    assert len(listed) == 3
    first = listed.iloc[0]
    assert first["record"] == 1 and first["score"] == pytest.approx(0.95)
    assert first["records"] == 6 and first["domains"] == 6 and first["vantage_points"] == 4
    assert first["countries"] == "BY, KZ, RU"
    assert listed["records"].sum() == int((labels == 0).sum())
    # Every record stays one step away.
    assert rows_like(keys, labels, first["template"]).tolist() == [0, 1, 2, 3, 4, 5]


def test_diversity_moves_a_second_variant_below_a_different_template():
    # Two variants of one product's page (different words, so two templates) score highest;
    # a different template scores just below them.
    # An ordinary page scores far below them.
    bodies = ["<h1>Fortress filter: page blocked</h1><p>category gambling</p>",
              "<h1>Fortress filter: page blocked</h1><p>category adult</p>",
              "<h1>Ministry notice: access restricted by court order</h1>",
              "<h1>Weather today</h1>"]
    keys = template_keys(["200 OK"] * 4, bodies)
    labels = np.zeros(4, dtype=np.int64)
    scores = np.array([0.9, 0.89, 0.88, 0.1])
    features = np.array([[1.0, 0.0], [0.99, 0.14], [0.0, 1.0], [0.7, 0.7]])
    plain = collapse_candidates(scores, labels, keys, features=features, diversity=0.0)
    diverse = collapse_candidates(scores, labels, keys, features=features, diversity=0.3)
    assert plain["record"].tolist() == [0, 1, 2, 3]
    assert diverse["record"].tolist() == [0, 2, 1, 3]
    assert sorted(diverse["record"]) == sorted(plain["record"])


def test_diversity_does_not_lift_an_unlike_template_that_scores_far_lower():
    # Twenty variants of one page score high; one page unlike them all scores near zero.
    # The re-ranking trades a little score for a different template, never this much.
    variants = 20
    bodies = [f"<h1>Fortress filter: page blocked</h1><p>category {word}</p>" for word in
              "abcdefghijklmnopqrst"[:variants]] + ["<h1>Weather today</h1>"]
    keys = template_keys(["200 OK"] * len(bodies), bodies)
    labels = np.zeros(len(bodies), dtype=np.int64)
    scores = np.concatenate([np.linspace(0.99, 0.9, variants), [0.01]])
    angles = np.linspace(0.0, 0.1, variants)
    features = np.vstack([np.column_stack([np.cos(angles), np.sin(angles), np.zeros(variants)]), [[0, 0, 1.0]]])
    diverse = collapse_candidates(scores, labels, keys, features=features, diversity=0.3)
    assert diverse["record"].iloc[-1] == variants
    assert sorted(diverse["record"]) == list(range(len(bodies)))


def test_bad_inputs_are_refused_in_one_sentence():
    with pytest.raises(ValueError, match="one entry per record"):
        collapse_candidates(np.zeros(2), np.zeros(3), np.array(["a", "b", "c"], dtype=object))
    with pytest.raises(ValueError, match="diversity"):
        collapse_candidates(np.zeros(1), np.zeros(1), np.array(["a"], dtype=object), diversity=1.0)
    assert collapse_candidates(np.zeros(1), np.ones(1), np.array(["a"], dtype=object)).empty
