"""The notifier's handlers for the worker loop: decode an input, run the alert policy, and say what
to publish and store. Pure apart from reading the directory snapshot they are given.

Two sides, each with its own table:

* the **client side** (key ``clinic|client``) takes signals, acknowledgements and its internal
  records (delivery results, due timers, inputs forwarded from another partition);
* the **digest side** (key ``clinic|clinician``) takes digest items and its own internal records.

Every state lives in one partition: ``partition_for(key)``, where a producer keying by the same key
puts its records. An input that arrives elsewhere (a producer keyed it differently) is forwarded to
the right partition of the internal topic first, so one client's alerts are never split.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import ValidationError

from shared.alerting import digest as digests
from shared.alerting import policy
from shared.alerting.feedback import AttemptResult, DigestItem, DueTick, Forwarded, InternalRecord
from shared.alerting.state import ClientAlerts, DigestState
from shared.contracts.alerts import (
    AlertAcknowledged,
    AlertAcknowledgedData,
    AlertEvent,
    ClinicDirectory,
    Person,
    WebhookChannel,
)
from shared.contracts.canary import CANARY_CLINIC_ID, CANARY_CLINICIAN_ID, is_canary
from shared.contracts.deadletters import Rejection, decode
from shared.contracts.events import Signal, derive_id, validation_error_summary
from shared.contracts.topics import ALERT_ACKS, ALERTS, NOTIFIER_CLIENT, NOTIFIER_DIGEST, SIGNALS
from shared.runtime.kafka import partition_for
from shared.runtime.worker import Handled, Output, Record, StateView

STAGE = "notifier"


#: The canary clinic's directory: its clinician has one channel, which the dispatcher sends to the
#: null channel; its alerts are closed as soon as they are delivered (nobody is told, nobody waits).
CANARY_DIRECTORY = ClinicDirectory(
    clinic_id=CANARY_CLINIC_ID,
    people=[
        Person(
            id=CANARY_CLINICIAN_ID,
            channels=[WebhookChannel(id="canary-null", url="http://canary.invalid/", secrets=["CANARY"])],
        )
    ],
)


@dataclass(frozen=True)
class Context:
    """What both sides need besides the record: the directory, the policy, the topic names."""

    clinics: Callable[[str], ClinicDirectory | None]
    cfg: policy.PolicyConfig
    partitions: int
    namespace: str = ""

    def topic(self, base: str) -> str:
        """The physical name of a base topic name."""
        return f"{self.namespace}{base}"

    def directory(self, clinic_id: str) -> ClinicDirectory | None:
        """A clinic's directory entry (the canary clinic's is built in)."""
        return CANARY_DIRECTORY if is_canary(clinic_id) else self.clinics(clinic_id)


@dataclass
class Facts:
    """What the service's metrics and dispatcher learn from one handled record."""

    target: str
    key: str
    state: ClientAlerts | DigestState | None
    """The state after the record (``None``: deleted or untouched)."""
    touched: bool = False
    outcomes: list[tuple[str, str, str]] = field(default_factory=list)
    escalations: list[str] = field(default_factory=list)
    first_delivery: list[tuple[str, float]] = field(default_factory=list)
    """(severity, seconds from the session event to the first delivery)."""
    exhausted: list[str] = field(default_factory=list)
    """Channels of deliveries given up (after the last retry) by this record."""
    attempt: AttemptResult | None = None


def client_key(clinic_id: str, client_id: str) -> str:
    """State key of a client's alerts (client ids are scoped by clinic)."""
    return f"{clinic_id}|{client_id}"


def clinician_key(clinic_id: str, clinician_id: str) -> str:
    """State key of a clinician's digest."""
    return f"{clinic_id}|{clinician_id}"


def _alert_outputs(events: list[AlertEvent]) -> tuple[Output, ...]:
    return tuple(Output(ALERTS, str(e.data.alert_id).encode(), e.model_dump_json().encode()) for e in events)


def _internal(topic: str, key: str, record: InternalRecord, partitions: int) -> Output:
    k = key.encode()
    return Output(topic, k, record.model_dump_json().encode(), partition_for(k, partitions))


def _rejections(notes: list[policy.DeadLetterNote]) -> tuple[Rejection, ...]:
    return tuple(Rejection("delivery_failed", n.detail, n.summary.instrument) for n in notes)


