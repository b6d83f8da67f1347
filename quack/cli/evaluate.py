"""`quack evaluate`: hide fingerprint families and score how well each method finds them again."""

from __future__ import annotations

import argparse
import json
import sys


def add_evaluate_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``quack evaluate``."""
    from quack.discovery.rankers import METHODS

    p = subparsers.add_parser(
        "evaluate", help="leave-fingerprints-out evaluation of the discovery methods",
        description="Hide blockpage fingerprint families, relabel their rows undetermined, train each method on the "
                    "labels left, rank the undetermined rows and score how many hidden rows come first. A family is "
                    "a fingerprint name without its trailing _<digits> (a_prod_fortinet_1 and _2 are a_prod_fortinet), "
                    "or one of the --group prefixes.",
    )
    p.add_argument("--data", required=True,
                   help="data set folder written by `quack ingest`, with any tokenizer: the model reads it in "
                        "the checkpoint's tokens, the bag-of-tokens baseline in the data set's own")
    p.add_argument("--checkpoint", default=None, help="checkpoint file (default: the shipped sample model)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--hide", nargs="+", metavar="NAME", default=None,
                       help="families (or fingerprint names) to hide together, as one fold")
    which.add_argument("--folds", type=int, default=None,
                       help="split the families of at least --min-rows rows into K random folds "
                            "(default: each such family is a fold of its own)")
    p.add_argument("--min-rows", type=int, default=5,
                   help="smallest family the folds hide, and HDBSCAN's smallest cluster (default: 5)")
    p.add_argument("--group", nargs="+", metavar="PREFIX", default=(),
                   help="fingerprint name prefixes that each make one family (b_nat_ir_)")
    p.add_argument("--top", nargs="+", type=int, default=[50, 100, 500], metavar="K",
                   help="precision and recall at these ranks (default: 50 100 500)")
    p.add_argument("--methods", nargs="+", choices=list(METHODS), default=None, metavar="METHOD",
                   help=f"methods to compare (default: all: {', '.join(METHODS)})")
    p.add_argument("--truth", metavar="FILE", default=None,
                   help="ground truth (.jsonl or .jsonl.gz) written by `quack sample` or shipped with real "
                        "pages: also score against its unknown blockpages, with F@K, the distinct pages in the first K")
    p.add_argument("--truth-only", action="store_true",
                   help="hide no family: only rank every undetermined row against --truth")
    p.add_argument("--seed", type=int, default=0, help="seeds the folds, the training split and ties (default: 0)")
    p.add_argument("--device", default=None, help="where to encode: cpu, cuda, cuda:N, mps (default: the best present)")
    p.add_argument("--json", metavar="FILE", default=None, help="also write every figure, per fold, to this JSON file")
    p.set_defaults(func=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    """Evaluate, print the table, and write the JSON when asked."""
    from pathlib import Path

    from quack.atomic import atomic_write
    from quack.cli.model import check_dataset
    from quack.discovery.evaluation import evaluate

    check_dataset(args.data)
    if args.truth is not None and not Path(args.truth).expanduser().is_file():
        raise ValueError(f"--truth {args.truth} does not exist; give the .truth.jsonl file `quack sample` wrote.")
    if args.truth_only and args.truth is None:
        raise ValueError("--truth-only scores against the ground truth alone; give --truth as well.")
    if args.checkpoint is not None and not Path(args.checkpoint).expanduser().is_file():
        raise ValueError(f"--checkpoint {args.checkpoint} does not exist; give a checkpoint written by `quack fit`.")
    report = evaluate(
        args.data, args.checkpoint, hide=args.hide, folds=args.folds, top=args.top, seed=args.seed,
        methods=args.methods, progress=lambda line: print(f"quack evaluate: {line}", file=sys.stderr),
        min_rows=args.min_rows, groups=args.group, truth=args.truth, device=args.device,
        truth_only=args.truth_only,
    )
    print(report.table())
    if args.json:
        text = json.dumps(report.to_json(), indent=2) + "\n"
        written = atomic_write(Path(args.json).expanduser(), lambda handle: handle.write(text.encode("utf-8")))
        print(f"wrote {written}")
    return 0
