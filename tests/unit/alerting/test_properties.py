"""Properties of the alert policy over random sequences of signals (with redeliveries),
acknowledgements, timers and delivery outcomes."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.alerting.feedback import AttemptResult
from shared.alerting.policy import (
    PolicyConfig,
    alert_id_of,
    due_jobs,
    new_state,
    on_ack,
    on_attempt,
    on_due,
    on_signal,
)
from shared.contracts.alerts import AlertEvent
from tests.unit.alerting.factories import NOW, ack, directory, signal

KINDS = [
    "critical_item",
    "alliance_drop",
    "outcome_reliable_deterioration",
    "alliance_repaired",
    "dropout_risk",
]
CFG = PolicyConfig(retry_schedule_s=(5, 60, 600))

op = st.one_of(
    st.tuples(st.just("signal"), st.sampled_from(KINDS), st.integers(1, 4)),
    st.tuples(st.just("ack"), st.integers(0, 10)),
    st.tuples(st.just("advance"), st.sampled_from([1, 30, 300, 900, 3600, 86400])),
    st.tuples(
        st.just("attempt"), st.integers(0, 10), st.sampled_from(["delivered", "retry", "gone", "rejected"])
    ),
)


def run(ops: list[tuple[Any, ...]]) -> tuple[list[AlertEvent], dict[str, str]]:
    """Apply ``ops``; returns every event and the severity of every alert raised."""
    state = new_state("k1", "c-1", 0)
    now = NOW
    events: list[AlertEvent] = []
    severity: dict[str, str] = {}
    raised: list[str] = []
    for o in ops:
        if o[0] == "signal":
            sig = signal(o[1], session=o[2])
            d = on_signal(state, sig, directory(), now, CFG)
            severity[alert_id_of(sig)] = sig.data.severity
            raised += [alert_id_of(sig)]
        elif o[0] == "ack" and raised:
            d = on_ack(state, ack(raised[o[1] % len(raised)]), directory(), now, CFG)
        elif o[0] == "advance":
            now += o[1]
            d = on_due(state, directory(), now, CFG)
        elif o[0] == "attempt":
            jobs = due_jobs(state, now)
            if not jobs:
                continue
            record, job = jobs[o[1] % len(jobs)]
            result = AttemptResult(
                target="client",
                key="k1|c-1",
                owner_id=record.alert_id,
                job_id=job.id,
                attempt=job.attempts + 1,
                result=o[2],
                code="x",
                at=now,
            )
            d = on_attempt(state, result, directory(), now, CFG)
        else:
            continue
        events += d.events
    return events, severity


@settings(max_examples=300, deadline=None)
@given(st.lists(op, max_size=40))
def test_one_raise_per_alert_unique_event_ids_and_nothing_after_closing(ops: list[tuple[Any, ...]]) -> None:
    events, _ = run(ops)
    raises = [e.data.alert_id for e in events if e.data.state == "raised"]
    assert len(raises) == len(set(raises)), "a redelivered signal never makes a second alert"
    ids = [e.id for e in events]
    assert len(ids) == len(set(ids)), "every state change has its own deterministic id"
    closed: set[object] = set()
    for e in events:
        assert e.data.alert_id not in closed, "no event after an alert is acknowledged or resolved"
        if e.data.state in ("acknowledged", "resolved"):
            closed.add(e.data.alert_id)


@settings(max_examples=300, deadline=None)
@given(st.lists(op, max_size=40))
def test_critical_alerts_are_never_held_throttled_or_resolved_by_a_signal(ops: list[tuple[Any, ...]]) -> None:
    events, severity = run(ops)
    for e in events:
        if e.data.severity == "critical":
            assert e.data.state != "held"
            assert e.data.state != "resolved"
            if e.data.state == "raised":
                assert e.data.delivery == "immediate"
    raised = {str(e.data.alert_id) for e in events if e.data.state == "raised"}
    assert {a for a, s in severity.items() if s == "critical"} <= raised, "never throttled away"


@settings(max_examples=100, deadline=None)
@given(st.lists(op, max_size=40))
def test_the_same_inputs_give_the_same_events(ops: list[tuple[Any, ...]]) -> None:
    a, _ = run(ops)
    b, _ = run(ops)
    assert [(e.id, e.data.state) for e in a] == [(e.id, e.data.state) for e in b]
