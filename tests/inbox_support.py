"""Factories for the inbox's tests: real scored surveys and signals (made by the scoring and monitor
handlers), alert lifecycle events shaped as the notifier publishes them, clinic directories."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from shared.contracts.alerts import (
    AlertEvent,
    AlertEventData,
    AlertState,
    ClinicDirectory,
    EscalationPolicy,
    Person,
)
from shared.contracts.events import Signal, SurveyScored, derive_id
from tests.support import T0, scored_events, session_event, srs


def phq9(total: int, item9: int = 0) -> dict[str, int]:
    """PHQ-9 answers summing to ``total`` with item 9 answered ``item9``."""
    rest = total - item9
    assert 0 <= rest <= 24, "items 1–8 hold 0–24"
    answers = {}
    for item in range(1, 9):
        take = min(3, rest)
        answers[str(item)] = take
        rest -= take
    answers["9"] = item9
    return answers


def episode(
    *,
    clinic: str = "clinic-01",
    client: str = "c-001",
    clinician: str = "clin-01",
    phq9_totals: Sequence[int] = (12, 13, 15, 19),
    srs_totals: Sequence[float] = (38, 37, 35, 30),
    critical_at: int | None = 4,
) -> tuple[list[SurveyScored], list[Signal]]:
    """A client's episode scored by the real scoring handler and tracked by the real monitor rules:
    (scored surveys, signals). ``critical_at`` is the session whose PHQ-9 item 9 is endorsed."""
    from services.monitor.handlers import track
    from shared.rules.config import default_rulebook
    from shared.rules.trajectory import ClientState

    rules = default_rulebook()
    scored: list[SurveyScored] = []
    signals: list[Signal] = []
    state: ClientState | None = None
    for n, (p, s) in enumerate(zip(phq9_totals, srs_totals, strict=True), start=1):
        answers = phq9(p, item9=2 if n == critical_at else 0)
        event = session_event(
            client=client,
            clinic=clinic,
            clinician=clinician,
            session_number=n,
            surveys=(("PHQ-9", answers), ("SRS", srs(s))),
        )
        for survey in scored_events(event):
            scored.append(survey)
            outcome = track(survey, state, rules, survey.time)
            if outcome.state is not None:
                state = outcome.state
            signals.extend(outcome.signals)
    return scored, signals


def alert_id_for(signal: Signal) -> uuid.UUID:
    """The alert id the tests use: deterministic from the dedup key (clinic, client, rule, session)."""
    d = signal.data
    return derive_id("alert", signal.clinic_id, d.client_id, d.rule_id, d.session_number)


def alert_event(
    signal: Signal,
    state: AlertState = "raised",
    *,
    at: datetime | None = None,
    alert_id: uuid.UUID | None = None,
    clinician: str | None = None,
    **data: Any,
) -> AlertEvent:
    """One lifecycle event of the alert raised for ``signal``."""
    d = signal.data
    aid = alert_id or alert_id_for(signal)
    when = at or (signal.time + timedelta(seconds=1))
    return AlertEvent(
        id=derive_id("alert-event", aid, state, when.isoformat(), *sorted(data.items())),
        type=f"rapport.alert.{state}",
        source="tests/notifier-shape",
        time=when,
        subject=d.client_id,
        clinic_id=signal.clinic_id,
        correlation_id=signal.correlation_id,
        data=AlertEventData(
            alert_id=aid,
            state=state,
            signal_id=signal.id,
            kind=d.kind,
            severity=d.severity,
            rule_id=d.rule_id,
            rule_version=d.rule_version,
            clinician_id=clinician or d.clinician_id,
            client_id=d.client_id,
            episode_id=d.episode_id,
            session_number=d.session_number,
            instrument=d.instrument,
            explanation=d.explanation,
            **data,
        ),
    )


def synthetic_alert(
    *,
    clinic: str,
    clinician: str,
    client: str = "c-x",
    severity: str = "moderate",
    kind: str = "alliance_drop",
    session: int = 2,
    states: Sequence[AlertState] = ("raised",),
    n: int = 0,
) -> list[AlertEvent]:
    """The events of an alert not tied to a real signal (tenancy tests need many cheap ones)."""
    aid = derive_id("synthetic-alert", clinic, clinician, client, n)
    events = []
    for i, state in enumerate(states):
        when = T0 + timedelta(minutes=n, seconds=i)
        extra: dict[str, Any] = {}
        if state == "escalated":
            extra["escalation_step"] = "on_call"
        if state == "acknowledged":
            extra = {"acknowledged_by": clinician, "acknowledged_at": when}
        events.append(
            AlertEvent(
                id=derive_id("synthetic-alert-event", aid, state, i),
                type=f"rapport.alert.{state}",
                source="tests",
                time=when,
                subject=client,
                clinic_id=clinic,
                correlation_id=derive_id("synthetic-session", aid),
                data=AlertEventData(
                    alert_id=aid,
                    state=state,
                    signal_id=derive_id("synthetic-signal", aid),
                    kind=kind,  # type: ignore[arg-type]
                    severity=severity,  # type: ignore[arg-type]
                    rule_id=kind,
                    rule_version="1",
                    clinician_id=clinician,
                    client_id=client,
                    episode_id="ep-1",
                    session_number=session,
                    instrument="SRS",
                    explanation="numbers only",
                    **extra,
                ),
            )
        )
    return events


def directory(
    clinic: str = "clinic-01",
    *,
    people: Sequence[tuple[str, Sequence[str], str | None]] = (
        ("clin-01", ("clinician",), "sup-01"),
        ("clin-02", ("clinician",), "sup-01"),
        ("sup-01", ("clinician", "supervisor"), None),
        ("oncall-01", ("on_call",), None),
    ),
    on_call: Sequence[str] = ("oncall-01",),
    version: int = 1,
    timezone: str = "UTC",
) -> ClinicDirectory:
    """A clinic's directory: (id, roles, supervisor) per person."""
    return ClinicDirectory(
        clinic_id=clinic,
        version=version,
        timezone=timezone,
        people=[Person(id=i, roles=list(r), supervisor=s) for i, r, s in people],  # type: ignore[arg-type]
        escalation=EscalationPolicy(on_call=list(on_call)),
    )
