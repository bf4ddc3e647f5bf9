"""``dropout_risk``: an alliance concern (below cutoff, or a drop not yet repaired) ``concern_sessions``
in a row while no outcome is improving (``improvement_fraction`` x RC better than intake, or out of its
clinical range) after ``min_outcome_sessions`` outcome sessions. Judged only at sessions with both an
alliance and an outcome score, so the answer cannot depend on which of a session's surveys arrived
first."""

from __future__ import annotations

from collections.abc import Mapping

from shared.rules.config import ResolvedParams, Rules
from shared.rules.findings import Cursor, Edge, Finding, fmt
from shared.rules.trajectory import Track


class DropoutRisk:
    """Walks one alliance track against the episode's outcome tracks. State: the run of concerning
    alliance sessions, how far each outcome track has been read, and an edge."""

    __slots__ = (
        "concern",
        "concern_run",
        "concern_sessions",
        "edge",
        "fraction",
        "min_outcome_sessions",
        "outcomes",
        "progress",
        "seen",
        "severity",
    )
    TEMPLATE = (
        "{name} {value} at session {session}: an alliance concern {concern_sessions} sessions running, "
        "and {outcome} has not improved after {outcome_sessions} sessions ({first} → {now}): dropout "
        "risk — consider reviewing goals and fit together."
    )

    def __init__(
        self,
        rules: Rules,
        concern: dict[int, bool],
        outcomes: list[Track],
        progress: Mapping[str, dict[int, bool]],
    ) -> None:
        rule = rules.dropout_risk
        self.severity = rule.severity
        self.concern_sessions = rule.concern_sessions
        self.min_outcome_sessions = rule.min_outcome_sessions
        self.fraction = rule.improvement_fraction
        self.concern = concern
        self.outcomes = outcomes
        self.progress = progress
        self.concern_run = 0
        self.seen = [0] * len(outcomes)
        """Per outcome track: how many of its observations are at or before the current session."""
        self.edge = Edge(rules.rearm_after)

    def step(self, at: Cursor) -> Finding | None:
        """Dropout risk starting at this alliance session."""
        s = at.s
        self.concern_run = self.concern_run + 1 if self.concern.get(s, False) else 0
        seen = self.seen
        here = -1  # the first outcome track measured at this very session
        most = 0
        improving = False
        for k, t in enumerate(self.outcomes):
            obs = t.observations
            j = seen[k]
            while j < len(obs) and obs[j].session <= s:
                j += 1
            seen[k] = j
            if not j:
                continue
            last = obs[j - 1].session
            if here < 0 and last == s:
                here = k
            if not improving and self.progress[t.instrument][last]:
                improving = True
            if j > most:
                most = j
        if here < 0:
            return None
        enough = most >= self.min_outcome_sessions
        cond = self.concern_run >= self.concern_sessions and enough and not improving
        if not self.edge.step(cond) or not at.emit:
            return None
        k = here
        ref = self.outcomes[k]
        first, now = ref.observations[0], ref.observations[seen[k] - 1]
        return at.finding(
            "dropout_risk",
            self.severity,
            (
                ("outcome_intake", first.total),
                ("outcome_now", now.total),
                ("outcome_sessions", float(seen[k])),
                ("min_outcome_sessions", float(self.min_outcome_sessions)),
                ("improvement_fraction", self.fraction),
            ),
            self.TEMPLATE,
            name=at.name,
            value=fmt(at.v),
            session=s,
            concern_sessions=self.concern_sessions,
            outcome=ref.instrument,
            outcome_sessions=seen[k],
            first=fmt(first.total),
            now=fmt(now.total),
        )


def walk(
    tracks: Mapping[str, Track],
    alliance_name: str,
    params: ResolvedParams,
    concern: dict[int, bool],
    progress: Mapping[str, dict[int, bool]],
    rules: Rules,
    since: int,
    out: list[Finding],
) -> None:
    """Run the dropout rule over one alliance track against every outcome track that can tell
    whether the client is improving (one with a reliable change or a cutoff)."""
    outcomes = [tracks[n] for n in sorted(progress) if progress[n]]
    if not outcomes:
        return
    at = Cursor(tracks[alliance_name], params, since)
    unit = DropoutRisk(rules, concern, outcomes, progress)
    for i in range(len(at.obs)):
        at.advance(i)
        found = unit.step(at)
        if found is not None:
            out.append(found)
