"""The scoring service's handler: a raw session record in → scored surveys and rejections out.

Pure: the instrument registries (one per clinic's spec variants) and the clock are passed in. The
session policies (duplicate instrument, risk-only) live in :mod:`shared.pipeline.session`, shared
with the offline tools.
"""

from __future__ import annotations

from datetime import datetime

from shared.contracts.topics import SURVEY_SCORED
from shared.pipeline.clinics import Scorers, registry_for
from shared.pipeline.session import score_raw_session
from shared.runtime.worker import Handled, Output, Record

SOURCE = "rapport/scoring"
STAGE = "scoring"


def score_record(record: Record, registry: Scorers, now: datetime) -> Handled:
    """Score every survey of one session record with its clinic's registry; ``facts`` holds the
    published ``SurveyScored``."""
    session, scores = score_raw_session(record.value, registry)
    chosen = registry_for(registry, session.clinic_id if session else None)
    events = scores.events(chosen, now=now, source=SOURCE)
    return Handled(
        scores.label,
        outputs=tuple(Output(SURVEY_SCORED, record.key, e.model_dump_json().encode()) for e in events),
        rejections=scores.rejections,
        correlation_id=session.id if session else None,
        clinic_id=session.clinic_id if session else None,
        facts=events,
    )
