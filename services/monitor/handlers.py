"""Pure monitor handlers: a raw scored survey + the client's stored state → new state and signals."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from shared.deadletters import Rejection, decode
from shared.events import Signal, SurveyScored
from shared.rules.config import RuleBook
from shared.rules.live import evaluate
from shared.rules.trajectory import ClientState

STAGE = "monitor"


@dataclass(frozen=True)
class MonitorOutcome:
    """What one input record turns into. ``state`` is None when nothing must be stored."""

    state: str | None
    signals: tuple[Signal, ...]
    change: str


def state_key(event: SurveyScored) -> str:
    """Table key of a client's state: client ids are scoped by clinic."""
    return f"{event.clinic_id}|{event.data.client_id}"


def decode_scored(raw: bytes) -> SurveyScored | Rejection:
    """Validate a raw record as ``SurveyScored``, or say why it is not one."""
    return decode(SurveyScored, raw)


def track(event: SurveyScored, stored: str | None, rules: RuleBook, now: datetime) -> MonitorOutcome:
    """Take one scored survey into the stored trajectory and return the signals it newly raises.

    A redelivered survey changes nothing and raises nothing; a late one is inserted in place and the
    sessions after it are re-evaluated (only never-emitted signal ids go out).
    """
    state = ClientState.from_json(stored) if stored else None
    result = evaluate(state, event, rules, now)
    if result.change == "unchanged":
        return MonitorOutcome(None, (), result.change)
    return MonitorOutcome(result.state.to_json(), tuple(result.signals), result.change)
