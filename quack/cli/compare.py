"""`quack compare`: what changed between two periods of a data set, as a table and a file."""

from __future__ import annotations

import argparse

from quack.discovery.changes import LEVELS


def add_compare_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``quack compare``."""
    p = subparsers.add_parser(
        "compare", help="what changed between two periods (scans or dates) of a data set",
        description="Compare two periods of a data set: per country, domain, vantage point and fingerprint family "
                    "the censored and undetermined measurements in each and their difference, the largest change "
                    "first; fingerprint families that appear or vanish; and, with --encoded, new templates: "
                    "censored or undetermined records of the later period whose latent neighbourhood holds no "
                    "record of the earlier one. A period is a scan name, scan names joined by commas, or a range "
                    "of dates FROM..TO (UTC; either side may be left open).",
    )
    p.add_argument("--data", required=True, nargs="+", metavar="DATA",
                   help="data set folder written by `quack ingest`; or two, an earlier and a later scan ingested "
                        "apart, compared whole (no --before or --after)")
    p.add_argument("--encoded", default=None, nargs="+", metavar="ENCODED",
                   help="the data set's encoded folder (`quack encode`), for new templates; with two data sets, "
                        "one for each, encoded by one checkpoint")
    p.add_argument("--before", default=None, help="the earlier period")
    p.add_argument("--after", default=None, help="the later period")
    p.add_argument("--levels", nargs="+", choices=LEVELS, default=list(LEVELS), metavar="LEVEL",
                   help=f"groupings to compare (default: all: {', '.join(LEVELS)})")
    p.add_argument("--top", type=int, default=20, help="changes printed (default: 20)")
    p.add_argument("--threshold", type=float, default=None,
                   help="print only changes whose score (a two-proportion z statistic) is at least this far from 0 "
                        "(default: the score chance alone passes in fewer than 1 comparison in 20 of this many "
                        "shares, 4.0 for 500)")
    p.add_argument("--k", type=int, default=40,
                   help="neighbours a new template's record must have in the later period before any earlier "
                        "record (default: 40)")
    p.add_argument("--min-records", type=int, default=10, help="smallest new template reported (default: 10)")
    p.add_argument("--out", default=None, metavar="FILE",
                   help="also write everything to FILE.json, or FILE.parquet (with FILE.families.parquet and "
                        "FILE.templates.parquet beside it)")
    p.set_defaults(func=run_compare)


def run_compare(args: argparse.Namespace) -> int:
    """Compare, print the tables, write the file when asked; returns the exit status."""
    import pandas as pd

    from quack.cli.model import check_dataset
    from quack.discovery.changes import TIME_UNKNOWN, chance_threshold, scan_times, time_known
    from quack.discovery.comparison import (OUTPUT_SUFFIXES, compare, compare_data_sets, records_frame, top_changes,
                                           write_comparison)

    for data in args.data:
        check_dataset(data)
    if args.out is not None and not args.out.endswith(OUTPUT_SUFFIXES):
        raise ValueError(f"--out {args.out} must end in .json or .parquet.")
    if args.top < 1 or args.k < 1 or args.min_records < 1:
        raise ValueError("--top, --k and --min-records must be at least 1.")
    if len(args.data) > 2:
        raise ValueError(f"--data takes one data set, or two to compare whole; got {len(args.data)}.")
    if len(args.data) == 2:
        if args.before is not None or args.after is not None:
            raise ValueError("Two data sets are compared whole, the first as the earlier period; leave out --before "
                             "and --after, or give one data set.")
        args.before, args.after = args.data
        result = compare_data_sets(*args.data, args.encoded, levels=args.levels, k=args.k,
                                   min_records=args.min_records)
    elif args.encoded is not None and len(args.encoded) != 1:
        raise ValueError(f"One data set takes one encoded folder; got {len(args.encoded)}.")
    elif args.before is None or args.after is None:
        frame = records_frame(args.data[0])
        if not time_known(frame):
            print(TIME_UNKNOWN)
            return 0
        print("Give --before and --after; the scans of this data set are:")
        print(scan_times(frame).to_string(index=False))
        return 0
    else:
        result = compare(args.data[0], args.before, args.after, args.encoded and args.encoded[0], levels=args.levels,
                         k=args.k, min_records=args.min_records)
    for note in result.notes:
        print(note)
    threshold = chance_threshold(len(result.changes)) if args.threshold is None else args.threshold
    shown = result.changes[result.changes["score"].abs() >= threshold]
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.max_colwidth", 40):
        print(f"\nChanges from {args.before} to {args.after} with |score| >= {threshold:g} "
              f"({len(shown)} of {len(result.changes)}; shares in %):")
        print(top_changes(shown, args.top).to_string(index=False) if len(shown) else "none")
        print("\nFingerprint families that appeared or vanished:")
        print(result.families.to_string(index=False) if len(result.families) else "none")
        if result.templates is not None:
            print(f"\nNew templates ({len(result.templates)}):")
            columns = ["template", "records", "countries", "vps", "domains", "first_seen", "example", "snippet"]
            print(result.templates[columns].to_string(index=False) if len(result.templates) else "none")
    if args.out is not None:
        for path in write_comparison(result, args.out):
            print(f"wrote {path}")
    return 0
