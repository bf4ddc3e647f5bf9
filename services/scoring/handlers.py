"""Pure scoring handlers: raw session event in → scored surveys and rejections out.

No Kafka here: the agent in ``app.py`` decodes nothing itself, calls these functions and publishes
what they return. Clock and instrument registry are passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from shared.deadletters import Rejection, build_dead_letter, decode
from shared.events import DeadLetter, SessionCompleted, SurveyScored
from shared.instruments import Registry, ScoreFailure, score_response
from shared.scoring import SessionContext, scored_event

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
    An unscorable survey that endorsed a risk item is *also* published, with a null total, so the
    risk answer reaches the monitor at once.
    """
    decoded = decode(SessionCompleted, raw)
    if isinstance(decoded, Rejection):
        return ScoringOutcome(None, (), (decoded,))
    session = decoded
    ctx = SessionContext.of(session)
    scored: list[SurveyScored] = []
    rejections: list[Rejection] = []
    seen: set[str] = set()
    for survey in session.data.surveys:
        if survey.instrument in seen:
            rejections.append(
                Rejection("schema_violation", "duplicate instrument in one session", survey.instrument)
            )
            continue
        seen.add(survey.instrument)
        result = score_response(registry, survey)
        if isinstance(result, ScoreFailure):
            rejections.append(Rejection(result.reason, result.detail, survey.instrument))
        event = scored_event(ctx, result, registry, now=now, source=SOURCE)
        if event is not None:
            scored.append(event)
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
    """The dead-letter record for one rejection: the original bytes (capped) plus the reason."""
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
