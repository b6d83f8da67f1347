"""The leave-fingerprints-out evaluation: its scores, its protocol where the answer is known, and `quack evaluate`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from quack.cli.main import main
from quack.discovery import evaluation as ev
from quack.discovery.evaluation_data import EvaluationData, families_of, family_of, text_counts, token_counts
from quack.discovery.rankers import METHODS, SharedFeatures, score_rows
from quack.discovery.report import (EvaluationReport, average_precision, precision_at, rank, ranking_scores,
                                    recall_at)
from quack.schema import Label

# ----------------------------------------------------------------------------- scores


def test_precision_recall_and_average_precision_of_a_hand_made_ranking():
    hits = np.array([True, False, True, False, False])
    assert precision_at(hits, 1) == 1.0
    assert precision_at(hits, 2) == 0.5
    assert precision_at(hits, 5) == pytest.approx(0.4)
    assert precision_at(hits, 50) == pytest.approx(0.4), "a ranking shorter than K is scored whole"
    assert recall_at(hits, 1) == 0.5 and recall_at(hits, 3) == 1.0
    assert average_precision(hits) == pytest.approx((1 / 1 + 2 / 3) / 2)
    assert average_precision(np.array([False, True])) == pytest.approx(0.5)
    assert np.isnan(recall_at(np.zeros(4, bool), 2)) and np.isnan(average_precision(np.zeros(4, bool)))


def test_ranking_scores_give_every_figure_of_a_ranking_in_report_order():
    hits = np.array([False, True, True, False, True])
    figures = ranking_scores(hits, [2, 4])
    assert list(figures) == ["p@2", "p@4", "r@2", "r@4", "ap"]
    assert figures["p@2"] == precision_at(hits, 2) and figures["r@4"] == recall_at(hits, 4)
    assert figures["ap"] == average_precision(hits)


def test_average_precision_agrees_with_scikit_learn_without_ties():
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(0)
    scores, truth = rng.random(200), rng.random(200) < 0.2
    order = np.argsort(-scores)
    assert average_precision(truth[order]) == pytest.approx(average_precision_score(truth, scores))


def test_rank_orders_candidates_only_breaks_ties_by_seed_and_puts_nan_last():
    scores = np.array([0.9, 0.5, 0.5, np.nan, 0.5, 0.7])
    candidates = np.array([1, 2, 3, 4, 5])
    ranked = rank(scores, candidates, np.random.default_rng(0))
    assert ranked[0] == 5 and ranked[-1] == 3 and set(ranked) == set(candidates)
    orders = {tuple(rank(scores, candidates, np.random.default_rng(seed))[1:4]) for seed in range(20)}
    assert len(orders) > 1, "tied rows come in an order drawn from the seed, not in row order"
    again = rank(scores, candidates, np.random.default_rng(0))
    assert ranked.tolist() == again.tolist()


@pytest.mark.parametrize("name,groups,family", [
    ("a_prod_fortinet_3", (), "a_prod_fortinet"),
    ("b_nat_ir_national_12", (), "b_nat_ir_national"),
    ("b_nat_ru_rkn", (), "b_nat_ru_rkn"),
    ("b_nat_ir_national_2", ("b_nat_ir_",), "b_nat_ir_"),
    ("b_nat_ir_peyvandha", ("b_nat_", "b_nat_ir_"), "b_nat_ir_"),
])
def test_family_of_a_fingerprint(name, groups, family):
    assert family_of(name, groups) == family


def test_only_censored_rows_with_a_fingerprint_have_a_family():
    labels = np.array([1, 1, 1, 0, -1, 1])
    names = ["a_prod_x_3", None, float("nan"), "a_prod_x_1", "b_nat_y", ""]
    assert families_of(labels, names).tolist() == ["a_prod_x", "", "", "", "", ""]
    assert families_of(labels[:1], ["b_nat_ir_2"], groups=["b_nat_"]).tolist() == ["b_nat_"]


# ----------------------------------------------------------------------------- the protocol on known answers

SIZES = {"uncensored": 300, "a": 40, "b": 40, "h": 30, "tiny": 3, "noise": 200}


def synthetic(visible_to: str, seed: int = 0) -> EvaluationData:
    """Rows where the hidden family ``h`` shows in one kind of input only, everything else being noise.

    ``text``: h shares two words with the censored families a and b; ``loss``: h is badly
    reconstructed; ``latent``: a and b lie in tight groups far from the rest, h in one next to a's.
    """
    rng = np.random.default_rng(seed)
    groups = np.concatenate([[name] * n for name, n in SIZES.items()])
    n = len(groups)
    labels = np.select([groups == "uncensored", groups == "noise"], [Label.UNCENSORED, Label.UNDETERMINED],
                       Label.CENSORED)
    families = np.where(np.isin(groups, ["a", "b", "h", "tiny"]), groups, "")
    latents = rng.normal(size=(n, 8))
    loss = rng.normal(size=n)
    vocabulary = [f"word{i}" for i in range(60)]
    texts = [" ".join(rng.choice(vocabulary, 12)) for _ in range(n)]
    if visible_to == "text":
        texts = [t + " zebrablock stopnotice" if g in ("a", "b", "h") else t for t, g in zip(texts, groups)]
    elif visible_to == "loss":
        loss[groups == "h"] += 10.0
    elif visible_to == "latent":
        latents[groups == "a"] = rng.normal(scale=0.3, size=(40, 8)) + [8, 0, 0, 0, 0, 0, 0, 0]
        latents[groups == "b"] = rng.normal(scale=0.3, size=(40, 8)) + [-8, 0, 0, 0, 0, 0, 0, 0]
        latents[groups == "h"] = rng.normal(scale=0.3, size=(30, 8)) + [8, 2.5, 0, 0, 0, 0, 0, 0]
    tokens = token_counts([rng.integers(4, 50, size=10) for _ in range(n)], 50)
    return EvaluationData(labels, families, latents, loss, tokens, text_counts(texts))


def ap_of(report: EvaluationReport) -> dict[str, float]:
    return {method: report.folds[0]["scores"][method]["ap"] for method in report.methods}


def test_a_family_only_the_text_shows_is_found_by_tfidf_alone():
    report = ev.evaluate_data(synthetic("text"), hide=["h"], top=(30,))
    ap = ap_of(report)
    assert report.folds[0]["scores"]["tfidf_text"]["p@30"] == 1.0
    # The methods that read the words find it; no other does.
    readers = ("tfidf_text", "latents_and_text", "text_latent_copies")
    assert ap["latents_and_text"] > 0.5, ap
    assert all(value < 0.5 for method, value in ap.items() if method not in readers), ap
    assert report.purity["mean"] < 0.3, "random latents keep no family together"


def test_a_family_only_the_loss_shows_is_found_by_the_reconstruction_loss_alone():
    ap = ap_of(ev.evaluate_data(synthetic("loss"), hide=["h"], top=(30,)))
    assert ap["reconstruction_loss"] == 1.0
    assert all(value < 0.5 for method, value in ap.items() if method != "reconstruction_loss"), ap


def test_a_family_only_the_latents_show_is_found_by_the_latent_methods():
    report = ev.evaluate_data(synthetic("latent"), hide=["h"], top=(30,))
    ap = ap_of(report)
    assert ap["censored_distance"] == 1.0 and ap["hdbscan_clusters"] > 0.9
    assert all(ap[method] < 0.5 for method in ("bag_of_tokens", "tfidf_text", "reconstruction_loss")), ap
    assert report.purity == {"mean": 1.0, "ceiling": 1.0, "within_reach": 1.0, "records": 30, "by_family": {"h": 1.0}}


def test_purity_says_how_much_families_smaller_than_the_neighbours_can_score():
    data = synthetic("latent")
    # Ten families of four rows, each tight and far from the others: at most 3 of 10 neighbours are kin.
    rows = np.flatnonzero(data.labels == Label.UNDETERMINED)[:40]
    rng = np.random.default_rng(1)
    data.latents[rows] = rng.normal(scale=100, size=(10, 8))[np.arange(40) // 4] + rng.normal(scale=0.01, size=(40, 8))
    groups = np.full(len(data.labels), "", dtype=object)
    groups[rows] = [f"f{i // 4}" for i in range(40)]
    purity = ev._purity(SharedFeatures(data, 5), rows, groups)
    assert purity["mean"] == pytest.approx(0.3) and purity["ceiling"] == pytest.approx(0.3)
    assert purity["within_reach"] == pytest.approx(1.0)
    # Each group split between two places: one of a row's three nearest is kin.
    mixed = groups.copy()
    mixed[rows] = [f"m{(i % 2) + 2 * (i // 8)}" for i in range(40)]
    half = ev._purity(SharedFeatures(data, 5), rows, mixed)
    assert half["within_reach"] < 0.6 and half["ceiling"] == pytest.approx(0.3)


def test_with_a_truth_unknown_blockpages_count_as_censorship_but_not_as_hits():
    data = synthetic("text")
    noise = np.flatnonzero(data.labels == Label.UNDETERMINED)
    data.truth = np.full(len(data.labels), "ordinary", dtype=object)
    data.truth[noise[:20]] = "unknown_blockpage"
    data.pages = np.where(data.truth == "unknown_blockpage", "u_page", "")
    report = ev.evaluate_data(data, hide=["h"], methods=["tfidf_text", "reconstruction_loss"], top=(30, 60))
    fold = report.folds[0]
    assert fold["censorship"] == 30 + 20
    for figures in fold["scores"].values():
        assert figures["c@30"] >= figures["p@30"] and figures["c@60"] >= figures["p@60"]
    assert report.summary()["random"]["c@30"]["mean"] == pytest.approx(50 / fold["ranked"])
    assert report.truth["positives"] == 20 and report.truth["purity"]["records"] == 20
    assert "C@30" in report.table() and "against the ground truth" in report.table()


@pytest.mark.slow
def test_folds_hide_every_family_of_enough_rows_once():
    data = synthetic("text")
    one_each = ev.evaluate_data(data, methods=["tfidf_text"], top=(10,))
    assert sorted(fold["hidden"] for fold in one_each.folds) == [["a"], ["b"], ["h"]], "tiny has fewer than 5 rows"
    two = ev.evaluate_data(data, folds=2, methods=["tfidf_text"], top=(10,), seed=3)
    assert sorted(sum((fold["hidden"] for fold in two.folds), [])) == ["a", "b", "h"] and len(two.folds) == 2
    assert all(fold["positives"] == sum(SIZES[f] for f in fold["hidden"]) for fold in two.folds)
    assert all(fold["ranked"] == SIZES["noise"] + fold["positives"] for fold in two.folds)
    assert ev.evaluate_data(data, hide=["tiny"], methods=["tfidf_text"], top=(10,)).folds[0]["positives"] == 3


def test_report_summarises_every_method_as_json_and_a_table():
    report = ev.evaluate_data(synthetic("text"), top=(10, 30))
    document = json.loads(json.dumps(report.to_json(), allow_nan=False))
    assert set(document["summary"]) == set(METHODS) | {"random"}
    for method in METHODS:
        figures = document["summary"][method]
        assert set(figures) == {"p@10", "p@30", "r@10", "r@30", "ap"}
        assert all(0.0 <= figures[f]["mean"] <= 1.0 and figures[f]["sd"] >= 0.0 for f in figures)
    random_p = document["summary"]["random"]["p@10"]["mean"]
    assert random_p == pytest.approx(np.mean([f["positives"] / f["ranked"] for f in document["folds"]]))
    table = report.table()
    assert all(method in table for method in METHODS) and "purity" in table and "P@30" in table


@pytest.mark.parametrize("options,message", [
    ({"hide": ["zzz"]},
     "No fingerprint family named 'zzz' labels rows of the data set; its families are a, b, h, tiny."),
    ({"folds": 4}, "--folds must be between 1 and the 3 families that label at least 5 rows, got 4."),
    ({"min_rows": 50}, "No fingerprint family labels at least 50 rows of the data set; lower --min-rows"),
    ({"hide": ["a", "b", "h", "tiny"]},
     "The methods need at least two censored rows to learn from and hiding a, b, h, tiny leaves 0;"),
    ({"methods": ["magic"]}, "Unknown method 'magic'; the methods are latent_classifier, "),
    ({"top": [0]}, "--top needs positive numbers of rows"),
])
def test_bad_options_are_one_sentence(options, message):
    with pytest.raises(ValueError) as raised:
        ev.evaluate_data(synthetic("text"), **options)
    assert str(raised.value).startswith(message) and str(raised.value).count(". ") == 0


def test_data_without_censored_rows_has_nothing_to_hide():
    data = synthetic("text")
    data.labels[data.labels == Label.CENSORED] = Label.UNDETERMINED
    data.families[:] = ""
    with pytest.raises(ValueError, match="has no rows a blockpage fingerprint labelled censored"):
        ev.evaluate_data(data)


# ----------------------------------------------------------------------------- quack evaluate


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A small generated data set and a tiny model trained on it for one epoch."""
    from quack.data.build import build_dataset
    from quack.sample.generator import write_sample
    from quack.model.training import fit

    root = tmp_path_factory.mktemp("evaluate")
    records, truth = write_sample(root / "s.json", n=150, seed=3)
    build_dataset([records], root / "data", vocab_size=300, max_tokens=32)
    result = fit(root / "data", root / "run", model_options={"embed_size": 8, "hidden_size": 16}, max_epochs=1,
                 logger="none", patience=0, progress_bar=False)
    return {"root": root, "data": root / "data", "truth": truth, "checkpoint": result.checkpoint}


