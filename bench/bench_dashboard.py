"""Cold start of the dashboard: seconds from `streamlit run` to the first latent map, and
to the UMAP map, as seen in a real (headless Chromium) browser.

Each run starts a fresh Streamlit process with an empty cache folder, so the sample is
generated, tokenized and encoded from scratch. The first run also starts with an empty
numba cache (UMAP compiles from nothing); the next runs reuse the numba cache the first
one filled, as a second start on the same machine would.

    python bench/bench_dashboard.py --cores 2 --runs 3

Prints one line per run and a Markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # the dashboard is not an installed package

from dashboard.served import CHROMIUM, CHROMIUM_ARGS, served  # noqa: E402


def one_run(cores: list[int], numba_dir: Path, timeout_s: float) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    cache = Path(tempfile.mkdtemp(prefix="quack-bench-"))
    env = dict(
        os.environ,
        QUACK_CACHE_DIR=str(cache),
        NUMBA_CACHE_DIR=str(numba_dir),
        OMP_NUM_THREADS=str(len(cores)),
        MKL_NUM_THREADS=str(len(cores)),
        NUMBA_NUM_THREADS=str(len(cores)),
    )
    result: dict[str, float] = {}
    try:
        with served(env, cache / "streamlit.log", timeout_s=timeout_s,
                    preexec_fn=lambda: os.sched_setaffinity(0, cores)) as running:
            start = running.started
            result["server_up_s"] = time.perf_counter() - start
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1500, "height": 1000})
                page.set_default_timeout(timeout_s * 1000)
                page.goto(running.url)
                page.locator('[data-testid="stPlotlyChart"] .js-plotly-plot .scatterlayer, '
                             '[data-testid="stPlotlyChart"] .js-plotly-plot canvas').first.wait_for()
                result["first_map_s"] = time.perf_counter() - start
                page.get_by_text("Map: UMAP").wait_for()
                page.locator('[data-testid="stPlotlyChart"] .js-plotly-plot').first.wait_for()
                result["umap_map_s"] = time.perf_counter() - start
                browser.close()
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cores", type=int, default=2, help="CPU cores the dashboard may use (default 2)")
    parser.add_argument("--runs", type=int, default=3, help="runs; the first with an empty numba cache (default 3)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for each map (default 600)")
    args = parser.parse_args()
    available = sorted(os.sched_getaffinity(0))
    cores = available[: args.cores]
    numba_dir = Path(tempfile.mkdtemp(prefix="quack-bench-numba-"))
    rows = []
    try:
        for run in range(args.runs):
            numba = "empty" if run == 0 else "warm"
            figures = one_run(cores, numba_dir, args.timeout)
            rows.append((numba, figures))
            print(f"run {run + 1} (numba cache {numba}): server up {figures['server_up_s']:.1f} s, "
                  f"first map {figures['first_map_s']:.1f} s, UMAP map {figures['umap_map_s']:.1f} s", flush=True)
    finally:
        shutil.rmtree(numba_dir, ignore_errors=True)
    print("\n| run | numba cache | server up (s) | first map (s) | UMAP map (s) |\n|---|---|---|---|---|")
    for i, (numba, f) in enumerate(rows, 1):
        print(f"| {i} | {numba} | {f['server_up_s']:.1f} | {f['first_map_s']:.1f} | {f['umap_map_s']:.1f} |")
    print(f"\n{len(cores)} cores ({cores}) of {len(available)}; Python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
