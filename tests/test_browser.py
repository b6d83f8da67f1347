"""The dashboard in a real browser: served by `streamlit run`, driven with Chromium.

Loads the app, waits for the latent map, box-selects points with the mouse, opens a
record's attention heatmap, writes an export, and visits every page; fails on any
exception or error box. Types runaway patterns on the Discover page while checking that
the server still answers. A screenshot of each page goes to ``test-artifacts/``.
"""

import os
import re
import time
import urllib.request
from pathlib import Path

import pytest

from dashboard.served import CHROMIUM, CHROMIUM_ARGS, REPO, served

pytestmark = pytest.mark.browser

ARTIFACTS = REPO / "test-artifacts"
# Cold start on a small machine: sample generation, tokenizing, encoding, and UMAP's
# first compile all happen inside these waits.
SLOW_MS = 420_000

if not Path(CHROMIUM).is_file():
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)", allow_module_level=True)
playwright_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")

ERRORS = '[data-testid="stException"], [data-testid="stAlertContentError"]'


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    cache = tmp_path_factory.mktemp("browser-cache")
    env = dict(os.environ, QUACK_CACHE_DIR=str(cache), QUACK_CHECKPOINT_DIR=str(cache / "checkpoints"))
    from quack.model.encoding import SHIPPED_CHECKPOINT

    if not Path(SHIPPED_CHECKPOINT).is_file() and "QUACK_CHECKPOINT" not in env:
        env["QUACK_CHECKPOINT"] = str(small_checkpoint(tmp_path_factory.mktemp("browser-model")))
        env["QUACK_SAMPLE_SIZE"] = "600"
    yield from serve(env, cache)


def serve(env: dict, cache: Path):
    """The dashboard served with ``env`` for a module's tests: ``{"url", "cache"}``; a failed start fails the test."""
    try:
        with served(env, cache / "streamlit.log") as running:
            yield {"url": running.url, "cache": cache}
    except RuntimeError as error:
        pytest.fail(str(error))


def small_checkpoint(folder: Path) -> Path:
    from quack.data.build import build_dataset
    from quack.sample.generator import write_sample
    from quack.model.training import fit

    records, _ = write_sample(folder / "train.json", n=600, seed=5)
    build_dataset([str(records)], folder / "data", vocab_size=1500, max_tokens=128)
    result = fit(folder / "data", folder / "run", model_options={"embed_size": 32, "hidden_size": 64},
                 max_epochs=2, batch_size=64, progress_bar=False, logger="none", patience=0)
    return result.checkpoint


@pytest.fixture(scope="module")
def page(server):
    ARTIFACTS.mkdir(exist_ok=True)
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1500, "height": 1000}, accept_downloads=True)
        tab = context.new_page()
        tab.set_default_timeout(SLOW_MS)
        yield tab
        browser.close()


def no_errors(tab) -> None:
    found = tab.locator(ERRORS)
    if found.count():
        pytest.fail("error on the page: " + " | ".join(found.all_inner_texts())[:2000])


def settle(tab) -> None:
    """Wait until Streamlit has finished running the script."""
    tab.wait_for_timeout(500)
    tab.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=SLOW_MS
    )


def shoot(tab, name: str) -> None:
    # Streamlit scrolls inside its main container, so grow the window to the content
    # for a picture of the whole page.
    height = tab.evaluate(
        "() => Math.max(...[...document.querySelectorAll('[data-testid=\"stMain\"], section.main')]"
        ".map(e => e.scrollHeight), 1000)"
    )
    tab.set_viewport_size({"width": 1500, "height": min(int(height) + 40, 6000)})
    tab.wait_for_timeout(800)
    tab.screenshot(path=str(ARTIFACTS / f"{name}.png"))
    tab.set_viewport_size({"width": 1500, "height": 1000})


