"""``rapport score``: score surveys offline with the same specs and scorer the scoring service runs.

Reads surveys from stdin and writes one JSON line per survey to stdout, in input order. A bad line
(undecodable, not a survey, unknown instrument, invalid answers...) yields an ``"valid": false`` line
and never stops the rest.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import IO, Any

from shared.history.surveys import CsvHeaderError, csv_surveys, score_json_line, score_parsed
from shared.instruments import Registry, SpecError, default_registry, load_registry

EPILOG = """\
input (stdin):
  jsonl  one survey per line: {"instrument": "PHQ-9", "answers": {"1": 0, "2": 3, ...}}
         an unanswered item is absent or null
  csv    header row "instrument,1,2,3,..." (item columns); an empty cell is unanswered

output (stdout, JSON Lines, one line per non-empty input line, in order):
  {"instrument": "PHQ-9", "valid": true, "total": 10, "band": "moderate", "subscales": {},
   "concern": true, "critical_items": ["9"], "prorated": false, "risk_unknown": [],
   "missing_items": []}
  {"instrument": "PHQ-9", "valid": false, "error": "<reason>: <detail>"}
  A failed survey also carries "critical_items" when it endorsed a critical item: a risk answer is
  reported even when the total cannot be scored. Whole totals print as integers (10, not 10.0).

exit status:
  0  the input was read (whatever the validity of each survey)
  2  usage error: bad option, invalid instrument spec directory or variant, CSV without header
"""


def register(subparsers: Any) -> None:
    """Add the ``score`` subcommand to the ``rapport`` parser."""
    parser = subparsers.add_parser(
        "score",
        help="score surveys from stdin (JSON Lines or CSV) → JSON Lines",
        description="Score surveys read from stdin with the instrument specs; one JSON line out per survey.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--format", choices=("jsonl", "csv"), default="jsonl", help="input format (default jsonl)"
    )
    parser.add_argument(
        "--instrument-dir",
        action="append",
        default=[],
        metavar="DIR",
        help="directory of clinic instrument specs (YAML); a spec with a packaged id overrides it. "
        "Repeatable.",
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="ID=NAME",
        help="use a named variant of an instrument spec, e.g. K10=andrews_slade. Repeatable.",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Handler of ``rapport score``: read stdin, write JSON Lines to stdout; see the epilog."""
    try:
        registry = _registry(args.instrument_dir, args.variant)
    except SpecError as exc:
        print(f"rapport score: {exc}", file=sys.stderr)
        return 2
    out = sys.stdout
    if args.format == "csv":
        try:
            # The header is checked on the first step, before anything is written.
            for instrument, parsed in csv_surveys(sys.stdin):
                _write(out, score_parsed(registry, instrument, parsed))
        except CsvHeaderError as exc:
            print(f"rapport score: {exc}", file=sys.stderr)
            return 2
    else:
        for line in sys.stdin:
            if line.strip():
                _write(out, score_json_line(registry, line))
    out.flush()
    return 0


def _registry(dirs: Sequence[str], variants: Sequence[str]) -> Registry:
    if not dirs and not variants:
        return default_registry()
    chosen: dict[str, str] = {}
    for item in variants:
        instrument, sep, name = item.partition("=")
        if not sep or not instrument or not name:
            raise SpecError(f"--variant {item!r}: expected ID=NAME, e.g. K10=andrews_slade")
        chosen[instrument] = name
    return load_registry(extra_dirs=dirs, variants=chosen)


def _write(out: IO[str], obj: dict[str, Any]) -> None:
    out.write(json.dumps(obj, ensure_ascii=False) + "\n")
