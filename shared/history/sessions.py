"""Session histories, read and decoded: the input of ``rapport signals`` and ``rapport backtest``.

JSON Lines, one session a line::

    {"client": "c1", "session": 3, "surveys": [{"instrument": "SRS", "answers": {"1": 9, ...}}],
     "clinic": "k1", "clinician": "t1", "episode": "e1", "time": "2025-01-07T10:00:00Z"}

(``clinic``, ``clinician``, ``episode`` and ``time`` are optional.) Or CSV, one survey a row, with
columns ``client``, ``session``, ``instrument``, optionally ``clinic``, ``clinician``, ``episode``,
``time``, and every other column an item id; an empty cell is an unanswered item.

Both formats are read by the strict rules of :mod:`shared.contracts.decoding` (duplicate keys or
columns → ``duplicate_key``, numbers in ASCII digits only, a CSV row must have one cell per column).
Errors carry a reason code and the error types and locations only — never answer values.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable, Iterator, Sequence, Sized
from dataclasses import dataclass
from datetime import datetime
from typing import IO, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from shared.contracts.decoding import Invalid, validate_json, validate_python
from shared.contracts.events import Answer, DeadLetterReason, InstrumentId, ItemId, PseudonymousId
from shared.history.csvrows import is_blank, numbered_rows, parse_header, parse_row

DEFAULT_CLINIC = "local"
DEFAULT_CLINICIAN = "unassigned"
DEFAULT_EPISODE = "1"
CSV_META = ("client", "session", "instrument", "clinic", "clinician", "episode", "time")
CSV_REQUIRED = ("client", "session", "instrument")
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
    """Decode one JSON line strictly (:mod:`shared.contracts.decoding`) as a :class:`SessionLine`."""
    decoded = validate_json(SessionLine, text)
    if isinstance(decoded, Invalid):
        return LineError(line, decoded.reason, decoded.detail)
    return decoded


#: A record and its 1-based line number in the input.
Numbered = tuple[int, "SessionLine | LineError"]


def read_json_lines(lines: Iterable[str | bytes]) -> Iterator[Numbered]:
    """Parse JSON Lines; blank lines are skipped, line numbers are 1-based."""
    for n, text in enumerate(lines, start=1):
        if text.strip():
            yield n, parse_json_line(text, n)


def read_csv_rows(rows: Iterable[tuple[int, Sequence[str] | Invalid]]) -> Iterator[Numbered]:
    """Parse numbered CSV rows (the first is the header; see :func:`csv_rows`); one survey per row.

    A header naming a column twice or missing ``client``, ``session`` or ``instrument`` is one error
    on its line and ends the file; a bad row is an error on its line and the rest goes on.
    """
    it = iter(rows)
    first = next(it, None)
    if first is None:
        return
    n, header = first
    layout = parse_header(header, CSV_META, CSV_REQUIRED) if not isinstance(header, Invalid) else header
    if isinstance(layout, Invalid):
        yield n, LineError(n, layout.reason, layout.detail)
        return
    for n, row in it:
        if isinstance(row, Invalid):
            yield n, LineError(n, row.reason, row.detail)
            continue
        if is_blank(row):
            continue
        parsed = parse_row(layout, row, n)
        if isinstance(parsed, Invalid):
            yield n, LineError(n, parsed.reason, parsed.detail)
            continue
        record: dict[str, object] = {c: v for c, v in parsed.meta.items() if c != "instrument"}
        record["surveys"] = [{"instrument": parsed.meta.get("instrument", ""), "answers": parsed.answers}]
        line = validate_python(SessionLine, record)
        yield n, (LineError(n, line.reason, line.detail) if isinstance(line, Invalid) else line)


def csv_rows(lines: Iterable[str]) -> Iterator[tuple[int, Sequence[str] | Invalid]]:
    """CSV rows of text lines, numbered by the line each starts on (an unreadable row is Invalid)."""
    return numbered_rows(lines)


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
        text = io.TextIOWrapper(fh, encoding="utf-8", errors="surrogateescape", newline="")
        return read_csv_rows(csv_rows(_counted(text, on_bytes)))
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
