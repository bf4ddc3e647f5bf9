"""The alert policy: pure decisions over one client's alert state.

A signal becomes an **alert** when it is worth a human's attention after policy:

* **dedup** — one alert per (clinic, client, rule, episode and session): the alert id is derived from
  that key and remembered, so a redelivered or replayed signal never makes a second alert;
* **throttle** — one non-critical alert per client and rule within the clinic's window;
* **inhibition** (as in Alertmanager) — while a critical alert of the client is open, lower-severity
  alerts are raised but held back, and go out once it is acknowledged or resolved;
* **critical is never batched, delayed, throttled or held by quiet hours**; it goes to every channel
  of the treating clinician at once and escalates when nobody acknowledges it in time: to the
  clinician's supervisor after the clinic's deadline (default 15 minutes), then to the clinic's
  on-call; an exhausted or refused delivery escalates at once;
* moderate and info alerts reach human channels (email, chat) at once, in the clinician's digest,
  or when quiet hours end (clinic or personal configuration); high alerts never wait for a digest;
  webhooks (the clinic's own systems) get every alert at once;
* a later signal can **resolve** an open alert (a repair closes an alliance drop; a reliable
  improvement closes a deterioration); critical alerts close only by acknowledgement.

Every state change is an :class:`~shared.contracts.alerts.AlertEvent` with a deterministic id.
Functions take the state, the input, the clinic's directory and the time, and return a
:class:`Decision`; nothing here performs I/O.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from shared.alerting.feedback import AttemptResult
from shared.alerting.retry import DEFAULT_SCHEDULE_S, next_delay
from shared.alerting.state import (
    AlertRecord,
    AlertSummary,
    ClientAlerts,
    DeliveryJob,
    DigestEntry,
)
from shared.contracts.alerts import (
    AlertAcknowledged,
    AlertEvent,
    AlertEventData,
    AlertState,
    ClinicDirectory,
    Delivery,
    Person,
    QuietHours,
    Role,
)
from shared.contracts.events import Signal, derive_id

SOURCE = "rapport/notifier"
DAY_S = 24 * 3600.0
HUMAN = frozenset({"email", "chat"})
STEPS: tuple[Role, ...] = ("clinician", "supervisor", "on_call")

#: A signal of the key kind closes open, non-critical alerts of the listed kinds (same episode and
#: instrument).
RESOLVES: dict[str, frozenset[str]] = {
    "alliance_repaired": frozenset({"alliance_drop", "alliance_below_cutoff", "alliance_decline"}),
    "outcome_reliable_improvement": frozenset({"outcome_reliable_deterioration", "outcome_not_on_track"}),
}


@dataclass(frozen=True)
class PolicyConfig:
    """Settings of the policy that are not per clinic."""

    retry_schedule_s: tuple[float, ...] = DEFAULT_SCHEDULE_S
    dedup_ttl_s: float = 35 * DAY_S
    """How long an alert id is remembered; longer than the signals topic's retention (30 days), so
    no replay of the topic can raise an alert twice."""
    open_alert_ttl_s: float = 30 * DAY_S
    """A non-critical alert nobody acknowledged is forgotten after this (the inbox keeps it)."""
    unroutable_retry_s: float = 60.0
    """How often an alert nobody could be found for is routed again (the directory may arrive)."""
    default_throttle_s: float = DAY_S
    """Throttle window when the clinic has no directory entry."""


@dataclass(frozen=True, slots=True)
class DeadLetterNote:
    """A delivery given up on: the service turns it into a dead-letter record."""

    reason: str
    detail: str
    alert_id: str
    summary: AlertSummary


@dataclass
class Decision:
    """What one input did to a client's alert state."""

    state: ClientAlerts | None
    """The new state; ``None`` when the key can be deleted."""
    changed: bool = False
    events: list[AlertEvent] = field(default_factory=list)
    digest: list[tuple[str, str, DigestEntry]] = field(default_factory=list)
    """(clinic, clinician, entry) for the digest side."""
    dead: list[DeadLetterNote] = field(default_factory=list)
    outcomes: list[tuple[str, str, str]] = field(default_factory=list)
    """(kind, severity, outcome) for metrics: raised, deduplicated, throttled, inhibited, held,
    resolved, acknowledged, escalated, escalation_exhausted, unroutable, ack_unknown…"""
    escalations: list[Role] = field(default_factory=list)


