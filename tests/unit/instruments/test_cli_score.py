"""``rapport score`` end to end through ``shared.cli.main`` (stdin → stdout), no broker."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from shared.cli import main

from .conftest import BROKEN_DIR, CLINIC_DIR

PHQ_10 = {"1": 0, "2": 0, "3": 0, "4": 1, "5": 2, "6": 1, "7": 3, "8": 2, "9": 1}


def run(
    argv: list[str], stdin: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(["score", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines()]


def test_valid_line_has_the_documented_shape(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run([], json.dumps({"instrument": "PHQ-9", "answers": PHQ_10}) + "\n", monkeypatch, capsys)
    assert code == 0
    assert out == (
        '{"line": 1, "instrument": "PHQ-9", "valid": true, "total": 10, "band": "moderate", "subscales": {}, '
        '"concern": true, "critical_items": ["9"], "prorated": false, "risk_unknown": [], '
        '"missing_items": []}\n'
    )


def test_vas_total_prints_with_one_decimal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    survey = {"instrument": "SRS", "answers": {"1": 9.1, "2": 8.7, "3": 9.0, "4": 9.1}}
    _, out, _ = run([], json.dumps(survey) + "\n", monkeypatch, capsys)
    assert '"total": 35.9,' in out
    assert "35.900000000000006" not in out


def test_bad_lines_never_stop_the_rest(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stdin = (
        "\n".join(
            [
                json.dumps({"instrument": "PHQ-9", "answers": PHQ_10}),
                "{not json",
                "",
                json.dumps({"instrument": "BDI-II", "answers": {"1": 1}}),
                json.dumps({"instrument": "GAD-7", "answers": {"1": "2"}}),
                json.dumps(["a", "list"]),
                json.dumps({"answers": {"1": 1}}),
                json.dumps({"instrument": "GAD-7", "answers": {str(i): 9 for i in range(1, 8)}}),
                json.dumps({"instrument": "GAD-7", "answers": {"1": 1, "99": 1}}),
                json.dumps(
                    {
                        "instrument": "GAD-7",
                        "answers": {"1": True, "2": 0, "3": 0, "4": 0, "5": 0, "6": 0, "7": 0},
                    }
                ),
                json.dumps({"instrument": "SRS", "answers": {"1": 9, "2": 9, "3": 9, "4": 9}}),
            ]
        )
        + "\n"
    )
    code, out, _ = run([], stdin, monkeypatch, capsys)
    assert code == 0
    got = lines(out)
    assert len(got) == 10  # one per non-empty input line, in order
    assert got[0]["valid"] is True and got[0]["total"] == 10
    assert [g["line"] for g in got] == [1, 2, 4, 5, 6, 7, 8, 9, 10, 11]  # line 3 is blank
    assert got[1]["instrument"] is None and got[1]["valid"] is False
    assert got[1]["error"].startswith("undecodable: not valid JSON")
    assert got[2] == {
        "line": 4,
        "instrument": "BDI-II",
        "valid": False,
        "error": "unknown_instrument: no spec for instrument 'BDI-II'",
    }
    assert got[3]["instrument"] == "GAD-7" and got[3]["error"].startswith("schema_violation: ")
    assert got[4]["error"].startswith("schema_violation: ") and got[4]["instrument"] is None
    assert got[5]["error"].startswith("schema_violation: ")
    assert got[6]["error"].startswith("out_of_range_answer: 7 answer(s)")
    assert got[7]["error"].startswith("unknown_item: 1 unknown item id(s): 99")
    assert got[8]["error"].startswith("schema_violation: ")  # JSON true is not a number
    assert got[9]["valid"] is True and got[9]["total"] == 36 and got[9]["concern"] is False


def test_errors_never_echo_answer_values(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stdin = (
        "\n".join(
            [
                json.dumps({"instrument": "PHQ-9", "answers": {"1": 777, "2": 0}}),
                json.dumps({"instrument": "PHQ-9", "answers": {"1": "777"}}),
                json.dumps({"instrument": "SRS", "answers": {"1": 7.77, "2": 1, "3": 1, "4": 1}}),
            ]
        )
        + "\n"
    )
    _, out, _ = run([], stdin, monkeypatch, capsys)
    assert "777" not in out and "7.77" not in out
    assert len(lines(out)) == 3


def test_failed_survey_still_reports_an_endorsed_critical_item(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    survey = {"instrument": "PHQ-9", "answers": {"1": 1, "9": 3}}
    _, out, _ = run([], json.dumps(survey) + "\n", monkeypatch, capsys)
    (line,) = lines(out)
    assert line["valid"] is False and line["error"].startswith("too_many_missing: 7 of 9 items missing")
    assert line["critical_items"] == ["9"]


def test_risk_unknown_and_missing_items(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    answers = {str(i): 1 for i in range(1, 9)} | {"9": None}
    _, out, _ = run([], json.dumps({"instrument": "PHQ-9", "answers": answers}) + "\n", monkeypatch, capsys)
    (line,) = lines(out)
    assert line["total"] == 9 and line["prorated"] is True
    assert line["risk_unknown"] == ["9"] and line["missing_items"] == ["9"] and line["critical_items"] == []


def test_csv_input(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    stdin = (
        "instrument,1,2,3,4,5,6,7,8,9\n"
        "PHQ-9,0,0,0,1,2,1,3,2,1\n"
        "GAD-7,1,1,1,1,1,1,1,,\n"
        "\n"
        "SRS,9.1,8.7,9.0,9.1,,,,,\n"
        "PHQ-9,,,,1,2,1,3,2,1\n"
        "GAD-7,1,x,1,1,1,1,1,,\n"
        "NOPE,1,,,,,,,,\n"
        "GAD-7,1,1,1,1,1,1,1,,,,5\n"
    )
    code, out, _ = run(["--input-format", "csv"], stdin, monkeypatch, capsys)
    assert code == 0
    got = lines(out)
    assert len(got) == 7
    assert [g["line"] for g in got] == [2, 3, 5, 6, 7, 8, 9]
    assert (got[0]["total"], got[0]["band"], got[0]["critical_items"]) == (10, "moderate", ["9"])
    assert (got[1]["instrument"], got[1]["total"]) == ("GAD-7", 7)
    assert got[2]["total"] == 35.9 and got[2]["concern"] is True
    assert got[3]["error"].startswith("too_many_missing: 3 of 9")
    assert got[4] == {
        "line": 7,
        "instrument": "GAD-7",
        "valid": False,
        "error": "schema_violation: not_a_number@column 3 (item 2)",
    }
    assert got[5]["error"].startswith("unknown_instrument")
    assert got[6]["error"] == "schema_violation: row has 12 cells, expected 10 (one per header column)"


def test_old_format_csv_spelling_still_reads_csv(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(["--format", "csv"], "instrument,1,2\nSRS,9,9\n", monkeypatch, capsys)
    assert code == 0
    (line,) = lines(out)
    assert line["line"] == 2 and line["error"].startswith("too_many_missing")


def test_csv_without_header_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(["--input-format", "csv"], "PHQ-9,0,0,0\n", monkeypatch, capsys)
    assert (code, out) == (2, "")
    assert "header row" in err


def test_instrument_dir_and_variants(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stdin = json.dumps({"instrument": "OQ-45", "answers": {str(i): 0 for i in range(1, 46)}}) + "\n"
    stdin += json.dumps({"instrument": "K10", "answers": {str(i): 2 for i in range(1, 11)}}) + "\n"
    code, out, _ = run(
        ["--instrument-dir", str(CLINIC_DIR), "--variant", "K10=andrews_slade"], stdin, monkeypatch, capsys
    )
    assert code == 0
    oq, k10 = lines(out)
    assert oq["total"] == 36 and oq["subscales"]["interpersonal_relations"] == 16
    assert (k10["total"], k10["band"], k10["concern"]) == (20, "mild", True)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--instrument-dir", str(BROKEN_DIR)], "invalid instrument spec"),
        (["--instrument-dir", "/nonexistent/rapport"], "does not exist"),
        (["--variant", "K10"], "expected ID=NAME"),
        (["--variant", "K10=nope"], "unknown variant 'nope'"),
    ],
)
def test_bad_configuration_is_a_usage_error(
    argv: list[str], message: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(argv, "", monkeypatch, capsys)
    assert (code, out) == (2, "")
    assert message in err


def test_empty_input_writes_nothing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run([], "\n\n", monkeypatch, capsys)[:2] == (0, "")


def test_help_documents_formats_and_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["score", "--help"])
    text = capsys.readouterr().out
    assert "--instrument-dir" in text and "exit status" in text and "csv" in text
    for field in ("line", "valid", "total", "band", "concern", "critical_items", "risk_unknown", "table"):
        assert field in text


def test_score_is_a_registered_subcommand() -> None:
    import shared.cli

    assert "score" in shared.cli.SUBCOMMANDS
