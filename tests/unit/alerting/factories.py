"""Signals, acknowledgements and directories for the alert-policy tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.contracts.alerts import AlertAcknowledged, AlertAcknowledgedData, ClinicDirectory
from shared.contracts.events import Evidence, Signal, SignalData, derive_id

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # a Monday, 10:00 UTC
NOW = T0.timestamp()

RULE_OF = {
    "critical_item": "critical_item.endorsed",
    "alliance_drop": "alliance.drop_vs_baseline",
    "alliance_below_cutoff": "alliance.below_cutoff",
    "alliance_repaired": "alliance.repair_v",
    "outcome_reliable_deterioration": "outcome.rci_deterioration",
    "outcome_reliable_improvement": "outcome.rci_improvement",
    "dropout_risk": "combined.dropout_risk",
}
SEVERITY_OF = {
    "critical_item": "critical",
    "alliance_drop": "moderate",
    "alliance_below_cutoff": "moderate",
    "alliance_repaired": "info",
    "outcome_reliable_deterioration": "high",
    "outcome_reliable_improvement": "info",
    "dropout_risk": "moderate",
}


def signal(
    kind: str = "critical_item",
    *,
    client: str = "c-1",
    clinic: str = "k1",
    clinician: str = "t1",
    session: int = 3,
    episode: str = "e1",
    instrument: str | None = None,
    severity: str | None = None,
    event_time: datetime | None = None,
) -> Signal:
    """A signal as the monitor publishes it."""
    instrument = instrument or ("SRS" if kind.startswith("alliance") else "PHQ-9")
    rule = RULE_OF[kind]
    return Signal(
        id=derive_id("sig", clinic, client, episode, instrument, session, kind),
        source="rapport/monitor",
        time=T0,
        subject=client,
        clinic_id=clinic,
        correlation_id=derive_id("session", clinic, client, episode, session),
        data=SignalData(
            clinician_id=clinician,
            client_id=client,
            episode_id=episode,
            session_number=session,
            session_time=T0 - timedelta(hours=1),
            session_event_time=event_time,
            instrument=instrument,
            kind=kind,  # type: ignore[arg-type]
            severity=severity or SEVERITY_OF[kind],  # type: ignore[arg-type]
            rule_id=rule,
            rule_version="1",
            ruleset_version="test",
            evidence=Evidence(),
            explanation=f"{instrument} {kind} at session {session}.",
        ),
    )


def ack(alert_id: str, by: str = "t1", client: str = "c-1", clinic: str = "k1") -> AlertAcknowledged:
    """An acknowledgement from the inbox."""
    return AlertAcknowledged(
        id=uuid.uuid4(),
        source="rapport/inbox",
        time=T0,
        subject=client,
        clinic_id=clinic,
        correlation_id=uuid.uuid4(),
        data=AlertAcknowledgedData(alert_id=uuid.UUID(alert_id), acknowledged_by=by, acknowledged_at=T0),
    )


def directory(**overrides: Any) -> ClinicDirectory:
    """Clinic k1: clinician t1 (webhook, email, chat) supervised by s1 (email); on-call o1 (chat)."""
    doc: dict[str, Any] = {
        "clinic_id": "k1",
        "timezone": "Europe/London",
        "people": [
            {
                "id": "t1",
                "supervisor": "s1",
                "channels": [
                    {"type": "webhook", "id": "ehr-1", "url": "https://ehr.example/hook", "secrets": ["EHR"]},
                    {"type": "email", "id": "t1-mail", "to": "t1@clinic.example"},
                    {"type": "chat", "id": "t1-chat", "url_secret": "CHAT"},
                ],
            },
            {
                "id": "s1",
                "roles": ["clinician", "supervisor"],
                "channels": [{"type": "email", "id": "s1-mail", "to": "s1@clinic.example"}],
            },
            {
                "id": "o1",
                "roles": ["on_call"],
                "channels": [{"type": "chat", "id": "o1-chat", "url_secret": "OC"}],
            },
        ],
        "escalation": {"ack_deadline_minutes": 15, "supervisor_deadline_minutes": 10, "on_call": ["o1"]},
    }
    doc.update(overrides)
    return ClinicDirectory.model_validate(doc)
