"""The Latent map with more records than it draws: the density layer, selections over all
records, and the UMAP map fitted on fewer records than it places.

The page runs headless with Streamlit's AppTest on the built-in sample and the shipped
checkpoint, with ``QUACK_MAX_POINTS`` far below the sample's size. A selection reaches
the page as a browser sends it: the chart's widget state holds the selection event.
"""

import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.proto.WidgetStates_pb2 import WidgetStates
from streamlit.testing.v1 import AppTest

from conftest import APP, TIMEOUT, assert_clean, plotly_array
from dashboard import jobs, session
from dashboard.jobs import UMAP_DEFAULTS
from dashboard.selection import selection_counts
from quack.model.encoding import SHIPPED_CHECKPOINT

# Every page runs the whole app headless: seconds each.
pytestmark = pytest.mark.slow

DRAWN = 60


@pytest.fixture()
def env(dashboard_env, monkeypatch):
    root = dashboard_env("map-scale-dashboard", 300)
    monkeypatch.setenv("QUACK_MAX_POINTS", str(DRAWN))
    return root



def data_dir(env) -> Path:
    (folder,) = (env / "cache" / "datasets").glob("sample-*")
    return folder


def identity(env) -> jobs.Identity:
    return jobs.Identity.of(data_dir(env), SHIPPED_CHECKPOINT)


def pca_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    return at.segmented_control(key="map_method").set_value("PCA").run()


def figure(at: AppTest) -> dict:
    return json.loads(at.get("plotly_chart")[0].proto.spec)


def select(at: AppTest, selection: dict) -> AppTest:
    """Run the page with a selection event on the map, as the browser reports one."""
    states = WidgetStates()
    states.CopyFrom(at._tree.get_widget_states())
    chart = states.widgets.add()
    chart.id = at.get("plotly_chart")[0].proto.id
    chart.string_value = json.dumps({"selection": {"points": [], "point_indices": [], "box": [], "lasso": [], **selection}})
    return at._run(states)


def metrics(at: AppTest) -> dict[str, int]:
    wanted = ("Selected", "Censored", "Uncensored", "Undetermined", "Not drawn")
    return {m.label: int(m.value.replace(",", "")) for m in at.metric if m.label in wanted}


def drawn_ids(spec: dict) -> np.ndarray:
    """Record ids of the points the map draws."""
    points = [t for t in spec["data"] if t["type"] == "scattergl" and t["name"] != "chosen & neighbours"]
    return np.concatenate([plotly_array(t["customdata"]).astype(np.int64) for t in points])


def test_a_region_selection_counts_every_record_in_it_drawn_or_not(env):
    at = pca_page()
    assert_clean(at)
    coords = jobs.store().get(jobs.pca_key(identity(env), 2))
    n = len(coords)
    spec = figure(at)
    heat = [t for t in spec["data"] if t["type"] == "heatmap"]
    assert len(heat) == 1 and spec["data"][0]["type"] == "heatmap", "the density layer lies under the points"
    shade = plotly_array(heat[0]["z"]).astype(float)
    assert round(np.nansum(np.expm1(shade))) == n, "the density layer counts every record"
    drawn = drawn_ids(spec)
    # The sample, and the chosen record with its ten neighbours wherever the sample left them out.
    assert DRAWN <= len(drawn) <= DRAWN + 11 < n
    assert [t["name"].split(" ")[0] for t in spec["data"][1:4]] == ["undetermined", "uncensored", "censored"], \
        "censored drawn last, on top"
    x, y = coords[:, 0].astype(float), coords[:, 1].astype(float)

    # A box over the left half of the map.
    x0, x1, y0, y1 = x.min() - 1, float(np.median(x)), y.min() - 1, y.max() + 1
    at = select(at, {"box": [{"xref": "x", "yref": "y", "x": [x0, x1], "y": [y0, y1]}]})
    assert_clean(at)
    inside = np.flatnonzero((x >= x0) & (x <= x1))
    shown = metrics(at)
    assert shown["Selected"] == len(inside) > 0
    assert shown["Not drawn"] == len(np.setdiff1d(inside, drawn)) > 0, "the undrawn records in the box count"
    assert shown["Censored"] + shown["Uncensored"] + shown["Undetermined"] == len(inside)
    assert sorted(at.dataframe[0].value["id"].tolist()) == inside.tolist()[: len(at.dataframe[0].value)]

    # A lasso triangle: the points left of the line from (lo, lo) to (hi, hi) in x and y.
    lo, hi = float(min(x.min(), y.min())) - 1, float(max(x.max(), y.max())) + 1
    at = select(at, {"lasso": [{"xref": "x", "yref": "y", "x": [lo, lo, hi], "y": [lo, hi, hi]}]})
    assert_clean(at)
    above = np.flatnonzero(y > x)
    shown = metrics(at)
    assert shown["Selected"] == len(above) > 0
    assert shown["Not drawn"] == len(np.setdiff1d(above, drawn))

    # Clicking one point chooses that record, and selects it alone.
    record = int(drawn[0])
    at = select(at, {"points": [{"curve_number": 1, "point_index": 0, "customdata": record}], "point_indices": [0]})
    assert_clean(at)
    assert at.session_state[session.RECORD] == record and list(at.session_state[session.SELECTION]) == [record]


