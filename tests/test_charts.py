"""The dashboard's figures read cleanly: no legend over a colour bar, shading that fades, labels that do not overlap."""

import numpy as np
import pandas as pd

from dashboard import charts, map_charts


def hover(n: int) -> pd.DataFrame:
    return pd.DataFrame({"id": np.arange(n), "domain": "example.com", "vp": "1.2.3.4", "country": "DE",
                         "status": "200", "snippet": "<html>"})


def test_a_map_with_a_colour_bar_puts_its_legend_elsewhere():
    coords = np.random.default_rng(0).normal(size=(50, 2))
    fig = map_charts.map_figure(coords, hover(50), np.linspace(0, 1, 50), "classifier probability", False,
                                highlight=[1, 2])
    assert any(getattr(t, "marker", None) is not None and t.marker.colorbar.title.text for t in fig.data)
    legend = fig.layout.legend
    # The colour bar stands at the right edge beside the plot: a legend there would cover it.
    assert legend.orientation == "h" and legend.y >= 1.0


def test_the_density_shading_fades_out_beyond_the_data():
    coords = np.random.default_rng(1).normal(size=(400, 2))
    from quack.latents.regions import density

    trace = map_charts.density_trace(*density(coords, bins=40))
    x, y, z = np.asarray(trace.x), np.asarray(trace.y), np.asarray(trace.z)
    assert x.min() < coords[:, 0].min() and x.max() > coords[:, 0].max()
    assert y.min() < coords[:, 1].min() and y.max() > coords[:, 1].max()
    assert not z[0].any() and not z[-1].any() and not z[:, 0].any() and not z[:, -1].any(), "an empty rim"
    assert z.sum() > 0


def test_heatmap_labels_keep_apart_for_long_records():
    for t in (30, 61, 119, 400):
        fig = charts.attention_heatmap(np.full((t, t), 1.0 / t), [f"tok{i}" for i in range(t)],
                                       [f"tok{i}" for i in range(t)], "attention")
        x_ticks, y_ticks = fig.layout.xaxis.tickvals, fig.layout.yaxis.tickvals
        assert len(x_ticks) <= 50, f"{len(x_ticks)} slanted labels along the width for {t} tokens"
        spacing = (fig.layout.height - 260) / t * (y_ticks[1] - y_ticks[0])
        assert spacing >= 14, f"{spacing:.1f} px between y labels for {t} tokens"
        if t <= 30:
            assert len(x_ticks) == t, "a short record keeps every label"
