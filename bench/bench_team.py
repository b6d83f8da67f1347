"""A team on one server: how long a fresh session waits for its map while others drive the heaviest controls.

The dashboard is served once by ``streamlit run`` (built-in sample, empty cache folder).
A warm-up visit builds and encodes the sample and fits the default UMAP map once. Then:

(a) alone: fresh browser contexts open the Latent map one after another; each is timed
    from opening the page until "Map: UMAP" is shown;
(b) under load: five contexts, each in a process of its own with its own Playwright and
    Chromium (on ``--drivers-cpus``), press the heaviest controls for ``--seconds``: the UMAP
    neighbours slider, the projection (PCA / UMAP), the records to fit on, the Discover
    page's cluster size slider and a long pattern in its pattern box. Meanwhile a sixth
    context opens the Latent map fresh again and again and is timed the same way.

With ``--server-cpus`` the server, its UMAP worker and the timed browser are kept on some
processors and the driving sessions on the others, as when a team's browsers run on their
own machines; ``py-spy``, when installed, samples how much of the time under load the
server's interpreter lock is held.

The server's resident memory (its process and every child, summed from ``/proc``) is
sampled every second throughout and its peak reported, with the server's share of the
machine's CPU time under load: on one machine the driving browsers take CPU that browsers
on the team's own machines would not.

    python bench/bench_team.py --seconds 120
    python bench/bench_team.py --seconds 120 --server-cpus 0 --alone 12

Prints one line per step and a Markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # the dashboard is not an installed package

from bench_scale import _cpu_seconds, _settle, _status_kb, _tree  # noqa: E402
from dashboard.served import CHROMIUM, CHROMIUM_ARGS, served  # noqa: E402

SESSIONS = 5
VIEWPORT = {"width": 1500, "height": 1000}
# One action of a driving session may wait this long before it counts as failed.
ACTION_MS = 60_000


def rss_bytes(pid: int) -> int:
    """Resident memory of a process and all its descendants, from ``/proc`` (0 once it is gone)."""
    return sum(_status_kb(one, "VmRSS") for one in _tree(pid)) * 1024


class MemoryWatch(threading.Thread):
    """Samples the server's resident memory every second until stopped; keeps the peak and the last value."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.last = pid, 0, 0
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            self.last = rss_bytes(self.pid)
            self.peak = max(self.peak, self.last)
            self.stopped.wait(1.0)


