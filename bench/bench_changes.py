"""Score the change view on a sample of days: is every injected change found, and how quiet are quiet days?

Usage::

    quack sample --days 14 --n 2000 --out DAYS
    quack ingest DAYS --out DATA --tokenizer-from checkpoints/quack-sample.ckpt
    quack encode --data DATA --out ENCODED --no-loss
    python bench/bench_changes.py DAYS DATA ENCODED [--threshold 3] [--top 10]

Each day is compared with the day before. A change counts as found when it is in the top
``--top`` of the between-periods table (its country or one of its vantage points, the
right share, moving the right way) or of the new templates (a template met in its
country) for the day it starts. On a day with no change, every row of the table scored
at least ``--threshold`` and every new template is a false alarm.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from quack.discovery.changes import compare_periods, parse_period
from quack.discovery.comparison import records_frame
from quack.discovery.new_templates import new_templates
from quack.model.reader import read_latents
from quack.sample.days import EVENTS_FILE


def found_in_table(changes, event, top: int) -> int | None:
    """The 1-based rank of the event in the table's top rows, or None."""
    sign = 1 if event["direction"] == "up" else -1
    for rank, row in enumerate(changes.head(top).itertuples(), start=1):
        where = (row.level == "country" and row.group == event["country"]) or (
            row.level == "vp" and row.group in event["vps"])
        if where and row.share == event["label"] and row.score * sign > 0:
            return rank
    return None


def found_in_templates(templates, event, top: int) -> int | None:
    """The 1-based rank of the first new template met in the event's country, or None."""
    if event["direction"] != "up":
        return None
    for rank, countries in enumerate(templates.head(top)["countries"], start=1):
        if f"{event['country']} " in countries + " ":
            return rank
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("days")
    parser.add_argument("data")
    parser.add_argument("encoded")
    parser.add_argument("--threshold", type=float, default=3.0)
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--min-records", type=int, default=10)
    parser.add_argument("--k", type=int, default=40)
    args = parser.parse_args()
    truth = json.loads((Path(args.days) / EVENTS_FILE).read_text())
    frame = records_frame(args.data)
    latents, _ = read_latents(args.encoded, len(frame))
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
            results.append((day, event["kind"], event["what"], found_in_table(changes, event, args.top),
                            found_in_templates(templates, event, args.top), round(float(changes["score"].abs().max()), 2)))
        if day in truth["quiet_days"]:
            alarms[day] = (int((changes["score"].abs() >= args.threshold).sum()), len(templates),
                           round(float(changes["score"].abs().max()), 2))
    print(f"{len(frame):,} rows, {len(scans)} scans; top {args.top}, threshold |score| >= {args.threshold:g}, "
          f"templates of at least {args.min_records} records, k {args.k}")
    print("day | change | rank in table | rank in new templates")
    for day, kind, what, table_rank, template_rank, _ in results:
        print(f"{day} | {kind}: {what} | {table_rank} | {template_rank}")
    found = sum(1 for r in results if r[3] is not None or r[4] is not None)
    print(f"found {found} of {len(results)} changes")
    print("quiet day | table rows over threshold | new templates | largest |score|")
    for day, (rows, templates, largest) in alarms.items():
        print(f"{day} | {rows} | {templates} | {largest}")
    days = max(1, len(alarms))
    print(f"false alarms per quiet day: table {sum(a[0] for a in alarms.values()) / days:.2f}, "
          f"new templates {sum(a[1] for a in alarms.values()) / days:.2f}")
    print(f"time over {len(scans) - 1} comparisons: table {timings['table']:.1f} s, new templates "
          f"{timings['templates']:.1f} s")


if __name__ == "__main__":
    main()
