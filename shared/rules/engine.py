"""The rules: pure functions from one episode's trajectories and a rule set to findings.

One pass per instrument track, in session order, carries each rule's small state machine, so the
whole episode is evaluated in O(sessions). The live monitor and the offline backtest both call
:func:`evaluate_episode`; the live path keeps findings at or after the session that just arrived and
turns the new ones into ``Signal`` events, the backtest counts them.

Firing policy — low noise first. A rule fires when its condition *starts* to hold at a session (an
edge), not at every session where it keeps holding, and re-arms only after the condition was false
``rules.rearm_after`` sessions in a row (default 2), so a score hovering at a threshold fires once:

* ``critical_item``: every session with an endorsed critical item (severity critical, never suppressed,
  no edge);
* ``alliance_below_cutoff``: when the score enters the concerning side of the cutoff (``severity``),
  and again if it goes ``far_margin`` beyond it (``far_severity``);
* ``alliance_drop``: the score is >= ``drop_from_last`` below the previous session AND at or below the
  running mean of the earlier sessions - k x SD, SD = max(the client's own SD, the between-client
  floor): the stricter of the two (Gumz et al. 2012). No new drop while one is open (unrepaired);
* ``alliance_repaired``: after a drop, the first session back at or above pre-drop baseline - margin x SD;
* ``alliance_decline``: OLS over the last ``window`` sessions falls by >= ``decline_points``, most steps
  go down and no single step carries most of the fall; not at a session where a drop fires;
* ``outcome_reliable_deterioration`` / ``outcome_reliable_improvement``: change from intake (the
  episode's first score of the instrument) reaches the reliable change in the worse / better
  direction; deterioration must hold ``consecutive`` sessions unless it is ``immediate_multiple`` x RC;
* ``outcome_not_on_track``: ``consecutive`` sessions at or worse than a lower prediction bound under
  the expected recovery curve from intake, the bound never laxer than reliable deterioration (the RCI
  floor); not while the score is reliably worse than intake (deterioration, of higher severity,
  speaks then);
* ``dropout_risk``: judged at sessions with both an alliance and an outcome score: an alliance concern
  (below cutoff, or a drop not yet repaired) ``concern_sessions`` in a row while no outcome is
  improving (``improvement_fraction`` x RC better than intake, or out of its clinical range) after
  ``min_outcome_sessions`` outcome sessions.

Every threshold is inclusive ("a change of at least the reliable change"), with a 1e-9 tolerance so
decimal totals that are not exact in binary land on the side they are written on.

Rules look only at sessions up to the one they judge, so a later arrival never changes a finding at an
earlier session; a late arrival can change findings at later ones (see ``shared.rules.live``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import pairwise

from shared.contracts.events import Severity, SignalKind
from shared.rules.config import ResolvedParams, Rules, RuleSet
from shared.rules.trajectory import Observation, Track

EPS = 1e-9
SERIES_POINTS = 12
"""Evidence series are capped at the intake plus the latest points, to keep signals small."""

#: kind → (rule id, rule version). Bump a version whenever a rule's logic changes meaning; the rule
#: set's own version covers parameter changes.
RULES: dict[SignalKind, tuple[str, str]] = {
    "critical_item": ("critical_item.endorsed", "1"),
    "alliance_below_cutoff": ("alliance.below_cutoff", "1"),
    "alliance_drop": ("alliance.drop_vs_baseline", "1"),
    "alliance_repaired": ("alliance.repair_v", "1"),
    "alliance_decline": ("alliance.decline_ols", "1"),
    "outcome_reliable_deterioration": ("outcome.rci_deterioration", "1"),
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


def evaluate_episode(tracks: Mapping[str, Track], ruleset: RuleSet, since: int = 1) -> list[Finding]:
    """Every finding of one episode at sessions ≥ ``since``, in (session, instrument, kind) order.

    Earlier sessions are still walked (the rules' state depends on them) but yield nothing.
    """
    rules = ruleset.rules
    findings: list[Finding] = []
    concern: dict[str, dict[int, bool]] = {}
    progress: dict[str, dict[int, bool]] = {}
    for name in sorted(tracks):
        track = tracks[name]
        if not track.observations:
            continue
        params = ruleset.params_for(name, track.scale)
        _critical(track, since, findings)
        if track.domain == "alliance":
            concern[name] = _alliance(track, params, rules, since, findings)
        else:
            progress[name] = _outcome(track, params, rules, since, findings)
    if rules.dropout_risk.enabled and concern and progress:
        for name in sorted(concern):
            _dropout(tracks, name, concern[name], progress, rules, since, findings)
    findings.sort(key=lambda f: (f.session, f.instrument, f.kind))
    return findings


# --------------------------------------------------------------------------- helpers


class _Edge:
    """Fires when a condition starts to hold; re-arms after it was false ``rearm`` sessions in a row."""

    __slots__ = ("quiet", "rearm")

    def __init__(self, rearm: int) -> None:
        self.rearm = rearm
        self.quiet = rearm

    def step(self, cond: bool) -> bool:
        fire = cond and self.quiet >= self.rearm
        self.quiet = 0 if cond else self.quiet + 1
        return fire


def _fmt(x: float) -> str:
    return f"{x:.1f}"


def _signed(x: float) -> str:
    return f"{x:+.1f}"


def _series(obs: tuple[Observation, ...], upto: int) -> tuple[tuple[int, float], ...]:
    """The intake and the latest points up to index ``upto`` (inclusive)."""
    end = upto + 1
    if end <= SERIES_POINTS:
        return tuple((o.session, o.total) for o in obs[:end])
    head = obs[:1]
    tail = obs[end - SERIES_POINTS + 1 : end]
    return tuple((o.session, o.total) for o in head + tail)


def _risk_note(o: Observation) -> str:
    if not o.risk_unknown:
        return ""
    items = ", ".join(o.risk_unknown)
    return f" Risk item {items} unanswered: risk unknown."


def unscored_critical_finding(
    instrument: str, session: int, items: tuple[str, ...], reason: str
) -> Finding:
    """The ``critical_item`` finding of a survey whose total could not be scored (``reason``) but
    whose risk items were endorsed: same kind, severity and id inputs as a scored one."""
    return Finding(
        kind="critical_item",
        severity="critical",
        instrument=instrument,
        session=session,
        series=(),
        thresholds=(),
        items=items,
        explanation=(
            f"{instrument} risk {_items_text(items)} endorsed at session {session} (total not "
            f"scorable: {reason.replace('_', ' ')}): follow the clinic's risk protocol now."
        ),
    )


def _items_text(items: tuple[str, ...]) -> str:
    if len(items) == 1:
        return f"item {items[0]}"
    return "items " + ", ".join(items[:-1]) + f" and {items[-1]}"


def _is_concern(v: float, p: ResolvedParams) -> bool:
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


def _concern_level(v: float, p: ResolvedParams) -> int:
    """0 outside the concerning range, 1 inside, 2 at least ``far_margin`` beyond the cutoff."""
    if p.cutoff is None or not _is_concern(v, p):
        return 0
    beyond = (p.cutoff - v) if p.concern_when in ("below", "at_or_below") else (v - p.cutoff)
    return 2 if beyond >= p.far_margin - EPS else 1


def _comparator_text(p: ResolvedParams) -> str:
    return {
        "below": "below",
        "at_or_below": "at or below",
        "at_or_above": "at or above",
        "above": "above",
    }.get(p.concern_when or "", "beyond")


def _ols_slope(xs: list[float], ys: list[float]) -> float:
    n = len(xs)
    mx = sum(xs) / n
    my = sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return 0.0
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx


# --------------------------------------------------------------------------- rules


def _critical(track: Track, since: int, out: list[Finding]) -> None:
    for i, o in enumerate(track.observations):
        if o.critical_items and o.session >= since:
            out.append(
                Finding(
                    kind="critical_item",
                    severity="critical",
                    instrument=track.instrument,
                    session=o.session,
                    series=_series(track.observations, i),
                    thresholds=(),
                    items=o.critical_items,
                    explanation=(
                        f"{track.instrument} risk {_items_text(o.critical_items)} endorsed at session "
                        f"{o.session} (total {_fmt(o.total)}): follow the clinic's risk protocol now."
                    ),
                )
            )


def _alliance(
    track: Track, p: ResolvedParams, rules: Rules, since: int, out: list[Finding]
) -> dict[int, bool]:
    """Below-cutoff, drop, repair and decline over one alliance track; returns concern by session."""
    obs = track.observations
    name = track.instrument
    below, drop, repair, decline = (
        rules.alliance_below_cutoff,
        rules.alliance_drop,
        rules.alliance_repaired,
        rules.alliance_decline,
    )
    min_steps = decline.min_declining_steps or (decline.window - 2)
    worse_word = "below" if p.sign > 0 else "above"
    fell_word = "fell" if p.sign > 0 else "rose"
    concern: dict[int, bool] = {}
    goods = [p.sign * o.total for o in obs]
    rearm = rules.rearm_after
    concern_edge, far_edge, decline_edge = _Edge(rearm), _Edge(rearm), _Edge(rearm)
    # The open drop: (session, value, baseline goodness, SD used) — repair is measured against it.
    open_drop: tuple[int, float, float, float] | None = None
    mean = 0.0
    m2 = 0.0
    for i, o in enumerate(obs):
        n = i  # earlier sessions in the running baseline
        s, v, g = o.session, o.total, goods[i]
        emit = s >= since
        # --- below cutoff (edge into a worse level)
        level = _concern_level(v, p)
        far = far_edge.step(level >= 2)
        entered = concern_edge.step(level >= 1)
        if below.enabled and (far or entered) and emit and p.cutoff is not None:
            prev_text = f" (was {_fmt(obs[i - 1].total)} at session {obs[i - 1].session})" if i else ""
            advice = (
                "a low alliance; consider discussing the relationship and fit."
                if far
                else "consider asking what could be better about the sessions."
            )
            out.append(
                Finding(
                    kind="alliance_below_cutoff",
                    severity=below.far_severity if far else below.severity,
                    instrument=name,
                    session=s,
                    series=_series(obs, i),
                    thresholds=(("cutoff", p.cutoff), ("far_margin", p.far_margin)),
                    items=(),
                    explanation=(
                        f"{name} {_fmt(v)} at session {s} is {_comparator_text(p)} the cutoff "
                        f"{_fmt(p.cutoff)}{prev_text}; {advice}"
                    ),
                )
            )
        # --- drop vs last session and vs own baseline; repair of an open drop
        dropped_now = False
        if open_drop is not None:
            d_session, d_value, d_base, d_sd = open_drop
            target = d_base - repair.margin_sd * d_sd
            if g >= target - EPS:
                open_drop = None
                if repair.enabled and emit:
                    out.append(
                        Finding(
                            kind="alliance_repaired",
                            severity=repair.severity,
                            instrument=name,
                            session=s,
                            series=_series(obs, i),
                            thresholds=(
                                ("baseline_mean", p.sign * d_base),
                                ("baseline_sd", d_sd),
                                ("repair_at", p.sign * target),
                                ("drop_session", float(d_session)),
                            ),
                            items=(),
                            explanation=(
                                f"{name} back to {_fmt(v)} at session {s} after the drop to {_fmt(d_value)}"
                                f" at session {d_session} (baseline {_fmt(p.sign * d_base)}); the rupture "
                                "looks repaired — worth acknowledging with the client."
                            ),
                        )
                    )
        elif drop.enabled and n >= drop.min_baseline_sessions:
            own_sd = math.sqrt(m2 / (n - 1)) if n >= 2 else 0.0
            sd = max(own_sd, p.between_sd)
            threshold = mean - drop.k_sd * sd
            fall = goods[i - 1] - g
            if g <= threshold + EPS and fall >= p.drop_from_last - EPS:
                dropped_now = True
                open_drop = (s, v, mean, sd)
                if emit:
                    prev = obs[i - 1]
                    out.append(
                        Finding(
                            kind="alliance_drop",
                            severity=drop.severity,
                            instrument=name,
                            session=s,
                            series=_series(obs, i),
                            thresholds=(
                                ("baseline_mean", p.sign * mean),
                                ("own_sd", own_sd),
                                ("between_sd", p.between_sd),
                                ("k_sd", drop.k_sd),
                                ("threshold", p.sign * threshold),
                                ("drop_from_last", p.drop_from_last),
                            ),
                            items=(),
                            explanation=(
                                f"{name} {fell_word} from {_fmt(prev.total)} to {_fmt(v)} "
                                f"({_signed(v - prev.total)}), {worse_word} the client's own baseline "
                                f"{_fmt(p.sign * mean)} {'-' if p.sign > 0 else '+'} {drop.k_sd:g} SD "
                                f"({_fmt(p.sign * threshold)}); a possible rupture — consider discussing "
                                "the alliance."
                            ),
                        )
                    )
        # --- sustained decline over the window
        w = decline.window
        if decline.enabled and i >= w - 1:
            win = obs[i - w + 1 : i + 1]
            ys = goods[i - w + 1 : i + 1]
            xs = [float(x.session) for x in win]
            slope = _ols_slope(xs, ys)
            fitted = slope * (xs[-1] - xs[0])
            steps = [a - b for a, b in pairwise(ys)]
            steps_down = sum(1 for d in steps if d > EPS)
            total_fall = ys[0] - ys[-1]
            declining = (
                fitted <= -p.decline_points + EPS
                and steps_down >= min_steps
                and max(steps) <= decline.max_step_share * total_fall + EPS
            )
            if decline_edge.step(declining) and not dropped_now and emit:
                out.append(
                    Finding(
                        kind="alliance_decline",
                        severity=decline.severity,
                        instrument=name,
                        session=s,
                        series=_series(obs, i),
                        thresholds=(
                            ("slope_per_session", p.sign * slope),
                            ("fitted_change", p.sign * fitted),
                            ("decline_points", p.decline_points),
                            ("window", float(w)),
                        ),
                        items=(),
                        explanation=(
                            f"{name} {'declined' if p.sign > 0 else 'worsened'} over sessions "
                            f"{win[0].session} to {s} ({_fmt(win[0].total)} → {_fmt(v)}, trend "
                            f"{_signed(p.sign * slope)} per session); consider checking in about the "
                            "alliance."
                        ),
                    )
                )
        else:
            decline_edge.step(False)
        concern[s] = level > 0 or open_drop is not None
        # Welford: running mean and SD of the earlier sessions, for the next session's baseline.
        delta = g - mean
        mean += delta / (i + 1)
        m2 += delta * (g - mean)
    return concern


def _outcome(
    track: Track, p: ResolvedParams, rules: Rules, since: int, out: list[Finding]
) -> dict[int, bool]:
    """Reliable deterioration/improvement and not-on-track.

    Returns, for the dropout rule, whether the client is "improving" at each session: at least
    ``improvement_fraction`` of the reliable change better than intake, or outside the clinical range.
    Empty when the instrument has neither a reliable change nor a cutoff (it cannot tell).
    """
    obs = track.observations
    name = track.instrument
    det_rule, imp_rule, not_rule = (
        rules.outcome_reliable_deterioration,
        rules.outcome_reliable_improvement,
        rules.outcome_not_on_track,
    )
    rc = p.reliable_change
    resid = p.residual_sd
    intake = obs[0]
    g0 = p.sign * intake.total
    best_g = p.sign * p.best
    room = max(best_g - g0, 0.0)
    fraction = rules.dropout_risk.improvement_fraction
    judged = rc is not None or p.cutoff is not None
    progress: dict[int, bool] = {}
    if judged:
        progress[intake.session] = p.cutoff is not None and not _is_concern(intake.total, p)
    rearm = rules.rearm_after
    det_run = 0
    det_edge, imp_edge, off_edge = _Edge(rearm), _Edge(rearm), _Edge(rearm)
    off_run = 0
    for i in range(1, len(obs)):
        o = obs[i]
        s, v = o.session, o.total
        g = p.sign * v
        emit = s >= since
        change = g - g0
        det = rc is not None and change <= -rc + EPS
        imp = rc is not None and change >= rc - EPS
        if judged:
            progress[s] = (rc is not None and change >= fraction * rc - EPS) or (
                p.cutoff is not None and not _is_concern(v, p)
            )
        det_run = det_run + 1 if det else 0
        big = rc is not None and change <= -det_rule.immediate_multiple * rc + EPS
        confirmed = det_run >= det_rule.consecutive or big
        if det_edge.step(confirmed) and det_rule.enabled and emit and rc is not None:
            out.append(
                Finding(
                    kind="outcome_reliable_deterioration",
                    severity=det_rule.severity,
                    instrument=name,
                    session=s,
                    series=_series(obs, i),
                    thresholds=(
                        ("intake", intake.total),
                        ("reliable_change", rc),
                        ("consecutive", float(det_rule.consecutive)),
                        ("immediate_multiple", det_rule.immediate_multiple),
                    ),
                    items=(),
                    explanation=(
                        f"{name} {'fell' if p.sign > 0 else 'rose'} from {_fmt(intake.total)} at intake to "
                        f"{_fmt(v)} at session {s} ({_signed(v - intake.total)}; reliable change "
                        f"{_fmt(rc)}): reliable deterioration — review the treatment plan with the client."
                        + _risk_note(o)
                    ),
                )
            )
        if imp_edge.step(imp) and imp_rule.enabled and emit and rc is not None:
            recovered = p.cutoff is not None and _is_concern(intake.total, p) and not _is_concern(v, p)
            tail = (
                f", now outside the clinical range (cutoff {_fmt(p.cutoff)}): recovered"
                if recovered and p.cutoff is not None
                else ""
            )
            out.append(
                Finding(
                    kind="outcome_reliable_improvement",
                    severity=imp_rule.severity,
                    instrument=name,
                    session=s,
                    series=_series(obs, i),
                    thresholds=(("intake", intake.total), ("reliable_change", rc))
                    + ((("cutoff", p.cutoff),) if p.cutoff is not None else ()),
                    items=(),
                    explanation=(
                        f"{name} {'rose' if p.sign > 0 else 'fell'} from {_fmt(intake.total)} at intake to "
                        f"{_fmt(v)} at session {s} ({_signed(v - intake.total)}; reliable change "
                        f"{_fmt(rc)}): reliable improvement{tail}."
                    ),
                )
            )
        t = s - intake.session + 1
        if not (not_rule.enabled and resid is not None and t >= not_rule.min_session):
            off_run = 0
            off_edge.step(False)
            continue
        expected = g0 + not_rule.recovery_rate * room * math.log(t)
        bound = expected - not_rule.bound_z * resid
        if rc is not None:
            # The RCI floor: whoever reliably deteriorated is never "on track".
            bound = max(bound, g0 - rc)
        off_run = off_run + 1 if g <= bound + EPS else 0
        # While the client is reliably worse than intake the (higher) deterioration signal speaks;
        # not-on-track is for falling behind short of that.
        behind = off_run >= not_rule.consecutive and not (det and det_rule.enabled)
        if off_edge.step(behind) and emit:
            out.append(
                Finding(
                    kind="outcome_not_on_track",
                    severity=not_rule.severity,
                    instrument=name,
                    session=s,
                    series=_series(obs, i),
                    thresholds=(
                        ("intake", intake.total),
                        ("expected", p.sign * expected),
                        ("bound", p.sign * bound),
                        ("residual_sd", resid),
                        ("bound_z", not_rule.bound_z),
                        ("consecutive", float(not_rule.consecutive)),
                    ),
                    items=(),
                    explanation=(
                        f"{name} {_fmt(v)} at session {s} is {'at or below' if p.sign > 0 else 'at or above'}"
                        f" the bound {_fmt(p.sign * bound)} expected from intake {_fmt(intake.total)} "
                        f"(expected {_fmt(p.sign * expected)}): not on track — consider reviewing "
                        "progress and the plan." + _risk_note(o)
                    ),
                )
            )
    return progress


def _dropout(
    tracks: Mapping[str, Track],
    alliance_name: str,
    concern: dict[int, bool],
    progress: dict[str, dict[int, bool]],
    rules: Rules,
    since: int,
    out: list[Finding],
) -> None:
    rule = rules.dropout_risk
    alliance = tracks[alliance_name]
    # Only outcomes with a reliable change or a cutoff can say whether the client is improving.
    outcomes = [tracks[n] for n in sorted(progress) if progress[n]]
    if not outcomes:
        return
    edge = _Edge(rules.rearm_after)
    concern_run = 0
    # Per outcome track: how many of its observations are at or before the current session.
    seen = [0] * len(outcomes)
    for i, o in enumerate(alliance.observations):
        s = o.session
        concern_run = concern_run + 1 if concern.get(s, False) else 0
        for k, t in enumerate(outcomes):
            while seen[k] < len(t.observations) and t.observations[seen[k]].session <= s:
                seen[k] += 1
        # Judged only where both domains were measured, so the answer cannot depend on which of a
        # session's surveys arrived first.
        at_s = [k for k, t in enumerate(outcomes) if seen[k] and t.observations[seen[k] - 1].session == s]
        if not at_s:
            continue
        enough = max(seen) >= rule.min_outcome_sessions
        improving = any(
            progress[t.instrument][t.observations[seen[k] - 1].session]
            for k, t in enumerate(outcomes)
            if seen[k]
        )
        cond = concern_run >= rule.concern_sessions and enough and not improving
        if edge.step(cond) and s >= since:
            k = at_s[0]
            ref = outcomes[k]
            first, now = ref.observations[0], ref.observations[seen[k] - 1]
            out.append(
                Finding(
                    kind="dropout_risk",
                    severity=rule.severity,
                    instrument=alliance_name,
                    session=s,
                    series=_series(alliance.observations, i),
                    thresholds=(
                        ("outcome_intake", first.total),
                        ("outcome_now", now.total),
                        ("outcome_sessions", float(seen[k])),
                        ("min_outcome_sessions", float(rule.min_outcome_sessions)),
                        ("improvement_fraction", rule.improvement_fraction),
                    ),
                    items=(),
                    explanation=(
                        f"{alliance_name} {_fmt(o.total)} at session {s}: an alliance concern "
                        f"{rule.concern_sessions} sessions running, and {ref.instrument} has not improved "
                        f"after {seen[k]} sessions ({_fmt(first.total)} → {_fmt(now.total)}): dropout "
                        "risk — consider reviewing goals and fit together."
                    ),
                )
            )
