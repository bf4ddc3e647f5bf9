"""Builders for rule tests: scales, tracks, rule sets and ``SurveyScored`` events, all hand-made."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.contracts.events import ScaleInfo, SurveyScored, SurveyScoredData, derive_id
from shared.rules import Finding, RuleSet, Track, evaluate_episode, rulebook_from_mapping
from shared.rules.trajectory import Domain, Observation

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)

SRS = ScaleInfo(min=0, max=40, direction="higher_is_better", cutoff=36, concern_when="below")
ORS = ScaleInfo(
    min=0, max=40, direction="higher_is_better", cutoff=25, concern_when="at_or_below", reliable_change=5
)
PHQ9 = ScaleInfo(
    min=0, max=27, direction="higher_is_worse", cutoff=10, concern_when="at_or_above", reliable_change=5
)
WAI = ScaleInfo(min=12, max=60, direction="higher_is_better")

SCALES: dict[str, tuple[Domain, ScaleInfo]] = {
    "SRS": ("alliance", SRS),
    "WAI-SR": ("alliance", WAI),
    "ORS": ("outcome", ORS),
    "PHQ-9": ("outcome", PHQ9),
}

# Exact, round numbers for threshold tests, independent of the packaged defaults.
TEST_DOC: dict[str, Any] = {
    "version": "test-1",
    "rules": {
        "rearm_after": 2,
        "alliance_below_cutoff": {"severity": "info", "far_severity": "moderate"},
        "alliance_drop": {"k_sd": 2.0, "min_baseline_sessions": 3},
        "alliance_repaired": {"margin_sd": 1.0},
        "alliance_decline": {"window": 4, "max_step_share": 0.5},
        "outcome_reliable_deterioration": {"consecutive": 2, "immediate_multiple": 2.0},
        "outcome_not_on_track": {"recovery_rate": 0.0, "bound_z": 1.0, "min_session": 3, "consecutive": 2},
        "dropout_risk": {"min_outcome_sessions": 5, "concern_sessions": 3, "improvement_fraction": 0.25},
    },
    "instruments": {
        "SRS": {"between_sd": 3.5, "drop_from_last": 2.0, "decline_points": 4.0, "far_margin": 10.0},
        "PHQ-9": {"residual_sd": 2.0},
        "ORS": {"residual_sd": 2.0},
    },
}


def ruleset(**overrides: Any) -> RuleSet:
    """The test rule set, with ``overrides`` deep-merged (e.g. ``rules={"alliance_drop": {...}}``)."""
    from shared.rules.config import deep_merge

    return rulebook_from_mapping(deep_merge(TEST_DOC, overrides)).base


def track(
    instrument: str, values: Sequence[float | None], critical: dict[int, list[str]] | None = None
) -> Track:
    """A track with sessions 1..n; ``None`` leaves a session out."""
    domain, scale = SCALES[instrument]
    crit = critical or {}
    obs = tuple(
        Observation(session=i, total=float(v), critical_items=tuple(crit.get(i, ())))
        for i, v in enumerate(values, start=1)
        if v is not None
    )
    return Track(instrument, domain, scale, obs)


def run(tracks: Iterable[Track], rules: RuleSet | None = None) -> list[Finding]:
    """All findings of one episode."""
    return evaluate_episode({t.instrument: t for t in tracks}, rules or ruleset())


def kinds(findings: Iterable[Finding], kind: str) -> list[tuple[int, str]]:
    """(session, severity) of the findings of one kind."""
    return [(f.session, f.severity) for f in findings if f.kind == kind]


def scored(
    instrument: str,
    session: int,
    total: float,
    *,
    client: str = "c1",
    clinic: str = "k1",
    episode: str = "e1",
    critical: Sequence[str] = (),
    risk_unknown: Sequence[str] = (),
    variant: str = "",
) -> SurveyScored:
    """A ``SurveyScored`` event; ids derive from the content (``variant`` makes a distinct event)."""
    domain, scale = SCALES[instrument]
    session_id = derive_id("test-session", clinic, client, episode, session, variant)
    return SurveyScored(
        id=derive_id(session_id, "survey-scored", instrument, total, variant),
        source="test/scoring",
        time=T0 + timedelta(weeks=session - 1, minutes=5),
        subject=client,
        clinic_id=clinic,
        correlation_id=session_id,
        data=SurveyScoredData(
            clinician_id="t1",
            client_id=client,
            episode_id=episode,
            session_number=session,
            session_time=T0 + timedelta(weeks=session - 1),
            instrument=instrument,
            instrument_version="1.0.0",
            domain=domain,
            total=total,
            critical_items=list(critical),
            risk_unknown=list(risk_unknown),
            scale=scale,
        ),
    )


# --------------------------------------------------------------------------- offline history lines


def srs_answers(total: float) -> dict[str, float]:
    """Four SRS items (0-10, one decimal) summing to ``total``."""
    tenths = round(total * 10)
    q, r = divmod(tenths, 4)
    return {str(i + 1): (q + (1 if i < r else 0)) / 10 for i in range(4)}


def phq9_answers(total: int, item9: int = 0) -> dict[str, int]:
    """Nine PHQ-9 items (0-3) summing to ``total`` with item 9 as given."""
    rest = total - item9
    items = []
    for _ in range(8):
        v = min(3, rest)
        items.append(v)
        rest -= v
    if rest:
        raise ValueError("total out of reach")
    return {**{str(i + 1): v for i, v in enumerate(items)}, "9": item9}


def history_line(
    client: str, session: int, srs: float | None = None, phq: int | None = None, item9: int = 0, **extra: Any
) -> dict[str, Any]:
    """One line of the offline history format."""
    surveys = []
    if srs is not None:
        surveys.append({"instrument": "SRS", "answers": srs_answers(srs)})
    if phq is not None:
        surveys.append({"instrument": "PHQ-9", "answers": phq9_answers(phq, item9)})
    return {"client": client, "session": session, "surveys": surveys, **extra}


def small_history() -> list[dict[str, Any]]:
    """Four clients of five sessions: a rupture, a deterioration, a quiet one, a risk item."""
    lines = []
    for s, v in enumerate([38, 38, 38, 30, 37], start=1):
        lines.append(history_line("c-rupture", s, srs=v, phq=12))
    for s, v in enumerate([10, 12, 16, 17, 18], start=1):
        lines.append(history_line("c-worse", s, srs=39, phq=v))
    for s in range(1, 6):
        lines.append(history_line("c-quiet", s, srs=39, phq=8))
    for s in range(1, 6):
        lines.append(history_line("c-risk", s, srs=39, phq=9, item9=1 if s == 3 else 0))
    return lines
