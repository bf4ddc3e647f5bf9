"""The live entry point: one ``SurveyScored`` event + a client's state → new state + ``Signal`` events.

Pure: the clock and the rule set are passed in, nothing is read or written. The monitor service loads
the client's :class:`ClientState` from its table (``ClientState.from_json``), calls :func:`evaluate`,
stores ``result.state.to_json()`` back and publishes ``result.signals``.

Delivery semantics
------------------
* In order: each session's signals are emitted when its score arrives.
* Redelivery (same event, or the same score again): state unchanged, no signals.
* Late arrival (a session before one already seen): the inserted session and every later session of
  the episode (all instruments) are re-evaluated; only signals whose ids were never emitted go out.
  Rules look only backwards, so once every session has arrived, the emitted ids are a superset of
  what in-order delivery would have emitted; the extras are signals that were true of the trajectory
  known at the time (e.g. a drop "vs last session" judged before the real last session arrived).
  Signals are never retracted.
* Correction (same session, different score): last writer wins, re-evaluated like a late arrival.
"""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime
from typing import NamedTuple

from shared.contracts.events import Evidence, SeriesPoint, Signal, SignalData, SurveyScored, derive_id
from shared.rules.config import RuleBook, RuleSet
from shared.rules.engine import Finding, evaluate_episode, unscored_critical_finding
from shared.rules.trajectory import Change, ClientState, Observation

SOURCE = "rapport/monitor"
EXPLANATION_MAX = 300


class Evaluation(NamedTuple):
    """What one event did: the new state, the new signals, and how the observation was taken in."""

    state: ClientState
    signals: list[Signal]
    change: Change


def observation_from_event(event: SurveyScored) -> Observation:
    """The trajectory point of a scored survey."""
    d = event.data
    return Observation(
        session=d.session_number,
        total=float(d.total) if d.total is not None else math.nan,
        critical_items=tuple(d.critical_items),
        risk_unknown=tuple(d.risk_unknown),
        event_id=event.id.hex,
        correlation_id=event.correlation_id.hex,
        clinician_id=d.clinician_id,
        # One zone, so ISO strings order like the instants they name (used to prune old episodes).
        session_time=d.session_time.astimezone(UTC).isoformat(),
    )


def signal_id(clinic_id: str, client_id: str, episode_id: str, finding: Finding) -> uuid.UUID:
    """Deterministic id of a finding's signal: the same clinical event always gets the same id."""
    return derive_id(
        clinic_id,
        client_id,
        episode_id,
        finding.instrument,
        finding.session,
        finding.kind,
        finding.rule_id,
        finding.rule_version,
    )


def evaluate(
    state: ClientState | None,
    event: SurveyScored,
    rules: RuleSet | RuleBook,
    now: datetime,
) -> Evaluation:
    """Take one scored survey into a client's state and return the signals it newly raises.

    ``state`` is ``None`` for a client never seen. ``rules`` may be a :class:`RuleBook`, in which case
    the event's clinic picks the effective rule set. Raises ``ValueError`` when ``state`` belongs to
    another client (a keying bug upstream must not mix two clients' trajectories).
    """
    d = event.data
    if state is None:
        state = ClientState(clinic_id=event.clinic_id, client_id=d.client_id)
    elif (state.clinic_id, state.client_id) != (event.clinic_id, d.client_id):
        raise ValueError("client state does not belong to this event's client")
    ruleset = rules.for_clinic(event.clinic_id) if isinstance(rules, RuleBook) else rules
    if d.total is None:
        return _unscored_critical(state, event, ruleset, now)
    obs = observation_from_event(event)
    new_state, change = state.with_observation(d.episode_id, d.instrument, d.domain, d.scale, obs)
    if change == "unchanged":
        return Evaluation(state, [], change)
    signals = _new_signals(new_state, d.episode_id, obs.session, ruleset, now, d.session_event_time)
    new_state = new_state.with_emitted(d.episode_id, [s.id.hex for s in signals])
    return Evaluation(new_state, signals, change)


def _unscored_critical(
    state: ClientState, event: SurveyScored, ruleset: RuleSet, now: datetime
) -> Evaluation:
    """An unscorable survey with endorsed risk items: signal them at once, keep the trajectory."""
    d = event.data
    if not d.critical_items:
        return Evaluation(state, [], "unchanged")
    finding = unscored_critical_finding(
        d.instrument, d.session_number, tuple(d.critical_items), d.unscorable_reason or "invalid"
    )
    sid = signal_id(state.clinic_id, state.client_id, d.episode_id, finding)
    episode = state.episodes.get(d.episode_id)
    if episode is not None and sid.hex in episode.emitted:
        return Evaluation(state, [], "unchanged")
    obs = observation_from_event(event)
    signal = to_signal(state, d.episode_id, finding, obs, ruleset.version, sid, now, d.session_event_time)
    return Evaluation(state.with_emitted(d.episode_id, [sid.hex]), [signal], "risk_only")


def _new_signals(
    state: ClientState,
    episode_id: str,
    since: int,
    ruleset: RuleSet,
    now: datetime,
    event_time: datetime | None,
) -> list[Signal]:
    episode = state.episodes[episode_id]
    out: list[Signal] = []
    for finding in evaluate_episode(episode.tracks, ruleset, since=since):
        sid = signal_id(state.clinic_id, state.client_id, episode_id, finding)
        if sid.hex in episode.emitted:
            continue
        obs = episode.tracks[finding.instrument].at(finding.session)
        if obs is None:  # pragma: no cover - findings are always about an observed session
            continue
        out.append(to_signal(state, episode_id, finding, obs, ruleset.version, sid, now, event_time))
    return out


def to_signal(
    state: ClientState,
    episode_id: str,
    finding: Finding,
    obs: Observation,
    ruleset_version: str,
    sid: uuid.UUID,
    now: datetime,
    event_time: datetime | None = None,
) -> Signal:
    """The ``Signal`` envelope of a finding; ids and times come from the observation it is about,
    ``event_time`` from the session event being processed (see ``SignalData.session_event_time``)."""
    explanation = finding.explanation
    if len(explanation) > EXPLANATION_MAX:
        explanation = explanation[: EXPLANATION_MAX - 1] + "…"
    return Signal(
        id=sid,
        source=SOURCE,
        time=now,
        subject=state.client_id,
        clinic_id=state.clinic_id,
        # The session the signal is about, which after a late arrival need not be the one that arrived.
        correlation_id=uuid.UUID(obs.correlation_id) if obs.correlation_id else sid,
        data=SignalData(
            clinician_id=obs.clinician_id,
            client_id=state.client_id,
            episode_id=episode_id,
            session_number=finding.session,
            session_time=datetime.fromisoformat(obs.session_time) if obs.session_time else now,
            session_event_time=event_time,
            instrument=finding.instrument,
            kind=finding.kind,
            severity=finding.severity,
            rule_id=finding.rule_id,
            rule_version=finding.rule_version,
            ruleset_version=ruleset_version,
            evidence=evidence_of(finding),
            explanation=explanation,
        ),
    )


def evidence_of(finding: Finding) -> Evidence:
    """The ``Evidence`` model of a finding."""
    return Evidence(
        series=[SeriesPoint(session=s, value=v) for s, v in finding.series],
        # Four decimals are plenty for a clinician and keep running means from printing 16 digits.
        thresholds={k: round(v, 4) for k, v in finding.thresholds},
        items=list(finding.items),
    )
