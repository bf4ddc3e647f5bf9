"""``rapport schemas write|check`` — keep the committed JSON Schemas and the AsyncAPI document in
step with the models."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from shared.contracts.schemas import render_asyncapi, stale, write_all

EPILOG = """\
actions:
  write  regenerate <dir>/*.json and the AsyncAPI document from the models; review the diff:
         changes must be additive
  check  compare them with the models (run by `make lint` and a unit test)

input: the event models in shared/contracts/events.py; output: "wrote <path>" lines (write) or
"schemas up to date" (check) on stdout; the stale files on stderr.

exit status:
  0  written, or up to date
  1  check: some schema differs from its model (run `rapport schemas write`)
"""


def register(sub: Any) -> None:
    """Add the ``schemas`` subcommand."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "schemas",
        help="write or check the JSON Schemas and the AsyncAPI document of the event contracts",
        description="Keep the committed JSON Schemas (one per topic) and the AsyncAPI document in step "
        "with the pydantic models.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("action", choices=("write", "check"), help="write or check (see below)")
    parser.add_argument("--dir", type=Path, default=Path("schemas"), help="schema folder (default: schemas)")
    parser.add_argument(
        "--asyncapi",
        type=Path,
        default=Path("docs/asyncapi.yaml"),
        help="AsyncAPI document path (default: docs/asyncapi.yaml)",
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    asyncapi = render_asyncapi()
    if args.action == "write":
        for path in write_all(args.dir):
            print(f"wrote {path}")
        args.asyncapi.parent.mkdir(parents=True, exist_ok=True)
        args.asyncapi.write_text(asyncapi, encoding="utf-8")
        print(f"wrote {args.asyncapi}")
        return 0
    outdated = stale(args.dir)
    if not args.asyncapi.is_file() or args.asyncapi.read_text(encoding="utf-8") != asyncapi:
        outdated.append(str(args.asyncapi))
    if outdated:
        print(
            "schemas out of date: " + ", ".join(outdated) + " — run `rapport schemas write` "
            "and review the diff (changes must be additive)",
            file=sys.stderr,
        )
        return 1
    print("schemas up to date")
    return 0
