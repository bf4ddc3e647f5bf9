"""CSV input, read by one rule: the header names each column once, every row has one cell per column.

Used for single surveys (``rapport score --input-format csv``: ``instrument,1,2,...``) and for session
histories (``rapport backtest``: ``client,session,instrument,...,1,2,...``). The rules are those of
:mod:`shared.contracts.decoding`, so CSV and JSON refuse the same things:

* a column named twice → ``duplicate_key`` (the whole file: no row can be read unambiguously);
* a row with fewer *or* more cells than the header → ``schema_violation`` naming both counts (a
  short row is never taken as "the trailing items were not answered");
* a cell is a number only in the JSON number grammar with ASCII digits
  (:func:`shared.contracts.decoding.parse_number`); an empty cell is an unanswered item; a number
  too large to represent is refused later as ``out_of_range_answer``.

Errors name columns by position (and by name when the name is a known column or shaped like an item
id), never cell values.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

from shared.contracts.decoding import Invalid, NotANumber, parse_number

#: Cells up to this size are read (a 10 MB number is refused as out of range, not as a CSV error).
MAX_CELL_BYTES: Final = 64 * 1024 * 1024
_ITEM_SHAPED = re.compile(r"^[A-Za-z0-9_.-]{1,16}$")
_BOM = "\ufeff"
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True, slots=True)
class CsvLayout:
    """What a header says: the known (meta) columns by name and the item columns."""

    width: int
    meta: dict[str, int]
    """Known column name → position (0-based)."""
    items: tuple[tuple[int, str], ...]
    """(position, item id) of every other column."""


@dataclass(frozen=True, slots=True)
class CsvRow:
    """One data row: its 1-based starting line, known cells (non-empty, stripped) and answers."""

    line: int
    meta: dict[str, str]
    answers: dict[str, int | float]


def column_label(position: int, name: str, meta: Iterable[str] = ()) -> str:
    """``column 4 (item 3)``: a column by 1-based position, with its name when it is safe to show."""
    if name in meta:
        return f"column {position + 1} ({name})"
    if _ITEM_SHAPED.match(name):
        return f"column {position + 1} (item {name})"
    return f"column {position + 1}"


def parse_header(
    header: Sequence[str], meta_columns: Sequence[str], required: Sequence[str]
) -> CsvLayout | Invalid:
    """The layout of a header row, or why it is unusable (missing column, a name given twice)."""
    names = [h.strip() for h in header]
    if names and names[0].startswith(_BOM):
        names[0] = names[0][1:].strip()
    first: dict[str, int] = {}
    twice: list[str] = []
    for i, name in enumerate(names):
        if name in first:
            j = first[name]
            shown = (
                f" ({name})"
                if name in meta_columns
                else f" (item {name})"
                if _ITEM_SHAPED.match(name)
                else ""
            )
            twice.append(f"duplicate_key@columns {j + 1} and {i + 1}{shown}")
        else:
            first[name] = i
    if twice:
        return Invalid("duplicate_key", "; ".join(twice) + ": a column may be named only once")
    missing = [c for c in required if c not in first]
    if missing:
        return Invalid("schema_violation", "missing column(s): " + ", ".join(missing))
    meta = {c: first[c] for c in meta_columns if c in first}
    items = tuple((i, name) for i, name in enumerate(names) if name not in meta_columns)
    return CsvLayout(len(names), meta, items)


def parse_row(layout: CsvLayout, row: Sequence[str], line: int) -> CsvRow | Invalid:
    """One data row by the layout: a cell per column, numbers by the JSON rule."""
    if len(row) != layout.width:
        return Invalid(
            "schema_violation",
            f"row has {len(row)} cells, expected {layout.width} (one per header column)",
        )
    answers: dict[str, int | float] = {}
    bad: list[str] = []
    for i, name in layout.items:
        try:
            value = parse_number(row[i])
        except NotANumber:
            bad.append(column_label(i, name))
            continue
        if value is not None:
            answers[name] = value
    if bad:
        return Invalid("schema_violation", "; ".join(f"not_a_number@{b}" for b in bad[:5]))
    meta = {c: row[i].strip() for c, i in layout.meta.items() if row[i].strip()}
    return CsvRow(line, meta, answers)


def numbered_rows(lines: Iterable[str]) -> Iterator[tuple[int, list[str] | Invalid]]:
    """CSV rows of ``lines`` with the 1-based line each starts on; an unreadable row is an
    :class:`Invalid` (``undecodable``) and reading goes on with the next one.

    Text decoded from bytes with ``errors="surrogateescape"`` keeps invalid UTF-8 as lone
    surrogates: such a row is ``undecodable`` too, instead of stopping the whole file.
    """
    if csv.field_size_limit() < MAX_CELL_BYTES:
        csv.field_size_limit(MAX_CELL_BYTES)
    reader = csv.reader(lines)
    start = 1
    while True:
        try:
            row: Any = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            row = Invalid("undecodable", f"not valid CSV: {type(exc).__name__}")
            if "NUL" in str(exc):
                row = Invalid("undecodable", "not valid CSV: a NUL character")
        else:
            if not all(cell.isascii() for cell in row) and any(_SURROGATE.search(c) for c in row):
                row = Invalid("undecodable", "not valid UTF-8")
        yield start, row
        start = reader.line_num + 1


def is_blank(row: Sequence[str]) -> bool:
    """True for a row with no content (skipped; its line number is not reused)."""
    return not any(cell.strip() for cell in row)