# --------------------------------------------------------------------------- time helpers


def ts(when: datetime) -> float:
    """Unix seconds of an aware datetime."""
    return when.timestamp()


def at(seconds: float | None) -> datetime | None:
    """An aware UTC datetime of Unix seconds."""
    return datetime.fromtimestamp(seconds, UTC) if seconds is not None else None


def quiet_until(quiet: QuietHours | None, zone: str, now: float) -> float | None:
    """When the quiet hours ``now`` falls in end (Unix seconds), or ``None`` when not in them."""
    if quiet is None:
        return None
    tz = ZoneInfo(zone)
    local = datetime.fromtimestamp(now, tz)
    start, end = quiet.bounds()
    t = local.time()
    if start == end:
        return None
    if start < end:
        inside = start <= t < end
        end_day = local.date()
    else:  # overnight, e.g. 22:00-07:00
        inside = t >= start or t < end
        end_day = local.date() + timedelta(days=1) if t >= start else local.date()
    if not inside:
        return None
    return datetime.combine(end_day, end, tz).timestamp()


def next_digest(mode: str, digest_time: str, zone: str, now: float) -> float:
    """The next digest time after ``now`` for an ``hourly`` or ``daily`` digest."""
    tz = ZoneInfo(zone)
    local = datetime.fromtimestamp(now, tz)
    if mode == "hourly":
        top = local.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        return top.timestamp()
    hh, mm = (int(x) for x in digest_time.split(":"))
    today = local.replace(hour=hh, minute=mm, second=0, microsecond=0)
    return (today if today.timestamp() > now else today + timedelta(days=1)).timestamp()


# --------------------------------------------------------------------------- routing


#: Placeholders for routing fields a signal lacks (a risk answer salvaged from an invalid session
#: event): the alert still exists, goes up the chain to the clinic's on-call, and shows what is unknown.
UNASSIGNED = "unassigned"


def client_of(signal: Signal) -> str:
    """The client an alert is about; a signal without a valid client gets a pseudonym of its own."""
    return signal.data.client_id or f"unidentified-{signal.id.hex[:12]}"


def alert_id_of(signal: Signal) -> str:
    """The alert id of a signal: derived from its dedup key (clinic, client, rule, episode+session);
    a signal whose session is unknown is its own key."""
    d = signal.data
    if d.client_id is None or d.session_number is None or d.episode_id is None:
        return str(derive_id("alert", signal.clinic_id, "signal", signal.id))
    return str(derive_id("alert", signal.clinic_id, d.client_id, d.rule_id, d.episode_id, d.session_number))


def job_id(alert_id: str, role: Role, endpoint_id: str) -> str:
    """The delivery id (the receiver's idempotency key): stable across retries of one delivery."""
    return str(derive_id("delivery", alert_id, role, endpoint_id))


def people_at(directory: ClinicDirectory | None, clinician_id: str, role: Role) -> list[Person]:
    """Whom a step of the escalation chain addresses."""
    if directory is None:
        return []
    if role == "clinician":
        person = directory.person(clinician_id)
        return [person] if person is not None else []
    if role == "supervisor":
        person = directory.person(clinician_id)
        boss = directory.person(person.supervisor) if person and person.supervisor else None
        return [boss] if boss is not None else []
    return [p for i in directory.escalation.on_call if (p := directory.person(i)) is not None]


def _digest_mode(directory: ClinicDirectory, person: Person) -> str:
    return person.digest or directory.digest


@dataclass
class _Routed:
    jobs: list[DeliveryJob]
    digest_people: list[Person]
    delivery: Delivery
    held_until: float | None


