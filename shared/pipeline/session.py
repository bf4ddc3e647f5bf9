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
  *and* published, with a null total, so the risk answer reaches the monitor at once; its rejection
  names the endorsed items (the dead letter says ``risk_endorsed``);
* **risk in a bad envelope**: when the session event itself fails validation, :func:`salvage_risk`
  still reads each survey's instrument and answers best-effort, and :func:`risk_signals` turns every
  critical item endorsed with a valid answer into a ``critical_item`` signal addressed to whatever
  routing fields were valid (see :class:`Routing`).

Building the ``SurveyScored`` envelopes is a separate step (:meth:`SessionScores.events`): the backtest
needs only the results, the services and ``rapport signals`` need the events.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Annotated, Any, Protocol

from pydantic import AwareDatetime, Field, TypeAdapter, ValidationError

from shared.contracts.deadletters import Rejection, decode
from shared.contracts.events import (
    Answer,
    Evidence,
    InstrumentId,
    PseudonymousId,
    SessionCompleted,
    Signal,
    SignalData,
    SurveyScored,
    SurveyScoredData,
    derive_id,
)
from shared.instruments import Registry, ScoreFailure, ScoreResult
from shared.instruments.scorer import score_general, score_total, unknown_instrument
from shared.pipeline.clinics import Scorers, registry_for
from shared.rules.engine import RULES

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
    session_event_time: datetime | None = None
    """The ``SessionCompleted`` envelope's ``time``; ``None`` offline."""

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
            event.time,
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
            Rejection(
                result.reason,
                result.detail,
                instrument,
                tuple((instrument, item) for item in result.critical_items),
            )
            if isinstance(result, ScoreFailure)
            else None
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
            session_event_time=ctx.session_event_time,
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


# --------------------------------------------------------------------------- risk in a bad envelope

#: Rule set version of the ``critical_item`` signals raised from invalid session events: the rule is
#: built in (any endorsed critical item is critical) and no clinic can configure it away.
BUILTIN_RULESET = "builtin"
EXPLANATION_MAX = 300

_ID = TypeAdapter(PseudonymousId)
_INSTRUMENT = TypeAdapter(InstrumentId)
_SESSION_NUMBER = TypeAdapter(Annotated[int, Field(ge=1, le=10_000, strict=True)])
_TIME = TypeAdapter(AwareDatetime)
_UUID = TypeAdapter(uuid.UUID)


@dataclass(frozen=True, slots=True)
class Routing:
    """The routing fields of a session event that failed validation: each one that is valid on its
    own, ``None`` for the others. A signal needs at least the clinic."""

    clinic_id: str | None = None
    clinician_id: str | None = None
    client_id: str | None = None
    episode_id: str | None = None
    session_id: uuid.UUID | None = None
    session_number: int | None = None
    session_time: datetime | None = None
    event_time: datetime | None = None


@dataclass(frozen=True, slots=True)
class SalvagedRisk:
    """Critical items endorsed with a valid answer in a record that is not a valid session event."""

    routing: Routing
    endorsed: tuple[tuple[str, tuple[str, ...]], ...]
    """``(instrument, endorsed items)`` per instrument, in record order."""

    @property
    def risk_items(self) -> tuple[tuple[str, str], ...]:
        """Every endorsed ``(instrument, item)``."""
        return tuple((instrument, item) for instrument, items in self.endorsed for item in items)


def _valid(adapter: TypeAdapter[Any], value: Any) -> Any:
    if value is None:
        return None
    try:
        return adapter.validate_python(value)
    except (ValidationError, TypeError, ValueError):
        return None


def _routing(doc: Mapping[str, Any]) -> Routing:
    data = doc.get("data")
    data = data if isinstance(data, Mapping) else {}
    # The client is data.client_id; the envelope's subject is the same id and stands in for it only
    # when data.client_id is absent (an invalid client id is never replaced by a guess).
    client = _valid(_ID, data["client_id"]) if "client_id" in data else _valid(_ID, doc.get("subject"))
    return Routing(
        clinic_id=_valid(_ID, doc.get("clinic_id")),
        clinician_id=_valid(_ID, data.get("clinician_id")),
        client_id=client,
        episode_id=_valid(_ID, data.get("episode_id")),
        session_id=_valid(_UUID, doc.get("id")),
        session_number=_valid(_SESSION_NUMBER, data.get("session_number")),
        session_time=_valid(_TIME, data.get("session_time")),
        event_time=_valid(_TIME, doc.get("time")),
    )


