"""Figures and HTML fragments of the dashboard, built from plain arrays and tables.

One palette for labels everywhere, :attr:`quack.schema.Label.colour`: censored red,
uncensored teal, undetermined grey. Text from records, uploads and users is escaped
here, where it becomes HTML (Plotly reads hover boxes, legends and tick labels as
HTML) or Markdown (:func:`markdown_text`), so it always reads as itself. The latent map's
figure is in :mod:`dashboard.map_charts`.
"""

from __future__ import annotations

import html
import math
import re
import string
from typing import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from quack.schema import Label

LABEL_COLORS = {name: label.colour for name, label in Label.by_display().items()}
# Distinct, colour-blind-friendly hues for categories other than labels.
CATEGORY_COLORS = [
    "#4477aa", "#ee6677", "#228833", "#ccbb44", "#66ccee", "#aa3377",
    "#ee8866", "#44bb99", "#bbcc33", "#77aadd", "#994455", "#997700",
]
OTHER_COLOR = "#d5d8dc"
FONT = "Inter, 'Source Sans Pro', sans-serif"

# Plotly's own toolbar downloads every chart as an image.
PLOT_CONFIG = {
    "displaylogo": False,
    "toImageButtonOptions": {"format": "png", "filename": "quack-chart", "scale": 2},
}


def layout(fig: go.Figure, height: int = 420, **extra) -> go.Figure:
    """The dashboard's look on a figure: height, margins, font, white ground, legend."""
    fig.update_layout(
        height=height,
        margin=dict(l=10, r=10, t=40, b=10),
        font=dict(family=FONT, size=13),
        plot_bgcolor="white",
        legend=dict(itemsizing="constant", bgcolor="rgba(255,255,255,0.8)"),
        **extra,
    )
    return fig


def escaped(values: Sequence) -> np.ndarray:
    """Values as HTML-escaped strings (for Plotly's hover boxes, which read HTML)."""
    series = pd.Series(np.asarray(values, dtype=object)).fillna("").astype(str)
    # Metadata repeats a few values many times; escape each distinct one once.
    return series.map({v: html.escape(v) for v in series.unique()}).to_numpy(dtype=object)


# CommonMark lets a backslash escape any ASCII punctuation character, and Streamlit's
# extensions (colours, icons, math) are all spelled with punctuation.
_MARKDOWN_ACTIVE = re.compile("([" + re.escape(string.punctuation) + "])")


def markdown_text(value) -> str:
    """A value as Markdown that shows it literally: punctuation escaped, line breaks as spaces.

    For text from data or a browser put into ``st.markdown``, ``st.caption``, headers
    and alert boxes, which all read Markdown: a domain such as ``[x](http://…)`` or
    ``<b>`` then shows as typed, never as a link, an image or markup.
    """
    return _MARKDOWN_ACTIVE.sub(r"\\\1", " ".join(str(value).splitlines()))


def counts_bar(counts: pd.Series, title: str, color: str = "#4477aa", labels: bool = False) -> go.Figure:
    """A horizontal bar chart of counts, largest on top; the categories (from data) escaped."""
    counts = counts.sort_values()
    colours = [LABEL_COLORS.get(str(k), color) for k in counts.index] if labels else color
    fig = go.Figure(go.Bar(x=counts.to_numpy(), y=list(escaped(counts.index)), orientation="h", marker_color=colours))
    return layout(fig, height=max(180, 28 * len(counts) + 70), title=dict(text=html.escape(title), x=0.01))


def loss_curve(history: list[dict]) -> go.Figure:
    """The loss per token against the optimiser step: each batch, each epoch's mean, each validation.

    Per token, because the training loss sums over a record's tokens: batches of short and
    long records would make a healthy run's curve jump a hundredfold.
    """
    fig = go.Figure()
    series = (("token_loss", "train, each batch", dict(color="#9db4d3", width=1), "lines"),
              ("epoch_token_loss", "train, epoch mean", dict(color="#1d3557", width=2), "lines+markers"),
              ("val_token_loss", "validation", dict(color="#d1495b", width=2), "lines+markers"))
    for key, name, line, mode in series:
        points = [h for h in history if key in h]
        if points:
            # Markers keep the first few steps of a run visible before there is a line.
            fig.add_trace(go.Scatter(x=[h["step"] for h in points], y=[h[key] for h in points], name=name,
                                     mode=mode if len(points) > 30 else "lines+markers", line=line))
    fig.update_xaxes(title="step")
    fig.update_yaxes(title="loss per token", rangemode="tozero")
    return layout(fig, height=320, title=dict(text="Loss per token", x=0.01))


