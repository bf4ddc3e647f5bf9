"""Alert contracts: the alert lifecycle, acknowledgements and the clinic directory.

* ``rapport.alerts.v1`` (key: alert id) — :class:`AlertEvent`, one per state change of an alert:
  raised, held (quiet hours or digest), delivered and failed (per channel and attempt), escalated,
  acknowledged, resolved.
* ``rapport.alert-acks.v1`` (key: the client subject, so an acknowledgement lands next to the
  client's alert state) — :class:`AlertAcknowledged`, sent by the inbox or a clinic integration.
* ``rapport.directory.v1`` (compacted; key: clinic id) — :class:`ClinicDirectory`: who works at a
  clinic, on which channels they are reached, who supervises whom, who is on call, the escalation
  deadlines and quiet hours. One record per clinic, so a clinic's escalation chain changes atomically.

No client data beyond pseudonyms and numbers; channel secrets are never on a topic — a webhook or
chat channel names a secret the notifier reads from its own environment.
"""

from __future__ import annotations

import re
import uuid
from datetime import time as dtime
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AwareDatetime, Field, field_validator, model_validator

from shared.contracts.events import Envelope, PseudonymousId, Severity, SignalKind, _Model

AlertState = Literal["raised", "held", "delivered", "failed", "escalated", "acknowledged", "resolved"]
"""Every state change of an alert is one event."""
ChannelType = Literal["webhook", "email", "chat"]
Role = Literal["clinician", "supervisor", "on_call"]
"""Who an alert step addresses: the treating clinician, their supervisor, the clinic's on-call."""
Delivery = Literal["immediate", "digest", "quiet_hours", "inhibited"]
"""How a raised alert goes out: now, in the clinician's next digest, when quiet hours end, or once
the client's open critical alert is acknowledged (inhibition)."""

SecretRef = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_]+$")]
"""Name of a secret in the notifier's environment (``RAPPORT_NOTIFIER_SECRET_<NAME>``)."""
EndpointId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")]

_EMAIL = re.compile(r"^[^@\s]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,63}$")
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


# --------------------------------------------------------------------------- alerts


class AlertEventData(_Model):
    """One state change of one alert."""

    alert_id: uuid.UUID
    """Deterministic id of the alert: derived from its dedup key (clinic, client, rule, session)."""
    state: AlertState
    signal_id: uuid.UUID
    """The signal that raised the alert."""
    kind: SignalKind
    severity: Severity
    rule_id: str
    rule_version: str
    clinician_id: PseudonymousId
    """The treating clinician (``unassigned`` when the signal's session event named none validly)."""
    client_id: PseudonymousId
    """The client (``unidentified-…`` when the signal's session event named none validly: a risk
    answer in an invalid session event still raises an alert, to the clinic's on-call)."""
    episode_id: PseudonymousId | None
    session_number: int | None = Field(ge=1)
    """Null only for an alert of a session event whose episode or session number was invalid."""
    instrument: str
    explanation: str = Field(max_length=300)
    """The signal's one-line explanation (numbers only)."""
    delivery: Delivery | None = None
    """For ``raised`` and ``held``: how the alert goes out."""
    release_at: AwareDatetime | None = None
    """For ``held``: when it goes out (end of quiet hours, or the digest time); null when inhibited."""
    escalation_step: Role | None = None
    """For ``escalated`` (and deliveries): whom this step addresses."""
    escalate_at: AwareDatetime | None = None
    """For ``raised`` and ``escalated`` of a critical alert: when it escalates unless acknowledged."""
    recipient_id: PseudonymousId | None = None
    """For ``delivered``/``failed``/``escalated``: the clinician (or supervisor, on-call) addressed."""
    channel: ChannelType | None = None
    endpoint_id: EndpointId | None = None
    attempt: int | None = Field(default=None, ge=1)
    outcome: str | None = Field(default=None, max_length=64)
    """For ``failed``: a bounded reason (``http_503``, ``timeout``, ``gone``, ``exhausted``…)."""
    next_attempt_at: AwareDatetime | None = None
    """For a ``failed`` attempt that will be retried."""
    acknowledged_by: PseudonymousId | None = None
    acknowledged_at: AwareDatetime | None = None
    resolved_by_signal: uuid.UUID | None = None
    """For ``resolved``: the signal that closed the alert (e.g. a repair after a drop)."""
    session_event_time: AwareDatetime | None = None
    """When the session event that led to the alert was produced (for session→alert latency)."""


class AlertEvent(Envelope):
    """Topic ``rapport.alerts.v1`` (key: alert id)."""

    type: Literal[
        "rapport.alert.raised",
        "rapport.alert.held",
        "rapport.alert.delivered",
        "rapport.alert.failed",
        "rapport.alert.escalated",
        "rapport.alert.acknowledged",
        "rapport.alert.resolved",
    ]
    data: AlertEventData

    @model_validator(mode="after")
    def _type_names_state(self) -> AlertEvent:
        if self.type != f"rapport.alert.{self.data.state}":
            raise ValueError("type must be rapport.alert.<state>")
        return self


class AlertAcknowledgedData(_Model):
    """A clinician said "seen" to an alert."""

    alert_id: uuid.UUID
    acknowledged_by: PseudonymousId
    """The clinician, supervisor or on-call who acknowledged."""
    acknowledged_at: AwareDatetime
    via: Literal["inbox", "webhook", "cli"] = "inbox"


