"""Clusters, candidate ranking, fingerprint proposals and their counts over a data set."""

import re

import numpy as np
import pytest

from quack.discovery.clusters import cluster_latents, cluster_summary, rank_candidates
from quack.discovery.proposals import count_matches, match_counts, proposal_rows, propose_patterns
from quack.data.datafolder import read_rows
from quack.fingerprints.labels import Fingerprints, save_user_fingerprint
from quack.sample.generator import write_sample
from quack.schema import Label


def test_cluster_latents_finds_two_dense_groups():
    rng = np.random.default_rng(0)
    x = rng.normal(scale=0.3, size=(300, 64)).astype(np.float32)
    x[:150, :5] += 8.0
    clusters = cluster_latents(x, min_cluster_size=20)
    assert clusters.shape == (300,)
    top_a = np.bincount(clusters[:150][clusters[:150] >= 0]).argmax()
    top_b = np.bincount(clusters[150:][clusters[150:] >= 0]).argmax()
    assert top_a != top_b
    assert (clusters[:150] == top_a).mean() > 0.9 and (clusters[150:] == top_b).mean() > 0.9


def test_cluster_latents_rejects_sizes_out_of_range():
    with pytest.raises(ValueError, match="at least 2"):
        cluster_latents(np.zeros((10, 3)), min_cluster_size=1)
    with pytest.raises(ValueError, match="larger than the data set"):
        cluster_latents(np.zeros((10, 3)), min_cluster_size=50)


def test_cluster_summary_counts_labels_and_picks_the_central_response():
    latents = np.array([[0.0], [1.0], [2.0], [10.0], [11.0], [50.0]], dtype=np.float32)
    clusters = np.array([0, 0, 0, 1, 1, -1])
    labels = np.array([1, 0, 0, -1, -1, 0])
    texts = ["a", "b", "c", "d", "e", "f"]
    table = cluster_summary(clusters, labels, latents, texts)
    assert table["cluster"].tolist() == [0, 1]
    first = table.iloc[0]
    assert (first["size"], first["censored"], first["undetermined"], first["uncensored"]) == (3, 1, 2, 0)
    assert first["representative"] == 1 and first["representative_text"] == "b"
    assert table.iloc[1]["undetermined_share"] == 0.0


def test_a_clusters_representative_is_one_of_the_rows_its_proposals_are_made_from():
    latents = np.array([[0.0], [1.0], [2.0], [10.0], [11.0], [12.0]], dtype=np.float32)
    clusters = np.array([0, 0, 0, 1, 1, 1])
    labels = np.array([0, 1, 1, -1, -1, -1])
    table = cluster_summary(clusters, labels, latents, ["a", "b", "c", "d", "e", "f"]).set_index("cluster")
    # Row 1 lies at the centre of cluster 0, but row 0 is its only undetermined row.
    assert table.loc[0, "representative"] == 0 and table.loc[0, "representative_text"] == "a"
    # Cluster 1 has no undetermined row: all of them are proposed from, its centre represents it.
    assert table.loc[1, "representative"] == 4
    for cluster, row in table.iterrows():
        assert row["representative"] in proposal_rows(np.flatnonzero(clusters == cluster), labels)


def test_proposals_are_made_from_a_groups_undetermined_rows_or_all_when_none_is():
    labels = np.array([1, 0, -1, 0, 1])
    assert proposal_rows(np.array([4, 3, 0, 1]), labels).tolist() == [3, 1]
    assert proposal_rows(np.array([4, 2, 0]), labels).tolist() == [4, 2, 0]
    assert proposal_rows(np.array([], dtype=np.int64), labels).tolist() == []


def test_rank_candidates_keeps_only_undetermined_rows_most_likely_first():
    probabilities = np.array([0.9, 0.2, 0.8, 0.95, 0.5])
    labels = np.array([1, 0, 0, -1, 0])
    assert rank_candidates(probabilities, labels).tolist() == [2, 4, 1]
    assert rank_candidates(probabilities, labels, top=1).tolist() == [2]


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
    proposals = propose_patterns(CLUSTER, OTHERS, share=0.8)
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
    proposals = propose_patterns(CLUSTER, OTHERS, share=1.0, top=10)
    exclusive = [p for p in proposals if p.precision == 1.0]
    # The boilerplate is longer and shared by every page, so it is never proposed as exclusive.
    assert all("bootstrap" not in p.text and "viewport" not in p.text for p in exclusive)
    assert min(len(p.text) for p in exclusive) <= len("Shieldline")
    # Proposals come from different places of the page, not one phrase shifted by a character.
    texts = [p.text for p in proposals]
    assert all(a not in b for a in texts for b in texts if a is not b)