def test_quack_evaluate_writes_every_method_with_sane_values(tiny, capsys):
    out = tiny["root"] / "report.json"
    status = main(["evaluate", "--data", str(tiny["data"]), "--checkpoint", str(tiny["checkpoint"]), "--min-rows", "2",
                   "--folds", "2", "--top", "5", "20", "--truth", str(tiny["truth"]), "--json", str(out),
                   "--device", "cpu"])
    printed, error = capsys.readouterr()
    assert status == 0, error
    document = json.loads(out.read_text())
    assert set(document["summary"]) == set(METHODS) | {"random"}
    assert len(document["folds"]) == 2 and all(set(fold["scores"]) == set(METHODS) for fold in document["folds"])
    for fold in document["folds"] + [document["truth"]]:
        assert 0 < fold["positives"] <= fold["ranked"]
        for figures in fold["scores"].values():
            # f@K counts distinct families among the first K; every other figure is a share.
            assert all(value is None or 0.0 <= value <= 1.0 for name, value in figures.items() if not name.startswith("f@"))
            assert all(value is None or 0 <= value <= int(name[2:]) for name, value in figures.items() if name.startswith("f@"))
            assert figures["r@20"] >= figures["r@5"]
    assert 0.0 <= document["purity"]["mean"] <= 1.0 and 0.0 <= document["truth"]["purity"]["mean"] <= 1.0
    assert all(fold["scores"][m]["c@5"] >= fold["scores"][m]["p@5"] for fold in document["folds"] for m in METHODS)
    assert document["checkpoint"] == str(tiny["checkpoint"])
    # The truth table counts distinct pages in whole numbers.
    truth_table = printed[printed.index("against the ground truth"):]
    counted = [line.split()[-1] for line in truth_table.splitlines() if line.split()[:1] == ["latents_and_text"]]
    assert counted and counted[0].isdigit(), truth_table
    assert "against the ground truth" in printed and f"wrote {out}" in printed


