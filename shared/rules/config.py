"""The monitor's rule-set configuration: versioned, validated, overridable per clinic.

A rule-set file is YAML. Its top level is a :class:`RuleSet` (``version``, ``rules``, ``instruments``,
``fallbacks``) plus an optional ``clinics`` mapping of clinic id → partial overrides that are deep-merged
onto it. A file given on the command line is itself merged onto the packaged default, so it only needs
to say what differs — but it must name its own ``version``, because every signal records the rule-set
version that produced it.

Numbers are in raw score points of each instrument. Where no per-instrument value is configured, the
``fallbacks`` give a value as a fraction of the instrument's scale range, so a clinic-supplied
instrument still gets sensible defaults.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from shared.contracts.events import ScaleInfo, Severity

ConcernWhen = Literal["below", "at_or_below", "at_or_above", "above"]
DEFAULT_RULESET_FILE = "default_ruleset.yaml"


class _Config(BaseModel):
    """Base of every config model: immutable, and strict about unknown keys (a typo must not pass)."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


class CriticalItemRule(_Config):
    """A critical (risk) item endorsed. Deliberately has no ``enabled`` switch and a fixed severity."""


class BelowCutoffRule(_Config):
    """The alliance total enters the concerning side of the instrument's cutoff."""

    enabled: bool = True
    severity: Severity = "info"
    """Severity when the score enters the concerning range (a "discuss it" prompt)."""
    far_severity: Severity = "moderate"
    """Severity when the score is at least ``far_margin`` points beyond the cutoff."""


class DropRule(_Config):
    """A session's alliance score falls sharply, vs last session and vs the client's own baseline."""

    enabled: bool = True
    severity: Severity = "moderate"
    k_sd: float = Field(default=2.0, gt=0)
    """SDs below the running mean: 2 (Stiles et al. 2004) or 1 (Strauss et al. 2006)."""
    min_baseline_sessions: int = Field(default=3, ge=1)
    """Earlier sessions needed before the client's own SD counts (with the between-client floor)."""
    early_baseline_sessions: int | None = Field(default=2, ge=1)
    """With at least this many (but fewer than ``min_baseline_sessions``) earlier sessions, a drop is
    judged against their mean with the between-client SD alone: a fall of at least k_sd x the floor
    (Gumz et al. 2012: the stricter of within- and between-client SD). ``null``: no early drops."""


class SessionDropRule(_Config):
    """Any fall from the previous session, as PCOMS software marks it (off by default)."""

    enabled: bool = False
    severity: Severity = "info"
    min_fall: float = Field(default=1.0, gt=0)
    """Points below the previous session; 1 = the PCOMS (OpenFIT) red mark for any 1-point drop."""


class RepairRule(_Config):
    """After a flagged drop, the score comes back near the pre-drop baseline (the V closes)."""

    enabled: bool = True
    severity: Severity = "info"
    margin_sd: float = Field(default=1.0, ge=0)
    """Repaired when the score is back to at least baseline - margin_sd x SD."""


class DeclineRule(_Config):
    """A sustained downward trend of the alliance over the last ``window`` sessions."""

    enabled: bool = True
    severity: Severity = "moderate"
    window: int = Field(default=4, ge=3, le=12)
    min_declining_steps: int | None = Field(default=None, ge=1)
    """Session-to-session steps in the window that must go down; default ``window - 2``."""
    max_step_share: float = Field(default=0.5, gt=0, le=1)
    """No single step may carry more than this share of the fall: one sudden fall is a drop, not a trend."""


class DeteriorationRule(_Config):
    """Reliable deterioration vs intake (Jacobson & Truax 1991), flagged at the first reliably-worse
    session (as OQ and PCOMS do) and raised when the next session confirms it."""

    enabled: bool = True
    severity: Severity = "high"
    """Severity once confirmed: ``consecutive`` sessions reliably worse, or ``immediate_multiple`` x RC."""
    first_severity: Severity | None = "moderate"
    """Severity at the first reliably-worse session, before confirmation ("not yet confirmed").
    ``null``: stay silent until confirmed (the policy of rule sets before 2026.1)."""
    consecutive: int = Field(default=2, ge=1)
    """Sessions in a row reliably worse than intake that confirm the deterioration."""
    immediate_multiple: float = Field(default=2.0, ge=1)
    """A change of at least this many reliable changes is confirmed at once."""


class ImprovementRule(_Config):
    """Reliable improvement vs intake — positive feedback."""

    enabled: bool = True
    severity: Severity = "info"


