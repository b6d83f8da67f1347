"""The latent map's figure: drawn points over a density layer of every record, with hover boxes.

Built from plain arrays and tables, in the palette and look of :mod:`dashboard.charts`;
record text reaches the hover boxes and legends escaped.
"""

from __future__ import annotations

import html
from typing import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashboard.charts import CATEGORY_COLORS, LABEL_COLORS, OTHER_COLOR, escaped, layout
from dashboard.tables import HOVER_COLUMNS, snippet

_HOVER = "%{hovertext}<extra>%{fullData.name}</extra>"
#: Characters of a response a map point's hover box shows.
HOVER_SNIPPET = 80
# The density layer: white where there is nothing, through light grey-blue to blue.
DENSITY_COLORS = [[0.0, "#ffffff"], [0.15, "#e6ecf4"], [0.6, "#b7c7de"], [1.0, "#6f8fbf"]]
#: Empty cells added around the density grid on each side.
DENSITY_MARGIN = 3


def hover_texts(hover: pd.DataFrame) -> np.ndarray:
    """The hover box of each map point as escaped HTML, from the columns of :data:`~dashboard.tables.HOVER_COLUMNS`.

    Made once for the drawn points and passed to :func:`map_figure`, so a colour change
    does not format a hundred thousand boxes again. Snippets are cut to
    :data:`HOVER_SNIPPET` characters: every box travels to the browser with the figure.
    """
    hover = hover.assign(snippet=[snippet(t, HOVER_SNIPPET) for t in hover["snippet"].to_numpy()])
    part = {c: pd.Series(escaped(hover[c].to_numpy()), dtype=object) for c in HOVER_COLUMNS[1:]}
    ids = pd.Series(np.asarray(hover["id"]).astype(str), dtype=object)
    text = ("<b>" + part["domain"] + "</b><br>record " + ids + " · vp " + part["vp"] + " · " + part["country"]
            + "<br>status " + part["status"] + "<br><i>" + part["snippet"] + "</i>")
    return text.to_numpy(dtype=object)


def _widened(centres: np.ndarray, cells: int) -> np.ndarray:
    """Cell centres with ``cells`` more cells of the same width on each side."""
    centres = np.asarray(centres, dtype=np.float64)
    width = centres[1] - centres[0] if len(centres) > 1 else 1.0
    steps = np.arange(1, cells + 1) * width
    return np.concatenate([centres[0] - steps[::-1], centres, centres[-1] + steps])


def density_trace(counts: np.ndarray, x_centres: np.ndarray, y_centres: np.ndarray) -> go.Heatmap:
    """A heatmap of how many map points fall in each cell, log-scaled, empty cells white.

    It goes under the drawn points, so regions whose points are not drawn still show. A
    margin of empty cells around the grid lets the smoothed shading fade out at the edge
    of the data instead of stopping square at its bounding box.
    """
    counts = np.pad(np.asarray(counts, dtype=np.float32), DENSITY_MARGIN)
    x_centres, y_centres = _widened(x_centres, DENSITY_MARGIN), _widened(y_centres, DENSITY_MARGIN)
    return go.Heatmap(
        z=np.log1p(counts), x=x_centres, y=y_centres, colorscale=DENSITY_COLORS,
        zmin=0, showscale=False, hoverinfo="skip", name="all records", zsmooth="best",
    )


