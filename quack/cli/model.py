"""`quack fit`, `quack encode` and `quack classify`: the research loop on the command line.

Each command checks every input before it writes anything, so a wrong option costs
one sentence on stderr and exit status 2, never a half-written output.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from quack.config import AutoencoderConfig, TrainConfig, add_arguments, from_arguments, parse_devices
from quack.schema import Label


class UsageError(ValueError):
    """A problem with the command's inputs that the user can fix."""


def _positive(name: str, value: float, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        raise UsageError(f"--{name} must be {'zero or more' if allow_zero else 'positive'}, got {value}.")


def check_dataset(path: str | Path) -> dict:
    """The info of a data set that exists and has rows, or a UsageError saying what is wrong."""
    from quack.data.datafolder import DataFolder

    try:
        return DataFolder.open(path, require_rows=True).info
    except ValueError as error:
        raise UsageError(str(error)) from error


def add_fit_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``quack fit``; its model and trainer flags come from :mod:`quack.config`."""
    p = subparsers.add_parser("fit", help="train an autoencoder on a tokenized data set")
    p.add_argument("--data", required=True,
                   help="data set folder written by `quack ingest`, or a folder of such data sets (parts)")
    p.add_argument("--out", default="runs/fit", help="folder for checkpoints and logs (default: runs/fit)")
    p.add_argument("--resume", default=None, help="checkpoint of an earlier run to continue")
    p.add_argument("--overwrite", action="store_true", help="replace the checkpoints of an earlier run in --out")
    add_arguments(p.add_argument_group("model"), AutoencoderConfig)
    add_arguments(p.add_argument_group("trainer"), TrainConfig)
    p.set_defaults(func=run_fit)


def run_fit(args: argparse.Namespace) -> int:
    """Train, test, and print where the best checkpoint is."""
    from quack.model.training import fit

    check_dataset(args.data)
    try:
        model = from_arguments(AutoencoderConfig, args)
        train = from_arguments(TrainConfig, args)
    except ValueError as error:
        raise UsageError(str(error)) from error
    if args.resume and not Path(args.resume).expanduser().is_file():
        raise UsageError(f"--resume names {args.resume}, which does not exist; give a checkpoint file of an earlier run.")
    # Lightning's bar redraws on a terminal; into a log it would write a line per redraw.
    on_terminal = sys.stderr.isatty()
    result = fit(args.data, args.out, model, train, resume=args.resume, overwrite=args.overwrite,
                 progress_bar=on_terminal, callbacks=[] if on_terminal else [_training_progress()])
    print(
        f"best checkpoint: {result.checkpoint}\n"
        f"epochs: {result.epochs}  test loss: {result.test_loss:.4f}  "
        f"reconstruction token accuracy (greedy): {result.token_accuracy:.4f}"
    )
    return 0


def _training_progress():
    """A Lightning callback that reports training steps through :class:`quack.progress.Progress`."""
    import pytorch_lightning as pl

    from quack.progress import Progress

    class TrainingProgress(pl.Callback):
        def __init__(self) -> None:
            self.progress: Progress | None = None

        def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            total = trainer.estimated_stepping_batches
            self.progress = Progress("quack fit", "train", int(total) if np.isfinite(total) else None, unit="steps")

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            if self.progress is not None:
                self.progress.update(trainer.global_step)

        def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            if self.progress is not None:
                self.progress.close()
                self.progress = None

    return TrainingProgress()


def add_encode_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``quack encode``."""
    p = subparsers.add_parser("encode", help="encode a data set with a checkpoint and write the latents")
    p.add_argument("--data", required=True,
                   help="data set folder written by `quack ingest`, or a folder of such data sets (parts); "
                        "tokenized again with the checkpoint's tokenizer when it has another")
    p.add_argument("--checkpoint", default=None, help="checkpoint file (default: the shipped sample model)")
    p.add_argument("--out", required=True, help="folder for the encoded output (must be new or empty)")
    p.add_argument("--layout", choices=["parquet", "indexed"], default="parquet")
    p.add_argument("--overwrite", action="store_true",
                   help="start over in an --out that holds encoded output, finished or interrupted")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--filtered", action="store_true", help="keep only labelled rows (censored, uncensored)")
    which.add_argument("--evaluate", action="store_true", help="keep only undetermined rows")
    p.add_argument("--loss", action=argparse.BooleanOptionalAction, default=True,
                   help="write each record's reconstruction loss beside its latent, so the dashboard colours and "
                        "ranks by it without running the model (one decoder pass more; default: on)")
    p.add_argument("--batch-size", type=int, default=None, help="records per batch (default: sized for the device)")
    p.add_argument("--accelerator", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, gpu, mps")
    p.add_argument("--devices", default="auto")
    p.add_argument("--strategy", default="auto")
    p.add_argument("--num-nodes", type=int, default=1)
    p.add_argument("--precision", default=None)
    p.set_defaults(func=run_encode)


def run_encode(args: argparse.Namespace) -> int:
    """Encode with AutoencoderWriter on the best device present."""
    from quack.model.encoding import SHIPPED_CHECKPOINT, load_checkpoint, tokenizer_matches, write_encoded
    from quack.progress import Stages

    info = check_dataset(args.data)
    out = Path(args.out).expanduser()
    if args.batch_size is not None:
        _positive("batch-size", args.batch_size)
    model = load_checkpoint(args.checkpoint or SHIPPED_CHECKPOINT)
    keep = "labelled" if args.filtered else "undetermined" if args.evaluate else "all"
    if not tokenizer_matches(model, args.data):
        print(f"{args.data} was tokenized by another tokenizer than the checkpoint's; "
              f"tokenizing its {info['rows']:,} rows again with the checkpoint's", flush=True)
    with Stages("quack encode") as progress:
        summary = write_encoded(
            model, args.data, out, layout=args.layout, keep=keep, with_loss=args.loss, batch_size=args.batch_size,
            progress=lambda done, total: progress(done, "encode", total),
            retokenize_progress=lambda done, total: progress(done, "tokenize", total),
            accelerator=args.accelerator, devices=parse_devices(str(args.devices)), strategy=args.strategy,
            num_nodes=args.num_nodes, precision=args.precision, overwrite=args.overwrite,
            checkpoint=args.checkpoint or SHIPPED_CHECKPOINT,
        )
    counts = ", ".join(f"{summary[k]} {k}" for k in ("censored", "undetermined", "uncensored", "total") if k in summary)
    print(f"wrote {out} ({args.layout}): {counts}")
    return 0


def add_classify_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``quack classify``."""
    p = subparsers.add_parser(
        "classify", help="train the latent classifier and score undetermined rows with a probability of censorship"
    )
    p.add_argument("--encoded", required=True, help="encoded output folder written by `quack encode`")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--test-size", type=float, default=0.2, help="share of labelled rows held out (default 0.2)")
    p.add_argument("--epochs", type=int, default=200)
    p.set_defaults(func=run_classify)


def run_classify(args: argparse.Namespace) -> int:
    """Train on labelled latents, score every row, write ``classifier/scores.parquet`` beside the latents."""
    import pandas as pd

    from quack.model.reader import load_encoded
    from quack.latents.classifier import SCORES_FILE, train_classifier, write_classified

    folder = Path(args.encoded).expanduser()
    if not 0.0 < args.test_size < 1.0:
        raise UsageError(f"--test-size must lie between 0 and 1, got {args.test_size}.")
    _positive("epochs", args.epochs)
    # Refuses a folder with no encoded output, and output that is not whole (an encode
    # killed before metadata.json, a shard deleted since), so every row gets a score.
    table = load_encoded(folder)
    latents = np.stack(table["latent"].to_numpy()) if len(table) else np.zeros((0, 0), np.float32)
    labels = table["label"].to_numpy()
    try:
        report = train_classifier(latents, labels, seed=args.seed, test_size=args.test_size, epochs=args.epochs)
    except ValueError as error:
        raise UsageError(str(error)) from error
    held_out = np.zeros(len(table), dtype=bool)
    held_out[report.test_index] = True
    scores = pd.DataFrame(
        {"id": table["id"].to_numpy(), "label": labels, "p_censored": report.model.predict_proba(latents), "held_out": held_out}
    )
    written = write_classified(folder, scores, report.model)
    undetermined = scores[scores["label"] == Label.UNDETERMINED].sort_values("p_censored", ascending=False)
    print(
        f"held-out accuracy {report.accuracy:.4f}  F1 {report.f1:.4f}  confusion {report.confusion}\n"
        f"scored {len(scores)} rows; {int((undetermined['p_censored'] >= 0.5).sum())} of {len(undetermined)} "
        f"undetermined rows look censored (p >= 0.5); wrote {written / SCORES_FILE}"
    )
    return 0

