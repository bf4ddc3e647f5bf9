"""Golden files: every band boundary, reversed item, prorating rule and failure, through the scorer
and through ``rapport score``. Expected values are derived independently (see golden/make_golden.py)."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from shared.cli import main
from shared.contracts.events import SurveyResponse
from shared.instruments import Registry, ScoreFailure, ScoreResult, score
from shared.instruments.scorer import plan_for, score_general

from .conftest import CLINIC_DIR, GOLDEN, golden_cases, spec_for

CASES = golden_cases()
SCORED_FIELDS = (
    "total",
    "band",
    "subscales",
    "concern",
    "critical_items",
    "prorated",
    "risk_unknown",
    "missing_items",
)


def test_every_packaged_instrument_and_the_clinic_spec_have_golden_files() -> None:
    assert {p.stem for p in GOLDEN.glob("*.jsonl")} == {
        "PHQ-9",
        "GAD-7",
        "CORE-10",
        "K10",
        "ORS",
        "SRS",
        "WAI-SR",
        "OQ-45",
    }


def check(result: ScoreResult | ScoreFailure, expected: dict[str, Any], instrument: str) -> None:
    if not expected["valid"]:
        assert isinstance(result, ScoreFailure), result
        assert result.reason == expected["reason"]
        return
    assert isinstance(result, ScoreResult), result
    assert result.instrument == instrument
    for field in SCORED_FIELDS:
        assert getattr(result, field) == expected[field], field


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_scorer_matches_golden(case: dict[str, Any], registry: Registry) -> None:
    spec = spec_for(registry, case)
    check(score(spec, case["answers"]), case["expected"], case["instrument"])
    # The general (item-by-item) path agrees with whatever path `score` took.
    check(score_general(plan_for(spec), case["answers"]), case["expected"], case["instrument"])


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_validated_response_path_matches_golden(case: dict[str, Any], registry: Registry) -> None:
    spec = spec_for(registry, case)
    response = SurveyResponse(instrument=case["instrument"], answers=case["answers"])
    plan = plan_for(spec)
    result = plan.fast_typed(response.answers) or score_general(plan, response.answers)
    check(result, case["expected"], case["instrument"])


def run_cli(
    argv: list[str], stdin: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, list[dict[str, Any]], str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(argv)
    captured = capsys.readouterr()
    lines = [json.loads(line) for line in captured.out.splitlines()]
    return code, lines, captured.out


def _groups() -> dict[tuple[str, str | None], list[dict[str, Any]]]:
    groups: dict[tuple[str, str | None], list[dict[str, Any]]] = {}
    for case in CASES:
        groups.setdefault((case["instrument"], case.get("variant")), []).append(case)
    return groups


GROUPS = _groups()


@pytest.mark.parametrize("key", list(GROUPS), ids=[f"{i}{'+' + v if v else ''}" for i, v in GROUPS])
def test_cli_matches_golden(
    key: tuple[str, str | None], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    instrument, variant = key
    cases = GROUPS[key]
    argv = ["score", "--instrument-dir", str(CLINIC_DIR)]
    if variant:
        argv += ["--variant", f"{instrument}={variant}"]
    stdin = "".join(json.dumps({"instrument": instrument, "answers": c["answers"]}) + "\n" for c in cases)
    code, lines, _raw = run_cli(argv, stdin, monkeypatch, capsys)
    assert code == 0
    assert len(lines) == len(cases)
    for case, line in zip(cases, lines, strict=True):
        expected = case["expected"]
        assert line["instrument"] == instrument, case["case"]
        assert line["valid"] is expected["valid"], case["case"]
        if not expected["valid"]:
            assert line["error"].startswith(expected["reason"] + ": "), case["case"]
            continue
        for field in SCORED_FIELDS:
            assert line[field] == expected[field], (case["case"], field)
        # Whole totals print as integers, VAS totals with one decimal.
        total = line["total"]
        assert isinstance(total, int) == float(expected["total"]).is_integer(), case["case"]
