"""From a scorer's result to its ``SurveyScored`` event: one construction for the live scoring
service and the offline ``rapport signals``, so both hand the monitor's rules the same events."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from shared.events import SessionCompleted, SurveyScored, SurveyScoredData, derive_id
from shared.instruments import Registry, ScoreFailure, ScoreResult


@dataclass(frozen=True)
class SessionContext:
    """What every survey of one session shares."""

    session_id: uuid.UUID
    clinic_id: str
    client_id: str
    clinician_id: str
    episode_id: str
    session_number: int
    session_time: datetime

    @classmethod
    def of(cls, event: SessionCompleted) -> SessionContext:
        """The context of a ``SessionCompleted`` event."""
        d = event.data
        return cls(
            event.id,
            event.clinic_id,
            d.client_id,
            d.clinician_id,
            d.episode_id,
            d.session_number,
            d.session_time,
        )


def scored_event(
    ctx: SessionContext,
    result: ScoreResult | ScoreFailure,
    registry: Registry,
    *,
    now: datetime,
    source: str,
) -> SurveyScored | None:
    """The ``SurveyScored`` event of one survey, or ``None`` when there is nothing to publish.

    A scored survey always yields an event. An unscorable one yields an event only when it endorsed
    a critical item: then ``total`` is null, ``unscorable_reason`` says why, and the risk answer still
    reaches the monitor at once (the survey is dead-lettered as well by the caller).
    """
    if isinstance(result, ScoreFailure):
        plan = registry.plan(result.instrument) if result.instrument else None
        if not result.critical_items or plan is None or result.reason == "unknown_instrument":
            return None
        instrument, version, domain, scale = plan.instrument, plan.version, plan.domain, plan.scale
        total, reason = None, result.reason
        subscales: dict[str, float] = {}
        band, concern, prorated = None, None, False
        risk_unknown: list[str] = list(result.risk_unknown)
        missing: list[str] = []
    else:
        instrument, version, domain, scale = result.instrument, result.version, result.domain, result.scale
        total, reason = result.total, None
        subscales = dict(result.subscales)
        band, concern, prorated = result.band, result.concern, result.prorated
        risk_unknown = list(result.risk_unknown)
        missing = list(result.missing_items)
    return SurveyScored(
        id=derive_id(ctx.session_id, "survey-scored", instrument),
        source=source,
        time=now,
        subject=ctx.client_id,
        clinic_id=ctx.clinic_id,
        correlation_id=ctx.session_id,
        data=SurveyScoredData(
            clinician_id=ctx.clinician_id,
            client_id=ctx.client_id,
            episode_id=ctx.episode_id,
            session_number=ctx.session_number,
            session_time=ctx.session_time,
            instrument=instrument,
            instrument_version=version,
            domain=domain,
            total=total,
            unscorable_reason=reason,
            subscales=subscales,
            band=band,
            concern=concern,
            critical_items=list(result.critical_items),
            risk_unknown=risk_unknown,
            prorated=prorated,
            missing_items=missing,
            scale=scale,
        ),
    )
