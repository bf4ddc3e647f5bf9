"""The monitor service's handler: a scored survey + the client's stored state → new state + signals.

Pure: the rule book and the clock are passed in; state is read and written through the worker
loop's :class:`~shared.runtime.worker.StateView` as :class:`ClientState` objects (immutable, so the
view may keep them between batches); it is encoded and stored once per client and batch, only after
the batch's signals are published.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from shared.contracts.deadletters import Rejection, decode
from shared.contracts.events import Signal, SurveyScored
from shared.contracts.keys import subject_id, subject_key
from shared.contracts.topics import SIGNALS
from shared.rules.config import RuleBook
from shared.rules.live import evaluate
from shared.rules.trajectory import ClientState
from shared.runtime.worker import Handled, Output, Record, StateView

STAGE = "monitor"


@dataclass(frozen=True)
class MonitorOutcome:
    """What one input record turns into. ``state`` is None when nothing must be stored."""

    state: ClientState | None
    signals: tuple[Signal, ...]
    change: str


def state_key(event: SurveyScored) -> str:
    """Table key of a client's state: client ids are scoped by clinic."""
    return subject_id(event.clinic_id, event.data.client_id)


def decode_scored(raw: bytes) -> SurveyScored | Rejection:
    """Validate a raw record as ``SurveyScored``, or say why it is not one."""
    return decode(SurveyScored, raw)


def track(
    event: SurveyScored, state: ClientState | None, rules: RuleBook, now: datetime
) -> MonitorOutcome:
    """Take one scored survey into the stored trajectory and return the signals it newly raises.

    A redelivered survey changes nothing and raises nothing; a late one is inserted in place and the
    sessions after it are re-evaluated (only never-emitted signal ids go out).
    """
    result = evaluate(state, event, rules, now)
    if result.change == "unchanged":
        return MonitorOutcome(None, (), result.change)
    return MonitorOutcome(result.state, tuple(result.signals), result.change)


def track_record(record: Record, state: StateView[ClientState], rules: RuleBook, now: datetime) -> Handled:
    """The worker loop's handler: ``facts`` holds ``(event, signals)`` for the service's metrics."""
    decoded = decode_scored(record.value)
    if isinstance(decoded, Rejection):
        return Handled("rejected", rejections=(decoded,))
    key = state_key(decoded)
    outcome = track(decoded, state.get(key), rules, now)
    if outcome.state is not None:
        state.set(key, outcome.state, record)
    signal_key = subject_key(decoded.clinic_id, decoded.data.client_id)
    return Handled(
        outcome.change,
        outputs=tuple(Output(SIGNALS, signal_key, s.model_dump_json().encode()) for s in outcome.signals),
        correlation_id=decoded.correlation_id,
        clinic_id=decoded.clinic_id,
        facts=((decoded, outcome.signals),),
    )