def _route(
    record: AlertRecord, role: Role, people: Iterable[Person], directory: ClinicDirectory, now: float
) -> _Routed:
    """Delivery jobs for one step's people under the severity's rules."""
    severity = record.summary.severity
    jobs: list[DeliveryJob] = []
    digest_people: list[Person] = []
    delivery: Delivery = "immediate"
    held: float | None = None
    for person in people:
        quiet = quiet_until(person.quiet_hours or directory.quiet_hours, directory.timezone, now)
        to_digest = (
            role == "clinician"
            and severity in ("moderate", "info")
            and _digest_mode(directory, person) != "immediate"
        )
        if to_digest and any(c.type in HUMAN for c in person.channels):
            digest_people.append(person)
            delivery = "digest"
        for channel in person.channels:
            due = now
            if channel.type in HUMAN and severity != "critical":
                if to_digest:
                    continue
                if quiet is not None:
                    due, held = quiet, quiet
                    delivery = "quiet_hours" if delivery == "immediate" else delivery
            jobs.append(
                DeliveryJob(
                    id=job_id(record.alert_id, role, channel.id),
                    recipient_id=person.id,
                    role=role,
                    channel=channel.type,
                    endpoint_id=channel.id,
                    next_at=due,
                )
            )
    return _Routed(jobs, digest_people, delivery, held)


# --------------------------------------------------------------------------- events


def alert_event(
    clinic_id: str,
    client_id: str,
    alert_id: str,
    s: AlertSummary,
    name: AlertState,
    now: float,
    *discriminator: object,
    **data: Any,
) -> AlertEvent:
    """An alert's state-change event; its id is derived from the alert, the state and
    ``discriminator`` (e.g. the delivery and attempt), so a replayed decision repeats the same id."""
    return AlertEvent(
        id=derive_id("alert-event", alert_id, name, *discriminator),
        type=f"rapport.alert.{name}",
        source=SOURCE,
        time=at(now),
        subject=client_id,
        clinic_id=clinic_id,
        correlation_id=uuid.UUID(s.correlation_id),
        data=AlertEventData(
            alert_id=uuid.UUID(alert_id),
            state=name,
            signal_id=uuid.UUID(s.signal_id),
            kind=s.kind,
            severity=s.severity,
            rule_id=s.rule_id,
            rule_version=s.rule_version,
            clinician_id=s.clinician_id,
            client_id=client_id,
            episode_id=s.episode_id,
            session_number=s.session_number,
            instrument=s.instrument,
            explanation=s.explanation,
            session_event_time=at(s.session_event_time),
            **data,
        ),
    )


def _event(
    state: ClientAlerts,
    record: AlertRecord,
    name: AlertState,
    now: float,
    *discriminator: object,
    **data: Any,
) -> AlertEvent:
    return alert_event(
        state.clinic_id, state.client_id, record.alert_id, record.summary, name, now, *discriminator, **data
    )


def _outcome(decision: Decision, record: AlertRecord, outcome: str) -> None:
    decision.outcomes.append((record.summary.kind, record.summary.severity, outcome))


# --------------------------------------------------------------------------- inputs


def new_state(clinic_id: str, client_id: str, partition: int) -> ClientAlerts:
    """The empty state of a client never seen."""
    return ClientAlerts(clinic_id=clinic_id, client_id=client_id, partition=partition)


def summary_of(signal: Signal, topic: str = "", partition: int = -1, offset: int = -1) -> AlertSummary:
    """What an alert keeps of its signal."""
    d = signal.data
    return AlertSummary(
        signal_id=str(signal.id),
        correlation_id=str(signal.correlation_id),
        kind=d.kind,
        severity=d.severity,
        rule_id=d.rule_id,
        rule_version=d.rule_version,
        clinician_id=d.clinician_id or UNASSIGNED,
        episode_id=d.episode_id,
        session_number=d.session_number,
        instrument=d.instrument,
        explanation=d.explanation,
        session_event_time=ts(d.session_event_time) if d.session_event_time is not None else None,
        signal_topic=topic,
        signal_partition=partition,
        signal_offset=offset,
    )


