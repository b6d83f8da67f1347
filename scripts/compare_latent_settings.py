"""Compare tokenizer and model settings by the leave-fingerprints-out evaluation.

    python scripts/compare_latent_settings.py --kind default --fields status headers body service error \\
        --response-weight 4 --epochs 4 --n 2000 --out results.jsonl

Writes a sample (``quack sample``, default or ``--realistic``) or takes ``--records``
(real files), builds its data set with a new tokenizer of the given fields, trains a
model, runs ``quack evaluate`` on it and appends one JSON line to ``--out``: the
settings, the training time, the latent classifier's AP and P@50 (mean over folds), the
best baseline's, the purity of the hidden families and, with a ground truth, of the
unknown blockpages. One thread, so that a few of these can share a machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from quack.data.build import build_dataset  # noqa: E402
from quack.discovery.evaluation import evaluate  # noqa: E402
from quack.sample.generator import write_sample  # noqa: E402
from quack.model.training import fit  # noqa: E402

BASELINES = ("bag_of_tokens", "tfidf_text")


def summary(report, method: str) -> dict:
    """Mean AP, P@50 and C@50 of one method over the folds, and its truth AP when there is one."""
    data = report.to_json()
    folds = data["folds"]
    out = {
        "ap": sum(f["scores"][method]["ap"] for f in folds) / len(folds),
        "p@50": sum(f["scores"][method]["p@50"] for f in folds) / len(folds),
    }
    if data.get("truth"):
        out["truth_ap"] = data["truth"]["scores"][method]["ap"]
        out["truth_p@50"] = data["truth"]["scores"][method]["p@50"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kind", choices=("default", "realistic"), default="default")
    parser.add_argument("--records", nargs="+", default=None, help="real files instead of a sample")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--fields", nargs="+", default=None)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--vocab-size", type=int, default=4000)
    parser.add_argument("--embed-size", type=int, default=64)
    parser.add_argument("--hidden-size", type=int, default=128)
    parser.add_argument("--response-weight", type=float, default=1.0)
    parser.add_argument("--pooling", default="final")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--work", default=None, help="reuse data sets here (default: a new temporary folder)")
    parser.add_argument("--methods", nargs="+", default=["latent_classifier", "censored_distance", *BASELINES])
    parser.add_argument("--min-rows", type=int, default=5)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)

    work = Path(args.work or tempfile.mkdtemp(prefix="quack-compare-"))
    work.mkdir(parents=True, exist_ok=True)
    truth = None
    if args.records:
        records = args.records
        name = "real"
    else:
        name = f"{args.kind}-{args.n}"
        sample_file = work / f"{name}.json"
        truth = work / f"{name}.truth.jsonl"
        if not sample_file.exists():
            write_sample(sample_file, n=args.n, seed=0, realistic=args.kind == "realistic")
        records = [str(sample_file)]
    layout = "-".join(args.fields) if args.fields else "all"
    data_dir = work / f"data-{name}-{layout}-{args.max_tokens}-{args.vocab_size}"
    if not (data_dir / "tokenizer.json").exists():
        build_dataset(records, data_dir, vocab_size=args.vocab_size, max_tokens=args.max_tokens, fields=args.fields)
    model = {"embed_size": args.embed_size, "hidden_size": args.hidden_size, "learning_rate": 3e-3,
             "response_weight": args.response_weight, "pooling": args.pooling}
    run = work / f"run-{data_dir.name}-{args.embed_size}-{args.hidden_size}-{args.response_weight:g}-{args.epochs}-{args.pooling}"
    done = run / "result.json"
    if not done.exists():
        start = time.perf_counter()
        result = fit(data_dir, run, model, logger="none", progress_bar=False, max_epochs=args.epochs,
                     batch_size=args.batch_size, seed=0, patience=0, overwrite=True)
        done.write_text(json.dumps({"checkpoint": str(result.checkpoint), "train_s": time.perf_counter() - start,
                                    "test_loss": result.test_loss}))
    trained = json.loads(done.read_text())
    report = evaluate(data_dir, trained["checkpoint"], methods=args.methods, truth=truth, min_rows=args.min_rows,
                      device="cpu")
    data = report.to_json()
    line = {
        "data": name, "fields": args.fields or "all", "max_tokens": args.max_tokens, "vocab_size": args.vocab_size,
        **model, "epochs": args.epochs, "train_s": round(trained["train_s"], 1), "test_loss": round(trained["test_loss"], 3),
        "rows": data["rows"], "folds": len(data["folds"]),
        "purity": round(data["purity"]["mean"], 3),
        "truth_purity": round(data["truth"]["purity"]["mean"], 3) if data.get("truth") else None,
        "methods": {m: {k: round(v, 3) for k, v in summary(report, m).items()} for m in args.methods},
    }
    with open(args.out, "a") as handle:
        handle.write(json.dumps(line) + "\n")
    print(json.dumps(line, indent=1))


if __name__ == "__main__":
    main()
