"""The real dev set end to end: ingest with Censored Planet's lists, encode, rank, score against the truth.

Run from the checkout (about ten minutes a checkpoint on two CPU cores)::

    python bench/bench_realpages.py [--checkpoint CKPT ...] [--skip-realistic] [--write]

It builds the dev set of ``../shared/data/realpages`` with the body-only rule (before,
first checkpoint only) and the whole-response rule (after), encodes it with each
checkpoint (default: the shipped one), ranks the undetermined rows by every method
trained on every fingerprint label and scores the ranking against the truth's unknown
blockpages: AP, P@50 and the distinct families among the first 100 rows; then the
Discover candidate list (near-identical responses collapsed, re-ranked for diversity) by
the same scores. It then leaves one real source out (learn from the other, rank this
one) and evaluates the realistic sample with the same checkpoint. ``--write`` puts the
tables in ``BENCHMARKS.md``, replacing the part it wrote before.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
REAL = SHARED / "realpages"
SIGNATURES = [str(SHARED / "censoredplanet" / "blockpage_signatures.json"),
              str(SHARED / "censoredplanet" / "false_positive_signatures.json")]
CHECKPOINT = ROOT / "checkpoints" / "quack-sample.ckpt"
MARK = "## Real pages: the dev set end to end"
# Where the written tables end; what follows in BENCHMARKS.md is prose about them, kept.
END = "<!-- end of bench_realpages tables -->"


#: The simplest baseline's words: a few that blockpages say, in English.
BLOCK_WORDS = ("blocked", "forbidden", "denied", "restricted", "prohibited", "filtered", "censored", "unavailable",
               "illegal", "ministry", "court", "violation")
#: A response of fewer words than this counts as short (blockpages are short).
SHORT_WORDS = 150


def _block_words(data) -> np.ndarray:
    """The simplest baseline: how many of :data:`BLOCK_WORDS` a response says, and one more when it is short."""
    from quack.discovery.evaluation_data import text_counts

    columns = text_counts(BLOCK_WORDS).indices
    said = np.asarray((data.words[:, columns] > 0).sum(axis=1), dtype=np.float64).ravel()
    # The counts hold each word and each pair of words: about twice the words.
    words = np.asarray(data.words.sum(axis=1), dtype=np.float64).ravel() / 2
    return said + (words < SHORT_WORDS)


def _extra_scores(data, labels: np.ndarray, seed: int, domains: np.ndarray) -> dict[str, np.ndarray]:
    """Rankings measured here beside the library's methods, for issue-level comparison."""
    from scipy import sparse
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import NearestNeighbors

    from quack.discovery.options import EVALUATION
    from quack.discovery.rankers import SharedFeatures, unlabelled_logistic
    from quack.latents.classifier import split_labelled
    from quack.schema import Label

    train = split_labelled(labels, 0.2, seed)[0]
    tfidf = SharedFeatures(data, EVALUATION.min_rows).tfidf
    latents = data.latents / (np.linalg.norm(data.latents, axis=1, keepdims=True) + 1e-9)
    both = sparse.hstack([tfidf, sparse.csr_matrix(latents)]).tocsr()
    model = LogisticRegression(max_iter=2000, random_state=seed).fit(both[train], labels[train] == Label.CENSORED)
    out = {"latents+tfidf (LR)": model.predict_proba(both)[:, 1],
           "tfidf_text, positive-unlabelled": unlabelled_logistic(tfidf, labels, seed),
           "block words and a short body": _block_words(data)}
    # One template for many domains: the share of distinct domains among a row's latent neighbours.
    k = 10
    _, near = NearestNeighbors(n_neighbors=k + 1).fit(latents).kneighbors(latents)
    out["latent neighbour domains"] = np.array([len(set(domains[near_row])) for near_row in near], dtype=np.float64)
    return out


def _origins(data_dir: Path, truth_file: Path) -> np.ndarray:
    """The truth's ``origin_source`` of every row (which real source a page came from, or ``synthetic``)."""
    import gzip
    import json

    from quack.data.datafolder import DataFolder

    found = {}
    with gzip.open(truth_file, "rt", encoding="utf-8") as handle:
        for line in handle:
            item = json.loads(line)
            found[(int(item["line"]), int(item["probe"]))] = item["origin_source"]
    keys = DataFolder.open(data_dir, require_rows=True).read_rows(["line", "probe"])
    return np.array([found.get((int(a), int(b)), "") for a, b in zip(keys["line"], keys["probe"])], dtype=object)


