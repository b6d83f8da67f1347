"""Train the shipped checkpoint on the built-in sample and measure it.

    python scripts/train_sample_checkpoint.py            # train, save, evaluate
    python scripts/train_sample_checkpoint.py --evaluate # evaluate the shipped checkpoint only

Writes ``checkpoints/quack-sample.ckpt`` (weights and tokenizer, no optimiser state) and
``checkpoints/quack-sample.json`` (how it was made and what it scored). The evaluation
encodes the sample, trains the latent classifier, and compares it with a logistic
regression on bag-of-tokens counts of the same records and split: held-out accuracy and
F1 on labelled rows, and the discovery score (of the 50 undetermined rows ranked most
likely censored, the share the generator's ground truth marks as an unknown blockpage).
It also records the leave-fingerprints-out evaluation of the sample (``quack evaluate``):
each method's mean AP and P@50 over the folds and the purity of the latents.

The settings were chosen by that evaluation (``scripts/compare_latent_settings.py``,
BENCHMARKS.md): the sequence holds the response and two static fields, without the
vantage point's address or the request, so the latents follow the response.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from quack.config import AutoencoderConfig, TrainConfig  # noqa: E402
from quack.data.vocab import RESPONSE_FIELDS  # noqa: E402
from quack.latents.classifier import binary_scores, split_labelled, train_classifier  # noqa: E402
from quack.data.build import build_dataset  # noqa: E402
from quack.data.datafolder import read_rows  # noqa: E402
from quack.model.encoding import SHIPPED_CHECKPOINT, encode_dataset, load_checkpoint  # noqa: E402
from quack.sample.generator import write_sample  # noqa: E402

SAMPLE = {"n": 5000, "seed": 0}
TOKENIZER = {"vocab_size": 4000, "max_tokens": 128, "fields": list(RESPONSE_FIELDS)}
# The model and the run are quack's defaults (quack.config), so `quack fit` and the
# dashboard's Model page train as this script does.
MODEL = {name: getattr(AutoencoderConfig(), name)
         for name in ("embed_size", "hidden_size", "layers", "learning_rate", "teacher_forcing_ratio", "pooling")}
TRAINER = {name: getattr(TrainConfig(), name) for name in ("max_epochs", "batch_size", "seed", "patience")}
TOP = 50


def bag_of_tokens(tokens: list[np.ndarray], vocab_size: int):
    """Sparse counts of each token id per record."""
    from scipy.sparse import csr_matrix

    indptr = np.concatenate([[0], np.cumsum([len(t) for t in tokens])])
    indices = np.concatenate(tokens).astype(np.int64)
    return csr_matrix((np.ones(len(indices), np.float32), indices, indptr), shape=(len(tokens), vocab_size))


def discovery_share(scores: np.ndarray, labels: np.ndarray, truth: np.ndarray, top: int = TOP) -> float:
    """Share of the ``top`` undetermined rows by score that are unknown blockpages."""
    undetermined = np.flatnonzero(labels == 0)
    ranked = undetermined[np.argsort(-scores[undetermined], kind="stable")[:top]]
    return float(np.mean(truth[ranked] == "unknown_blockpage"))


def sample_dataset(work: Path, tokenizer=None) -> tuple[Path, np.ndarray]:
    """Generate the sample, build its data set, and return it with each row's ground truth.

    A data set ``work`` already holds with the same tokenizer is used as it is.
    """
    data_dir, truth_file = work / "data", work / "sample.truth.jsonl"
    built = (data_dir / "tokenizer.json").is_file() and tokenizer is not None \
        and (data_dir / "tokenizer.json").read_text() == tokenizer.to_json()
    if not built:
        records, truth_file = write_sample(work / "sample.json", **SAMPLE)
        build_dataset([records], data_dir, tokenizer=tokenizer, **({} if tokenizer else TOKENIZER))
    rows = read_rows(data_dir, columns=["source", "line", "probe"])
    truth = {}
    with open(truth_file) as handle:
        for line in handle:
            item = json.loads(line)
            truth[(Path(item["source"]).name, item["line"], item["probe"])] = item["truth"]
    keys = zip(rows["source"].map(lambda s: Path(s).name), rows["line"], rows["probe"])
    return data_dir, np.array([truth.get(key, "missing") for key in keys])


def evaluate(checkpoint: Path, work: Path) -> dict:
    """Encode the sample with ``checkpoint`` and score the classifier and the baseline."""
    from sklearn.linear_model import LogisticRegression

    model = load_checkpoint(checkpoint)
    data_dir, truth = sample_dataset(work, tokenizer=model.tokenizer)
    encoded = encode_dataset(model, data_dir, device="cpu", with_loss=False)
    rows = read_rows(data_dir, columns=["label", "tokens"])
    labels = rows["label"].to_numpy()
    report = train_classifier(encoded.latents, labels, seed=0)
    latent_scores = report.model.predict_proba(encoded.latents)

    train_idx, test_idx = split_labelled(labels, 0.2, seed=0)
    counts = bag_of_tokens([np.asarray(t) for t in rows["tokens"]], model.hparams.num_embeddings)
    baseline = LogisticRegression(max_iter=2000).fit(counts[train_idx], labels[train_idx] == 1)
    base_scores = baseline.predict_proba(counts)[:, 1]
    base_acc, base_f1, base_confusion = binary_scores(labels[test_idx] == 1, base_scores[test_idx] >= 0.5)
    undetermined = labels == 0
    return {
        "rows": int(len(labels)),
        "rows_per_label": {str(k): int(np.sum(labels == k)) for k in (1, 0, -1)},
        "undetermined_unknown_blockpage_share": float(np.mean(truth[undetermined] == "unknown_blockpage")),
        "encode_records_per_s_cpu": round(encoded.records_per_s, 1),
        "latent_classifier": {
            "accuracy": round(report.accuracy, 4),
            "f1": round(report.f1, 4),
            "confusion": report.confusion,
            "discovery_top50": discovery_share(latent_scores, labels, truth),
        },
        "bag_of_tokens_logistic_regression": {
            "accuracy": round(base_acc, 4),
            "f1": round(base_f1, 4),
            "confusion": base_confusion,
            "discovery_top50": discovery_share(base_scores, labels, truth),
        },
    }


def leave_fingerprints_out(checkpoint: Path, work: Path, methods: list[str] | None = None) -> dict:
    """``quack evaluate`` on the sample: mean AP and P@50 of each method over the folds, and the purities."""
    from quack.discovery.evaluation import evaluate as evaluate_methods

    model = load_checkpoint(checkpoint)
    data_dir, _ = sample_dataset(work, tokenizer=model.tokenizer)
    report = evaluate_methods(data_dir, model, truth=work / "sample.truth.jsonl", device="cpu",
                              methods=methods).to_json()
    folds = report["folds"]
    return {
        "folds": len(folds),
        "purity": round(report["purity"]["mean"], 3),
        "unknown_blockpage_purity": round(report["truth"]["purity"]["mean"], 3),
        "methods": {
            name: {
                "ap": round(float(np.mean([fold["scores"][name]["ap"] for fold in folds])), 3),
                "p@50": round(float(np.mean([fold["scores"][name]["p@50"] for fold in folds])), 3),
                "truth_ap": round(report["truth"]["scores"][name]["ap"], 3),
            }
            for name in report["methods"]
        },
    }


def train(work: Path) -> dict:
    """Train on the sample and save the weights-only checkpoint; return the run's figures."""
    from quack.model.training import fit

    data_dir, _ = sample_dataset(work)
    start = time.perf_counter()
    result = fit(data_dir, work / "run", MODEL, logger="none", progress_bar=True, **TRAINER)
    seconds = time.perf_counter() - start
    model = load_checkpoint(result.checkpoint)
    checkpoint = torch.load(result.checkpoint, map_location="cpu", weights_only=True)
    shipped = {
        key: checkpoint[key]
        for key in ("state_dict", "hyper_parameters", "quack_tokenizer", "pytorch-lightning_version", "epoch", "global_step")
        if key in checkpoint
    }
    SHIPPED_CHECKPOINT.parent.mkdir(exist_ok=True)
    tmp = SHIPPED_CHECKPOINT.with_suffix(".tmp")
    torch.save(shipped, tmp)
    os.replace(tmp, SHIPPED_CHECKPOINT)
    del model
    return {
        "training_seconds": round(seconds, 1),
        "torch_threads": torch.get_num_threads(),
        "epochs": result.epochs,
        "test_loss": round(result.test_loss, 4),
        "test_token_accuracy_greedy": round(result.token_accuracy, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--evaluate", action="store_true", help="only evaluate the shipped checkpoint")
    args = parser.parse_args()
    summary_path = SHIPPED_CHECKPOINT.with_suffix(".json")
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    work = Path(tempfile.mkdtemp(prefix="quack-sample-"))
    try:
        if not args.evaluate:
            summary = {"sample": SAMPLE, "tokenizer": TOKENIZER, "model": MODEL, "trainer": TRAINER}
            summary["training"] = train(work / "train")
        summary["evaluation"] = evaluate(SHIPPED_CHECKPOINT, work / "evaluate")
        summary["leave_fingerprints_out"] = leave_fingerprints_out(SHIPPED_CHECKPOINT, work / "leave-out")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summary_path.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
