"""A synthetic clinic: a pure, seeded generator of realistic ``SessionCompleted`` events.

Used by the simulator service (demos, load), by offline benchmarks and backtests, and by tests that
need data with a known ground truth. Nothing here does I/O or reads a clock: time comes from the
``start`` datetime the caller passes, and randomness from private ``random.Random`` instances seeded
from ``seed`` (never the global generator). The same seed, config and start give byte-identical
output.

The model, in brief (shares and rates are configurable in :class:`SimulationConfig`):

* clinics → clinicians → clients; each client has one episode of N weekly sessions and a fixed
  weekly slot, so sessions arrive week by week, interleaved across clients;
* **outcome**: a latent severity in [0, 1] per session. Most clients *improve* (log-linear recovery
  toward a healthy level), some *plateau*, some *deteriorate* (a linear rise after an onset
  session); per-session noise on top;
* **alliance**: a latent level per client, drawn per instrument to match published norms. SRS is
  strongly ceiling-bound: about half the clients sit at the ceiling (a latent level at or above the
  scale's maximum, censored by the items, so many SRS totals are 39-40); the rest a few points lower
  (a gamma-shaped gap below the top, so scores of 26 or less are rare) with slow growth. WAI-SR sits
  lower on its 12-60 range (mean about 48, SD about 8). Some clients have a *repaired rupture* (a V:
  a drop of several points below the level the items show, and a return) and some an *unrepaired*
  one (the drop persists and drifts lower). Clients with an unrepaired rupture are more likely to
  plateau or deteriorate (``unrepaired_outcome_factor``; the configured archetype shares still hold
  over the whole cohort);
* **risk items**: PHQ-9 item 9 and CORE-10 item 6 are endorsed rarely, more often by
  deteriorating and more severe clients, with some persistence once endorsed;
* item answers are drawn around the per-item mean that puts the instrument's total where the
  latent level says (reverse-scored items answered the other way round), rounded to the
  instrument's answer format and clipped to its range.

Optionally a share of deliberately invalid records is injected (for dead-letter demos) from a
separate random stream, so the valid events are the same whatever ``invalid_rate`` is.

**Demo cases** (``demo_cases=True``): four *designed* clients are added to the first clinician of
the first clinic, so that a demo always shows what a clinician most needs to see, whatever the seed:
``case-risk`` (PHQ-9 item 9 endorsed at session 3), ``case-deteriorating`` (a reliable PHQ-9
deterioration from session 3 on), ``case-rupture-repaired`` (an SRS drop at session 4 that is back
at baseline at session 5) and ``case-rupture-unrepaired`` (an SRS drop at session 4 that stays and
drifts lower). They answer SRS, PHQ-9 and GAD-7 for 8 sessions, with item-level noise but no
session-level noise, from their own random streams: the rest of the cohort is the same with or
without them.
"""

from __future__ import annotations

import json
import math
import random
import re
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any, Final, Literal

from shared.contracts.events import SessionCompleted, SessionCompletedData, SurveyResponse, derive_id

__all__ = [
    "CLINIC_PROFILES",
    "DEMO_CASES",
    "INSTRUMENTS",
    "AllianceLevel",
    "ClientTruth",
    "ClinicProfile",
    "HistoryLine",
    "OutcomeArchetype",
    "RecordKind",
    "RuptureKind",
    "SimulatedRecord",
    "SimulationConfig",
    "client_archetypes",
    "generate_history_lines",
    "generate_records",
    "generate_sessions",
    "resolve_profile",
    "to_history_line",
]

OutcomeArchetype = Literal["improving", "plateau", "deteriorating"]
"""Designed shape of a client's outcome trajectory."""
AllianceLevel = Literal["ceiling", "typical"]
"""Designed baseline of a client's alliance: at (SRS) or near (WAI-SR) the scale's ceiling, or lower with
room to grow."""
RuptureKind = Literal["none", "repaired", "unrepaired"]
"""Designed alliance rupture of a client."""
RecordKind = Literal["valid", "out_of_range", "unknown_instrument", "schema_violation", "undecodable"]
"""What a generated record is; everything but ``valid`` is meant to be rejected downstream."""
InvalidKind = Literal["out_of_range", "unknown_instrument", "schema_violation", "undecodable"]

Answers = dict[str, int | float]
HistoryLine = dict[str, Any]
"""One line of the offline history format used by ``rapport signals`` / ``rapport backtest``."""

_INVALID_KINDS: Final[tuple[InvalidKind, ...]] = (
    "out_of_range",
    "unknown_instrument",
    "schema_violation",
    "undecodable",
)
_UNKNOWN_INSTRUMENTS: Final[tuple[str, ...]] = ("PHQ-99", "ORS-X", "NOT-AN-INSTRUMENT")
_PSEUDONYM_PREFIX = re.compile(r"^(?:[A-Za-z0-9][A-Za-z0-9._:-]*)?$")
_SECONDS_PER_WEEK: Final = 7 * 24 * 3600


# --------------------------------------------------------------------------- instruments


