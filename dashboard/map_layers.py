"""What a map draws: the records drawn, their hover boxes and the density layer under them.

Computed once per map and data set, so a colour change or a selection only rebuilds the
figure's traces from these.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from dashboard import jobs, loaders, responses, tables
from dashboard.loaders import Session
from quack.schema import Label

#: Most cells along each axis of a map's density layer; fewer records get coarser cells.
DENSITY_BINS = 200



@st.cache_resource(show_spinner=False, max_entries=8)
def _drawn(labels_digest: str, max_points: int, _labels: np.ndarray) -> np.ndarray:
    from quack.latents.regions import display_sample

    rows = display_sample(_labels, max_points)
    # Undetermined first, censored last, so the rare censored points are drawn on top.
    rank = np.select([_labels[rows] == Label.CENSORED, _labels[rows] == Label.UNCENSORED], [2, 1], 0)
    return rows[np.argsort(rank, kind="stable")]


def drawn_rows(lab: np.ndarray, max_points: int) -> np.ndarray:
    """The records a map draws: at most ``max_points``, stratified by label, censored last (on top)."""
    return _drawn(jobs.array_digest(lab), int(max_points), lab)


@st.cache_resource(show_spinner="Reading what the drawn points' hover boxes say…", max_entries=8)
def _hover(identity: jobs.Identity, rows_digest: str, _frame, _snippets, _rows: np.ndarray):
    from dashboard.map_charts import hover_texts  # the state layer leaves the view unloaded

    table = tables.hover_table(_frame, _snippets, _rows)
    return table, hover_texts(table)


def hover(s: Session, rows: np.ndarray) -> tuple:
    """The hover table of some records (:func:`dashboard.tables.hover_table`) and their hover boxes as HTML."""
    frame = loaders.rows(s.data_dir)
    snippets = responses.snippets(s.data_dir)
    return _hover(s.identity, jobs.array_digest(rows), frame, snippets, rows)


@st.cache_resource(show_spinner=False, max_entries=8)
def _density(map_key: tuple, bins: int, _coords: np.ndarray):
    from quack.latents.regions import density

    return density(_coords, bins)


def map_density(map_key: tuple, coords: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The density layer of a 2-D map (:func:`quack.latents.regions.density`), once per map (its store key).

    About two records per cell along each axis' square root, between 40 and
    :data:`DENSITY_BINS` cells, so a small map's layer is not a scatter of single records.
    """
    bins = int(np.clip(np.sqrt(len(coords)) / 2, 40, DENSITY_BINS))
    return _density(map_key, bins, coords)


def time_since_first(times) -> tuple[np.ndarray, str]:
    """(N,) time from the earliest known time to each record's, NaN where a record has none, and its unit.

    Hours when the records span less than two days (one scan), else days.
    """
    import pandas as pd

    stamps = pd.to_datetime(pd.Series(times), utc=True, errors="coerce")
    first = stamps.min()
    if pd.isna(first):
        return np.full(len(stamps), np.nan), "hours"
    seconds = (stamps - first).dt.total_seconds().to_numpy(dtype=np.float64)
    if np.nanmax(seconds) < 2 * 86_400:
        return seconds / 3_600.0, "hours"
    return seconds / 86_400.0, "days"