def test_quack_evaluate_takes_a_checkpoint_of_another_tokenizer(tiny, capsys):
    """The shipped model (vocabulary 4,000) on a data set of a 300-token tokenizer: it encodes the
    rows in its own tokens, and the bag-of-tokens methods count the data set's own."""
    from quack.model.encoding import SHIPPED_CHECKPOINT

    out = tiny["root"] / "shipped.json"
    status = main(["evaluate", "--data", str(tiny["data"]), "--checkpoint", str(SHIPPED_CHECKPOINT), "--min-rows", "2",
                   "--folds", "2", "--top", "5", "--json", str(out), "--device", "cpu"])
    assert status == 0, capsys.readouterr().err
    document = json.loads(out.read_text())
    assert all(set(fold["scores"]) == set(METHODS) for fold in document["folds"])


@pytest.mark.parametrize("arguments,message", [
    (["--hide", "no_such_family"], "quack evaluate: No fingerprint family named 'no_such_family' labels rows of"),
    (["--truth", "missing.truth.jsonl"], "quack evaluate: --truth missing.truth.jsonl does not exist"),
    (["--top", "0"], "quack evaluate: --top needs positive numbers of rows, got [0]."),
])
def test_quack_evaluate_refuses_bad_options_in_one_sentence(tiny, capsys, arguments, message):
    status = main(["evaluate", "--data", str(tiny["data"]), "--checkpoint", str(tiny["checkpoint"]), *arguments])
    error = capsys.readouterr().err.strip()
    assert status == 2 and error.startswith(message) and len(error.splitlines()) == 1


