"""Offline evaluation of a rule set over a history: the same rule code as the live monitor.

The live path takes one ``SurveyScored`` envelope at a time; that is too slow for a million sessions,
so the backtest groups the scored history by client, builds each episode's session-sorted tracks once
and calls :func:`shared.rules.engine.evaluate_episode` — the function the live path calls — once per
episode. What it counts is therefore what the live monitor emits when every session arrives in order
(see ``shared.rules.live`` for out-of-order arrival).

Duplicate rows of one (client, episode, instrument, session) follow the live policy: the last one in
the history wins (a redelivery of the same score changes nothing either way). A survey that could not
be scored but endorsed a risk item (a risk-only row, see :meth:`History.add_risk_only`) raises its
``critical_item`` as the live monitor does, without entering the trajectory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from shared.contracts.events import ScaleInfo, Severity, SignalKind
from shared.rules.config import RuleBook, RuleSet
from shared.rules.engine import RULES, Finding, evaluate_episode, unscored_critical_finding
from shared.rules.trajectory import Domain, Observation, Track

FLAG_SEVERITIES: frozenset[Severity] = frozenset({"moderate", "high", "critical"})
SEVERITY_ORDER: tuple[Severity, ...] = ("critical", "high", "moderate", "info")

# (episode, session, instrument, total, critical items, risk-unknown items), in arrival order.
_Row = tuple[str, int, str, float, tuple[str, ...], tuple[str, ...]]
# (episode, session, instrument, critical items, why the total was not scorable).
_RiskRow = tuple[str, int, str, tuple[str, ...], str]


class History:
    """Scored surveys grouped by (clinic, client), as compact tuples, in arrival order."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], list[_Row]] = {}
        self._risk_only: dict[tuple[str, str], list[_RiskRow]] = {}
        # (clinic, instrument) → its domain and scale: clinics may score an instrument with different
        # spec variants (another cutoff or reliable change). The latest scale of a clinic wins.
        self._instruments: dict[tuple[str, str], tuple[Domain, ScaleInfo]] = {}
        self._interned: dict[str, str] = {}
        self.surveys = 0
        self.risk_unknown_surveys = 0

    def add(
        self,
        clinic: str,
        client: str,
        episode: str,
        session: int,
        instrument: str,
        domain: Domain,
        scale: ScaleInfo,
        total: float,
        critical_items: tuple[str, ...] = (),
        risk_unknown: tuple[str, ...] = (),
    ) -> None:
        """Record one scored survey."""
        intern = self._interned.setdefault
        clinic = intern(clinic, clinic)
        instrument = intern(instrument, instrument)
        where = (clinic, instrument)
        known = self._instruments.get(where)
        if known is None or (known[1] is not scale and known[1] != scale):
            self._instruments[where] = (domain, scale)
        key = (clinic, intern(client, client))
        rows = self._rows.get(key)
        if rows is None:
            rows = self._rows[key] = []
        rows.append(
            (
                intern(episode, episode),
                session,
                instrument,
                total,
                critical_items,
                risk_unknown,
            )
        )
        self.surveys += 1
        if risk_unknown:
            self.risk_unknown_surveys += 1

    def add_risk_only(
        self,
        clinic: str,
        client: str,
        episode: str,
        session: int,
        instrument: str,
        critical_items: tuple[str, ...],
        reason: str,
    ) -> None:
        """Record an unscorable survey with endorsed risk items: a critical signal, no trajectory point."""
        key = (clinic, client)
        self._rows.setdefault(key, [])
        self._risk_only.setdefault(key, []).append((episode, session, instrument, critical_items, reason))

    def risk_only_findings(self, clinic: str, client: str) -> Iterator[tuple[str, Finding]]:
        """(episode, finding) of every risk-only row of one client, in arrival order."""
        for episode, session, instrument, items, reason in self._risk_only.get((clinic, client), ()):
            yield episode, unscored_critical_finding(instrument, session, items, reason)

    @property
    def clients(self) -> int:
        """Number of (clinic, client) keys."""
        return len(self._rows)

    def sessions(self) -> int:
        """Distinct (client, episode, session) triples."""
        return sum(
            len({(r[0], r[1]) for r in rows} | {(r[0], r[1]) for r in self._risk_only.get(key, ())})
            for key, rows in self._rows.items()
        )

    def episodes(self) -> Iterator[tuple[str, str, str, dict[str, Track]]]:
        """(clinic, client, episode, tracks) for every episode, tracks sorted by session."""
        instruments = self._instruments
        for (clinic, client), rows in self._rows.items():
            by_episode: dict[str, dict[str, dict[int, Observation]]] = {}
            for episode, session, instrument, total, crit, unknown in rows:
                # Later rows overwrite earlier ones: last writer wins, as in the live monitor.
                by_episode.setdefault(episode, {}).setdefault(instrument, {})[session] = Observation(
                    session, total, crit, unknown
                )
            for risk_row in self._risk_only.get((clinic, client), ()):
                by_episode.setdefault(risk_row[0], {})  # an episode seen only through risk-only rows
            for episode, per_instrument in by_episode.items():
                tracks: dict[str, Track] = {}
                for instrument, by_session in per_instrument.items():
                    domain, scale = instruments[(clinic, instrument)]
                    tracks[instrument] = Track(
                        instrument, domain, scale, tuple(by_session[s] for s in sorted(by_session))
                    )
                yield clinic, client, episode, tracks