def test_propose_patterns_escape_regex_characters_and_save_in_the_labeller_format(tmp_path):
    cluster = [f"<p>Blocked (rule #{i}) [cat: *gambling*] + more?</p>" for i in range(5)]
    proposals = propose_patterns(cluster, ["<p>Blocked (rule) elsewhere</p>"], share=1.0, min_length=10)
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
        propose_patterns(["", " "], OTHERS)
    with pytest.raises(ValueError, match="share no text of at least 8 characters"):
        propose_patterns(["alpha beta gamma", "delta epsilon zeta"], OTHERS, share=1.0)
    with pytest.raises(ValueError, match="share must lie"):
        propose_patterns(CLUSTER, OTHERS, share=0)
    with pytest.raises(ValueError, match="min_length <= max_length"):
        propose_patterns(CLUSTER, OTHERS, min_length=20, max_length=10)


@pytest.fixture(scope="module")
def sample_data(tmp_path_factory):
    from quack.data.build import build_dataset
    from quack.model.encoding import SHIPPED_CHECKPOINT, load_checkpoint

    work = tmp_path_factory.mktemp("discover")
    records, _ = write_sample(work / "s.json", n=120, seed=4)
    build_dataset([records], work / "data", tokenizer=load_checkpoint(SHIPPED_CHECKPOINT).tokenizer)
    return work / "data"


def test_count_matches_counts_rows_per_label_over_a_data_set(sample_data):
    rows = read_rows(sample_data, columns=["label", "body"])
    pattern = re.escape("<title>")
    table = count_matches(pattern, sample_data, batch_rows=7).set_index("label")
    for label in (Label.CENSORED, Label.UNDETERMINED, Label.UNCENSORED):
        chosen = rows[rows["label"] == label]
        expected = sum(bool(re.search(pattern, body or "", re.DOTALL)) for body in chosen["body"])
        assert table.loc[label.display, "rows"] == len(chosen)
        assert table.loc[label.display, "matches"] == expected
    assert table.loc["censored", "matches"] > 0


def test_count_matches_refuses_an_unbounded_pattern(sample_data):
    with pytest.raises(ValueError, match="proposed fingerprint"):
        count_matches("(a+)+(?=b)", sample_data)


def test_match_counts_counts_each_pattern_per_label_over_streamed_batches():
    bodies = ["<b>Blocked by policy</b>", "ordinary page", None, "Blocked by policy again", "ordinary", "Blocked x"]
    labels = np.array([1, -1, 0, 0, 0, -1])
    batches = (bodies[i : i + 2] for i in range(0, len(bodies), 2))
    seen = []
    counts = match_counts(["Blocked by policy", "ordinary"], batches, labels,
                                   progress=lambda done, total: seen.append((done, total)))
    table = counts.table.set_index("pattern")
    assert table.loc["Blocked by policy", ["censored", "undetermined", "uncensored"]].tolist() == [1, 1, 0]
    assert table.loc["ordinary", ["censored", "undetermined", "uncensored"]].tolist() == [0, 1, 1]
    assert counts.rows.tolist() == [1, 3, 2] and counts.complete
    assert seen == [(2, 6), (4, 6), (6, 6)]


def test_match_counts_stop_at_the_deadline_and_say_how_far_they_got():
    import time

    def slow():
        yield ["Blocked", "Blocked"]
        time.sleep(0.3)
        yield ["Blocked", "Blocked"]

    counts = match_counts(["Blocked"], slow(), np.array([0, 0, 0, 0]), deadline=time.monotonic() + 0.2)
    assert (counts.scanned, counts.total, counts.complete) == (2, 4, False)
    assert counts.table.loc[0, "undetermined"] == 2