def test_quack_evaluate_refuses_a_data_set_with_no_censored_rows(tiny, tmp_path, capsys):
    from quack.data.build import build_dataset
    from quack.data.datafolder import DataFolder

    signatures = tmp_path / "blockpages.json"
    signatures.write_text('{"fingerprint": "x_never", "pattern": "never in any page 0xdeadbeef"}\n')
    build_dataset([tiny["root"] / "s.json"], tmp_path / "data", signatures=[str(signatures)],
                  tokenizer=DataFolder(tiny["data"]).tokenizer)
    status = main(["evaluate", "--data", str(tmp_path / "data"), "--checkpoint", str(tiny["checkpoint"])])
    error = capsys.readouterr().err.strip()
    assert status == 2 and len(error.splitlines()) == 1
    assert "has no rows a blockpage fingerprint labelled censored, so there is no family to hide" in error


def test_the_unlabelled_latent_classifier_tells_new_blockpages_from_the_ordinary_undetermined_pages():
    """The fingerprints label template replies uncensored, while the undetermined rows are ordinary pages.

    The plain classifier learns blockpage against template reply, so ordinary pages and new
    blockpages score alike; learning the undetermined rows as uncensored (out of fold) tells them apart.
    """
    rng = np.random.default_rng(0)
    # The ordinary pages lie further from the template replies than the censored rows do.
    centres = {"censored": [4, 0], "template": [0, -4], "ordinary": [4, 4], "new": [4, 1.5]}
    sizes = {"censored": 120, "template": 300, "ordinary": 400, "new": 60}
    groups = np.concatenate([[name] * n for name, n in sizes.items()])
    latents = np.concatenate([rng.normal(scale=0.7, size=(n, 8)) + np.pad(centres[name], (0, 6))
                              for name, n in sizes.items()]).astype(np.float32)
    labels = np.select([groups == "censored", groups == "template"], [Label.CENSORED, Label.UNCENSORED],
                       Label.UNDETERMINED)
    n = len(groups)
    data = EvaluationData(labels, np.where(groups == "censored", "a", ""), latents, np.zeros(n),
                          token_counts([[4]] * n, 8), text_counts(["x"] * n))
    ranked = np.flatnonzero(labels == Label.UNDETERMINED)
    new = groups == "new"

    def ap(method: str) -> float:
        order = rank(score_rows(method, data, labels, seed=0), ranked, np.random.default_rng(0))
        return average_precision(new[order])

    assert ap("latent_unlabelled") > 0.8
    assert ap("latent_classifier") < 0.3
    again = score_rows("latent_unlabelled", data, labels, seed=0)
    assert np.array_equal(again, score_rows("latent_unlabelled", data, labels, seed=0)), "seeded"


