"""The outcome rules over one outcome track: reliable deterioration, reliable improvement, not on
track. All measure change from intake (the episode's first score of the instrument).

:class:`OutcomeCursor` carries what they share at a session: the change from intake and whether it
is reliably worse / better. The driver (:func:`walk`) also records, for the dropout rule, whether the
client is improving at each session.
"""

from __future__ import annotations

import math

from shared.rules.config import ResolvedParams, Rules
from shared.rules.findings import EPS, Cursor, Edge, Finding, fmt, is_concern, risk_note, signed
from shared.rules.trajectory import Observation, Track
from shared.rules.units.critical import CriticalItem


class OutcomeCursor(Cursor):
    """A :class:`Cursor` plus the change from intake at a session."""

    __slots__ = ("change", "g0", "intake", "rc", "reliably_better", "reliably_worse", "room")

    def __init__(self, track: Track, p: ResolvedParams, since: int) -> None:
        super().__init__(track, p, since)
        self.intake: Observation = self.obs[0]
        self.g0 = self.goods[0]
        """Intake goodness."""
        self.room = max(p.sign * p.best - self.g0, 0.0)
        """Goodness between intake and the scale's best end."""
        self.rc = p.reliable_change
        self.change = 0.0
        """Goodness gained since intake (negative: worse)."""
        self.reliably_worse = False
        self.reliably_better = False

    def enter(self, i: int) -> None:
        """Move to session ``i`` and compare it with intake."""
        o = self.obs[i]
        self.i = i
        self.o = o
        self.s = s = o.session
        self.v = o.total
        self.g = g = self.goods[i]
        self.emit = s >= self.since
        self.change = change = g - self.g0
        rc = self.rc
        self.reliably_worse = rc is not None and change <= -rc + EPS
        self.reliably_better = rc is not None and change >= rc - EPS


def _moved(sign: float, worse: bool) -> str:
    return "fell" if (sign > 0) == worse else "rose"


class Deterioration:
    """``outcome_reliable_deterioration``: the change from intake reaches the reliable change in the
    worse direction. The first reliably-worse session fires at ``first_severity`` ("not yet
    confirmed"), as the published systems (OQ, PCOMS) flag a single reliably-worse administration; the
    signal is raised to ``severity`` when ``consecutive`` sessions in a row confirm it, or at once when
    the change is ``immediate_multiple`` x RC. State: the run of reliably-worse sessions and two edges."""

    __slots__ = (
        "confirmed_edge",
        "consecutive",
        "first_edge",
        "first_severity",
        "immediate_multiple",
        "run",
        "severity",
    )
    TEMPLATE = (
        "{name} {moved} from {intake} at intake to {value} at session {session} ({delta}; reliable "
        "change {rc}): reliable deterioration{status} — {advice}{risk}"
    )
    CONFIRMED_ADVICE = "review the treatment plan with the client."
    FIRST_ADVICE = "check in with the client about what has changed."

    def __init__(self, rules: Rules) -> None:
        rule = rules.outcome_reliable_deterioration
        self.severity = rule.severity
        self.first_severity = rule.first_severity
        self.consecutive = rule.consecutive
        self.immediate_multiple = rule.immediate_multiple
        self.run = 0
        self.first_edge = Edge(rules.rearm_after)
        self.confirmed_edge = Edge(rules.rearm_after)

    def step(self, at: OutcomeCursor) -> Finding | None:
        """Reliable deterioration starting (or confirmed) at this session."""
        worse = at.reliably_worse
        self.run = self.run + 1 if worse else 0
        rc = at.rc
        big = rc is not None and at.change <= -self.immediate_multiple * rc + EPS
        confirmed = self.confirmed_edge.step(self.run >= self.consecutive or big)
        first = self.first_edge.step(worse)
        if rc is None or not at.emit:
            return None
        if confirmed:
            severity, status, advice = self.severity, "", self.CONFIRMED_ADVICE
        elif first and self.first_severity is not None:
            severity, status, advice = self.first_severity, ", not yet confirmed", self.FIRST_ADVICE
        else:
            return None
        intake = at.intake
        return at.finding(
            "outcome_reliable_deterioration",
            severity,
            (
                ("intake", intake.total),
                ("reliable_change", rc),
                ("consecutive", float(self.consecutive)),
                ("immediate_multiple", self.immediate_multiple),
                ("sessions_reliably_worse", float(self.run)),
            ),
            self.TEMPLATE,
            name=at.name,
            moved=_moved(at.p.sign, worse=True),
            intake=fmt(intake.total),
            value=fmt(at.v),
            session=at.s,
            delta=signed(at.v - intake.total),
            rc=fmt(rc),
            status=status,
            advice=advice,
            risk=risk_note(at.o),
        )


