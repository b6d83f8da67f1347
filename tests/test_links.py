"""Views that open from a link: every view setting through the query string and back, and hostile links.

Run headless with Streamlit's AppTest: a link's query string is set before the first run
(as a browser opening the address does), and what the session shows is read from its
widgets; after a widget changes, the query string must hold the new value.
"""

import re
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from conftest import APP, TIMEOUT, assert_clean
from dashboard import session
from test_app_changes import days  # noqa: F401 - the Changes page's sample of eight days

pytestmark = pytest.mark.slow

SHIPPED = Path(__file__).resolve().parents[1] / "checkpoints" / "quack-sample.ckpt"


@pytest.fixture()
def env(dashboard_env, monkeypatch, days):
    root = dashboard_env("links-dashboard", 300)
    # The days' folder is shared, as an operator shares a data folder.
    monkeypatch.setenv("QUACK_DATA_ROOTS", f"{days['root']}:{root / 'cache'}")
    return {**days, "scans": days["truth"]["scans"], "cache": root / "cache"}


def opened(page: str | None = None, **params) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update(params)
    if page is not None:
        at.switch_page(f"app_pages/{page}.py")
    return at.run()


def warnings_of(at: AppTest) -> list[str]:
    return [w.value for w in at.warning]


def unescaped_markup(markdown: str) -> bool:
    return re.search(r"(?<!\\)[<\[]", markdown) is not None


def test_the_latent_map_view_goes_through_the_link_and_back(env):
    link = {"projection": "PCA", "view": "2D", "colour": "country", "neighbours": "7", "min_dist": "0.35",
            "metric": "euclidean", "fit_all": "0", "fit_rows": "2000", "record": "5", "ids": "3,5,8"}
    at = opened(**link)
    assert_clean(at)
    assert not at.warning, warnings_of(at)
    assert at.selectbox(key="map_colour").value == "country"
    assert at.slider(key="umap_neighbors").value == 7
    assert at.slider(key="umap_min_dist").value == pytest.approx(0.35)
    assert at.selectbox(key="umap_metric").value == "euclidean"
    assert at.number_input(key="umap_fit_rows").value == 2000
    assert at.session_state[session.RECORD] == 5
    assert list(at.session_state[session.SELECTION]) == [3, 5, 8]
    assert "Map: **PCA**" in [c.value for c in at.caption]
    # What the session shows is what the address bar holds: the link round-trips.
    for name, value in link.items():
        assert at.query_params[name] == value, name
    at.selectbox(key="map_colour").set_value("service").run()
    assert at.query_params["colour"] == "service"
    at.number_input(key="map_record_5").set_value(9).run()
    assert at.query_params["record"] == "9"
    again = opened(**at.query_params)
    assert again.selectbox(key="map_colour").value == "service" and again.session_state[session.RECORD] == 9


def test_a_large_selection_is_saved_and_named(env):
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.session_state[session.SELECTION] = np.arange(0, 200, 2, dtype=np.int64)
    at.query_params.update({"projection": "PCA"})
    at.run()
    name = at.query_params["saved"]
    assert "ids" not in at.query_params and len(name) == 16
    assert (env["cache"] / "links" / f"{name}.npy").is_file()
    fresh = opened(projection="PCA", saved=name)
    assert_clean(fresh)
    assert list(fresh.session_state[session.SELECTION]) == list(range(0, 200, 2))


def test_the_data_source_and_changes_view_go_through_the_link(env):
    scans = env["scans"]
    link = {"data": str(env["data"]), "by": "domain", "before": [scans[0], scans[1]], "after": [scans[2], scans[3]],
            "threshold": "1.5"}
    at = opened("changes", **link)
    assert_clean(at)
    assert not at.warning, warnings_of(at)
    assert at.session_state[session.SOURCE]["paths"] == [str(env["data"])]
    assert at.selectbox(key="changes_by").value == "domain"
    assert at.select_slider(key="changes_before").value == (scans[0], scans[1])
    assert at.select_slider(key="changes_after").value == (scans[2], scans[3])
    assert at.number_input(key="changes_threshold").value == 1.5
    for name, value in link.items():
        assert at.query_params[name] == value, name
    at.multiselect(key="changes_groups_domain").set_value(at.multiselect(key="changes_groups_domain").options[:2]).run()
    groups = at.multiselect(key="changes_groups_domain").value
    assert len(groups) == 2 and at.query_params["groups"] == groups
    at.select_slider(key="changes_after").set_value((scans[3], scans[3])).run()
    assert at.query_params["after"] == [scans[3], scans[3]]
    # A scan the data set does not hold is left out with one sentence, the rest of the link kept.
    odd = opened("changes", **{**link, "before": ["no-such-scan", scans[1]]})
    assert_clean(odd)
    assert odd.selectbox(key="changes_by").value == "domain"
    assert sum("earlier period" in w.value for w in odd.warning) == 1


