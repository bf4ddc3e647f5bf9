"""A person's view: ``--format table`` of ``rapport score`` and ``rapport signals``, colour rules, help."""

from __future__ import annotations

import io
import json
import re
from typing import Any

import pytest

import shared.cli
from shared.cli.style import Style, use_colour
from tests.unit.rules.factories import small_history

ANSI = re.compile(r"\x1b\[[0-9;]*m")
PHQ9 = {"1": 0, "2": 3, "3": 1, "4": 1, "5": 2, "6": 1, "7": 0, "8": 1, "9": 2}


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], stdin: str, *argv: str
) -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = shared.cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _jsonl(lines: list[Any]) -> str:
    return "".join((ln if isinstance(ln, str) else json.dumps(ln)) + "\n" for ln in lines)


def test_score_table_has_one_aligned_row_per_survey_with_what_to_notice(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stdin = _jsonl(
        [
            {"instrument": "PHQ-9", "answers": PHQ9},
            "",
            '{"instrument": "GAD-7", "answers": {"1": 1, "1": 2}}',
            {"instrument": "GAD-7", "answers": {str(i): 1 for i in range(1, 8)}},
        ]
    )
    code, out, _ = _run(monkeypatch, capsys, stdin, "score", "--format", "table")
    assert code == 0
    rows = out.splitlines()
    assert rows[0].split() == ["line", "instrument", "total", "band", "notes"]
    assert rows[1].split()[:4] == ["1", "PHQ-9", "11", "moderate"]
    assert "CRITICAL item 9 endorsed" in rows[1] and "concern" in rows[1]
    assert rows[2].split()[0] == "3" and "duplicate_key: duplicate_key@answers.*" in rows[2]
    assert rows[3].split()[:4] == ["4", "GAD-7", "7", "mild"]
    # Columns line up: the band starts at the same place on every row.
    starts = {
        row.index(word) for row, word in zip(rows[1:4], ["moderate", "not scored", "mild"], strict=True)
    }
    assert len(starts) == 1
    assert rows[-1] == "2 scored, 1 not scored, 1 with a critical item endorsed"
    assert not ANSI.search(out), "no colour when stdout is not a terminal"


def test_score_json_lines_carry_the_input_line_for_every_output(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # 39 input lines, two of them blank: 37 outputs, each naming its line.
    lines: list[Any] = [{"instrument": "GAD-7", "answers": {str(i): 1 for i in range(1, 8)}}] * 39
    lines[9] = lines[20] = ""
    lines[30] = "{broken"
    _, out, _ = _run(monkeypatch, capsys, _jsonl(lines), "score")
    got = [json.loads(x) for x in out.splitlines()]
    assert len(got) == 37
    assert [g["line"] for g in got] == [n for n in range(1, 40) if n not in (10, 21)]
    assert next(g for g in got if not g["valid"])["line"] == 31


def test_signals_table_rows_and_closing_count_by_kind(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(monkeypatch, capsys, _jsonl(small_history()), "signals", "--format", "table")
    assert code == 0 and err == ""
    rows = out.splitlines()
    assert rows[0].split() == ["line", "client", "sess", "instrument", "severity", "kind", "explanation"]
    drop = next(r for r in rows if "alliance_drop" in r)
    assert drop.split()[1:5] == ["c-rupture", "4", "SRS", "moderate"]
    assert "SRS fell from 38.0 to 30.0" in drop
    assert rows[-1] == (
        "5 signals (alliance_below_cutoff 1, alliance_drop 1, alliance_repaired 1, critical_item 1, "
        "outcome_reliable_deterioration 1)"
    )
    assert not ANSI.search(out)


def test_signals_json_names_the_input_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    history = small_history()
    _, out, _ = _run(monkeypatch, capsys, _jsonl(["", *history]), "signals")
    for sig in map(json.loads, out.splitlines()):
        source = history[sig["line"] - 2]
        assert (source["client"], source["session"]) == (sig["client"], sig["session"])


def test_signals_table_reports_rejected_lines_as_sentences_on_stderr(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = '{"client": "c1", "client": "c2", "session": 1, "surveys": []}'
    code, out, err = _run(
        monkeypatch, capsys, _jsonl([bad, *small_history()]), "signals", "--format", "table"
    )
    assert code == 1
    assert err.strip() == "line 1: duplicate_key: duplicate_key@client"
    assert "1 line(s) or survey(s) rejected" in out.splitlines()[-1]


def test_colour_only_on_a_terminal_and_never_with_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    tty = _Tty()
    assert use_colour(tty, {}) is True
    assert use_colour(tty, {"NO_COLOR": "1"}) is False
    assert use_colour(tty, {"NO_COLOR": ""}) is True  # https://no-color.org: only a non-empty value counts
    assert use_colour(tty, {"TERM": "dumb"}) is False
    assert use_colour(io.StringIO(), {}) is False
    assert Style(True)("x", "31") == "\x1b[31mx\x1b[0m" and Style(False)("x", "31") == "x"


def test_tables_are_coloured_on_a_terminal_unless_no_color(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def table(no_color: str | None) -> str:
        if no_color is None:
            monkeypatch.delenv("NO_COLOR", raising=False)
        else:
            monkeypatch.setenv("NO_COLOR", no_color)
        monkeypatch.delenv("TERM", raising=False)
        out = _Tty()
        monkeypatch.setattr("sys.stdout", out)
        monkeypatch.setattr("sys.stdin", io.StringIO(_jsonl(small_history())))
        shared.cli.main(["signals", "--format", "table"])
        return out.getvalue()

    assert ANSI.search(table(None))
    assert not ANSI.search(table("1"))


@pytest.mark.parametrize("command", shared.cli.SUBCOMMANDS)
def test_every_command_help_documents_input_output_and_exit_status(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        shared.cli.main([command, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "input" in text and "output" in text and "exit status" in text


def test_signals_help_names_every_output_field(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        shared.cli.main(["signals", "--help"])
    text = capsys.readouterr().out
    for field in (
        "line",
        "id",
        "kind",
        "severity",
        "rule_version",
        "ruleset_version",
        "explanation",
        "evidence",
    ):
        assert field in text
    assert "1  some line or survey was rejected" in text