@dataclass(frozen=True, slots=True)
class _Scale:
    """How to answer one instrument: item count, answer range and format, scoring direction."""

    instrument: str
    domain: Literal["alliance", "outcome"]
    n_items: int
    lo: int
    hi: int
    vas: bool
    """Visual-analogue items: 0-10 with one decimal; otherwise integers."""
    higher_is_better: bool
    item_sd: float
    """Per-item noise around the item mean, in answer units."""
    reversed_items: frozenset[int] = frozenset()
    risk_item: int | None = None


INSTRUMENTS: Final[Mapping[str, _Scale]] = MappingProxyType(
    {
        s.instrument: s
        for s in (
            _Scale("SRS", "alliance", 4, 0, 10, True, True, 0.45),
            _Scale("WAI-SR", "alliance", 12, 1, 5, False, True, 0.55),
            _Scale("ORS", "outcome", 4, 0, 10, True, True, 0.9),
            _Scale("PHQ-9", "outcome", 9, 0, 3, False, False, 0.6, risk_item=9),
            _Scale("GAD-7", "outcome", 7, 0, 3, False, False, 0.6),
            _Scale("CORE-10", "outcome", 10, 0, 4, False, False, 0.7, frozenset({2, 3}), risk_item=6),
            _Scale("K10", "outcome", 10, 1, 5, False, False, 0.7),
        )
    }
)
"""The instruments the generator can answer, by id."""


@dataclass(frozen=True, slots=True)
class ClinicProfile:
    """Which surveys a clinic gives after each session: one alliance and one or two outcome measures."""

    alliance: str
    outcomes: tuple[str, ...]

    def __post_init__(self) -> None:
        if INSTRUMENTS.get(self.alliance) is None or INSTRUMENTS[self.alliance].domain != "alliance":
            raise ValueError(f"not an alliance instrument: {self.alliance!r}")
        if not 1 <= len(self.outcomes) <= 2 or len(set(self.outcomes)) != len(self.outcomes):
            raise ValueError("a clinic profile needs one or two distinct outcome instruments")
        for name in self.outcomes:
            if INSTRUMENTS.get(name) is None or INSTRUMENTS[name].domain != "outcome":
                raise ValueError(f"not an outcome instrument: {name!r}")


CLINIC_PROFILES: Final[Mapping[str, ClinicProfile]] = MappingProxyType(
    {
        "pcoms": ClinicProfile("SRS", ("ORS",)),
        "iapt": ClinicProfile("SRS", ("PHQ-9", "GAD-7")),
        "core": ClinicProfile("WAI-SR", ("CORE-10",)),
        "k10": ClinicProfile("SRS", ("K10",)),
    }
)
"""Named clinic types: PCOMS (SRS+ORS), IAPT-style (SRS+PHQ-9+GAD-7), CORE (WAI-SR+CORE-10), K10."""