def confusion_figure(confusion: list[list[int]]) -> go.Figure:
    """The classifier's 2 x 2 confusion matrix (rows true, columns predicted)."""
    # The classifier predicts 0 for uncensored and 1 for censored.
    names = [Label.UNCENSORED.display, Label.CENSORED.display]
    z = np.asarray(confusion)
    fig = go.Figure(
        go.Heatmap(z=z, x=[f"predicted {n}" for n in names], y=[f"true {n}" for n in names], colorscale="Blues",
                   text=z, texttemplate="%{text}", showscale=False)
    )
    fig.update_yaxes(autorange="reversed")
    return layout(fig, height=300, title=dict(text="Held-out confusion matrix", x=0.01))


#: Input-token labels the attention heatmap shows at most, slanted along its width.
MAX_X_LABELS = 40
#: Pixels a label of the heatmap's y axis needs at the dashboard's font size, and the
#: pixels of the figure that are not rows (title, margins, the slanted x labels).
LABEL_PX, HEATMAP_FRAME_PX = 16, 260


def attention_heatmap(attention: np.ndarray, input_labels: list[str], output_labels: list[str], title: str) -> go.Figure:
    """Decoder step x input token attention, axes at integer positions with token text as ticks.

    Token pieces repeat, so the axes use positions and show ``position piece`` as tick text.
    """
    t_dec, t_enc = attention.shape
    # Plotly reads tick text as HTML, where "<s>" would start a strike-through.
    x_text = [f"{i} {html.escape(p)}" for i, p in enumerate(input_labels[:t_enc])]
    y_text = [f"{i} {html.escape(p)}" for i, p in enumerate(output_labels[:t_dec])]
    fig = go.Figure(
        go.Heatmap(
            z=attention, x=np.arange(t_enc), y=np.arange(t_dec), colorscale="Reds", zmin=0,
            customdata=np.array([[f"{y_text[r]} ← {x_text[c]}" for c in range(t_enc)] for r in range(t_dec)]),
            hovertemplate="%{customdata}<br>weight %{z:.3f}<extra></extra>",
            colorbar=dict(title=dict(text="weight"), thickness=12),
        )
    )
    height = max(420, min(1400, 14 * t_dec + 200))
    # Every n-th label, n the smallest that leaves each label its own line: the hover box
    # names every cell.
    step = max(1, math.ceil(t_enc / MAX_X_LABELS))
    fig.update_xaxes(tickmode="array", tickvals=list(range(0, t_enc, step)), ticktext=x_text[::step],
                     tickangle=-60, title="input token")
    step_y = max(1, math.ceil(LABEL_PX * t_dec / (height - HEATMAP_FRAME_PX)))
    fig.update_yaxes(tickmode="array", tickvals=list(range(0, t_dec, step_y)), ticktext=y_text[::step_y],
                     autorange="reversed", title="decoder step (output token)")
    return layout(fig, height=height, title=dict(text=title, x=0.01))


def field_bars(shares: dict[str, dict[str, float]], title: str) -> go.Figure:
    """Attention share per field, one bar group per set of records (censored, uncensored, ...)."""
    fields = sorted({f for group in shares.values() for f in group})
    fig = go.Figure()
    for group, values in shares.items():
        fig.add_trace(go.Bar(name=group, x=fields, y=[values.get(f, 0.0) for f in fields],
                             marker_color=LABEL_COLORS.get(group, "#4477aa")))
    fig.update_yaxes(title="share of attention", tickformat=".0%")
    return layout(fig, height=360, barmode="group", title=dict(text=title, x=0.01))


