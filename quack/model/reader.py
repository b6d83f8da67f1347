"""Reading encoded output back: its metadata, its latents, and the check that it is whole.

:func:`load_encoded` and :func:`read_metadata` read either layout
:class:`~quack.model.writer.AutoencoderWriter` writes, and refuse output whose
``metadata.json`` is missing or lists shards or records that are not all there, so an
encode that was killed, or a shard deleted since, is never read as if it were the whole.
:func:`read_latents` reads only the latents (and losses) of a folder that holds one for
every record of its data set.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from quack.data.rowchecks import parquet_rows
from quack.jsonfiles import read_json
from quack.model.writer import LATENT, LOSS, METADATA_FILE

__all__ = ["read_metadata", "load_encoded", "read_latents", "is_encoded", "holds_loss", "unchecked_metadata"]

# metadata.json lists one entry a shard: a few MB for the largest encodes.
_METADATA_BYTES = 64 * 2**20
# An indexed record's .json holds its metadata columns.
_RECORD_BYTES = 2**20


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
    info = unchecked_metadata(root)
    if info.get("layout") == "indexed":
        found = sum(1 for _ in root.rglob("*.npz"))
        _check_records(root, info, found)
    else:
        shards = _listed_shards(root, info)
        _check_total(root, info, shards)
        for shard in shards:
            _check_shard(root, shard, _shard(root, shard, lambda file: parquet_rows(file, _again(root))))
    return info


def load_encoded(path: str | os.PathLike) -> pd.DataFrame:
    """Read latent vectors written by :class:`~quack.model.writer.AutoencoderWriter`, in either layout.

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
    info = unchecked_metadata(root)
    if info.get("layout") == "indexed":
        frames = _read_items(root)
        _check_records(root, info, sum(len(frame) for frame in frames))
    else:
        shards = _listed_shards(root, info)
        _check_total(root, info, shards)
        frames = _read_shards(root, shards)
    frames = [frame for frame in frames if len(frame)]
    if not frames:
        return pd.DataFrame({LATENT: pd.Series([], dtype=object)})
    table = pd.concat(frames, ignore_index=True)
    if "id" in table.columns:
        table = table.sort_values("id", kind="stable", ignore_index=True)
    return table


def _again(root: Path) -> str:
    return f"encode it again with `quack encode --out {root} --overwrite`"


def unchecked_metadata(path: str | os.PathLike) -> dict:
    """An encoded folder's ``metadata.json`` as written, its shards and records not checked.

    Parameters
    ----------
    path : str or os.PathLike
        The encoded folder; ``~`` is expanded.

    Returns
    -------
    dict
        The parsed ``metadata.json``.

    Raises
    ------
    ValueError
        The sentence saying why there is no ``metadata.json`` to trust: no folder, no
        encoded output, an encode that did not finish, or a file that cannot be read.
    """
    root = Path(path).expanduser()
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
        info = read_json(file, max_bytes=_METADATA_BYTES)
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


def _check_total(root: Path, info: dict, shards: list[dict]) -> None:
    """Refuse a metadata.json whose shards do not add up to its total, its counts per label or its data set.

    A listing that leaves a shard out would otherwise be read as the whole output.
    """
    if "shards" not in info:
        return  # written before shards were listed with their rows
    listed = sum(shard["rows"] for shard in shards)
    counts = [info.get(name) for name in ("censored", "undetermined", "uncensored")]
    total = info.get("total")
    by_label = sum(counts) if all(isinstance(n, int) for n in counts) else total
    recorded = info.get("data_set") if isinstance(info.get("data_set"), dict) else {}
    whole = not info.get("filtered") and not info.get("evaluate") and isinstance(recorded.get("rows"), int)
    if listed != total or by_label != total or (whole and total != recorded["rows"]):
        raise ValueError(
            f"{root} is incomplete or was altered: its {METADATA_FILE} lists shards of {listed:,} rows, a total of "
            f"{total} records, {by_label} by label"
            + (f" and a data set of {recorded['rows']:,} rows" if whole else "") + f"; {_again(root)}."
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
        rows.append(_record(root, file.with_suffix(".json")))
    if not rows:
        return []
    frame = pd.DataFrame(rows)
    frame[LATENT] = vectors
    return [frame]


def _record(root: Path, file: Path) -> dict:
    """The metadata of one record of the indexed layout; a damaged one makes the output unreadable."""
    try:
        record = read_json(file, max_bytes=_RECORD_BYTES)
    except (OSError, ValueError) as error:
        raise ValueError(f"The encoded record {file} cannot be read ({error}); {_again(root)}.") from None
    if not isinstance(record, dict):
        raise ValueError(f"The encoded record {file} is a JSON {type(record).__name__}, not an object; "
                         f"{_again(root)}.")
    return record


def is_encoded(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder of encoded output (it holds ``metadata.json``)."""
    root = Path(path).expanduser()
    return root.is_dir() and (root / METADATA_FILE).is_file()


def holds_loss(path: str | os.PathLike) -> bool:
    """Whether an encoded folder holds each record's reconstruction loss, from its first record alone.

    ``quack encode`` writes the losses by default; folders written with ``--no-loss``, or
    before it wrote them, have none. Every record of one folder was written alike.

    Raises
    ------
    ValueError
        As :func:`unchecked_metadata`, when the folder is not encoded output.
    """
    root = Path(path).expanduser()
    info = unchecked_metadata(root)
    if info.get("layout") == "indexed":
        first = next((file for file in root.rglob("*.json") if file.stem.isdigit()), None)
        return first is not None and LOSS in _record(root, first)
    shards = _listed_shards(root, info)
    return bool(shards) and LOSS in _shard(root, shards[0], lambda file: pq.read_schema(file).names)


def read_latents(path: str | os.PathLike, n_rows: int,
                 progress: Callable[[int, int], None] | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """The latent vectors of an encoded folder as one (N, H) float32 array in record-id order, and the losses.

    Only the ``id``, ``latent`` and :data:`~quack.model.writer.LOSS` columns are read, a shard (or
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
            extra = _record(root, file.with_suffix(".json")) if file.with_suffix(".json").is_file() else {}
            value = extra.get(LOSS)
            place(np.array([int(file.stem)]), vector[None, :], None if value is None else np.array([value], np.float32))
    else:
        for shard in _listed_shards(root, info):
            names = pq.read_schema(root / shard["file"]).names
            wanted = ["id", LATENT] + ([LOSS] if LOSS in names else [])
            table = _shard(root, shard, lambda file: pq.read_table(file, columns=wanted))
            column = table.column(LATENT).combine_chunks()
            vectors = np.asarray(column.flatten(), dtype=np.float32).reshape(len(column), size)
            losses = table.column(LOSS).to_numpy().astype(np.float32) if len(wanted) == 3 else None
            place(table.column("id").to_numpy().astype(np.int64), vectors, losses)
    if not seen.all():
        raise ValueError(
            f"The encoded folder {root} holds latents of {int(seen.sum()):,} of its data set's {n_rows:,} records; "
            f"{_again(root)}."
        )
    return latents, (loss if has_loss else None)
