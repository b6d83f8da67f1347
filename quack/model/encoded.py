"""Writing latent vectors to disk during prediction, and reading them back.

Two layouts live under a storage directory:

``parquet`` (default)
    ``part-<run>-r<rank>-d<loader>-b<batch>.parquet`` shards, one per predicted batch and
    rank, each with the metadata columns and a ``latent`` column (fixed-size list of
    float32). pandas, pyarrow and DuckDB read them directly
    (``SELECT * FROM 'dir/part-*.parquet'``).
``indexed``
    One ``.npz`` file per record (array ``latent``, no pickled objects) placed by
    :func:`item_path` from the record's ``id``, with its metadata in a ``.json`` file of
    the same name beside it.

Both write ``metadata.json`` at the top, last: what the latents were made from when the
writer is told (``data_set``: its path, :attr:`~quack.data.datafolder.DataFolder.version` and a
content digest that survives a move; ``checkpoint``: its path, size, SHA-256 and the
digest of its tokenizer; see :func:`provenance` and :func:`check_provenance`), the counts of censored, undetermined and
uncensored records and the total written, summed over all ranks, and for Parquet every
rank's shards with their row counts. Every file is written under a temporary name and
then renamed, so readers never see a half-written file; and :func:`load_encoded` and
:func:`read_metadata` refuse output whose ``metadata.json`` is missing or lists shards or
records that are not all there, so an encode that was killed, or a shard deleted since,
is never read as if it were the whole.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from functools import lru_cache
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytorch_lightning as pl
import torch
import torch.distributed
from pytorch_lightning.callbacks import BasePredictionWriter

from quack.atomic import atomic_write
from quack.schema import Label

__all__ = ["item_path", "AutoencoderWriter", "load_encoded", "read_metadata", "read_latents", "provenance",
           "find_data_set", "check_provenance", "is_encoded", "LAYOUTS"]

LAYOUTS = ("parquet", "indexed")
METADATA_FILE = "metadata.json"
LATENT = "latent"

# metadata.json counts the records of each label under its display name, in this order.
_LABEL_NAMES = {label: label.display for label in (Label.CENSORED, Label.UNDETERMINED, Label.UNCENSORED)}


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
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ValueError(
        f"Metadata field {name!r} holds a {type(value).__name__}; only numbers, strings, booleans and None can be written."
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
        What the latents were made from (:func:`provenance`: ``data_set`` and
        ``checkpoint``), recorded in ``metadata.json`` so a reader can check it.

    Notes
    -----
    Writing Parquet again into the same directory supersedes the earlier run: shard
    names carry a run name, ``metadata.json`` lists the run's shards, and
    :func:`load_encoded` reads only those. The indexed layout replaces each record's files
    in place, so records an earlier run wrote and a later one skipped stay; write a
    different selection to a fresh directory.
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
        text = json.dumps(row, sort_keys=True).encode()
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


def read_metadata(path: str | os.PathLike) -> dict:
    """The ``metadata.json`` of a written output directory, once the output is checked whole.

    Parameters
    ----------
    path : str or os.PathLike
        The output directory; ``~`` is expanded.

    Returns
    -------
    dict
        Counts ``censored``, ``undetermined``, ``uncensored`` and ``total``, the
        ``layout``, ``run``, ``latent_size`` of the output, and for Parquet its ``shards``
        (``file`` and ``rows`` of each).

    Raises
    ------
    ValueError
        When the directory does not exist, holds no encoded output, or is incomplete: no
        ``metadata.json`` (the encode did not finish), or a listed shard missing or
        holding another number of rows, or fewer indexed records than listed.
    """
    root = Path(path).expanduser()
    info = _metadata(root)
    if info.get("layout") == "indexed":
        found = sum(1 for _ in root.rglob("*.npz"))
        _check_records(root, info, found)
    else:
        for shard in _listed_shards(root, info):
            _check_shard(root, shard, _shard(root, shard, lambda file: pq.ParquetFile(file).metadata.num_rows))
    return info


def load_encoded(path: str | os.PathLike) -> pd.DataFrame:
    """Read latent vectors written by :class:`AutoencoderWriter`, in either layout.

    Parameters
    ----------
    path : str or os.PathLike
        The writer's ``storage_path``; ``~`` is expanded.

    Returns
    -------
    pandas.DataFrame
        One row per record: the metadata columns and a ``latent`` column holding float32
        NumPy arrays, ordered by ``id`` when there is one. Only the Parquet shards
        ``metadata.json`` lists are read.

    Raises
    ------
    ValueError
        When the directory does not exist, holds no encoded output, or is incomplete (see
        :func:`read_metadata`); the message names the directory and how to write it again.
    """
    root = Path(path).expanduser()
    info = _metadata(root)
    if info.get("layout") == "indexed":
        frames = _read_items(root)
        _check_records(root, info, sum(len(frame) for frame in frames))
    else:
        frames = _read_shards(root, _listed_shards(root, info))
    frames = [frame for frame in frames if len(frame)]
    if not frames:
        return pd.DataFrame({LATENT: pd.Series([], dtype=object)})
    table = pd.concat(frames, ignore_index=True)
    if "id" in table.columns:
        table = table.sort_values("id", kind="stable", ignore_index=True)
    return table


def _again(root: Path) -> str:
    return f"encode it again with `quack encode --out {root} --overwrite`"


def _metadata(root: Path) -> dict:
    """The output's ``metadata.json``, or the sentence saying why there is none to trust."""
    if not root.is_dir():
        raise ValueError(f"Encoded output directory {root} does not exist; write one with `quack encode --out {root}`.")
    file = root / METADATA_FILE
    if not file.is_file():
        if next(root.glob("part-*.parquet"), None) is None and next(root.rglob("*.npz"), None) is None:
            raise ValueError(f"No encoded output at {root}; write one with `quack encode --out {root}`.")
        raise ValueError(
            f"{root} is incomplete: it has no {METADATA_FILE}, so the encode that wrote it did not finish; {_again(root)}."
        )
    try:
        info = json.loads(file.read_text(encoding="utf-8"))
        if not isinstance(info, dict):
            raise ValueError(f"a JSON {type(info).__name__}, not an object")
    except (OSError, ValueError) as error:
        raise ValueError(f"{root} is incomplete: its {METADATA_FILE} cannot be read ({error}); {_again(root)}.") from None
    return info