def on_signal(
    state: ClientAlerts,
    signal: Signal,
    directory: ClinicDirectory | None,
    now: float,
    cfg: PolicyConfig,
    *,
    origin: tuple[str, int, int] = ("", -1, -1),
) -> Decision:
    """Take one signal: raise an alert for it, or say why not."""
    decision = Decision(state, changed=prune(state, now, cfg))
    d = signal.data
    alert_id = alert_id_of(signal)
    record = AlertRecord(alert_id=alert_id, summary=summary_of(signal, *origin), raised_at=now)
    if alert_id in state.seen:
        _outcome(decision, record, "deduplicated")
        return decision
    decision.changed = True
    state.seen[alert_id] = now
    _resolve_by(state, signal, now, decision, directory, cfg)
    critical = d.severity == "critical"
    if not critical:
        window = directory.throttle_minutes * 60 if directory else cfg.default_throttle_s
        last = state.last_raised.get(d.rule_id)
        if last is not None and now - last < window:
            _outcome(decision, record, "throttled")
            return decision
        state.last_raised[d.rule_id] = now
    if not critical and state.open_critical_since() is not None:
        record.inhibited = True
        record.delivery = "inhibited"
        state.alerts[alert_id] = record
        decision.events.append(_event(state, record, "raised", now, delivery="inhibited"))
        decision.events.append(_event(state, record, "held", now, delivery="inhibited"))
        _outcome(decision, record, "inhibited")
        return decision
    state.alerts[alert_id] = record
    _start(state, record, directory, now, cfg, decision)
    return decision


def _start(
    state: ClientAlerts,
    record: AlertRecord,
    directory: ClinicDirectory | None,
    now: float,
    cfg: PolicyConfig,
    decision: Decision,
    *,
    released: bool = False,
) -> None:
    """Route a new (or released) alert to the treating clinician's step and emit its events."""
    critical = record.summary.severity == "critical"
    people = people_at(directory, record.summary.clinician_id, "clinician")
    if directory is None or not people:
        # Nobody to address at the first step: a critical alert goes straight up the chain.
        if critical and directory is not None and _escalate(state, record, directory, now, decision):
            if not released:
                decision.events.insert(0, _event(state, record, "raised", now, delivery="immediate"))
            _outcome(decision, record, "raised")
            return
        record.unroutable = True
        record.escalate_at = now + cfg.unroutable_retry_s if critical else None
        if not released:
            decision.events.append(_event(state, record, "raised", now, delivery="immediate"))
        _outcome(decision, record, "unroutable")
        return
    routed = _route(record, "clinician", people, directory, now)
    record.jobs += routed.jobs
    record.delivery = routed.delivery
    record.held_until = routed.held_until
    if critical and _next_step(record.summary.clinician_id, "clinician", directory) is not None:
        record.escalate_at = now + directory.escalation.ack_deadline_minutes * 60
    if not released:
        decision.events.append(
            _event(
                state,
                record,
                "raised",
                now,
                delivery=routed.delivery,
                escalate_at=at(record.escalate_at),
            )
        )
    if routed.delivery in ("digest", "quiet_hours"):
        release = routed.held_until
        if routed.delivery == "digest":
            person = routed.digest_people[0]
            release = next_digest(
                _digest_mode(directory, person), directory.digest_time, directory.timezone, now
            )
        decision.events.append(
            _event(
                state, record, "held", now, routed.delivery, delivery=routed.delivery, release_at=at(release)
            )
        )
        _outcome(decision, record, "held")
    for person in routed.digest_people:
        entry = DigestEntry(
            alert_id=record.alert_id, client_id=state.client_id, summary=record.summary, raised_at=now
        )
        decision.digest.append((state.clinic_id, person.id, entry))
    _outcome(decision, record, "raised")


def _next_step(clinician_id: str, role: Role, directory: ClinicDirectory) -> Role | None:
    """The next step after ``role`` that has somebody to address."""
    for step in STEPS[STEPS.index(role) + 1 :]:
        if people_at(directory, clinician_id, step):
            return step
    return None


