"""`quack candidates`: the Discover page's candidate list written to a file, to be scored by a script."""

from __future__ import annotations

import argparse
import sys


def add_candidates_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``quack candidates``."""
    from quack.discovery.candidates import DIVERSITY
    from quack.discovery.rankers import METHODS

    p = subparsers.add_parser(
        "candidates", help="write the Discover page's candidate list (Parquet or CSV)",
        description="Rank the undetermined records of a data set, collapse near-identical responses into one "
                    "candidate each and re-rank them for distinct templates, as the Discover page lists them.",
    )
    p.add_argument("--data", required=True, help="data set folder written by `quack ingest`")
    p.add_argument("--encoded", required=True, help="its latents, written by `quack encode`")
    p.add_argument("--out", required=True, metavar="FILE", help="the list: .parquet, or .csv")
    p.add_argument("--method", choices=list(METHODS), default=None,
                   help="ranking method (default: the best by a leave-fingerprints-out evaluation of them all)")
    p.add_argument("--top", type=int, default=None, metavar="N", help="keep the first N candidates (default: all)")
    p.add_argument("--diversity", type=float, default=DIVERSITY,
                   help=f"weight of a candidate's likeness to those above it, 0 to below 1 (default: {DIVERSITY})")
    p.add_argument("--seed", type=int, default=0, help="seeds the training split (default: 0)")
    p.set_defaults(func=run_candidates)


def run_candidates(args: argparse.Namespace) -> int:
    """Rank, collapse, write; returns the exit status."""
    from pathlib import Path

    import numpy as np

    from quack.atomic import atomic_write
    from quack.cli.model import check_dataset
    from quack.data.datafolder import DataFolder
    from quack.discovery.candidates import candidate_list
    from quack.discovery.evaluation import evaluate_data
    from quack.discovery.evaluation_data import EvaluationData
    from quack.discovery.rankers import score_rows
    from quack.model.reader import read_latents

    out = Path(args.out).expanduser()
    if out.suffix.lower() not in (".parquet", ".csv"):
        raise ValueError(f"--out {args.out} must end in .parquet or .csv.")
    if args.top is not None and args.top < 1:
        raise ValueError(f"--top must be at least 1, got {args.top}.")
    if not 0 <= args.diversity < 1:
        raise ValueError(f"--diversity must be at least 0 and below 1, got {args.diversity}.")
    check_dataset(args.data)
    folder = DataFolder.open(args.data, require_rows=True)
    latents, loss = read_latents(args.encoded, folder.n_rows)
    if loss is None:
        loss = np.zeros(folder.n_rows)
    data = EvaluationData.from_dataset(folder.path, latents, loss)
    method = args.method
    if method is None:
        report = evaluate_data(data, seed=args.seed, where=str(folder.path),
                               progress=lambda line: print(f"quack candidates: {line}", file=sys.stderr))
        summary = report.summary()
        method = max(report.methods, key=lambda m: np.nan_to_num(summary[m]["ap"]["mean"], nan=-1.0))
        print(f"quack candidates: ranking by {method}, the best by evaluation", file=sys.stderr)
    scores = score_rows(method, data, data.labels, args.seed)
    table, _ = candidate_list(folder.path, scores, data.labels, features=latents, top=args.top,
                              diversity=args.diversity)
    table.insert(3, "method", method)
    if out.suffix.lower() == ".csv":
        written = atomic_write(out, lambda handle: handle.write(table.to_csv(index=False).encode("utf-8")))
    else:
        written = atomic_write(out, lambda handle: table.to_parquet(handle, index=False))
    print(f"wrote {len(table)} candidates to {written}")
    return 0