def _dense_unknown_family(seed: int):
    """Template replies, ordinary pages, censored rows and 150 near copies of one page no fingerprint knows.

    The unknown page shares the censored rows' direction and has a word of its own (the third
    dimension) that only undetermined rows carry.
    """
    rng = np.random.default_rng(seed)
    centres = {"censored": [4, 0], "template": [0, -4], "ordinary": [-1, 3], "new": [2.5, 1.5, 3]}
    sizes = {"censored": 120, "template": 300, "ordinary": 400, "new": 150}
    spread = {"censored": 0.7, "template": 0.7, "ordinary": 1.5, "new": 0.02}
    groups = np.concatenate([[name] * n for name, n in sizes.items()])
    latents = np.concatenate([rng.normal(scale=spread[name], size=(n, 8)) + np.pad(centres[name], (0, 8 - len(centres[name])))
                              for name, n in sizes.items()]).astype(np.float32)
    labels = np.select([groups == "censored", groups == "template"], [Label.CENSORED, Label.UNCENSORED],
                       Label.UNDETERMINED)
    return groups, latents, labels


def test_copies_of_one_template_weigh_about_one_page_when_learned_as_uncensored(monkeypatch):
    """An unknown blockpage served many times is not learned as ordinary by its number alone."""
    from quack.discovery import rankers

    for seed in (1, 2, 3):
        groups, latents, labels = _dense_unknown_family(seed)
        weights = rankers.copy_weights(latents, labels, seed=0)
        assert np.all(weights[labels != Label.UNDETERMINED] == 1)
        assert weights[groups == "new"].max() <= 1 / (1 + rankers.COPY_NEIGHBOURS) + 1e-9
        assert np.median(weights[groups == "ordinary"]) >= 0.5
        ranked = np.flatnonzero(labels == Label.UNDETERMINED)
        new = groups == "new"

        def ap(scores) -> float:
            return average_precision(new[rank(scores, ranked, np.random.default_rng(0))])

        plain = ap(rankers.unlabelled_logistic(latents, labels, seed=0))
        weighed = ap(rankers.unlabelled_logistic(latents, labels, seed=0, weights=weights))
        assert weighed > plain + 0.03, (seed, plain, weighed)
    # Counted among a sample, the copies are scaled up to the whole: the same weights, near enough.
    monkeypatch.setattr(rankers, "COPY_SAMPLE", 300)
    sampled = rankers.copy_weights(latents, labels, seed=0)
    assert sampled[groups == "new"].max() < 0.1 and np.median(sampled[groups == "ordinary"]) >= 0.4


