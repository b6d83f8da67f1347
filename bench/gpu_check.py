"""GPU check: encoding rate on the GPU against the CPU in one run, and one bf16 epoch.

    python bench/gpu_check.py --records 100000

Generates the sample at the size asked, tokenizes it with the shipped checkpoint's
tokenizer, encodes it on the CPU (a slice, to keep the run short) and on the GPU, samples
the GPU's utilisation with NVML while it encodes, then trains one epoch with
``bf16-mixed`` precision. Prints one JSON document with the figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from quack.data.build import build_dataset  # noqa: E402
from quack.model.encoding import SHIPPED_CHECKPOINT, encode_dataset, load_checkpoint  # noqa: E402
from quack.sample.generator import write_sample  # noqa: E402


def utilisation_sampler(stop: threading.Event, readings: list[int]) -> None:
    """Append the GPU's utilisation (%) every 0.2 s until ``stop`` is set."""
    try:
        import pynvml
    except ImportError:
        return
    pynvml.nvmlInit()
    handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    while not stop.is_set():
        readings.append(int(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu))
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=100_000, help="sample measurements to generate")
    parser.add_argument("--cpu-rows", type=int, default=5_000, help="rows encoded on the CPU for its rate")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("No CUDA GPU here; this check runs on a machine with one.")
    work = Path(tempfile.mkdtemp(prefix="quack-gpu-"))
    model = load_checkpoint(SHIPPED_CHECKPOINT)
    records, _ = write_sample(work / "sample.json", n=args.records, seed=0)
    info = build_dataset([records], work / "data", tokenizer=model.tokenizer)
    small, _ = write_sample(work / "cpu.json", n=max(args.cpu_rows * 3 // 4, 1), seed=1)
    build_dataset([small], work / "cpu", tokenizer=model.tokenizer)

    cpu = encode_dataset(model, work / "cpu", device="cpu", with_loss=False)
    encode_dataset(model, work / "cpu", device="cuda", with_loss=False)  # warm-up: CUDA context, kernels
    readings: list[int] = []
    stop = threading.Event()
    sampler = threading.Thread(target=utilisation_sampler, args=(stop, readings), daemon=True)
    sampler.start()
    gpu = encode_dataset(model, work / "data", device="cuda", with_loss=False)
    stop.set()
    sampler.join()

    from quack.model.training import fit

    start = time.perf_counter()
    result = fit(
        work / "data", work / "run", {k: v for k, v in model.hparams.items() if k != "num_embeddings"}, max_epochs=1, batch_size=256,
        accelerator="gpu", devices=1, precision="bf16-mixed", patience=0, logger="none", progress_bar=False,
    )
    report = {
        "gpu": torch.cuda.get_device_name(0),
        "rows": info["rows"],
        "encode_records_per_s": {"cpu": round(cpu.records_per_s, 1), "gpu": round(gpu.records_per_s, 1)},
        "gpu_over_cpu": round(gpu.records_per_s / cpu.records_per_s, 1),
        "gpu_utilisation_percent": {
            "mean": round(sum(readings) / len(readings), 1) if readings else None,
            "max": max(readings) if readings else None,
        },
        "bf16_epoch": {
            "seconds": round(time.perf_counter() - start, 1),
            "test_loss": round(result.test_loss, 4),
            "token_accuracy": round(result.token_accuracy, 4),
        },
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
