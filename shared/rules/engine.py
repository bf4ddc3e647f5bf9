"""The rules: pure functions from one episode's trajectories and a rule set to findings.

One pass per instrument track, in session order, steps each rule's unit (``shared.rules.units``: its
own small state machine, a ``step()`` per session, an explanation template, findings built by the one
shared builder of ``shared.rules.findings``), so the whole episode is evaluated in O(sessions). The
live monitor and the offline backtest both call :func:`evaluate_episode`; the live path keeps findings
at or after the session that just arrived and turns the new ones into ``Signal`` events, the backtest
counts them.

Firing policy — low noise first. A rule fires when its condition *starts* to hold at a session (an
edge), not at every session where it keeps holding, and re-arms only after the condition was false
``rules.rearm_after`` sessions in a row (default 2), so a score hovering at a threshold fires once:

* ``critical_item``: every session with an endorsed critical item (severity critical, never suppressed,
  no edge);
* ``alliance_below_cutoff``: when the score enters the concerning side of the cutoff (``severity``),
  and again if it goes ``far_margin`` beyond it (``far_severity``);
* ``alliance_drop``: the score is >= ``drop_from_last`` below the previous session AND at or below the
  running mean of the earlier sessions - k x SD, SD = max(the client's own SD, the between-client
  floor): the stricter of the two (Gumz et al. 2012); from ``early_baseline_sessions`` (2) to
  ``min_baseline_sessions`` (3) earlier sessions the floor alone. No new drop while one is open;
* ``alliance_session_drop`` (off by default): every session >= ``min_fall`` below the previous one
  (PCOMS), no edge;
* ``alliance_repaired``: after a drop, the first session back at or above pre-drop baseline - margin x SD;
* ``alliance_decline``: OLS over the last ``window`` sessions falls by >= ``decline_points``, most steps
  go down and no single step carries most of the fall; not at a session where a drop fires;
* ``outcome_reliable_deterioration`` / ``outcome_reliable_improvement``: change from intake (the
  episode's first score of the instrument) reaches the reliable change in the worse / better
  direction; deterioration fires at ``first_severity`` on the first reliably-worse session ("not yet
  confirmed") and at ``severity`` once it held ``consecutive`` sessions or is ``immediate_multiple`` x RC;
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

from collections.abc import Mapping

from shared.rules.config import ResolvedParams, RuleSet
from shared.rules.findings import EPS, RULES, SERIES_POINTS, Finding
from shared.rules.trajectory import Track
from shared.rules.units import alliance, dropout, outcome
from shared.rules.units.critical import unscored_critical_finding

__all__ = ["EPS", "RULES", "SERIES_POINTS", "Finding", "evaluate_episode", "unscored_critical_finding"]


def evaluate_episode(tracks: Mapping[str, Track], ruleset: RuleSet, since: int = 1) -> list[Finding]:
    """Every finding of one episode at sessions ≥ ``since``, in (session, instrument, kind) order.

    Earlier sessions are still walked (the rules' state depends on them) but yield nothing.
    """
    rules = ruleset.rules
    findings: list[Finding] = []
    concern: dict[str, tuple[ResolvedParams, dict[int, bool]]] = {}
    progress: dict[str, dict[int, bool]] = {}
    for name in sorted(tracks):
        track = tracks[name]
        if not track.observations:
            continue
        params = ruleset.params_for(name, track.scale)
        if track.domain == "alliance":
            concern[name] = (params, alliance.walk(track, params, rules, since, findings))
        else:
            progress[name] = outcome.walk(track, params, rules, since, findings)
    if rules.dropout_risk.enabled and concern and progress:
        for name in sorted(concern):
            params, by_session = concern[name]
            dropout.walk(tracks, name, params, by_session, progress, rules, since, findings)
    findings.sort(key=lambda f: (f.session, f.instrument, f.kind))
    return findings