def handle_client(record: Record, state: StateView[ClientAlerts], now_dt: datetime, ctx: Context) -> Handled:
    """The client side's handler."""
    now = now_dt.timestamp()
    topic = record.topic
    value = record.value
    forwarded = False
    if topic == ctx.topic(NOTIFIER_CLIENT):
        try:
            internal = InternalRecord.model_validate_json(value).record
        except ValidationError as exc:
            return Handled("rejected", rejections=(Rejection("schema_violation", _summary(exc)),))
        if isinstance(internal, Forwarded):
            forwarded = True
            topic = ctx.topic(SIGNALS) if internal.source == "signal" else ctx.topic(ALERT_ACKS)
            value = internal.value.encode()
        elif isinstance(internal, AttemptResult | DueTick):
            return _client_internal(record, state, internal, now, ctx)
        else:
            return Handled("rejected", rejections=(Rejection("schema_violation", "wrong internal record"),))
    if topic == ctx.topic(SIGNALS):
        signal = decode(Signal, value)
        if isinstance(signal, Rejection):
            return Handled("rejected", rejections=(signal,))
        key = client_key(signal.clinic_id, signal.data.client_id)
        if not forwarded and (moved := _forward(record, key, "signal", ctx)) is not None:
            return moved
        current = state.get(key) or policy.new_state(
            signal.clinic_id, signal.data.client_id, record.partition
        )
        decision = policy.on_signal(
            current,
            signal,
            ctx.directory(signal.clinic_id),
            now,
            ctx.cfg,
            origin=(record.topic, record.partition, record.offset),
        )
        return _client_result(record, state, ctx, key, decision, "signal", correlation=signal.correlation_id)
    if topic == ctx.topic(ALERT_ACKS):
        ack = decode(AlertAcknowledged, value)
        if isinstance(ack, Rejection):
            return Handled("rejected", rejections=(ack,))
        key = client_key(ack.clinic_id, ack.subject)
        if not forwarded and (moved := _forward(record, key, "ack", ctx)) is not None:
            return moved
        stored = state.get(key)
        if stored is None:
            return Handled(
                "ack_unknown", facts=(Facts("client", key, None, outcomes=[("", "", "ack_unknown")]),)
            )
        decision = policy.on_ack(stored, ack, ctx.directory(ack.clinic_id), now, ctx.cfg)
        return _client_result(record, state, ctx, key, decision, "ack")
    return Handled("rejected", rejections=(Rejection("schema_violation", "unexpected topic"),))


def _forward(record: Record, key: str, source: str, ctx: Context) -> Handled | None:
    """Send an input to its state's partition when it arrived on another one."""
    home = partition_for(key.encode(), ctx.partitions)
    if record.partition == home:
        return None
    wrapped = InternalRecord(record=Forwarded(source=source, value=record.value.decode("utf-8")))
    return Handled("forwarded", outputs=(_internal(NOTIFIER_CLIENT, key, wrapped, ctx.partitions),))


def _client_internal(
    record: Record,
    state: StateView[ClientAlerts],
    internal: AttemptResult | DueTick,
    now: float,
    ctx: Context,
) -> Handled:
    stored = state.get(internal.key)
    if stored is None:
        return Handled("stale", facts=(Facts("client", internal.key, None, attempt=_attempt(internal)),))
    directory = ctx.directory(stored.clinic_id)
    if isinstance(internal, DueTick):
        decision = policy.on_due(stored, directory, now, ctx.cfg)
        return _client_result(record, state, ctx, internal.key, decision, "due")
    before = {a: r.first_delivered_at for a, r in stored.alerts.items()}
    decision = policy.on_attempt(stored, internal, directory, now, ctx.cfg)
    if is_canary(stored.clinic_id):
        _close_delivered_canary(stored, decision, now, ctx)
    handled = _client_result(record, state, ctx, internal.key, decision, "attempt", attempt=internal)
    facts: Facts = handled.facts[0]
    for alert_id, alert in stored.alerts.items():
        s = alert.summary
        if before.get(alert_id) is None and alert.first_delivered_at is not None and s.session_event_time:
            facts.first_delivery.append(
                (s.severity, max(0.0, alert.first_delivered_at - s.session_event_time))
            )
    return handled


