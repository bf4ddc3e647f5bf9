"""``rapport schemas write|check`` — keep the committed JSON Schemas in step with the models."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from shared.contracts.schemas import stale, write_all


def register(sub: Any) -> None:
    """Add the ``schemas`` subcommand."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "schemas", help="Write or check the JSON Schemas of the event contracts."
    )
    parser.add_argument("action", choices=("write", "check"))
    parser.add_argument("--dir", type=Path, default=Path("schemas"), help="Schema folder.")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    if args.action == "write":
        for path in write_all(args.dir):
            print(f"wrote {path}")
        return 0
    outdated = stale(args.dir)
    if outdated:
        print(
            "schemas out of date: " + ", ".join(outdated) + " — run `rapport schemas write` "
            "and review the diff (changes must be additive)",
            file=sys.stderr,
        )
        return 1
    print("schemas up to date")
    return 0