def _escalate(
    state: ClientAlerts,
    record: AlertRecord,
    directory: ClinicDirectory | None,
    now: float,
    decision: Decision,
) -> bool:
    """Move an open critical alert one step up the chain; ``False`` when there is no step left."""
    if directory is None:
        return False
    clinician = record.summary.clinician_id
    step = _next_step(clinician, record.step, directory)
    if step is None:
        if record.escalate_at is not None or record.step != "on_call":
            _outcome(decision, record, "escalation_exhausted")
        record.escalate_at = None
        return False
    people = people_at(directory, clinician, step)
    record.step = step
    record.unroutable = False
    routed = _route(record, step, people, directory, now)
    known = {j.id for j in record.jobs}
    record.jobs += [j for j in routed.jobs if j.id not in known]
    further = _next_step(clinician, step, directory)
    record.escalate_at = (
        now + directory.escalation.supervisor_deadline_minutes * 60 if further is not None else None
    )
    for person in people:
        decision.events.append(
            _event(
                state,
                record,
                "escalated",
                now,
                step,
                person.id,
                escalation_step=step,
                recipient_id=person.id,
                escalate_at=at(record.escalate_at),
            )
        )
    decision.escalations.append(step)
    _outcome(decision, record, "escalated")
    return True


def _resolve_by(
    state: ClientAlerts,
    signal: Signal,
    now: float,
    decision: Decision,
    directory: ClinicDirectory | None,
    cfg: PolicyConfig,
) -> None:
    closes = RESOLVES.get(signal.data.kind)
    if not closes:
        return
    d = signal.data
    for record in list(state.alerts.values()):
        s = record.summary
        if (
            record.status == "open"
            and s.severity != "critical"
            and s.kind in closes
            and s.episode_id == d.episode_id
            and s.instrument == d.instrument
            and s.session_number is not None
            and d.session_number is not None
            and s.session_number < d.session_number
        ):
            _close(state, record, "resolved", now, decision, directory, cfg, resolved_by_signal=signal.id)


def _close(
    state: ClientAlerts,
    record: AlertRecord,
    how: AlertState,
    now: float,
    decision: Decision,
    directory: ClinicDirectory | None,
    cfg: PolicyConfig,
    **data: Any,
) -> None:
    """Close an alert (acknowledged or resolved): stop its retries and escalation, release any alert
    its inhibition held back."""
    record.status = "acknowledged" if how == "acknowledged" else "resolved"
    record.escalate_at = None
    for job in record.jobs:
        if job.status == "pending":
            job.status, job.next_at = "cancelled", None
    decision.events.append(_event(state, record, how, now, **data))
    _outcome(decision, record, how)
    del state.alerts[record.alert_id]
    if record.summary.severity == "critical" and state.open_critical_since() is None:
        for held in list(state.alerts.values()):
            if held.inhibited and held.status == "open":
                held.inhibited = False
                _start(state, held, directory, now, cfg, decision, released=True)


def on_ack(
    state: ClientAlerts,
    ack: AlertAcknowledged,
    directory: ClinicDirectory | None,
    now: float,
    cfg: PolicyConfig,
) -> Decision:
    """An acknowledgement: close the alert (stopping escalation and retries) if it is open."""
    decision = Decision(state)
    alert_id = str(ack.data.alert_id)
    record = state.alerts.get(alert_id)
    if record is None:
        decision.outcomes.append(("", "", "ack_unknown" if alert_id not in state.seen else "ack_closed"))
        return decision
    if directory is not None and directory.person(ack.data.acknowledged_by) is None:
        _outcome(decision, record, "ack_unknown_person")
        return decision
    decision.changed = True
    _close(
        state,
        record,
        "acknowledged",
        now,
        decision,
        directory,
        cfg,
        acknowledged_by=ack.data.acknowledged_by,
        acknowledged_at=ack.data.acknowledged_at,
    )
    return decision


def on_due(state: ClientAlerts, directory: ClinicDirectory | None, now: float, cfg: PolicyConfig) -> Decision:
    """A timer fell due: escalate unacknowledged critical alerts, route unroutable ones again, end
    holds. Delivery retries are due too, but the delivery side performs them."""
    decision = Decision(state, changed=prune(state, now, cfg))
    for record in list(state.alerts.values()):
        if record.status != "open":
            continue
        if record.held_until is not None and record.held_until <= now:
            record.held_until = None
            decision.changed = True
        if record.escalate_at is None or record.escalate_at > now:
            continue
        decision.changed = True
        if record.unroutable:
            record.unroutable = False
            record.escalate_at = None
            _start(state, record, directory, now, cfg, decision, released=True)
        elif record.summary.severity == "critical":
            _escalate(state, record, directory, now, decision)
        else:
            record.escalate_at = None
    return decision


