"""The real dev set end to end: ingest with Censored Planet's lists, encode, rank, score against the truth.

Run from the checkout (about two minutes on two CPU cores)::

    /work/venv/bin/python bench/bench_realpages.py [--write]

It builds the dev set of ``../shared/data/realpages`` twice, with the body-only rule
(before) and the whole-response rule (after), encodes both with the shipped checkpoint,
ranks the undetermined rows by every method trained on every fingerprint label and scores
the ranking against the truth's unknown blockpages: AP, P@50 and the distinct families
among the first 100 rows; then the Discover candidate list (near-identical responses
collapsed, re-ranked for diversity) by the same scores: the distinct families and the
real blockpages among its first 100 candidates. ``--write`` puts the tables in
``BENCHMARKS.md``, replacing the section it wrote before.
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


def _extra_scores(data, labels: np.ndarray, seed: int, domains: np.ndarray) -> dict[str, np.ndarray]:
    """Rankings measured here beside the library's methods, for issue-level comparison."""
    from scipy import sparse
    from sklearn.feature_extraction.text import TfidfTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import NearestNeighbors

    from quack.latents.classifier import split_labelled
    from quack.schema import Label

    train = split_labelled(labels, 0.2, seed)[0]
    tfidf = TfidfTransformer(sublinear_tf=True).fit_transform(data.words).tocsr()
    latents = data.latents / (np.linalg.norm(data.latents, axis=1, keepdims=True) + 1e-9)
    both = sparse.hstack([tfidf, sparse.csr_matrix(latents)]).tocsr()
    model = LogisticRegression(max_iter=2000, random_state=seed).fit(both[train], labels[train] == Label.CENSORED)
    out = {"latents+tfidf (LR)": model.predict_proba(both)[:, 1]}
    # One template for many domains: the share of distinct domains among a row's latent neighbours.
    k = 10
    _, near = NearestNeighbors(n_neighbors=k + 1).fit(latents).kneighbors(latents)
    out["latent neighbour domains"] = np.array([len(set(domains[near_row])) for near_row in near], dtype=np.float64)
    return out


def _measure(label: str, data_dir: Path, truth_file: Path, seed: int = 0) -> tuple[list[tuple], dict]:
    from quack.discovery.candidates import collapse_candidates, read_templates
    from quack.discovery.evaluation import evaluate_data, read_truth
    from quack.discovery.evaluation_data import EvaluationData
    from quack.discovery.report import average_precision, distinct_at, precision_at, rank
    from quack.discovery.rankers import METHODS, score_rows
    from quack.data.datafolder import DataFolder
    from quack.model.encoding import encode_dataset, load_checkpoint
    from quack.schema import Label

    folder = DataFolder.open(data_dir, require_rows=True)
    truth, pages = read_truth(truth_file, folder.read_rows(["source", "line", "probe"]))
    encoded = encode_dataset(load_checkpoint(str(CHECKPOINT)), data_dir, device="cpu", with_loss=True)
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
    counts = {"undetermined": int(len(ranked)), "unknown": int(unknown[ranked].sum()),
              "families": len(set(family[ranked]) - {""}),
              "templates": int(len(set(keys[ranked]))),
              "blockpage_templates": int(len(set(keys[ranked][unknown[ranked]])))}
    return rows, counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="write the tables to BENCHMARKS.md")
    args = parser.parse_args()
    if not (REAL / "measurements.jsonl.gz").is_file():
        print(f"skipped: {REAL} is not present", file=sys.stderr)
        return 0
    from quack.data.build import build_dataset
    from quack.model.encoding import load_checkpoint

    tokenizer = load_checkpoint(str(CHECKPOINT)).tokenizer
    started = time.perf_counter()
    table, notes = [], []
    with tempfile.TemporaryDirectory() as work:
        for rule, label in (("body", "before (body)"), ("full", "after (whole response)")):
            out = Path(work) / rule
            info = build_dataset([REAL / "measurements.jsonl.gz"], out, signatures=SIGNATURES, tokenizer=tokenizer,
                                 match=rule, workers=1)
            rows, counts = _measure(label, out, REAL / "truth.jsonl.gz")
            table += rows
            notes.append(f"{label}: labels {info['rows_per_label']}; {counts['undetermined']} undetermined rows "
                         f"ranked, {counts['unknown']} unknown blockpages of {counts['families']} families; "
                         f"{counts['templates']} templates, {counts['blockpage_templates']} of them blockpages")
    elapsed = time.perf_counter() - started
    lines = [MARK, "", "`/work/venv/bin/python bench/bench_realpages.py --write` (shipped checkpoint, CPU, seed 0, "
             f"{elapsed:.0f} s). Every method trains on every fingerprint label and ranks the undetermined rows; "
             "scored against the truth's unknown blockpages. Rows: AP, P@50 and distinct families among the first "
             "100 rows; candidates: the Discover list (near-identical responses collapsed; then MMR over latents, "
             "diversity 0.3), distinct families and real blockpages among its first 100 candidates.", ""]
    lines += [f"- {note}" for note in notes]
    lines += ["", "| labels | ranking | AP | P@50 | families in first 100 rows | collapsed: families / blockpages "
              "in first 100 | collapsed + MMR: families / blockpages in first 100 |",
              "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for label, name, ap, p50, f100, f_c, b_c, f_m, b_m in table:
        lines.append(f"| {label} | {name} | {ap:.2f} | {p50:.2f} | {f100} | {f_c} / {b_c} | {f_m} / {b_m} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        path = ROOT / "BENCHMARKS.md"
        current = path.read_text(encoding="utf-8")
        if MARK in current:
            head, _, rest = current.partition(MARK)
            tail = rest[rest.find("\n## "):] if "\n## " in rest else ""
            current = head + text + tail
        else:
            current = current.rstrip("\n") + "\n\n" + text
        path.write_text(current, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