def resolve_profile(clinic_type: str) -> ClinicProfile:
    """A named profile (``pcoms``, ``iapt``, ``core``, ``k10``) or an ad-hoc ``ALLIANCE+OUTCOME[+OUTCOME]``.

    Raises ``ValueError`` for anything else.
    """
    named = CLINIC_PROFILES.get(clinic_type)
    if named is not None:
        return named
    parts = clinic_type.split("+")
    if len(parts) < 2:
        raise ValueError(f"unknown clinic type {clinic_type!r}: use {sorted(CLINIC_PROFILES)} or SRS+ORS")
    return ClinicProfile(parts[0], tuple(parts[1:]))


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True, slots=True)
class SimulationConfig:
    """Size, mix and rates of a synthetic clinic. Defaults are a small demo cohort.

    Shares are of clients; rates are per session. ``improving`` is what is left after
    ``plateau_share`` and ``deteriorating_share``.
    """

    clinics: int = 4
    clinicians_per_clinic: int = 3
    clients_per_clinician: int = 10
    sessions_min: int = 6
    sessions_max: int = 16
    clinic_types: tuple[str, ...] = ("pcoms", "iapt", "core", "k10")
    """Clinic i gets ``clinic_types[i % len(clinic_types)]``."""
    plateau_share: float = 0.17
    deteriorating_share: float = 0.07
    ceiling_share: float = 0.5
    """Clients whose alliance sits at (SRS) or near (WAI-SR) the top of the scale."""
    rupture_repaired_share: float = 0.10
    rupture_unrepaired_share: float = 0.05
    unrepaired_outcome_factor: float = 2.0
    """How many times more likely a client with an unrepaired rupture is to plateau or deteriorate
    than the cohort as a whole (capped so shares stay valid). The other clients' shares are lowered to
    match, so ``plateau_share`` and ``deteriorating_share`` still hold over the cohort. 1 = independent."""
    phq9_item9_rate: float = 0.012
    """Base per-session chance that PHQ-9 item 9 is endorsed (scaled by severity and archetype)."""
    core10_item6_rate: float = 0.004
    """Base per-session chance that CORE-10 item 6 is endorsed."""
    deteriorating_risk_factor: float = 4.0
    """How much more often deteriorating clients endorse a risk item."""
    risk_persistence: float = 0.3
    """Chance of endorsing again at the next session once endorsed."""
    outcome_noise: float = 0.045
    """Session-to-session noise of latent severity (fraction of the scale)."""
    alliance_noise: float = 0.02
    """Session-to-session noise of latent alliance (fraction of the scale)."""
    invalid_rate: float = 0.0
    """Expected share of invalid records among all records of :func:`generate_records`."""
    id_prefix: str = ""
    """Prefix of every pseudonym, to keep two runs apart on one topic (e.g. ``run7-``)."""
    source: str = "rapport/simulator"
    demo_cases: bool = False
    """Add the four designed clients of :data:`DEMO_CASES` (risk, deterioration, repaired and
    unrepaired rupture) to the first clinician of the first clinic."""

    def __post_init__(self) -> None:
        for name in ("clinics", "clinicians_per_clinic", "clients_per_clinician", "sessions_min"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if not self.sessions_min <= self.sessions_max <= 10_000:
            raise ValueError("need sessions_min <= sessions_max <= 10000")
        for name in (
            "plateau_share",
            "deteriorating_share",
            "ceiling_share",
            "rupture_repaired_share",
            "rupture_unrepaired_share",
            "phq9_item9_rate",
            "core10_item6_rate",
            "risk_persistence",
        ):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within [0, 1]")
        if self.plateau_share + self.deteriorating_share > 1.0:
            raise ValueError("plateau_share + deteriorating_share must not exceed 1")
        if self.rupture_repaired_share + self.rupture_unrepaired_share > 1.0:
            raise ValueError("rupture shares must not add up to more than 1")
        if self.deteriorating_risk_factor < 0 or self.outcome_noise < 0 or self.alliance_noise < 0:
            raise ValueError("risk factor and noise must not be negative")
        if not 0.0 <= self.unrepaired_outcome_factor <= 100.0:
            raise ValueError("unrepaired_outcome_factor must be within [0, 100]")
        if not 0.0 <= self.invalid_rate <= 0.5:
            raise ValueError("invalid_rate must be within [0, 0.5]")
        if not self.clinic_types:
            raise ValueError("clinic_types must not be empty")
        for clinic_type in self.clinic_types:
            resolve_profile(clinic_type)
        if not _PSEUDONYM_PREFIX.match(self.id_prefix) or len(self.id_prefix) > 24:
            raise ValueError("id_prefix: up to 24 of letters, digits and . _ : - (starting alphanumeric)")
        if not 1 <= len(self.source) <= 128:
            raise ValueError("source must be 1 to 128 characters")

    @property
    def n_clients(self) -> int:
        """Number of clients (= episodes) in the cohort, designed demo cases included."""
        designed = len(DEMO_CASES) if self.demo_cases else 0
        return self.clinics * self.clinicians_per_clinic * self.clients_per_clinician + designed


# --------------------------------------------------------------------------- ground truth


@dataclass(frozen=True, slots=True)
class ClientTruth:
    """What a client was designed to do: the ground truth for tests and calibration."""

    clinic_id: str
    clinic_type: str
    clinician_id: str
    client_id: str
    episode_id: str
    sessions: int
    """Number of sessions in the episode."""
    alliance_instrument: str
    outcome_instruments: tuple[str, ...]
    outcome: OutcomeArchetype
    intake_severity: float
    """Latent severity at intake, 0 (well) to 1 (most severe)."""
    expected_final_severity: float
    """Latent severity at the last session, before noise."""
    alliance_level: AllianceLevel
    alliance_baseline: float
    """Latent alliance before any rupture (fraction of the scale; above 1 is censored by the items)."""
    rupture: RuptureKind
    rupture_session: int | None
    """Session of the drop, if the client has a rupture."""
    rupture_depth: float
    """Size of the drop below the level the items show (the latent level, capped at the scale's maximum),
    as a fraction of the alliance scale (0 without a rupture)."""
    risk_endorsements: tuple[tuple[str, int, int], ...]
    """(instrument, session, answer) for every risk item endorsed (PHQ-9 item 9, CORE-10 item 6)."""
    case: str | None = None
    """The designed demo case (a key of :data:`DEMO_CASES`), or ``None`` for a drawn client."""


class _Client:
    """A client's drawn parameters; the session-level noise is drawn when sessions are generated."""

    __slots__ = (
        "a_base",
        "a_decline",
        "a_growth",
        "anx_offset",
        "case",
        "client_id",
        "clinic_id",
        "clinic_type",
        "clinician_id",
        "depth",
        "episode_id",
        "index",
        "level",
        "log_horizon",
        "n_sessions",
        "onset",
        "outcome",
        "profile",
        "repair_bonus",
        "residual",
        "risk",
        "rupture",
        "rupture_session",
        "s0",
        "s_target",
        "slot",
    )

    def __init__(self) -> None:
        self.clinic_id = ""
        self.clinic_type = ""
        self.clinician_id = ""
        self.client_id = ""
        self.episode_id = ""
        self.index = 0
        self.slot = 0
        self.n_sessions = 0
        self.profile = CLINIC_PROFILES["pcoms"]
        self.outcome: OutcomeArchetype = "improving"
        self.s0 = 0.0
        self.s_target = 0.0
        self.log_horizon = 1.0
        self.onset = 1
        self.anx_offset = 0.0
        self.level: AllianceLevel = "typical"
        self.a_base = 0.0
        self.a_growth = 0.0
        self.rupture: RuptureKind = "none"
        self.rupture_session = 0
        self.depth = 0.0
        self.residual = 0.0
        self.repair_bonus = 0.0
        self.a_decline = 0.0
        self.risk: dict[str, dict[int, int]] = {}
        self.case: str | None = None

    def severity(self, n: int) -> float:
        """Expected latent severity at session ``n`` (no noise)."""
        if self.outcome == "deteriorating":
            if n <= self.onset:
                return self.s0
            progress = min(1.0, (n - self.onset) / max(1, self.n_sessions - self.onset))
        else:
            progress = min(1.0, math.log(n) / self.log_horizon)
        return self.s0 + (self.s_target - self.s0) * progress

    def alliance(self, n: int) -> float:
        """Expected latent alliance at session ``n`` (no noise)."""
        a = self.a_base + self.a_growth * math.log(n)
        r = self.rupture_session
        if self.rupture == "none" or n < r:
            return a
        # A rupture is a drop below the level the items can show: for a client above the scale's
        # maximum (censored) the drop starts from the maximum, so it is just as visible.
        shown = a if a < 1.0 else 1.0
        if self.rupture == "repaired":
            if n == r:
                return shown - self.depth
            if n == r + 1:
                return shown - self.depth * self.residual
            return a + self.repair_bonus
        return shown - self.depth - self.a_decline * (n - r)

    def truth(self) -> ClientTruth:
        endorsements = tuple(
            (instrument, session, value)
            for instrument in sorted(self.risk)
            for session, value in sorted(self.risk[instrument].items())
        )
        return ClientTruth(
            clinic_id=self.clinic_id,
            clinic_type=self.clinic_type,
            clinician_id=self.clinician_id,
            client_id=self.client_id,
            episode_id=self.episode_id,
            sessions=self.n_sessions,
            alliance_instrument=self.profile.alliance,
            outcome_instruments=self.profile.outcomes,
            outcome=self.outcome,
            intake_severity=self.s0,
            expected_final_severity=self.severity(self.n_sessions),
            alliance_level=self.level,
            alliance_baseline=self.a_base,
            rupture=self.rupture,
            rupture_session=self.rupture_session if self.rupture != "none" else None,
            rupture_depth=self.depth if self.rupture != "none" else 0.0,
            risk_endorsements=endorsements,
            case=self.case,
        )


def _rng(seed: int, stream: str) -> random.Random:
    # A str seed is hashed with SHA-512 by random.Random: stable across processes and
    # PYTHONHASHSEED, and the named streams are independent of one another.
    return random.Random(f"rapport-synthetic|{seed}|{stream}")  # noqa: S311 - simulation, not security


def _draw_risk(
    c: _Client, rng: random.Random, base_rate: float, config: SimulationConfig, values: tuple[int, ...]
) -> dict[int, int]:
    factor = config.deteriorating_risk_factor if c.outcome == "deteriorating" else 1.0
    out: dict[int, int] = {}
    endorsed_before = False
    for n in range(1, c.n_sessions + 1):
        p = base_rate * factor * (0.4 + 1.2 * min(1.0, max(0.0, c.severity(n))))
        if endorsed_before:
            p = max(p, config.risk_persistence)
        endorsed_before = rng.random() < p
        if endorsed_before:
            out[n] = rng.choice(values)
    return out


def _population(config: SimulationConfig, seed: int) -> list[_Client]:
    """Draw every client's parameters, in a fixed order, from the population stream."""
    rng = _rng(seed, "population")
    p = config.id_prefix
    clinic_w = max(2, len(str(config.clinics)))
    clinician_w = max(3, len(str(config.clinicians_per_clinic)))
    client_w = max(5, len(str(config.clinicians_per_clinic * config.clients_per_clinician)))
    cuts = _outcome_cuts(config)
    # Five weekdays, 08:00-17:30 on the half hour: 100 weekly slots per clinician.
    slots = [day * 86_400 + 8 * 3600 + half * 1800 for day in range(5) for half in range(20)]
    clients: list[_Client] = []
    for k in range(config.clinics):
        clinic_no = f"{k + 1:0{clinic_w}d}"
        clinic_type = config.clinic_types[k % len(config.clinic_types)]
        profile = resolve_profile(clinic_type)
        client_no = 0
        for j in range(config.clinicians_per_clinic):
            clinician_id = f"{p}cl-{clinic_no}-{j + 1:0{clinician_w}d}"
            m = config.clients_per_clinician
            own_slots = rng.sample(slots, min(m, len(slots)))
            for i in range(m):
                client_no += 1
                c = _Client()
                c.index = len(clients)
                c.clinic_id = f"{p}clinic-{clinic_no}"
                c.clinic_type = clinic_type
                c.profile = profile
                c.clinician_id = clinician_id
                c.client_id = f"{p}c-{clinic_no}-{client_no:0{client_w}d}"
                c.episode_id = f"{c.client_id}-e1"
                c.slot = own_slots[i % len(own_slots)]
                c.n_sessions = rng.randint(config.sessions_min, config.sessions_max)
                _draw_alliance(c, rng, config)
                _draw_outcome(c, rng, cuts[c.rupture == "unrepaired"])
                if "PHQ-9" in profile.outcomes:
                    c.risk["PHQ-9"] = _draw_risk(c, rng, config.phq9_item9_rate, config, (1, 1, 1, 2, 2, 3))
                if "CORE-10" in profile.outcomes:
                    c.risk["CORE-10"] = _draw_risk(c, rng, config.core10_item6_rate, config, (1, 1, 1, 2, 3))
                clients.append(c)
    if config.demo_cases:
        clients.extend(_demo_clients(config, seed, len(clients)))
    return clients


DEMO_CASES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "risk": "PHQ-9 item 9 endorsed at session 3 (critical_item)",
        "deteriorating": "PHQ-9 rises far beyond reliable change from session 3 on "
        "(outcome_reliable_deterioration)",
        "rupture-repaired": "SRS drops at session 4 and is back at baseline at session 5 "
        "(alliance_drop, then alliance_repaired)",
        "rupture-unrepaired": "SRS drops at session 4 and stays down, drifting lower (alliance_drop, "
        "never alliance_repaired)",
    }
)
"""The designed clients of ``demo_cases``: case name → what the monitor's default rules should see."""

