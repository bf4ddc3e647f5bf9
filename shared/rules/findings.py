"""What the rules produce and the pieces every rule shares: :class:`Finding`, the rule ids, the edge
trigger, number formatting and the one finding builder (:meth:`Cursor.finding`).

A rule unit (``shared.rules.units``) keeps its own state and has a ``step(at)`` called once per session
of a track with a :class:`Cursor` on that session; it returns a :class:`Finding` when it fires at a
session that is reported, else ``None``. Its explanation is a ``str.format`` template (the unit's
``template``) filled by the builder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.contracts.events import Severity, SignalKind
from shared.rules.config import ResolvedParams
from shared.rules.trajectory import Observation, Track

EPS = 1e-9
"""Every threshold is inclusive, with this tolerance (decimal totals are not exact in binary)."""
SERIES_POINTS = 12
"""Evidence series are capped at the intake plus the latest points, to keep signals small."""

#: kind → (rule id, rule version). Bump a version whenever a rule's logic changes meaning; the rule
#: set's own version covers parameter changes.
RULES: dict[SignalKind, tuple[str, str]] = {
    "critical_item": ("critical_item.endorsed", "1"),
    "alliance_below_cutoff": ("alliance.below_cutoff", "1"),
    "alliance_drop": ("alliance.drop_vs_baseline", "2"),
    "alliance_session_drop": ("alliance.drop_from_last", "1"),
    "alliance_repaired": ("alliance.repair_v", "1"),
    "alliance_decline": ("alliance.decline_ols", "1"),
    "outcome_reliable_deterioration": ("outcome.rci_deterioration", "2"),
    "outcome_reliable_improvement": ("outcome.rci_improvement", "1"),
    "outcome_not_on_track": ("outcome.expected_trajectory", "1"),
    "dropout_risk": ("combined.dropout_risk", "1"),
}


@dataclass(frozen=True, slots=True)
class Finding:
    """A rule fired at one session of one instrument. Plain data; ``live`` wraps it in a ``Signal``."""

    kind: SignalKind
    severity: Severity
    instrument: str
    session: int
    series: tuple[tuple[int, float], ...]
    thresholds: tuple[tuple[str, float], ...]
    items: tuple[str, ...]
    explanation: str

    @property
    def rule_id(self) -> str:
        """Id of the rule that fired."""
        return RULES[self.kind][0]

    @property
    def rule_version(self) -> str:
        """Version of the rule's logic."""
        return RULES[self.kind][1]


class Edge:
    """Fires when a condition starts to hold; re-arms after it was false ``rearm`` sessions in a row."""

    __slots__ = ("quiet", "rearm")

    def __init__(self, rearm: int) -> None:
        self.rearm = rearm
        self.quiet = rearm

    def step(self, cond: bool) -> bool:
        """Feed this session's condition; True when the rule fires now."""
        fire = cond and self.quiet >= self.rearm
        self.quiet = 0 if cond else self.quiet + 1
        return fire


class Cursor:
    """One track walked session by session: what every rule unit of the track reads at a session.

    Plain mutable slots, advanced in place by the track's driver (one object per track, not per
    session). ``g`` is the score's "goodness" (``sign x total``, higher is better).
    """

    __slots__ = ("emit", "g", "goods", "i", "name", "o", "obs", "p", "s", "since", "v")

    def __init__(self, track: Track, p: ResolvedParams, since: int) -> None:
        self.obs = track.observations
        self.name = track.instrument
        self.p = p
        self.since = since
        sign = p.sign
        self.goods = [sign * o.total for o in self.obs]
        self.i = 0
        self.o = self.obs[0]
        self.s = self.o.session
        self.v = self.o.total
        self.g = self.goods[0]
        self.emit = self.s >= since

    def advance(self, i: int) -> None:
        """Move to the ``i``-th observation of the track."""
        o = self.obs[i]
        self.i = i
        self.o = o
        self.s = s = o.session
        self.v = o.total
        self.g = self.goods[i]
        self.emit = s >= self.since

    def finding(
        self,
        kind: SignalKind,
        severity: Severity,
        thresholds: tuple[tuple[str, float], ...],
        template: str,
        items: tuple[str, ...] = (),
        **fields: Any,
    ) -> Finding:
        """The one finding builder: a ``kind`` finding at the current session, its evidence series
        cut by :func:`series`, its explanation ``template`` filled with ``fields``."""
        return Finding(
            kind=kind,
            severity=severity,
            instrument=self.name,
            session=self.s,
            series=series(self.obs, self.i),
            thresholds=thresholds,
            items=items,
            explanation=template.format(**fields),
        )


def fmt(x: float) -> str:
    """A score or threshold as the explanations print it: one decimal."""
    return f"{x:.1f}"


def signed(x: float) -> str:
    """A change with its sign, one decimal."""
    return f"{x:+.1f}"


def series(obs: tuple[Observation, ...], upto: int) -> tuple[tuple[int, float], ...]:
    """The intake and the latest points up to index ``upto`` (inclusive)."""
    end = upto + 1
    if end <= SERIES_POINTS:
        return tuple((o.session, o.total) for o in obs[:end])
    head = obs[:1]
    tail = obs[end - SERIES_POINTS + 1 : end]
    return tuple((o.session, o.total) for o in head + tail)


def risk_note(o: Observation) -> str:
    """The sentence an outcome explanation ends with when a risk item was left unanswered."""
    if not o.risk_unknown:
        return ""
    items = ", ".join(o.risk_unknown)
    return f" Risk item {items} unanswered: risk unknown."


def items_text(items: tuple[str, ...]) -> str:
    """``item 9`` / ``items 9 and 10`` / ``items 1, 2 and 3``."""
    if len(items) == 1:
        return f"item {items[0]}"
    return "items " + ", ".join(items[:-1]) + f" and {items[-1]}"


def is_concern(v: float, p: ResolvedParams) -> bool:
    """True when ``v`` is on the concerning side of the instrument's cutoff (False without one)."""
    c = p.cutoff
    if c is None:
        return False
    w = p.concern_when
    if w == "below":
        return v < c - EPS
    if w == "at_or_below":
        return v <= c + EPS
    if w == "at_or_above":
        return v >= c - EPS
    return v > c + EPS


def concern_level(v: float, p: ResolvedParams) -> int:
    """0 outside the concerning range, 1 inside, 2 at least ``far_margin`` beyond the cutoff."""
    if p.cutoff is None or not is_concern(v, p):
        return 0
    beyond = (p.cutoff - v) if p.concern_when in ("below", "at_or_below") else (v - p.cutoff)
    return 2 if beyond >= p.far_margin - EPS else 1


def comparator_text(p: ResolvedParams) -> str:
    """How explanations name the concerning side of the cutoff."""
    return {
        "below": "below",
        "at_or_below": "at or below",
        "at_or_above": "at or above",
        "above": "above",
    }.get(p.concern_when or "", "beyond")
