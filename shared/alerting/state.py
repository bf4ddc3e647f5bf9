"""The notifier's durable state, as plain data: one :class:`ClientAlerts` per (clinic, client) and one
:class:`DigestState` per (clinic, clinician). Both live in changelog-backed tables, so every timer
(a retry, an escalation deadline, the end of quiet hours, a digest) survives a restart.

Times are Unix seconds (UTC) floats: the state is compared and serialised a lot, never displayed.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.contracts.alerts import ChannelType, Delivery, Role
from shared.contracts.events import Severity, SignalKind

STATE_FORMAT = 1

JobStatus = Literal["pending", "delivered", "rejected", "gone", "exhausted", "cancelled"]
AlertStatus = Literal["open", "acknowledged", "resolved"]


class _State(BaseModel):
    model_config = ConfigDict(extra="ignore", validate_assignment=False)


class DeliveryJob(_State):
    """One message to one endpoint, retried until it is delivered or given up.

    ``id`` is the idempotency key the receiver sees (``webhook-id``): stable across retries.
    """

    id: str
    recipient_id: str
    role: Role
    channel: ChannelType
    endpoint_id: str
    attempts: int = 0
    """Attempts made so far."""
    next_at: float | None = None
    """When the next attempt is due; ``None`` once the job is final."""
    status: JobStatus = "pending"
    last_outcome: str | None = None


class AlertSummary(_State):
    """What the alert is about, copied from the signal that raised it (pseudonyms and numbers only)."""

    signal_id: str
    correlation_id: str
    kind: SignalKind
    severity: Severity
    rule_id: str
    rule_version: str
    clinician_id: str
    episode_id: str | None
    session_number: int | None
    instrument: str
    explanation: str
    session_event_time: float | None = None
    signal_topic: str = ""
    signal_partition: int = -1
    signal_offset: int = -1


class AlertRecord(_State):
    """One open (or just closed) alert of a client."""

    alert_id: str
    summary: AlertSummary
    raised_at: float
    status: AlertStatus = "open"
    delivery: Delivery = "immediate"
    held_until: float | None = None
    """Human channels wait until then (quiet hours); ``None`` when not held by time."""
    inhibited: bool = False
    """Held back while a critical alert of the same client is open."""
    step: Role = "clinician"
    escalate_at: float | None = None
    jobs: list[DeliveryJob] = Field(default_factory=list)
    first_delivered_at: float | None = None
    unroutable: bool = False
    """Nobody in the directory could be addressed; retried when due (``escalate_at``)."""


class ClientAlerts(_State):
    """Everything the notifier remembers about one client."""

    v: int = STATE_FORMAT
    clinic_id: str
    client_id: str
    partition: int
    """The input partition this state lives in (its changelog partition, and where its timers go)."""
    alerts: dict[str, AlertRecord] = Field(default_factory=dict)
    """Open alerts, by alert id."""
    seen: dict[str, float] = Field(default_factory=dict)
    """Every alert id ever raised (until ``dedup_ttl``), with when: replays never make a second alert."""
    last_raised: dict[str, float] = Field(default_factory=dict)
    """Throttle memory: when the last non-critical alert of each rule was raised."""

    def due_times(self) -> list[float]:
        """Every time something of this client falls due (retries, holds, escalations)."""
        out: list[float] = []
        for alert in self.alerts.values():
            if alert.status != "open":
                continue
            if alert.escalate_at is not None:
                out.append(alert.escalate_at)
            if alert.held_until is not None and not alert.inhibited:
                out.append(alert.held_until)
            out += [j.next_at for j in alert.jobs if j.status == "pending" and j.next_at is not None]
        return out

    def next_due(self) -> float | None:
        """The earliest due time, if any."""
        times = self.due_times()
        return min(times) if times else None

    def open_critical_since(self) -> float | None:
        """When the oldest open, unacknowledged critical alert was raised."""
        times = [
            a.raised_at
            for a in self.alerts.values()
            if a.status == "open" and a.summary.severity == "critical"
        ]
        return min(times) if times else None

    def is_empty(self) -> bool:
        """True when nothing needs remembering any more."""
        return not self.alerts and not self.seen and not self.last_raised


class DigestEntry(_State):
    """One alert waiting in a clinician's digest."""

    alert_id: str
    client_id: str
    summary: AlertSummary
    raised_at: float

    @property
    def severity(self) -> Severity:
        """The alert's severity."""
        return self.summary.severity


class DigestState(_State):
    """A clinician's pending digest and the delivery of the current one."""

    v: int = STATE_FORMAT
    clinic_id: str
    clinician_id: str
    partition: int
    due_at: float | None = None
    pending: list[DigestEntry] = Field(default_factory=list)
    sending: list[DigestEntry] = Field(default_factory=list)
    """The digest being delivered (its jobs below)."""
    sending_id: str | None = None
    jobs: list[DeliveryJob] = Field(default_factory=list)
    seen: dict[str, float] = Field(default_factory=dict)
    """Alert ids already taken into a digest: a replayed item is not listed twice."""

    def next_due(self) -> float | None:
        """The earliest due time: the digest time, or a retry of the current digest's delivery."""
        times = [j.next_at for j in self.jobs if j.status == "pending" and j.next_at is not None]
        if self.due_at is not None and self.pending:
            times.append(self.due_at)
        return min(times) if times else None
