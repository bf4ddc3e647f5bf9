"""``rapport score``: score surveys offline with the same specs and scorer the scoring service runs.

Reads surveys from stdin and writes one result per survey to stdout, in input order, each carrying the
input ``line`` it came from. A bad record (undecodable, duplicate key, not a survey, unknown
instrument, invalid answers...) yields a ``"valid": false`` result and never stops the rest.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import IO, Any

from shared.cli.style import BOLD, DIM, RED, YELLOW, Style, cell
from shared.history.surveys import CsvHeaderError, score_csv, score_json_lines
from shared.instruments import Registry, SpecError, default_registry, load_registry

EPILOG = """\
input (stdin), --input-format:
  jsonl  one survey per line: {"instrument": "PHQ-9", "answers": {"1": 0, "2": 3, ...}}
         an unanswered item is absent or null; blank lines are skipped (but counted in "line")
  csv    header row "instrument,1,2,3,..." (item columns), then one survey per row; an empty
         cell is unanswered; every row has exactly one cell per header column
  Strict rules, the same as the scoring service's: a key or column given twice is refused
  (duplicate_key); numbers are JSON numbers in ASCII digits (no "٣", "+3", ".5", "NaN"); a number
  too large to represent is out_of_range_answer.

output (stdout), --format:
  jsonl  (default) one JSON line per non-blank input line, in order:
    {"line": 1, "instrument": "PHQ-9", "valid": true, "total": 10, "band": "moderate",
     "subscales": {}, "concern": true, "critical_items": ["9"], "prorated": false,
     "risk_unknown": [], "missing_items": []}
    {"line": 2, "instrument": "PHQ-9", "valid": false, "error": "<reason>: <detail>"}
    line            1-based line of the input (CSV: the line the row starts on)
    instrument      instrument id (null when it cannot be read safely)
    valid           false when the survey could not be scored; then "error" says why:
                    undecodable, duplicate_key, schema_violation, unknown_instrument,
                    unknown_item, out_of_range_answer or too_many_missing, then the locations
                    (contract fields; sender-chosen keys shown as *), never answer values
    total, band     the total (whole totals as integers: 10, not 10.0) and its severity band
    subscales       subscale scores by name
    concern         true when the total is on the concerning side of the clinical cutoff
    critical_items  risk items endorsed; also on a failed survey when a risk item was endorsed
                    with a valid answer: a risk answer is reported even when the total is not
    prorated        true when missing items were prorated; missing_items lists them
    risk_unknown    risk items left unanswered (risk status unknown, never imputed)
  table  one aligned row per survey for a person: line, instrument, total, band and what to
         notice (critical items, concern, prorating, or the error); colour only on a terminal
         and never when NO_COLOR is set

exit status:
  0  the input was read (whatever the validity of each survey)
  2  usage error: bad option, invalid instrument spec directory or variant, unusable CSV header
     (no "instrument" first column, or a column named twice)
"""


def register(subparsers: Any) -> None:
    """Add the ``score`` subcommand to the ``rapport`` parser."""
    parser = subparsers.add_parser(
        "score",
        help="score surveys from stdin (JSON Lines or CSV) → JSON Lines or a table",
        description="Score surveys read from stdin with the instrument specs; one result per survey.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--input-format",
        choices=("jsonl", "csv"),
        default=None,
        help="input format (default jsonl)",
    )
    parser.add_argument(
        "--format",
        choices=("jsonl", "table", "csv"),
        default="jsonl",
        help="output format: jsonl (default, for programs) or table (for a person). "
        "'--format csv' is the old spelling of '--input-format csv' and still works.",
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
    """Handler of ``rapport score``: read stdin, write results to stdout; see the epilog."""
    input_format, output_format = args.input_format or "jsonl", args.format
    if output_format == "csv":  # before --input-format existed, --format named the input
        input_format, output_format = "csv", "jsonl"
    try:
        registry = _registry(args.instrument_dir, args.variant)
    except SpecError as exc:
        print(f"rapport score: {exc}", file=sys.stderr)
        return 2
    results: Iterator[dict[str, Any]]
    if input_format == "csv":
        results = score_csv(registry, _text_lines(sys.stdin))
    else:
        results = score_json_lines(registry, _byte_lines(sys.stdin))
    out = sys.stdout
    try:
        if output_format == "table":
            write_table(results, out, Style.for_stream(out))
        else:
            for obj in results:
                out.write(json.dumps(obj, ensure_ascii=False) + "\n")
    except CsvHeaderError as exc:  # raised on the first step, before anything is written
        print(f"rapport score: {exc}", file=sys.stderr)
        return 2
    out.flush()
    return 0


def _byte_lines(stream: IO[str]) -> Iterable[str | bytes]:
    """Raw lines when stdin has bytes underneath: invalid UTF-8 is one bad line, not a crash."""
    buffer = getattr(stream, "buffer", None)
    return buffer if buffer is not None else stream


def _text_lines(stream: IO[str]) -> Iterable[str]:
    buffer = getattr(stream, "buffer", None)
    if buffer is None:
        return stream
    return io.TextIOWrapper(buffer, encoding="utf-8", errors="surrogateescape", newline="")


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


def _total(value: object) -> str:
    return "—" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def notes(obj: dict[str, Any], style: Style) -> str:
    """What a person should notice about one result, most important first."""
    parts: list[str] = []
    critical = obj.get("critical_items") or []
    if critical:
        parts.append(style(f"CRITICAL item {', '.join(critical)} endorsed", RED, BOLD))
    if not obj["valid"]:
        parts.append(style(str(obj["error"]), RED))
        return "; ".join(parts)
    if obj.get("concern"):
        parts.append(style("concern: beyond the clinical cutoff", YELLOW))
    if obj.get("risk_unknown"):
        parts.append(style(f"risk unknown: item {', '.join(obj['risk_unknown'])} unanswered", YELLOW))
    if obj.get("prorated"):
        parts.append(f"prorated (missing: {', '.join(obj.get('missing_items') or [])})")
    if obj.get("subscales"):
        parts.append(style(", ".join(f"{k} {_total(v)}" for k, v in obj["subscales"].items()), DIM))
    return "; ".join(parts)


TABLE_HEAD = f"{'line':>5}  {'instrument':<10}  {'total':>6}  {'band':<20}  notes"


def table_row(obj: dict[str, Any], style: Style) -> str:
    """One result as an aligned table row."""
    band = obj.get("band") if obj["valid"] else "not scored"
    return (
        f"{obj['line']:>5}  {cell(obj.get('instrument'), 10)}  {cell(_total(obj.get('total')), 6, '>')}  "
        f"{cell(band, 20)}  {notes(obj, style)}"
    ).rstrip()


def write_table(results: Iterable[dict[str, Any]], out: IO[str], style: Style) -> None:
    """Results as a table with a header and a closing count, streamed row by row."""
    scored = failed = critical = 0
    head_written = False
    for obj in results:
        if not head_written:
            out.write(style(TABLE_HEAD, BOLD) + "\n")
            head_written = True
        scored += obj["valid"]
        failed += not obj["valid"]
        critical += bool(obj.get("critical_items"))
        out.write(table_row(obj, style) + "\n")
    if not head_written:
        out.write(style(TABLE_HEAD, BOLD) + "\n")
    summary = f"{scored} scored, {failed} not scored"
    if critical:
        summary += ", " + style(f"{critical} with a critical item endorsed", RED, BOLD)
    out.write(f"\n{summary}\n")