class CpuWatch:
    """From its start: the server's share of the machine's CPU time, and how busy the machine was."""

    def __init__(self, pid: int) -> None:
        self.pid, self.server, self.machine = pid, self._server(pid), self._machine()

    @staticmethod
    def _server(pid: int) -> float:
        return sum(_cpu_seconds(one) for one in _tree(pid))

    @staticmethod
    def _machine() -> tuple[float, float]:
        """CPU seconds of the machine since boot: all, and idle or waiting on input."""
        fields = [int(f) / os.sysconf("SC_CLK_TCK") for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return sum(fields), fields[3] + fields[4]

    def shares(self) -> tuple[float, float]:
        """(server CPU / machine CPU available, machine CPU used / available) since the start."""
        server = self._server(self.pid) - self.server
        total, idle = (now - then for now, then in zip(self._machine(), self.machine))
        return server / max(total, 1), (total - idle) / max(total, 1)


class GilWatch(threading.Thread):
    """Samples, 50 times a second for ``seconds``, which thread of the server holds its interpreter lock (py-spy).

    ``held`` is the share of the samples in which some thread held it (None when py-spy is not
    installed or failed); ``top`` the three threads that held it most, with their shares of all samples.
    """

    RATE = 50

    def __init__(self, pid: int, seconds: float) -> None:
        super().__init__(daemon=True)
        self.pid, self.seconds = pid, seconds
        self.held: float | None = None
        self.top: list[tuple[str, float]] = []

    def run(self) -> None:
        spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
        if spy is None or self.seconds < 1:
            return
        with tempfile.TemporaryDirectory() as folder:
            out = Path(folder) / "gil.txt"
            subprocess.run([spy, "record", "--gil", "--threads", "--pid", str(self.pid), "--rate", str(self.RATE),
                            "--duration", str(round(self.seconds)), "--format", "raw", "-o", str(out)],
                           capture_output=True, timeout=self.seconds + 60)
            if not out.exists():
                return
            threads: dict[str, int] = {}
            for line in out.read_text().splitlines():
                stack, _, count = line.rpartition(" ")
                name = stack.split(";", 1)[0].split(": ", 1)[-1]
                threads[name] = threads.get(name, 0) + int(count)
        expected = self.RATE * round(self.seconds)
        self.held = sum(threads.values()) / expected
        self.top = [(name, n / expected) for name, n in sorted(threads.items(), key=lambda kv: -kv[1])[:3]]


def _visit_time(browser, url: str, timeout_s: float, until) -> float:
    """Seconds from opening ``url`` in a fresh context until ``until(page)`` returns."""
    context = browser.new_context(viewport=VIEWPORT)
    try:
        page = context.new_page()
        page.set_default_timeout(timeout_s * 1000)
        start = time.perf_counter()
        page.goto(url)
        until(page)
        return time.perf_counter() - start
    finally:
        context.close()


def map_time(browser, url: str, timeout_s: float) -> float:
    """Seconds from opening the Latent map in a fresh context until "Map: UMAP" is shown."""
    return _visit_time(browser, url, timeout_s, lambda page: page.get_by_text("Map: UMAP").wait_for())


def evaluation_time(browser, url: str, timeout_s: float) -> float:
    """Seconds from opening the Discover page's Evaluate tab until the evaluation's figures are shown."""
    def figures_shown(page) -> None:
        page.get_by_role("tab", name="Evaluate").click()
        page.get_by_text("Best method").first.wait_for()

    return _visit_time(browser, f"{url}/discover", timeout_s, figures_shown)


def slider(page, label: str):
    """The range input of the slider labelled ``label``."""
    return page.locator('[data-testid="stSlider"]', has_text=label).locator('input[type="range"]').first


def long_pattern(session: int, round_: int) -> str:
    """A pattern of about 1,500 characters, different every time so nothing is reused."""
    words = "|".join(f"blocked{session}x{round_}y{i}" for i in range(80))
    return f"(?:{words})[^<]{{0,40}}(?:access|denied|forbidden)"


def drive(url: str, session: int, until: float, counts: dict, failures: list) -> None:
    """Press the heaviest controls of the Latent map and the Discover page until ``until`` (``time.time()``)."""
    from playwright.sync_api import sync_playwright

    done = 0
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_context(viewport=VIEWPORT).new_page()
        page.set_default_timeout(ACTION_MS)
        round_ = 0
        while time.time() < until:
            round_ += 1
            try:
                page.goto(url)
                page.get_by_role("heading", name="Latent map").wait_for()
                page.get_by_text("UMAP options").first.click()
                neighbours = slider(page, "Neighbours")
                for _ in range(3):
                    neighbours.focus()
                    neighbours.press("ArrowRight" if round_ % 2 else "ArrowLeft")
                    done += 1
                    page.wait_for_timeout(400)
                fit = page.get_by_role("spinbutton", name="Records to fit on")
                fit.fill(str(500 + 100 * (round_ % 15)))
                fit.press("Enter")
                done += 1
                page.get_by_role("radio", name="PCA", exact=True).click()
                page.wait_for_timeout(400)
                page.get_by_role("radio", name="UMAP", exact=True).click()
                done += 2
                _settle(page, ACTION_MS)
                if time.time() >= until:
                    break
                page.goto(f"{url}/discover")
                page.get_by_role("heading", name="Discover").first.wait_for()
                page.get_by_role("tab", name="Clusters and fingerprints").click()
                size = slider(page, "Smallest cluster")
                size.wait_for()
                for _ in range(2):
                    size.focus()
                    size.press("ArrowRight" if round_ % 2 else "ArrowLeft")
                    done += 1
                    page.wait_for_timeout(400)
                box = page.get_by_label("Pattern (Python regular expression)").first
                box.fill(long_pattern(session, round_))
                box.press("Control+Enter")
                done += 1
                _settle(page, ACTION_MS)
            except Exception as error:  # a slow or refused action is counted, and the session goes on
                failures.append(f"session {session} round {round_}: {type(error).__name__}: {str(error)[:160]}")
        browser.close()
    counts[session] = done


def drive_apart(url: str, session: int, until: float, cpus: set[int] | None, results) -> None:
    """:func:`drive` in a process of its own, its Chromium too, on ``cpus`` (all when None); puts (session, count, failures)."""
    if cpus:
        # Inherited by Chromium, which (run as root) sets its processes' niceness itself, so niceness cannot hold it.
        os.sched_setaffinity(0, cpus)
    counts: dict[int, int] = {}
    failures: list[str] = []
    drive(url, session, until, counts, failures)
    results.put((session, counts.get(session, 0), failures))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=120, help="how long the five sessions drive (default 120)")
    parser.add_argument("--alone", type=int, default=3, help="timed visits with no load (default 3)")
    parser.add_argument("--sample", type=int, default=2000, help="measurements in the built-in sample (default 2000)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for one map (default 600)")
    parser.add_argument("--drivers-cpus", type=int, nargs="+", default=None, metavar="CPU",
                        help="the processors the five driving sessions and their Chromium may use (default: all); "
                             "one of two leaves the other to the server and the timed browser, as browsers on "
                             "the team's own machines would")
    parser.add_argument("--server-cpus", type=int, nargs="+", default=None, metavar="CPU",
                        help="the processors the server, its worker and the timed browser may use (default: all); "
                             "the driving sessions then default to the others, so that no driving browser renders "
                             "on the server's processors")
    parser.add_argument("--gil-seconds", type=float, default=60,
                        help="under load, sample for this long which thread holds the server's interpreter lock "
                             "(`py-spy record --gil`; skipped when py-spy is not installed; 0: never)")
    parser.add_argument("--warm-discover", action="store_true",
                        help="the warm-up visit also opens the Discover page and waits for its evaluation, so that "
                             "the driving sessions find it done")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    drivers_cpus = set(args.drivers_cpus) if args.drivers_cpus else None
    if args.server_cpus:
        # Inherited by the server, its worker process and the timed Chromium.
        os.sched_setaffinity(0, set(args.server_cpus))
        drivers_cpus = drivers_cpus or set(range(os.cpu_count() or 1)) - set(args.server_cpus) or None
    cache = Path(tempfile.mkdtemp(prefix="quack-bench-team-"))
    env = dict(os.environ, QUACK_CACHE_DIR=str(cache), QUACK_CHECKPOINT_DIR=str(cache / "checkpoints"),
               QUACK_SAMPLE_SIZE=str(args.sample))
    for name in ("QUACK_DATA", "QUACK_CHECKPOINT"):
        env.pop(name, None)
    try:
        with served(env, cache / "streamlit.log", timeout_s=args.timeout) as running:
            watch = MemoryWatch(running.process.pid)
            watch.start()
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                warm = map_time(browser, running.url, args.timeout)
                print(f"warm-up (sample built, encoded, UMAP fitted): {warm:.1f} s", flush=True)
                if args.warm_discover:
                    print(f"warm-up of the Discover page's evaluation: {evaluation_time(browser, running.url, args.timeout):.1f} s",
                          flush=True)
                idle_rss = watch.last
                alone = [map_time(browser, running.url, args.timeout) for _ in range(args.alone)]
                print("alone: " + ", ".join(f"{t:.2f} s" for t in alone), flush=True)

                counts: dict[int, int] = {}
                failures: list[str] = []
                until = time.time() + args.seconds
                spawn = multiprocessing.get_context("spawn")
                results = spawn.Queue()
                drivers = [spawn.Process(target=drive_apart, args=(running.url, i, until, drivers_cpus, results))
                           for i in range(SESSIONS)]
                for driver in drivers:
                    driver.start()
                cpu = CpuWatch(running.process.pid)
                # Let the five sessions get going before the first timed visit.
                time.sleep(min(15.0, args.seconds / 4))
                gil = GilWatch(running.process.pid, min(args.gil_seconds, until - time.time() - 5))
                gil.start()
                loaded = []
                while time.time() < until:
                    loaded.append(map_time(browser, running.url, args.timeout))
                    print(f"under load: {loaded[-1]:.2f} s (peak RSS so far {watch.peak / 2**20:,.0f} MB)", flush=True)
                for _ in drivers:
                    session, count, failed = results.get()
                    counts[session] = count
                    failures += failed
                for driver in drivers:
                    driver.join()
                server_share, busy = cpu.shares()
                gil.join()
                browser.close()
            watch.stopped.set()
            watch.join()
    finally:
        shutil.rmtree(cache, ignore_errors=True)

    alone_s, loaded_s = statistics.median(alone), statistics.median(loaded)
    print(f"\nactions pressed per driving session: {[counts.get(i, 0) for i in range(SESSIONS)]}; "
          f"failed rounds: {len(failures)}")
    for line in failures[:10]:
        print("  " + line)
    print("\n| map alone, median (s) | map under 5 sessions, median / worst (s) | ratio median / worst "
          "| visits alone / under load | server RSS idle / peak (MB) |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    print(f"| {alone_s:.2f} | {loaded_s:.2f} / {max(loaded):.2f} | {loaded_s / alone_s:.1f}x / "
          f"{max(loaded) / alone_s:.1f}x | {len(alone)} / {len(loaded)} | {idle_rss / 2**20:,.0f} / "
          f"{watch.peak / 2**20:,.0f} |")
    if gil.held is not None:
        print(f"\nthe server's interpreter lock was held {100 * gil.held:.0f} % of {gil.seconds:.0f} s under load; "
              "the threads that held it most: " + "; ".join(f"{name} {100 * share:.0f} %" for name, share in gil.top))
    print(f"\n{os.cpu_count()} cores, the server on {sorted(os.sched_getaffinity(0))}; sample {args.sample:,}; {args.seconds:.0f} s of load; "
          f"drivers on CPUs {'all' if drivers_cpus is None else sorted(drivers_cpus)}; under load the server took {100 * server_share:.0f} % of the "
          f"machine's CPU time, the machine was {100 * busy:.0f} % busy; Python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
