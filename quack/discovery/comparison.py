"""Two periods of a data set compared end to end, and the comparison written as Parquet or JSON.

:func:`compare` reads a data set's records (and, given its encoded folder, their latents),
compares two periods with :mod:`quack.discovery.changes` and
:mod:`quack.discovery.new_templates`, and returns a :class:`Comparison`;
:func:`write_comparison` writes it, so a cluster job can run it after each scan.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from quack.atomic import atomic_write
from quack.data.datafolder import DataFolder
from quack.discovery.changes import (LEVELS, TIME_UNKNOWN, compare_periods, families_appeared, parse_period,
                                     scan_times, time_known)
from quack.discovery.new_templates import new_templates, snippets
from quack.schema import columns

__all__ = ["Comparison", "records_frame", "compare", "compare_data_sets", "write_comparison", "top_changes", "OUTPUT_SUFFIXES"]

#: What :func:`write_comparison` writes: one JSON file, or a Parquet file a table.
OUTPUT_SUFFIXES = (".json", ".parquet")


@dataclass
class Comparison:
    """What changed between two periods of a data set.

    Attributes
    ----------
    before, after : str
        The periods as given.
    changes : pandas.DataFrame
        :func:`quack.discovery.changes.compare_periods`, the largest change first.
    families : pandas.DataFrame
        :func:`quack.discovery.changes.families_appeared`.
    templates : pandas.DataFrame or None
        :func:`quack.discovery.new_templates.new_templates` with a ``snippet`` column; None
        without latents.
    notes : list of str
        Sentences to show once (time unknown, no latents).
    """

    before: str
    after: str
    changes: pd.DataFrame
    families: pd.DataFrame
    templates: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)


def records_frame(data_dir: str | os.PathLike) -> pd.DataFrame:
    """The metadata columns of a data set's records, strings as categoricals, in id order."""
    table = DataFolder.open(data_dir).read_table(list(columns("metadata")))
    return table.to_pandas(strings_to_categorical=True)


def compare(
    data_dir: str | os.PathLike,
    before: str,
    after: str,
    encoded_dir: str | os.PathLike | None = None,
    levels: Sequence[str] = LEVELS,
    k: int = 40,
    min_records: int = 10,
) -> Comparison:
    """Compare two periods of a data set.

    Parameters
    ----------
    data_dir : path
        The data set (written by ``quack ingest``).
    before, after : str
        Periods as :func:`quack.discovery.changes.parse_period` reads them.
    encoded_dir : path, optional
        The data set's encoded folder; with it, the new templates are found too.
    levels, k, min_records
        As :func:`~quack.discovery.changes.compare_periods` and
        :func:`~quack.discovery.new_templates.new_templates` take them.

    Returns
    -------
    Comparison

    Raises
    ------
    ValueError
        One sentence: a data set without times, a period naming no scan or holding no
        records, or latents that do not belong to the data set.
    """
    frame = records_frame(data_dir)
    if not time_known(frame):
        raise ValueError(TIME_UNKNOWN)
    scans = scan_times(frame)["scan"].astype(str).tolist()
    first, second = parse_period(before, scans), parse_period(after, scans)
    was, now = first.mask(frame), second.mask(frame)
    result = Comparison(before, after, compare_periods(frame, was, now, levels), families_appeared(frame, was, now))
    if encoded_dir is None:
        result.notes.append("No encoded folder was given, so new templates were not looked for; give --encoded.")
        return result
    from quack.model.provenance import check_provenance
    from quack.model.reader import read_latents

    check_provenance(encoded_dir, data_dir)
    latents, _ = read_latents(encoded_dir, len(frame))
    result.templates = _templates(latents, frame, was, now, k, min_records, data_dir)
    return result


def _templates(latents: np.ndarray, frame: pd.DataFrame, was: np.ndarray, now: np.ndarray, k: int, min_records: int,
               data_dir: str | os.PathLike, first_id: int = 0) -> pd.DataFrame:
    """The new templates of ``now``, each with its example's snippet read from ``data_dir``.

    Rows of ``frame`` from ``first_id`` on are ``data_dir``'s records from 0: an example is
    given by its id there.
    """
    templates, _ = new_templates(latents, frame, was, now, k=k, min_records=min_records)
    templates["example"] = templates["example"] - first_id
    texts = snippets(str(data_dir), templates["example"].tolist())
    templates["snippet"] = [texts.get(int(i), "") for i in templates["example"]]
    return templates


