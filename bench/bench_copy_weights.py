"""How ``latents_and_text`` does with other weights for the undetermined rows it learns as uncensored.

Run from the checkout (about five minutes a checkpoint on two CPU cores)::

    python bench/bench_copy_weights.py [--checkpoint CKPT ...] [--latent-weights W ... | --unlabelled-factors F ...]

For each checkpoint (default: the shipped one) it builds and encodes the realistic sample
(``quack sample --realistic``, 5,000 measurements, seed 0) and, where
``../shared/data/realpages`` is present, the real dev set (whole-response labels), and
scores ``latents_and_text`` with each weighting of :data:`WEIGHTS`: mean AP over the
realistic sample's leave-fingerprints-out folds, AP and P@50 against its truth, and AP on
the real dev set. ``oracle`` is no method: it weighs the rows of the family a fold hid 0,
and shows how far the weights alone could take the folds. With ``--latent-weights`` it
scores the shipped copy weights with each weight of the latents beside the words instead, and
with ``--unlabelled-factors`` the copy weights times each factor on the undetermined rows.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_realpages import CHECKPOINT, REAL, SIGNATURES  # noqa: E402

# Similar words: the TF-IDF cosine at which a latent neighbour counts as the same template.
SIMILAR = 0.6


def _neighbour_copies(data, labels, tfidf, domains, countries, consistency: bool, probability=None):
    """1 / (1 + other domains among a row's 20 nearest undetermined latents with similar words), scaled as asked."""
    from sklearn.neighbors import NearestNeighbors
    from sklearn.preprocessing import normalize

    from quack.schema import Label

    rows = np.flatnonzero(labels == Label.UNDETERMINED)
    x = np.asarray(data.latents, dtype=np.float32)
    _, found = NearestNeighbors(n_neighbors=min(21, rows.size)).fit(x[rows]).kneighbors(x[rows])
    text = normalize(tfidf)
    weights = np.ones(len(labels))
    by_domain: dict = {}
    for row in rows:
        by_domain.setdefault(domains[row], []).append(row)
    for i, row in enumerate(rows):
        near = rows[found[i][found[i] != i]]
        similar = near[(text[near] @ text[row].T).toarray().ravel() >= SIMILAR]
        copies = len(set(domains[similar]) - {domains[row]})
        if consistency:
            # A blockpage is served in some networks; the same domain elsewhere gets another page.
            same = np.asarray(by_domain[domains[row]])
            same = same[countries[same] != countries[row]]
            alike = float(((text[same] @ text[row].T).toarray().ravel() >= SIMILAR).mean()) if len(same) else 1.0
            copies *= 1.0 - alike
        if probability is not None:
            copies *= probability[row]
        weights[row] = 1.0 / (1.0 + copies)
    return weights


def _weights(name, data, labels, seed, tfidf, domains, countries):
    from quack.discovery import rankers
    from quack.schema import Label

    if name == "copies (shipped)":
        return rankers.copy_weights(data.latents, labels, seed)
    if name == "oracle":
        hidden = (np.asarray(data.families) != "") & (labels == Label.UNDETERMINED)
        return np.where(hidden, 0.0, rankers.copy_weights(data.latents, labels, seed))
    if name == "other domains, similar words":
        return _neighbour_copies(data, labels, tfidf, domains, countries, consistency=False)
    if name == "... times the share of other countries with another page":
        return _neighbour_copies(data, labels, tfidf, domains, countries, consistency=True)
    if name == "... times the supervised TF-IDF probability":
        return _neighbour_copies(data, labels, tfidf, domains, countries, consistency=False,
                                 probability=rankers.score_rows("tfidf_text", data, labels, seed))
    raise KeyError(name)


WEIGHTS = ("copies (shipped)", "oracle", "other domains, similar words",
           "... times the share of other countries with another page", "... times the supervised TF-IDF probability")


def _load(raw: Path, out: Path, model, truth_file: Path, signatures=None):
    from quack.data.build import build_dataset
    from quack.data.datafolder import DataFolder
    from quack.discovery.evaluation import read_truth
    from quack.discovery.evaluation_data import EvaluationData
    from quack.model.encoding import encode_dataset

    build_dataset([raw], out, signatures=signatures, tokenizer=model.tokenizer, workers=1)
    folder = DataFolder.open(out, require_rows=True)
    truth = read_truth(truth_file, folder.read_rows(["source", "line", "probe"]))
    encoded = encode_dataset(model, out, device="cpu", with_loss=True)
    data = EvaluationData.from_dataset(out, encoded.latents, encoded.loss, truth=truth)
    columns = folder.read_rows(["domain", "country"])
    return data, np.asarray(columns["domain"], dtype=object), np.asarray(columns["country"], dtype=object)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, nargs="+", default=[CHECKPOINT])
    sweep = parser.add_mutually_exclusive_group()
    sweep.add_argument("--latent-weights", type=float, nargs="+", default=None, metavar="W",
                       help="score the shipped copy weights with each of these weights of the latents beside the "
                            "words, instead of the weightings of WEIGHTS")
    sweep.add_argument("--unlabelled-factors", type=float, nargs="+", default=None, metavar="F",
                       help="score the shipped copy weights times each of these factors on the undetermined rows "
                            "(how much they count as uncensored examples), instead of the weightings of WEIGHTS")
    args = parser.parse_args()
    from quack.cli.main import main as quack_main
    from quack.discovery import rankers
    from quack.discovery.evaluation import evaluate_data
    from quack.discovery.report import average_precision, precision_at, rank
    from quack.model.encoding import load_checkpoint
    from quack.schema import Label

    started = time.perf_counter()
    # (label, weighting of WEIGHTS, latent weight, factor on the undetermined rows' weights)
    if args.latent_weights:
        variants = [(f"copies, latent weight {w:g}", "copies (shipped)", w, 1.0) for w in args.latent_weights]
    elif args.unlabelled_factors:
        variants = [(f"copies times {f:g} on undetermined rows", "copies (shipped)", rankers.LATENT_WEIGHT, f)
                    for f in args.unlabelled_factors]
    else:
        variants = [(name, name, rankers.LATENT_WEIGHT, 1.0) for name in WEIGHTS]
    lines = ["| checkpoint | weights | realistic folds AP | realistic truth AP | realistic truth P@50 | real dev AP |",
             "| --- | --- | ---: | ---: | ---: | ---: |"]
    with tempfile.TemporaryDirectory() as work:
        raw = Path(work) / "quack-realistic.json"
        if quack_main(["sample", "--realistic", "--out", str(raw)]) != 0:
            raise SystemExit("quack sample --realistic failed")
        for number, checkpoint in enumerate(args.checkpoint):
            model = load_checkpoint(str(checkpoint))
            sets = {"realistic": _load(raw, Path(work) / f"r{number}", model, raw.with_suffix(".truth.jsonl"))}
            if (REAL / "measurements.jsonl.gz").is_file():
                sets["real"] = _load(REAL / "measurements.jsonl.gz", Path(work) / f"d{number}", model,
                                     REAL / "truth.jsonl.gz", SIGNATURES)
            for label, name, latent_weight, factor in variants:
                figures = {}
                for which, (data, domains, countries) in sets.items():
                    shared = rankers.SharedFeatures(data, 5)

                    def score(data_, shared_, labels, seed, domains=domains, countries=countries, name=name,
                              latent_weight=latent_weight, factor=factor):
                        weights = _weights(name, data_, labels, seed, shared_.tfidf, domains, countries)
                        weights = np.where(labels == Label.UNDETERMINED, weights * factor, weights)
                        return rankers.latents_and_text(data_, shared_, labels, seed, weights=weights,
                                                        latent_weight=latent_weight)

                    rankers.METHODS["weighted"] = rankers.Method("weighted", label, score)
                    try:
                        values = score(data, shared, data.labels, 0)
                        order = rank(values, np.flatnonzero(data.labels == Label.UNDETERMINED),
                                     np.random.default_rng(0))
                        hits = (np.asarray(data.truth) == "unknown_blockpage")[order]
                        figures[which] = (average_precision(hits), precision_at(hits, 50))
                        if which == "realistic":
                            report = evaluate_data(data, methods=["weighted"], seed=0)
                            figures["folds"] = report.summary()["weighted"]["ap"]["mean"]
                    finally:
                        del rankers.METHODS["weighted"]
                real = f"{figures['real'][0]:.2f}" if "real" in figures else "(absent)"
                line = (f"| {checkpoint.stem} | {label} | {figures['folds']:.2f} | {figures['realistic'][0]:.2f} | "
                        f"{figures['realistic'][1]:.2f} | {real} |")
                print(line, flush=True)
                lines.append(line)
    weights_arg = (f" --latent-weights {' '.join(f'{w:g}' for w in args.latent_weights)}" if args.latent_weights else
                   f" --unlabelled-factors {' '.join(f'{f:g}' for f in args.unlabelled_factors)}"
                   if args.unlabelled_factors else "")
    print(f"\n`python bench/bench_copy_weights.py --checkpoint {' '.join(map(str, args.checkpoint))}{weights_arg}` "
          f"({time.perf_counter() - started:.0f} s)\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