@dataclass
class RuleCount:
    """Signals of one (rule, severity) and the clients they touched."""

    signals: int = 0
    clients: int = 0


@dataclass
class BacktestReport:
    """Counts of one rule book over one history."""

    ruleset_version: str
    clients: int = 0
    by_rule: dict[tuple[str, str, str], RuleCount] = field(default_factory=dict)
    """(rule id, kind, severity) → counts."""
    flagged_clients: int = 0
    """Clients with at least one signal of severity ≥ moderate, critical items not counted."""
    critical_clients: int = 0
    critical_signals: int = 0
    signals: int = 0

    def share(self, n: int) -> float:
        """``n`` as a share of all clients."""
        return n / self.clients if self.clients else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "ruleset_version": self.ruleset_version,
            "clients": self.clients,
            "signals": self.signals,
            "flagged_clients": self.flagged_clients,
            "flagged_share": round(self.share(self.flagged_clients), 6),
            "critical_item": {
                "signals": self.critical_signals,
                "clients": self.critical_clients,
                "share": round(self.share(self.critical_clients), 6),
            },
            "rules": [
                {
                    "rule": rule,
                    "kind": kind,
                    "severity": severity,
                    "signals": c.signals,
                    "clients": c.clients,
                    "share": round(self.share(c.clients), 6),
                }
                for (rule, kind, severity), c in sorted(self.by_rule.items(), key=_rule_order)
            ],
        }


def _rule_order(item: tuple[tuple[str, str, str], RuleCount]) -> tuple[int, int]:
    (_rule, kind, severity), _ = item
    kinds = list(RULES)
    order: tuple[str, ...] = SEVERITY_ORDER
    return (kinds.index(kind) if kind in kinds else len(kinds), order.index(severity))


def run_backtest(
    history: History,
    book: RuleBook,
    progress: Callable[[int], None] | None = None,
) -> BacktestReport:
    """Evaluate ``book`` over every episode of ``history``; ``progress(n)`` is called per n clients done."""
    report = BacktestReport(ruleset_version=book.base.version, clients=history.clients)
    current: tuple[str, str] | None = None
    client_findings: list[Finding] = []
    client_critical: set[tuple[str, str, int]] = set()
    by_clinic: dict[str, RuleSet] = {}
    done = 0
    for clinic, client, episode, tracks in history.episodes():
        if (clinic, client) != current:
            if current is not None:
                _tally(report, _with_risk_only(history, current, client_findings, client_critical))
                done += 1
                if progress is not None and done % 1000 == 0:
                    progress(1000)
            current = (clinic, client)
            client_findings = []
            client_critical = set()
        rules = by_clinic.get(clinic)
        if rules is None:
            rules = by_clinic[clinic] = book.for_clinic(clinic)
        findings = evaluate_episode(tracks, rules)
        client_findings.extend(findings)
        client_critical.update(
            (episode, f.instrument, f.session) for f in findings if f.kind == "critical_item"
        )
    if current is not None:
        _tally(report, _with_risk_only(history, current, client_findings, client_critical))
        done += 1
    if progress is not None and done % 1000:
        progress(done % 1000)
    return report


def _with_risk_only(
    history: History, key: tuple[str, str], findings: list[Finding], critical: set[tuple[str, str, int]]
) -> list[Finding]:
    """A client's findings plus the critical items of its risk-only rows that no survey of the same
    (episode, instrument, session) raised already: live, both would carry the same signal id."""
    for episode, finding in history.risk_only_findings(*key):
        where = (episode, finding.instrument, finding.session)
        if where not in critical:
            critical.add(where)
            findings.append(finding)
    return findings


def _tally(report: BacktestReport, findings: list[Finding]) -> None:
    seen: set[tuple[str, str, str]] = set()
    flagged = critical = False
    for f in findings:
        key = (f.rule_id, f.kind, f.severity)
        count = report.by_rule.get(key)
        if count is None:
            count = report.by_rule[key] = RuleCount()
        count.signals += 1
        report.signals += 1
        if key not in seen:
            seen.add(key)
            count.clients += 1
        if f.kind == "critical_item":
            critical = True
            report.critical_signals += 1
        elif f.severity in FLAG_SEVERITIES:
            flagged = True
    report.flagged_clients += flagged
    report.critical_clients += critical


def kinds_in_order() -> list[SignalKind]:
    """Signal kinds in the order reports list them."""
    return list(RULES)
