"""``rapport score``: score surveys offline with the same specs and scorer the scoring service runs.

Reads surveys from stdin and writes one JSON line per survey to stdout, in input order. A bad line
(undecodable, not a survey, unknown instrument, invalid answers...) yields an ``"valid": false`` line
and never stops the rest.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from collections.abc import Iterator, Sequence
from typing import IO, Any

from pydantic import ValidationError

from shared.events import SurveyResponse, validation_error_summary
from shared.instruments import (
    Registry,
    ScoreFailure,
    ScoreResult,
    SpecError,
    default_registry,
    load_registry,
    score_response,
)

_INSTRUMENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")
_INT = re.compile(r"^[+-]?\d+$")
_FLOAT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")

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
            for instrument, parsed in _csv_surveys(sys.stdin):
                _write(out, _score_parsed(registry, instrument, parsed))
        except _UsageError as exc:
            print(f"rapport score: {exc}", file=sys.stderr)
            return 2
    else:
        for line in sys.stdin:
            if line.strip():
                _write(out, _score_json_line(registry, line))
    out.flush()
    return 0


class _UsageError(Exception):
    """The input as a whole is unusable (e.g. a CSV without its header)."""


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


def _num(x: float) -> int | float:
    """Whole numbers as ints (10, not 10.0); others as they are (VAS totals are exact to 0.1)."""
    return int(x) if float(x).is_integer() else x


def _safe_instrument(value: object) -> str | None:
    return value if isinstance(value, str) and _INSTRUMENT_ID.match(value) else None


def _invalid(instrument: str | None, reason: str, detail: str) -> dict[str, Any]:
    return {"instrument": instrument, "valid": False, "error": f"{reason}: {detail}"}


def result_to_json(result: ScoreResult | ScoreFailure, instrument: str | None) -> dict[str, Any]:
    """The output line of one scored (or failed) survey."""
    if isinstance(result, ScoreFailure):
        obj = _invalid(result.instrument or instrument, result.reason, result.detail)
        if result.critical_items:
            obj["critical_items"] = list(result.critical_items)
        return obj
    return {
        "instrument": result.instrument,
        "valid": True,
        "total": _num(result.total),
        "band": result.band,
        "subscales": {name: _num(value) for name, value in result.subscales.items()},
        "concern": result.concern,
        "critical_items": list(result.critical_items),
        "prorated": result.prorated,
        "risk_unknown": list(result.risk_unknown),
        "missing_items": list(result.missing_items),
    }


def _score_json_line(registry: Registry, line: str) -> dict[str, Any]:
    try:
        survey = SurveyResponse.model_validate_json(line)
    except ValidationError as exc:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return _invalid(None, "undecodable", "not valid JSON")
        instrument = None
        try:
            raw = json.loads(line)
            if isinstance(raw, dict):
                instrument = _safe_instrument(raw.get("instrument"))
        except ValueError:
            pass
        return _invalid(instrument, "schema_violation", validation_error_summary(errors))
    return result_to_json(score_response(registry, survey), _safe_instrument(survey.instrument))


def _score_parsed(registry: Registry, instrument: str, parsed: dict[str, Any] | str) -> dict[str, Any]:
    shown = _safe_instrument(instrument)
    if isinstance(parsed, str):  # a cell-level problem, already described
        return _invalid(shown, "schema_violation", parsed)
    try:
        survey = SurveyResponse.model_validate({"instrument": instrument, "answers": parsed})
    except ValidationError as exc:
        return _invalid(shown, "schema_violation", validation_error_summary(exc.errors()))
    return result_to_json(score_response(registry, survey), shown)


def _cell(text: str) -> int | float | None:
    """A CSV cell as an answer: empty → unanswered; raises ValueError when it is not a number."""
    cell = text.strip()
    if not cell:
        return None
    if _INT.match(cell):
        return int(cell)
    if _FLOAT.match(cell):
        return float(cell)
    raise ValueError


def _csv_surveys(stream: IO[str]) -> Iterator[tuple[str, dict[str, Any] | str]]:
    """(instrument, answers) per non-empty data row, or (instrument, problem) for a malformed row."""
    reader = csv.reader(stream)
    header = next(reader, None)
    if not header or header[0].strip().lstrip("\ufeff") != "instrument":
        raise _UsageError("CSV input needs a header row starting with 'instrument' (instrument,1,2,...)")
    columns = [h.strip() for h in header[1:]]
    for row_number, row in enumerate(reader, start=2):
        if not any(cell.strip() for cell in row):
            continue
        instrument = row[0].strip()
        if len(row) > len(header):
            yield instrument, f"row {row_number}: more cells than header columns"
            continue
        answers: dict[str, Any] = {}
        bad: list[str] = []
        for column, text in zip(columns, row[1:], strict=False):
            try:
                value = _cell(text)
            except ValueError:
                bad.append(column)
                continue
            if value is not None:
                answers[column] = value
        if bad:
            yield instrument, f"row {row_number}: not a number in item column(s) {', '.join(bad)}"
        else:
            yield instrument, answers
