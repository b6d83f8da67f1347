"""Score the change view on a sample of days: is every injected change found, and how quiet are quiet days?

Usage::

    quack sample --days 14 --n 2000 --out DAYS
    quack ingest DAYS --out DATA --tokenizer-from checkpoints/quack-sample.ckpt
    quack encode --data DATA --out ENCODED --no-loss
    python bench/bench_changes.py DAYS DATA ENCODED [--threshold T] [--top 10]

Each day is compared with the day before. A change counts as found when it is in the top
``--top`` of the between-periods table (its country or one of its vantage points, the
right share, moving the right way) or of the new templates (a template met in its
country) for the day it starts. On a day with no change, every row of the table scored
at least ``--threshold`` (by default the comparison's
:func:`quack.discovery.changes.chance_threshold`, as the Changes page and ``quack compare``
use it) and every new template is a false alarm.

With ``--dashboard`` it also serves ``QUACK_DATA=ENCODED streamlit run dashboard/app.py``
and times, in headless Chromium with an empty cache, what a person waits for on the
Changes page: from opening it to the first chart and to the between-periods table, a
change of the earlier period (the slider's key pressed) until the table is redrawn, and
the new templates from switching them on; then, in a server of its own, the Latent map to
its UMAP map. Each server's peak memory (``VmHWM``) is given beside its times.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

from bench_scale import _settle, _status_kb, load_average, say  # puts the repository on the path

from dashboard.served import CHROMIUM, CHROMIUM_ARGS, served
from quack.discovery.changes import chance_threshold, compare_periods, parse_period
from quack.discovery.comparison import records_frame
from quack.discovery.new_templates import new_templates
from quack.model.reader import read_latents
from quack.sample.days import EVENTS_FILE


def found_in_table(changes, event, top: int) -> tuple[int | None, float]:
    """The 1-based rank of the event in the table's top rows (or None) and the score of its first row."""
    sign = 1 if event["direction"] == "up" else -1
    for rank, row in enumerate(changes.itertuples(), start=1):
        where = (row.level == "country" and row.group == event["country"]) or (
            row.level == "vp" and row.group in event["vps"])
        if where and row.share == event["label"] and row.score * sign > 0:
            return (rank if rank <= top else None), round(float(row.score), 2)
    return None, 0.0


def found_in_templates(templates, event, top: int) -> int | None:
    """The 1-based rank of the first new template met in the event's country, or None."""
    if event["direction"] != "up":
        return None
    for rank, countries in enumerate(templates.head(top)["countries"], start=1):
        if f"{event['country']} " in countries + " ":
            return rank
    return None


