"""The scoring service's handler: a raw session record in → scored surveys and rejections out.

Pure: the instrument registries (one per clinic's spec variants) and the clock are passed in. The
session policies (duplicate instrument, risk-only, risk in a bad envelope) live in
:mod:`shared.pipeline.session`, shared with the offline tools.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from shared.contracts.deadletters import Rejection
from shared.contracts.keys import subject_key
from shared.contracts.topics import SIGNALS, SURVEY_SCORED
from shared.pipeline.clinics import Scorers, registry_for
from shared.pipeline.session import risk_signals, salvage_risk, score_raw_session, with_risk
from shared.runtime.worker import Handled, Output, Record

SOURCE = "rapport/scoring"
STAGE = "scoring"


@dataclass(frozen=True, slots=True)
class UnroutableRisk:
    """A critical item endorsed in a record whose clinic could not be read: nobody can be told, so
    it is counted (``rapport_scoring_unroutable_risk_total``) and its dead letter says so."""

    instrument: str


def score_record(record: Record, registry: Scorers, now: datetime) -> Handled:
    """Score every survey of one session record with its clinic's registry. ``facts`` holds the
    published ``SurveyScored`` and ``Signal`` events and an :class:`UnroutableRisk` per instrument
    whose risk reached nobody."""
    session, scores = score_raw_session(record.value, registry)
    if session is None and scores.envelope_rejection is not None:
        return _invalid_session(record, scores.envelope_rejection, registry, now)
    chosen = registry_for(registry, session.clinic_id if session else None)
    events = scores.events(chosen, now=now, source=SOURCE)
    key = subject_key(session.clinic_id, session.data.client_id) if session else None
    return Handled(
        scores.label,
        outputs=tuple(Output(SURVEY_SCORED, key, e.model_dump_json().encode()) for e in events),
        rejections=scores.rejections,
        correlation_id=session.id if session else None,
        clinic_id=session.clinic_id if session else None,
        key=key,
        facts=events,
    )


def _invalid_session(record: Record, rejection: Rejection, registry: Scorers, now: datetime) -> Handled:
    """A record that is not a valid session event: dead-lettered, but a risk answer in it is still
    raised as a ``critical_item`` to whoever its valid fields name (scored with the base variants:
    critical items do not depend on them)."""
    salvaged = salvage_risk(record.value, registry_for(registry, None))
    if salvaged is None:
        return Handled("rejected", rejections=(rejection,))
    routing = salvaged.routing
    origin = (record.topic, record.partition, record.offset)
    signals = risk_signals(salvaged, rejection, origin=origin, now=now, source=SOURCE)
    clinic, client = routing.clinic_id, routing.client_id
    key = subject_key(clinic, client) if clinic is not None and client is not None else None
    unroutable = () if signals else tuple(UnroutableRisk(i) for i, _items in salvaged.endorsed)
    return Handled(
        "rejected",
        outputs=tuple(Output(SIGNALS, key, s.model_dump_json().encode()) for s in signals),
        rejections=(with_risk(rejection, salvaged),),
        correlation_id=routing.session_id,
        clinic_id=routing.clinic_id,
        key=key,
        facts=(*signals, *unroutable),
    )
