"""Per-client trajectories: observations ordered by session number, never by arrival.

The state of one (clinic, client) key is a :class:`ClientState`: episodes → instruments → observations,
plus, per episode, the ids of the signals already emitted. Everything is immutable; every change
returns a new state. ``to_json``/``from_json`` give a compact JSON form for a changelog-backed table.

Arrival policy for one (episode, instrument, session):

* first arrival → inserted in session order (``appended`` at the end, or ``inserted_late`` before a
  later session that is already known);
* the same scored event again (same event id) → ``unchanged``;
* another event with the same total, critical and risk-unknown items → ``unchanged`` (a re-sent
  session): the first event's ids stay, so the signals' correlation ids do not move;
* another event with a different score → ``replaced``: last writer wins. Corrections of a mis-entered
  session are real; a replay of the topic re-applies events in their original order and ends in the
  same state. Signals already emitted are never retracted.

Bounds: at most :data:`MAX_EPISODES` episodes per client (the one with the oldest latest session time is
dropped first) and :data:`MAX_OBSERVATIONS` per instrument and episode (the intake is always kept:
it is the reference for reliable change; the oldest of the rest go first). Emitted ids live with their
episode, so they are bounded by the same limits.
"""

from __future__ import annotations

import json
from bisect import bisect_left
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from shared.contracts.events import ScaleInfo

MAX_EPISODES = 8
MAX_OBSERVATIONS = 400
STATE_FORMAT = 1

Domain = Literal["alliance", "outcome"]
Change = Literal["appended", "inserted_late", "replaced", "unchanged", "risk_only"]
"""How an event changed the state; ``risk_only``: an unscorable survey's endorsed risk items were
signalled, the trajectory itself is untouched."""


@dataclass(frozen=True, slots=True)
class Observation:
    """One scored survey of one session, reduced to what the rules and the signals need."""

    session: int
    total: float
    critical_items: tuple[str, ...] = ()
    """Critical items endorsed."""
    risk_unknown: tuple[str, ...] = ()
    """Critical items unanswered: risk status unknown."""
    event_id: str = ""
    """Id of the ``SurveyScored`` event (tells a redelivery from a correction)."""
    correlation_id: str = ""
    """Id of the originating ``SessionCompleted``."""
    clinician_id: str = ""
    session_time: str = ""
    """ISO-8601, timezone-aware."""

    def same_score(self, other: Observation) -> bool:
        """True when both carry the same clinical content (total, critical and unknown-risk items)."""
        return (
            self.total == other.total
            and self.critical_items == other.critical_items
            and self.risk_unknown == other.risk_unknown
        )


@dataclass(frozen=True, slots=True)
class Track:
    """One instrument's observations within one episode, sorted by session, one per session."""

    instrument: str
    domain: Domain
    scale: ScaleInfo
    observations: tuple[Observation, ...] = ()

    def sessions(self) -> list[int]:
        """Session numbers in order."""
        return [o.session for o in self.observations]

    def at(self, session: int) -> Observation | None:
        """The observation of ``session``, if any."""
        obs = self.observations
        i = bisect_left(obs, session, key=_session_of)
        if i < len(obs) and obs[i].session == session:
            return obs[i]
        return None


def _session_of(o: Observation) -> int:
    return o.session


def insert_observation(
    observations: tuple[Observation, ...], new: Observation
) -> tuple[tuple[Observation, ...], Change]:
    """Insert ``new`` into a session-sorted tuple, applying the arrival policy of this module."""
    i = bisect_left(observations, new.session, key=_session_of)
    if i < len(observations) and observations[i].session == new.session:
        old = observations[i]
        if old.event_id == new.event_id or old.same_score(new):
            return observations, "unchanged"
        return (*observations[:i], new, *observations[i + 1 :]), "replaced"
    change: Change = "appended" if i == len(observations) else "inserted_late"
    out = (*observations[:i], new, *observations[i:])
    if len(out) > MAX_OBSERVATIONS:
        # Keep the intake: reliable change and the expected curve are measured from it.
        out = (out[0], *out[len(out) - MAX_OBSERVATIONS + 1 :])
    return out, change


@dataclass(frozen=True, slots=True)
class EpisodeState:
    """One episode of care: its tracks by instrument and the ids of signals already emitted."""

    tracks: dict[str, Track] = field(default_factory=dict)
    emitted: frozenset[str] = frozenset()
    """Hex ids of signals already emitted in this episode."""

    def latest_time(self) -> str:
        """The latest session time seen in this episode (ISO strings of one zone sort by time)."""
        return max((o.session_time for t in self.tracks.values() for o in t.observations), default="")


