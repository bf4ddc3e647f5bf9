"""Spec variants per clinic on a real broker: the scoring service scores each clinic's sessions with
the variants the rule-set file names, so the same session history raises different signals in two
clinics; the monitor's signals equal the offline pipeline's over the same input."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from shared.contracts import topics
from shared.instruments import default_registry
from shared.pipeline.clinics import ClinicRegistries
from shared.pipeline.session import score_session
from shared.rules.config import load_rulebook
from shared.rules.live import evaluate
from tests.support import consume, produce, running_service, session_event, t, values

pytestmark = pytest.mark.integration
RULESET = """
version: "live-variants"
clinics:
  clinic-lowe:
    variants: {PHQ-9: lowe_mcid}   # reliable change 5
  clinic-nhs: {}                   # the default 6
"""
NOW = datetime(2026, 3, 1, tzinfo=UTC)


def _phq(total: int) -> dict[str, int]:
    return {str(i + 1): min(3, max(0, total - 3 * i)) for i in range(8)} | {"9": 0}


def _sessions() -> list:
    return [
        session_event(clinic=clinic, client="c-1", session_number=n, surveys=(("PHQ-9", _phq(total)),))
        for clinic in ("clinic-lowe", "clinic-nhs")
        for n, total in enumerate([10, 15, 15], start=1)
    ]


def test_a_clinics_variant_changes_its_live_signals(kafka_bootstrap: str, ns: str, tmp_path: Path) -> None:
    rules_path = tmp_path / "rules.yaml"
    rules_path.write_text(RULESET)
    book = load_rulebook(rules_path)
    registries = ClinicRegistries(default_registry(), book)
    states: dict[str, object] = {}
    expected: dict[str, tuple[str, int, str]] = {}
    for session in _sessions():
        registry = registries.for_clinic(session.clinic_id)
        for scored in score_session(session, registries).events(registry, now=NOW, source="x"):
            result = evaluate(states.get(scored.clinic_id), scored, book, NOW)  # type: ignore[arg-type]
            states[scored.clinic_id] = result.state
            for s in result.signals:
                expected[str(s.id)] = (s.clinic_id, s.data.session_number, s.data.severity)
    assert sorted(expected.values()) == [("clinic-lowe", 2, "moderate"), ("clinic-lowe", 3, "high")]

    with (
        running_service(
            "services.scoring",
            "RAPPORT_SCORING_",
            kafka_bootstrap,
            ns,
            tmp_path,
            ruleset_path=str(rules_path),
        ),
        running_service(
            "services.monitor",
            "RAPPORT_MONITOR_",
            kafka_bootstrap,
            ns,
            tmp_path,
            store="memory://",
            ruleset_path=str(rules_path),
        ),
    ):
        records = [(s.data.client_id.encode(), s.model_dump_json().encode()) for s in _sessions()]
        produce(kafka_bootstrap, t(ns, topics.SESSION_COMPLETED), records)
        got = consume(
            kafka_bootstrap, t(ns, topics.SIGNALS), expected=len(expected), timeout_s=120, settle_s=5
        )
        scored = consume(kafka_bootstrap, t(ns, topics.SURVEY_SCORED), expected=6, timeout_s=30)

    versions = {(v["clinic_id"], v["data"]["instrument_version"]) for v in values(scored)}
    assert versions == {("clinic-lowe", "1.1.0+lowe_mcid"), ("clinic-nhs", "1.1.0")}
    signals = values(got)
    assert {v["id"] for v in signals} == set(expected), "live equals offline, no clinic-nhs signal"
    assert all(v["data"]["kind"] == "outcome_reliable_deterioration" for v in signals)
