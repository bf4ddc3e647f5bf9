"""The session pipeline over a history, offline: what ``rapport signals`` and ``rapport backtest`` run.

Each history record is turned into the :class:`~shared.pipeline.session.SessionContext` a
``SessionCompleted`` event would have (its id derived from the record's content, so a repeated record
is a redelivery and a changed one a correction) and scored by :func:`score_surveys`, the function the
scoring service calls. ``rapport signals`` then hands the resulting ``SurveyScored`` events to the live
monitor's :func:`shared.rules.live.evaluate`; ``rapport backtest`` collects the results into a
:class:`shared.rules.backtest.History` and runs the episode rules once per episode.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any

from shared.contracts.events import Signal, derive_id
from shared.history.sessions import LineError, SessionLine, canonical_surveys, read_records, session_time
from shared.instruments import ScoreResult
from shared.pipeline.clinics import Scorers, registry_for
from shared.pipeline.session import SessionContext, SessionScores, SurveyOutcome, score_surveys
from shared.rules.backtest import History
from shared.rules.config import RuleBook
from shared.rules.live import evaluate
from shared.rules.trajectory import ClientState

SOURCE = "rapport/cli"


def line_context(line: SessionLine, default_time: datetime) -> SessionContext:
    """The context of a history record, as the ``SessionCompleted`` event it stands for."""
    session_id = derive_id(
        SOURCE, line.clinic, line.client, line.episode, line.session, canonical_surveys(line)
    )
    return SessionContext(
        session_id,
        line.clinic,
        line.client,
        line.clinician,
        line.episode,
        line.session,
        session_time(line, default_time),
    )


def score_line(line: SessionLine, registry: Scorers, default_time: datetime) -> SessionScores:
    """One history record through the session pipeline, scored with its clinic's registry."""
    return score_surveys(line_context(line, default_time), line.surveys, registry_for(registry, line.clinic))


def survey_error(line_no: int, line: SessionLine, survey: SurveyOutcome) -> dict[str, Any]:
    """The error payload of a rejected survey: reason and locations, never answer values."""
    assert survey.rejection is not None  # noqa: S101 - callers pass rejected surveys only
    err: dict[str, Any] = {
        "line": line_no,
        "client": line.client,
        "session": line.session,
        "instrument": survey.instrument,
        "error": survey.rejection.reason,
        "detail": survey.rejection.detail,
    }
    if survey.result is not None and survey.result.critical_items:
        err["critical_items"] = list(survey.result.critical_items)
    return err


class OfflineMonitor:
    """The live pipeline's per-client loop, in memory: score → ``SurveyScored`` → ``evaluate``."""

    def __init__(self, book: RuleBook, registry: Scorers, now: datetime) -> None:
        self.book = book
        self.registry = registry
        self.now = now
        self.states: dict[tuple[str, str], ClientState] = {}

    def feed(self, line: SessionLine, line_no: int = 0) -> tuple[list[Signal], list[dict[str, Any]]]:
        """New signals raised by one session, and error payloads for surveys that were rejected."""
        scores = score_line(line, self.registry, self.now)
        errors = [survey_error(line_no, line, s) for s in scores.surveys if s.rejection is not None]
        key = (line.clinic, line.client)
        state = self.states.get(key)
        signals: list[Signal] = []
        registry = registry_for(self.registry, line.clinic)
        for event in scores.events(registry, now=self.now, source=SOURCE):
            evaluation = evaluate(state, event, self.book, self.now)
            state = evaluation.state
            signals.extend(evaluation.signals)
        if state is not None:
            self.states[key] = state
        return signals, errors


@dataclass
class ReadStats:
    """What reading and scoring a history did."""

    lines: int = 0
    sessions: int = 0
    bad_lines: int = 0
    unscorable_surveys: int = 0
    unscorable_with_risk: int = 0
    """Rejected surveys with an endorsed risk item: each raises ``critical_item``, live and here."""
    errors: Counter[str] = field(default_factory=Counter)
    read_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "records": self.lines,
            "bad_records": self.bad_lines,
            "unscorable_surveys": self.unscorable_surveys,
            "unscorable_with_risk": self.unscorable_with_risk,
            "errors_by_reason": dict(sorted(self.errors.items())),
        }


def read_history(
    fh: IO[bytes],
    fmt: str,
    registry: Scorers,
    *,
    on_bytes: Callable[[int], None] | None = None,
    on_error: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[History, ReadStats]:
    """Read a history file (binary, ``jsonl`` or ``csv``), score every record through the session
    pipeline and collect what it publishes into a :class:`History`.

    ``on_error`` receives one payload per rejected record or survey (no answer values).
    """
    history = History()
    stats = ReadStats()
    add, add_risk_only = history.add, history.add_risk_only
    for line_no, item in read_records(fh, fmt, on_bytes):
        stats.lines += 1
        if isinstance(item, LineError):
            stats.bad_lines += 1
            stats.errors[item.reason] += 1
            if on_error is not None:
                on_error(item.to_dict())
            continue
        # No context: the backtest needs the results, not the events (nor their ids).
        scores = score_surveys(None, item.surveys, registry_for(registry, item.clinic))
        for survey in scores.surveys:
            result = survey.result
            if survey.rejection is not None:
                stats.unscorable_surveys += 1
                stats.errors[survey.rejection.reason] += 1
                if survey.published:
                    stats.unscorable_with_risk += 1
                if on_error is not None:
                    on_error(survey_error(line_no, item, survey))
            if not survey.published or result is None:
                continue
            if isinstance(result, ScoreResult):
                add(
                    item.clinic,
                    item.client,
                    item.episode,
                    item.session,
                    survey.instrument,
                    result.domain,  # type: ignore[arg-type]  # the spec's domain is a Literal
                    result.scale,
                    result.total,
                    tuple(result.critical_items) if result.critical_items else (),
                    tuple(result.risk_unknown) if result.risk_unknown else (),
                )
            else:
                add_risk_only(
                    item.clinic,
                    item.client,
                    item.episode,
                    item.session,
                    survey.instrument,
                    tuple(result.critical_items),
                    result.reason,
                )
    stats.sessions = history.sessions()
    return history, stats
