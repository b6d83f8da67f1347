"""A view as a link: the session's choices mirrored in the address bar's query string.

The page is the address's path (Streamlit's own); the rest is the query string, read
once when a session opens (:func:`apply`) and written again at the end of every run
(:func:`write`), so the address bar always opens the view on screen. Global choices (data
source, checkpoint, chosen record, selection) go in every link; a widget's value goes in
the links of its own page only.

A link is input from outside. A path in it is checked exactly as a path typed on the
Data or Model page; every other value is checked for its form and bounds here, and
against what the data offers by the page (:func:`settle`). What is refused is said in one
sentence each, and the rest of the link still applies. A selection too long for an
address is saved in the cache folder under a name made from its content, and the link
names it.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from urllib.parse import urlencode

import numpy as np
import streamlit as st

from dashboard import charts, errors, session, settings
from dashboard.link_settings import MAX_ID, SETTINGS, read_text, whole
from quack.atomic import atomic_write

APPLIED = "quack.link.applied"  # bool: this session has read its opening link
NOTES = "quack.link.notes"  # list of (kind, sentence): what the opening link named that was refused
OPENED = "quack.link.page"  # str: the title of the page the link opened; its notes stay while it is on screen

#: Record ids a link lists itself; a larger selection is saved and named.
INLINE_IDS = 64
#: Record ids a saved selection may hold.
MAX_SAVED = 50_000_000
SAVED_NAME = re.compile(r"[0-9a-f]{16}")


def _note(kind: str, text: str) -> None:
    st.session_state.setdefault(NOTES, []).append((kind, text))


def _refused(name: str, values: list[str], why: str) -> None:
    shown = ", ".join(values)
    shown = shown if len(shown) <= 60 else shown[:60] + "…"
    _note("warning", f"This link's {name} {shown!r} {why}, so it was left out.")


def _checkpoint(text: str) -> Path:
    """A checkpoint a link names: a listed one, else one in a shared folder, as typed on the Model page."""
    from dashboard import sources

    listed = {str(path): path for path in sources.list_checkpoints(session.uploaded_checkpoints())}
    return listed.get(text) or settings.data_roots().resolve_readable(text)


def _open_source(text: str) -> None:
    from dashboard import loaders, sources

    chosen = dict(session.SAMPLE) if text == "sample" else sources.path_source(text)
    # Built (or checked) before switching, as on the Data page: a bad source leaves the session as it was.
    loaders.dataset_dir(chosen, session.recorded_checkpoint(chosen) or session.checkpoint())
    session.set_source(chosen)


def _open_checkpoint(text: str) -> None:
    from dashboard import loaders

    path = _checkpoint(text)
    loaders.load_model(path)
    session.set_checkpoint(path)


def _read_ids(params) -> np.ndarray | None:
    """The selection a link lists or names; None when it has none."""
    if "ids" in params:
        values = ",".join(params.get_all("ids")).split(",")
        if len(values) > INLINE_IDS or not all(v.isdigit() and int(v) <= MAX_ID for v in values):
            raise ValueError(f"lists more than {INLINE_IDS} record ids or something else than record ids")
        return np.array([int(v) for v in values], dtype=np.int64)
    if "saved" in params:
        name = read_text(params.get_all("saved"))
        path = saved_folder() / f"{name}.npy"
        if not SAVED_NAME.fullmatch(name) or not path.is_file():
            raise ValueError("names no selection saved on this server; select the records again")
        ids = np.load(path, allow_pickle=False, mmap_mode="r")
        if ids.dtype != np.int64 or ids.ndim != 1 or len(ids) > MAX_SAVED:
            raise ValueError("names a file that holds no selection; select the records again")
        return np.array(ids)
    return None


def apply() -> None:
    """Take the session's choices from its opening link, once per session; refused parts become notes."""
    if st.session_state.get(APPLIED):
        return
    st.session_state[APPLIED] = True
    params = st.query_params
    for name, opener in (("data", _open_source), ("checkpoint", _open_checkpoint)):
        if name in params:
            try:
                opener(read_text(params.get_all(name)))
            except (ValueError, OSError) as error:
                # The same sentence the Data or Model page gives for the same path.
                _note("error", errors.public(error))
    for name, choose in (("record", session.set_record), ("second", session.set_second_record)):
        if name in params:
            try:
                choose(whole(0, MAX_ID)(params.get_all(name)))
            except ValueError as error:
                _refused(name, params.get_all(name), str(error))
    try:
        ids = _read_ids(params)
    except (ValueError, OSError) as error:
        _refused("selection", params.get_all("ids") or params.get_all("saved"), str(error))
    else:
        if ids is not None:
            session.set_selection(ids)
    for setting in SETTINGS:
        if setting.name in params:
            values = params.get_all(setting.name)
            try:
                st.session_state[setting.key_in(st.session_state)] = setting.read(values)
            except ValueError as error:
                _refused(setting.name, values, str(error))


