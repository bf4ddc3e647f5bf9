"""Reading single survey records (``rapport score``): JSON Lines or CSV, one survey per record.

Each record becomes a scored result or an error payload; a bad record never stops the rest. Errors
carry a reason code and error types and locations only, never answer values.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from typing import IO, Any

from pydantic import ValidationError

from shared.contracts.events import SurveyResponse, validation_error_summary
from shared.instruments import Registry, ScoreFailure, ScoreResult, score_response

_INSTRUMENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")
_INT = re.compile(r"^[+-]?\d+$")
_FLOAT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


class CsvHeaderError(ValueError):
    """The CSV input as a whole is unusable (no header row starting with ``instrument``)."""


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


def score_json_line(registry: Registry, line: str) -> dict[str, Any]:
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


def score_parsed(registry: Registry, instrument: str, parsed: dict[str, Any] | str) -> dict[str, Any]:
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


def csv_surveys(stream: IO[str]) -> Iterator[tuple[str, dict[str, Any] | str]]:
    """(instrument, answers) per non-empty data row, or (instrument, problem) for a malformed row."""
    reader = csv.reader(stream)
    header = next(reader, None)
    if not header or header[0].strip().lstrip("\ufeff") != "instrument":
        raise CsvHeaderError("CSV input needs a header row starting with 'instrument' (instrument,1,2,...)")
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
