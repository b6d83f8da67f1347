"""How the cost of the whole flow grows with the number of measurements.

For each size (``--sizes``, measurements of the realistic sample with real-size pages)
this runs, each as its own process as a user runs it, and times with its peak memory:

* ``quack sample --realistic --real-size --out sample.jsonl.gz`` (generation, reported
  apart from the flow);
* ``quack ingest`` with 1 and with 2 workers, both with the shipped checkpoint's
  tokenizer (``--tokenizer-from``), as data meant for that model is ingested;
* ``quack encode`` with the shipped checkpoint into an encoded folder;
* the dashboard opened on that folder (``QUACK_DATA=<folder> streamlit run
  dashboard/app.py``) in headless Chromium: seconds from the start of the server to the
  first map, to the UMAP map, then for a change of colour and for a lasso selection
  drawn with the mouse (whole, and from the mouse's release, which is what a person
  waits for), and the server's peak memory (``VmHWM``).

Peak memory is given two ways: the largest single process (``ru_maxrss`` from
``os.wait4``, the process or any of its workers) and the whole process tree's resident
memory summed, sampled four times a second (``tree``), which counts workers together.

Results go to ``bench/results/scale-<size>.json``; after the runs, or alone with
``--report``, the table for BENCHMARKS.md is printed and ``docs/scale.png`` drawn from
every result there. Generated files live under ``--work``: the sample is kept and reused
for the same size and seed (``--fresh`` writes it again), the data sets and encoded
folder are removed after each size unless ``--keep``. Each dashboard starts with an empty
cache folder; numba's cache is shared by the sizes of a ``--work`` folder, so only the
first run on a machine compiles UMAP from nothing (each result says which). A million measurements take about
1 GB for the sample and a few GB while a size runs.

    python bench/bench_scale.py --sizes 10000 100000 --work /tmp/quack-scale
    python bench/bench_scale.py --sizes 1000000 --work /tmp/quack-scale
    python bench/bench_scale.py --report
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # the dashboard is not an installed package

from dashboard.served import CHROMIUM, CHROMIUM_ARGS, served  # noqa: E402

RESULTS = REPO / "bench" / "results"
PLOT = REPO / "docs" / "scale.png"
CHECKPOINT = REPO / "checkpoints" / "quack-sample.ckpt"
PLOTLY = '[data-testid="stPlotlyChart"] .js-plotly-plot'
#: The steps in the order they run, with the names the table and the plot give them.
STEPS = {
    "sample": "quack sample",
    "ingest_1": "ingest, 1 worker",
    "ingest_2": "ingest, 2 workers",
    "encode": "quack encode",
    "first_map": "dashboard: first map",
    "umap_map": "dashboard: UMAP map",
    "colour": "dashboard: colour change",
    "lasso": "dashboard: lasso selection",
    "lasso_release": "dashboard: lasso, from release",
}


def say(text: str) -> None:
    print(f"[{datetime.now(timezone.utc):%H:%M:%S}] {text}", flush=True)


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# ------------------------------------------------------------------------------ memory

def _tree(pid: int) -> list[int]:
    """``pid`` and every process below it."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                todo += [int(c) for c in Path(f"/proc/{p}/task/{task}/children").read_text().split()]
        except OSError:
            pass
    return found


def _status_kb(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of ``pid`` so far, all its threads (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class TreeMemory:
    """The highest summed resident memory of a process tree, sampled in a thread."""

    def __init__(self, pid: int, every_s: float = 0.25) -> None:
        self.pid, self.every_s, self.peak_kb = pid, every_s, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.is_set():
            self.peak_kb = max(self.peak_kb, sum(_status_kb(p, "VmRSS") for p in _tree(self.pid)))
            self._stop.wait(self.every_s)

    def stop(self) -> float:
        """Stop sampling; the peak in MB."""
        self._stop.set()
        self._thread.join()
        return self.peak_kb / 1024


def run_step(name: str, command: list[str], env: dict | None = None) -> dict:
    """Run ``command`` to its end, its output passed through; its time and peak memory."""
    say(f"{STEPS[name]}: {shlex.join(command)}")
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=REPO, env=env)
    tree = TreeMemory(process.pid)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    figures = {"seconds": seconds, "peak_rss_mb": usage.ru_maxrss / 1024, "tree_peak_rss_mb": tree.stop(),
               "cpu_seconds": usage.ru_utime + usage.ru_stime, "command": shlex.join(command)}
    if process.returncode != 0:
        raise RuntimeError(f"{STEPS[name]} failed with exit status {process.returncode}: {shlex.join(command)}")
    say(f"{STEPS[name]}: {seconds:.1f} s, peak {figures['peak_rss_mb']:,.0f} MB "
        f"(tree {figures['tree_peak_rss_mb']:,.0f} MB)")
    return figures


def quack(*args: str) -> list[str]:
    return [sys.executable, "-m", "quack.cli.main", *args]


# ------------------------------------------------------------------------------ dashboard

def _settle(page, timeout_ms: float) -> None:
    """Wait until Streamlit has finished running the script."""
    page.wait_for_timeout(300)
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=timeout_ms)


