"""Outputs are keyed by the event's subject, whatever key the input had: one client's sessions sent
with different keys to 3 partitions become one ordered trajectory on one partition."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from shared.contracts import topics
from shared.contracts.keys import subject_id, subject_key
from shared.rules.config import default_rulebook
from shared.rules.live import evaluate
from shared.rules.trajectory import ClientState
from shared.runtime.provisioning import producer_config
from tests.faults import table_states
from tests.support import (
    PHQ9_MODERATE,
    consume,
    running_service,
    scored_events,
    session_event,
    srs,
    t,
    values,
)

pytestmark = pytest.mark.e2e
NOW = datetime(2026, 3, 1, tzinfo=UTC)
SRS = [39.0, 39.5, 38.8, 39.2, 30.0, 31.0]


def _sessions() -> list[Any]:
    out = []
    for n, total in enumerate(SRS, start=1):
        answers = {**PHQ9_MODERATE, "9": 1} if n == 5 else PHQ9_MODERATE
        surveys = (("SRS", srs(total)), ("PHQ-9", answers))
        out.append(session_event(client="c-keys", session_number=n, surveys=surveys))
    return out


def test_one_clients_sessions_with_different_keys_on_3_partitions_become_one_ordered_trajectory(
    kafka_bootstrap: str, ns: str, tmp_path: Path
) -> None:
    from kafka import KafkaProducer

    sessions = _sessions()
    offline_state: ClientState | None = None
    expected_signals: set[str] = set()
    for s in sessions:
        for e in scored_events(s):
            result = evaluate(offline_state, e, default_rulebook(), NOW)
            offline_state = result.state
            expected_signals |= {str(sig.id) for sig in result.signals}
    assert offline_state is not None and expected_signals
    monitor_id = f"monitor-{ns.rstrip('.')}"
    producer = KafkaProducer(**producer_config(kafka_bootstrap))
    with (
        running_service("services.scoring", "RAPPORT_SCORING_", kafka_bootstrap, ns, tmp_path),
        running_service(
            "services.monitor", "RAPPORT_MONITOR_", kafka_bootstrap, ns, tmp_path, store="memory://",
            app_id=monitor_id,
        ),
    ):  # fmt: skip
        for n, s in enumerate(sessions, start=1):
            # A different key and partition per session, as an integration that keys by anything.
            value = s.model_dump_json().encode()
            sent = producer.send(
                t(ns, topics.SESSION_COMPLETED), key=f"other-key-{n}".encode(), value=value, partition=n % 3
            )
            sent.get(timeout=30)
            consume(kafka_bootstrap, t(ns, topics.SURVEY_SCORED), expected=2 * n, timeout_s=60, settle_s=0)
        scored = consume(kafka_bootstrap, t(ns, topics.SURVEY_SCORED), expected=2 * len(sessions))
        signals = consume(kafka_bootstrap, t(ns, topics.SIGNALS), len(expected_signals), timeout_s=60)
    producer.close()

    key = subject_key("clinic-01", "c-keys")
    assert {r.key for r in scored} == {key}, "every scored survey keyed by the subject"
    assert len({r.partition for r in scored}) == 1, "one client, one partition"
    in_order = [v["data"]["session_number"] for v in values(sorted(scored, key=lambda r: r.offset))]
    assert in_order == sorted(in_order), "in session order on that partition"
    assert {r.key for r in signals} == {key} and len({r.partition for r in signals}) == 1
    assert {v["id"] for v in values(signals)} == expected_signals, "the in-order signals, no more, no less"
    stored = table_states(kafka_bootstrap, f"{monitor_id}-trajectories-changelog")
    assert stored[subject_id("clinic-01", "c-keys")] == offline_state.to_json(), "one ordered trajectory"