def _close_delivered_canary(state: ClientAlerts, decision: policy.Decision, now: float, ctx: Context) -> None:
    """A canary alert is closed once its (null) delivery is done: it proves the notifier moves,
    and must never wait for anybody or count as an unacknowledged critical alert."""
    for record in list(state.alerts.values()):
        if any(j.status == "pending" for j in record.jobs):
            continue
        ack = AlertAcknowledged(
            id=derive_id("canary-ack", record.alert_id),
            source="rapport/notifier",
            time=policy.at(now),  # type: ignore[arg-type]
            subject=state.client_id,
            clinic_id=state.clinic_id,
            correlation_id=uuid.UUID(record.summary.correlation_id),
            data=AlertAcknowledgedData(
                alert_id=uuid.UUID(record.alert_id),
                acknowledged_by=CANARY_CLINICIAN_ID,
                acknowledged_at=policy.at(now),  # type: ignore[arg-type]
                via="cli",
            ),
        )
        closed = policy.on_ack(state, ack, CANARY_DIRECTORY, now, ctx.cfg)
        decision.events += closed.events
        decision.outcomes += closed.outcomes
        decision.changed = decision.changed or closed.changed


def _attempt(internal: AttemptResult | DueTick) -> AttemptResult | None:
    return internal if isinstance(internal, AttemptResult) else None


def _client_result(
    record: Record,
    state: StateView[ClientAlerts],
    ctx: Context,
    key: str,
    decision: policy.Decision,
    outcome: str,
    *,
    correlation: object | None = None,
    attempt: AttemptResult | None = None,
) -> Handled:
    after = decision.state
    if decision.changed and after is not None:
        if after.is_empty():
            state.delete(key, record)
            after = None
        else:
            state.set(key, after, record)
    outputs = list(_alert_outputs(decision.events))
    for clinic, clinician, entry in decision.digest:
        item = InternalRecord(record=DigestItem(clinic_id=clinic, clinician_id=clinician, entry=entry))
        outputs.append(_internal(NOTIFIER_DIGEST, clinician_key(clinic, clinician), item, ctx.partitions))
    facts = Facts(
        "client",
        key,
        after,
        touched=decision.changed,
        outcomes=decision.outcomes,
        escalations=list(decision.escalations),
        attempt=attempt,
        exhausted=_exhausted(decision.events),
    )
    return Handled(
        outcome,
        outputs=tuple(outputs),
        rejections=_rejections(decision.dead),
        correlation_id=correlation,
        facts=(facts,),
    )


def handle_digest(record: Record, state: StateView[DigestState], now_dt: datetime, ctx: Context) -> Handled:
    """The digest side's handler."""
    now = now_dt.timestamp()
    try:
        internal = InternalRecord.model_validate_json(record.value).record
    except ValidationError as exc:
        return Handled("rejected", rejections=(Rejection("schema_violation", _summary(exc)),))
    if isinstance(internal, DigestItem):
        key = clinician_key(internal.clinic_id, internal.clinician_id)
        current = state.get(key) or digests.new_digest(
            internal.clinic_id, internal.clinician_id, record.partition
        )
        d = digests.on_item(current, internal, ctx.directory(internal.clinic_id), now, ctx.cfg)
    elif isinstance(internal, AttemptResult | DueTick):
        key = internal.key
        stored = state.get(key)
        if stored is None:
            return Handled("stale", facts=(Facts("digest", key, None, attempt=_attempt(internal)),))
        directory = ctx.directory(stored.clinic_id)
        if isinstance(internal, DueTick):
            d = digests.on_due(stored, directory, now, ctx.cfg)
        else:
            d = digests.on_attempt(stored, internal, directory, now, ctx.cfg)
    else:
        return Handled("rejected", rejections=(Rejection("schema_violation", "wrong internal record"),))
    if d.changed:
        state.set(key, d.state, record)
    facts = Facts(
        "digest",
        key,
        d.state,
        touched=d.changed,
        outcomes=[("", "", o) for o in d.outcomes],
        attempt=_attempt(internal) if not isinstance(internal, DigestItem) else None,
        exhausted=sorted({c for c in _exhausted(d.events)}),
    )
    return Handled(
        internal.kind,
        outputs=_alert_outputs(d.events),
        rejections=_rejections(d.dead),
        facts=(facts,),
    )


def _exhausted(events: list[AlertEvent]) -> list[str]:
    return [
        e.data.channel
        for e in events
        if e.data.state == "failed" and e.data.outcome == "exhausted" and e.data.channel is not None
    ]


def _summary(exc: ValidationError) -> str:
    return validation_error_summary(list(exc.errors(include_url=False, include_input=False)))
