"""Writing latent vectors to disk during prediction.

Two layouts live under a storage directory:

``parquet`` (default)
    ``part-<run>-r<rank>-d<loader>-b<batch>.parquet`` shards, one per predicted batch and
    rank, each with the metadata columns and a ``latent`` column (fixed-size list of
    float32); a ``reconstruction_loss`` column (:data:`LOSS`) when the model computed
    it, as ``quack encode`` does by default. pandas, pyarrow and DuckDB read them directly
    (``SELECT * FROM 'dir/part-*.parquet'``).
``indexed``
    One ``.npz`` file per record (array ``latent``, no pickled objects) placed by
    :func:`item_path` from the record's ``id``, with its metadata (the loss included) in
    a ``.json`` file of the same name beside it.

Both write ``metadata.json`` at the top, last: what the latents were made from when the
writer is told (:func:`quack.model.provenance.provenance`), the counts of censored,
undetermined and uncensored records and the total written, summed over all ranks, and
for Parquet every rank's shards with their row counts. Every file is written under a
temporary name and then renamed, so readers never see a half-written file;
:mod:`quack.model.reader` reads the output back and refuses it when it is not whole.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytorch_lightning as pl
import torch
import torch.distributed
from pytorch_lightning.callbacks import BasePredictionWriter

from quack.atomic import atomic_write
from quack.schema import Label

__all__ = ["item_path", "AutoencoderWriter", "LAYOUTS", "METADATA_FILE", "LATENT", "LOSS", "LABEL_NAME"]

#: The layouts :class:`AutoencoderWriter` writes.
LAYOUTS = ("parquet", "indexed")
#: The file at the top of an encoded folder, written last.
METADATA_FILE = "metadata.json"
#: The column (Parquet) or array (``.npz``) holding a record's latent vector.
LATENT = "latent"
#: The metadata field (a Parquet column, a key of the indexed ``.json``) holding a
#: record's reconstruction loss, when the model's ``predict_loss`` was set.
LOSS = "reconstruction_loss"
#: The metadata field added beside ``label``: the label's name (censored, undetermined, uncensored).
LABEL_NAME = "label_name"

# metadata.json counts the records of each label under its display name, in this order.
_LABEL_NAMES = {label: label.display for label in Label.ordered()}


def item_path(index: int, suffix: str = "png", dir_only: bool = False, is_collection: bool = False) -> str:
    """Path of an item in an indexed tree, relative to its root.

    Parameters
    ----------
    index : int
        The item's index (a non-negative integer).
    suffix : str
        The file's extension, without the dot.
    dir_only : bool
        Return only the directory.
    is_collection : bool
        The item is a directory of files: the directory gains a last level ``/{index}``.

    Returns
    -------
    str
        ``/{index // 100000}/{(index % 100000) // 1000}/{index}.{suffix}``, e.g.
        ``item_path(202001, 'pyc') == '/2/2/202001.pyc'``.
    """
    stem = f"/{index // 100000}/{(index % 100000) // 1000}"
    if is_collection:
        stem += f"/{index}"
    if dir_only:
        return stem
    return f"{stem}/{index}.{suffix}"


def _plain(name: str, value: Any) -> Any:
    """A metadata value as a plain Python scalar, or a clear error."""
    if isinstance(value, (np.generic, torch.Tensor)) and value.ndim == 0:
        value = value.item()
    if value is None or isinstance(value, (bool, int, float, str, datetime)):
        return value
    raise ValueError(
        f"Metadata field {name!r} holds a {type(value).__name__}; only numbers, strings, booleans, times and None can be written."
    )


class AutoencoderWriter(BasePredictionWriter):
    """Store each predicted record's metadata and latent vector.

    Use it as a callback of ``Trainer.predict`` with a model whose ``predict_step`` returns
    ``(metadata list, latents (B, H))``, such as ``QuackAutoEncoder``. Under DDP every rank
    writes its own files and ``metadata.json`` counts the records of all ranks.

    Parameters
    ----------
    write_interval : {"batch", "epoch", "batch_and_epoch"}
        When records are written: after each batch, or all at the end (which needs the
        trainer to keep its predictions). ``metadata.json`` is written at the end of
        prediction in every case.
    storage_path : str
        The output directory; ``~`` is expanded and it is created if missing.
    filtered : bool
        Keep only labeled records (censored 1 and uncensored -1).
    evaluate : bool
        Keep only undetermined records (label 0).
    layout : {"parquet", "indexed"}
        Parquet shards, or one ``.npz`` file per record placed by :func:`item_path`
        (which needs an integer ``id`` in each record's metadata).
    provenance : dict, optional
        What the latents were made from (:func:`quack.model.provenance.provenance`:
        ``data_set`` and ``checkpoint``), recorded in ``metadata.json`` so a reader can
        check it.

    Notes
    -----
    Writing Parquet again into the same directory supersedes the earlier run: shard
    names carry a run name, ``metadata.json`` lists the run's shards, and
    :func:`quack.model.reader.load_encoded` reads only those. The indexed layout
    replaces each record's files in place, so records an earlier run wrote and a later
    one skipped stay; write a different selection to a fresh directory.
    """

    def __init__(
        self,
        write_interval: str = "batch",
        storage_path: str = "~/data",
        filtered: bool = False,
        evaluate: bool = False,
        layout: str = "parquet",
        provenance: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(write_interval)
        if filtered and evaluate:
            raise ValueError("AutoencoderWriter takes filtered or evaluate, not both: they keep disjoint records.")
        if layout not in LAYOUTS:
            raise ValueError(f"AutoencoderWriter layout must be one of {', '.join(LAYOUTS)}, got {layout!r}.")
        self.storage_path = Path(os.path.expanduser(str(storage_path)))
        self.filtered = filtered
        self.evaluate = evaluate
        self.layout = layout
        self.provenance = dict(provenance or {})
        self._run = uuid.uuid4().hex[:12]
        self._started = time.perf_counter()
        self._counts = dict.fromkeys(_LABEL_NAMES.values(), 0)
        self._total = 0
        self._latent_size: int | None = None
        self._shards: list[dict] = []

    # ------------------------------------------------------------------ Lightning hooks

    def on_predict_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        """Start a fresh run: zero the counts and agree on a run name across ranks."""
        self._run = trainer.strategy.broadcast(uuid.uuid4().hex[:12], src=0)
        self._counts = dict.fromkeys(_LABEL_NAMES.values(), 0)
        self._total = 0
        self._latent_size = None
        self._shards = []
        self._started = time.perf_counter()
        try:
            self.storage_path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise _disk_error(self.storage_path, error) from error

    def on_predict_epoch_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        """Finish the run; ``metadata.json`` is written whatever the write interval."""
        if self.interval.on_epoch:
            super().on_predict_epoch_end(trainer, pl_module)
        else:
            self.write_on_epoch_end(trainer, pl_module, [], [])

    def write_on_batch_end(
        self,
        trainer: "pl.Trainer",
        pl_module: "pl.LightningModule",
        prediction: Any,
        batch_indices: Sequence[int] | None,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        """Write one predicted batch.

        Parameters
        ----------
        trainer : pytorch_lightning.Trainer
            The running trainer.
        pl_module : pytorch_lightning.LightningModule
            The model.
        prediction : tuple of (list of dict, torch.Tensor)
            ``predict_step``'s output: metadata and latents (B, H).
        batch_indices : sequence of int or None
            Indices of the batch's records in the data set (unused: ``id`` names them).
        batch : Any
            The input batch.
        batch_idx : int
            Index of the batch.
        dataloader_idx : int
            Index of the data loader.
        """
        metadata, latents = prediction
        self._write_rows(trainer.global_rank, dataloader_idx, batch_idx, metadata, latents)

    def write_on_epoch_end(
        self,
        trainer: "pl.Trainer",
        pl_module: "pl.LightningModule",
        predictions: Sequence[Any],
        batch_indices: Sequence[Any],
    ) -> None:
        """Write the kept predictions (epoch interval) and ``metadata.json``.

        Parameters
        ----------
        trainer : pytorch_lightning.Trainer
            The running trainer.
        pl_module : pytorch_lightning.LightningModule
            The model.
        predictions : sequence
            The epoch's predictions (one list per data loader when there are several).
        batch_indices : sequence
            Unused: ``id`` names the records.
        """
        if not self.interval.on_batch:
            per_loader = predictions if predictions and isinstance(predictions[0], list) else [predictions]
            for loader, outputs in enumerate(per_loader):
                for batch_idx, (metadata, latents) in enumerate(outputs):
                    self._write_rows(trainer.global_rank, loader, batch_idx, metadata, latents)
        self._write_metadata(trainer, pl_module)

    # ------------------------------------------------------------------ writing

    def _keep(self, label: Any) -> bool:
        if self.filtered:
            return label in Label.labelled()
        if self.evaluate:
            return label == Label.UNDETERMINED
        return True

    def _write_rows(self, rank: int, loader: int, batch_idx: int, metadata: Sequence[dict] | Mapping,
                    latents: torch.Tensor) -> None:
        latents = latents.detach().float().cpu().numpy()
        if isinstance(metadata, Mapping):
            # torch's default_collate turns a batch of dicts into a dict of per-field batches.
            metadata = [dict(zip(metadata, values)) for values in zip(*metadata.values())]
        if len(metadata) != len(latents):
            raise ValueError(
                f"Batch {batch_idx} has {len(metadata)} metadata entries for {len(latents)} latent vectors."
            )
        kept = [i for i, meta in enumerate(metadata) if self._keep(meta.get("label"))]
        if not kept:
            return
        rows = [{key: _plain(key, value) for key, value in metadata[i].items()} for i in kept]
        for row in rows:
            # The code stays; its name beside it reads as the dashboard and metadata.json say it.
            if "label" in row and LABEL_NAME not in row:
                row[LABEL_NAME] = _LABEL_NAMES.get(row["label"], Label.UNDETERMINED.display)
        if any(LATENT in row for row in rows):
            raise ValueError(f"Metadata may not have a field named {LATENT!r}: the latent vector goes there.")
        vectors = np.ascontiguousarray(latents[kept])
        self._latent_size = vectors.shape[1]
        if self.layout == "parquet":
            name = f"part-{self._run}-r{rank:05d}-d{loader}-b{batch_idx:07d}.parquet"
            self._write_shard(self.storage_path / name, rows, vectors)
            self._shards.append({"file": name, "rows": len(rows)})
        else:
            for row, vector in zip(rows, vectors):
                self._write_item(row, vector)
        for row in rows:
            name = _LABEL_NAMES.get(row.get("label"))
            if name is not None:
                self._counts[name] += 1
        self._total += len(rows)

    @staticmethod
    def _write_shard(path: Path, rows: list[dict], vectors: np.ndarray) -> None:
        columns: dict[str, pa.Array] = {}
        for key in dict.fromkeys(key for row in rows for key in row):
            try:
                columns[key] = pa.array([row.get(key) for row in rows])
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                raise ValueError(f"Metadata field {key!r} mixes types across records; it cannot be one column.") from None
        columns[LATENT] = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), vectors.shape[1])
        table = pa.table(columns)
        _write(path, lambda handle: pq.write_table(table, handle))

    def _write_item(self, row: dict, vector: np.ndarray) -> None:
        index = row.get("id")
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise ValueError(
                f"The indexed layout places records by their metadata 'id', a non-negative integer; got {index!r}."
            )
        base = self.storage_path / item_path(index, "npz").lstrip("/")
        # Metadata first: a record's .npz only ever appears once its .json is complete.
        text = json.dumps(row, sort_keys=True, default=datetime.isoformat).encode()
        _write(base.with_suffix(".json"), lambda handle: handle.write(text))
        _write(base, lambda handle: np.savez(handle, latent=vector))

    def _write_metadata(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        local = [self._counts[name] for name in _LABEL_NAMES.values()]
        local += [self._total, self._latent_size or 0]
        counts = torch.tensor(local, dtype=torch.long, device=pl_module.device)
        total = trainer.strategy.reduce(counts[:4], reduce_op="sum")
        latent_size = trainer.strategy.reduce(counts[4:], reduce_op="max")
        summed = [int(value) for value in total.tolist()]
        info = {name: summed[i] for i, name in enumerate(_LABEL_NAMES.values())}
        info.update(
            total=summed[3],
            latent_size=int(latent_size.item()),
            layout=self.layout,
            run=self._run,
            filtered=self.filtered,
            evaluate=self.evaluate,
            world_size=trainer.world_size,
            device=pl_module.device.type,
            records_per_s=round(summed[3] / max(time.perf_counter() - self._started, 1e-9), 1),
        )
        info.update(self.provenance)
        if self.layout == "parquet":
            # Gathering also waits for every rank, so the listed shards are all on disk.
            shards = [shard for rank in _gather(trainer, self._shards) for shard in rank]
            info["shards"] = sorted(shards, key=lambda shard: shard["file"])
        text = json.dumps(info, indent=2).encode()
        # Every rank writes the same content; each rename is atomic, so the last one wins.
        _write(self.storage_path / METADATA_FILE, lambda handle: handle.write(text))


def _disk_error(path: Path, error: OSError) -> OSError:
    reason = error.strerror or (str(error).strip().splitlines() or [type(error).__name__])[0]
    return OSError(f"Cannot write {path}: {reason}; free some space or choose a folder you can write to.")


def _write(path: Path, write: Callable[[Any], Any]) -> None:
    """Write a file whole or not at all; a disk error names the file."""
    try:
        atomic_write(path, write)
    except OSError as error:
        raise _disk_error(path, error) from error


def _gather(trainer: "pl.Trainer", local: list) -> list[list]:
    """Every rank's ``local`` list, in rank order; only this one outside distributed runs."""
    if trainer.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
        gathered: list = [None] * torch.distributed.get_world_size()
        # Lightning's strategies run their collectives on the default (world) group too.
        torch.distributed.all_gather_object(gathered, local)
        return gathered
    return [local]