def _endorsed(surveys: Any, registry: Registry) -> tuple[tuple[str, tuple[str, ...]], ...]:
    if not isinstance(surveys, list):
        return ()
    found: dict[str, list[str]] = {}
    for survey in surveys:
        if not isinstance(survey, Mapping):
            continue
        instrument, answers = survey.get("instrument"), survey.get("answers")
        if not isinstance(instrument, str) or not isinstance(answers, Mapping):
            continue
        plan = registry.plan(instrument) if _valid(_INSTRUMENT, instrument) else None
        if plan is None or not plan.critical:
            continue
        # The scorer's own validation: only an answer that is a number on the item's grid counts.
        result = score_general(plan, {str(k): v for k, v in answers.items()})
        items = found.setdefault(plan.instrument, [])
        items.extend(i for i in result.critical_items if i not in items)
    return tuple((instrument, tuple(items)) for instrument, items in found.items() if items)


def salvage_risk(raw: bytes, registry: Registry) -> SalvagedRisk | None:
    """Read a record that failed validation as a session event best-effort: the routing fields that
    are valid, and the critical items each survey endorsed with a valid answer. ``None`` when no
    critical item is endorsed (or the record is not a JSON object at all). Never raises.

    Bytes that are not UTF-8 are read with replacement characters, so a bad byte inside one string
    invalidates that field only.
    """
    try:
        doc = json.loads(raw.decode("utf-8", errors="replace"))
    except (ValueError, RecursionError):
        return None
    if not isinstance(doc, Mapping):
        return None
    data = doc.get("data")
    endorsed = _endorsed(data.get("surveys") if isinstance(data, Mapping) else None, registry)
    if not endorsed:
        return None
    return SalvagedRisk(_routing(doc), endorsed)


def _items_text(items: tuple[str, ...]) -> str:
    if len(items) == 1:
        return f"item {items[0]}"
    return "items " + ", ".join(items[:-1]) + f" and {items[-1]}"


def risk_signals(
    salvaged: SalvagedRisk,
    rejection: Rejection,
    *,
    origin: tuple[str, int, int],
    now: datetime,
    source: str,
) -> tuple[Signal, ...]:
    """One ``critical_item`` signal per instrument with endorsed items, addressed to the valid routing
    fields, with the validation failure (error types and field locations, no values) in its
    explanation. Empty when not even the clinic is valid: nobody could be told (count it).

    Ids are deterministic: from the session id when it is valid, else from the record's
    ``origin`` (topic, partition, offset), so a replay yields the same ids.
    """
    r = salvaged.routing
    if r.clinic_id is None:
        return ()
    rule_id, rule_version = RULES["critical_item"]
    anchor: object = r.session_id if r.session_id is not None else "|".join(str(p) for p in origin)
    out = []
    for instrument, items in salvaged.endorsed:
        sid = derive_id(anchor, "unvalidated-session", instrument, "critical_item", rule_id, rule_version)
        where = f"session {r.session_number}" if r.session_number is not None else "a session"
        explanation = (
            f"{instrument} risk {_items_text(items)} endorsed in {where} whose event failed validation "
            f"({rejection.reason}: {rejection.detail}): follow the clinic's risk protocol now."
        )
        if len(explanation) > EXPLANATION_MAX:
            explanation = explanation[: EXPLANATION_MAX - 1] + "…"
        out.append(
            Signal(
                id=sid,
                source=source,
                time=now,
                subject=r.client_id,
                clinic_id=r.clinic_id,
                correlation_id=r.session_id if r.session_id is not None else sid,
                data=SignalData(
                    clinician_id=r.clinician_id,
                    client_id=r.client_id,
                    episode_id=r.episode_id,
                    session_number=r.session_number,
                    session_time=r.session_time,
                    session_event_time=r.event_time,
                    instrument=instrument,
                    kind="critical_item",
                    severity="critical",
                    rule_id=rule_id,
                    rule_version=rule_version,
                    ruleset_version=BUILTIN_RULESET,
                    evidence=Evidence(items=list(items)),
                    explanation=explanation,
                ),
            )
        )
    return tuple(out)


def with_risk(rejection: Rejection, salvaged: SalvagedRisk | None) -> Rejection:
    """``rejection`` naming the endorsed critical items of ``salvaged`` (for its dead letter)."""
    if salvaged is None:
        return rejection
    return replace(rejection, risk_items=salvaged.risk_items)
