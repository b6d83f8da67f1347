"""What one browser session has chosen, kept in ``st.session_state``.

Every key the pages share is named here, and read or written only through the
accessors below, so the pages agree on what each holds. Choosing another data source
or checkpoint goes through :func:`set_source` / :func:`set_checkpoint`, which :func:`reset`
what referred to the old one (record ids, a selection, relabelled labels).
"""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import streamlit as st

from dashboard import settings

SESSION_ID = "quack.session_id"  # str: the session's own random name (see session_id)
SOURCE = "quack.source"  # dict: kind ("sample" | "path" | "upload"), paths, name, holds (see dashboard.sources)
CHECKPOINT = "quack.checkpoint"  # str path of the chosen checkpoint
RECORD = "quack.record"  # int id of the record opened on the Attention page
SECOND_RECORD = "quack.second_record"  # int id shown beside it
SELECTION = "quack.selection"  # int64 array of the record ids selected on the map
MAP_EVENT = "quack.map_event"  # the last selection the map reported, to act on changes only
TRAINING = "quack.model.training"  # id of this session's training run
FINGERPRINTS = "quack.user_fingerprints"  # str path of the user fingerprint file
OWN_FINGERPRINTS = "quack.own_fingerprints"  # list of str paths of fingerprint files this session wrote
UPLOADED_CHECKPOINTS = "quack.uploaded_checkpoints"  # list of str paths of checkpoints this session uploaded
RELABELLED = "quack.relabelled"  # str path of a relabelled copy of the data set's labels
WRITTEN = "quack.export_written"  # str path of the last folder the Export page wrote

SAMPLE = {"kind": "sample", "paths": [], "name": "Built-in sample"}

# Record ids, selections and relabelled labels mean something in one data set only.
_TIED_TO_DATA = (RECORD, SECOND_RECORD, SELECTION, MAP_EVENT, RELABELLED)


def reset() -> None:
    """Forget everything that referred to the previous data set or checkpoint."""
    for key in _TIED_TO_DATA:
        st.session_state.pop(key, None)


def session_id() -> str | None:
    """A name of the browser session running this script, made on first ask; None outside one.

    Work is bounded per session by it, and the session's own file names carry it. It is
    the session's own random name, not Streamlit's, so it is never shown to or shared with another.
    """
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    if get_script_run_ctx(suppress_warning=True) is None:
        return None
    return st.session_state.setdefault(SESSION_ID, uuid.uuid4().hex)


def source() -> dict:
    """The session's data source: the one chosen, else what the operator opened at start, else the built-in sample."""
    chosen = st.session_state.get(SOURCE)
    if chosen:
        return chosen
    from dashboard import sources

    return sources.start_source() or dict(SAMPLE)


def recorded_checkpoint(chosen: dict) -> Path | None:
    """The checkpoint that encoded a source's latents, when the source is an encoded folder and it is here."""
    if chosen.get("holds") != "encoded":
        return None
    from dashboard import sources

    try:
        return sources.encoded_parts(chosen)[1]
    except (ValueError, OSError):
        return None


def set_source(chosen: dict) -> None:
    """Switch the session to another data source; an encoded folder brings the checkpoint that encoded it."""
    reset()
    if recorded_checkpoint(chosen) is not None:
        st.session_state.pop(CHECKPOINT, None)
    st.session_state[SOURCE] = chosen


def checkpoint() -> Path:
    """The session's checkpoint: the one chosen, else the one that encoded the source's latents, else the
    environment's or the shipped one."""
    chosen = st.session_state.get(CHECKPOINT)
    if chosen:
        return Path(chosen)
    return recorded_checkpoint(source()) or settings.default_checkpoint()


def set_checkpoint(path: str | Path) -> None:
    """Switch the session to another checkpoint."""
    reset()
    st.session_state[CHECKPOINT] = str(path)


def record() -> int | None:
    """The record the session looks at, if one was chosen."""
    value = st.session_state.get(RECORD)
    return None if value is None else int(value)


def set_record(value: int) -> None:
    """Choose the record to look at."""
    st.session_state[RECORD] = int(value)


def second_record() -> int | None:
    """The record shown beside the chosen one on the Attention page, if any."""
    value = st.session_state.get(SECOND_RECORD)
    return None if value is None else int(value)


def set_second_record(value: int) -> None:
    """Choose the record to compare with."""
    st.session_state[SECOND_RECORD] = int(value)


def selection() -> np.ndarray:
    """Record ids selected on the map, an int64 array (empty when none); read-only."""
    ids = np.asarray(st.session_state.get(SELECTION, ()), dtype=np.int64).reshape(-1)
    ids.flags.writeable = False
    return ids


def set_selection(ids) -> None:
    """Replace the selection with these record ids (any sequence or array of whole numbers)."""
    st.session_state[SELECTION] = np.array(ids, dtype=np.int64).reshape(-1)


def map_event() -> list[int] | None:
    """The selection the map reported last."""
    return st.session_state.get(MAP_EVENT)


def set_map_event(ids: list[int]) -> None:
    """Remember the selection the map reported, so an unchanged one is not acted on again."""
    st.session_state[MAP_EVENT] = list(ids)


def training_id() -> str | None:
    """The id of this session's training run, if it started one."""
    return st.session_state.get(TRAINING)


def set_training_id(run_id: str | None) -> None:
    """Remember (or, with None, forget) this session's training run."""
    if run_id is None:
        st.session_state.pop(TRAINING, None)
    else:
        st.session_state[TRAINING] = run_id


def fingerprint_file() -> Path:
    """The session's user fingerprint file: the one last written, else a name of this session's own.

    Every session shares the fingerprint folder, so the name offered first is the session's
    (``user-fingerprints-<session>.json``): one user's fingerprints never relabel another's
    data unless that user names the file.
    """
    chosen = st.session_state.get(FINGERPRINTS)
    if chosen:
        return Path(chosen)
    who = session_id()
    name = "user-fingerprints.json" if who is None else f"user-fingerprints-{who[:12]}.json"
    return settings.fingerprint_folder() / name


def set_fingerprint_file(path: str | Path) -> None:
    """Remember the user fingerprint file last written, as one of this session's own."""
    st.session_state[FINGERPRINTS] = str(path)
    own = st.session_state.setdefault(OWN_FINGERPRINTS, [])
    if str(path) not in own:
        own.append(str(path))


def owns_fingerprint_file(path: str | Path) -> bool:
    """Whether this session wrote the fingerprint file (else it is another's, used only when shared)."""
    return str(path) in st.session_state.get(OWN_FINGERPRINTS, ())


def uploaded_checkpoints() -> list[str]:
    """Checkpoints this session uploaded: offered to it alone."""
    return list(st.session_state.get(UPLOADED_CHECKPOINTS, ()))


def add_uploaded_checkpoint(path: str | Path) -> None:
    """Remember a checkpoint this session uploaded."""
    kept = st.session_state.setdefault(UPLOADED_CHECKPOINTS, [])
    if str(path) not in kept:
        kept.append(str(path))


def relabelled() -> Path | None:
    """The file of the session's relabelled labels, if it relabelled the data."""
    value = st.session_state.get(RELABELLED)
    return Path(value) if value else None


def set_relabelled(path: str | Path) -> None:
    """Use relabelled labels from now on."""
    st.session_state[RELABELLED] = str(path)


def written() -> Path | None:
    """The folder the Export page last wrote, if any."""
    value = st.session_state.get(WRITTEN)
    return Path(value) if value else None


def set_written(path: str | Path) -> None:
    """Remember the folder the Export page wrote."""
    st.session_state[WRITTEN] = str(Path(path).expanduser())
