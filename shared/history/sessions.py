"""Session histories, read and decoded: the input of ``rapport signals`` and ``rapport backtest``.

JSON Lines, one session a line::

    {"client": "c1", "session": 3, "surveys": [{"instrument": "SRS", "answers": {"1": 9, ...}}],
     "clinic": "k1", "clinician": "t1", "episode": "e1", "time": "2025-01-07T10:00:00Z"}

(``clinic``, ``clinician``, ``episode`` and ``time`` are optional.) Or CSV, one survey a row, with
columns ``client``, ``session``, ``instrument``, optionally ``clinic``, ``clinician``, ``episode``,
``time``, and every other column an item id; an empty cell is an unanswered item.

Errors carry a reason code and the error types and locations only — never answer values.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator, Sequence, Sized
from dataclasses import dataclass
from datetime import datetime
from typing import IO, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from shared.contracts.events import Answer, DeadLetterReason, InstrumentId, ItemId, PseudonymousId
from shared.contracts.events import validation_error_summary as _summary

DEFAULT_CLINIC = "local"
DEFAULT_CLINICIAN = "unassigned"
DEFAULT_EPISODE = "1"
CSV_META = ("client", "session", "instrument", "clinic", "clinician", "episode", "time")
_UNDECODABLE = frozenset({"json_invalid", "json_type", "invalid_utf8"})
_T = TypeVar("_T", bound=Sized)


class _In(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class SurveyIn(_In):
    """One survey of a session line."""

    instrument: InstrumentId
    answers: dict[ItemId, Answer] = Field(max_length=200)


class SessionLine(_In):
    """One completed session."""

    client: PseudonymousId
    session: int = Field(ge=1, le=10_000)
    surveys: list[SurveyIn] = Field(min_length=1, max_length=20)
    clinic: PseudonymousId = DEFAULT_CLINIC
    clinician: PseudonymousId = DEFAULT_CLINICIAN
    episode: PseudonymousId = DEFAULT_EPISODE
    time: AwareDatetime | None = None


@dataclass(frozen=True, slots=True)
class LineError:
    """Why a record could not be read; ``detail`` holds error types and locations, no values."""

    line: int
    reason: DeadLetterReason
    detail: str

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form for an error line on stderr."""
        return {"line": self.line, "error": self.reason, "detail": self.detail}


def parse_json_line(text: str | bytes, line: int) -> SessionLine | LineError:
    """Validate one JSON line as a :class:`SessionLine`."""
    try:
        return SessionLine.model_validate_json(text)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        undecodable = any(e["type"] in _UNDECODABLE for e in errors)
        return LineError(line, "undecodable" if undecodable else "schema_violation", _summary(errors))


#: A record and its 1-based line number in the input.
Numbered = tuple[int, "SessionLine | LineError"]


def read_json_lines(lines: Iterable[str | bytes]) -> Iterator[Numbered]:
    """Parse JSON Lines; blank lines are skipped, line numbers are 1-based."""
    for n, text in enumerate(lines, start=1):
        if text.strip():
            yield n, parse_json_line(text, n)


def _number(cell: str) -> int | float:
    # Integers stay ints: integer-scored instruments accept ints only.
    try:
        return int(cell)
    except ValueError:
        return float(cell)


def read_csv_rows(rows: Iterable[Sequence[str]]) -> Iterator[Numbered]:
    """Parse CSV rows (the first is the header); one survey per row, line numbers count the header."""
    it = iter(rows)
    header = next(it, None)
    if header is None:
        return
    names = [h.strip() for h in header]
    missing = [c for c in ("client", "session", "instrument") if c not in names]
    if missing:
        yield 1, LineError(1, "schema_violation", "missing column(s): " + ", ".join(missing))
        return
    meta = {c: names.index(c) for c in CSV_META if c in names}
    items = [(i, name) for i, name in enumerate(names) if name not in CSV_META]
    for n, row in enumerate(it, start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(names):
            yield n, LineError(n, "schema_violation", f"expected {len(names)} columns, got {len(row)}")
            continue
        answers: dict[str, object] = {}
        bad = ""
        for i, name in items:
            cell = row[i].strip()
            if not cell:
                continue
            try:
                answers[name] = _number(cell)
            except ValueError:
                bad = f"not_a_number@{name}"
                break
        if bad:
            yield n, LineError(n, "schema_violation", bad)
            continue
        record: dict[str, object] = {
            c: row[i].strip() for c, i in meta.items() if c != "instrument" and row[i].strip()
        }
        record["surveys"] = [{"instrument": row[meta["instrument"]].strip(), "answers": answers}]
        try:
            yield n, SessionLine.model_validate(record)
        except ValidationError as exc:
            yield n, LineError(
                n, "schema_violation", _summary(exc.errors(include_url=False, include_input=False))
            )


def session_time(line: SessionLine, default: datetime) -> datetime:
    """The session's time, or ``default`` when the record has none."""
    return line.time if line.time is not None else default


def canonical_surveys(line: SessionLine) -> str:
    """A canonical text of a session's surveys: identical content → identical text (for ids)."""
    return json.dumps(
        [[s.instrument, sorted(s.answers.items())] for s in line.surveys], separators=(",", ":")
    )


def read_records(
    fh: IO[bytes], fmt: str, on_bytes: Callable[[int], None] | None = None
) -> Iterator[Numbered]:
    """Every record of a history file opened in binary mode: JSON Lines (``fmt="jsonl"``) or CSV.

    ``on_bytes(n)`` is called now and then with the bytes read since the last call (a progress bar).
    """
    if fmt == "csv":
        text = io.TextIOWrapper(fh, encoding="utf-8", newline="")
        return read_csv_rows(csv.reader(_counted(text, on_bytes)))
    return read_json_lines(_counted(fh, on_bytes))


def _counted(lines: Iterable[_T], on_bytes: Callable[[int], None] | None) -> Iterator[_T]:
    # Counting bytes per 4096 lines keeps the progress callback off the hot path.
    if on_bytes is None:
        yield from lines
        return
    pending = 0
    for n, line in enumerate(lines, start=1):
        pending += len(line)
        if not n & 4095:
            on_bytes(pending)
            pending = 0
        yield line
    if pending:
        on_bytes(pending)