class Improvement:
    """``outcome_reliable_improvement``: the change from intake reaches the reliable change in the
    better direction (positive feedback; "recovered" when it also left the clinical range).
    State: an edge."""

    __slots__ = ("edge", "severity")
    TEMPLATE = (
        "{name} {moved} from {intake} at intake to {value} at session {session} ({delta}; reliable "
        "change {rc}): reliable improvement{recovered}."
    )
    RECOVERED = ", now outside the clinical range (cutoff {cutoff}): recovered"

    def __init__(self, rules: Rules) -> None:
        self.severity = rules.outcome_reliable_improvement.severity
        self.edge = Edge(rules.rearm_after)

    def step(self, at: OutcomeCursor) -> Finding | None:
        """Reliable improvement starting at this session."""
        rc = at.rc
        if not self.edge.step(at.reliably_better) or not at.emit or rc is None:
            return None
        p = at.p
        intake = at.intake
        cutoff = p.cutoff
        recovered = cutoff is not None and is_concern(intake.total, p) and not is_concern(at.v, p)
        return at.finding(
            "outcome_reliable_improvement",
            self.severity,
            (("intake", intake.total), ("reliable_change", rc))
            + ((("cutoff", cutoff),) if cutoff is not None else ()),
            self.TEMPLATE,
            name=at.name,
            moved=_moved(p.sign, worse=False),
            intake=fmt(intake.total),
            value=fmt(at.v),
            session=at.s,
            delta=signed(at.v - intake.total),
            rc=fmt(rc),
            recovered=self.RECOVERED.format(cutoff=fmt(cutoff))
            if recovered and cutoff is not None
            else "",
        )


class NotOnTrack:
    """``outcome_not_on_track``: ``consecutive`` sessions at or worse than a lower prediction bound
    under the expected recovery curve from intake, the bound never laxer than reliable deterioration
    (the RCI floor); not while the score is reliably worse than intake and the deterioration rule is
    on (deterioration, of higher severity, speaks then). State: the run of sessions off track and an
    edge."""

    __slots__ = (
        "bound_z",
        "consecutive",
        "deterioration_speaks",
        "edge",
        "min_session",
        "rate",
        "run",
        "severity",
    )
    TEMPLATE = (
        "{name} {value} at session {session} is {side} the bound {bound} expected from intake "
        "{intake} (expected {expected}): not on track — consider reviewing progress and the plan.{risk}"
    )

    def __init__(self, rules: Rules) -> None:
        rule = rules.outcome_not_on_track
        self.severity = rule.severity
        self.rate = rule.recovery_rate
        self.bound_z = rule.bound_z
        self.min_session = rule.min_session
        self.consecutive = rule.consecutive
        self.deterioration_speaks = rules.outcome_reliable_deterioration.enabled
        self.run = 0
        self.edge = Edge(rules.rearm_after)

    def step(self, at: OutcomeCursor) -> Finding | None:
        """Off track for ``consecutive`` sessions, starting at this one."""
        p = at.p
        resid = p.residual_sd
        intake = at.intake
        t = at.s - intake.session + 1
        if resid is None or t < self.min_session:
            self.run = 0
            self.edge.step(False)
            return None
        g0 = at.g0
        expected = g0 + self.rate * at.room * math.log(t)
        bound = expected - self.bound_z * resid
        rc = at.rc
        if rc is not None:
            # The RCI floor: whoever reliably deteriorated is never "on track".
            bound = max(bound, g0 - rc)
        self.run = self.run + 1 if at.g <= bound + EPS else 0
        behind = self.run >= self.consecutive and not (at.reliably_worse and self.deterioration_speaks)
        if not self.edge.step(behind) or not at.emit:
            return None
        sign = p.sign
        return at.finding(
            "outcome_not_on_track",
            self.severity,
            (
                ("intake", intake.total),
                ("expected", sign * expected),
                ("bound", sign * bound),
                ("residual_sd", resid),
                ("bound_z", self.bound_z),
                ("consecutive", float(self.consecutive)),
            ),
            self.TEMPLATE,
            name=at.name,
            value=fmt(at.v),
            session=at.s,
            side="at or below" if sign > 0 else "at or above",
            bound=fmt(sign * bound),
            intake=fmt(intake.total),
            expected=fmt(sign * expected),
            risk=risk_note(at.o),
        )


OutcomeUnit = Deterioration | Improvement | NotOnTrack


def walk(track: Track, p: ResolvedParams, rules: Rules, since: int, out: list[Finding]) -> dict[int, bool]:
    """Run the enabled outcome units (and the critical-item unit) over one outcome track.

    Returns, for the dropout rule, whether the client is "improving" at each session: at least
    ``improvement_fraction`` of the reliable change better than intake, or outside the clinical range.
    Empty when the instrument has neither a reliable change nor a cutoff (it cannot tell).
    """
    at = OutcomeCursor(track, p, since)
    critical = CriticalItem()
    found = critical.step(at)
    if found is not None:
        out.append(found)
    units: list[OutcomeUnit | CriticalItem] = [critical]
    if rules.outcome_reliable_deterioration.enabled:
        units.append(Deterioration(rules))
    if rules.outcome_reliable_improvement.enabled:
        units.append(Improvement(rules))
    if rules.outcome_not_on_track.enabled:
        units.append(NotOnTrack(rules))
    steps = [unit.step for unit in units]
    rc = p.reliable_change
    judged = rc is not None or p.cutoff is not None
    fraction = rules.dropout_risk.improvement_fraction
    progress: dict[int, bool] = {}
    if judged:
        progress[at.s] = p.cutoff is not None and not is_concern(at.v, p)
    for i in range(1, len(at.obs)):
        at.enter(i)
        if judged:
            progress[at.s] = (rc is not None and at.change >= fraction * rc - EPS) or (
                p.cutoff is not None and not is_concern(at.v, p)
            )
        for step in steps:
            found = step(at)
            if found is not None:
                out.append(found)
    return progress
