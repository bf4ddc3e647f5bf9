"""``rapport signals`` through ``shared.cli.main``: stdin in, JSON Lines out, errors on stderr."""

from __future__ import annotations

import io
import json
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

import shared.cli
from tests.unit.rules.factories import history_line, small_history, srs_answers

REQUIRED = {"id", "client", "session", "kind", "severity", "instrument", "rule", "explanation", "evidence"}


def _run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], lines: list[Any], *args: str
) -> tuple[int, list[dict[str, Any]], list[dict[str, Any]]]:
    text = "".join((ln if isinstance(ln, str) else json.dumps(ln)) + "\n" for ln in lines)
    monkeypatch.setattr("sys.stdin", io.StringIO(text))
    code = shared.cli.main(["signals", *args])
    out, err = capsys.readouterr()
    return (
        code,
        [json.loads(x) for x in out.splitlines() if x.strip()],
        [json.loads(x) for x in err.splitlines() if x.strip()],
    )


def test_prints_one_json_line_per_signal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, signals, errors = _run(monkeypatch, capsys, small_history())
    assert code == 0 and errors == []
    assert all(set(s) >= REQUIRED for s in signals)
    got = {(s["client"], s["session"], s["kind"], s["severity"]) for s in signals}
    assert got == {
        ("c-rupture", 4, "alliance_below_cutoff", "info"),
        ("c-rupture", 4, "alliance_drop", "moderate"),
        ("c-rupture", 5, "alliance_repaired", "info"),
        ("c-worse", 3, "outcome_reliable_deterioration", "moderate"),  # PHQ-9 10 → 16: RC 6, first
        ("c-worse", 4, "outcome_reliable_deterioration", "high"),  # 17: confirmed
        ("c-risk", 3, "critical_item", "critical"),
    }
    drop = next(s for s in signals if s["kind"] == "alliance_drop")
    assert drop["instrument"] == "SRS" and drop["rule"] == "alliance.drop_vs_baseline"
    assert drop["explanation"].startswith("SRS fell from 38.0 to 30.0 (-8.0)")
    assert [p["value"] for p in drop["evidence"]["series"]] == [38.0, 38.0, 38.0, 30.0]


def test_repeated_lines_never_repeat_a_signal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    once = _run(monkeypatch, capsys, small_history())[1]
    lines = small_history()
    twice = _run(monkeypatch, capsys, [ln for ln in lines for _ in range(2)] + lines)[1]
    assert sorted(s["id"] for s in twice) == sorted(s["id"] for s in once)


def test_out_of_order_lines_are_put_in_session_order(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [history_line("c1", s, srs=v) for s, v in enumerate([38, 38, 38, 30], start=1)]
    code, signals, _ = _run(monkeypatch, capsys, [lines[3], lines[0], lines[2], lines[1]])
    assert code == 0
    drops = [s for s in signals if s["kind"] == "alliance_drop"]
    assert [(s["client"], s["session"]) for s in drops] == [("c1", 4)]
    assert len({s["id"] for s in signals}) == len(signals)


def test_bad_lines_are_reported_without_values_and_the_rest_goes_on(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = {
        "client": "c9",
        "session": 1,
        "surveys": [{"instrument": "SRS", "answers": {"1": "SECRET-ANSWER"}}],
    }
    off_range = {
        "client": "c9",
        "session": 2,
        "surveys": [{"instrument": "SRS", "answers": {**srs_answers(30), "1": 77.7}}],
    }
    unknown = {"client": "c9", "session": 3, "surveys": [{"instrument": "NOPE", "answers": {"1": 1}}]}
    lines: list[Any] = ["this is not json", {"session": 1, "surveys": []}, secret, off_range, unknown]
    lines += [history_line("c-critical", 1, phq=9, item9=2)]
    monkeypatch.setattr(
        "sys.stdin", io.StringIO("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    )
    code = shared.cli.main(["signals"])
    out, err = capsys.readouterr()
    assert code == 1
    errors = [json.loads(x) for x in err.splitlines()]
    assert [(e["line"], e["error"]) for e in errors] == [
        (1, "undecodable"),
        (2, "schema_violation"),
        (3, "schema_violation"),
        (4, "out_of_range_answer"),
        (5, "unknown_instrument"),
    ]
    assert "SECRET-ANSWER" not in err and "77.7" not in err
    assert [json.loads(x)["kind"] for x in out.splitlines()] == ["critical_item"]


def test_a_risk_answer_in_an_unscorable_survey_is_named(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    line = {"client": "c1", "session": 1, "surveys": [{"instrument": "PHQ-9", "answers": {"1": 1, "9": 2}}]}
    code, _, errors = _run(monkeypatch, capsys, [line])
    assert code == 1
    assert errors[0]["error"] == "too_many_missing"
    assert errors[0]["critical_items"] == ["9"]


def test_ruleset_file_changes_what_fires(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "quiet.yaml"
    path.write_text('version: "no-drops"\nrules:\n  alliance_drop: {enabled: false}\n', encoding="utf-8")
    _, signals, _ = _run(monkeypatch, capsys, small_history(), "--ruleset", str(path))
    assert "alliance_drop" not in {s["kind"] for s in signals}
    assert {s["ruleset_version"] for s in signals} == {"no-drops"}


def test_clinic_and_episode_scope_the_trajectories(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = []
    for s, v in enumerate([38, 38, 38, 30], start=1):
        lines.append(history_line("c1", s, srs=v, clinic="k1", episode="e1"))
        lines.append(history_line("c1", s, srs=38, clinic="k2", episode="e1"))
    _, signals, _ = _run(monkeypatch, capsys, lines)
    assert {(s["clinic"], s["kind"]) for s in signals} == {
        ("k1", "alliance_below_cutoff"),
        ("k1", "alliance_drop"),
    }


def test_bad_ruleset_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("rules: {}\n", encoding="utf-8")
    code, _, errors = _run(monkeypatch, capsys, [], "--ruleset", str(path))
    assert code == 2 and errors[0]["error"] == "configuration"


def test_instrument_dir_adds_clinic_specs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    srs = resources.files("shared.instruments").joinpath("specs", "srs.yaml").read_text(encoding="utf-8")
    (tmp_path / "srs-clinic.yaml").write_text(srs.replace("id: SRS", "id: SRS-CLINIC", 1), encoding="utf-8")
    lines = [
        {"client": "c1", "session": s, "surveys": [{"instrument": "SRS-CLINIC", "answers": srs_answers(v)}]}
        for s, v in enumerate([38, 38, 38, 30], start=1)
    ]
    code, signals, errors = _run(monkeypatch, capsys, lines, "--instrument-dir", str(tmp_path))
    assert code == 0, errors
    assert {(s["instrument"], s["kind"]) for s in signals} >= {("SRS-CLINIC", "alliance_drop")}
