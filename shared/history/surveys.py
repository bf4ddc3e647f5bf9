"""Reading single survey records (``rapport score``): JSON Lines or CSV, one survey per record.

Each record becomes a scored result or an error payload, both carrying the record's 1-based input
``line``; a bad record never stops the rest. Records are decoded by the strict rules of
:mod:`shared.contracts.decoding` (JSON) and :mod:`shared.history.csvrows` (CSV). Errors carry a reason
code and error types and locations only, never answer values.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

from shared.contracts.decoding import Invalid, validate_json, validate_python
from shared.contracts.events import SurveyResponse
from shared.history.csvrows import is_blank, numbered_rows, parse_header, parse_row
from shared.instruments import Registry, ScoreFailure, ScoreResult, score_response

_INSTRUMENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")
_CSV_META = ("instrument",)


class CsvHeaderError(ValueError):
    """The CSV input as a whole is unusable (no header row starting with ``instrument``, or a column
    named twice); the message starts with the reason code."""


def _num(x: float) -> int | float:
    """Whole numbers as ints (10, not 10.0); others as they are (VAS totals are exact to 0.1)."""
    return int(x) if float(x).is_integer() else x


def _safe_instrument(value: object) -> str | None:
    return value if isinstance(value, str) and _INSTRUMENT_ID.match(value) else None


def _invalid(line: int, instrument: str | None, reason: str, detail: str) -> dict[str, Any]:
    return {"line": line, "instrument": instrument, "valid": False, "error": f"{reason}: {detail}"}


def result_to_json(result: ScoreResult | ScoreFailure, instrument: str | None, line: int) -> dict[str, Any]:
    """The output line of one scored (or failed) survey read from input line ``line``."""
    if isinstance(result, ScoreFailure):
        obj = _invalid(line, result.instrument or instrument, result.reason, result.detail)
        if result.critical_items:
            obj["critical_items"] = list(result.critical_items)
        return obj
    return {
        "line": line,
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


def score_json_line(registry: Registry, text: str | bytes, line: int) -> dict[str, Any]:
    """Decode and score one JSON survey record."""
    survey = validate_json(SurveyResponse, text)
    if isinstance(survey, Invalid):
        parsed = survey.parsed
        instrument = _safe_instrument(parsed.get("instrument")) if isinstance(parsed, dict) else None
        return _invalid(line, instrument, survey.reason, survey.detail)
    return result_to_json(score_response(registry, survey), _safe_instrument(survey.instrument), line)


def score_json_lines(registry: Registry, lines: Iterable[str | bytes]) -> Iterator[dict[str, Any]]:
    """One output per non-blank input line, in order; ``line`` counts every input line from 1."""
    for n, text in enumerate(lines, start=1):
        if text.strip():
            yield score_json_line(registry, text, n)


def score_csv(registry: Registry, lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """One output per non-blank data row of CSV ``instrument,1,2,...`` input, in order.

    Raises :class:`CsvHeaderError` on the first step when the header is unusable.
    """
    rows = numbered_rows(lines)
    first = next(rows, None)
    header = first[1] if first is not None else None
    if not isinstance(header, list) or not header or header[0].strip().lstrip("\ufeff") != "instrument":
        raise CsvHeaderError(
            "schema_violation: CSV input needs a header row starting with 'instrument' (instrument,1,2,...)"
        )
    layout = parse_header(header, _CSV_META, _CSV_META)
    if isinstance(layout, Invalid):
        raise CsvHeaderError(f"{layout.reason}: {layout.detail}")
    for n, row in rows:
        if isinstance(row, Invalid):
            yield _invalid(n, None, row.reason, row.detail)
            continue
        if is_blank(row):
            continue
        instrument = _safe_instrument(row[0].strip())
        parsed = parse_row(layout, row, n)
        if isinstance(parsed, Invalid):
            yield _invalid(n, instrument, parsed.reason, parsed.detail)
            continue
        survey = validate_python(
            SurveyResponse, {"instrument": parsed.meta.get("instrument", ""), "answers": parsed.answers}
        )
        if isinstance(survey, Invalid):
            yield _invalid(n, instrument, survey.reason, survey.detail)
            continue
        yield result_to_json(score_response(registry, survey), instrument, n)
