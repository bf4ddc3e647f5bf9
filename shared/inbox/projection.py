"""The inbox's view of one alert, folded from its lifecycle events (pure).

The fold depends on the *set* of events only, never on their arrival order: events are sorted by
time, then by lifecycle rank, then by id. So a redelivery, a replay or an interleaving of partitions
yields the same view, which is what makes replaying the topics give identical tables.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from shared.contracts.alerts import AlertEvent, AlertState

#: Lifecycle order of states, used to break ties between events with the same time.
STATE_RANK: dict[AlertState, int] = {
    "raised": 0,
    "held": 1,
    "delivered": 2,
    "failed": 3,
    "escalated": 4,
    "acknowledged": 5,
    "resolved": 6,
}

#: Order of severities on the inbox's pages (most urgent first).
SEVERITY_RANK: dict[str, int] = {"critical": 0, "high": 1, "moderate": 2, "info": 3}

AlertStatus = str
"""``open``, ``acknowledged`` or ``resolved``."""


@dataclass(frozen=True)
class AlertSummary:
    """One alert as the inbox stores and shows it."""

    alert_id: str
    clinic_id: str
    client_id: str
    clinician_id: str
    episode_id: str | None
    session_number: int | None
    """Null for an alert of a session event whose episode or session number was invalid."""
    instrument: str
    kind: str
    severity: str
    rule_id: str
    rule_version: str
    signal_id: str
    explanation: str
    correlation_id: str
    raised_at: str
    """ISO-8601 UTC time of the ``raised`` event (of the earliest event when none was seen)."""
    updated_at: str
    status: AlertStatus
    escalated: bool
    escalation_step: str | None
    escalated_at: str | None
    acknowledged_by: str | None
    acknowledged_at: str | None
    resolved_at: str | None


def iso(moment: datetime) -> str:
    """``moment`` as fixed-width ISO-8601 UTC text: sorts like the times it stands for."""
    from datetime import UTC

    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text: str) -> datetime:
    """The time :func:`iso` wrote as ``text`` (timezone-aware, UTC)."""
    from datetime import UTC

    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def event_order(event: AlertEvent) -> tuple[str, int, str]:
    """Sort key of an alert's events: time, lifecycle rank, id."""
    return iso(event.time), STATE_RANK[event.data.state], str(event.id)


def fold_alert(events: Iterable[AlertEvent]) -> AlertSummary:
    """The view of one alert from all the lifecycle events seen for it (at least one).

    Status: ``resolved`` once any ``resolved`` event is seen, else ``acknowledged`` once any
    ``acknowledged`` event is, else ``open``. The alert's facts come from its ``raised`` event
    (from its earliest event when the raise has not been seen).
    """
    ordered = sorted(events, key=event_order)
    if not ordered:
        raise ValueError("an alert needs at least one event")
    alert_ids = {e.data.alert_id for e in ordered}
    if len(alert_ids) != 1:
        raise ValueError("events of different alerts")
    raised = next((e for e in ordered if e.data.state == "raised"), ordered[0])
    acked = next((e for e in ordered if e.data.state == "acknowledged"), None)
    resolved = next((e for e in ordered if e.data.state == "resolved"), None)
    escalations = [e for e in ordered if e.data.state == "escalated"]
    last_escalation = escalations[-1] if escalations else None
    status = "resolved" if resolved else "acknowledged" if acked else "open"
    d = raised.data
    acked_at = None
    if acked is not None:
        acked_at = iso(acked.data.acknowledged_at or acked.time)
    return AlertSummary(
        alert_id=str(d.alert_id),
        clinic_id=raised.clinic_id,
        client_id=d.client_id,
        clinician_id=d.clinician_id,
        episode_id=d.episode_id,
        session_number=d.session_number,
        instrument=d.instrument,
        kind=d.kind,
        severity=d.severity,
        rule_id=d.rule_id,
        rule_version=d.rule_version,
        signal_id=str(d.signal_id),
        explanation=d.explanation,
        correlation_id=str(raised.correlation_id),
        raised_at=iso(raised.time),
        updated_at=iso(ordered[-1].time),
        status=status,
        escalated=last_escalation is not None,
        escalation_step=last_escalation.data.escalation_step if last_escalation else None,
        escalated_at=iso(last_escalation.time) if last_escalation else None,
        acknowledged_by=acked.data.acknowledged_by if acked else None,
        acknowledged_at=acked_at,
        resolved_at=iso(resolved.time) if resolved else None,
    )