def test_text_latent_copies_counts_a_template_served_many_times_about_once():
    """Words alone score; the latents only say which undetermined rows are copies of one template.

    150 copies of a page no fingerprint knows share one word with the censored rows and have
    two of their own. Learned as uncensored at full weight, their own words outweigh the shared
    one and they rank among the ordinary pages; counted about once, they rank first.
    """
    from quack.discovery.rankers import unlabelled_logistic

    for seed in (1, 2, 3):
        groups, latents, labels = _dense_unknown_family(seed)
        rng = np.random.default_rng(seed)
        vocabulary = [f"site{i}" for i in range(300)]
        words = {"censored": "access denied blocked notice", "template": "template reply", "new": "blocked kiosk portal"}
        texts = [words.get(g) or " ".join(rng.choice(vocabulary, 8)) for g in groups]
        families = np.where(groups == "censored", "censored", "")
        tokens = token_counts([rng.integers(4, 50, size=10) for _ in groups], 50)
        data = EvaluationData(labels, families, latents, np.zeros(len(groups)), tokens, text_counts(texts))
        ranked = np.flatnonzero(labels == Label.UNDETERMINED)
        new = groups == "new"

        def ap(scores) -> float:
            return average_precision(new[rank(scores, ranked, np.random.default_rng(0))])

        plain = ap(unlabelled_logistic(SharedFeatures(data, 5).tfidf, labels, seed=0))
        weighed = ap(score_rows("text_latent_copies", data, labels, seed=0))
        assert weighed > plain + 0.1 and weighed > 0.9, (seed, plain, weighed)
