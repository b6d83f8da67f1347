"""What the Changes page computes and draws: shares per scan, two periods compared, new templates.

The computations are the library's (:mod:`quack.discovery.changes`,
:mod:`quack.discovery.new_templates`), cached per data set version and labels, so the
page's reruns (a colour, a group picked) cost nothing; the figure escapes every name
that comes from the data.
"""

from __future__ import annotations

import hashlib
import html

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboard.charts import escaped, layout
from quack.discovery.changes import SHARES, compare_periods, families_appeared, scan_times, shares_over_time
from quack.discovery.comparison import top_changes

#: How a share is drawn: censored solid, undetermined dashed.
_DASH = {SHARES[0]: "solid", SHARES[1]: "dash"}


def digest(values: np.ndarray) -> str:
    """A short digest of an array (labels, a period's mask), for cache keys."""
    return hashlib.sha1(np.ascontiguousarray(values).tobytes()).hexdigest()[:16]


def records(frame: pd.DataFrame, labels: np.ndarray) -> pd.DataFrame:
    """The records with the session's labels (its own fingerprints included), the shared frame left unchanged."""
    return frame[["id", "label", "fingerprint", "country", "domain", "vp", "source", "line", "time", "scan"]].assign(
        label=labels)


@st.cache_data(show_spinner=False, max_entries=16)
def _scans(version: str, labels_digest: str, _frame: pd.DataFrame) -> pd.DataFrame:
    return scan_times(_frame)


def scans(version: str, frame: pd.DataFrame, labels: np.ndarray) -> pd.DataFrame:
    """The data set's scans with their first and last time and rows, in time order."""
    return _scans(version, digest(labels), frame)


@st.cache_data(show_spinner=False, max_entries=16)
def _shares(version: str, labels_digest: str, by: str, _frame: pd.DataFrame) -> pd.DataFrame:
    return shares_over_time(_frame, by, top=None)


def shares(version: str, frame: pd.DataFrame, labels: np.ndarray, by: str) -> pd.DataFrame:
    """Per scan and group: measurements, censored and undetermined, and their shares."""
    return _shares(version, digest(labels), by, frame)


@st.cache_data(show_spinner=False, max_entries=16)
def _compared(version: str, key: str, _frame: pd.DataFrame, _before: np.ndarray,
              _after: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
    return compare_periods(_frame, _before, _after), families_appeared(_frame, _before, _after)


def compared(version: str, frame: pd.DataFrame, labels: np.ndarray, before: np.ndarray,
             after: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The between-periods table (largest change first) and the families that appeared or vanished."""
    return _compared(version, digest(labels) + digest(before) + digest(after), frame, before, after)


def new_templates(s, frame: pd.DataFrame, labels: np.ndarray, before: np.ndarray, after: np.ndarray,
                  latents: np.ndarray, k: int) -> tuple[pd.DataFrame, np.ndarray]:
    """New templates of the later period and each record's template (-1 for none).

    Computed once per data set, model, labels, periods and ``k``.
    """
    from dashboard.results import computed
    from quack.discovery.new_templates import new_templates as find

    key = ("new-templates", s.identity, digest(labels), digest(before), digest(after), k)
    return computed(key, lambda progress: find(latents, frame, before, after, k=k), "Looking for new templates")


def over_time_figure(table: pd.DataFrame, by: str, groups: list[str]) -> go.Figure:
    """Lines of the censored (solid) and undetermined (dashed) share per scan, one colour a group.

    Each point's hover box gives the scan, the group and the counts behind the share.
    """
    fig = go.Figure()
    palette = ("#1d3557", "#e76f51", "#2a9d8f", "#8e44ad", "#f4a261", "#457b9d", "#6c757d", "#b5838d")
    for number, group in enumerate(groups):
        rows = table[table[by] == group]
        if rows.empty:
            continue
        name = escaped([group])[0]
        for share in SHARES:
            counts = rows[share].to_numpy()
            hover = [f"{html.escape(str(scan))}<br>{name}: {int(c):,} of {int(n):,} {share} ({100 * p:.1f} %)"
                     for scan, c, n, p in zip(rows["scan"], counts, rows["rows"], rows[f"{share}_share"])]
            fig.add_trace(go.Scatter(
                x=rows["start"], y=100 * rows[f"{share}_share"], mode="lines+markers", name=f"{name} {share}",
                line=dict(color=palette[number % len(palette)], dash=_DASH[share]),
                hovertext=hover, hoverinfo="text", legendgroup=name,
            ))
    fig.update_yaxes(title_text="share of measurements (%)", rangemode="tozero")
    fig.update_xaxes(title_text="scan start (UTC)")
    title = f"Censored (solid) and undetermined (dashed) per scan, by {by}"
    return layout(fig, height=420, title=dict(text=html.escape(title), x=0.01))


def table_for_people(changes: pd.DataFrame, top: int = 50) -> pd.DataFrame:
    """The between-periods table as shown: shares and their difference in per cent."""
    return top_changes(changes, top).rename(columns={
        "total_before": "measurements before", "count_before": "before", "share_before": "% before",
        "total_after": "measurements after", "count_after": "after", "share_after": "% after",
        "difference": "change (points)"})


def default_groups(table: pd.DataFrame, by: str, most: int = 5) -> list[str]:
    """The groups whose censored and undetermined shares moved the most across scans."""
    if table.empty:
        return []
    spread = table.groupby(by)[[f"{s}_share" for s in SHARES]].agg(lambda v: v.max() - v.min()).sum(axis=1)
    weight = table.groupby(by)["rows"].sum()
    # Small groups swing by chance: only groups with a few measurements a scan are proposed.
    enough = weight[weight >= 5 * table["scan"].nunique()].index
    return spread[spread.index.isin(enough)].nlargest(most).index.tolist()
