"""The session's checkpoint, data set, records and labels, loaded once and shared between sessions.

Files are cached by their version (a data set's :attr:`quack.data.datafolder.DataFolder.version`,
a file's path, size and modification time), so a replaced file is read again and an
unchanged one never is. Per-record metadata is held as columns; response texts are read
only for the records asked for, or streamed (:mod:`dashboard.responses`). What is
computed from the model (latents, maps, attention) is in :mod:`dashboard.results`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import streamlit as st

from dashboard import jobs, responses, session, settings, sources, tables
from dashboard.responses import folder
from dashboard.jobs import Identity, stamp
from quack.atomic import atomic_write
from quack.errors import QuackInputError
from quack.schema import columns, schema_of


@dataclass
class Session:
    """What the pages work on: the data set, the checkpoint, its model and their identity.

    ``encoded_dir`` is the encoded folder whose latents the session reads instead of
    encoding, when it opened one.
    """

    data_dir: Path
    checkpoint: Path
    model: Any
    identity: Identity
    encoded_dir: Path | None = None


# ----------------------------------------------------------------------------------
# Checkpoint and data set.


@st.cache_resource(show_spinner="Loading the checkpoint…", max_entries=4)
def _load_model(path: str, size: int, mtime: int):
    from quack.model.encoding import load_checkpoint

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

# How quack.data.ingest's refusal of a damaged file advises the command line; the dashboard's
# advice is the box above.
_CLI_KEEP_PARTIAL = "keep the rows read before the damage with `quack ingest --keep-partial`"


def dataset_dir(source: dict | None = None, checkpoint: Path | None = None) -> Path:
    """The tokenized data set of a source (the session's) under a checkpoint's tokenizer (the session's).

    Raw files are ingested on first use into the cache folder; a data set, or the data set
    of an encoded folder, is used where it is, once checked (:func:`_checked`).

    An upload may hold at most :func:`dashboard.settings.upload_max_rows` measurements;
    the build stops once it has read more.

    Raises
    ------
    ValueError
        When the files cannot be read, hold no measurements, are damaged (unless the
        source keeps partial files) or, uploaded, hold too many measurements; when an
        encoded folder does not belong to its data set or checkpoint (one sentence each).
    """
    from dashboard.charts import markdown_text
    from quack.data.build import build_dataset

    source = source or session.source()
    checkpoint = checkpoint or session.checkpoint()
    model = load_model(checkpoint)
    if source.get("holds", "raw") != "raw":
        return _checked(source, checkpoint)
    missing = next((p for p in sources.files_of(source) if not Path(p).exists()), None)
    if missing is not None:
        raise ValueError(f"{missing} does not exist; name existing data with QUACK_DATA (or --data) and restart the "
                         "dashboard, or choose other data on the Data page.")
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


@st.cache_resource(show_spinner="Checking the data set…", max_entries=16)
def _check(data_version: tuple[str, str], encoded: tuple | None, checkpoint: tuple, found: bool) -> None:
    from quack.data.datafolder import DataFolder
    from quack.model.provenance import check_provenance

    folder = DataFolder.open(data_version[0], require_rows=True)
    if encoded is not None:
        check_provenance(Path(encoded[0]).parent, folder.path, checkpoint[0], checkpoint_found=found)


def _checked(source: dict, checkpoint: Path) -> Path:
    """The data set of a data set or encoded source, checked (with the encoded folder's provenance), where it lies.

    A data set tokenized by another tokenizer than the checkpoint's is used as it is: the
    model's work tokenizes its stored texts again (:mod:`quack.model.encoding`, :func:`dashboard.results.inspect`).
    """
    encoded = None
    if source["holds"] == "encoded":
        data, recorded = sources.encoded_parts(source)
        encoded = stamp(Path(source["paths"][0]) / "metadata.json")
    else:
        data, recorded = Path(source["paths"][0]), None
    found = recorded is not None or st.session_state.get(session.CHECKPOINT) is not None
    try:
        _check(jobs.data_version(data), encoded, stamp(checkpoint), found)
    except QuackInputError as error:
        raise ValueError(str(error)) from None
    return data


def current() -> Session:
    """The session's data set and checkpoint, loading and building what is missing.

    Raises
    ------
    ValueError
        When the checkpoint or the data cannot be used (a sentence saying why).
    """
    source = session.source()
    path = session.checkpoint()
    model = load_model(path)
    data_dir = dataset_dir(source, path)
    encoded = Path(source["paths"][0]) if source.get("holds") == "encoded" else None
    return Session(data_dir, path, model, Identity.of(data_dir, path), encoded)


def encoded_latents(s: Session, progress=None):
    """The latents (and reconstruction losses, when written) of the session's encoded folder, read, not computed.

    Returns
    -------
    quack.model.encoding.Encoded
        Losses are NaN when the folder has none.
    """
    from quack.model.reader import read_latents, read_metadata
    from quack.model.encoding import Encoded

    info = read_metadata(s.encoded_dir)
    n = folder(s.data_dir).n_rows
    latents, loss = read_latents(s.encoded_dir, n, progress)
    if loss is None:
        loss = np.full(n, np.nan, dtype=np.float32)
    device = f"{info.get('device', 'an unrecorded device')}, read from the encoded folder {s.encoded_dir.name}"
    return Encoded(np.arange(n, dtype=np.int64), latents, loss, float(info.get("records_per_s", np.nan)), device)


# ----------------------------------------------------------------------------------
# Records. Every page holds the per-record metadata (categorical columns); response texts
# are read by id or streamed (dashboard.responses).

#: Columns of the records frame: what goes with a latent vector, and the probe the
#: sample's ground truth is joined by. No response text.
ROW_COLUMNS = (*columns("metadata"), "probe")


@st.cache_resource(show_spinner=False, max_entries=8)
def _rows(path: str, version: str) -> pd.DataFrame:
    pieces = []
    for batch in folder(Path(path)).iter_batches(ROW_COLUMNS):
        # Strings as dictionaries: a country or domain is held once, not once per record.
        pieces.append(pa.table([pc.dictionary_encode(c) if pa.types.is_string(c.type) else c for c in batch.columns],
                               names=batch.schema.names))
    table = pa.concat_tables(pieces) if pieces else schema_of(ROW_COLUMNS).empty_table()
    return table.to_pandas(strings_to_categorical=True)


def rows(data_dir: Path) -> pd.DataFrame:
    """The data set's records: metadata only, strings as categoricals; shared between sessions, never change it."""
    return _rows(*jobs.data_version(data_dir))


def info(data_dir: Path) -> dict:
    """The data set's info (rows, counts per label, sources, skipped lines); a folder of parts sums its parts'."""
    return folder(data_dir).info


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

    Only labels change (tokens stay); the records are streamed. Returns how many records changed label.
    The whole run has :data:`dashboard.settings.RELABEL_SECONDS`; past them it stops with one
    sentence (a ValueError) and nothing is written.
    """
    from quack.fingerprints.labels import relabel_rows

    deadline = time.monotonic() + settings.RELABEL_SECONDS
    total = folder(s.data_dir).n_rows
    # A data set built before the rule was recorded matched the body alone.
    rule = folder(s.data_dir).info.get("match", "body")
    needed = [c for c in columns() if c not in ("tokens", "n_tokens")]
    pieces, changed, done = [], 0, 0
    bar = st.progress(0.0, text="Labelling the records again")
    try:
        for frame in responses.batches(s.data_dir, needed):
            new = relabel_rows(frame, [fingerprint_file], match=rule, deadline=deadline)
            changed += int((new["label"].to_numpy() != frame["label"].to_numpy()).sum())
            pieces.append(pa.Table.from_pandas(new, preserve_index=False))
            done += len(frame)
            bar.progress(min(done / max(total, 1), 1.0), text=f"Labelling the records again — {done:,} / {total:,}")
    finally:
        bar.empty()
    version = jobs.data_version(s.data_dir)[1]
    out = settings.cache_root() / "relabelled" / f"{version}-{jobs.digest(stamp(fingerprint_file))}.parquet"
    out.parent.mkdir(parents=True, exist_ok=True)
    table = pa.concat_tables(pieces)
    atomic_write(out, lambda handle: pq.write_table(table, handle))
    session.set_relabelled(out)
    return changed


@st.cache_resource(show_spinner=False, max_entries=4)
def _truth(path: str, version: str, truth_path: str, truth_size: int, truth_mtime: int) -> np.ndarray:
    return tables.truth_column(_rows(path, version), pd.read_json(truth_path, lines=True))


def sample_truth(data_dir: Path) -> np.ndarray | None:
    """The generator's truth of every record when the session is on the built-in sample, else None.

    Values: ordinary, known_blockpage, unknown_blockpage, reset, timeout ("" when none).
    """
    truth = sources.sample_truth_file()
    if session.source()["kind"] != "sample" or not truth.is_file():
        return None
    return _truth(*jobs.data_version(data_dir), *stamp(truth))
