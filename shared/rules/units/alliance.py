"""The alliance rules: below cutoff, drop, repair and decline, over one alliance track.

What the units share is the track, not each other's state: :class:`AllianceCursor` carries the
session's concern level, the client's running baseline (mean and SD of the earlier sessions) and the
open drop — the rupture that ``alliance_drop`` opens and ``alliance_repaired`` closes. The driver
(:func:`walk`) steps the units in a fixed order per session: below cutoff, repair, drop, session
drop, decline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import pairwise

from shared.rules.config import ResolvedParams, Rules
from shared.rules.findings import (
    EPS,
    Cursor,
    Edge,
    Finding,
    comparator_text,
    concern_level,
    fmt,
    signed,
)
from shared.rules.trajectory import Observation, Track
from shared.rules.units.critical import CriticalItem


@dataclass(frozen=True, slots=True)
class OpenDrop:
    """A drop not yet repaired: where it happened and the baseline the repair is measured against."""

    session: int
    value: float
    baseline: float
    """Baseline mean, in goodness (sign x score)."""
    sd: float
    """The SD the drop was judged with."""


class AllianceCursor(Cursor):
    """A :class:`Cursor` plus what the alliance units share at a session."""

    __slots__ = ("drop_was_open", "dropped_now", "level", "m2", "mean", "open_drop")

    def __init__(self, track: Track, p: ResolvedParams, since: int) -> None:
        super().__init__(track, p, since)
        self.level = 0
        """0 outside the concerning range, 1 inside, 2 far beyond the cutoff."""
        self.mean = 0.0
        """Running mean of the earlier sessions' goodness (Welford)."""
        self.m2 = 0.0
        """Running sum of squared deviations of the earlier sessions (Welford)."""
        self.open_drop: OpenDrop | None = None
        self.drop_was_open = False
        """A drop was open when this session started (no new drop while one is open)."""
        self.dropped_now = False
        """A drop fired at this session (a decline does not fire on top of it)."""

    def enter(self, i: int) -> None:
        """Move to session ``i`` and compute what every unit reads there."""
        o = self.obs[i]
        self.i = i
        self.o = o
        self.s = s = o.session
        self.v = v = o.total
        self.g = self.goods[i]
        self.emit = s >= self.since
        self.level = concern_level(v, self.p)
        self.drop_was_open = self.open_drop is not None
        self.dropped_now = False

    def learn(self) -> None:
        """Take the current session into the running baseline, for the next session (Welford)."""
        g = self.g
        delta = g - self.mean
        self.mean += delta / (self.i + 1)
        self.m2 += delta * (g - self.mean)


class BelowCutoff:
    """``alliance_below_cutoff``: the score enters the concerning side of the cutoff (``severity``),
    and again if it goes ``far_margin`` beyond it (``far_severity``). State: two edges."""

    __slots__ = ("concern_edge", "far_edge", "far_severity", "severity")
    TEMPLATE = "{name} {value} at session {session} is {side} the cutoff {cutoff}{prev}; {advice}"
    NEAR_ADVICE = "consider asking what could be better about the sessions."
    FAR_ADVICE = "a low alliance; consider discussing the relationship and fit."

    def __init__(self, rules: Rules) -> None:
        rule = rules.alliance_below_cutoff
        self.severity = rule.severity
        self.far_severity = rule.far_severity
        self.concern_edge = Edge(rules.rearm_after)
        self.far_edge = Edge(rules.rearm_after)

    def step(self, at: AllianceCursor) -> Finding | None:
        """Edge into a worse level at this session."""
        level = at.level
        far = self.far_edge.step(level >= 2)
        entered = self.concern_edge.step(level >= 1)
        p = at.p
        if not (far or entered) or not at.emit or p.cutoff is None:
            return None
        i = at.i
        prev = f" (was {fmt(at.obs[i - 1].total)} at session {at.obs[i - 1].session})" if i else ""
        return at.finding(
            "alliance_below_cutoff",
            self.far_severity if far else self.severity,
            (("cutoff", p.cutoff), ("far_margin", p.far_margin)),
            self.TEMPLATE,
            name=at.name,
            value=fmt(at.v),
            session=at.s,
            side=comparator_text(p),
            cutoff=fmt(p.cutoff),
            prev=prev,
            advice=self.FAR_ADVICE if far else self.NEAR_ADVICE,
        )