def _listed_shards(root: Path, info: dict) -> list[dict]:
    """The shards ``metadata.json`` lists; for output written before shards were listed, its run's."""
    if "shards" not in info:
        run = info.get("run")
        pattern = f"part-{run}-*.parquet" if run else "part-*.parquet"
        return [{"file": file.name, "rows": None} for file in sorted(root.glob(pattern))]
    shards = info["shards"]
    # Only plain names of files in the folder, so that metadata.json cannot point elsewhere.
    if not isinstance(shards, list) or not all(
        isinstance(shard, dict) and isinstance(shard.get("file"), str) and Path(shard["file"]).name == shard["file"]
        and isinstance(shard.get("rows"), int) for shard in shards
    ):
        raise ValueError(f"{root} is incomplete: its {METADATA_FILE} does not list its shards as quack writes them; "
                         f"{_again(root)}.")
    return shards


def _shard(root: Path, shard: dict, read: Callable[[Path], Any]) -> Any:
    """``read`` applied to a listed shard; a missing or unreadable one makes the output incomplete."""
    try:
        return read(root / shard["file"])
    except FileNotFoundError:
        raise ValueError(f"{root} is incomplete: its shard {shard['file']} is missing; {_again(root)}.") from None
    except (OSError, pa.ArrowException) as error:
        raise ValueError(
            f"{root} is incomplete: its shard {shard['file']} cannot be read ({error}); {_again(root)}."
        ) from None


def _check_shard(root: Path, shard: dict, rows: int) -> None:
    if shard["rows"] is not None and rows != shard["rows"]:
        raise ValueError(
            f"{root} is incomplete: its shard {shard['file']} holds {rows} rows where {METADATA_FILE} lists "
            f"{shard['rows']}; {_again(root)}."
        )


def _check_records(root: Path, info: dict, found: int) -> None:
    # An earlier run into the same folder may have left more records, never fewer.
    if found < info.get("total", 0):
        raise ValueError(
            f"{root} is incomplete: it holds {found} of the {info['total']} records its {METADATA_FILE} lists; "
            f"{_again(root)}."
        )


