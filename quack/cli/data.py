"""`quack ingest` and `quack sample`: raw measurements in, a tokenized data set out."""

from __future__ import annotations

import argparse
import math
import sys
import warnings
from pathlib import Path

from quack.data.decompression import DEFAULT_MAX_EXPANSION, EXPANSION_VARIABLE
from quack.schema import Label
from quack.data.tokenizer import MIN_MAX_TOKENS, MIN_TEXT_VOCAB
from quack.data.vocab import FIELDS, RESPONSE_FIELDS


def add_ingest_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``quack ingest``."""
    p = subparsers.add_parser(
        "ingest", help="build a tokenized data set from raw Quack files",
        description="Read Censored Planet Quack files (.tar, .tar.gz, .tgz, .json, .jsonl, .gz; files or folders), "
                    "label each probe with blockpage fingerprints, tokenize it and write a data set folder.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="raw files or folders")
    p.add_argument("--out", required=True,
                   help="data set folder (an earlier data set there is replaced; a folder holding other files is refused)")
    p.add_argument("--signatures", nargs="+", metavar="FILE", default=None,
                   help="fingerprint files in Censored Planet's format; a name containing 'false' is a "
                        "false-positive list (default: the list shipped with quack)")
    p.add_argument("--vocab-size", type=int, default=4000,
                   help="text (BPE) vocabulary of a new tokenizer; static tokens come on top (default: 4000)")
    p.add_argument("--max-tokens", type=int, default=128,
                   help="most text tokens per record (default: 128, as the shipped checkpoint)")
    p.add_argument("--fields", nargs="+", metavar="FIELD", default=None,
                   help="fields of each sequence of a new tokenizer, in order, from: " + ", ".join(FIELDS)
                        + f" (default: {' '.join(RESPONSE_FIELDS)}, the response first without the vantage point "
                          "and the request, as the shipped checkpoint; name them all for the seed's layout)")
    p.add_argument("--tokenizer-from", metavar="FILE", default=None,
                   help="reuse the tokenizer of a checkpoint (.ckpt) or a tokenizer.json instead of training one")
    p.add_argument("--geoip", metavar="FILE", default=None, help="MaxMind database for v1 countries (needs geoip2)")
    p.add_argument("--anomalies-only", action="store_true", help="keep only failed probes of anomalous records")
    p.add_argument("--match", choices=("full", "body"), default="full",
                   help="what the fingerprints are matched against: full, the whole response (status line, "
                        "headers, body) and a blockpage only in an anomalous record, as Censored Planet's analysis "
                        "pipeline labels; body, the body alone, the labels of earlier quack versions (default: full)")
    p.add_argument("--list-problems", action="store_true", help="list every bad input with its file and line")
    p.add_argument("--keep-partial", action="store_true",
                   help="keep the rows of a truncated or corrupt file read before the damage (default: refuse the file)")
    p.add_argument("--max-expansion", type=float, metavar="N", default=None,
                   help="most bytes a compressed file may expand to per compressed byte "
                        f"(default: ${EXPANSION_VARIABLE}, else {DEFAULT_MAX_EXPANSION:g})")
    p.add_argument("--workers", type=int, metavar="N", default=None,
                   help="processes that parse, label and tokenize; the data set is the same for any number "
                        "(default: the cores this process may use)")
    p.set_defaults(func=run_ingest)


def add_sample_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``quack sample``."""
    p = subparsers.add_parser(
        "sample", help="write the built-in sample of Quack measurements",
        description="Write deterministic Hyperquack v2 measurements and, beside them, their ground truth.",
    )
    p.add_argument("--out", required=True, metavar="FILE",
                   help="measurements file, ending in .json or .jsonl, or either with .gz for gzip; with --days, "
                        "the folder of the daily scans")
    p.add_argument("--n", type=int, default=5000, help="number of measurements (default: 5000; with --days, a day)")
    p.add_argument("--days", type=int, metavar="N", default=None,
                   help="write N daily scans in which censorship changes in known ways (a new blockpage, an ISP "
                        "filter that spreads, a block lifted, quiet days), with events.truth.json naming each change")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--realistic", action="store_true",
                   help="the harder sample: unknown blockpages of the kinds met in real data (security suites, "
                        "router parental controls, corporate blocked.cgi, bare redirects, empty replies), sharing "
                        "boilerplate with ordinary pages and varying per request")
    p.add_argument("--real-size", action="store_true",
                   help="ordinary pages at the size real sites send them (whole pages of 2 to 60 kB), blockpages "
                        "small as in real scans; the same records as without it, with longer bodies")
    p.set_defaults(func=run_sample)


def _load_tokenizer(path: str):
    from quack.data.tokenizer import QuackTokenizer

    if not Path(path).is_file():
        raise ValueError(f"--tokenizer-from {path} does not exist; give a checkpoint or a tokenizer.json.")
    if path.endswith(".json"):
        return QuackTokenizer.load(path)
    from quack.model.encoding import load_checkpoint

    return load_checkpoint(path).tokenizer


