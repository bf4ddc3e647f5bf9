"""The designed demo cases: whatever the seed, the default rules see each case's signal."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime

import pytest

from services.simulator.__main__ import build_parser, settings_from_args
from shared.history.sessions import SessionLine
from shared.history.synthetic import (
    DEMO_CASES,
    SimulationConfig,
    client_archetypes,
    generate_history_lines,
    generate_records,
)
from shared.instruments import default_registry
from shared.pipeline.offline import OfflineMonitor
from shared.rules.config import load_rulebook

START = datetime(2024, 1, 1, tzinfo=UTC)
BOOK = load_rulebook(None)
REGISTRY = default_registry()
SMALL = SimulationConfig(
    clinics=2, clinicians_per_clinic=1, clients_per_clinician=2, sessions_min=4, sessions_max=6
)
TINY = SimulationConfig(
    clinics=1,
    clinicians_per_clinic=1,
    clients_per_clinician=1,
    sessions_min=1,
    sessions_max=1,
    demo_cases=True,
)


def _kinds(config: SimulationConfig, seed: int) -> dict[str, set[str]]:
    monitor = OfflineMonitor(BOOK, REGISTRY, START)
    kinds: dict[str, set[str]] = defaultdict(set)
    for line in generate_history_lines(config, seed, START):
        signals, errors = monitor.feed(SessionLine.model_validate(line))
        assert errors == []
        for s in signals:
            kinds[s.data.client_id].add(s.data.kind)
    return kinds


@pytest.mark.parametrize("seed", range(0, 100))
def test_every_designed_case_raises_its_signal_whatever_the_seed(seed: int) -> None:
    kinds = _kinds(TINY, seed)
    assert "critical_item" in kinds["case-risk"]
    assert "outcome_reliable_deterioration" in kinds["case-deteriorating"]
    assert {"alliance_drop", "alliance_repaired"} <= kinds["case-rupture-repaired"]
    assert "alliance_drop" in kinds["case-rupture-unrepaired"]
    assert "alliance_repaired" not in kinds["case-rupture-unrepaired"]
    # Only the risk case endorses a risk item; the other cases show only their own story.
    assert all("critical_item" not in kinds[f"case-{c}"] for c in DEMO_CASES if c != "risk")


def _fields(config: SimulationConfig) -> dict[str, object]:
    return {name: getattr(config, name) for name in config.__dataclass_fields__}


def test_the_drawn_cohort_is_the_same_with_or_without_demo_cases() -> None:
    plain = list(generate_history_lines(SMALL, 3, START))
    with_cases = SimulationConfig(**{**_fields(SMALL), "demo_cases": True})
    lines = list(generate_history_lines(with_cases, 3, START))
    assert [ln for ln in lines if not ln["client"].startswith("case-")] == plain
    truth = client_archetypes(with_cases, 3)
    assert len(truth) == with_cases.n_clients == SMALL.n_clients + 4
    designed = [t for t in truth if t.case is not None]
    assert [t.client_id for t in designed] == [f"case-{c}" for c in DEMO_CASES]
    assert all(t.clinician_id == truth[0].clinician_id and t.sessions == 8 for t in designed)


def test_designed_cases_have_eight_sessions_even_in_a_short_cohort() -> None:
    config = SimulationConfig(**{**_fields(SMALL), "sessions_min": 2, "sessions_max": 3, "demo_cases": True})
    sessions = defaultdict(list)
    for record in generate_records(config, 1, START):
        assert record.event is not None
        sessions[record.event.data.client_id].append(record.event.data.session_number)
    assert sessions["case-risk"] == list(range(1, 9))
    assert max(max(v) for k, v in sessions.items() if not k.startswith("case-")) <= 3


def test_the_simulator_flag_turns_demo_cases_on() -> None:
    assert settings_from_args(["--demo-cases"]).simulation_config().demo_cases is True
    assert settings_from_args([]).simulation_config().demo_cases is False


def test_every_simulator_option_has_help() -> None:
    parser = build_parser()
    missing = [a.option_strings for a in parser._actions if a.option_strings and not (a.help or "").strip()]
    assert missing == []
    assert "exit status" in parser.format_help()
