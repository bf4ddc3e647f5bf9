"""The per-clinician digest: moderate and info alerts collected and sent as one message.

The client side (``shared.alerting.policy``) sends each digest alert here as a
:class:`~shared.alerting.feedback.DigestItem`; at the clinician's digest time (hourly, or daily at the
clinic's digest time) one message per human channel says how many alerts of each severity wait, with
the inbox link, and each alert in it is marked ``delivered`` on that channel. Retries follow the same
schedule as any delivery. Pure, like the policy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.alerting.feedback import AttemptResult, DigestItem
from shared.alerting.policy import HUMAN, DeadLetterNote, PolicyConfig, alert_event, at, next_digest
from shared.alerting.retry import next_delay
from shared.alerting.state import DeliveryJob, DigestEntry, DigestState
from shared.contracts.alerts import AlertEvent, ClinicDirectory
from shared.contracts.events import derive_id


@dataclass
class DigestDecision:
    """What one input did to a clinician's digest state."""

    state: DigestState
    changed: bool = False
    events: list[AlertEvent] = field(default_factory=list)
    dead: list[DeadLetterNote] = field(default_factory=list)
    outcomes: list[str] = field(default_factory=list)


def new_digest(clinic_id: str, clinician_id: str, partition: int) -> DigestState:
    """The empty digest of a clinician."""
    return DigestState(clinic_id=clinic_id, clinician_id=clinician_id, partition=partition)


def _mode(directory: ClinicDirectory | None, clinician_id: str) -> str:
    if directory is None:
        return "daily"
    person = directory.person(clinician_id)
    return (person.digest if person and person.digest else None) or directory.digest


def _schedule(state: DigestState, directory: ClinicDirectory | None, now: float) -> None:
    if state.due_at is not None or not state.pending:
        return
    mode = _mode(directory, state.clinician_id)
    if mode == "immediate":  # the clinic switched digests off since: send what waits now
        state.due_at = now
        return
    zone = directory.timezone if directory else "UTC"
    time_of_day = directory.digest_time if directory else "08:00"
    state.due_at = next_digest(mode, time_of_day, zone, now)


def on_item(
    state: DigestState, item: DigestItem, directory: ClinicDirectory | None, now: float, cfg: PolicyConfig
) -> DigestDecision:
    """An alert for the digest (a replayed one is listed once)."""
    decision = DigestDecision(state)
    _prune(state, now, cfg)
    if item.entry.alert_id in state.seen:
        decision.outcomes.append("deduplicated")
        return decision
    decision.changed = True
    state.seen[item.entry.alert_id] = now
    state.pending.append(item.entry)
    _schedule(state, directory, now)
    decision.outcomes.append("collected")
    return decision


def on_due(
    state: DigestState, directory: ClinicDirectory | None, now: float, cfg: PolicyConfig
) -> DigestDecision:
    """The digest time came: start delivering one message per human channel of the clinician."""
    decision = DigestDecision(state, changed=_prune(state, now, cfg))
    if state.sending or not state.pending or state.due_at is None or state.due_at > now:
        return decision
    decision.changed = True
    person = directory.person(state.clinician_id) if directory else None
    channels = [c for c in person.channels if c.type in HUMAN] if person else []
    batch, state.pending, state.due_at = state.pending, [], None
    if not channels:
        # Nobody to write to any more: the alerts wait in the inbox, where they always are.
        decision.outcomes.append("no_channel")
        return decision
    state.sending = batch
    state.sending_id = str(derive_id("digest", state.clinic_id, state.clinician_id, batch[0].alert_id, now))
    state.jobs = [
        DeliveryJob(
            id=str(derive_id("digest-delivery", state.sending_id, c.id)),
            recipient_id=state.clinician_id,
            role="clinician",
            channel=c.type,
            endpoint_id=c.id,
            next_at=now,
        )
        for c in channels
    ]
    decision.outcomes.append("sending")
    return decision


def _entry_event(
    state: DigestState, entry: DigestEntry, name: str, now: float, job: DeliveryJob, **data: object
) -> AlertEvent:
    return alert_event(
        state.clinic_id,
        entry.client_id,
        entry.alert_id,
        entry.summary,
        name,  # type: ignore[arg-type]
        now,
        job.id,
        job.attempts,
        channel=job.channel,
        endpoint_id=job.endpoint_id,
        recipient_id=job.recipient_id,
        attempt=job.attempts,
        **data,
    )


def on_attempt(
    state: DigestState,
    result: AttemptResult,
    directory: ClinicDirectory | None,
    now: float,
    cfg: PolicyConfig,
) -> DigestDecision:
    """A digest delivery attempt finished."""
    decision = DigestDecision(state)
    job = next((j for j in state.jobs if j.id == result.job_id), None)
    if (
        job is None
        or result.owner_id != state.sending_id
        or job.status != "pending"
        or result.attempt != job.attempts + 1
    ):
        decision.outcomes.append("attempt_stale")
        return decision
    decision.changed = True
    job.attempts = result.attempt
    job.last_outcome = result.code
    if result.result == "delivered":
        job.status, job.next_at = "delivered", None
        decision.events += [_entry_event(state, e, "delivered", now, job) for e in state.sending]
    else:
        delay = (
            next_delay(cfg.retry_schedule_s, job.attempts, job.id, result.retry_after_s)
            if result.result == "retry"
            else None
        )
        if delay is not None:
            job.next_at = now + delay
            decision.events += [
                _entry_event(
                    state, e, "failed", now, job, outcome=result.code, next_attempt_at=at(job.next_at)
                )
                for e in state.sending
            ]
        else:
            final = (
                "exhausted"
                if result.result == "retry"
                else ("gone" if result.result == "gone" else result.code)
            )
            job.status = (
                "exhausted"
                if result.result == "retry"
                else ("gone" if result.result == "gone" else "rejected")
            )
            job.next_at = None
            decision.events += [
                _entry_event(state, e, "failed", now, job, outcome=final) for e in state.sending
            ]
            for e in state.sending:
                decision.dead.append(
                    DeadLetterNote(
                        "delivery_failed", f"{job.channel} digest delivery {final}", e.alert_id, e.summary
                    )
                )
    if all(j.status != "pending" for j in state.jobs):
        state.sending, state.jobs, state.sending_id = [], [], None
        _schedule(state, directory, now)
    return decision


def _prune(state: DigestState, now: float, cfg: PolicyConfig) -> bool:
    before = len(state.seen)
    state.seen = {k: v for k, v in state.seen.items() if now - v < cfg.dedup_ttl_s}
    return len(state.seen) != before


def due_jobs(state: DigestState, now: float) -> list[DeliveryJob]:
    """Digest deliveries whose attempt is due."""
    return [j for j in state.jobs if j.status == "pending" and j.next_at is not None and j.next_at <= now]
