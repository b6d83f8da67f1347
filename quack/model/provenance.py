"""Provenance: which data set and checkpoint made an encoded folder, and the check that they still match.

:func:`provenance` is what :class:`~quack.model.writer.AutoencoderWriter` records in
``metadata.json``: the data set's path, :attr:`~quack.data.datafolder.DataFolder.version`
and a content digest that survives a move, and the checkpoint's path, size, SHA-256 and
the digest of its tokenizer. :func:`find_data_set`, :func:`check_provenance` and
:func:`recorded_checkpoint` use it to find and check what an encoded folder belongs to.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from quack.model.reader import unchecked_metadata

__all__ = ["checkpoint_sha256", "tokenizer_digest", "provenance", "find_data_set", "check_provenance",
           "recorded_checkpoint"]


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
    recorded = _recorded(root, unchecked_metadata(root))
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
    info = unchecked_metadata(root)
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
        model = unchecked_metadata(root).get("checkpoint")
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
