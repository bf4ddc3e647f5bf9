"""Spec variants as configuration: a clinic's ``variants`` in the rule set change how its sessions are
scored (here the PHQ-9's reliable change) and so its signals — live through the services' handlers,
and offline through ``rapport signals`` and ``rapport backtest``."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from shared.instruments import SpecError, default_registry
from shared.pipeline.clinics import ClinicRegistries
from shared.rules.config import load_rulebook
from tests.unit.pipeline.test_parity import _cli, _live

RULESET = """
version: "test-variants"
clinics:
  clinic-lowe:
    variants: {PHQ-9: lowe_mcid}   # reliable change 5 (Löwe et al. 2004)
  clinic-nhs:
    variants: {PHQ-9: iapt}        # reliable change 6 (NHS Talking Therapies), the default
"""


def _phq(total: int) -> dict[str, int]:
    items = [min(3, max(0, total - 3 * i)) for i in range(9)]
    return {str(i + 1): v for i, v in enumerate(items[:8])} | {"9": 0}


def history(clinic: str) -> list[str]:
    """One client: PHQ-9 10 at intake, then 15 twice (a change of 5: reliable only at RC 5)."""
    return [
        json.dumps(
            {
                "clinic": clinic,
                "client": "c-1",
                "session": s,
                "time": f"2026-01-{s:02d}T10:00:00Z",
                "surveys": [{"instrument": "PHQ-9", "answers": _phq(total)}],
            }
        )
        for s, total in enumerate([10, 15, 15], start=1)
    ]


@pytest.fixture
def ruleset(tmp_path: Path) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(RULESET)
    return path


def _deterioration(signals: list[dict[str, Any]]) -> list[tuple[str, int, str]]:
    return sorted(
        (s["clinic"], s["session"], s["severity"])
        for s in signals
        if s["kind"] == "outcome_reliable_deterioration"
    )


EXPECTED = [("clinic-lowe", 2, "moderate"), ("clinic-lowe", 3, "high")]


def test_the_same_history_gives_different_signals_under_two_clinics_variants_live(ruleset: Path) -> None:
    book = load_rulebook(ruleset)
    registries = ClinicRegistries(default_registry(), book)
    assert registries.for_clinic("clinic-lowe")["PHQ-9"].version.endswith("+lowe_mcid")
    assert registries.for_clinic("any-other")["PHQ-9"].reliable_change.threshold == 6  # type: ignore[union-attr]
    _scored, _rejections, signals = _live(history("clinic-lowe") + history("clinic-nhs"), registries, book)
    assert _deterioration(signals) == EXPECTED


def test_the_same_history_gives_different_signals_under_two_clinics_variants_offline(
    ruleset: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    lines = history("clinic-lowe") + history("clinic-nhs")
    code, out, err = _cli(monkeypatch, capsys, "signals", "--ruleset", str(ruleset), stdin="\n".join(lines))
    assert code == 0, err
    assert _deterioration([json.loads(x) for x in out.splitlines()]) == EXPECTED

    path = tmp_path / "history.jsonl"
    path.write_text("\n".join(lines) + "\n")
    code, out, err = _cli(
        monkeypatch, capsys, "backtest", str(path), "--ruleset", str(ruleset), "--json", "--no-progress"
    )
    assert code == 0, err
    rules = Counter({(r["rule"], r["severity"]): r["clients"] for r in json.loads(out)["A"]["rules"]})
    assert rules[("outcome.rci_deterioration", "moderate")] == 1
    assert rules[("outcome.rci_deterioration", "high")] == 1


def test_the_variant_option_applies_to_every_clinic(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = "\n".join(history("clinic-a"))
    code, out, _ = _cli(monkeypatch, capsys, "signals", stdin=lines)
    assert code == 0 and _deterioration([json.loads(x) for x in out.splitlines()]) == []
    code, out, _ = _cli(monkeypatch, capsys, "signals", "--variant", "PHQ-9=lowe_mcid", stdin=lines)
    signals = [json.loads(x) for x in out.splitlines()]
    assert code == 0 and _deterioration(signals) == [("clinic-a", 2, "moderate"), ("clinic-a", 3, "high")]
    assert all("+variants." in s["ruleset_version"] for s in signals), "signals record the variants"


def test_an_unknown_variant_fails_at_start_up(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text('version: "x"\nclinics: {k: {variants: {PHQ-9: nope}}}\n')
    with pytest.raises(SpecError, match="nope"):
        ClinicRegistries(default_registry(), load_rulebook(path))