def test_the_data_pages_filters_go_through_the_link(env):
    at = opened("data")
    countries = at.multiselect(key="filter_country").options[:2]
    link = {"country": countries, "label": ["censored", "undetermined"], "domain_contains": "a"}
    at = opened("data", **link)
    assert_clean(at)
    assert not at.warning, warnings_of(at)
    assert at.multiselect(key="filter_country").value == countries
    assert at.multiselect(key="filter_label").value == ["censored", "undetermined"]
    assert at.text_input(key="filter_domain").value == "a"
    for name, value in link.items():
        assert at.query_params[name] == value, name
    shown = [c.value for c in at.caption if " of " in c.value and c.value.endswith("records")]
    at.multiselect(key="filter_label").set_value(["censored"]).run()
    assert at.query_params["label"] in (["censored"], "censored")
    # A country the data set does not hold is left out with one sentence, the rest of the link kept.
    odd = opened("data", **{**link, "country": ["ZZ", countries[0]]})
    assert_clean(odd)
    assert odd.multiselect(key="filter_country").value == [countries[0]]
    assert sum("country filter" in w.value for w in odd.warning) == 1
    assert shown, "the filtered count is shown"


def test_a_chosen_checkpoint_goes_through_the_link(env):
    chosen = env["cache"] / "shared-ckpt" / "model.ckpt"
    chosen.parent.mkdir(parents=True, exist_ok=True)
    chosen.write_bytes(SHIPPED.read_bytes())
    at = opened(checkpoint=str(chosen), projection="PCA")
    assert_clean(at)
    assert at.session_state[session.CHECKPOINT] == str(chosen.resolve())
    assert Path(at.query_params["checkpoint"]) == chosen.resolve()


def test_a_path_outside_the_shared_folders_gets_the_sentence_typing_it_gets(env, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    linked = opened(projection="PCA", data=str(outside))
    typed = opened("data")
    typed.radio(key="data_kind").set_value("path").run()
    typed.text_input(key="data_path").input(str(outside)).run()
    typed.button(key="data_load").click().run()
    assert [e.value for e in linked.error] == [e.value for e in typed.error] and len(linked.error) == 1
    assert not linked.exception
    assert session.SOURCE not in linked.session_state, "the session stays on the data it opens by default"
    assert "data" not in linked.query_params, "the refused path is not carried on"


def test_hostile_values_are_refused_with_one_sentence_each_and_escaped(env):
    hostile = {"colour": '<img src=x onerror="alert(1)">', "record": "-4", "neighbours": "1" + "0" * 40,
               "min_dist": "nan", "ids": "1,-2", "projection": "PCA",
               "metric": "[x](http://evil)", "checkpoint": "/etc/hostname"}
    at = opened(**hostile)
    assert not at.exception
    said = warnings_of(at) + [e.value for e in at.error]
    assert len(said) == len(hostile) - 1, said  # every hostile part but the projection
    assert not any(unescaped_markup(text) for text in said), said
    assert at.selectbox(key="map_colour").value == "label"
    assert at.session_state[session.RECORD] == 0 if session.RECORD in at.session_state else True
    escaping = opened(projection="PCA", saved="../../etc/passwd")
    assert not escaping.exception and len(escaping.warning) == 1
    assert session.SELECTION not in escaping.session_state
    # An id beyond the data set is not an error on the page: it is left out, said once.
    big = opened(projection="PCA", record="99999", ids="1,99998")
    assert_clean(big)
    assert len(big.warning) == 1 and re.search(r"holds [0-9\\,]+ records", big.warning[0].value)
    assert list(big.session_state[session.SELECTION]) == [1]
