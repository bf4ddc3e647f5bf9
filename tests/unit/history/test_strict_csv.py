"""CSV input by one rule, for single surveys (``rapport score``) and session histories (backtest)."""

from __future__ import annotations

import io
from typing import Any

import pytest

from shared.history.sessions import LineError, SessionLine, read_records
from shared.history.surveys import CsvHeaderError, score_csv
from shared.instruments import default_registry

REGISTRY = default_registry()
GAD = "1,1,1,1,1,1,1"


def sessions(text: str | bytes) -> list[tuple[int, Any]]:
    raw = text.encode() if isinstance(text, str) else text
    return list(read_records(io.BytesIO(raw), "csv"))


def surveys(text: str) -> list[dict[str, Any]]:
    return list(score_csv(REGISTRY, io.StringIO(text, newline="")))


def test_a_valid_history_row_reads() -> None:
    ((n, line),) = sessions(f"client,session,instrument,1,2,3,4,5,6,7\nc1,1,GAD-7,{GAD}\n")
    assert n == 2 and isinstance(line, SessionLine) and line.surveys[0].answers["7"] == 1


@pytest.mark.parametrize(
    ("header", "detail"),
    [
        ("client,session,instrument,1,2,3,3,5,6,7", "duplicate_key@columns 6 and 7 (item 3)"),
        ("client,session,instrument,1,2,3,4,5,6,7,client", "duplicate_key@columns 1 and 11 (client)"),
    ],
)
def test_a_column_named_twice_is_refused_for_the_whole_file(header: str, detail: str) -> None:
    width = len(header.split(","))
    got = sessions(f"{header}\n" + ",".join(["c1", "1", "GAD-7"] + ["1"] * (width - 3)) + "\n")
    assert len(got) == 1
    n, err = got[0]
    assert n == 1 and isinstance(err, LineError) and err.reason == "duplicate_key"
    assert err.detail.startswith(detail)
    with pytest.raises(CsvHeaderError, match="duplicate_key"):
        surveys("instrument,1,2,2\nGAD-7,1,1,1\n")


@pytest.mark.parametrize(
    ("row", "cells"),
    [(f"c1,1,GAD-7,{GAD[:-4]}", 8), (f"c1,1,GAD-7,{GAD},1", 11)],
)
def test_short_and_long_rows_are_both_refused_with_the_expected_count(row: str, cells: int) -> None:
    text = f"client,session,instrument,1,2,3,4,5,6,7\nc1,1,GAD-7,{GAD}\n{row}\nc1,3,GAD-7,{GAD}\n"
    got = sessions(text)
    assert [n for n, _ in got] == [2, 3, 4]
    assert isinstance(got[0][1], SessionLine) and isinstance(got[2][1], SessionLine), "the lines around flow"
    err = got[1][1]
    assert isinstance(err, LineError) and err.reason == "schema_violation"
    assert err.detail == f"row has {cells} cells, expected 10 (one per header column)"
    (short,) = surveys(f"instrument,1,2,3,4,5,6,7\nGAD-7,{GAD[:-4]}\n")
    assert short["error"] == "schema_violation: row has 6 cells, expected 8 (one per header column)"


@pytest.mark.parametrize("cell", ["٣", "+1", ".5", "1_0", "nan"])
def test_only_ascii_json_numbers_are_numbers(cell: str) -> None:
    got = sessions(f"client,session,instrument,1,2,3,4,5,6,7\nc1,1,GAD-7,{cell},1,1,1,1,1,1\n")
    err = got[0][1]
    assert isinstance(err, LineError) and err.detail == "not_a_number@column 4 (item 1)"
    (scored,) = surveys(f"instrument,1,2,3,4,5,6,7\nGAD-7,{cell},1,1,1,1,1,1\n")
    assert scored["error"] == "schema_violation: not_a_number@column 2 (item 1)"


def test_an_oversized_number_is_out_of_range_in_csv_too() -> None:
    big = "9" * (10 * 1024 * 1024)  # larger than the csv module's default field limit
    out = surveys(f"instrument,1,2,3,4,5,6,7\nGAD-7,{big},1,1,1,1,1,1\nGAD-7,{GAD}\n")
    assert out[0]["error"].startswith("out_of_range_answer: ") and "999" not in out[0]["error"]
    assert out[1]["valid"] is True and out[1]["line"] == 3


def test_an_unreadable_row_is_one_error_and_the_rest_flows() -> None:
    text = (
        b"client,session,instrument,1,2,3,4,5,6,7\n"
        b"c1,1,GAD-7," + GAD.encode() + b"\n"
        b"c\xff1,2,GAD-7," + GAD.encode() + b"\n"
        b"c1,3,GAD-7,1,\x00,1,1,1,1,1\n"
        b"c1,4,GAD-7," + GAD.encode() + b"\n"
    )
    got = sessions(text)
    assert [n for n, _ in got] == [2, 3, 4, 5]
    assert [type(x).__name__ for _, x in got] == ["SessionLine", "LineError", "LineError", "SessionLine"]
    assert (got[1][1].reason, got[2][1].reason) == ("undecodable", "schema_violation")
    assert got[2][1].detail == "not_a_number@column 5 (item 2)"


def test_line_numbers_are_where_a_row_starts() -> None:
    text = f'client,session,instrument,1,2,3,4,5,6,7\n\n"c\n1",1,GAD-7,{GAD}\nc1,2,GAD-7,{GAD}\n'
    got = sessions(text)
    assert [n for n, _ in got] == [3, 5]


def test_a_byte_order_mark_before_the_header_is_ignored() -> None:
    ((_, line),) = sessions(f"\ufeffclient,session,instrument,1,2,3,4,5,6,7\nc1,1,GAD-7,{GAD}\n")
    assert isinstance(line, SessionLine)
