"""``rapport backtest`` through ``shared.cli.main``: counts, shares, formats, comparison, progress."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest

import shared.cli
from tests.unit.rules.factories import history_line, small_history


def _jsonl(path: Path, lines: list[Any]) -> Path:
    path.write_text(
        "".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines), encoding="utf-8"
    )
    return path


def _csv(path: Path, lines: list[dict[str, Any]]) -> Path:
    items = [str(i) for i in range(1, 10)]
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["clinic", "client", "episode", "session", "instrument", *items])
        for ln in lines:
            for survey in ln["surveys"]:
                answers = survey["answers"]
                w.writerow(
                    [
                        ln.get("clinic", "local"),
                        ln["client"],
                        ln.get("episode", "1"),
                        ln["session"],
                        survey["instrument"],
                        *[answers.get(i, "") for i in items],
                    ]
                )
    return path


def _backtest(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = shared.cli.main(["backtest", *args])
    out, err = capsys.readouterr()
    return code, out, err


def _rules(report: dict[str, Any]) -> dict[tuple[str, str], tuple[int, int]]:
    return {(r["rule"], r["severity"]): (r["signals"], r["clients"]) for r in report["rules"]}


EXPECTED = {
    ("critical_item.endorsed", "critical"): (1, 1),
    ("alliance.below_cutoff", "info"): (1, 1),
    ("alliance.drop_vs_baseline", "moderate"): (1, 1),
    ("alliance.repair_v", "info"): (1, 1),
    ("outcome.rci_deterioration", "high"): (1, 1),
}


def test_counts_signals_and_flagged_clients(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = small_history()
    path = _jsonl(tmp_path / "h.jsonl", [*lines, lines[3], lines[7]])  # two redelivered lines
    code, out, err = _backtest(capsys, str(path), "--json", "--no-progress")
    assert code == 0 and err == ""
    report = json.loads(out)
    assert report["input"]["clients"] == 4
    assert report["input"]["sessions"] == 20
    a = report["A"]
    assert _rules(a) == EXPECTED
    # Flagged: the rupture (moderate) and the deterioration (high); the risk item is counted apart.
    assert (a["flagged_clients"], a["flagged_share"]) == (2, 0.5)
    assert a["critical_item"] == {"signals": 1, "clients": 1, "share": 0.25}


def test_csv_history_gives_the_same_counts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _csv(tmp_path / "h.csv", small_history())
    code, out, _ = _backtest(capsys, str(path), "--json", "--no-progress")
    report = json.loads(out)
    assert code == 0 and report["input"]["format"] == "csv"
    assert _rules(report["A"]) == EXPECTED
    assert report["A"]["flagged_clients"] == 2


def test_late_and_shuffled_history_is_sorted_per_client(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _jsonl(tmp_path / "h.jsonl", list(reversed(small_history())))
    _, out, _ = _backtest(capsys, str(path), "--json", "--no-progress")
    assert _rules(json.loads(out)["A"]) == EXPECTED


def test_matches_what_rapport_signals_emits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = small_history() + [
        history_line("c-x", s, srs=v, phq=p)
        for s, (v, p) in enumerate([(36, 20), (35, 21), (33, 22), (31, 22), (30, 23), (30, 23)], start=1)
    ]
    path = _jsonl(tmp_path / "h.jsonl", lines)
    monkeypatch.setattr("sys.stdin", io.StringIO(path.read_text(encoding="utf-8")))
    shared.cli.main(["signals"])
    live: dict[tuple[str, str], int] = {}
    for row in capsys.readouterr().out.splitlines():
        s = json.loads(row)
        live[(s["rule"], s["severity"])] = live.get((s["rule"], s["severity"]), 0) + 1
    _, out, _ = _backtest(capsys, str(path), "--json", "--no-progress")
    offline = {k: v[0] for k, v in _rules(json.loads(out)["A"]).items()}
    assert offline == live


def test_compare_puts_two_rule_sets_side_by_side(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _jsonl(tmp_path / "h.jsonl", small_history())
    quiet = tmp_path / "b.yaml"
    quiet.write_text('version: "B-1"\nrules:\n  alliance_drop: {enabled: false}\n', encoding="utf-8")
    code, out, _ = _backtest(capsys, str(path), "--compare", str(quiet), "--json", "--no-progress")
    report = json.loads(out)
    assert code == 0
    assert report["B"]["ruleset_version"] == "B-1"
    assert ("alliance.drop_vs_baseline", "moderate") not in _rules(report["B"])
    assert report["difference"]["flagged_clients"] == -1
    assert report["difference"]["flagged_share"] == -0.25

    code, table, _ = _backtest(capsys, str(path), "--compare", str(quiet), "--no-progress")
    assert "A share" in table and "B share" in table and "Δ share" in table
    drop_row = next(ln for ln in table.splitlines() if ln.startswith("alliance.drop_vs_baseline"))
    assert drop_row.split()[-1] == "-25.0pp"
    flagged = next(ln for ln in table.splitlines() if ln.startswith("flagged"))
    assert "50.0%" in flagged and "25.0%" in flagged and "-25.0pp" in flagged


def test_table_is_the_default_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _jsonl(tmp_path / "h.jsonl", small_history())
    code, out, _ = _backtest(capsys, str(path), "--no-progress")
    assert code == 0
    assert "4 clients, 20 sessions" in out
    assert any(ln.startswith("critical items") and "25.0%" in ln for ln in out.splitlines())


def test_progress_bar_goes_to_stderr_on_a_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _jsonl(tmp_path / "h.jsonl", small_history())
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    _, out, err = _backtest(capsys, str(path), "--json")
    json.loads(out)  # stdout stays machine-readable
    assert "read" in err and "rules A" in err


def test_no_progress_bar_when_stderr_is_not_a_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _jsonl(tmp_path / "h.jsonl", small_history())
    _, out, err = _backtest(capsys, str(path), "--json")
    json.loads(out)
    assert err == ""


def test_bad_records_are_counted_and_shown_without_values(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = {
        "client": "c9",
        "session": 1,
        "surveys": [{"instrument": "PHQ-9", "answers": {str(i): 55 for i in range(1, 10)}}],
    }
    path = _jsonl(tmp_path / "h.jsonl", ["{not json", bad, *small_history()])
    code, out, err = _backtest(capsys, str(path), "--json", "--no-progress")
    report = json.loads(out)
    assert code == 1
    assert report["input"]["bad_records"] == 1
    assert report["input"]["unscorable_surveys"] == 1
    assert report["input"]["errors_by_reason"] == {"out_of_range_answer": 1, "undecodable": 1}
    assert "55" not in err
    assert _rules(report["A"]) == EXPECTED


def test_missing_file_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _backtest(capsys, str(tmp_path / "nope.jsonl"))
    assert code == 2 and err.startswith("error:")


def test_unscorable_surveys_with_endorsed_risk_are_counted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = {"client": "c1", "session": 1, "surveys": [{"instrument": "PHQ-9", "answers": {"1": 1, "9": 3}}]}
    path = _jsonl(tmp_path / "h.jsonl", [line])
    _code, out, _err = _backtest(capsys, str(path), "--json", "--no-progress")
    summary = json.loads(out)["input"]
    assert summary["unscorable_surveys"] == 1
    assert summary["unscorable_with_risk"] == 1