def test_selection_counts_per_label_and_undrawn():
    labels = np.array([1, 1, -1, -1, 0, 0, 0, 5])
    counts = selection_counts([0, 2, 4, 5, 7], labels, drawn=np.array([0, 4]))
    assert counts == {"selected": 5, "censored": 1, "uncensored": 1, "undetermined": 3, "not drawn": 3}


def test_the_umap_map_is_fitted_on_fewer_records_than_it_places(env):
    from quack.data.datafolder import read_rows
    from quack.latents.maps import fit_sample, pca

    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    at.number_input(key="umap_fit_rows").set_value(100).run()
    assert_clean(at)
    key = jobs.umap_key(identity(env), 2, **{**UMAP_DEFAULTS, "fit_rows": 100})
    job = jobs.store().submit(key, lambda: None, start=False)
    assert job is not None, "the page started the UMAP map with the fit size asked for"
    coords = job.result(timeout=600)
    progress = jobs.store().progress(key)
    n = len(coords)
    assert n > 100 and np.isfinite(coords).all() and progress.done == progress.total == n

    # Every record not fitted sits at the distance-weighted mean of its 15 nearest fitted
    # records (in the latents' first 50 principal components), as umap_at_scale places them.
    latents = jobs.store().get(jobs.encoded_key(identity(env), False)).latents
    labels = read_rows(data_dir(env), ["label"])["label"].to_numpy()
    fitted = fit_sample(labels, 100, seed=0)
    placed = np.setdiff1d(np.arange(n), fitted)
    x = pca(latents, 50).astype(np.float64)
    distances = np.linalg.norm(x[placed, None, :] - x[None, fitted, :], axis=2)
    nearest = np.argsort(distances, axis=1, kind="stable")[:, :15]
    weights = 1.0 / (np.take_along_axis(distances, nearest, axis=1) + 1e-6)
    expected = (weights[:, :, None] * coords[fitted][nearest]).sum(axis=1) / weights.sum(axis=1, keepdims=True)
    # Ties among repeated records may pick another twin as the fifteenth neighbour.
    error = np.abs(expected - coords[placed]).max(axis=1) / np.ptp(coords, axis=0).max()
    agree = error < 0.01
    assert agree.mean() > 0.95, (f"only {agree.mean():.0%} of the records lie where their fitted neighbours put them; "
                                 f"error quantiles {np.quantile(error, [0.5, 0.8, 0.9, 0.99])}")
    at.run()
    assert_clean(at)
    assert any(c.value == "Map: **UMAP**" for c in at.caption)
    assert [t for t in figure(at)["data"] if t["type"] == "heatmap"], "the UMAP map has its density layer too"
