"""The alert policy, one rule at a time: dedup, throttle, inhibition, quiet hours, digests,
escalation, retries and resolution — pure functions, no Kafka."""

from __future__ import annotations

from collections import Counter

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
from shared.alerting.state import ClientAlerts
from tests.unit.alerting.factories import NOW, ack, directory, signal

CFG = PolicyConfig()


def fresh() -> ClientAlerts:
    return new_state("k1", "c-1", partition=4)


def states(decision_events: list) -> list[str]:  # type: ignore[type-arg]
    return [e.data.state for e in decision_events]


def test_a_critical_signal_raises_one_alert_delivered_at_once_on_every_channel() -> None:
    st = fresh()
    d = on_signal(st, signal("critical_item"), directory(), NOW, CFG)
    assert states(d.events) == ["raised"]
    record = st.alerts[alert_id_of(signal("critical_item"))]
    assert {(j.channel, j.endpoint_id) for j in record.jobs} == {
        ("webhook", "ehr-1"),
        ("email", "t1-mail"),
        ("chat", "t1-chat"),
    }
    assert all(j.next_at == NOW for j in record.jobs)
    assert record.escalate_at == NOW + 15 * 60
    assert d.events[0].data.escalate_at is not None


def test_the_same_signal_three_times_is_one_alert() -> None:
    st = fresh()
    first = on_signal(st, signal("alliance_drop"), directory(), NOW, CFG)
    again = [on_signal(st, signal("alliance_drop"), directory(), NOW + i, CFG) for i in (1, 2)]
    assert states(first.events) == ["raised"]
    assert all(a.events == [] for a in again)
    assert [o[2] for a in again for o in a.outcomes] == ["deduplicated", "deduplicated"]


def test_throttle_holds_a_second_non_critical_alert_of_the_same_rule_but_never_a_critical_one() -> None:
    st = fresh()
    on_signal(st, signal("alliance_drop", session=3), directory(), NOW, CFG)
    second = on_signal(st, signal("alliance_drop", session=4), directory(), NOW + 3600, CFG)
    assert second.events == [] and second.outcomes[-1][2] == "throttled"
    later = on_signal(st, signal("alliance_drop", session=9), directory(), NOW + 2 * 86400, CFG)
    assert states(later.events) == ["raised"], "after the window it alerts again"
    c1 = on_signal(st, signal("critical_item", session=3), directory(), NOW, CFG)
    c2 = on_signal(st, signal("critical_item", session=4), directory(), NOW + 60, CFG)
    assert states(c1.events) == ["raised"] and states(c2.events) == ["raised"]


def test_lower_severities_are_held_while_a_critical_alert_is_open_and_released_by_its_ack() -> None:
    st = fresh()
    crit = signal("critical_item")
    on_signal(st, crit, directory(), NOW, CFG)
    held = on_signal(st, signal("outcome_reliable_deterioration"), directory(), NOW + 10, CFG)
    assert states(held.events) == ["raised", "held"]
    assert held.events[0].data.delivery == "inhibited"
    det = st.alerts[alert_id_of(signal("outcome_reliable_deterioration"))]
    assert det.jobs == [] and due_jobs(st, NOW + 10**6) == [
        (st.alerts[alert_id_of(crit)], j) for j in st.alerts[alert_id_of(crit)].jobs
    ]
    released = on_ack(st, ack(alert_id_of(crit)), directory(), NOW + 60, CFG)
    assert states(released.events) == ["acknowledged"]
    assert {j.endpoint_id for j in det.jobs} == {"ehr-1", "t1-mail", "t1-chat"}, "released on ack"


def test_quiet_hours_hold_human_channels_of_non_critical_alerts_but_never_critical_ones() -> None:
    night = NOW + 13 * 3600  # 23:00 London
    quiet = directory(quiet_hours={"start": "21:00", "end": "07:00"})
    st = fresh()
    d = on_signal(st, signal("outcome_reliable_deterioration"), quiet, night, CFG)
    assert states(d.events) == ["raised", "held"]
    record = st.alerts[alert_id_of(signal("outcome_reliable_deterioration"))]
    morning = next(j.next_at for j in record.jobs if j.channel == "email")
    assert morning == NOW + 21 * 3600, "07:00 next morning"
    assert next(j.next_at for j in record.jobs if j.channel == "webhook") == night, "webhooks go at once"
    c = on_signal(fresh(), signal("critical_item"), quiet, night, CFG)
    assert states(c.events) == ["raised"]


def test_digest_mode_sends_moderate_alerts_to_the_digest_and_critical_ones_never() -> None:
    daily = directory(digest="daily", digest_time="08:00")
    st = fresh()
    d = on_signal(st, signal("alliance_drop"), daily, NOW, CFG)
    assert states(d.events) == ["raised", "held"] and d.events[1].data.delivery == "digest"
    assert [(c, t, e.alert_id) for c, t, e in d.digest] == [
        ("k1", "t1", alert_id_of(signal("alliance_drop")))
    ]
    record = st.alerts[alert_id_of(signal("alliance_drop"))]
    assert [j.channel for j in record.jobs] == ["webhook"]
    c = on_signal(fresh(), signal("critical_item"), daily, NOW, CFG)
    assert c.digest == [] and states(c.events) == ["raised"]
    h = on_signal(fresh(), signal("outcome_reliable_deterioration"), daily, NOW, CFG)
    assert h.digest == [], "high alerts never wait for a digest"