class NotOnTrackRule(_Config):
    """Worse than the expected recovery curve from intake severity, by more than a prediction bound."""

    enabled: bool = True
    severity: Severity = "moderate"
    recovery_rate: float = Field(default=0.06, ge=0, le=1)
    """Expected score at session t: intake - rate x (intake - best) x ln t, in the better direction."""
    bound_z: float = Field(default=1.96, gt=0)
    """One-sided prediction bound in residual SDs (1.96 ≈ 97.5 %)."""
    min_session: int = Field(default=3, ge=2)
    """First session (counted from intake = 1) at which the curve is checked."""
    consecutive: int = Field(default=2, ge=1)
    """Sessions in a row off track before the signal fires (one noisy score is not a trend)."""


class DropoutRule(_Config):
    """Alliance concern while the outcome has not reliably improved after some sessions."""

    enabled: bool = True
    severity: Severity = "moderate"
    min_outcome_sessions: int = Field(default=5, ge=2)
    """Outcome sessions (intake included) before "no improvement" means anything."""
    concern_sessions: int = Field(default=3, ge=1)
    """Alliance sessions in a row with a concern."""
    improvement_fraction: float = Field(default=0.25, gt=0)
    """The outcome counts as improving once it is this fraction of the reliable change better than intake.

    An outcome already outside its clinical range (when it has a cutoff) also counts as improving."""


class Rules(_Config):
    """Parameters of every rule."""

    rearm_after: int = Field(default=2, ge=1)
    """A rule that fired fires again only after its condition was false this many sessions in a row."""

    critical_item: CriticalItemRule = Field(default_factory=CriticalItemRule)
    alliance_below_cutoff: BelowCutoffRule = Field(default_factory=BelowCutoffRule)
    alliance_drop: DropRule = Field(default_factory=DropRule)
    alliance_session_drop: SessionDropRule = Field(default_factory=SessionDropRule)
    alliance_repaired: RepairRule = Field(default_factory=RepairRule)
    alliance_decline: DeclineRule = Field(default_factory=DeclineRule)
    outcome_reliable_deterioration: DeteriorationRule = Field(default_factory=DeteriorationRule)
    outcome_reliable_improvement: ImprovementRule = Field(default_factory=ImprovementRule)
    outcome_not_on_track: NotOnTrackRule = Field(default_factory=NotOnTrackRule)
    dropout_risk: DropoutRule = Field(default_factory=DropoutRule)


class InstrumentParams(_Config):
    """Per-instrument numbers in raw points; unset values fall back (see :class:`Fallbacks`)."""

    cutoff: float | None = None
    """Overrides the instrument spec's cutoff."""
    concern_when: ConcernWhen | None = None
    """Overrides which side of the cutoff is concerning."""
    far_margin: float | None = Field(default=None, gt=0)
    """Points beyond the cutoff that make a below-cutoff alliance score ``far_severity``."""
    between_sd: float | None = Field(default=None, gt=0)
    """Between-client SD used as a floor under the client's own SD (Gumz et al. 2012)."""
    drop_from_last: float | None = Field(default=None, gt=0)
    """Minimum fall from the previous session for an alliance drop."""
    decline_points: float | None = Field(default=None, gt=0)
    """Minimum fitted fall across the decline window."""
    reliable_change: float | None = Field(default=None, gt=0)
    """Overrides the spec's reliable change."""
    reliable_change_fallback: float | None = Field(default=None, gt=0)
    """Used only when the spec gives no reliable change."""
    residual_sd: float | None = Field(default=None, gt=0)
    """Spread of scores around the expected curve; default reliable change / 1.96 (= S_diff)."""


class Fallbacks(_Config):
    """Defaults as fractions of an instrument's scale range (max - min)."""

    far_margin: float = Field(default=0.15, gt=0)
    between_sd: float = Field(default=0.075, gt=0)
    drop_from_last: float = Field(default=0.05, gt=0)
    decline_points: float = Field(default=0.1, gt=0)


@dataclass(frozen=True, slots=True)
class ResolvedParams:
    """Everything the rules need about one instrument, resolved once from spec + rule set."""

    sign: float
    """+1 when higher is better, -1 when higher is worse: ``sign x score`` is "goodness"."""
    best: float
    """The scale's best end (max when higher is better)."""
    cutoff: float | None
    concern_when: ConcernWhen | None
    far_margin: float
    between_sd: float
    drop_from_last: float
    decline_points: float
    reliable_change: float | None
    residual_sd: float | None


