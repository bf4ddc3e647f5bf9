"""Pure scoring handlers: raw session event in → scored surveys and rejections out.

No Kafka here: the agent in ``app.py`` decodes nothing itself, calls these functions and publishes
what they return. Clock and instrument registry are passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from shared.deadletters import Rejection, build_dead_letter, decode
from shared.events import (
    DeadLetter,
    ScaleInfo,
    SessionCompleted,
    SurveyScored,
    SurveyScoredData,
    derive_id,
)
from shared.instruments import Registry, ScoreFailure, score_survey

SOURCE = "rapport/scoring"
STAGE = "scoring"


@dataclass(frozen=True)
class ScoringOutcome:
    """Everything one input record turns into."""

    session: SessionCompleted | None
    scored: tuple[SurveyScored, ...]
    rejections: tuple[Rejection, ...]

    @property
    def label(self) -> str:
        """Bounded outcome label for metrics: scored, partial or rejected."""
        if not self.rejections:
            return "scored"
        return "partial" if self.scored else "rejected"


def score_session(raw: bytes, registry: Registry, now: datetime) -> ScoringOutcome:
    """Score every survey of one session event.

    Each scorable survey becomes one ``SurveyScored`` with a deterministic id (parent id +
    instrument); each unscorable one becomes a ``Rejection`` while its siblings are still scored.
    """
    decoded = decode(SessionCompleted, raw)
    if isinstance(decoded, Rejection):
        return ScoringOutcome(None, (), (decoded,))
    session = decoded
    data = session.data
    scored: list[SurveyScored] = []
    rejections: list[Rejection] = []
    seen: set[str] = set()
    for survey in data.surveys:
        if survey.instrument in seen:
            rejections.append(
                Rejection("schema_violation", "duplicate instrument in one session", survey.instrument)
            )
            continue
        seen.add(survey.instrument)
        result = score_survey(registry, survey.instrument, survey.answers)
        if isinstance(result, ScoreFailure):
            rejections.append(Rejection(result.reason, result.detail, survey.instrument))
            continue
        scored.append(
            SurveyScored(
                id=derive_id(session.id, "survey-scored", survey.instrument),
                source=SOURCE,
                time=now,
                subject=session.subject,
                clinic_id=session.clinic_id,
                correlation_id=session.id,
                data=SurveyScoredData(
                    clinician_id=data.clinician_id,
                    client_id=data.client_id,
                    episode_id=data.episode_id,
                    session_number=data.session_number,
                    session_time=data.session_time,
                    instrument=result.instrument,
                    instrument_version=result.version,
                    domain=result.domain,
                    total=result.total,
                    subscales=dict(result.subscales),
                    band=result.band,
                    concern=result.concern,
                    critical_items=list(result.critical_items),
                    risk_unknown=list(result.risk_unknown),
                    prorated=result.prorated,
                    missing_items=list(result.missing_items),
                    scale=ScaleInfo.model_validate(result.scale, from_attributes=True),
                ),
            )
        )
    return ScoringOutcome(session, tuple(scored), tuple(rejections))


def dead_letter(
    rejection: Rejection,
    *,
    key: bytes | None,
    value: bytes,
    topic: str,
    partition: int,
    offset: int,
    now: datetime,
    session: SessionCompleted | None,
) -> DeadLetter:
    """The dead-letter record for one rejection: the original bytes, whole, plus the reason."""
    return build_dead_letter(
        rejection,
        stage=STAGE,
        key=key,
        value=value,
        topic=topic,
        partition=partition,
        offset=offset,
        now=now,
        correlation_id=session.id if session else None,
        clinic_id=session.clinic_id if session else None,
    )