_DEMO_SESSIONS: Final = 8


def _demo_clients(config: SimulationConfig, seed: int, first_index: int) -> list[_Client]:
    """The designed demo clients (see :data:`DEMO_CASES`), from their own random stream."""
    rng = _rng(seed, "demo-cases")
    p = config.id_prefix
    clinic_no = f"{1:0{max(2, len(str(config.clinics)))}d}"
    clinician_id = f"{p}cl-{clinic_no}-{1:0{max(3, len(str(config.clinicians_per_clinic)))}d}"
    out: list[_Client] = []
    for k, case in enumerate(DEMO_CASES):
        c = _Client()
        c.index = first_index + k
        c.case = case
        c.clinic_id = f"{p}clinic-{clinic_no}"
        c.clinic_type = "iapt"
        c.profile = CLINIC_PROFILES["iapt"]
        c.clinician_id = clinician_id
        c.client_id = f"{p}case-{case}"
        c.episode_id = f"{c.client_id}-e1"
        # Tuesday to Friday, one after the other in the morning: a fixed, readable order.
        c.slot = (k + 1) * 86_400 + 9 * 3600 + rng.randrange(4) * 1800
        c.n_sessions = _DEMO_SESSIONS
        c.level = "typical"
        c.a_base = rng.uniform(0.95, 0.97)
        c.anx_offset = rng.uniform(-0.05, 0.05)
        # An improving outcome by default: only the case's own signal is what it was designed for.
        c.outcome = "improving"
        c.s0 = rng.uniform(0.4, 0.5)
        c.s_target = rng.uniform(0.2, 0.25)
        c.log_horizon = math.log(12.0)
        c.risk = {"PHQ-9": {}}
        if case == "risk":
            c.risk["PHQ-9"] = {3: rng.choice((2, 3))}
        elif case == "deteriorating":
            c.outcome = "deteriorating"
            c.s0 = rng.uniform(0.22, 0.28)
            c.s_target = rng.uniform(0.88, 0.92)
            c.onset = 2
        else:
            c.rupture = "repaired" if case == "rupture-repaired" else "unrepaired"
            c.rupture_session = 4
            c.depth = rng.uniform(0.27, 0.3)
            c.residual = 0.0
            c.repair_bonus = 0.0
            c.a_decline = rng.uniform(0.02, 0.03) if c.rupture == "unrepaired" else 0.0
        out.append(c)
    return out


