"""Encoding rate of `quack encode` against the dashboard's map, on one data set in one run.

Run from the project root::

    python bench/bench_encode.py               # the built-in sample, 5,000 measurements
    python bench/bench_encode.py --n 20000 --repeats 3

Builds the built-in sample with the shipped checkpoint's tokenizer, then times, interleaved
so that a busy machine slows all of them alike (median of ``--repeats`` after a warm-up):

* ``quack encode``: the command line end to end (``quack.cli.main.main``), writing Parquet;
* the map: :func:`quack.model.encoding.encode_dataset`, latents kept in memory;
* the unsorted predict loop that ``quack encode`` ran before it joined the encoding path:
  ``Trainer.predict`` over ``QuackDataModule.predict_dataloader`` (id order, no length
  sorting), latents thrown away.

Prints a Markdown table of records per second and each rate's ratio to the map's.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch


def _quack_encode(data: Path, checkpoint: Path, out: Path) -> None:
    from quack.cli.main import main

    if main(["encode", "--data", str(data), "--checkpoint", str(checkpoint), "--out", str(out),
             "--accelerator", "cpu"]) != 0:
        raise SystemExit("quack encode failed")


def _map(data: Path, model) -> None:
    from quack.model.encoding import encode_dataset

    encode_dataset(model, data, device="cpu", with_loss=False)


def _unsorted(data: Path, model) -> None:
    import pytorch_lightning as pl

    from quack.model.dataset import QuackDataModule

    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                         enable_model_summary=False, enable_progress_bar=False)
    trainer.predict(model, datamodule=QuackDataModule(data, batch_size=256), return_predictions=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="measurements in the sample (default: 5000)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default: 2)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)

    from quack.data.build import build_dataset
    from quack.model.encoding import SHIPPED_CHECKPOINT, load_checkpoint
    from quack.sample.generator import write_sample

    model = load_checkpoint(SHIPPED_CHECKPOINT)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        records, _ = write_sample(work / "sample.json", n=args.n, seed=0)
        info = build_dataset([records], work / "data", tokenizer=model.tokenizer)
        data = work / "data"
        runs = {
            "quack encode (Parquet, length-sorted)": lambda k: _quack_encode(data, SHIPPED_CHECKPOINT, work / f"out{k}"),
            "dashboard map (encode_dataset)": lambda k: _map(data, model),
            "unsorted Trainer.predict (quack encode before)": lambda k: _unsorted(data, model),
        }
        times: dict[str, list[float]] = {name: [] for name in runs}
        for k in range(args.repeats + 1):
            for name, run in runs.items():
                start = time.perf_counter()
                run(k)
                if k:  # the first round warms caches and is not counted
                    times[name].append(time.perf_counter() - start)
        rows = info["rows"]
        rates = {name: rows / statistics.median(t) for name, t in times.items()}
        reference = rates["dashboard map (encode_dataset)"]
        print(f"{args.n:,} measurements, {rows:,} rows, mean {info['mean_tokens']:.1f} tokens, "
              f"{args.threads} torch threads, median of {args.repeats}")
        print("| path | records/s | ratio to the map |\n| --- | ---: | ---: |")
        for name, rate in rates.items():
            print(f"| {name} | {rate:,.0f} | {rate / reference:.2f} |")


if __name__ == "__main__":
    main()
