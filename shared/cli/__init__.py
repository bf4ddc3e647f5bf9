"""``rapport`` — the command line: offline use of the same pure domain the services run.

Each subcommand lives in its own module exposing ``register(subparsers)``; the module is imported
only when the CLI starts, never at import time of ``shared``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

SUBCOMMANDS = (
    "score",
    "signals",
    "backtest",
    "topics",
    "schemas",
    "directory",
    "dead-letters",
    "inbox",
    "keys",
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="rapport",
        description="Rapport: measurement-based care backend — offline tools and operations.",
        epilog="`rapport COMMAND --help` documents each command's input, output fields and exit status. "
        "JSON Lines is the default output (for programs); score and signals also print "
        "--format table (for a person), coloured only on a terminal and never with NO_COLOR set. "
        "Exit status 2: a usage error.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"shared.cli.{name.replace('-', '')}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rapport`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
    except BrokenPipeError:
        # `rapport score < big.jsonl | head` is normal shell use, not an error.
        sys.stderr.close()
        return 0
    return code


if __name__ == "__main__":
    raise SystemExit(main())
