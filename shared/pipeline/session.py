"""The one session pipeline: a completed session's surveys → scored surveys, rejections and events.

The scoring service, ``rapport signals`` and ``rapport backtest`` all call :func:`score_surveys`, so
the session policies hold in one place and the offline tools give exactly what the live pipeline
gives:

* every survey of a session is scored on its own; an unscorable one is rejected while its siblings
  are still scored;
* **duplicate instrument**: a session carrying the same instrument twice scores the first and rejects
  the second (``schema_violation``): two totals for one instrument in one session cannot both be true;
* **pre-scored totals** (offline histories that kept totals only): scored with the spec's bands,
  cutoff and reliable change, every critical item reported as risk unknown;
* **risk-only**: an unscorable survey that endorsed a critical item with a valid answer is rejected
  *and* published, with a null total, so the risk answer reaches the monitor at once.

Building the ``SurveyScored`` envelopes is a separate step (:meth:`SessionScores.events`): the backtest
needs only the results, the services and ``rapport signals`` need the events.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from shared.contracts.deadletters import Rejection, decode
from shared.contracts.events import Answer, SessionCompleted, SurveyScored, SurveyScoredData, derive_id
from shared.instruments import Registry, ScoreFailure, ScoreResult
from shared.instruments.scorer import score_general, score_total, unknown_instrument
from shared.pipeline.clinics import Scorers, registry_for

DUPLICATE_INSTRUMENT = "duplicate instrument in one session"


class SurveyLike(Protocol):
    """A survey whose answers were validated as ``shared.contracts.events.Answer`` values."""

    @property
    def instrument(self) -> str: ...

    @property
    def answers(self) -> Mapping[str, Answer] | None: ...


PRE_SCORED_AND_ANSWERS = "a survey gives either answers or a pre-scored total, not both"
NO_ANSWERS = "a survey without answers or a pre-scored total"


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
class SurveyOutcome:
    """One survey of a session after the pipeline's policies.

    ``result`` is ``None`` when the survey was not scored at all (a duplicate instrument).
    ``rejection`` is set when the survey is dead-lettered. ``published`` says whether a
    ``SurveyScored`` event goes out for it (scored, or unscorable with an endorsed risk item).
    """

    instrument: str
    result: ScoreResult | ScoreFailure | None
    rejection: Rejection | None

    @property
    def published(self) -> bool:
        """True when this survey becomes a ``SurveyScored`` event."""
        result = self.result
        if isinstance(result, ScoreResult):
            return True
        return result is not None and bool(result.critical_items)


@dataclass(frozen=True, slots=True)
class SessionScores:
    """Everything one session turns into; ``context`` is ``None`` when the envelope was rejected."""

    context: SessionContext | None
    surveys: tuple[SurveyOutcome, ...]
    envelope_rejection: Rejection | None = None

    @property
    def rejections(self) -> tuple[Rejection, ...]:
        """Every rejection, the envelope's first, then the surveys' in order."""
        out = [self.envelope_rejection] if self.envelope_rejection is not None else []
        out.extend(s.rejection for s in self.surveys if s.rejection is not None)
        return tuple(out)

    @property
    def label(self) -> str:
        """Bounded outcome label for metrics: scored, partial or rejected."""
        rejected = self.envelope_rejection is not None or any(s.rejection for s in self.surveys)
        if not rejected:
            return "scored"
        return "partial" if any(s.published for s in self.surveys) else "rejected"

    def events(self, registry: Registry, *, now: datetime, source: str) -> tuple[SurveyScored, ...]:
        """The ``SurveyScored`` events of every published survey, in session order."""
        ctx = self.context
        if ctx is None:
            return ()
        out = []
        for survey in self.surveys:
            if survey.published and survey.result is not None:
                event = scored_event(ctx, survey.result, registry, now=now, source=source)
                if event is not None:
                    out.append(event)
        return tuple(out)


def score_surveys(
    ctx: SessionContext | None, surveys: Iterable[SurveyLike], registry: Registry
) -> SessionScores:
    """Score every survey of one session under the pipeline's policies (see the module docstring).

    ``ctx`` may be ``None`` when only the results are wanted (the backtest): no events are built.
    """
    plans = registry._plans
    seen: set[str] = set()
    out: list[SurveyOutcome] = []
    for survey in surveys:
        instrument = survey.instrument
        if instrument in seen:
            duplicate = Rejection("schema_violation", DUPLICATE_INSTRUMENT, instrument)
            out.append(SurveyOutcome(instrument, None, duplicate))
            continue
        seen.add(instrument)
        plan = plans.get(instrument) or registry.plan(instrument)
        result: ScoreResult | ScoreFailure
        if plan is None:
            result = unknown_instrument(instrument)
        else:
            answers = survey.answers
            # A history that kept totals only gives {"instrument": ..., "total": ...} (offline input).
            total = getattr(survey, "total", None)
            if total is not None:
                result = (
                    score_total(plan, total)
                    if not answers
                    else ScoreFailure("schema_violation", PRE_SCORED_AND_ANSWERS, instrument)
                )
            elif answers is None:
                result = ScoreFailure("schema_violation", NO_ANSWERS, instrument)
            else:
                result = plan.fast_typed(answers) or score_general(plan, answers)
        rejection = (
            Rejection(result.reason, result.detail, instrument) if isinstance(result, ScoreFailure) else None
        )
        out.append(SurveyOutcome(instrument, result, rejection))
    return SessionScores(ctx, tuple(out))


def score_session(session: SessionCompleted, registry: Scorers) -> SessionScores:
    """:func:`score_surveys` for a validated ``SessionCompleted`` event, with its clinic's registry."""
    chosen = registry_for(registry, session.clinic_id)
    return score_surveys(SessionContext.of(session), session.data.surveys, chosen)


def score_raw_session(raw: bytes, registry: Scorers) -> tuple[SessionCompleted | None, SessionScores]:
    """Decode a raw session record and score it (with its clinic's registry when ``registry`` is a
    :class:`~shared.pipeline.clinics.ClinicRegistries`); an invalid envelope is one rejection."""
    decoded = decode(SessionCompleted, raw)
    if isinstance(decoded, Rejection):
        return None, SessionScores(None, (), decoded)
    return decoded, score_session(decoded, registry)


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