def on_attempt(
    state: ClientAlerts,
    result: AttemptResult,
    directory: ClinicDirectory | None,
    now: float,
    cfg: PolicyConfig,
) -> Decision:
    """A delivery attempt finished: record it, schedule the retry, or give up (and escalate)."""
    decision = Decision(state)
    record = state.alerts.get(result.owner_id)
    job = next((j for j in record.jobs if j.id == result.job_id), None) if record else None
    if record is None or job is None or job.status != "pending" or result.attempt != job.attempts + 1:
        # A duplicate or stale result (a redelivered attempt, or one of a closed alert): nothing to do.
        decision.outcomes.append(("", "", "attempt_stale"))
        return decision
    decision.changed = True
    job.attempts = result.attempt
    job.last_outcome = result.code
    common = {"channel": job.channel, "endpoint_id": job.endpoint_id, "recipient_id": job.recipient_id}
    if result.result == "delivered":
        job.status, job.next_at = "delivered", None
        if record.first_delivered_at is None:
            record.first_delivered_at = result.at
        decision.events.append(
            _event(state, record, "delivered", now, job.id, job.attempts, attempt=job.attempts, **common)
        )
        return decision
    delay = None
    if result.result == "retry":
        delay = next_delay(cfg.retry_schedule_s, job.attempts, job.id, result.retry_after_s)
    if delay is not None:
        job.next_at = now + delay
        decision.events.append(
            _event(
                state,
                record,
                "failed",
                now,
                job.id,
                job.attempts,
                attempt=job.attempts,
                outcome=result.code,
                next_attempt_at=at(job.next_at),
                **common,
            )
        )
        return decision
    final = {"retry": "exhausted", "gone": "gone"}.get(result.result, result.code)
    job.status = (
        "exhausted" if result.result == "retry" else ("gone" if result.result == "gone" else "rejected")
    )
    job.next_at = None
    if result.result == "gone":
        for other in record.jobs:
            if other.endpoint_id == job.endpoint_id and other.status == "pending":
                other.status, other.next_at = "gone", None
    decision.events.append(
        _event(
            state, record, "failed", now, job.id, job.attempts, attempt=job.attempts, outcome=final, **common
        )
    )
    decision.dead.append(
        DeadLetterNote(
            "delivery_failed",
            f"{job.channel} delivery {final} after {job.attempts} attempt(s)",
            record.alert_id,
            record.summary,
        )
    )
    if record.summary.severity == "critical" and record.status == "open":
        _escalate(state, record, directory, now, decision)
    return decision


def prune(state: ClientAlerts, now: float, cfg: PolicyConfig) -> bool:
    """Forget old dedup and throttle memory and stale non-critical alerts; ``True`` if anything went."""
    before = (len(state.seen), len(state.last_raised), len(state.alerts))
    state.seen = {k: v for k, v in state.seen.items() if now - v < cfg.dedup_ttl_s}
    state.last_raised = {k: v for k, v in state.last_raised.items() if now - v < cfg.dedup_ttl_s}
    for alert_id, record in list(state.alerts.items()):
        stale = now - record.raised_at >= cfg.open_alert_ttl_s
        busy = any(j.status == "pending" for j in record.jobs) or record.escalate_at is not None
        if stale and record.summary.severity != "critical" and not busy:
            del state.alerts[alert_id]
    return before != (len(state.seen), len(state.last_raised), len(state.alerts))


def due_jobs(state: ClientAlerts, now: float) -> list[tuple[AlertRecord, DeliveryJob]]:
    """Delivery jobs whose attempt is due now (not of held-back alerts)."""
    out = []
    for record in state.alerts.values():
        if record.status != "open" or record.inhibited:
            continue
        for job in record.jobs:
            if job.status == "pending" and job.next_at is not None and job.next_at <= now:
                out.append((record, job))
    return out


def timers_due(state: ClientAlerts, now: float) -> bool:
    """True when an escalation, an unroutable retry or a hold falls due at ``now``."""
    for record in state.alerts.values():
        if record.status != "open":
            continue
        if record.escalate_at is not None and record.escalate_at <= now:
            return True
        if record.held_until is not None and record.held_until <= now:
            return True
    return False