class RuleSet(_Config):
    """One effective, versioned rule set (the default, or the default merged with a clinic's overrides)."""

    version: str = Field(min_length=1, max_length=64)
    rules: Rules = Field(default_factory=Rules)
    instruments: dict[str, InstrumentParams] = Field(default_factory=dict)
    fallbacks: Fallbacks = Field(default_factory=Fallbacks)
    variants: dict[str, str] = Field(default_factory=dict)
    """Instrument id → name of a variant of its spec (e.g. ``PHQ-9: lowe_mcid``), applied when this rule
    set's sessions are scored: by the scoring service per clinic, and by ``rapport signals`` /
    ``rapport backtest``. A variant changes scoring (bands, cutoff, reliable change) and so signals."""

    def params_for(self, instrument: str, scale: ScaleInfo) -> ResolvedParams:
        """The resolved numbers for one instrument and scale (memoised by value, in bounded caches)."""
        memo = _MEMO.get(id(self))
        if memo is None or memo.ruleset is not self:
            if len(_MEMO) >= _MEMO_LIMIT:
                _MEMO.clear()
            memo = _MEMO[id(self)] = _ParamsMemo(self)
        return memo.get(instrument, scale)


class _ParamsMemo:
    """One rule set's resolved parameters, keyed by (instrument, scale value), bounded.

    The live monitor decodes a fresh :class:`ScaleInfo` from its stored state at every event, so the
    key is the scale's value, never its identity (an identity key would keep every decoded scale
    alive). The backtest hands the same scale object to every episode, and hashing a model per
    episode costs more than the rules: ``last`` remembers the latest scale object per instrument
    (at most :data:`_MEMO_LIMIT` instruments) and answers by identity first.
    """

    __slots__ = ("by_value", "last", "ruleset")

    def __init__(self, ruleset: RuleSet) -> None:
        self.ruleset = ruleset
        """Kept alive so that its id, the key of :data:`_MEMO`, cannot be reused while cached."""
        self.by_value: dict[tuple[str, tuple[Any, ...]], ResolvedParams] = {}
        self.last: dict[str, tuple[ScaleInfo, ResolvedParams]] = {}

    def get(self, instrument: str, scale: ScaleInfo) -> ResolvedParams:
        """The parameters of ``instrument`` on ``scale``, resolved once per value."""
        last = self.last.get(instrument)
        if last is not None and last[0] is scale:
            return last[1]
        key = (instrument, tuple(scale.__dict__.values()))
        params = self.by_value.get(key)
        if params is None:
            if len(self.by_value) >= _MEMO_LIMIT:
                self.by_value.clear()
            params = self.by_value[key] = _resolve(self.ruleset, instrument, scale)
        if len(self.last) >= _MEMO_LIMIT and instrument not in self.last:
            self.last.clear()
        self.last[instrument] = (scale, params)
        return params


# id(rule set) → its memo (which keeps the rule set alive so the id is not reused). Both levels are
# bounded by _MEMO_LIMIT entries and cleared when full.
_MEMO: dict[int, _ParamsMemo] = {}
_MEMO_LIMIT = 256


def _resolve(rules: RuleSet, instrument: str, scale: ScaleInfo) -> ResolvedParams:
    p = rules.instruments.get(instrument, InstrumentParams())
    fb = rules.fallbacks
    span = max(scale.max - scale.min, 1e-9)
    higher_better = scale.direction == "higher_is_better"
    rc = p.reliable_change or scale.reliable_change or p.reliable_change_fallback
    residual = p.residual_sd or (rc / 1.96 if rc else None)
    cutoff = p.cutoff if p.cutoff is not None else scale.cutoff
    concern_when = p.concern_when or scale.concern_when
    if cutoff is not None and concern_when is None:
        # A cutoff without a side would be ambiguous; the instrument's direction settles it.
        concern_when = "below" if higher_better else "at_or_above"
    return ResolvedParams(
        sign=1.0 if higher_better else -1.0,
        best=scale.max if higher_better else scale.min,
        cutoff=cutoff,
        concern_when=concern_when if cutoff is not None else None,
        far_margin=p.far_margin or fb.far_margin * span,
        between_sd=p.between_sd or fb.between_sd * span,
        drop_from_last=p.drop_from_last or fb.drop_from_last * span,
        decline_points=p.decline_points or fb.decline_points * span,
        reliable_change=rc,
        residual_sd=residual,
    )