def _subset(data, rows: np.ndarray):
    """The evaluation data of ``rows`` only."""
    from dataclasses import replace

    return replace(data, labels=data.labels[rows], families=data.families[rows], latents=data.latents[rows],
                   loss=data.loss[rows], tokens=data.tokens[rows], words=data.words[rows],
                   truth=data.truth[rows], pages=data.pages[rows])


LEARNED = ("latent_classifier", "latent_unlabelled", "latents_and_text", "text_latent_copies", "bag_of_tokens", "tfidf_text")


def _across_sources(label: str, data, origins: np.ndarray, seed: int) -> list[tuple]:
    """Leave one source out: learn from the other source and the synthetic rows, rank this source's undetermined rows.

    The ranked source's undetermined rows stay in, unlabelled as they are (the positive-unlabelled
    method learns them as uncensored, out of fold); its labelled rows are left out.
    """
    from quack.discovery.rankers import score_rows
    from quack.discovery.report import average_precision, distinct_at, precision_at, rank
    from quack.schema import Label

    rows = []
    for ranked_source in sorted(set(origins) - {"synthetic", ""}):
        mine = origins == ranked_source
        keep = np.flatnonzero(~mine | (data.labels == Label.UNDETERMINED))
        part = _subset(data, keep)
        learned_from = ~mine[keep]
        if not ((part.labels == Label.CENSORED) & learned_from).any():
            rows.append((label, ranked_source, "every learned method", None, None, None))
            continue
        ranked = np.flatnonzero(mine[keep] & (part.labels == Label.UNDETERMINED))
        unknown = part.truth == "unknown_blockpage"
        family = np.where(unknown, part.pages, "")
        scores = {name: score_rows(name, part, part.labels, seed) for name in LEARNED}
        scores["random"] = np.random.default_rng(seed).random(len(part.labels))
        for name, values in scores.items():
            order = rank(values, ranked, np.random.default_rng(seed))
            rows.append((label, ranked_source, name, average_precision(unknown[order]),
                         precision_at(unknown[order], 50), distinct_at(family[order], 100)))
    return rows


def _realistic(label: str, model, work: Path, seed: int = 0) -> tuple[str, list[tuple]]:
    """The realistic sample (5,000 measurements, seed 0) evaluated with the checkpoint: folds and truth."""
    from quack.cli.main import main as quack_main
    from quack.data.build import build_dataset
    from quack.discovery.evaluation import evaluate_data, read_truth
    from quack.discovery.evaluation_data import EvaluationData
    from quack.data.datafolder import DataFolder
    from quack.discovery.options import EVALUATION
    from quack.discovery.rankers import SharedFeatures, unlabelled_logistic
    from quack.discovery.report import average_precision, precision_at, rank
    from quack.model.encoding import encode_dataset
    from quack.schema import Label

    raw = work / "realistic" / "quack-realistic.json"
    raw.parent.mkdir(parents=True, exist_ok=True)
    if not raw.is_file() and quack_main(["sample", "--realistic", "--out", str(raw)]) != 0:
        raise SystemExit("quack sample --realistic failed")
    out = work / f"realistic-{label}"
    build_dataset([raw], out, tokenizer=model.tokenizer, workers=1)
    truth = read_truth(raw.with_suffix(".truth.jsonl"), DataFolder.open(out, require_rows=True).read_rows(
        ["source", "line", "probe"]))
    encoded = encode_dataset(model, out, device="cpu", with_loss=True)
    data = EvaluationData.from_dataset(out, encoded.latents, encoded.loss, truth=truth)
    report = evaluate_data(data, seed=seed)
    folds = report.summary()
    rows = [(label, name, folds[name]["ap"]["mean"], report.truth["scores"][name]["ap"],
             report.truth["scores"][name]["p@50"]) for name in report.methods]
    # The baselines measured only here, against the truth (the folds are the library's methods').
    tfidf = SharedFeatures(data, EVALUATION.min_rows).tfidf
    unknown = data.truth == "unknown_blockpage"
    ranked = np.flatnonzero(data.labels == Label.UNDETERMINED)
    for name, values in (("tfidf_text, positive-unlabelled", unlabelled_logistic(tfidf, data.labels, seed)),
                         ("block words and a short body", _block_words(data)),
                         ("random", np.random.default_rng(seed).random(len(data.labels)))):
        hits = unknown[rank(values, ranked, np.random.default_rng(seed))]
        rows.append((label, name, None, average_precision(hits), precision_at(hits, 50)))
    return f"{label}: {_purity(report.truth['purity'])}", rows


