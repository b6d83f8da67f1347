"""The session's checkpoint, data set, records and labels, loaded once and shared between sessions.

Files are cached by their version (path, size, modification time), so a replaced file is
read again and an unchanged one never is. What is computed from the model (latents,
maps, attention) is in :mod:`dashboard.results`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import jobs, session, settings, sources, tables
from dashboard.jobs import Identity, Stamp, stamp
from quack.atomic import atomic_write
from quack.ingest import QuackInputError


@dataclass
class Session:
    """What the pages work on: the data set, the checkpoint, its model and their identity."""

    data_dir: Path
    checkpoint: Path
    model: Any
    identity: Identity


# ----------------------------------------------------------------------------------
# Checkpoint and data set.


@st.cache_resource(show_spinner="Loading the checkpoint…", max_entries=4)
def _load_model(path: str, size: int, mtime: int):
    from quack.encoding import load_checkpoint

    return load_checkpoint(path)


def load_model(path: str | Path | None = None):
    """The autoencoder of a checkpoint (the session's by default), loaded once per file version.

    Raises
    ------
    ValueError
        When the file is missing or not a quack checkpoint.
    """
    path = Path(path) if path is not None else session.checkpoint()
    if not path.is_file():
        raise ValueError(f"Checkpoint {path} does not exist; choose another on the Model page.")
    return _load_model(*stamp(path))


#: The Data page's box that keeps the rows of a damaged file read before the damage.
KEEP_PARTIAL_LABEL = "Keep the rows read before damage in a truncated file"

# How quack.ingest's refusal of a damaged file advises the command line; the dashboard's
# advice is the box above.
_CLI_KEEP_PARTIAL = "keep the rows read before the damage with `quack ingest --keep-partial`"


def dataset_dir(source: dict | None = None, model=None) -> Path:
    """The tokenized data set of a source (the session's) under a model's tokenizer, built on first use.

    An upload may hold at most :func:`dashboard.settings.upload_max_rows` measurements;
    the build stops once it has read more.

    Raises
    ------
    ValueError
        When the files cannot be read, hold no measurements, are damaged (unless the
        source keeps partial files) or, uploaded, hold too many measurements.
    """
    from dashboard.charts import markdown_text
    from quack.build import build_dataset

    source = source or session.source()
    model = model or load_model()
    out = settings.cache_root() / "datasets" / jobs.dataset_key(source, model.tokenizer_json)
    if (out / "rows.parquet").is_file():
        return out
    paths = sources.files_of(source)
    most = settings.upload_max_rows() if source["kind"] == "upload" else None
    stages = {"ingest": (0.0, 0.45, "Reading"), "train": (0.45, 0.55, "Training a tokenizer on"),
              "tokenize": (0.55, 1.0, "Tokenizing")}
    seen = {"ingest": 0}
    bar = st.progress(0.0, text=f"Reading {markdown_text(source['name'])}…")

    def progress(done: int, stage: str) -> None:
        if most is not None and stage == "ingest" and done > most:
            # Raised inside the build, which then removes its half-made folder.
            raise ValueError(
                f"{source['name']} holds more than {most:,} measurements, more than an upload may "
                "(QUACK_UPLOAD_MAX_ROWS); put the files in a folder this server shares and load them from there."
            )
        low, high, verb = stages.get(stage, (0.0, 1.0, "Preparing"))
        if stage == "ingest":
            seen["ingest"] = done
            share = 0.5  # the number of records is unknown until the files are read
        else:
            share = done / seen["ingest"] if seen["ingest"] else 0.0
        bar.progress(low + (high - low) * min(share, 1.0),
                     text=f"{verb} {markdown_text(source['name'])} — {done:,} records")

    try:
        build_dataset(paths, out, tokenizer=model.tokenizer, progress=progress, allow_empty=False,
                      keep_partial=bool(source.get("keep_partial")))
    except QuackInputError as error:
        advice = f"tick “{KEEP_PARTIAL_LABEL}” on the Data page and load it again"
        raise ValueError(str(error).replace(_CLI_KEEP_PARTIAL, advice)) from None
    finally:
        bar.empty()
    return out


def current() -> Session:
    """The session's data set and checkpoint, loading and building what is missing.

    Raises
    ------
    ValueError
        When the checkpoint or the data cannot be used (a sentence saying why).
    """
    path = session.checkpoint()
    model = load_model(path)
    data_dir = dataset_dir(model=model)
    return Session(data_dir, path, model, Identity.of(data_dir, path))


# ----------------------------------------------------------------------------------
# Records.


def _rows_stamp(data_dir: Path) -> Stamp:
    return stamp(Path(data_dir) / "rows.parquet")


@st.cache_resource(show_spinner=False, max_entries=8)
def _rows(path: str, size: int, mtime: int) -> pd.DataFrame:
    from quack.datafolder import read_rows
    from quack.schema import columns

    # The token lists are the largest column and no page shows them: not read at all.
    return read_rows(Path(path).parent, columns=[c for c in columns() if c != "tokens"])


def rows(data_dir: Path) -> pd.DataFrame:
    """The data set's records without their token lists; shared between sessions, never change it."""
    return _rows(*_rows_stamp(data_dir))


@st.cache_resource(show_spinner=False, max_entries=8)
def _texts(path: str, size: int, mtime: int) -> pd.Series:
    return tables.response_texts(_rows(path, size, mtime))


def texts(data_dir: Path) -> pd.Series:
    """Each record's response as a person reads it (:func:`dashboard.tables.response_texts`)."""
    return _texts(*_rows_stamp(data_dir))


@st.cache_resource(show_spinner=False, max_entries=8)
def _snippets(path: str, size: int, mtime: int) -> np.ndarray:
    return tables.snippets(_texts(path, size, mtime))


def snippets(data_dir: Path) -> np.ndarray:
    """Each record's response snippet, plain text."""
    return _snippets(*_rows_stamp(data_dir))


@st.cache_resource(show_spinner=False, max_entries=8)
def _bodies(path: str, size: int, mtime: int) -> pd.Series:
    return _rows(path, size, mtime)["body"].fillna("").astype(str)


def bodies(data_dir: Path) -> pd.Series:
    """Each record's payload text, the text fingerprints are matched against."""
    return _bodies(*_rows_stamp(data_dir))


@st.cache_data(show_spinner=False, max_entries=8)
def _info(path: str, size: int, mtime: int) -> dict:
    from quack.datafolder import read_info

    return read_info(Path(path).parent)


def info(data_dir: Path) -> dict:
    """The data set's info (rows, counts per label, sources, skipped lines)."""
    return _info(*stamp(Path(data_dir) / "info.json"))


@st.cache_resource(show_spinner=False, max_entries=8)
def _relabelled(path: str, size: int, mtime: int) -> np.ndarray:
    return pd.read_parquet(path, columns=["label"])["label"].to_numpy()


def labels(data_dir: Path) -> np.ndarray:
    """Labels of the records, the session's relabelling applied when there is one."""
    original = rows(data_dir)["label"].to_numpy()
    relabelled = session.relabelled()
    if relabelled is not None and relabelled.is_file():
        new = _relabelled(*stamp(relabelled))
        if len(new) == len(original):
            return new
    return original


def relabel(s: Session, fingerprint_file: str | Path) -> int:
    """Label the data set again with the shipped fingerprints plus a user file; the session uses the result.

    Only labels change (tokens stay). Returns how many records changed label.
    """
    from quack.labels import relabel_rows

    frame = rows(s.data_dir)
    new = relabel_rows(frame, [fingerprint_file])
    out = settings.cache_root() / "relabelled" / f"{s.data_dir.name}-{jobs.digest(stamp(fingerprint_file))}.parquet"
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, lambda handle: new.to_parquet(handle, index=False))
    session.set_relabelled(out)
    return int((new["label"].to_numpy() != frame["label"].to_numpy()).sum())


@st.cache_resource(show_spinner=False, max_entries=4)
def _truth(path: str, size: int, mtime: int, truth_path: str, truth_size: int, truth_mtime: int) -> np.ndarray:
    return tables.truth_column(_rows(path, size, mtime), pd.read_json(truth_path, lines=True))


def sample_truth(data_dir: Path) -> np.ndarray | None:
    """The generator's truth of every record when the session is on the built-in sample, else None.

    Values: ordinary, known_blockpage, unknown_blockpage, reset, timeout ("" when none).
    """
    truth = sources.sample_truth_file()
    if session.source()["kind"] != "sample" or not truth.is_file():
        return None
    return _truth(*_rows_stamp(data_dir), *stamp(truth))
