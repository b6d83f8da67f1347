"""The dashboard as a machine without internet meets it, and as its operator stops it.

Every request of every page goes to the local server (an icon from a font service fails
offline and tells the world who opened the page); the Original / Reconstruction boxes
wrap between tokens, never inside one; Ctrl-C stops the server while UMAP runs.
"""

import os
import re
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest

from dashboard import charts
from dashboard.served import CHROMIUM, CHROMIUM_ARGS, interrupt, served

pytestmark = pytest.mark.browser

SLOW_MS = 420_000
PAGES = ("", "attention", "discover", "data", "model", "export")

if not Path(CHROMIUM).is_file():
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)", allow_module_level=True)
playwright_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def env_for(cache: Path) -> dict:
    env = dict(os.environ, QUACK_CACHE_DIR=str(cache), QUACK_CHECKPOINT_DIR=str(cache / "checkpoints"),
               QUACK_SAMPLE_SIZE="1500")
    from quack.model.encoding import SHIPPED_CHECKPOINT

    if not Path(SHIPPED_CHECKPOINT).is_file() and "QUACK_CHECKPOINT" not in env:
        from test_browser import small_checkpoint

        env["QUACK_CHECKPOINT"] = str(small_checkpoint(cache / "model"))
    return env


def settle(tab) -> None:
    tab.wait_for_timeout(500)
    tab.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=SLOW_MS)


def test_every_request_of_every_page_goes_to_the_local_server(tmp_path, browser):
    with served(env_for(tmp_path), tmp_path / "streamlit.log") as running:
        tab = browser.new_page()
        tab.set_default_timeout(SLOW_MS)
        requested: list[str] = []
        tab.on("request", lambda request: requested.append(request.url))
        local = urlsplit(running.url).netloc
        for path in PAGES:
            tab.goto(f"{running.url}/{path}")
            tab.locator('[data-testid="stSidebarNav"]').wait_for()
            settle(tab)
        tab.close()
    assert len(requested) > len(PAGES)
    elsewhere = sorted({url for url in requested
                        if urlsplit(url).scheme not in ("data", "blob") and urlsplit(url).netloc != local})
    assert not elsewhere, f"requests that leave the machine: {elsewhere}"


def test_the_reconstruction_boxes_wrap_between_tokens_never_inside_one(browser):
    pieces = [f"token{i:03d}" for i in range(120)] + ["Content-Type:", " text/html; charset=utf-8"]
    rebuilt = list(pieces)
    rebuilt[5] = "wrong"
    tab = browser.new_page(viewport={"width": 320, "height": 900})
    tab.set_content("<div style='width:300px'>" + charts.reconstruction_html(pieces, rebuilt, np.ones(len(pieces)))
                    + "</div>")
    heights = tab.evaluate("() => [...document.querySelectorAll('.qk-text .qk-tok')].map(e => "
                           "[e.getClientRects().length, e.getBoundingClientRect().height])")
    tab.close()
    assert len(heights) == len(pieces)
    one_line = min(h for _, h in heights)
    broken = [pieces[i] for i, (boxes, h) in enumerate(heights) if boxes != 1 or h > 1.5 * one_line]
    assert not broken, f"tokens broken across lines: {broken[:5]}"


def test_ctrl_c_stops_the_server_while_umap_runs(tmp_path, browser):
    with served(env_for(tmp_path), tmp_path / "streamlit.log") as running:
        tab = browser.new_page()
        tab.set_default_timeout(SLOW_MS)
        tab.goto(running.url)
        tab.get_by_text(re.compile("Fitting UMAP|Placing the other records")).first.wait_for()
        seconds = interrupt(running, timeout_s=60)
        tab.close()
    print(f"the server exited {seconds:.1f} s after SIGINT, UMAP running")
    # Stopped, not aborted by a work thread still inside numba or torch (status 134).
    assert running.process.returncode == 0
    assert "terminate called" not in (tmp_path / "streamlit.log").read_text()