def attention_text_html(pieces: list[str], weights: np.ndarray, fields: list[str]) -> str:
    """The record's own tokens, each shaded by the attention it receives, with a scale.

    Shading runs from the record's least to its most attended token, so the tokens the
    decoder relies on stand out even when its attention is spread thin; the scale under
    the text gives the weights the two ends stand for.

    Returns
    -------
    str
        HTML: one span per token (field and weight in the tooltip), then the scale.
    """
    w = np.asarray(weights, dtype=np.float64)
    low, high = (float(w.min()), float(w.max())) if w.size else (0.0, 0.0)
    span = high - low if high > low else 1.0
    spans = []
    previous = None
    for piece, weight, fld in zip(pieces, w, fields):
        if fld != previous and fld != "special":
            spans.append(f'<span class="qk-field">{html.escape(fld)}</span>')
            previous = fld
        alpha = 0.04 + 0.86 * (weight - low) / span
        spans.append(
            f'<span class="qk-tok" title="{html.escape(fld)} · {weight:.4f}" '
            f'style="background: rgba(209,73,91,{alpha:.2f})">{html.escape(piece)}</span>'
        )
    scale = (
        '<div class="qk-caption">least attended '
        f'<span class="qk-tok" style="background: rgba(209,73,91,0.04)">{low:.4f}</span> '
        f'<span class="qk-tok" style="background: linear-gradient(90deg, rgba(209,73,91,0.04), rgba(209,73,91,0.9));'
        f'display:inline-block;width:120px">&nbsp;</span> '
        f'<span class="qk-tok" style="background: rgba(209,73,91,0.9);color:#fff">{high:.4f}</span> most attended '
        f'(uniform would be {1 / max(len(w), 1):.4f} each)</div>'
    )
    return _TOKEN_STYLE + '<div class="qk-text">' + "".join(spans) + "</div>" + scale


def reconstruction_html(original: list[str], rebuilt: list[str], probs: np.ndarray) -> str:
    """The reconstruction under the original, wrong tokens struck and marked red."""
    cells = []
    for i, (want, got) in enumerate(zip(original, rebuilt)):
        ok = want == got
        css = "qk-ok" if ok else "qk-bad"
        tip = f"{i}: {got} (p={float(probs[i]):.2f})" + ("" if ok else f", expected {want}")
        cells.append(f'<span class="qk-tok {css}" title="{html.escape(tip)}">{html.escape(got)}</span>')
    wrong = sum(a != b for a, b in zip(original, rebuilt))
    head = f'<div class="qk-caption">{len(original) - wrong} of {len(original)} tokens right</div>'
    return _TOKEN_STYLE + head + '<div class="qk-text">' + "".join(cells) + "</div>"


_TOKEN_STYLE = """<style>
.qk-text{font-family:'JetBrains Mono','DejaVu Sans Mono',monospace;font-size:12.5px;line-height:1.9;
  max-height:420px;overflow-y:auto;border:1px solid #e6e8eb;border-radius:8px;padding:10px;background:#fcfcfd}
.qk-tok{display:inline-block;max-width:100%;padding:1px 2px;margin:1px;border-radius:3px;white-space:pre-wrap;
  overflow-wrap:anywhere;line-height:1.5}
.qk-field{display:inline-block;font-size:10px;color:#fff;background:#1d3557;border-radius:8px;padding:0 6px;margin:0 3px}
.qk-ok{background:rgba(42,157,143,0.12)}
.qk-bad{background:rgba(209,73,91,0.35);text-decoration:underline wavy #d1495b}
.qk-caption{font-size:12px;color:#5f6b7a;margin-bottom:4px}
</style>"""


def precision_curve(curves: dict[str, tuple[Sequence[int], Sequence[float]]], title: str) -> go.Figure:
    """Precision at K against K, one line per ranking method; ``random`` dashed grey.

    Parameters
    ----------
    curves : dict
        Method name -> (the K, the mean precision at each K).
    title : str
    """
    fig = go.Figure()
    for i, (method, (ks, values)) in enumerate(curves.items()):
        chance = method == "random"
        fig.add_trace(go.Scatter(
            x=list(ks), y=[None if v is None or not np.isfinite(v) else v for v in values], name=html.escape(
                method.replace("_", " ")), mode="lines+markers",
            line=dict(color="#7f8c8d" if chance else CATEGORY_COLORS[i % len(CATEGORY_COLORS)], width=2,
                      dash="dash" if chance else "solid"),
            hovertemplate="P@%{x} = %{y:.2f}<extra>%{fullData.name}</extra>",
        ))
    ks = sorted({int(k) for ks_of_method, _ in curves.values() for k in ks_of_method})
    fig.update_xaxes(title="K (first records of the ranking)", type="log", tickvals=ks, ticktext=[str(k) for k in ks],
                     gridcolor="#eef0f2")
    fig.update_yaxes(title="precision at K", range=[0, 1.02], gridcolor="#eef0f2")
    return layout(fig, height=360, title=dict(text=html.escape(title), x=0.01))