class Repair:
    """``alliance_repaired``: after a drop, the first session back at or above the pre-drop baseline
    - ``margin_sd`` x SD (the V closes). State: the open drop, shared with :class:`Drop`."""

    __slots__ = ("enabled", "margin_sd", "severity")
    TEMPLATE = (
        "{name} back to {value} at session {session} after the drop to {drop_value} at session "
        "{drop_session} (baseline {baseline}); the rupture looks repaired — worth acknowledging with "
        "the client."
    )

    def __init__(self, rules: Rules) -> None:
        rule = rules.alliance_repaired
        self.enabled = rule.enabled
        """Disabled, it still closes the open drop (so a later drop can fire) but reports nothing."""
        self.severity = rule.severity
        self.margin_sd = rule.margin_sd

    def step(self, at: AllianceCursor) -> Finding | None:
        """Close the open drop when the score is back near its baseline."""
        drop = at.open_drop
        if drop is None:
            return None
        target = drop.baseline - self.margin_sd * drop.sd
        if at.g < target - EPS:
            return None
        at.open_drop = None
        if not self.enabled or not at.emit:
            return None
        sign = at.p.sign
        return at.finding(
            "alliance_repaired",
            self.severity,
            (
                ("baseline_mean", sign * drop.baseline),
                ("baseline_sd", drop.sd),
                ("repair_at", sign * target),
                ("drop_session", float(drop.session)),
            ),
            self.TEMPLATE,
            name=at.name,
            value=fmt(at.v),
            session=at.s,
            drop_value=fmt(drop.value),
            drop_session=drop.session,
            baseline=fmt(sign * drop.baseline),
        )


class Drop:
    """``alliance_drop``: the score is >= ``drop_from_last`` below the previous session AND at or
    below the running mean of the earlier sessions - k x SD, SD = max(the client's own SD, the
    between-client floor): the stricter of the two (Gumz et al. 2012). From ``min_baseline_sessions``
    earlier sessions the client's own SD counts; from ``early_baseline_sessions`` (2) the floor alone
    does, so an early rupture (39, 39, then 28) is caught. No new drop while one is open.
    State: the open drop it opens, shared with :class:`Repair`."""

    __slots__ = ("first", "k_sd", "min_baseline", "severity")
    TEMPLATE = (
        "{name} {moved} from {prev} to {value} ({delta}), {side} the client's {baseline_name} {baseline} "
        "{pm} {k} SD ({threshold}); a possible rupture — consider discussing the alliance."
    )

    def __init__(self, rules: Rules) -> None:
        rule = rules.alliance_drop
        self.severity = rule.severity
        self.k_sd = rule.k_sd
        self.min_baseline = rule.min_baseline_sessions
        early = rule.early_baseline_sessions
        self.first = self.min_baseline if early is None else min(early, self.min_baseline)
        """Fewest earlier sessions a drop is judged against."""

    def step(self, at: AllianceCursor) -> Finding | None:
        """A drop at this session, judged against the baseline of the sessions before it."""
        n = at.i  # earlier sessions in the running baseline
        if at.drop_was_open or n < self.first:
            return None
        p = at.p
        # The client's own SD only from a full baseline; before that the between-client floor alone.
        own_sd = math.sqrt(at.m2 / (n - 1)) if n >= 2 and n >= self.min_baseline else 0.0
        sd = max(own_sd, p.between_sd)
        mean = at.mean
        threshold = mean - self.k_sd * sd
        g = at.g
        if g > threshold + EPS or at.goods[n - 1] - g < p.drop_from_last - EPS:
            return None
        at.dropped_now = True
        at.open_drop = OpenDrop(at.s, at.v, mean, sd)
        if not at.emit:
            return None
        sign = p.sign
        prev = at.obs[n - 1]
        early = n < self.min_baseline
        return at.finding(
            "alliance_drop",
            self.severity,
            (
                ("baseline_mean", sign * mean),
                ("baseline_sessions", float(n)),
                ("own_sd", own_sd),
                ("between_sd", p.between_sd),
                ("k_sd", self.k_sd),
                ("threshold", sign * threshold),
                ("drop_from_last", p.drop_from_last),
            ),
            self.TEMPLATE,
            name=at.name,
            moved="fell" if sign > 0 else "rose",
            prev=fmt(prev.total),
            value=fmt(at.v),
            delta=signed(at.v - prev.total),
            side="below" if sign > 0 else "above",
            baseline_name=f"first {n} sessions' mean" if early else "own baseline",
            baseline=fmt(sign * mean),
            pm="-" if sign > 0 else "+",
            k=f"{self.k_sd:g}" + (" between-client" if early else ""),
            threshold=fmt(sign * threshold),
        )


