"""Histories that kept totals only: ``{"instrument": "BDI-II", "total": 23}`` through the one session
pipeline, with the clinic-supplied BDI-II spec of ``examples/clinic-specs`` (``--instrument-dir``).
The fixture is this file's own small series, never the public data the calibration replays."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from shared.history.sessions import SessionLine
from shared.instruments import load_registry
from shared.pipeline.session import score_surveys
from tests.unit.pipeline.test_parity import _cli

SPECS = Path(__file__).resolve().parents[3] / "examples" / "clinic-specs"

SERIES = {
    "c-better": [30, 29, 21, 18],  # -9 at session 3: reliable improvement (RC 7.65)
    "c-worse": [20, 21, 28, 29],  # +8 at session 3: deterioration, not yet confirmed; then confirmed
    "c-flat": [25, 24, 26, 25],
}


def lines(extra: list[dict[str, Any]] | None = None) -> str:
    out = [
        {"client": client, "session": s, "surveys": [{"instrument": "BDI-II", "total": total}]}
        for client, totals in SERIES.items()
        for s, total in enumerate(totals, start=1)
    ]
    return "\n".join(json.dumps(x) for x in out + (extra or [])) + "\n"


def test_a_total_is_scored_with_the_specs_bands_cutoff_and_reliable_change_risk_unknown() -> None:
    registry = load_registry(extra_dirs=[SPECS])
    survey_in = {"instrument": "BDI-II", "total": 23}
    line = SessionLine.model_validate({"client": "c", "session": 1, "surveys": [survey_in]})
    (survey,) = score_surveys(None, line.surveys, registry).surveys
    result = survey.result
    assert survey.rejection is None and result is not None and not hasattr(result, "reason")
    assert (result.total, result.band, result.concern) == (23, "moderate", True)  # type: ignore[union-attr]
    assert result.risk_unknown == ["9"] and result.critical_items == []  # type: ignore[union-attr]
    assert result.scale.reliable_change == pytest.approx(7.65)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("survey", "reason"),
    [
        ({"instrument": "BDI-II", "total": 64}, "out_of_range_answer"),
        ({"instrument": "BDI-II", "total": 20.5}, "out_of_range_answer"),
        ({"instrument": "BDI-II", "total": 20, "answers": {"1": 1}}, "schema_violation"),
        ({"instrument": "BDI-II"}, "schema_violation"),
    ],
    ids=["above-range", "off-grid", "both", "neither"],
)
def test_a_bad_total_is_rejected_with_a_reason(survey: dict[str, Any], reason: str) -> None:
    registry = load_registry(extra_dirs=[SPECS])
    line = SessionLine.model_validate({"client": "c", "session": 1, "surveys": [survey]})
    (outcome,) = score_surveys(None, line.surveys, registry).surveys
    assert outcome.rejection is not None and outcome.rejection.reason == reason


def test_signals_and_backtest_replay_a_totals_history(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = _cli(monkeypatch, capsys, "signals", "--instrument-dir", str(SPECS), stdin=lines())
    assert code == 0, err
    signals = [json.loads(x) for x in out.splitlines()]
    got = sorted((s["client"], s["session"], s["kind"], s["severity"]) for s in signals)
    assert got == [
        ("c-better", 3, "outcome_reliable_improvement", "info"),
        ("c-worse", 3, "outcome_reliable_deterioration", "moderate"),
        ("c-worse", 4, "outcome_reliable_deterioration", "high"),
    ]
    first = next(s for s in signals if s["severity"] == "moderate")
    assert "not yet confirmed" in first["explanation"] and "risk unknown" in first["explanation"]

    path = tmp_path / "totals.jsonl"
    bad = {"client": "c-bad", "session": 1, "surveys": [{"instrument": "BDI-II", "total": 70}]}
    path.write_text(lines([bad]))
    args = ("backtest", str(path), "--instrument-dir", str(SPECS), "--json", "--no-progress")
    code, out, err = _cli(monkeypatch, capsys, *args)
    report = json.loads(out)
    assert report["input"]["errors_by_reason"] == {"out_of_range_answer": 1}
    rules = Counter({(r["rule"], r["severity"]): r["clients"] for r in report["A"]["rules"]})
    assert rules[("outcome.rci_deterioration", "high")] == 1
    assert report["A"]["flagged_clients"] == 1