def go_to(tab, title: str) -> None:
    """Open a page from the sidebar, once the current run is over.

    A click that lands while the page's first run is still drawing can be lost, so the
    click is repeated until the page's heading shows.
    """
    settle(tab)
    link = tab.locator('[data-testid="stSidebarNav"] a', has_text=title).first
    heading = tab.get_by_role("heading", name=title).first
    for attempt in range(4):
        link.click()
        try:
            heading.wait_for(timeout=SLOW_MS // 4)
            break
        except playwright_api.TimeoutError:
            if attempt == 3:
                raise
            settle(tab)
    settle(tab)


def test_the_whole_loop_in_a_browser(server, page):
    page.goto(server["url"])
    page.get_by_role("heading", name="Latent map").wait_for()
    page.locator('[data-testid="stPlotlyChart"] .js-plotly-plot').first.wait_for()
    no_errors(page)
    page.get_by_text("Map: UMAP").wait_for(timeout=SLOW_MS)
    settle(page)
    no_errors(page)

    # Box-select the middle of the map with the mouse.
    area = page.locator('[data-testid="stPlotlyChart"] .nsewdrag').first.bounding_box()
    page.mouse.move(area["x"] + area["width"] * 0.3, area["y"] + area["height"] * 0.3)
    page.mouse.down()
    page.mouse.move(area["x"] + area["width"] * 0.7, area["y"] + area["height"] * 0.7, steps=12)
    page.mouse.up()
    page.get_by_text("records selected").wait_for()
    settle(page)
    no_errors(page)
    shoot(page, "latent_map")

    page.get_by_role("button", name="Open on the Attention page").click()
    page.get_by_role("heading", name="Attention").first.wait_for()
    page.locator('[data-testid="stPlotlyChart"] .js-plotly-plot').first.wait_for()
    settle(page)
    no_errors(page)
    assert page.locator(".hm, .heatmaplayer").count() > 0, "the attention heatmap is drawn"
    shoot(page, "attention")
    page.get_by_role("tab", name="Attention over the text").click()
    page.locator(".qk-text").first.wait_for()
    shoot(page, "attention_text")
    page.get_by_role("tab", name="Per field, for a selection").click()
    page.locator('[data-testid="stPlotlyChart"] .barlayer').first.wait_for()
    settle(page)
    no_errors(page)
    shoot(page, "attention_fields")

    go_to(page, "Export")
    target = server["cache"] / "exports" / "browser-export"
    name_box = page.get_by_role("textbox", name="Export folder name", exact=True)
    name_box.fill(target.name)
    name_box.press("Enter")
    settle(page)
    page.get_by_role("button", name="Write").click()
    page.get_by_text(f"Wrote the export {target.name}").wait_for()
    settle(page)
    no_errors(page)
    assert (target / "metadata.json").is_file()
    with page.expect_download() as download:
        page.get_by_test_id("stDownloadButton").get_by_role("button").click()
    assert download.value.suggested_filename.endswith(".parquet")
    shoot(page, "export")

    for title, name in (("Data", "data"), ("Model", "model"), ("Discover", "discover")):
        go_to(page, title)
        page.locator('[data-testid="stMetric"]').first.wait_for()
        settle(page)
        no_errors(page)
        shoot(page, name)
    page.get_by_role("tab", name="Clusters and fingerprints").click()
    page.get_by_text(re.compile("Propose a fingerprint|found no clusters")).first.wait_for()
    settle(page)
    no_errors(page)
    shoot(page, "discover_clusters")



def answers_health(url: str, within: float = 5.0) -> bool:
    """Whether the server answers its health check within ``within`` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=max(deadline - time.monotonic(), 0.1)) as answer:
                if answer.status == 200:
                    return True
        except OSError:
            time.sleep(0.1)
    return False


def test_a_runaway_pattern_leaves_the_server_answering(server, page):
    page.goto(f"{server['url']}/discover")
    page.get_by_role("heading", name="Discover").first.wait_for()
    settle(page)
    page.get_by_role("tab", name="Clusters and fingerprints").click()
    box = page.get_by_label("Pattern (Python regular expression)")
    box.wait_for()
    settle(page)
    # Exponential for Python's own engine, which froze the server; linear for RE2.
    box.fill("(.+)+\\x00")
    box.press("Control+Enter")
    assert answers_health(server["url"]), "the server answers while the pattern is searched"
    page.get_by_text("Matches in the cluster").wait_for()
    settle(page)
    no_errors(page)
    # Exponential for every backtracking engine: stopped at its time limit.
    box.fill("(.|.)+(?<=\\x00)")
    box.press("Control+Enter")
    assert answers_health(server["url"]), "the server answers while the pattern is stopped"
    refusal = page.locator('[data-testid="stAlertContentError"]')
    refusal.wait_for()
    text = refusal.inner_text().strip()
    assert text.startswith("The pattern '(.|.)+(?<=\\x00)' in the Discover page's pattern box ran longer than")
    assert text.endswith(".") and text.count(". ") == 0 and "Traceback" not in text, "one sentence"
    assert answers_health(server["url"])
    shoot(page, "discover_pattern_refused")


def test_training_runs_in_the_background_with_a_live_curve_and_stops(server, page):
    page.goto(server["url"])
    page.get_by_role("heading", name="Latent map").wait_for()
    go_to(page, "Model")
    page.get_by_role("tab", name="Train a new model").click()
    for label, value in (("Embedding size", "8"), ("Hidden size (even)", "16"), ("Epochs", "20"), ("Batch size", "128")):
        box = page.get_by_role("spinbutton", name=label, exact=True)
        box.fill(value)
        box.press("Tab")
    page.get_by_role("button", name="Start training").click()
    stop = page.get_by_role("button", name="Stop training")
    stop.wait_for()
    # The loss curve is drawn by the polling fragment while the thread trains.
    page.locator('[data-testid="stPlotlyChart"] .js-plotly-plot').first.wait_for()
    no_errors(page)
    # A few steps on the curve for the picture: waited for, not slept.
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=\"stPlotlyChart\"] .js-plotly-plot')]"
        ".some(g => (g.data || []).some(t => (t.x || []).length >= 5))",
        timeout=SLOW_MS,
    )
    shoot(page, "model_training")
    stop.click()
    # The run says it was stopped, at which step, and which checkpoint it kept.
    page.get_by_text(re.compile(r"was stopped at step [0-9,]+; it kept its best checkpoint .*epoch=")).wait_for()
    no_errors(page)
    assert list((server["cache"] / "checkpoints" / "trained").glob("*.ckpt"))