def _outcome_cuts(config: SimulationConfig) -> tuple[tuple[float, float], tuple[float, float]]:
    """(improving cut, plateau cut) of the outcome draw: (for most clients, for unrepaired ruptures).

    Clients with an unrepaired rupture plateau and deteriorate ``unrepaired_outcome_factor`` times as
    often as the cohort; the others a little less often, so that the cohort keeps the configured
    shares. The factor is capped so that every share stays within [0, 1].
    """
    p, d, u = config.plateau_share, config.deteriorating_share, config.rupture_unrepaired_share
    m = config.unrepaired_outcome_factor
    if p + d > 0.0:
        m = min(m, 1.0 / (p + d))
    if u > 0.0:
        m = min(m, 1.0 / u)
    others = (1.0 - u * m) / (1.0 - u) if u < 1.0 else 1.0

    def cut(scale: float) -> tuple[float, float]:
        return 1.0 - scale * (p + d), 1.0 - scale * d

    return cut(others), cut(m)


def _draw_outcome(c: _Client, rng: random.Random, cuts: tuple[float, float]) -> None:
    improving_cut, plateau_cut = cuts
    u = rng.random()
    if u < improving_cut:
        c.outcome = "improving"
        c.s0 = rng.uniform(0.35, 0.85)
        c.s_target = rng.uniform(0.08, 0.28)
        # Session by which the healthy level is reached: log-linear recovery, fast for some.
        c.log_horizon = math.log(rng.uniform(6.0, 24.0))
    elif u < plateau_cut:
        c.outcome = "plateau"
        c.s0 = rng.uniform(0.35, 0.8)
        c.s_target = c.s0 + rng.uniform(-0.06, 0.03)
        c.log_horizon = math.log(rng.uniform(4.0, 12.0))
    else:
        c.outcome = "deteriorating"
        c.s0 = rng.uniform(0.3, 0.65)
        c.s_target = min(0.97, c.s0 + rng.uniform(0.22, 0.38))
        c.onset = rng.randint(1, max(1, c.n_sessions // 2))
    c.anx_offset = rng.uniform(-0.15, 0.1)


@dataclass(frozen=True, slots=True)
class _AllianceNorm:
    """Where one alliance instrument's client levels sit, as fractions of its range.

    A "ceiling" client's level is uniform in ``ceiling``; a "typical" client's is ``top`` minus a
    gamma-distributed gap (``gap_shape``, ``gap_scale``: right-skewed, so a few clients sit far
    down, most a little below the top), never below ``floor``, and grows by up to ``growth`` x ln(session).
    """

    ceiling: tuple[float, float]
    top: float
    gap_shape: float
    gap_scale: float
    floor: float
    growth: float


_ALLIANCE_NORMS: Final[Mapping[str, _AllianceNorm]] = MappingProxyType(
    {
        # SRS: clinical samples average about 36-37 of 40, about half the clients rate at or near the
        # maximum, 20-30 % of sessions fall below the cutoff 36 and scores of 26 or less are rare.
        "SRS": _AllianceNorm((0.97, 1.1), 0.975, 1.3, 0.085, 0.35, 0.02),
        # WAI-SR: item means about 3.7-4.2 of 5 in clinical samples (totals about 44-50, SD about 8); a weaker
        # ceiling than the SRS.
        "WAI-SR": _AllianceNorm((0.8, 1.0), 0.78, 1.5, 0.1, 0.15, 0.02),
    }
)


def _draw_alliance(c: _Client, rng: random.Random, config: SimulationConfig) -> None:
    norm = _ALLIANCE_NORMS[c.profile.alliance]
    if rng.random() < config.ceiling_share:
        # The latent level may exceed the scale: the items censor it, which is the ceiling effect.
        c.level = "ceiling"
        c.a_base = rng.uniform(*norm.ceiling)
        c.a_growth = 0.0
    else:
        c.level = "typical"
        c.a_base = max(norm.floor, norm.top - rng.gammavariate(norm.gap_shape, norm.gap_scale))
        c.a_growth = rng.uniform(0.0, norm.growth)
    u = rng.random()
    # A visible V needs two sessions of baseline before and two sessions after the drop.
    can_rupture = c.n_sessions >= 5
    if can_rupture and u < config.rupture_repaired_share:
        c.rupture = "repaired"
    elif can_rupture and u < config.rupture_repaired_share + config.rupture_unrepaired_share:
        c.rupture = "unrepaired"
    if c.rupture != "none":
        c.rupture_session = rng.randint(3, c.n_sessions - 2)
        c.depth = rng.uniform(0.15, 0.3)
        c.residual = rng.uniform(0.0, 0.3)
        c.repair_bonus = rng.uniform(0.0, 0.03)
        c.a_decline = rng.uniform(0.0, 0.015)


def client_archetypes(config: SimulationConfig, seed: int) -> list[ClientTruth]:
    """The designed ground truth of every client, in generation order.

    Which clients improve, plateau or deteriorate, which sit at the alliance ceiling, which have a
    rupture (repaired or not, at which session, how deep) and every risk item they will endorse.
    Cheap: no session is generated.
    """
    return [c.truth() for c in _population(config, seed)]


# --------------------------------------------------------------------------- answers


def _answers(scale: _Scale, fraction: float, rng: random.Random, fixed: Mapping[int, int]) -> Answers:
    """Item answers whose total lands at ``fraction`` of the way from the minimum to the maximum.

    ``fraction`` is in scored terms (after reversal); reverse-scored items are answered mirrored.
    ``fixed`` pins items (risk items) to given answers; the others make up the rest of the total.
    """
    lo, hi, n = scale.lo, scale.hi, scale.n_items
    target = n * lo + fraction * n * (hi - lo)
    mean = (target - sum(fixed.values())) / (n - len(fixed))
    sd = scale.item_sd
    gauss = rng.gauss
    out: Answers = {}
    if scale.vas:
        flo, fhi = float(lo), float(hi)
        for i in range(1, n + 1):
            x = mean + gauss(0.0, sd)
            out[str(i)] = round(fhi if x > fhi else flo if x < flo else x, 1)
        return out
    rev = scale.reversed_items
    for i in range(1, n + 1):
        v = fixed.get(i)
        if v is None:
            v = round(mean + gauss(0.0, sd))
            v = hi if v > hi else lo if v < lo else v
            if i in rev:
                v = hi + lo - v
        out[str(i)] = v
    return out


_ALLIANCE: Final = frozenset(name for name, s in INSTRUMENTS.items() if s.domain == "alliance")
_AT_START: Final = timedelta(minutes=3)
_AT_END: Final = timedelta(minutes=48)
_NO_FIXED: Final[Mapping[int, int]] = MappingProxyType({})


def _clip(x: float, lo: float, hi: float) -> float:
    return hi if x > hi else lo if x < lo else x


def _surveys(c: _Client, n: int, rng: random.Random, config: SimulationConfig) -> list[tuple[str, Answers]]:
    """All surveys of session ``n``: outcome measures first (given at the start), alliance last.

    A designed demo client has no session-level noise (its trajectory is the designed one); its item
    answers still vary around it.
    """
    designed = c.case is not None
    s = _clip(c.severity(n) + (0.0 if designed else rng.gauss(0.0, config.outcome_noise)), 0.0, 1.0)
    out: list[tuple[str, Answers]] = []
    for name in c.profile.outcomes:
        scale = INSTRUMENTS[name]
        level = _clip(s + c.anx_offset, 0.0, 1.0) if name == "GAD-7" else s
        fixed: Mapping[int, int] = _NO_FIXED
        if scale.risk_item is not None:
            fixed = {scale.risk_item: c.risk.get(name, {}).get(n, 0)}
        out.append((name, _answers(scale, 1.0 - level if scale.higher_is_better else level, rng, fixed)))
    a = _clip(c.alliance(n) + (0.0 if designed else rng.gauss(0.0, config.alliance_noise)), 0.0, 1.15)
    out.append((c.profile.alliance, _answers(INSTRUMENTS[c.profile.alliance], a, rng, _NO_FIXED)))
    return out


def _raw_sessions(
    config: SimulationConfig, seed: int, start: datetime
) -> Iterator[tuple[_Client, int, datetime, list[tuple[str, Answers]]]]:
    """Every session, week by week, clients in order of their weekly slot."""
    if start.tzinfo is None or start.utcoffset() is None:
        raise ValueError("start must be timezone-aware")
    clients = sorted(_population(config, seed), key=lambda c: (c.slot, c.index))
    rng = _rng(seed, "sessions")
    # Designed demo clients draw from their own stream: the drawn cohort is the same without them.
    demo_rng = _rng(seed, "demo-sessions")
    weeks = max((c.n_sessions for c in clients), default=0)
    for week in range(1, weeks + 1):
        clients = [c for c in clients if c.n_sessions >= week]
        base = (week - 1) * _SECONDS_PER_WEEK
        for c in clients:
            when = start + timedelta(seconds=base + c.slot)
            yield c, week, when, _surveys(c, week, demo_rng if c.case else rng, config)


# --------------------------------------------------------------------------- events


def _event_id(seed: int, c: _Client, n: int, *extra: object) -> uuid.UUID:
    return derive_id(f"simulator:{seed}:{c.clinic_id}", c.client_id, c.episode_id, n, *extra)


def _event(
    config: SimulationConfig,
    seed: int,
    c: _Client,
    n: int,
    when: datetime,
    surveys: list[tuple[str, Answers]],
    *id_extra: object,
) -> SessionCompleted:
    event_id = _event_id(seed, c, n, *id_extra)
    # Outcome measures are given at the start of a session, alliance measures at its end.
    responses = [
        SurveyResponse(
            instrument=name,
            answers=answers,
            completed_at=when + (_AT_END if name in _ALLIANCE else _AT_START),
        )
        for name, answers in surveys
    ]
    return SessionCompleted(
        id=event_id,
        source=config.source,
        time=when + timedelta(minutes=55),
        subject=c.client_id,
        clinic_id=c.clinic_id,
        correlation_id=event_id,
        data=SessionCompletedData(
            clinician_id=c.clinician_id,
            client_id=c.client_id,
            episode_id=c.episode_id,
            session_number=n,
            session_time=when,
            surveys=responses,
        ),
    )


def generate_sessions(config: SimulationConfig, seed: int, start: datetime) -> Iterator[SessionCompleted]:
    """Every valid session of the cohort as a validated ``SessionCompleted``, week by week.

    Week 1 holds every client's session 1 (in order of their weekly slot), week 2 every session 2,
    and so on: the realistic arrival order. ``start`` (timezone-aware) is the Monday 00:00 of week
    1. Invalid records (``invalid_rate``) are not included: see :func:`generate_records`.
    """
    for c, n, when, surveys in _raw_sessions(config, seed, start):
        yield _event(config, seed, c, n, when, surveys)


def generate_history_lines(config: SimulationConfig, seed: int, start: datetime) -> Iterator[HistoryLine]:
    """The same sessions as :func:`generate_sessions`, as offline history lines, without pydantic.

    The fast path for big backtests: equal to ``to_history_line`` of each generated event.
    """
    for c, n, when, surveys in _raw_sessions(config, seed, start):
        yield {
            "client": c.client_id,
            "session": n,
            "clinic": c.clinic_id,
            "clinician": c.clinician_id,
            "episode": c.episode_id,
            "time": when.isoformat(),
            "surveys": [{"instrument": name, "answers": answers} for name, answers in surveys],
        }


def to_history_line(event: SessionCompleted) -> HistoryLine:
    """One event in the offline history format of ``rapport signals`` / ``rapport backtest``."""
    d = event.data
    return {
        "client": d.client_id,
        "session": d.session_number,
        "clinic": event.clinic_id,
        "clinician": d.clinician_id,
        "episode": d.episode_id,
        "time": d.session_time.isoformat(),
        "surveys": [{"instrument": s.instrument, "answers": dict(s.answers)} for s in d.surveys],
    }


@dataclass(frozen=True, slots=True)
class SimulatedRecord:
    """One record to put on ``session-completed``: key, value bytes and what it is.

    ``event`` is the parsed event for ``valid``, ``out_of_range`` and ``unknown_instrument`` records
    (valid JSON and a valid ``SessionCompleted`` that fails scoring); ``None`` for
    ``schema_violation`` (JSON that is not a ``SessionCompleted``) and ``undecodable`` (not UTF-8).
    """

    key: bytes
    value: bytes
    kind: RecordKind
    event: SessionCompleted | None

    @property
    def valid(self) -> bool:
        """True for a record the pipeline should score."""
        return self.kind == "valid"


def generate_records(config: SimulationConfig, seed: int, start: datetime) -> Iterator[SimulatedRecord]:
    """Records for the topic: every valid session of :func:`generate_sessions`, plus invalid ones.

    After each valid session an invalid record for the same client is injected with a probability
    chosen so that invalid records are ``config.invalid_rate`` of all records. Invalid records come
    from their own random stream, so the valid records do not depend on ``invalid_rate``; each has
    its own deterministic id and carries only the broken survey, so nothing of it scores.
    """
    r = config.invalid_rate
    inject = r / (1.0 - r)
    bad = _rng(seed, "invalid")
    for c, n, when, surveys in _raw_sessions(config, seed, start):
        event = _event(config, seed, c, n, when, surveys)
        key = c.client_id.encode()
        yield SimulatedRecord(key, event.model_dump_json().encode(), "valid", event)
        if inject > 0.0 and bad.random() < inject:
            yield _invalid_record(config, seed, c, n, when, surveys, event, key, bad)


def _invalid_record(
    config: SimulationConfig,
    seed: int,
    c: _Client,
    n: int,
    when: datetime,
    surveys: list[tuple[str, Answers]],
    event: SessionCompleted,
    key: bytes,
    rng: random.Random,
) -> SimulatedRecord:
    kind = rng.choice(_INVALID_KINDS)
    name, answers = surveys[rng.randrange(len(surveys))]
    if kind == "out_of_range":
        scale = INSTRUMENTS[name]
        item = str(rng.randint(1, scale.n_items))
        broken: int | float
        if scale.vas:
            broken = rng.choice((-1.0, 10.5, 11.0, 12.5, 15.0, 100.0))
        else:
            broken = rng.choice((scale.lo - 1, scale.hi + 1, scale.hi + 2, 10 * scale.hi))
        bad_event = _event(config, seed, c, n, when, [(name, {**answers, item: broken})], "invalid", kind)
        return SimulatedRecord(key, bad_event.model_dump_json().encode(), kind, bad_event)
    if kind == "unknown_instrument":
        other = rng.choice(_UNKNOWN_INSTRUMENTS)
        bad_event = _event(config, seed, c, n, when, [(other, dict(answers))], "invalid", kind)
        return SimulatedRecord(key, bad_event.model_dump_json().encode(), kind, bad_event)
    doc = json.loads(event.model_dump_json())
    doc["id"] = str(_event_id(seed, c, n, "invalid", kind))
    doc["correlation_id"] = doc["id"]
    if kind == "schema_violation":
        how = rng.randrange(4)
        if how == 0:
            doc["data"]["surveys"][0]["answers"]["1"] = "three"
        elif how == 1:
            doc["data"]["session_number"] = 0
        elif how == 2:
            doc["data"]["surveys"] = []
        else:
            del doc["subject"]
        return SimulatedRecord(key, json.dumps(doc, separators=(",", ":")).encode(), kind, None)
    # Undecodable: cut short mid-document and followed by bytes that are never valid UTF-8.
    raw = json.dumps(doc, separators=(",", ":")).encode()
    cut = rng.randint(1, len(raw) - 1)
    return SimulatedRecord(key, raw[:cut] + b"\xff\xfe\x80", "undecodable", None)