def map_figure(
    coords: np.ndarray,
    hover: pd.DataFrame,
    color_values: np.ndarray,
    color_name: str,
    categorical: bool,
    title: str = "",
    highlight: Sequence[int] = (),
    max_categories: int = 12,
    texts: np.ndarray | None = None,
    density: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> go.Figure:
    """A scatter map of records, WebGL in 2-D, each point carrying its record id.

    Parameters
    ----------
    coords : numpy.ndarray
        (N, 2) or (N, 3) coordinates of the drawn records, in drawing order (the last on top).
    hover : pandas.DataFrame
        N rows with the columns of :data:`dashboard.tables.HOVER_COLUMNS`, plain text; ``id``
        becomes each point's ``customdata``, the rest its hover box (escaped).
    color_values : numpy.ndarray
        (N,) category names or numbers to colour by.
    color_name : str
        What the colour means, for the legend or colour bar.
    categorical : bool
        Categories get one trace each (labels in their fixed colours, censored on top; the
        most common others in distinct hues, the rest grey); numbers get a colour scale.
    title : str, optional
        Chart title.
    highlight : sequence of int, optional
        Record ids to ring (a chosen record and its neighbours).
    max_categories : int, optional
        Most categories drawn in their own colour, by default 12.
    texts : numpy.ndarray, optional
        The hover boxes, :func:`hover_texts` of ``hover``, when already made.
    density : tuple, optional
        ``(counts, x_centres, y_centres)`` of all records (:func:`quack.latents.regions.density`),
        drawn under the points in 2-D.

    Returns
    -------
    plotly.graph_objects.Figure
    """
    three = coords.shape[1] == 3
    ids = np.asarray(hover["id"].to_numpy(), dtype=np.int64)
    texts = hover_texts(hover) if texts is None else texts
    scatter = go.Scatter3d if three else go.Scattergl
    size = 3 if three else 6
    fig = go.Figure()
    if density is not None and not three:
        fig.add_trace(density_trace(*density))

    def points(idx, name, marker):
        xyz = dict(x=coords[idx, 0], y=coords[idx, 1])
        if three:
            xyz["z"] = coords[idx, 2]
        return scatter(mode="markers", name=name, customdata=ids[idx], hovertext=texts[idx], hovertemplate=_HOVER,
                       marker=marker, **xyz)

    if categorical:
        values = pd.Series(np.asarray(color_values, dtype=object)).fillna("(none)").astype(str).replace("", "(none)")
        if set(values.unique()) <= set(LABEL_COLORS):
            # Undetermined underneath, censored last: drawn on top of the rest.
            order = [n for n in reversed(LABEL_COLORS) if (values == n).any()]
            colours = dict(LABEL_COLORS)
        else:
            counts = values.value_counts()
            order = list(counts.index[:max_categories])
            colours = {name: CATEGORY_COLORS[i % len(CATEGORY_COLORS)] for i, name in enumerate(order)}
            if len(counts) > max_categories:
                values = values.where(values.isin(order), "other")
                order.insert(0, "other")
                colours["other"] = OTHER_COLOR
        for name in order:
            idx = np.flatnonzero((values == name).to_numpy())
            fig.add_trace(points(idx, f"{html.escape(name)} ({idx.size:,})",
                                 dict(size=size, color=colours[name], opacity=0.8, line=dict(width=0))))
    else:
        numbers = np.asarray(color_values, dtype=np.float64)
        fig.add_trace(points(np.arange(len(numbers)), html.escape(color_name), dict(
            size=size, color=numbers, colorscale="RdYlBu_r" if "prob" in color_name else "Viridis",
            colorbar=dict(title=dict(text=html.escape(color_name)), thickness=12), opacity=0.85, line=dict(width=0),
        )))
    if len(highlight):
        idx = np.flatnonzero(np.isin(ids, np.asarray(highlight)))
        if idx.size:
            fig.add_trace(points(idx, "chosen & neighbours", dict(
                size=size + 8, color="rgba(0,0,0,0)", line=dict(width=2, color="#1d3557"))))
    fig = layout(fig, height=620, title=dict(text=html.escape(title), x=0.01),
                  dragmode="select" if not three else "orbit")
    if not categorical:
        # The colour bar stands where the legend would: the legend goes in a row above the plot.
        fig.update_layout(legend=dict(orientation="h", x=1, xanchor="right", y=1.0, yanchor="bottom"))
    if not three:
        fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False, title=None)
        fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False, title=None)
    else:
        fig.update_scenes(xaxis_visible=False, yaxis_visible=False, zaxis_visible=False)
    return fig