def show_notes() -> None:
    """Say what the opening link named that was refused, one sentence each."""
    for kind, text in st.session_state.get(NOTES, ()):
        (st.error if kind == "error" else st.warning)(charts.markdown_text(text))


def _say(text: str) -> None:
    """Warn on the page now, and keep the sentence with the link's notes: a page that reruns at once would lose it."""
    st.warning(charts.markdown_text(text))
    _note("warning", text)


def settle(key: str, options, what: str) -> None:
    """Drop from a widget's linked value what the page does not offer, saying so; call before the widget.

    Parameters
    ----------
    key : str
        The widget's key.
    options : sequence
        What the widget offers.
    what : str
        The setting in a person's words, for the sentence.
    """
    if key not in st.session_state:
        return
    value = st.session_state[key]
    offered = set(options)
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    if all(item in offered for item in items):
        return
    if isinstance(value, list):
        st.session_state[key] = [item for item in value if item in offered]
    else:
        del st.session_state[key]
    _say(f"The {what} {value!r} is not offered by this data set, so it was left out.")


def settle_records(n: int) -> None:
    """Drop a chosen record or selected ids beyond the data set's ``n`` records, saying so."""
    beyond = []
    for name, value, forget in (("record", session.record(), session.RECORD),
                                ("record beside it", session.second_record(), session.SECOND_RECORD)):
        if value is not None and value >= n:
            st.session_state.pop(forget, None)
            beyond.append(f"{name} {value:,}")
    ids = session.selection()
    if len(ids) and ids.max() >= n:
        session.set_selection(ids[ids < n])
        beyond.append(f"{int((ids >= n).sum()):,} selected ids")
    if beyond:
        _say(f"This data set holds {n:,} records, so the {', '.join(beyond)} were left out.")


def saved_folder() -> Path:
    """Where selections too long for a link are kept, each named by its content."""
    return settings.cache_root() / "links"


def save_selection(ids: np.ndarray) -> str:
    """Keep a selection under a short name made from its content, and return the name."""
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    name = hashlib.sha256(ids.tobytes()).hexdigest()[:16]
    path = saved_folder() / f"{name}.npy"
    if not path.is_file():
        atomic_write(path, lambda handle: np.save(handle, ids, allow_pickle=False))
    return name


def query(page_title: str) -> dict[str, str | list[str]]:
    """The query string of the session's view on a page, as ``st.query_params`` takes it."""
    state = st.session_state
    out: dict[str, str | list[str]] = {}
    chosen = state.get(session.SOURCE)
    if chosen and chosen["kind"] == "path" and not chosen.get("trusted"):
        out["data"] = chosen["paths"][0]
    elif chosen and chosen["kind"] == "sample" and settings.start_data() is not None:
        out["data"] = "sample"
    if state.get(session.CHECKPOINT):
        out["checkpoint"] = str(state[session.CHECKPOINT])
    for name, value in (("record", session.record()), ("second", session.second_record())):
        if value is not None:
            out[name] = str(value)
    ids = session.selection()
    if 0 < len(ids) <= INLINE_IDS:
        out["ids"] = ",".join(str(i) for i in ids)
    elif len(ids):
        try:
            out["saved"] = save_selection(ids)
        except OSError:
            pass  # The cache folder is full or read-only: the link opens the view without the selection.
    for setting in SETTINGS:
        key = setting.key_in(state)
        if setting.page == page_title and state.get(key) not in (None, "", [], ()):
            value = state[key]
            if isinstance(value, bool):
                out[setting.name] = "1" if value else "0"
            elif isinstance(value, (list, tuple)):
                out[setting.name] = [str(v) for v in value]
            else:
                out[setting.name] = str(value)
    return out


def write(page_title: str, box=None):
    """Put the session's view in the address bar, and show it as a link to copy in the sidebar.

    Called as a run starts, with the widgets' values as the browser last sent them, and
    again at its end with the values the page drew, in the box the first call returned; a
    page that stops early (``st.stop``) sends nothing more, so the first call's link stays.

    Returns
    -------
    streamlit container
        The sidebar box holding the link.
    """
    wanted = query(page_title)
    if st.session_state.setdefault(OPENED, page_title) != page_title:
        st.session_state.pop(NOTES, None)
    present = {key: st.query_params.get_all(key) for key in st.query_params}
    # Written only when it changed: each write sends the browser a message.
    if present != {key: value if isinstance(value, list) else [value] for key, value in wanted.items() if value != []}:
        st.query_params.from_dict(wanted)
    address = (st.context.url or "") + ("?" + urlencode(wanted, doseq=True) if wanted else "")
    box = st.sidebar.empty() if box is None else box
    with box.container():
        st.caption("Link to this view")
        st.code(address or "(the page's own address)", language=None, wrap_lines=True)
        if (st.session_state.get(session.SOURCE) or {}).get("kind") == "upload":
            st.caption("Uploaded data is not in the link; put it in a shared folder to share it.")
    return box
