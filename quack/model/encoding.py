"""Load a checkpoint and encode a whole data set: the one encoding path of quack.

``quack encode``, the dashboard's map and its Export all come through :func:`predict`:
records in length-sorted batches (little padding, so little wasted work), on the best
device present, with Lightning's ``Trainer.predict``. :func:`encode_dataset` keeps the
latents in memory; :func:`write_encoded` hands them to :class:`AutoencoderWriter`. A
latent vector therefore means the same thing, and costs the same, wherever it is computed.
A data set tokenized by another tokenizer than the checkpoint's is tokenized again with
the checkpoint's, from its stored rows, as it is read (:class:`quack.model.dataset.QuackDataset`).
"""

from __future__ import annotations

import re
import shutil
import signal
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from quack.model.module import QuackAutoEncoder
from quack.model.provenance import provenance
from quack.model.reader import read_metadata
from quack.model.writer import LOSS, AutoencoderWriter

SHIPPED_CHECKPOINT = Path(__file__).resolve().parents[2] / "checkpoints" / "quack-sample.ckpt"

# Records per batch when encoding: large enough to keep a GPU busy, small enough that
# a 2-core CPU answers progress often.
BATCH_SIZES = {"cuda": 1024, "mps": 512, "cpu": 256}

#: Which rows an encoding keeps, and the writer's options that keep them.
KEEP = {"all": {}, "labelled": {"filtered": True}, "undetermined": {"evaluate": True}}

Progress = Callable[[int, int], None]

# Each loader item is a whole batch, so Lightning has no per-record indices to track;
# the writer names records by their id and never needs them.
warnings.filterwarnings("ignore", message="Couldn't infer the batch indices fetched from your dataloader")


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


# Lightning's accelerator name for each torch device type.
_LIGHTNING = {"cuda": "gpu", "mps": "mps", "cpu": "cpu"}


def _accelerator(accelerator: str) -> tuple[str, str]:
    """Lightning's accelerator name and the device type it means (for the batch size)."""
    if accelerator in ("auto", None):
        kind = best_device().type
        return _LIGHTNING.get(kind, "cpu"), kind
    return accelerator, {"gpu": "cuda", "cuda": "cuda", "mps": "mps"}.get(accelerator, "cpu")


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


def tokenizer_matches(model: QuackAutoEncoder, data_dir: str | Path) -> bool:
    """Whether a data set's stored tokens are the checkpoint's tokenizer's (else encoding tokenizes again).

    Raises
    ------
    QuackInputError
        When the folder is not a data set.
    """
    from quack.data.datafolder import DataFolder

    if model.tokenizer_json is None:
        return True
    return DataFolder.open(data_dir).tokenizer.to_json() == model.tokenizer.to_json()


class _SortedBatches(Dataset):
    """Whole batches of a data set, records of similar length together.

    Each item is one batch, ``(metadata list, padded tokens)``, so Lightning hands whole
    batches to the ranks of a distributed run and the metadata of a batch is read from
    Arrow in one call rather than cell by cell. The tokens are the checkpoint's
    tokenizer's, made from the stored rows when the data set has another's.
    """

    def __init__(self, data_dir: Path, batch_size: int, tokenizer=None, progress: Progress | None = None) -> None:
        from quack.model.dataset import QuackDataset

        self.tokens = QuackDataset(data_dir, tokenizer=tokenizer, progress=progress)
        self.metadata = self.tokens.metadata_table
        order = np.argsort(self.tokens.lengths, kind="stable")
        self.batches = [order[b : b + batch_size] for b in range(0, len(order), batch_size)]

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, b: int) -> tuple[list[dict], torch.Tensor]:
        from quack.model.dataset import collate_tokens

        rows = self.batches[b]
        return self.metadata.take(rows).to_pylist(), collate_tokens([self.tokens.tokens(int(i)) for i in rows])


class _Progress(pl.Callback):
    def __init__(self, progress: Progress, total: int) -> None:
        self.progress, self.total, self.done = progress, total, 0

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self.done += len(batch[0])
        self.progress(min(self.done, self.total), self.total)


class _Collect(pl.Callback):
    """Keeps each record's latent (and loss) in memory, placed by its id."""

    def __init__(self, total: int, latent_size: int) -> None:
        self.latents = np.zeros((total, latent_size), dtype=np.float32)
        self.loss = np.full(total, np.nan, dtype=np.float32)

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        metadata, latents = outputs
        ids = np.fromiter((m["id"] for m in metadata), dtype=np.int64, count=len(metadata))
        self.latents[ids] = latents.numpy()
        if metadata and LOSS in metadata[0]:
            self.loss[ids] = [m[LOSS] for m in metadata]


