"""Load a checkpoint and encode a whole data set on the best device present.

The dashboard and the command line both come through here, so a latent vector means
the same thing wherever it was computed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from quack.autoencoder import QuackAutoEncoder

SHIPPED_CHECKPOINT = Path(__file__).resolve().parent.parent / "checkpoints" / "quack-sample.ckpt"

# Records per batch when encoding: large enough to keep a GPU busy, small enough that
# a 2-core CPU answers progress often.
BATCH_SIZES = {"cuda": 1024, "mps": 512, "cpu": 256}


def best_device(preferred: str | None = None) -> torch.device:
    """The device to encode on: ``preferred`` when given, else CUDA, then Apple MPS, then CPU.

    Raises
    ------
    ValueError
        When ``preferred`` names a device this machine does not have.
    """
    if preferred and preferred != "auto":
        try:
            device = torch.device(preferred)
        except RuntimeError as error:
            raise ValueError(f"Unknown device {preferred!r}; use auto, cpu, cuda, cuda:N or mps.") from error
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"Device {preferred!r} was asked for but no CUDA GPU is available; use --device cpu.")
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise ValueError(f"Device {preferred!r} was asked for but Apple MPS is not available; use --device cpu.")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def load_checkpoint(path: str | Path) -> QuackAutoEncoder:
    """Load a quack checkpoint for inference: on the CPU, in eval mode, with its tokenizer.

    Raises
    ------
    ValueError
        One sentence naming the file when it is missing, not a quack checkpoint, or
        carries no tokenizer.
    """
    model = QuackAutoEncoder.from_checkpoint(path, map_location="cpu")
    if model.tokenizer_json is None:
        raise ValueError(
            f"Checkpoint {path} carries no tokenizer, so it cannot encode new data; "
            "use a checkpoint written by `quack fit` or the dashboard."
        )
    return model.eval()


def check_tokenizer_matches(model: QuackAutoEncoder, data_dir: str | Path) -> None:
    """Raise when a data set was tokenized with another tokenizer than the checkpoint's.

    Token ids only mean something under the tokenizer that produced them, so encoding
    a data set with a model trained under another vocabulary gives meaningless latents.

    Raises
    ------
    ValueError
        Naming the data set and what to do.
    """
    from quack.tokenizer import QuackTokenizer

    path = Path(data_dir) / "tokenizer.json"
    if not path.is_file():
        raise ValueError(f"{data_dir} is not a quack data set (no tokenizer.json); build one with `quack ingest`.")
    ours = QuackTokenizer.load(path).to_json()
    if model.tokenizer_json is not None and ours != QuackTokenizer.from_json(model.tokenizer_json).to_json():
        raise ValueError(
            f"The data set {data_dir} was tokenized with another tokenizer than the checkpoint's; "
            "re-ingest it with `quack ingest --tokenizer-from CHECKPOINT` or train a model on it."
        )


@dataclass
class Encoded:
    """Latent vectors of a data set, in row-id order.

    Attributes
    ----------
    ids : numpy.ndarray (N,) int64
    latents : numpy.ndarray (N, H) float32
    loss : numpy.ndarray (N,) float32
        Per-record mean teacher-forced reconstruction loss (NaN when not computed).
    records_per_s : float
    device : str
    """

    ids: np.ndarray
    latents: np.ndarray
    loss: np.ndarray
    records_per_s: float
    device: str


def encode_dataset(
    model: QuackAutoEncoder,
    data_dir: str | Path,
    batch_size: int | None = None,
    device: str | torch.device | None = None,
    progress: Callable[[int, int], None] | None = None,
    with_loss: bool = True,
) -> Encoded:
    """Encode every row of a tokenized data set.

    Parameters
    ----------
    model : QuackAutoEncoder
    data_dir : path
        A data set written by ``quack ingest`` / :func:`quack.dataset.build_dataset`.
    batch_size : int, optional
        Records per batch; by default sized for the device.
    device : str or torch.device, optional
        Where to run; by default :func:`best_device`.
    progress : callable, optional
        Called as ``progress(done, total)`` after each batch.
    with_loss : bool
        Also compute each record's reconstruction loss (one decoder pass more).

    Returns
    -------
    Encoded
    """
    from quack.dataset import QuackDataset, collate_tokens, read_rows

    check_tokenizer_matches(model, data_dir)
    dataset = QuackDataset(data_dir)
    device = best_device(str(device) if device is not None else None)
    batch_size = batch_size or BATCH_SIZES.get(device.type, 256)
    total = len(dataset)
    # Sorting by length keeps padding, and so wasted work, to a minimum; the results
    # are put back in id order at the end.
    order = np.argsort(read_rows(data_dir, columns=["n_tokens"])["n_tokens"].to_numpy(), kind="stable")
    latents = np.zeros((total, model.hparams.hidden_size), dtype=np.float32)
    losses = np.full(total, np.nan, dtype=np.float32)
    model = model.to(device).eval()
    start = time.perf_counter()
    with torch.inference_mode():
        for begin in range(0, total, batch_size):
            rows = order[begin : begin + batch_size]
            tokens = collate_tokens([dataset[int(i)] for i in rows]).to(device)
            if with_loss:
                out = model.inspect(tokens, teacher_forcing=True)
                losses[rows] = out["loss"].numpy()
                final = out["latent"]
            else:
                final = model.encode(tokens)
            latents[rows] = final.float().cpu().numpy()
            if progress is not None:
                progress(min(begin + batch_size, total), total)
    elapsed = max(time.perf_counter() - start, 1e-9)
    model.cpu()
    return Encoded(np.arange(total, dtype=np.int64), latents, losses, total / elapsed, device.type)