def _lasso(page) -> float:
    """Pick the lasso in the map's modebar and draw a closed loop over the middle of the map; when the mouse let go."""
    chart = page.locator(PLOTLY).first
    chart.hover()
    chart.locator('.modebar-btn[data-title="Lasso Select"]').click()
    area = chart.locator(".nsewdrag").first.bounding_box()
    cx, cy = area["x"] + area["width"] / 2, area["y"] + area["height"] / 2
    loop = [(0.0, -0.3), (0.25, -0.2), (0.3, 0.05), (0.2, 0.3), (-0.05, 0.3), (-0.3, 0.15), (-0.3, -0.15),
            (-0.1, -0.3), (0.0, -0.3)]
    page.mouse.move(cx + loop[0][0] * area["width"], cy + loop[0][1] * area["height"])
    page.mouse.down()
    for dx, dy in loop[1:]:
        page.mouse.move(cx + dx * area["width"], cy + dy * area["height"], steps=6)
    released = time.perf_counter()
    page.mouse.up()
    return released


def dashboard_steps(
    encoded: Path, checkpoint: Path, rows: int, cache: Path, numba: Path, timeout_s: float
) -> tuple[dict, dict]:
    """Open ``encoded`` (``rows`` rows, by ``checkpoint``) in the dashboard in Chromium, with an empty cache.

    Returns
    -------
    (dict, dict)
        The steps: seconds from the server's start to the first map and to the UMAP map,
        then for the colour change and the lasso each from the end of the step before,
        with the server's peak memory so far; and what the page showed (records, the
        selection's line, the server's peak memory at the end).
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    env = dict(os.environ, QUACK_DATA=str(encoded), QUACK_CHECKPOINT=str(checkpoint), QUACK_CACHE_DIR=str(cache),
               NUMBA_CACHE_DIR=str(numba))
    say(f"dashboard: QUACK_DATA={encoded} streamlit run dashboard/app.py --server.headless true")
    figures: dict[str, dict] = {}
    shown: dict = {}
    timeout_ms = timeout_s * 1000
    cpu = [0.0]

    with served(env, cache / "streamlit.log", timeout_s=timeout_s) as running:
        server, start = running.process, running.started

        def mark(name: str, since: float) -> float:
            now, used = time.perf_counter(), _cpu_seconds(server.pid)
            figures[name] = {"seconds": now - since, "server_peak_mb": _status_kb(server.pid, "VmHWM") / 1024,
                             "cpu_seconds": used - cpu[0]}
            cpu[0] = used
            say(f"{STEPS[name]}: {now - since:.1f} s (server CPU {figures[name]['cpu_seconds']:.1f} s), "
                f"server peak so far {figures[name]['server_peak_mb']:,.0f} MB")
            return now

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1500, "height": 1000})
            page.set_default_timeout(timeout_ms)
            try:
                page.goto(running.url)
                page.locator(f"{PLOTLY} .scatterlayer, {PLOTLY} canvas").first.wait_for()
                mark("first_map", start)
                records = page.locator('[data-testid="stMetric"]', has_text="Records").first
                shown["records"] = int(records.locator('[data-testid="stMetricValue"]').inner_text().replace(",", ""))
                if shown["records"] != rows:
                    raise RuntimeError(f"The dashboard shows {shown['records']:,} records, not the {rows:,} of "
                                       f"QUACK_DATA={encoded}: it did not open the encoded folder.")
                page.get_by_text("Map: UMAP").wait_for()
                _settle(page, timeout_ms)
                now = mark("umap_map", start)
                page.get_by_role("combobox", name="Colour by").click()
                page.get_by_role("option", name="Country").click()
                page.get_by_text("coloured by country").first.wait_for()
                _settle(page, timeout_ms)
                now = mark("colour", now)
                released = _lasso(page)
                page.get_by_text("records selected").wait_for()
                _settle(page, timeout_ms)
                mark("lasso", now)
                # What the person waits for: the mouse drawing the loop (above) is their own time.
                figures["lasso_release"] = dict(figures["lasso"], seconds=time.perf_counter() - released)
                shown["selected"] = page.get_by_text("records selected").first.inner_text()
            except PlaywrightTimeout:
                # Keep the steps reached: at a size the machine cannot finish, they are the figures.
                waiting = next(name for name in ("first_map", "umap_map", "colour", "lasso") if name not in figures)
                shown["stopped"] = f"{STEPS[waiting]} not reached within {timeout_s:,.0f} s"
                say(shown["stopped"])
            page.screenshot(path=str(cache / "dashboard.png"))
            browser.close()
        shown["server_peak_mb"] = _status_kb(server.pid, "VmHWM") / 1024
    return figures, shown


# ------------------------------------------------------------------------------ one size

def _dataset_rows(folder: Path) -> int:
    return json.loads((folder / "info.json").read_text())["rows"]


def one_size(n: int, work: Path, seed: int, fresh: bool, keep: bool, timeout_s: float, command: str) -> dict:
    """Every step at ``n`` measurements; the result as written to ``bench/results/scale-<n>.json``."""
    folder = work / f"n{n}"
    folder.mkdir(parents=True, exist_ok=True)
    sample = folder / f"sample-{seed}.jsonl.gz"
    result = {"measurements": n, "seed": seed, "command": command, "date": f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
              "load_before": load_average(), "cores": len(os.sched_getaffinity(0)), "python": sys.version.split()[0],
              "steps": {}}
    say(f"== {n:,} measurements (load average {result['load_before']})")
    steps = result["steps"]
    # A copy, so that a checkpoint replaced in the project while a size runs changes nothing.
    checkpoint = folder / CHECKPOINT.name
    shutil.copyfile(CHECKPOINT, checkpoint)
    result["checkpoint_sha256"] = hashlib.sha256(checkpoint.read_bytes()).hexdigest()[:16]
    if fresh or not sample.is_file():
        sample.unlink(missing_ok=True)
        steps["sample"] = run_step("sample", quack("sample", "--out", str(sample), "--n", str(n), "--seed", str(seed),
                                                   "--realistic", "--real-size"))
        steps["sample"]["records_per_s"] = n / steps["sample"]["seconds"]
        (folder / "sample.json").write_text(json.dumps(steps["sample"]))
    else:
        say(f"quack sample: reusing {sample}")
        steps["sample"] = {**json.loads((folder / "sample.json").read_text()), "reused": True}
    result["sample_mb"] = sample.stat().st_size / 2**20
    datasets = {}
    for workers in (1, 2):
        out = folder / f"data-w{workers}"
        shutil.rmtree(out, ignore_errors=True)
        steps[f"ingest_{workers}"] = run_step(f"ingest_{workers}", quack(
            "ingest", str(sample), "--out", str(out), "--workers", str(workers), "--tokenizer-from", str(checkpoint)))
        datasets[workers] = out
    result["rows"] = _dataset_rows(datasets[2])
    for name in ("ingest_1", "ingest_2"):
        steps[name]["rows_per_s"] = result["rows"] / steps[name]["seconds"]
    if not keep:
        shutil.rmtree(datasets[1], ignore_errors=True)
    encoded = folder / "encoded"
    shutil.rmtree(encoded, ignore_errors=True)
    steps["encode"] = run_step("encode", quack("encode", "--data", str(datasets[2]), "--checkpoint", str(checkpoint),
                                               "--out", str(encoded)))
    steps["encode"]["rows_per_s"] = result["rows"] / steps["encode"]["seconds"]
    cache, numba = folder / "dashboard", work / "numba"
    shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir()
    numba.mkdir(exist_ok=True)
    result["numba_cache"] = "warm" if any(numba.iterdir()) else "empty"
    dashboard, result["dashboard"] = dashboard_steps(encoded, checkpoint, result["rows"], cache, numba, timeout_s)
    steps.update(dashboard)
    result["load_after"] = load_average()
    if not keep:
        shutil.rmtree(encoded, ignore_errors=True)
        shutil.rmtree(datasets[2], ignore_errors=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"scale-{n}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    say(f"wrote {path}")
    return result


# ------------------------------------------------------------------------------ report

def load_results(folder: Path = RESULTS) -> list[dict]:
    """Every ``scale-*.json`` in ``folder``, smallest size first."""
    return sorted((json.loads(p.read_text()) for p in folder.glob("scale-*.json")), key=lambda r: r["measurements"])


def _memory(step: dict) -> float | None:
    return step.get("server_peak_mb", step.get("tree_peak_rss_mb"))


def table(results: list[dict]) -> str:
    """The Markdown table of every step at every size: seconds (CPU seconds of the process tree, for the
    dashboard of the server alone) and peak memory."""
    head = "| step | " + " | ".join(f"{r['measurements']:,} ({r['rows']:,} rows)" for r in results) + " |"
    lines = [head, "| --- |" + " ---: |" * len(results)]
    for name, title in STEPS.items():
        cells = []
        for r in results:
            step = r["steps"].get(name)
            if step is None:
                cells.append("")
                continue
            memory, cpu = _memory(step), step.get("cpu_seconds")
            cells.append(f"{step['seconds']:,.1f} s" + (f" (CPU {cpu:,.1f} s)" if cpu is not None else "")
                         + (f", {memory / 1024:.2f} GB" if memory else ""))
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    if any("stopped" in r.get("dashboard", {}) for r in results):
        lines.append("| stopped | " + " | ".join(r.get("dashboard", {}).get("stopped", "") for r in results) + " |")
    lines.append("| numba cache at the start | " + " | ".join(r.get("numba_cache", "?") for r in results) + " |")
    lines.append("| load average before / after | "
                 + " | ".join(f"{r['load_before']} / {r.get('load_after', '?')}" for r in results) + " |")
    return "\n".join(lines)


def plot(results: list[dict], out: Path, command: str) -> Path:
    """Time and peak memory against rows, log-log, one line per step; ``command`` printed under it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (times, memory) = plt.subplots(1, 2, figsize=(12, 5.2))
    for name, title in STEPS.items():
        points = [(r["rows"], r["steps"][name]) for r in results if name in r["steps"]]
        if not points:
            continue
        rows = [x for x, _ in points]
        style = "--" if name == "sample" else "-"
        times.plot(rows, [s["seconds"] for _, s in points], style, marker="o", label=title)
        if name not in ("colour", "lasso", "lasso_release") and all(_memory(s) for _, s in points):
            memory.plot(rows, [_memory(s) / 1024 for _, s in points], style, marker="o", label=title)
    for axes, label in ((times, "seconds"), (memory, "peak memory (GB)")):
        axes.set_xscale("log")
        axes.set_yscale("log")
        axes.set_xlabel("rows")
        axes.set_ylabel(label)
        axes.grid(True, which="both", alpha=0.3)
    times.set_title("Time")
    memory.set_title("Peak memory (process tree; dashboard: server VmHWM)")
    times.legend(fontsize=8)
    loads = ", ".join(f"{r['measurements']:,}: load {r['load_before']}" for r in results)
    runs = sorted({r["command"] for r in results})
    fig.text(0.01, 0.01, "\n".join([*runs, command, loads]), fontsize=7, family="monospace", va="bottom")
    fig.tight_layout(rect=(0, 0.04 + 0.025 * len(runs), 1, 1))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def report(folder: Path = RESULTS, out: Path = PLOT) -> None:
    results = load_results(folder)
    if not results:
        raise SystemExit(f"No scale-*.json in {folder}; run a size first.")
    print("\n" + "\n".join(sorted({f"    {r['command']}" for r in results})) + "\n")
    print(table(results))
    print(f"\nwrote {plot(results, out, 'python bench/bench_scale.py --report')}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000],
                        help="numbers of measurements (default: 10000 100000 1000000)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/quack-scale"),
                        help="folder for the generated files (default: /tmp/quack-scale)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample (default: 0)")
    parser.add_argument("--fresh", action="store_true", help="write the sample again even if one is there")
    parser.add_argument("--keep", action="store_true", help="keep the data sets and encoded folder of each size")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds to wait for each dashboard step")
    parser.add_argument("--report", action="store_true", help="only print the table and draw the plot")
    args = parser.parse_args()
    if not args.report:
        command = "python bench/bench_scale.py --sizes " + " ".join(map(str, args.sizes))
        for n in args.sizes:
            one_size(n, args.work.expanduser().resolve(), args.seed, args.fresh, args.keep, args.timeout, command)
    report()


if __name__ == "__main__":
    main()