def predict(
    model: QuackAutoEncoder,
    data_dir: str | Path,
    callbacks: Sequence[pl.Callback],
    with_loss: bool = False,
    batch_size: int | None = None,
    accelerator: str = "auto",
    devices: int | str = 1,
    strategy: str = "auto",
    num_nodes: int = 1,
    precision: str | None = None,
    progress: Progress | None = None,
    retokenize_progress: Progress | None = None,
) -> str:
    """Run ``Trainer.predict`` over every record of a data set in length-sorted batches.

    Parameters
    ----------
    model : QuackAutoEncoder
    data_dir : path
        A data set written by ``quack ingest``, or a folder of parts; when another
        tokenizer than the model's made its tokens, its rows are tokenized again with the
        model's first.
    callbacks : sequence of Callback
        What receives the predictions (an :class:`AutoencoderWriter`, say).
    with_loss : bool
        Add each record's reconstruction loss to its metadata (one decoder pass more).
    batch_size : int, optional
        Records per batch; by default sized for the device.
    accelerator, devices, strategy, num_nodes, precision
        As Lightning's Trainer takes them; ``accelerator="auto"`` picks CUDA, then MPS,
        then the CPU.
    progress : callable, optional
        Called as ``progress(done, total)`` after each batch.
    retokenize_progress : callable, optional
        Called as ``progress(done, total)`` while the rows are tokenized again.

    Returns
    -------
    str
        The device type the records were encoded on.

    Raises
    ------
    ValueError
        When the data set is not one.
    """
    accelerator, kind = _accelerator(accelerator)
    batches = _SortedBatches(Path(data_dir).expanduser(), batch_size or BATCH_SIZES.get(kind, 256), model.tokenizer,
                             retokenize_progress)
    extra = [_Progress(progress, len(batches.tokens))] if progress is not None else []
    trainer = pl.Trainer(
        accelerator=accelerator,
        devices=devices,
        strategy=strategy,
        num_nodes=num_nodes,
        precision=precision,
        callbacks=[*callbacks, *extra],
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
    )
    loader = DataLoader(batches, batch_size=None, shuffle=False)
    model.predict_loss = with_loss
    main_thread = threading.current_thread() is threading.main_thread()
    on_interrupt = signal.getsignal(signal.SIGINT) if main_thread else None
    try:
        trainer.predict(model, dataloaders=loader, return_predictions=False)
    except SystemExit:
        # Lightning turns Ctrl-C into sys.exit(1) after its own shutdown; give the
        # caller the interruption back, so it can say what was left behind.
        if trainer.interrupted:
            raise KeyboardInterrupt from None
        raise
    finally:
        if main_thread and on_interrupt is not None:
            signal.signal(signal.SIGINT, on_interrupt)
        # The dashboard keeps using the model for single records on the CPU.
        model.predict_loss = False
        model.cpu().eval()
    return kind


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
    progress: Progress | None = None,
    with_loss: bool = True,
    retokenize_progress: Progress | None = None,
) -> Encoded:
    """Encode every row of a tokenized data set into memory, on one device.

    Parameters
    ----------
    model : QuackAutoEncoder
    data_dir : path
        A data set written by ``quack ingest`` / :func:`quack.data.build.build_dataset`, or a
        folder of parts; tokenized again with the model's tokenizer when it has another.
    batch_size : int, optional
        Records per batch; by default sized for the device.
    device : str or torch.device, optional
        Where to run (``cpu``, ``cuda``, ``cuda:1``, ``mps``); by default :func:`best_device`.
    progress : callable, optional
        Called as ``progress(done, total)`` after each batch.
    with_loss : bool
        Also compute each record's reconstruction loss (one decoder pass more).
    retokenize_progress : callable, optional
        Called as ``progress(done, total)`` while a data set of another tokenizer is
        tokenized again with the model's.

    Returns
    -------
    Encoded
    """
    from quack.data.datafolder import DataFolder

    chosen = best_device(str(device) if device is not None else None)
    accelerator = _LIGHTNING.get(chosen.type, "cpu")
    devices = [chosen.index] if chosen.type == "cuda" and chosen.index is not None else 1
    total = DataFolder.open(data_dir).n_rows
    collect = _Collect(total, model.hparams.hidden_size)
    start = time.perf_counter()
    kind = predict(model, data_dir, [collect], with_loss=with_loss, batch_size=batch_size,
                   accelerator=accelerator, devices=devices, progress=progress,
                   retokenize_progress=retokenize_progress)
    elapsed = max(time.perf_counter() - start, 1e-9)
    return Encoded(np.arange(total, dtype=np.int64), collect.latents, collect.loss, total / elapsed, kind)