@dataclass(frozen=True, slots=True)
class ClientState:
    """Everything the monitor keeps for one (clinic, client) key."""

    clinic_id: str
    client_id: str
    episodes: dict[str, EpisodeState] = field(default_factory=dict)

    def with_observation(
        self,
        episode_id: str,
        instrument: str,
        domain: Domain,
        scale: ScaleInfo,
        observation: Observation,
    ) -> tuple[ClientState, Change]:
        """A new state with ``observation`` inserted, and what the insertion did."""
        episode = self.episodes.get(episode_id, EpisodeState())
        track = episode.tracks.get(instrument)
        if track is None:
            track = Track(instrument, domain, scale)
        observations, change = insert_observation(track.observations, observation)
        if change == "unchanged":
            return self, change
        # The newest spec wins: a re-versioned instrument spec may carry a corrected scale.
        new_track = Track(instrument, domain, scale, observations)
        new_episode = replace(episode, tracks={**episode.tracks, instrument: new_track})
        episodes = {**self.episodes, episode_id: new_episode}
        if len(episodes) > MAX_EPISODES:
            episodes = _prune_episodes(episodes, keep=episode_id)
        return replace(self, episodes=episodes), change

    def with_emitted(self, episode_id: str, ids: list[str]) -> ClientState:
        """A new state recording ``ids`` as emitted in ``episode_id``."""
        if not ids:
            return self
        episode = self.episodes.get(episode_id, EpisodeState())
        new_episode = replace(episode, emitted=episode.emitted | frozenset(ids))
        return replace(self, episodes={**self.episodes, episode_id: new_episode})

    def to_json(self) -> str:
        """Compact JSON (observations as arrays) for the monitor's table."""
        return json.dumps(self.to_dict(), separators=(",", ":"), ensure_ascii=True)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form of :meth:`to_json`."""
        return {
            "v": STATE_FORMAT,
            "clinic": self.clinic_id,
            "client": self.client_id,
            "episodes": {
                eid: {
                    "tracks": {
                        name: {
                            "domain": t.domain,
                            "scale": t.scale.model_dump(exclude_none=True),
                            "obs": [_obs_to_list(o) for o in t.observations],
                        }
                        for name, t in ep.tracks.items()
                    },
                    "emitted": sorted(ep.emitted),
                }
                for eid, ep in self.episodes.items()
            },
        }

    @classmethod
    def from_json(cls, text: str | bytes) -> ClientState:
        """Inverse of :meth:`to_json`. Raises ``ValueError`` on a malformed or unknown-format state."""
        try:
            data = json.loads(text)
            return cls.from_dict(data)
        except (KeyError, TypeError, IndexError) as exc:
            raise ValueError(f"malformed client state: {type(exc).__name__}") from None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClientState:
        """Inverse of :meth:`to_dict`."""
        if data.get("v") != STATE_FORMAT:
            raise ValueError("unknown client-state format")
        episodes: dict[str, EpisodeState] = {}
        for eid, ep in data["episodes"].items():
            tracks = {
                name: Track(
                    instrument=name,
                    domain=t["domain"],
                    scale=ScaleInfo.model_validate(t["scale"]),
                    observations=tuple(_obs_from_list(o) for o in t["obs"]),
                )
                for name, t in ep["tracks"].items()
            }
            episodes[eid] = EpisodeState(tracks=tracks, emitted=frozenset(ep["emitted"]))
        return cls(clinic_id=data["clinic"], client_id=data["client"], episodes=episodes)


def _prune_episodes(episodes: dict[str, EpisodeState], keep: str) -> dict[str, EpisodeState]:
    ranked = sorted(
        (eid for eid in episodes if eid != keep),
        key=lambda eid: (episodes[eid].latest_time(), eid),
    )
    drop = set(ranked[: len(episodes) - MAX_EPISODES])
    return {eid: ep for eid, ep in episodes.items() if eid not in drop}


def _obs_to_list(o: Observation) -> list[Any]:
    return [
        o.session,
        o.total,
        list(o.critical_items),
        list(o.risk_unknown),
        o.event_id,
        o.correlation_id,
        o.clinician_id,
        o.session_time,
    ]


def _obs_from_list(v: list[Any]) -> Observation:
    return Observation(
        session=int(v[0]),
        total=float(v[1]),
        critical_items=tuple(str(x) for x in v[2]),
        risk_unknown=tuple(str(x) for x in v[3]),
        event_id=str(v[4]),
        correlation_id=str(v[5]),
        clinician_id=str(v[6]),
        session_time=str(v[7]),
    )
