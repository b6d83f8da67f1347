"""The `quack` command line: sample, ingest, fit, encode, classify.

Every subcommand returns an exit status; a problem the user can fix (a missing file,
an option out of range, a checkpoint that does not fit the data) ends the command
with one sentence on stderr and status 2, before anything is written.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import warnings

from quack.cli.candidates import add_candidates_parser
from quack.cli.compare import add_compare_parser
from quack.cli.data import add_ingest_parser, add_sample_parser
from quack.cli.evaluate import add_evaluate_parser
from quack.cli.model import add_classify_parser, add_encode_parser, add_fit_parser


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="quack", description="Learn and explore latent features of Censored Planet Quack measurements."
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (add_sample_parser, add_ingest_parser, add_fit_parser, add_encode_parser, add_classify_parser,
                add_evaluate_parser, add_candidates_parser, add_compare_parser):
        add(subparsers)
    return parser


def _no_advertisements(record: logging.LogRecord) -> bool:
    """Drop the tips with which Lightning advertises its cloud services on every run."""
    return not str(record.msg).startswith("\N{ELECTRIC LIGHT BULB} Tip:")


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand and return its exit status."""
    args = build_parser().parse_args(argv)
    # Lightning builds torch pytree specs in a way torch now calls deprecated; the
    # notice concerns Lightning, not anything a quack user can change.
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
    logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(_no_advertisements)
    signal.signal(signal.SIGTERM, _interrupt_on_terminate)
    try:
        return int(args.func(args) or 0)
    except (ValueError, OSError) as error:
        # Library errors a user can cause are ValueErrors (or file errors) with a
        # sentence meant for them; show that sentence alone.
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        print(f"quack {args.command}: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as interrupt:
        said = str(interrupt) or "interrupted; files already written are complete, nothing half-written remains."
        print(f"quack {args.command}: {said}", file=sys.stderr)
        return 130


def _interrupt_on_terminate(signum: int, frame: object) -> None:
    # A scheduler's SIGTERM (a cancelled job, a node drained) ends a command the way
    # Ctrl-C does, so every command cleans up and says what was left.
    from quack.progress import STOP

    STOP.set()
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