def write_encoded(
    model: QuackAutoEncoder,
    data_dir: str | Path,
    out: str | Path,
    layout: str = "parquet",
    keep: str = "all",
    with_loss: bool = False,
    progress: Progress | None = None,
    overwrite: bool = False,
    retokenize_progress: Progress | None = None,
    checkpoint: str | Path | None = None,
    new: bool = False,
    **trainer_options,
) -> dict:
    """Encode a data set and write the latents with :class:`AutoencoderWriter`.

    Parameters
    ----------
    model : QuackAutoEncoder
    data_dir : path
        The data set, or a folder of parts; tokenized again with the model's tokenizer
        when it has another.
    out : path
        The output folder; it must be new or empty.
    layout : {"parquet", "indexed"}
        The writer's layout.
    keep : {"all", "labelled", "undetermined"}
        Which rows to write: every row, the labelled ones (the writer's ``filtered``) or
        the undetermined ones (its ``evaluate``).
    with_loss : bool
        Write each record's reconstruction loss beside its latent.
    progress : callable, optional
        Called as ``progress(done, total)`` after each batch.
    overwrite : bool
        Start over in a folder that holds encoded output, finished or interrupted.
    retokenize_progress : callable, optional
        Called as ``progress(done, total)`` while the rows are tokenized again.
    checkpoint : path, optional
        The file ``model`` was loaded from, recorded in ``metadata.json`` with the data
        set (:func:`quack.model.provenance.provenance`) so a reader can tell what made the latents.
    new : bool
        The output folder must not exist: it is made here in one step (``os.mkdir``), so of
        two writers given one name at once exactly one goes on and the other is refused.
    **trainer_options
        ``batch_size``, ``accelerator``, ``devices``, ``strategy``, ``num_nodes``,
        ``precision`` as :func:`predict` takes them.

    Returns
    -------
    dict
        The written ``metadata.json``: counts per label, total, layout, run, and the
        ``data_set`` and ``checkpoint`` it was made from.

    Raises
    ------
    ValueError
        When the output folder is not empty (with ``new``, when it exists), ``keep`` or
        ``layout`` is unknown, or the folder is not a data set.
    KeyboardInterrupt
        On Ctrl-C or SIGTERM, with a sentence saying what was left and how to go on.
    """
    if keep not in KEEP:
        raise ValueError(f"Rows to keep must be one of {', '.join(KEEP)}, got {keep!r}.")
    target = Path(out).expanduser()
    if overwrite:
        clear_encoded(target)
    if new:
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            target.mkdir()
        except FileExistsError:
            raise ValueError(f"An output named {target.name!r} already exists or is being written right now; "
                             "choose another name.") from None
    elif target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ValueError(
            f"The output {target} already exists and is not empty; choose a new folder, or start it over "
            "with --overwrite when it holds encoded output."
        )
    made_from = provenance(data_dir, checkpoint, model.tokenizer_json)
    writer = AutoencoderWriter(write_interval="batch", storage_path=str(target), layout=layout, provenance=made_from,
                               **KEEP[keep])
    seen = {"done": 0, "total": 0}

    def track(done: int, total: int) -> None:
        seen.update(done=done, total=total)
        if progress is not None:
            progress(done, total)

    try:
        predict(model, data_dir, [writer], with_loss=with_loss, progress=track,
                retokenize_progress=retokenize_progress, **trainer_options)
    except KeyboardInterrupt:
        raise KeyboardInterrupt(
            f"interrupted after {seen['done']:,} of {seen['total']:,} records; {target} has no metadata.json, so "
            "it reads as incomplete; run the same command with --overwrite to start it over."
        ) from None
    return read_metadata(target)


# What the writer, `quack classify` and an interrupted run leave in an output folder.
_ENCODED_FILE = re.compile(r"(part-.*\.parquet|metadata\.json|scores\.parquet|classifier\.pt|\..*\.tmp)")


def clear_encoded(folder: str | Path) -> None:
    """Empty a folder of encoded output (complete or interrupted) so it can be written again.

    Raises
    ------
    ValueError
        When the folder holds anything the writer does not write; nothing is removed then.
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        return
    entries = list(folder.iterdir())
    strangers = [e.name for e in entries if not (
        (e.is_file() and _ENCODED_FILE.fullmatch(e.name))
        or (e.is_dir() and (e.name.isdigit() or e.name == "classifier" or e.name.endswith(".tmp")))
    )]
    if strangers:
        raise ValueError(
            f"{folder} holds files that are not encoded output ({', '.join(sorted(strangers)[:3])}); "
            "choose a new folder instead of --overwrite."
        )
    for entry in entries:
        shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