def _read_shards(root: Path, shards: list[dict]) -> list[pd.DataFrame]:
    frames = []
    for shard in shards:
        table = _shard(root, shard, pq.read_table)
        _check_shard(root, shard, table.num_rows)
        column = table.column(LATENT).combine_chunks()
        vectors = np.asarray(column.flatten(), dtype=np.float32).reshape(len(column), column.type.list_size)
        frame = table.drop_columns([LATENT]).to_pandas()
        frame[LATENT] = list(vectors)
        frames.append(frame)
    return frames


def _read_items(root: Path) -> list[pd.DataFrame]:
    rows, vectors = [], []
    for file in sorted(root.rglob("*.npz")):
        with np.load(file, allow_pickle=False) as archive:
            vectors.append(archive[LATENT].astype(np.float32, copy=False))
        rows.append(json.loads(file.with_suffix(".json").read_text()))
    if not rows:
        return []
    frame = pd.DataFrame(rows)
    frame[LATENT] = vectors
    return [frame]


# ----------------------------------------------------------------------------------
# Provenance: which data set and checkpoint made an encoded folder.


def is_encoded(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder of encoded output (it holds ``metadata.json``)."""
    root = Path(path).expanduser()
    return root.is_dir() and (root / METADATA_FILE).is_file()


def _content(folder) -> str:
    """A digest of a data set's content that does not change when the folder is moved or copied."""
    digest = hashlib.sha1()
    for part in folder.parts:
        name = part.name if folder.is_parted else ""
        digest.update(f"{name}\0{(part / 'rows.parquet').stat().st_size}\0".encode())
        digest.update((part / "info.json").read_bytes())
        digest.update((part / "tokenizer.json").read_bytes())
    return digest.hexdigest()[:16]


@lru_cache(maxsize=16)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checkpoint_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a checkpoint file, computed once per file version."""
    real = Path(path).expanduser().resolve()
    status = real.stat()
    return _file_sha256(str(real), status.st_size, status.st_mtime_ns)


def tokenizer_digest(tokenizer_json: str | None) -> str | None:
    """A short digest of a tokenizer's JSON (None without one)."""
    return None if tokenizer_json is None else hashlib.sha1(tokenizer_json.encode()).hexdigest()[:16]


def provenance(data_dir: str | os.PathLike, checkpoint: str | os.PathLike | None = None,
               tokenizer_json: str | None = None) -> dict:
    """What an encoded folder records of the data set and checkpoint that made it.

    Parameters
    ----------
    data_dir : path
        The data set encoded (one folder or a folder of parts).
    checkpoint : path, optional
        The checkpoint file that encoded it.
    tokenizer_json : str, optional
        The tokenizer the records were encoded with (the checkpoint's).

    Returns
    -------
    dict
        ``data_set`` (``path``, ``version``, ``content``, ``rows``) and ``checkpoint``
        (``path``, ``size``, ``mtime_ns``, ``sha256`` when a file is given, ``tokenizer``).
    """
    from quack.data.datafolder import DataFolder

    folder = DataFolder.open(data_dir)
    record: dict[str, Any] = {"data_set": {"path": str(folder.path.resolve()), "version": folder.version,
                                           "content": _content(folder), "rows": folder.n_rows}}
    model: dict[str, Any] = {"tokenizer": tokenizer_digest(tokenizer_json)}
    if checkpoint is not None:
        real = Path(checkpoint).expanduser().resolve()
        status = real.stat()
        model.update(path=str(real), size=status.st_size, mtime_ns=status.st_mtime_ns, sha256=checkpoint_sha256(real))
    record["checkpoint"] = model
    return record


def _recorded(root: Path, info: dict) -> dict:
    data_set = info.get("data_set")
    if not isinstance(data_set, dict) or not isinstance(data_set.get("path"), str):
        raise ValueError(
            f"The encoded folder {root} does not record the data set it was made from (it was written before quack "
            f"recorded it); encode it again with `quack encode --data DATA_SET --out {root} --overwrite`."
        )
    return data_set


def _same_data_set(candidate: Path, recorded: dict) -> bool:
    from quack.data.datafolder import DataFolder

    try:
        return _content(DataFolder.open(candidate)) == recorded.get("content")
    except (OSError, ValueError):
        return False


def find_data_set(path: str | os.PathLike, given: str | os.PathLike | None = None,
                  allowed: Callable[[Path], bool] | None = None) -> Path:
    """The data set an encoded folder was made from: ``given``, else the recorded path, else one beside it.

    A data set moved or copied along with the encoded folder is found beside it (a
    sibling folder with the same content) when the recorded path no longer holds it;
    only the folders ``allowed`` accepts are looked into.

    Raises
    ------
    ValueError
        One sentence naming the encoded folder when it records no data set or the data
        set is nowhere to be found.
    """
    root = Path(path).expanduser()
    recorded = _recorded(root, _metadata(root))
    if given is not None:
        return Path(given).expanduser()
    at = Path(recorded["path"])
    if at.is_dir():
        return at
    siblings = sorted(p for p in root.parent.iterdir() if p.is_dir() and p != root)
    for sibling in (p for p in siblings if allowed is None or allowed(p)):
        if _same_data_set(sibling, recorded):
            return sibling
    raise ValueError(
        f"The encoded folder {root} was made from the data set {at}, which is not there, and no folder beside "
        f"{root.name} holds it; put that data set folder beside the encoded folder and open it again."
    )


def check_provenance(path: str | os.PathLike, data_dir: str | os.PathLike,
                     checkpoint: str | os.PathLike | None = None, checkpoint_found: bool = True) -> dict:
    """Check that an encoded folder's latents belong to a data set (and a checkpoint); its metadata when they do.

    Only output of every record is accepted: latents kept for the labelled or the
    undetermined records alone (``--filtered``/``--evaluate``) do not place every record.

    Parameters
    ----------
    path : path
        The encoded folder.
    data_dir : path
        The data set it should belong to (:func:`find_data_set`).
    checkpoint : path, optional
        The checkpoint it should have been encoded by.
    checkpoint_found : bool
        Whether the recorded checkpoint was looked for and found on this machine (or
        another was chosen); when not, a mismatch says to copy the recorded one here.

    Raises
    ------
    ValueError
        One sentence naming the encoded folder, what differs and what to do: output of
        some records only, a data set changed since it was encoded, or a checkpoint that
        is not the one that encoded it.
    """
    from quack.data.datafolder import DataFolder

    root = Path(path).expanduser()
    info = _metadata(root)
    recorded = _recorded(root, info)
    folder = DataFolder.open(data_dir)
    again = f"`quack encode --data {folder.path} --checkpoint CHECKPOINT --out {root} --overwrite`"
    if info.get("filtered") or info.get("evaluate"):
        kept = "labelled" if info.get("filtered") else "undetermined"
        raise ValueError(
            f"The encoded folder {root} holds the latents of the {kept} records only, and the dashboard maps every "
            f"record; encode all of them with {again.replace(' --overwrite', '')} into a new folder."
        )
    same = recorded.get("version") == folder.version or recorded.get("content") == _content(folder)
    if not same or int(recorded.get("rows", -1)) != folder.n_rows or int(info.get("total", -1)) != folder.n_rows:
        raise ValueError(
            f"The encoded folder {root} was made from the data set {recorded['path']} as it was then "
            f"({int(recorded.get('rows', 0)):,} records), and the data set {folder.path} ({folder.n_rows:,} records) "
            f"is not that one or has changed since; encode it again with {again}."
        )
    model = info.get("checkpoint") if isinstance(info.get("checkpoint"), dict) else {}
    if checkpoint is not None and model.get("sha256") and checkpoint_sha256(checkpoint) != model["sha256"]:
        name = Path(model.get("path") or "the recorded checkpoint").name
        if not checkpoint_found:
            raise ValueError(
                f"The encoded folder {root} was encoded by the checkpoint {name}, which is not on this server; copy it "
                f"beside the encoded folder and open the folder again, or encode it again with "
                f"{again.replace('CHECKPOINT', str(checkpoint))}."
            )
        raise ValueError(
            f"The encoded folder {root} was encoded by the checkpoint {name} (SHA-256 {model['sha256'][:12]}…), "
            f"not by the session's checkpoint {Path(checkpoint).name}; choose {name} on the Model page, or encode it "
            f"again with {again.replace('CHECKPOINT', str(checkpoint))}."
        )
    return info


def recorded_checkpoint(path: str | os.PathLike, also: Sequence[str | os.PathLike] = ()) -> Path | None:
    """The checkpoint file that encoded a folder, when it is on this machine, else None.

    Looked for at its recorded path, then beside the encoded folder under the same name,
    then among ``also``; a file is taken only when its SHA-256 is the recorded one.
    """
    root = Path(path).expanduser()
    try:
        model = _metadata(root).get("checkpoint")
    except ValueError:
        return None
    if not isinstance(model, dict) or not model.get("sha256"):
        return None
    named = Path(model.get("path") or "")
    beside = [named, root.parent / named.name, root / named.name] if named.name else []
    candidates = [*beside, *map(Path, also)]
    for candidate in candidates:
        try:
            if candidate.is_file() and candidate.stat().st_size == model.get("size") \
                    and checkpoint_sha256(candidate) == model["sha256"]:
                return candidate.resolve()
        except OSError:
            continue
    return None


def read_latents(path: str | os.PathLike, n_rows: int,
                 progress: Callable[[int, int], None] | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """The latent vectors of an encoded folder as one (N, H) float32 array in record-id order, and the losses.

    Only the ``id``, ``latent`` and ``reconstruction_loss`` columns are read, a shard (or
    a record) at a time.

    Parameters
    ----------
    path : path
        The encoded folder, either layout.
    n_rows : int
        The number of records of its data set: every id below it must be there once.
    progress : callable, optional
        Called as ``progress(done, total)`` as records are read.

    Returns
    -------
    tuple
        (latents (N, H) float32, losses (N,) float32 or None when the folder has none).

    Raises
    ------
    ValueError
        When the folder is incomplete or does not hold one latent for every record.
    """
    root = Path(path).expanduser()
    info = read_metadata(root)
    size = int(info.get("latent_size") or 0)
    latents = np.zeros((n_rows, size), dtype=np.float32)
    loss = np.full(n_rows, np.nan, dtype=np.float32)
    seen = np.zeros(n_rows, dtype=bool)
    has_loss = False
    done = 0

    def place(ids: np.ndarray, vectors: np.ndarray, losses: np.ndarray | None) -> None:
        nonlocal done, has_loss
        if len(ids) and (ids.min() < 0 or ids.max() >= n_rows or seen[ids].any()):
            raise ValueError(
                f"The encoded folder {root} holds latents of records its data set of {n_rows:,} records does not "
                f"have, or twice; {_again(root)}."
            )
        seen[ids] = True
        latents[ids] = vectors
        if losses is not None:
            has_loss = True
            loss[ids] = losses
        done += len(ids)
        if progress is not None:
            progress(min(done, n_rows), n_rows)

    if info.get("layout") == "indexed":
        for file in root.rglob("*.npz"):
            if not file.stem.isdigit():
                continue
            with np.load(file, allow_pickle=False) as archive:
                vector = archive[LATENT].astype(np.float32, copy=False)
            extra = json.loads(file.with_suffix(".json").read_text()) if file.with_suffix(".json").is_file() else {}
            value = extra.get("reconstruction_loss")
            place(np.array([int(file.stem)]), vector[None, :], None if value is None else np.array([value], np.float32))
    else:
        for shard in _listed_shards(root, info):
            names = pq.read_schema(root / shard["file"]).names
            wanted = ["id", LATENT] + (["reconstruction_loss"] if "reconstruction_loss" in names else [])
            table = _shard(root, shard, lambda file: pq.read_table(file, columns=wanted))
            column = table.column(LATENT).combine_chunks()
            vectors = np.asarray(column.flatten(), dtype=np.float32).reshape(len(column), size)
            losses = table.column("reconstruction_loss").to_numpy().astype(np.float32) if len(wanted) == 3 else None
            place(table.column("id").to_numpy().astype(np.int64), vectors, losses)
    if not seen.all():
        raise ValueError(
            f"The encoded folder {root} holds latents of {int(seen.sum()):,} of its data set's {n_rows:,} records; "
            f"{_again(root)}."
        )
    return latents, (loss if has_loss else None)