class AlertAcknowledged(Envelope):
    """Topic ``rapport.alert-acks.v1`` (key: the client subject, like signals). No free text: a
    note written with an acknowledgement stays in the inbox's own store."""

    type: Literal["rapport.alert.acknowledgement"] = "rapport.alert.acknowledgement"
    data: AlertAcknowledgedData


# --------------------------------------------------------------------------- directory


class WebhookChannel(_Model):
    """A signed webhook (Standard Webhooks v1), e.g. into the clinic's EHR."""

    type: Literal["webhook"] = "webhook"
    id: EndpointId
    """Endpoint id: retries, rate limits and a 410-disable apply per endpoint."""
    url: str = Field(min_length=8, max_length=2048, pattern=r"^https?://")
    secrets: list[SecretRef] = Field(min_length=1, max_length=4)
    """Signing secrets by name (``whsec_…`` values in the notifier's environment); several during a
    rotation — every one signs, receivers accept any."""
    full_payload: bool = True
    """Whether the body carries the alert (pseudonyms and numbers) or only the inbox link."""


class EmailChannel(_Model):
    """An email carrying no client data: that an alert of some severity waits, and the inbox link."""

    type: Literal["email"] = "email"
    id: EndpointId
    to: str = Field(max_length=320)

    @field_validator("to")
    @classmethod
    def _is_address(cls, value: str) -> str:
        if not _EMAIL.match(value):
            raise ValueError("not an email address")
        return value


class ChatChannel(_Model):
    """A chat incoming webhook (Slack-compatible JSON), no client data; the URL is a secret."""

    type: Literal["chat"] = "chat"
    id: EndpointId
    url_secret: SecretRef


Channel = Annotated[WebhookChannel | EmailChannel | ChatChannel, Field(discriminator="type")]


class QuietHours(_Model):
    """Hours in which non-critical alerts wait (critical ones never do), in the clinic's zone."""

    start: str = Field(pattern=_HHMM.pattern)
    """``HH:MM``, local time."""
    end: str = Field(pattern=_HHMM.pattern)
    """``HH:MM``, local time; may be earlier than ``start`` (overnight)."""

    def bounds(self) -> tuple[dtime, dtime]:
        """Start and end as times of day."""
        return dtime.fromisoformat(self.start), dtime.fromisoformat(self.end)


def _clinician_role() -> list[Role]:
    return ["clinician"]


class Person(_Model):
    """A clinician, supervisor or on-call member of a clinic."""

    id: PseudonymousId
    roles: list[Role] = Field(default_factory=_clinician_role, min_length=1)
    supervisor: PseudonymousId | None = None
    """Who a critical alert of this clinician's clients escalates to first."""
    channels: list[Channel] = Field(default_factory=list, max_length=10)
    quiet_hours: QuietHours | None = None
    """Overrides the clinic's quiet hours."""
    digest: Literal["immediate", "hourly", "daily"] | None = None
    """How moderate and info alerts reach this person; overrides the clinic's default."""


class EscalationPolicy(_Model):
    """When an unacknowledged critical alert moves up the chain."""

    ack_deadline_minutes: float = Field(default=15.0, gt=0, le=24 * 60)
    """Treating clinician → supervisor."""
    supervisor_deadline_minutes: float = Field(default=15.0, gt=0, le=24 * 60)
    """Supervisor → on-call."""
    on_call: list[PseudonymousId] = Field(default_factory=list, max_length=20)
    """Reached last (and at once when nobody else can be)."""


class ClinicDirectory(_Model):
    """Topic ``rapport.directory.v1`` (compacted; key: clinic id): one clinic's people and policy."""

    type: Literal["rapport.directory.clinic"] = "rapport.directory.clinic"
    clinic_id: PseudonymousId
    version: int = Field(default=1, ge=1)
    """Increase on every change; the notifier ignores an older version it receives late."""
    timezone: str = "UTC"
    """IANA zone of quiet hours and daily digests."""
    people: list[Person] = Field(min_length=1, max_length=5000)
    escalation: EscalationPolicy = Field(default_factory=EscalationPolicy)
    quiet_hours: QuietHours | None = None
    digest: Literal["immediate", "hourly", "daily"] = "immediate"
    """Default for moderate and info alerts; critical and high never wait for a digest."""
    digest_time: str = Field(default="08:00", pattern=_HHMM.pattern)
    """Local time of the daily digest."""
    throttle_minutes: float = Field(default=24 * 60, ge=0, le=90 * 24 * 60)
    """One non-critical alert per client and rule within this window."""

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("unknown IANA time zone") from None
        return value

    @model_validator(mode="after")
    def _references_resolve(self) -> ClinicDirectory:
        ids = [p.id for p in self.people]
        if len(ids) != len(set(ids)):
            raise ValueError("a person is listed twice")
        known = set(ids)
        for p in self.people:
            if p.supervisor is not None and p.supervisor not in known:
                raise ValueError("a supervisor is not listed among the clinic's people")
            if p.supervisor == p.id:
                raise ValueError("a person cannot supervise themselves")
        if any(o not in known for o in self.escalation.on_call):
            raise ValueError("an on-call id is not listed among the clinic's people")
        endpoints = [c.id for p in self.people for c in p.channels]
        if len(endpoints) != len(set(endpoints)):
            raise ValueError("a channel id is used twice")
        return self

    def person(self, person_id: str) -> Person | None:
        """The person with ``person_id``, if listed."""
        for p in self.people:
            if p.id == person_id:
                return p
        return None
