"""The canary's contract, its pure probe tracking and its loop with fake Kafka clients."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from services.canary.app import Canary
from services.canary.handlers import ProbeTracker, probe_of
from services.canary.metrics import CanaryMetrics
from services.canary.settings import CanarySettings
from services.monitor.handlers import track_record
from services.scoring.handlers import score_record
from shared.contracts.canary import CANARY_CLINIC_ID, canary_client, canary_session, is_canary
from shared.contracts.keys import subject_key
from shared.instruments import default_registry
from shared.pipeline.session import score_raw_session
from shared.rules.config import default_rulebook
from shared.rules.live import evaluate
from shared.runtime.worker import BatchState, Record

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def test_every_probe_raises_a_critical_item_signal_through_the_real_rules() -> None:
    registry, rules, state = default_registry(), default_rulebook(), None
    for seq in range(5):
        session = canary_session("run-1", seq, NOW, sessions_per_client=3)
        _parsed, scores = score_raw_session(session.model_dump_json().encode(), registry)
        events = scores.events(registry, now=NOW, source="rapport/scoring")
        assert len(events) == 1 and events[0].data.critical_items == ["9"]
        if seq % 3 == 0:
            state = None  # a new canary client
        result = evaluate(state, events[0], rules, NOW)
        state = result.state
        kinds = [s.data.kind for s in result.signals]
        assert "critical_item" in kinds, (seq, kinds)
        assert all(s.clinic_id == CANARY_CLINIC_ID for s in result.signals)
        assert all(str(s.correlation_id) == str(session.id) for s in result.signals)


def test_the_records_scoring_and_the_monitor_publish_for_a_probe_answer_its_stages() -> None:
    """Keys and values exactly as the services' handlers publish them (subject keys included)."""
    registry, rules = default_registry(), default_rulebook()
    session = canary_session("run-1", 0, NOW)
    scored = score_record(Record(None, session.model_dump_json().encode(), "in", 0, 1), registry, NOW)
    (out,) = scored.outputs
    assert probe_of("scored", out.key, out.value) == str(session.id)

    class Store(dict[str, str]):
        def put(self, key: str, value: str, record: Record) -> None:
            self[key] = value

        def delete(self, key: str, record: Record) -> None:
            self.pop(key, None)

    state: BatchState[str] = BatchState(Store(), str, str)
    tracked = track_record(Record(out.key, out.value, "scored", 0, 1), state, rules, NOW)
    answers = [probe_of("signal", o.key, o.value) for o in tracked.outputs]
    assert str(session.id) in answers


def test_probes_are_distinct_sessions_and_clients_roll_over() -> None:
    a, b, c = (canary_session("r", seq, NOW, sessions_per_client=2) for seq in range(3))
    assert len({a.id, b.id, c.id}) == 3
    assert a.data.client_id == b.data.client_id and b.data.session_number == a.data.session_number + 1
    assert c.data.client_id != a.data.client_id and c.data.session_number == 1
    assert canary_client("r", 401, 200) == "canary-r-2"
    assert is_canary(a.clinic_id) and not is_canary("clinic-01") and not is_canary(None)
    with pytest.raises(ValueError):
        canary_session("bad id!", 0, NOW)


def _record(
    kind: str, clinic: str = CANARY_CLINIC_ID, key: bytes = subject_key(CANARY_CLINIC_ID, "canary-r-0")
) -> tuple[bytes, bytes]:
    value = {"clinic_id": clinic, "correlation_id": "p1", "data": {"kind": kind}}
    return key, json.dumps(value).encode()


def test_probe_of_matches_only_canary_records_of_the_stage() -> None:
    assert probe_of("signal", *_record("critical_item")) == "p1"
    assert probe_of("signal", *_record("alliance_drop")) is None
    assert probe_of("scored", *_record("whatever")) == "p1"
    assert probe_of("signal", *_record("critical_item", clinic="clinic-01")) is None
    assert probe_of("signal", *_record("critical_item", key=b"c-001")) is None
    assert probe_of("signal", b"canary-x", b"not json") is None
    assert probe_of("signal", None, b"{}") is None


def test_probe_of_alerted_matches_only_delivered_canary_alerts_whatever_their_key() -> None:
    def alert(state: str, clinic: str = CANARY_CLINIC_ID) -> bytes:
        value = {
            "type": f"rapport.alert.{state}",
            "clinic_id": clinic,
            "correlation_id": "p1",
            "data": {"kind": "critical_item", "state": state},
        }
        return json.dumps(value).encode()

    assert probe_of("alerted", b"an-alert-id", alert("delivered")) == "p1"
    assert probe_of("alerted", b"an-alert-id", alert("raised")) is None
    assert probe_of("alerted", b"an-alert-id", alert("delivered", clinic="clinic-01")) is None


def test_tracker_times_latency_once_per_stage_and_expires_late_probes() -> None:
    tracker = ProbeTracker(timeout_s=10, final="signal")
    tracker.sent("p1", 100.0)
    tracker.sent("p2", 101.0)
    assert tracker.seen("scored", "p1", 100.5) == 0.5
    assert tracker.seen("scored", "p1", 100.7) is None  # a redelivery
    assert tracker.seen("signal", "p1", 102.0) == 2.0
    assert tracker.seen("signal", "p1", 103.0) is None  # done
    assert tracker.seen("signal", "unknown", 103.0) is None
    assert tracker.expire(110.0) == []
    assert tracker.expire(111.5) == ["p2"]
    assert tracker.pending == {}


