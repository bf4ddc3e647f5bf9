"""The canary: a synthetic session for a reserved clinic, sent on a timer through the real pipeline.

Every canary event carries :data:`CANARY_CLINIC_ID` as its ``clinic_id``. It flows through scoring and
the monitor like any other session (that is the point: it proves the pipeline moves), and every
consumer that acts on people or counts care filters it out by that one id: the notifier routes it to
a null channel, analytics consumers drop ``clinic_id == CANARY_CLINIC_ID``. Integrations must never
accept this clinic id from outside (the gateway refuses it).

The probe endorses PHQ-9 item 9, so the monitor raises a ``critical_item`` signal for every probe:
deterministic, never suppressed, and observable end to end on the signals topic.
"""

from __future__ import annotations

import re
from datetime import datetime

from shared.contracts.events import (
    SessionCompleted,
    SessionCompletedData,
    SurveyResponse,
    derive_id,
)

#: The reserved clinic id of canary events. No real clinic may use it.
CANARY_CLINIC_ID = "rapport-canary"
#: ``source`` of canary session events.
CANARY_SOURCE = "rapport/canary"
#: Every canary client pseudonym starts with this (record keys too), so a consumer can skip
#: non-canary records by key before decoding them.
CANARY_CLIENT_PREFIX = "canary-"
#: The answers of every probe: PHQ-9 total 9 with item 9 endorsed (a critical item).
CANARY_ANSWERS: dict[str, int] = {str(i): 1 for i in range(1, 10)}
#: The signal kind every probe must raise.
CANARY_SIGNAL_KIND = "critical_item"
#: The canary's clinician: its alerts go to the notifier's null channel and are closed on delivery.
CANARY_CLINICIAN_ID = "canary-clinician"

_RUN_ID = re.compile(r"^[A-Za-z0-9-]{1,32}$")


def is_canary(clinic_id: str | None) -> bool:
    """True for events of the reserved canary clinic (drop them from analytics and from people)."""
    return clinic_id == CANARY_CLINIC_ID


def canary_client(run_id: str, seq: int, sessions_per_client: int = 200) -> str:
    """The pseudonymous client of probe ``seq``: a new client every ``sessions_per_client`` probes,
    so no canary trajectory in the monitor grows without bound."""
    return f"{CANARY_CLIENT_PREFIX}{run_id}-{seq // sessions_per_client}"


def canary_session(
    run_id: str, seq: int, now: datetime, *, sessions_per_client: int = 200
) -> SessionCompleted:
    """Probe number ``seq`` (0-based) of canary run ``run_id``: a ``SessionCompleted`` whose PHQ-9
    endorses item 9. Each probe is a new session number of its client, so the monitor appends it
    and raises a new ``critical_item`` signal (a repeated session would be a redelivery and raise
    nothing).
    """
    if not _RUN_ID.match(run_id):
        raise ValueError("run_id must be 1-32 letters, digits or '-'")
    if seq < 0 or sessions_per_client < 1 or sessions_per_client > 10_000:
        raise ValueError("seq must be >= 0 and sessions_per_client within 1..10000")
    client = canary_client(run_id, seq, sessions_per_client)
    event_id = derive_id("canary", run_id, seq)
    return SessionCompleted(
        id=event_id,
        source=CANARY_SOURCE,
        time=now,
        subject=client,
        clinic_id=CANARY_CLINIC_ID,
        correlation_id=event_id,
        data=SessionCompletedData(
            clinician_id=CANARY_CLINICIAN_ID,
            client_id=client,
            episode_id="canary",
            session_number=seq % sessions_per_client + 1,
            session_time=now,
            surveys=[SurveyResponse(instrument="PHQ-9", answers=dict(CANARY_ANSWERS), completed_at=now)],
        ),
    )