def test_an_unacknowledged_critical_alert_escalates_to_the_supervisor_then_on_call() -> None:
    st = fresh()
    crit = signal("critical_item")
    on_signal(st, crit, directory(), NOW, CFG)
    assert on_due(st, directory(), NOW + 14 * 60, CFG).events == [], "not yet"
    up = on_due(st, directory(), NOW + 15 * 60, CFG)
    assert [(e.data.state, e.data.escalation_step, e.data.recipient_id) for e in up.events] == [
        ("escalated", "supervisor", "s1")
    ]
    record = st.alerts[alert_id_of(crit)]
    assert any(j.endpoint_id == "s1-mail" and j.next_at == NOW + 15 * 60 for j in record.jobs)
    top = on_due(st, directory(), NOW + 25 * 60, CFG)
    assert [(e.data.escalation_step, e.data.recipient_id) for e in top.events] == [("on_call", "o1")]
    assert on_due(st, directory(), NOW + 10**5, CFG).events == [], "nothing above on-call"


def test_an_acknowledgement_stops_escalation_and_retries() -> None:
    st = fresh()
    crit = signal("critical_item")
    on_signal(st, crit, directory(), NOW, CFG)
    done = on_ack(st, ack(alert_id_of(crit)), directory(), NOW + 60, CFG)
    assert states(done.events) == ["acknowledged"]
    assert done.events[0].data.acknowledged_by == "t1"
    assert on_due(st, directory(), NOW + 3600, CFG).events == []
    assert due_jobs(st, NOW + 3600) == []
    again = on_ack(st, ack(alert_id_of(crit)), directory(), NOW + 61, CFG)
    assert again.events == [] and again.outcomes[-1][2] == "ack_closed"


def test_an_acknowledgement_by_somebody_not_in_the_clinic_is_refused() -> None:
    st = fresh()
    crit = signal("critical_item")
    on_signal(st, crit, directory(), NOW, CFG)
    refused = on_ack(st, ack(alert_id_of(crit), by="stranger"), directory(), NOW + 60, CFG)
    assert refused.events == [] and alert_id_of(crit) in st.alerts


def _attempt(
    st: ClientAlerts, alert_id: str, endpoint: str, n: int, result: str, code: str, **kw: object
) -> AttemptResult:
    job = next(j for j in st.alerts[alert_id].jobs if j.endpoint_id == endpoint)
    return AttemptResult(
        target="client",
        key="k1|c-1",
        owner_id=alert_id,
        job_id=job.id,
        attempt=n,
        result=result,
        code=code,
        at=NOW,
        **kw,  # type: ignore[arg-type]
    )


def test_failures_are_retried_with_the_same_delivery_id_until_delivered() -> None:
    st = fresh()
    sig = signal("outcome_reliable_deterioration")
    on_signal(st, sig, directory(), NOW, CFG)
    aid = alert_id_of(sig)
    job = next(j for j in st.alerts[aid].jobs if j.endpoint_id == "ehr-1")
    f1 = on_attempt(st, _attempt(st, aid, "ehr-1", 1, "retry", "http_503"), directory(), NOW + 1, CFG)
    assert [(e.data.state, e.data.outcome, e.data.attempt) for e in f1.events] == [("failed", "http_503", 1)]
    assert job.next_at is not None and NOW + 1 <= job.next_at <= NOW + 1 + 5
    on_attempt(st, _attempt(st, aid, "ehr-1", 2, "retry", "timeout"), directory(), NOW + 10, CFG)
    assert NOW + 10 <= job.next_at <= NOW + 10 + 300
    ok = on_attempt(st, _attempt(st, aid, "ehr-1", 3, "delivered", "http_200"), directory(), NOW + 400, CFG)
    assert states(ok.events) == ["delivered"] and job.status == "delivered"
    assert (ok.events[0].data.endpoint_id, ok.events[0].data.attempt) == ("ehr-1", 3)
    assert st.alerts[aid].jobs[0].id == job.id, "one delivery id across every attempt"


def test_retry_after_is_honoured() -> None:
    st = fresh()
    sig = signal("outcome_reliable_deterioration")
    on_signal(st, sig, directory(), NOW, CFG)
    aid = alert_id_of(sig)
    on_attempt(
        st, _attempt(st, aid, "ehr-1", 1, "retry", "http_429", retry_after_s=120.0), directory(), NOW, CFG
    )
    job = next(j for j in st.alerts[aid].jobs if j.endpoint_id == "ehr-1")
    assert job.next_at is not None and job.next_at >= NOW + 120


def test_a_stale_or_duplicate_attempt_result_changes_nothing() -> None:
    st = fresh()
    sig = signal("outcome_reliable_deterioration")
    on_signal(st, sig, directory(), NOW, CFG)
    aid = alert_id_of(sig)
    on_attempt(st, _attempt(st, aid, "ehr-1", 1, "delivered", "http_200"), directory(), NOW, CFG)
    dup = on_attempt(st, _attempt(st, aid, "ehr-1", 1, "delivered", "http_200"), directory(), NOW, CFG)
    assert dup.events == [] and not dup.changed