def _purity(purity: dict) -> str:
    from quack.discovery.report import purity_reach

    return f"purity of the unknown families {purity['mean']:.2f}, {purity_reach(purity)}"


def _measure(label: str, data_dir: Path, truth_file: Path, model, seed: int = 0) -> tuple[list[tuple], dict, object]:
    from quack.discovery.candidates import collapse_candidates, read_templates
    from quack.discovery.evaluation import evaluate_data, read_truth
    from quack.discovery.evaluation_data import EvaluationData
    from quack.discovery.report import average_precision, distinct_at, precision_at, rank
    from quack.discovery.rankers import METHODS, score_rows
    from quack.data.datafolder import DataFolder
    from quack.model.encoding import encode_dataset
    from quack.schema import Label

    folder = DataFolder.open(data_dir, require_rows=True)
    truth, pages = read_truth(truth_file, folder.read_rows(["source", "line", "probe"]))
    encoded = encode_dataset(model, data_dir, device="cpu", with_loss=True)
    data = EvaluationData.from_dataset(data_dir, encoded.latents, encoded.loss, truth=(truth, pages))
    labels = data.labels
    unknown = truth == "unknown_blockpage"
    family = np.where(unknown, pages, "")
    keys, meta = read_templates(data_dir, labels)
    scores = {name: score_rows(name, data, labels, seed) for name in METHODS}
    scores.update(_extra_scores(data, labels, seed, meta["domain"].to_numpy()))
    ranked = np.flatnonzero(labels == Label.UNDETERMINED)
    scores["random"] = np.random.default_rng(seed).random(len(labels))
    rows = []
    for name, values in scores.items():
        order = rank(values, ranked, np.random.default_rng(seed))
        hits = unknown[order]
        row = [label, name, average_precision(hits), precision_at(hits, 50), distinct_at(family[order], 100)]
        for diversity in (0.0, 0.3):
            listed = collapse_candidates(values, labels, keys, meta, features=data.latents, top=100,
                                         diversity=diversity)
            first = listed["record"].to_numpy()
            row += [distinct_at(family[first], 100), int(unknown[first].sum())]
        rows.append(tuple(row))
    purity = evaluate_data(data, truth_only=True, methods=["reconstruction_loss"], seed=seed).truth["purity"]
    counts = {"undetermined": int(len(ranked)), "unknown": int(unknown[ranked].sum()), "purity": purity,
              "families": len(set(family[ranked]) - {""}),
              "templates": int(len(set(keys[ranked]))),
              "blockpage_templates": int(len(set(keys[ranked][unknown[ranked]])))}
    return rows, counts, data


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="write the tables to BENCHMARKS.md")
    parser.add_argument("--checkpoint", type=Path, nargs="+", default=[CHECKPOINT],
                        help="checkpoints to encode with (default: the shipped one); the first also gets the "
                             "body-only labels")
    parser.add_argument("--skip-realistic", action="store_true", help="leave out the realistic sample")
    args = parser.parse_args()
    if not (REAL / "measurements.jsonl.gz").is_file():
        print(f"skipped: {REAL} is not present", file=sys.stderr)
        return 0
    from quack.data.build import build_dataset
    from quack.model.encoding import load_checkpoint

    started = time.perf_counter()
    table, notes, sources, realistic, realistic_notes = [], [], [], [], []
    with tempfile.TemporaryDirectory() as work:
        for number, checkpoint in enumerate(args.checkpoint):
            model = load_checkpoint(str(checkpoint))
            rules = (("body", "before (body)"), ("full", "after (whole response)")) if number == 0 else (
                ("full", "after (whole response)"),)
            for rule, label in rules:
                label = f"{label}, {checkpoint.stem}"
                out = Path(work) / f"{rule}-{number}"
                info = build_dataset([REAL / "measurements.jsonl.gz"], out, signatures=SIGNATURES,
                                     tokenizer=model.tokenizer, match=rule, workers=1)
                rows, counts, data = _measure(label, out, REAL / "truth.jsonl.gz", model)
                table += rows
                notes.append(f"{label}: labels {info['rows_per_label']}; {counts['undetermined']} undetermined rows "
                             f"ranked, {counts['unknown']} unknown blockpages of {counts['families']} families; "
                             f"{counts['templates']} templates, {counts['blockpage_templates']} of them blockpages; "
                             f"{_purity(counts['purity'])}")
            sources += _across_sources(checkpoint.stem, data, _origins(out, REAL / "truth.jsonl.gz"), 0)
            if not args.skip_realistic:
                purity, rows = _realistic(checkpoint.stem, model, Path(work))
                realistic += rows
                realistic_notes.append(purity)
    elapsed = time.perf_counter() - started
    command = "python bench/bench_realpages.py --checkpoint " + " ".join(
        str(c) for c in args.checkpoint) + (" --skip-realistic" if args.skip_realistic else "")
    lines = [MARK, "", f"`{command}` (CPU, seed 0, "
             f"{elapsed:.0f} s). Every method trains on every fingerprint label and ranks the undetermined rows; "
             "scored against the truth's unknown blockpages. Rows: AP, P@50 and distinct families among the first "
             "100 rows; candidates: the Discover list (near-identical responses collapsed; then MMR over latents, "
             "diversity 0.3), distinct families and real blockpages among its first 100 candidates.", ""]
    lines += [f"- {note}" for note in notes]
    lines += ["", "| labels, checkpoint | ranking | AP | P@50 | families in first 100 rows | collapsed: families / "
              "blockpages in first 100 | collapsed + MMR: families / blockpages in first 100 |",
              "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for label, name, ap, p50, f100, f_c, b_c, f_m, b_m in table:
        lines.append(f"| {label} | {name} | {ap:.2f} | {p50:.2f} | {f100} | {f_c} / {b_c} | {f_m} / {b_m} |")
    lines += ["", "Leave one source out (whole-response labels): each learned method learns from the other source "
              "and the synthetic rows (template replies, failures) and ranks the undetermined rows of this one; the "
              "ranked source's labelled rows are left out.", "",
              "| checkpoint | ranked source | ranking | AP | P@50 | families in first 100 rows |",
              "| --- | --- | --- | ---: | ---: | ---: |"]
    for checkpoint, source, name, ap, p50, f100 in sources:
        if ap is None:
            lines.append(f"| {checkpoint} | {source} | {name} | no censored row to learn from | | |")
        else:
            lines.append(f"| {checkpoint} | {source} | {name} | {ap:.2f} | {p50:.2f} | {f100} |")
    if realistic:
        lines += ["", "The realistic sample (`quack sample --realistic`, 5,000 measurements, seed 0), ingested with "
                  "each checkpoint's tokenizer: mean AP over the leave-fingerprints-out folds, and AP and P@50 of "
                  "the ranking against its unknown blockpages (`quack evaluate --truth`).", "",
                  *[f"- {note}" for note in realistic_notes], "",
                  "| checkpoint | ranking | folds AP | truth AP | truth P@50 |", "| --- | --- | ---: | ---: | ---: |"]
        for checkpoint, name, folds_ap, truth_ap, truth_p50 in realistic:
            folds_text = "–" if folds_ap is None else f"{folds_ap:.2f}"
            lines.append(f"| {checkpoint} | {name} | {folds_text} | {truth_ap:.2f} | {truth_p50:.2f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        path = ROOT / "BENCHMARKS.md"
        current = path.read_text(encoding="utf-8")
        if MARK in current:
            head, _, rest = current.partition(MARK)
            if END in rest:
                tail = rest[rest.index(END) + len(END):]
            else:
                ends = [at for at in (rest.find("\nLabel change"), rest.find("\n## ")) if at >= 0]
                tail = rest[min(ends):] if ends else ""
            current = head + text + END + tail
        else:
            current = current.rstrip("\n") + "\n\n" + text
        path.write_text(current, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