def compare_data_sets(
    earlier: str | os.PathLike,
    later: str | os.PathLike,
    encoded: Sequence[str | os.PathLike] | None = None,
    levels: Sequence[str] = LEVELS,
    k: int = 40,
    min_records: int = 10,
) -> Comparison:
    """Compare two data sets (two scans ingested apart), the earlier one the first period, the later the second.

    Parameters
    ----------
    earlier, later : path
        The data sets.
    encoded : (path, path), optional
        Their encoded folders, by one checkpoint; with them, the new templates are found too.
    levels, k, min_records
        As :func:`compare` takes them.

    Raises
    ------
    ValueError
        One sentence: encoded folders that are not two, or not of these data sets, or
        encoded by different checkpoints, whose latents cannot be compared.
    """
    parts = [records_frame(earlier), records_frame(later)]
    sizes = [len(part) for part in parts]
    frame = pd.concat([part.astype({name: object for name in part.columns
                                    if isinstance(part[name].dtype, pd.CategoricalDtype)}) for part in parts],
                      ignore_index=True)
    frame = frame.astype({name: "category" for name in frame.columns if frame[name].dtype == object})
    frame["id"] = np.arange(len(frame), dtype=np.int64)
    was = np.arange(len(frame)) < sizes[0]
    now = ~was
    names = (str(earlier), str(later))
    result = Comparison(names[0], names[1], compare_periods(frame, was, now, levels),
                        families_appeared(frame, was, now))
    if not encoded:
        result.notes.append("No encoded folders were given, so new templates were not looked for; give --encoded "
                            "with one folder for each data set.")
        return result
    if len(encoded) != 2:
        raise ValueError(f"Comparing two data sets takes two encoded folders, one for each, in the same order; "
                         f"got {len(encoded)}.")
    from quack.model.provenance import check_provenance
    from quack.model.reader import read_latents

    models = [check_provenance(folder, data).get("checkpoint") or {}
              for folder, data in zip(encoded, (earlier, later))]
    digests = [model.get("sha256") for model in models]
    if not all(digests) or digests[0] != digests[1]:
        raise ValueError(f"The encoded folders {encoded[0]} and {encoded[1]} were not encoded by one checkpoint, so "
                         "their latents cannot be compared; encode both data sets with the same checkpoint.")
    latents = np.concatenate([read_latents(folder, size)[0] for folder, size in zip(encoded, sizes)])
    # Every example is of the later data set, whose records follow the earlier one's.
    result.templates = _templates(latents, frame, was, now, k, min_records, later, first_id=sizes[0])
    return result


def _records(frame: pd.DataFrame | None) -> list[dict]:
    if frame is None:
        return []
    plain = frame.copy()
    for name in plain.columns:
        if pd.api.types.is_datetime64_any_dtype(plain[name]):
            plain[name] = plain[name].map(lambda t: t.isoformat() if pd.notna(t) else None)
    return json.loads(plain.to_json(orient="records"))


def write_comparison(result: Comparison, path: str | os.PathLike) -> list[Path]:
    """Write a comparison: one ``.json`` file, or ``.parquet`` files (changes, then families and templates beside it).

    Returns
    -------
    list of Path
        The files written, each whole (written under a temporary name, then renamed).
    """
    out = Path(path).expanduser()
    if out.suffix not in OUTPUT_SUFFIXES:
        raise ValueError(f"{out} must end in .json or .parquet; give a file name with one of them.")
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".json":
        document = {"before": result.before, "after": result.after, "notes": result.notes,
                    "changes": _records(result.changes), "families": _records(result.families),
                    "templates": _records(result.templates)}
        text = (json.dumps(document, indent=1) + "\n").encode()
        return [atomic_write(out, lambda handle: handle.write(text))]
    written = []
    tables = {"": result.changes, ".families": result.families, ".templates": result.templates}
    for part, frame in tables.items():
        if frame is None:
            continue
        target = out.with_name(out.stem + part + out.suffix)
        table = pa.Table.from_pandas(frame.reset_index(drop=True), preserve_index=False)
        table = table.replace_schema_metadata({**(table.schema.metadata or {}),
                                               b"quack.periods": json.dumps([result.before, result.after]).encode()})
        written.append(atomic_write(target, lambda handle, t=table: pq.write_table(t, handle)))
    return written


def top_changes(changes: pd.DataFrame, top: int) -> pd.DataFrame:
    """The ``top`` largest changes as a table to print: shares in per cent."""
    shown = changes.head(top).copy()
    for name in ("share_before", "share_after", "difference"):
        shown[name] = (100 * shown[name]).round(1)
    shown["score"] = shown["score"].round(2)
    return shown[["level", "group", "share", "count_before", "total_before", "share_before", "count_after",
                  "total_after", "share_after", "difference", "score"]]

