"""An encoded folder in a real browser: made with `quack ingest` and `quack encode`, opened with QUACK_DATA.

The server is started the way the README's laptop flow starts it, pointed at a folder
written by the command line; the latent map must appear from the folder's latents with
no error box. A screenshot goes to ``test-artifacts/``.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dashboard.served import CHROMIUM, CHROMIUM_ARGS, REPO

pytestmark = pytest.mark.browser

ARTIFACTS = REPO / "test-artifacts"
SLOW_MS = 300_000
ERRORS = '[data-testid="stException"], [data-testid="stAlertContentError"]'

if not Path(CHROMIUM).is_file():
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)", allow_module_level=True)
playwright_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")


def quack(*args: str, cwd: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-m", "quack.cli.main", *args], cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


@pytest.fixture(scope="module")
def encoded(tmp_path_factory):
    """An encoded folder written by the command line, from a small sample and a small checkpoint."""
    from test_browser import small_checkpoint

    root = tmp_path_factory.mktemp("browser-folders")
    checkpoint = small_checkpoint(root / "model")
    quack("sample", "--n", "300", "--seed", "11", "--out", str(root / "raw.json"), cwd=root)
    quack("ingest", str(root / "raw.json"), "--tokenizer-from", str(checkpoint), "--out", str(root / "data"), cwd=root)
    quack("encode", "--data", str(root / "data"), "--checkpoint", str(checkpoint), "--out", str(root / "encoded"),
          "--accelerator", "cpu", cwd=root)
    return {"folder": root / "encoded", "checkpoint": Path(checkpoint)}


@pytest.fixture(scope="module")
def server(encoded, tmp_path_factory):
    cache = tmp_path_factory.mktemp("browser-folders-cache")
    env = dict(os.environ, QUACK_CACHE_DIR=str(cache), QUACK_CHECKPOINT_DIR=str(cache / "checkpoints"),
               QUACK_DATA=str(encoded["folder"]))
    env.pop("QUACK_CHECKPOINT", None)
    from test_browser import serve

    yield from serve(env, cache)


def no_errors(tab) -> None:
    found = tab.locator(ERRORS)
    if found.count():
        pytest.fail("error on the page: " + " | ".join(found.all_inner_texts())[:2000])


def test_an_encoded_folder_opens_on_its_latent_map(server, encoded):
    ARTIFACTS.mkdir(exist_ok=True)
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        tab = browser.new_context(viewport={"width": 1500, "height": 1000}).new_page()
        tab.set_default_timeout(SLOW_MS)
        tab.goto(server["url"])
        tab.get_by_role("heading", name="Latent map").wait_for()
        tab.locator('[data-testid="stPlotlyChart"] .js-plotly-plot').first.wait_for()
        tab.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=SLOW_MS)
        no_errors(tab)
        sidebar = tab.locator('[data-testid="stSidebar"]').inner_text()
        assert encoded["folder"].name in sidebar
        assert encoded["checkpoint"].name in sidebar, "the session uses the checkpoint that encoded the folder"
        assert not (server["cache"] / "datasets").exists(), "nothing was ingested again"
        tab.screenshot(path=str(ARTIFACTS / "encoded_folder_latent_map.png"))
        browser.close()