def _check_fields(fields: list[str] | None):
    from quack.data.vocab import check_fields

    if fields is None:
        return None
    try:
        return check_fields([part for item in fields for part in item.split(",") if part])
    except ValueError as error:
        raise ValueError(f"--fields: {error}") from None


def run_ingest(args: argparse.Namespace) -> int:
    """Build the data set and print a summary; returns the exit status."""
    from quack.data.build import build_dataset
    from quack.data.records import IngestStats
    from quack.fingerprints.labels import FingerprintWarning
    from quack.data.decompression import ExpansionError
    from quack.data.parallel import available_cores
    from quack.progress import Stages

    if args.max_expansion is not None and not 1 <= args.max_expansion < math.inf:
        raise ValueError(f"--max-expansion must be a number of at least 1, got {args.max_expansion:g}.")
    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers must be at least 1, got {args.workers}.")
    tokenizer = _load_tokenizer(args.tokenizer_from) if args.tokenizer_from else None
    if tokenizer is None and args.vocab_size < MIN_TEXT_VOCAB:
        raise ValueError(f"--vocab-size must be at least {MIN_TEXT_VOCAB}, got {args.vocab_size}.")
    if tokenizer is None and args.max_tokens < MIN_MAX_TOKENS:
        raise ValueError(f"--max-tokens must be at least {MIN_MAX_TOKENS}, got {args.max_tokens}.")
    if tokenizer is not None and args.fields is not None:
        raise ValueError("--fields sets up a new tokenizer; leave it out with --tokenizer-from, whose fields are kept.")
    # A new tokenizer gets the shipped checkpoint's layout unless --fields names another.
    fields = _check_fields(args.fields) if args.fields is not None or tokenizer else RESPONSE_FIELDS

    stats = IngestStats(keep_problems=args.list_problems)
    progress = Stages("quack ingest", totals_from={"train": "ingest", "tokenize": "ingest"})
    try:
        with warnings.catch_warnings(), progress:
            warnings.simplefilter("always", FingerprintWarning)
            warnings.showwarning = _as_one_line(FingerprintWarning, warnings.showwarning)
            info = build_dataset(
                args.paths, args.out, signatures=args.signatures, tokenizer=tokenizer,
                vocab_size=args.vocab_size, max_tokens=args.max_tokens, fields=fields, geoip_db=args.geoip,
                anomalies_only=args.anomalies_only, progress=progress, stats=stats, allow_empty=False,
                keep_partial=args.keep_partial, max_expansion=args.max_expansion,
                workers=args.workers or available_cores(), match=args.match,
            )
    except ExpansionError as error:
        raise ValueError(f"{str(error).rstrip('.')} or --max-expansion.") from None
    _print_summary(info, args.out)
    if args.list_problems:
        print(f"problems ({len(stats.problems)}):")
        for source, line, reason in stats.problems:
            print(f"  {source}:{line}: {reason}")
    return 0


def _as_one_line(category: type[Warning], show_others):
    """A ``warnings.showwarning`` that prints ``category`` as one ``quack ingest: warning:`` line.

    A fingerprint list that labels nothing is worth a line of its own, not the two lines
    and source location of a Python warning; other warnings are shown as before.
    """

    def show(message, warning_category, filename, lineno, file=None, line=None) -> None:
        if issubclass(warning_category, category):
            print(f"quack ingest: warning: {message}", file=sys.stderr)
        else:
            show_others(message, warning_category, filename, lineno, file, line)

    return show


def _print_summary(info: dict, out: str) -> None:
    print(f"files {info['files']}, lines {info['lines']}, rows {info['rows']}")
    skipped = info["skipped"]
    print("skipped: " + (", ".join(f"{reason} {n}" for reason, n in skipped.items()) if skipped else "nothing"))
    labels = info["rows_per_label"]
    print("labels: " + ", ".join(f"{label.display} ({label.value}) {labels[str(label.value)]}"
                                 for label in Label.ordered()))
    print(f"tokens per row: mean {info['mean_tokens']:.1f}, longest {info['longest_sequence']} "
          f"(vocabulary {info['vocab_size']}, at most {info['max_tokens']} text tokens)")
    print(f"wrote {out}")


def run_sample(args: argparse.Namespace) -> int:
    """Write the sample and say where; returns the exit status."""
    from quack.progress import Progress
    from quack.sample.generator import write_sample

    if args.days is not None:
        from quack.sample.days import write_days

        with Progress("quack sample", "write", total=args.days, unit="days") as progress:
            files, events = write_days(args.out, args.days, n=args.n, seed=args.seed, progress=progress.update)
        print(f"wrote {len(files)} daily scans to {Path(args.out)} and the changes in them to {events}")
        return 0
    with Progress("quack sample", "write", total=args.n, unit="measurements") as progress:
        records, truth = write_sample(args.out, n=args.n, seed=args.seed, realistic=args.realistic,
                                      real_size=args.real_size, progress=progress.update)
    print(f"wrote {args.n} measurements to {records} and their ground truth to {truth}")
    return 0