class RuleBook(_Config):
    """A base rule set plus per-clinic overrides; :meth:`for_clinic` gives the effective one."""

    base: RuleSet
    clinics: dict[str, dict[str, Any]] = Field(default_factory=dict)

    _by_clinic: dict[str, RuleSet] = PrivateAttr(default_factory=dict)

    def model_post_init(self, context: Any, /) -> None:
        """Build every clinic's effective rule set up front, so a bad override fails at load time."""
        for clinic_id, override in self.clinics.items():
            self._by_clinic[clinic_id] = _clinic_ruleset(self.base, clinic_id, override)

    def for_clinic(self, clinic_id: str | None) -> RuleSet:
        """The effective rule set of a clinic (the base when the clinic has no overrides)."""
        if clinic_id is None:
            return self.base
        return self._by_clinic.get(clinic_id, self.base)

    def with_variants(self, variants: Mapping[str, str]) -> RuleBook:
        """This book with ``variants`` added to the base rule set's (every clinic inherits them; a
        clinic's own ``variants`` still win). The base version gains ``+variants.<hash>``, so every
        signal records that scoring differed. Itself when ``variants`` is empty."""
        if not variants:
            return self
        merged = {**self.base.variants, **variants}
        tag = hashlib.sha256(json.dumps(merged, sort_keys=True).encode()).hexdigest()[:8]
        base = RuleSet.model_validate(
            {**self.base.model_dump(), "variants": merged, "version": f"{self.base.version}+variants.{tag}"}
        )
        return RuleBook(base=base, clinics=self.clinics)


def _clinic_ruleset(base: RuleSet, clinic_id: str, override: Mapping[str, Any]) -> RuleSet:
    override = dict(override)
    own_version = override.pop("version", None)
    if own_version is None:
        # An unversioned override still gets a version that changes whenever its content does.
        canonical = json.dumps(override, sort_keys=True, default=str).encode()
        own_version = hashlib.sha256(canonical).hexdigest()[:8]
    merged = deep_merge(base.model_dump(exclude_unset=False), override)
    merged["version"] = f"{base.version}+{clinic_id}.{own_version}"
    return RuleSet.model_validate(merged)


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` merged onto ``base``: mappings merge recursively, anything else is replaced."""
    out = dict(base)
    for key, value in override.items():
        current = out.get(key)
        if isinstance(value, Mapping) and isinstance(current, Mapping):
            out[key] = deep_merge(current, value)
        else:
            out[key] = value
    return out


def rulebook_from_mapping(data: Mapping[str, Any], *, onto: Mapping[str, Any] | None = None) -> RuleBook:
    """Validate a rule-set document (optionally deep-merged onto another one) as a :class:`RuleBook`.

    The document must name its ``version``. Its ``clinics`` replace nothing from ``onto``: clinic
    overrides of both are merged clinic by clinic.
    """
    if not isinstance(data, Mapping):
        raise ValueError("a rule-set document must be a mapping")
    if "version" not in data:
        raise ValueError("a rule-set document must name its 'version'")
    doc = dict(data)
    clinics = dict(doc.pop("clinics", None) or {})
    if onto is not None:
        base_doc = dict(onto)
        base_clinics = dict(base_doc.pop("clinics", None) or {})
        doc = deep_merge(base_doc, doc)
        clinics = deep_merge(base_clinics, clinics)
    return RuleBook(base=RuleSet.model_validate(doc), clinics=clinics)


def _default_document() -> dict[str, Any]:
    text = resources.files("shared.rules").joinpath(DEFAULT_RULESET_FILE).read_text(encoding="utf-8")
    loaded = yaml.safe_load(text)
    if not isinstance(loaded, dict):
        raise ValueError("the packaged default rule set is not a mapping")
    return loaded


@lru_cache(maxsize=1)
def default_rulebook() -> RuleBook:
    """The packaged default rule book (read on first use, never at import time)."""
    return rulebook_from_mapping(_default_document())


def default_ruleset() -> RuleSet:
    """The packaged default rule set, without clinic overrides."""
    return default_rulebook().base


def load_rulebook(path: str | Path | None = None) -> RuleBook:
    """Load a rule-set YAML file merged onto the packaged default (or the default when ``path`` is None)."""
    if path is None:
        return default_rulebook()
    loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    if not isinstance(loaded, dict):
        raise ValueError("a rule-set file must contain a mapping")
    return rulebook_from_mapping(loaded, onto=_default_document())