class SessionDrop:
    """``alliance_session_drop`` (off by default): the score is at least ``min_fall`` below the previous
    session — PCOMS software marks any such drop red (Duncan et al. 2003; OpenFIT). Every such session
    fires (no edge): it is a prompt for the next conversation, not an alarm. State: none."""

    __slots__ = ("min_fall", "severity")
    TEMPLATE = (
        "{name} {moved} from {prev} at session {prev_session} to {value} at session {session} ({delta}): "
        "ask about the drop — what did not work in this session?"
    )

    def __init__(self, rules: Rules) -> None:
        rule = rules.alliance_session_drop
        self.severity = rule.severity
        self.min_fall = rule.min_fall

    def step(self, at: AllianceCursor) -> Finding | None:
        """A fall of at least ``min_fall`` from the previous session."""
        i = at.i
        if not i or not at.emit or at.goods[i - 1] - at.g < self.min_fall - EPS:
            return None
        prev = at.obs[i - 1]
        return at.finding(
            "alliance_session_drop",
            self.severity,
            (("previous", prev.total), ("min_fall", self.min_fall)),
            self.TEMPLATE,
            name=at.name,
            moved="fell" if at.p.sign > 0 else "rose",
            prev=fmt(prev.total),
            prev_session=prev.session,
            value=fmt(at.v),
            session=at.s,
            delta=signed(at.v - prev.total),
        )


class Decline:
    """``alliance_decline``: OLS over the last ``window`` sessions falls by >= ``decline_points``, most
    steps go down and no single step carries most of the fall; not at a session where a drop fires.
    State: an edge."""

    __slots__ = ("edge", "max_step_share", "min_steps", "severity", "window")
    TEMPLATE = (
        "{name} {moved} over sessions {first} to {session} ({first_value} → {value}, trend {slope} per "
        "session); consider checking in about the alliance."
    )

    def __init__(self, rules: Rules) -> None:
        rule = rules.alliance_decline
        self.severity = rule.severity
        self.window = rule.window
        self.min_steps = rule.min_declining_steps or (rule.window - 2)
        self.max_step_share = rule.max_step_share
        self.edge = Edge(rules.rearm_after)

    def step(self, at: AllianceCursor) -> Finding | None:
        """A sustained decline over the window ending at this session."""
        trend = self._trend(at) if at.i >= self.window - 1 else None
        if not self.edge.step(trend is not None) or trend is None or at.dropped_now or not at.emit:
            return None
        slope, fitted, first = trend
        p = at.p
        sign = p.sign
        return at.finding(
            "alliance_decline",
            self.severity,
            (
                ("slope_per_session", sign * slope),
                ("fitted_change", sign * fitted),
                ("decline_points", p.decline_points),
                ("window", float(self.window)),
            ),
            self.TEMPLATE,
            name=at.name,
            moved="declined" if sign > 0 else "worsened",
            first=first.session,
            session=at.s,
            first_value=fmt(first.total),
            value=fmt(at.v),
            slope=signed(sign * slope),
        )

    def _trend(self, at: AllianceCursor) -> tuple[float, float, Observation] | None:
        """(slope, fitted change, first observation) of the window when it is declining, else None."""
        i, w = at.i, self.window
        ys = at.goods[i - w + 1 : i + 1]
        steps = [a - b for a, b in pairwise(ys)]
        # Cheapest tests first: most windows do not go down step after step, and then the trend (the
        # costly part) is not needed.
        if sum(1 for d in steps if d > EPS) < self.min_steps:
            return None
        if max(steps) > self.max_step_share * (ys[0] - ys[-1]) + EPS:
            return None
        win = at.obs[i - w + 1 : i + 1]
        xs = [float(x.session) for x in win]
        slope = ols_slope(xs, ys)
        fitted = slope * (xs[-1] - xs[0])
        if fitted > -at.p.decline_points + EPS:
            return None
        return slope, fitted, win[0]


def ols_slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ``ys`` over ``xs`` (0 when every x is the same)."""
    n = len(xs)
    mx = sum(xs) / n
    my = sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return 0.0
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx


AllianceUnit = BelowCutoff | Repair | Drop | SessionDrop | Decline


def walk(
    track: Track,
    p: ResolvedParams,
    rules: Rules,
    since: int,
    out: list[Finding],
) -> dict[int, bool]:
    """Run the enabled alliance units (and the critical-item unit) over one alliance track.

    Returns, for the dropout rule, whether the alliance is a concern at each session (below the
    cutoff, or a drop not yet repaired).
    """
    at = AllianceCursor(track, p, since)
    units: list[AllianceUnit | CriticalItem] = [CriticalItem()]
    if rules.alliance_below_cutoff.enabled:
        units.append(BelowCutoff(rules))
    if rules.alliance_drop.enabled:
        # Repair before drop: a session that closes a drop cannot open the next one.
        units.extend((Repair(rules), Drop(rules)))
    if rules.alliance_session_drop.enabled:
        units.append(SessionDrop(rules))
    if rules.alliance_decline.enabled:
        units.append(Decline(rules))
    steps = [unit.step for unit in units]
    concern: dict[int, bool] = {}
    for i in range(len(at.obs)):
        at.enter(i)
        for step in steps:
            found = step(at)
            if found is not None:
                out.append(found)
        concern[at.s] = at.level > 0 or at.open_drop is not None
        at.learn()
    return concern