@dataclass
class FakeRecord:
    key: bytes | None
    value: bytes


@dataclass(frozen=True)
class TP:
    topic: str
    partition: int


class FakeFuture:
    def __init__(self, ok: bool = True) -> None:
        self.is_done = True
        self._ok = ok

    def failed(self) -> bool:
        return not self._ok


class FakeProducer:
    def __init__(self, ok: bool = True) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.ok = ok

    def send(self, topic: str, key: bytes, value: bytes) -> FakeFuture:
        self.sent.append((topic, key, value))
        return FakeFuture(self.ok)


class FakeConsumer:
    """Answers every probe: one scored record, one signal (keyed by subject, as scoring and the
    monitor key them) and one delivered alert per sent session."""

    def __init__(self, producer: FakeProducer, ns: str, answer: bool = True) -> None:
        self.producer, self.ns, self.answer, self.delivered = producer, ns, answer, 0

    def poll(self, timeout_ms: int) -> dict[Any, list[FakeRecord]]:
        out: dict[Any, list[FakeRecord]] = {}
        for _topic, key, value in self.producer.sent[self.delivered :]:
            if not self.answer:
                continue
            session = json.loads(value)
            key = subject_key(session["clinic_id"], session["data"]["client_id"])  # as the services key it
            scored = {"clinic_id": session["clinic_id"], "correlation_id": session["id"], "data": {}}
            signal = {**scored, "data": {"kind": "critical_item"}}
            out.setdefault(TP(f"{self.ns}rapport.survey-scored.v1", 0), []).append(
                FakeRecord(key, json.dumps(scored).encode())
            )
            out.setdefault(TP(f"{self.ns}rapport.signals.v1", 1), []).append(
                FakeRecord(key, json.dumps(signal).encode())
            )
            alert = {**signal, "type": "rapport.alert.delivered"}
            out.setdefault(TP(f"{self.ns}rapport.alerts.v1", 2), []).append(
                FakeRecord(b"alert-id", json.dumps(alert).encode())
            )
        self.delivered = len(self.producer.sent)
        return out


def _canary(
    producer: FakeProducer, answer: bool, timeout_s: float = 300, through_notifier: bool = True
) -> tuple[Canary, CollectorRegistry]:
    registry = CollectorRegistry()
    settings = CanarySettings(
        topic_namespace="n.", interval_s=5, timeout_s=timeout_s, through_notifier=through_notifier
    )
    ticks = iter(float(t) for t in range(1000))
    canary = Canary(
        settings,
        CanaryMetrics.create(registry),
        producer,
        FakeConsumer(producer, "n.", answer),
        "run",
        clock=lambda: next(ticks),
        wall=lambda: 1_700_000_000.0,
    )
    return canary, registry


def test_loop_counts_successes_and_exports_the_last_success_time() -> None:
    producer = FakeProducer()
    canary, registry = _canary(producer, answer=True)
    for _ in range(3):
        canary.send_probe()
        canary.read(10)
        canary.check_sends()
        canary.expire()
    assert [t for t, _k, _v in producer.sent] == ["n.rapport.session-completed.v1"] * 3
    assert registry.get_sample_value("rapport_canary_probes_total", {"outcome": "succeeded"}) == 3
    assert registry.get_sample_value("rapport_canary_last_success_timestamp_seconds") == 1_700_000_000.0
    for stage in ("scored", "signal", "alerted"):
        assert registry.get_sample_value("rapport_canary_latency_seconds_count", {"stage": stage}) == 3
    assert registry.get_sample_value("rapport_canary_pending_probes") == 0


def test_without_the_notifier_the_signal_completes_a_probe() -> None:
    canary, registry = _canary(FakeProducer(), answer=True, through_notifier=False)
    canary.send_probe()
    canary.read(10)
    assert registry.get_sample_value("rapport_canary_probes_total", {"outcome": "succeeded"}) == 1
    assert registry.get_sample_value("rapport_canary_latency_seconds_count", {"stage": "alerted"}) is None


def test_loop_times_out_unanswered_probes_and_counts_failed_sends() -> None:
    canary, registry = _canary(FakeProducer(), answer=False, timeout_s=2)
    canary.send_probe()
    for _ in range(4):
        canary.read(10)
        canary.expire()
    assert registry.get_sample_value("rapport_canary_probes_total", {"outcome": "timed_out"}) == 1
    assert registry.get_sample_value("rapport_canary_last_success_timestamp_seconds") == 0

    failing, registry = _canary(FakeProducer(ok=False), answer=False)
    failing.send_probe()
    failing.check_sends()
    assert registry.get_sample_value("rapport_canary_probes_total", {"outcome": "send_failed"}) == 1
    assert failing.tracker.pending == {}


def test_run_stops_when_asked() -> None:
    canary, registry = _canary(FakeProducer(), answer=True)
    stop = threading.Event()
    stop.set()
    canary.run(stop)
    assert registry.get_sample_value("rapport_canary_probes_sent_total") == 0