def test_exhausted_delivery_is_dead_lettered_and_a_critical_alert_escalates_at_once() -> None:
    cfg = PolicyConfig(retry_schedule_s=(1.0,))
    st = fresh()
    crit = signal("critical_item")
    on_signal(st, crit, directory(), NOW, cfg)
    aid = alert_id_of(crit)
    on_attempt(st, _attempt(st, aid, "t1-mail", 1, "retry", "smtp_451"), directory(), NOW, cfg)
    last = on_attempt(st, _attempt(st, aid, "t1-mail", 2, "retry", "smtp_451"), directory(), NOW + 2, cfg)
    assert (last.events[0].data.state, last.events[0].data.outcome) == ("failed", "exhausted")
    assert [n.reason for n in last.dead] == ["delivery_failed"]
    assert ("escalated", "supervisor") in [(e.data.state, e.data.escalation_step) for e in last.events]


def test_gone_disables_the_endpoint_and_other_4xx_are_not_retried() -> None:
    st = fresh()
    sig = signal("outcome_reliable_deterioration")
    on_signal(st, sig, directory(), NOW, CFG)
    aid = alert_id_of(sig)
    gone = on_attempt(st, _attempt(st, aid, "ehr-1", 1, "gone", "http_410"), directory(), NOW, CFG)
    assert [e.data.outcome for e in gone.events] == ["gone"]
    refused = on_attempt(st, _attempt(st, aid, "t1-chat", 1, "rejected", "http_400"), directory(), NOW, CFG)
    assert [e.data.outcome for e in refused.events] == ["http_400"]
    pending = {j.endpoint_id for j in st.alerts[aid].jobs if j.status == "pending"}
    assert pending == {"t1-mail"}


def test_a_repair_resolves_the_open_drop() -> None:
    st = fresh()
    on_signal(st, signal("alliance_drop", session=3), directory(), NOW, CFG)
    rep = on_signal(st, signal("alliance_repaired", session=4), directory(), NOW + 7 * 86400, CFG)
    assert states(rep.events) == ["resolved", "raised"]
    assert rep.events[0].data.resolved_by_signal == signal("alliance_repaired", session=4).id


def test_an_alert_for_an_unknown_clinic_is_raised_unroutable_and_routed_once_the_directory_exists() -> None:
    st = fresh()
    crit = signal("critical_item")
    d = on_signal(st, crit, None, NOW, CFG)
    assert states(d.events) == ["raised"] and d.outcomes[-1][2] == "unroutable"
    assert on_due(st, None, NOW + 61, CFG).events == []
    routed = on_due(st, directory(), NOW + 200, CFG)
    assert routed.changed and st.alerts[alert_id_of(crit)].jobs, "routed to t1 once the directory came"


def test_a_critical_alert_of_a_clinician_not_in_the_directory_goes_to_the_next_step() -> None:
    st = fresh()
    d = on_signal(st, signal("critical_item", clinician="new-hire"), directory(), NOW, CFG)
    assert Counter(states(d.events)) == Counter({"raised": 1, "escalated": 1})
    assert d.events[-1].data.escalation_step == "on_call", "no supervisor known for an unknown clinician"


def test_event_ids_are_deterministic() -> None:
    a, b = fresh(), fresh()
    ea = on_signal(a, signal("critical_item"), directory(), NOW, CFG).events
    eb = on_signal(b, signal("critical_item"), directory(), NOW + 5, CFG).events
    assert [e.id for e in ea] == [e.id for e in eb]


def test_state_round_trips_through_json() -> None:
    st = fresh()
    on_signal(st, signal("critical_item"), directory(), NOW, CFG)
    on_signal(st, signal("alliance_drop"), directory(), NOW, CFG)
    again = ClientAlerts.model_validate_json(st.model_dump_json())
    assert again == st


def test_a_risk_signal_without_client_clinician_or_session_reaches_the_on_call() -> None:
    # What scoring salvages from an invalid session event: only the clinic is known.
    sig = signal("critical_item")
    bare = sig.model_copy(
        update={
            "subject": None,
            "data": sig.data.model_copy(
                update={
                    "client_id": None,
                    "clinician_id": None,
                    "episode_id": None,
                    "session_number": None,
                    "session_time": None,
                }
            ),
        }
    )
    from shared.alerting.policy import client_of

    client = client_of(bare)
    assert client.startswith("unidentified-")
    st = new_state("k1", client, 0)
    d = on_signal(st, bare, directory(), NOW, CFG)
    assert [(e.data.state, e.data.escalation_step) for e in d.events] == [
        ("raised", None),
        ("escalated", "on_call"),
    ]
    raised = d.events[0].data
    assert raised.client_id == client and raised.clinician_id == "unassigned"
    assert raised.session_number is None and raised.episode_id is None
    again = on_signal(st, bare, directory(), NOW + 1, CFG)
    assert again.events == [], "deduplicated by the signal's own id"