def dashboard_times(encoded: Path, work: Path, timeout_s: float) -> dict:
    """Seconds a person waits on the Changes page and on the Latent map of ``encoded``, and each server's peak MB."""
    from playwright.sync_api import sync_playwright

    times: dict[str, float] = {}
    shown = {}
    for page_name in ("changes", "latent map"):
        cache = work / page_name.replace(" ", "-")
        shutil.rmtree(cache, ignore_errors=True)
        cache.mkdir(parents=True)
        env = dict(os.environ, QUACK_DATA=str(encoded), QUACK_CACHE_DIR=str(cache))
        with served(env, cache / "streamlit.log", timeout_s=timeout_s) as running, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1500, "height": 1100})
            page.set_default_timeout(timeout_s * 1000)
            ms = timeout_s * 1000
            started = time.perf_counter()
            if page_name == "changes":
                page.goto(f"{running.url}/changes")
                page.locator('[data-testid="stPlotlyChart"] .js-plotly-plot').first.wait_for()
                times["changes: first chart"] = time.perf_counter() - started
                say(f"changes: first chart {times['changes: first chart']:.1f} s")
                page.get_by_text("shares changed this much").first.wait_for()
                _settle(page, ms)
                times["changes: first table"] = time.perf_counter() - started
                shown["first table"] = page.get_by_text("shares changed this much").first.inner_text()
                say(f"changes: first table {times['changes: first table']:.1f} s ({shown['first table']})")
                # The earlier period's first thumb one scan later: a new comparison.
                page.get_by_role("slider").first.focus()
                started = time.perf_counter()
                page.keyboard.press("ArrowRight")
                page.wait_for_timeout(300)
                _settle(page, ms)
                times["changes: another period"] = time.perf_counter() - started
                shown["second table"] = page.get_by_text("shares changed this much").first.inner_text()
                say(f"changes: another period {times['changes: another period']:.1f} s ({shown['second table']})")
                started = time.perf_counter()
                page.get_by_text("Look for new templates in the latents").click()
                page.wait_for_timeout(300)
                page.get_by_role("button", name="Open its first record on the Attention page").or_(
                    page.get_by_text("No new templates")).first.wait_for()
                _settle(page, ms)
                times["changes: new templates"] = time.perf_counter() - started
                shown["templates"] = page.get_by_text("No new templates").count() == 0
                say(f"changes: new templates {times['changes: new templates']:.1f} s")
            else:
                page.goto(running.url)
                page.locator('[data-testid="stPlotlyChart"] .js-plotly-plot').first.wait_for()
                times["latent map: first map"] = time.perf_counter() - started
                page.get_by_text("Map: UMAP").wait_for()
                _settle(page, ms)
                times["latent map: UMAP map"] = time.perf_counter() - started
                say(f"latent map: first map {times['latent map: first map']:.1f} s, UMAP "
                    f"{times['latent map: UMAP map']:.1f} s")
            page.screenshot(path=str(cache / "page.png"), full_page=True)
            times[f"{page_name}: server peak MB"] = _status_kb(running.process.pid, "VmHWM") / 1024
            say(f"{page_name}: server peak {times[f'{page_name}: server peak MB']:,.0f} MB")
            browser.close()
    return {"times": times, "shown": shown}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("days")
    parser.add_argument("data")
    parser.add_argument("encoded")
    parser.add_argument("--threshold", type=float, default=None,
                        help="the |score| from which a row is shown (default: chance_threshold of each comparison)")
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--min-records", type=int, default=10)
    parser.add_argument("--k", type=int, default=40)
    parser.add_argument("--dashboard", action="store_true", help="also time the Changes page and the Latent map")
    parser.add_argument("--work", default="/tmp/quack-changes", help="the dashboards' cache folders")
    parser.add_argument("--timeout", type=float, default=900, help="seconds each page may take")
    args = parser.parse_args()
    say(f"load average before: {load_average()}")
    started = time.perf_counter()
    truth = json.loads((Path(args.days) / EVENTS_FILE).read_text())
    frame = records_frame(args.data)
    latents, _ = read_latents(args.encoded, len(frame))
    say(f"read {len(frame):,} records and their latents in {time.perf_counter() - started:.1f} s")
    scans = truth["scans"]
    results, alarms = [], {}
    timings = {"table": 0.0, "templates": 0.0}
    for day in range(1, len(scans)):
        before = parse_period(scans[day - 1], scans).mask(frame)
        after = parse_period(scans[day], scans).mask(frame)
        started = time.perf_counter()
        changes = compare_periods(frame, before, after)
        timings["table"] += time.perf_counter() - started
        started = time.perf_counter()
        templates, _ = new_templates(latents, frame, before, after, k=args.k, min_records=args.min_records)
        timings["templates"] += time.perf_counter() - started
        events = [e for e in truth["events"] if e["day"] == day]
        for event in events:
            rank, score = found_in_table(changes, event, args.top)
            results.append((day, event["kind"], event["what"], rank, found_in_templates(templates, event, args.top),
                            score))
        if day in truth["quiet_days"]:
            threshold = chance_threshold(len(changes)) if args.threshold is None else args.threshold
            alarms[day] = (int((changes["score"].abs() >= threshold).sum()), len(templates),
                           round(float(changes["score"].abs().max()), 2), threshold)
    print(f"{len(frame):,} rows, {len(scans)} scans; top {args.top}, threshold |score| >= "
          f"{'chance_threshold' if args.threshold is None else args.threshold}, "
          f"templates of at least {args.min_records} records, k {args.k}")
    print("day | change | rank in table | its score | rank in new templates")
    for day, kind, what, table_rank, template_rank, score in results:
        print(f"{day} | {kind}: {what} | {table_rank} | {score} | {template_rank}")
    found = sum(1 for r in results if r[3] is not None or r[4] is not None)
    print(f"found {found} of {len(results)} changes")
    print("quiet day | threshold | table rows over it | new templates | largest |score|")
    for day, (rows, templates, largest, threshold) in alarms.items():
        print(f"{day} | {threshold:g} | {rows} | {templates} | {largest}")
    days = max(1, len(alarms))
    print(f"false alarms per quiet day: table {sum(a[0] for a in alarms.values()) / days:.2f}, "
          f"new templates {sum(a[1] for a in alarms.values()) / days:.2f}")
    print(f"time over {len(scans) - 1} comparisons: table {timings['table']:.1f} s, new templates "
          f"{timings['templates']:.1f} s")
    if args.dashboard:
        del frame, latents
        figures = dashboard_times(Path(args.encoded), Path(args.work), args.timeout)
        print(json.dumps(figures, indent=1))
        say(f"load average after: {load_average()}")


if __name__ == "__main__":
    main()