def test_match_counts_refuse_a_pattern_they_cannot_bound():
    with pytest.raises(ValueError, match="proposed fingerprint"):
        match_counts(["(a+)+(?=b)"], [["aaa"]], np.array([0]))


# --------------------------------------------------------------- the Discover page's computations


def _report(aps: dict[str, list[float]], ranked: int = 30):
    from quack.discovery.report import EvaluationReport

    methods = list(aps)
    folds = []
    for i in range(len(next(iter(aps.values())))):
        scores = {m: {"p@5": aps[m][i], "p@10": aps[m][i] / 2, "p@50": 0.1, "r@5": 0.5, "r@10": 1.0, "r@50": 1.0,
                      "ap": aps[m][i]} for m in methods}
        folds.append({"hidden": [f"family_{i}"], "positives": 3, "ranked": ranked, "scores": scores})
    return EvaluationReport(data="test", checkpoint=None, rows=100, rows_per_label={"1": 10, "0": 30, "-1": 60},
                            families={"family_0": 3}, top=[5, 10, 50], methods=methods, folds=folds,
                            purity={"mean": 0.5, "ceiling": 1.0, "within_reach": 0.5, "records": 6, "by_family": {}})


def test_best_method_is_the_highest_mean_average_precision():
    from dashboard import rankings

    report = _report({"latent_classifier": [0.2, 0.4], "tfidf_text": [0.9, 0.5], "bag_of_tokens": [float("nan")] * 2})
    assert rankings.best_method(report) == "tfidf_text"
    assert rankings.average_precisions(report)["latent_classifier"] == pytest.approx(0.3)
    table = rankings.summary_table(report)
    assert table["method"].tolist() == ["tfidf text", "latent classifier", "bag of tokens", "random"]
    assert table.loc[0, "AP"] == "0.70 ± 0.20" and table.loc[2, "AP"] == "–"
    assert list(table.columns) == ["method", "P@50", "R@50", "AP"], "the table's K that the report has"


def test_precision_curves_stop_at_the_records_ranked():
    from dashboard import rankings

    curves = rankings.precision_curves(_report({"latent_classifier": [0.2, 0.4]}, ranked=30))
    ks, values = curves["latent_classifier"]
    assert ks == [5, 10] and values == pytest.approx([0.3, 0.15])
    assert set(curves) == {"latent_classifier", "random"}


def test_fold_count_is_one_per_family_large_enough_and_bounded():
    from dashboard import rankings

    many = np.array([f"f{i}" for i in range(8) for _ in range(rankings.CONFIG.min_rows)] + [""] * 5, dtype=object)
    assert rankings.fold_count(many) == rankings.MAX_FOLDS
    two = np.array(["a"] * rankings.CONFIG.min_rows + ["b"] * rankings.CONFIG.min_rows + ["c"], dtype=object)
    assert rankings.fold_count(two) == 2
    with pytest.raises(ValueError, match="no family to hide"):
        rankings.fold_count(np.array(["a", "", "b"], dtype=object))


def test_saving_several_proposals_makes_numbered_variants_all_or_none(tmp_path):
    from dashboard import proposals

    path = tmp_path / "mine.json"
    assert proposals.save_fingerprints(path, "e_unk_one", ["Blocked here"]) == ["e_unk_one"]
    saved = proposals.save_fingerprints(path, " e_unk_page ", ["Access denied", "", "policy 7\\.1"])
    assert saved == ["e_unk_page_1", "e_unk_page_2"]
    fingerprints = Fingerprints.load([path])
    assert fingerprints.match("<p>policy 7.1</p>") == (True, "e_unk_page_2")
    before = path.read_bytes()
    with pytest.raises(ValueError, match="already has a fingerprint named 'e_unk_page_1'"):
        proposals.save_fingerprints(path, "e_unk_page", ["new text", "other text"])
    with pytest.raises(ValueError, match="Tick a proposal"):
        proposals.save_fingerprints(path, "e_unk_none", ["", "  "])
    with pytest.raises(ValueError, match="e_unk_bad_2"):
        proposals.save_fingerprints(path, "e_unk_bad", ["fine", "(a+)+(?=b)"])
    assert path.read_bytes() == before, "nothing written when one of them is refused"
