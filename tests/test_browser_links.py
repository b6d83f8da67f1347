"""Links in a real browser: a view copied from one browser context opens the same in a fresh one.

The dashboard is served by ``streamlit run`` and driven with Chromium. In one context a
colour and a record are chosen on the latent map; the address bar's link, opened in a
new context (no cookies, no session), must show the same colour and record. A data set
of eight daily scans made with ``quack sample --days 8`` is then opened from a link on
the Changes page, which must draw with no error box.
"""

import os
import re
from pathlib import Path

import pytest

from dashboard.served import CHROMIUM, REPO
from quack.cli.main import main

pytestmark = pytest.mark.browser

SLOW_MS = 300_000
ERRORS = '[data-testid="stException"], [data-testid="stAlertContentError"]'
SHIPPED = REPO / "checkpoints" / "quack-sample.ckpt"

if not Path(CHROMIUM).is_file():
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)", allow_module_level=True)
playwright_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")

from test_browser import settle  # noqa: E402 - waits until Streamlit has finished running the script
from test_browser_local import browser  # noqa: E402,F401 - one Chromium for the module, started as there


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from test_browser import serve

    cache = tmp_path_factory.mktemp("links-cache")
    days = tmp_path_factory.mktemp("links-days")
    assert main(["sample", "--days", "8", "--n", "150", "--seed", "4", "--out", str(days / "scans")]) == 0
    assert main(["ingest", str(days / "scans"), "--out", str(days / "data"), "--tokenizer-from", str(SHIPPED),
                 "--workers", "1"]) == 0
    env = dict(os.environ, QUACK_CACHE_DIR=str(cache), QUACK_CHECKPOINT_DIR=str(cache / "checkpoints"),
               QUACK_SAMPLE_SIZE="400", QUACK_DATA_ROOTS=f"{cache}:{days}")
    env.pop("QUACK_CHECKPOINT", None)
    env.pop("QUACK_DATA", None)
    for running in serve(env, cache):
        yield {**running, "days": days / "data"}


def fresh_tab(browser):
    """A tab in a context of its own: nothing of another context's session reaches it."""
    tab = browser.new_context(viewport={"width": 1500, "height": 1000}).new_page()
    tab.set_default_timeout(SLOW_MS)
    return tab


def no_errors(tab) -> None:
    found = tab.locator(ERRORS)
    assert not found.count(), found.all_inner_texts()


def record_box(tab):
    return tab.get_by_label("Record id")


def test_a_link_copied_from_one_context_opens_the_same_view_in_another(server, browser):
    first = fresh_tab(browser)
    first.goto(f"{server['url']}/?projection=PCA")
    first.get_by_text("Map: PCA").first.wait_for()
    # The map's first runs choose record 0 and rerun; a rerun briefly keeps the old widgets beside the new.
    first.wait_for_url(re.compile(r"record=0"))
    settle(first)
    colour = first.get_by_role("combobox", name="Colour by")
    playwright_api.expect(colour).to_have_count(1, timeout=SLOW_MS)
    colour.click()
    first.get_by_role("option", name="Country", exact=True).click()
    first.wait_for_url(re.compile(r"colour=country"))
    first.get_by_text("coloured by country").first.wait_for()
    settle(first)
    box = record_box(first)
    playwright_api.expect(box).to_have_count(1, timeout=SLOW_MS)
    box.fill("7")
    box.press("Enter")
    first.wait_for_url(re.compile(r"record=7"))
    no_errors(first)
    link = first.url
    # The sidebar shows the link to copy.
    shown = first.locator('[data-testid="stSidebar"] [data-testid="stCode"]')
    playwright_api.expect(shown).to_contain_text("colour=country", timeout=SLOW_MS)
    playwright_api.expect(shown).to_contain_text("record=7", timeout=SLOW_MS)
    first.context.close()

    second = fresh_tab(browser)
    second.goto(link)
    second.get_by_text("Map: PCA").first.wait_for()
    second.get_by_text("coloured by country").first.wait_for()
    playwright_api.expect(record_box(second)).to_have_value("7", timeout=SLOW_MS)
    settle(second)
    assert second.get_by_role("combobox", name="Colour by").input_value() == "Country"
    no_errors(second)
    second.context.close()


def test_the_changes_page_opens_from_a_link_on_a_sample_of_days(server, browser):
    tab = fresh_tab(browser)
    tab.goto(f"{server['url']}/changes?data={server['days']}")
    tab.get_by_role("heading", name="Between two periods").wait_for()
    tab.locator('[data-testid="stPlotlyChart"] .js-plotly-plot').first.wait_for()
    no_errors(tab)
    assert "data=" in tab.url and "/changes" in tab.url
    tab.context.close()
