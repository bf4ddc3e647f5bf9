"""Loading instrument specs: the packaged ones plus clinic-supplied directories.

A clinic adds an instrument (or replaces a packaged one) by dropping a YAML spec into a directory it
passes in: a spec with the same ``id`` as a packaged one overrides it, later directories override
earlier ones. A clinic picks a published alternative default with ``variants={"K10": "andrews_slade"}``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from shared.contracts.events import SurveyResponse
from shared.instruments.scorer import (
    Answers,
    Plan,
    ScoreFailure,
    ScoreResult,
    plan_for,
    score_general,
    unknown_instrument,
)
from shared.instruments.spec import InstrumentSpec, SpecError

SPEC_SUFFIXES = (".yaml", ".yml")


class Registry(Mapping[str, InstrumentSpec]):
    """Instrument specs by id (an immutable ``Mapping``): ``get(id)`` returns ``None`` for an unknown id,
    ``registry[id]`` raises ``KeyError`` naming it."""

    __slots__ = ("_plans", "_specs")

    def __init__(self, specs: Mapping[str, InstrumentSpec] | Iterable[InstrumentSpec] = ()) -> None:
        """Build from a mapping id → spec or from specs (keyed by their id; later ones win)."""
        items = dict(specs) if isinstance(specs, Mapping) else {s.id: s for s in specs}
        for key, spec in items.items():
            if key != spec.id:
                raise SpecError(f"registry key {key!r} differs from the spec id {spec.id!r}")
        self._specs: dict[str, InstrumentSpec] = items
        # Compiled scoring plans by id, filled on first use (the registry itself never changes).
        self._plans: dict[str, Plan] = {}

    def __getitem__(self, instrument_id: str) -> InstrumentSpec:
        """The spec of ``instrument_id``; ``KeyError`` naming the id when there is none."""
        try:
            return self._specs[instrument_id]
        except KeyError:
            raise KeyError(f"unknown instrument {instrument_id!r}") from None

    def plan(self, instrument_id: str) -> Plan | None:
        """The compiled scoring plan of ``instrument_id`` (cached), or ``None`` when unknown."""
        plan = self._plans.get(instrument_id)
        if plan is None:
            spec = self._specs.get(instrument_id)
            if spec is None:
                return None
            plan = self._plans[instrument_id] = plan_for(spec)
        return plan

    def with_variants(self, variants: Mapping[str, str]) -> Registry:
        """This registry with named spec variants applied (``{"PHQ-9": "lowe_mcid"}``); itself when
        ``variants`` is empty. Raises :class:`SpecError` for an unknown instrument or variant."""
        if not variants:
            return self
        specs = dict(self._specs)
        for instrument_id, name in variants.items():
            spec = specs.get(instrument_id)
            if spec is None:
                raise SpecError(f"variants: no instrument {instrument_id!r} to apply variant {name!r} to")
            specs[instrument_id] = spec.with_variant(name)
        return Registry(specs)

    def __iter__(self) -> Iterator[str]:
        """Instrument ids, in loading order."""
        return iter(self._specs)

    def __len__(self) -> int:
        """Number of instruments."""
        return len(self._specs)

    def __repr__(self) -> str:
        """Ids and versions, for debugging."""
        inner = ", ".join(f"{s.id}@{s.version}" for s in self._specs.values())
        return f"Registry({inner})"


def score_survey(
    registry: Mapping[str, InstrumentSpec], instrument_id: str, answers: Answers
) -> ScoreResult | ScoreFailure:
    """Score a survey by instrument id; a ``unknown_instrument`` failure when the registry lacks it.

    ``answers`` may be any mapping (each answer is type-checked). For a validated
    :class:`~shared.contracts.events.SurveyResponse`, :func:`score_response` is faster.
    """
    if type(registry) is Registry:
        plan = registry._plans.get(instrument_id) or registry.plan(instrument_id)
    else:
        spec = registry.get(instrument_id)
        plan = plan_for(spec) if spec is not None else None
    if plan is None:
        return unknown_instrument(instrument_id)
    return plan.fast(answers) or score_general(plan, answers)


def score_response(registry: Registry, response: SurveyResponse) -> ScoreResult | ScoreFailure:
    """Score a validated survey of a ``SessionCompleted`` event — the scoring service's hot path.

    Same result as :func:`score_survey`; it trusts the contract's answer types (``StrictInt |
    StrictFloat | None``, so never ``bool``) and skips re-checking them. Don't pass a response built
    with ``model_construct``.
    """
    plan = registry._plans.get(response.instrument) or registry.plan(response.instrument)
    if plan is None:
        return unknown_instrument(response.instrument)
    answers = response.answers
    return plan.fast_typed(answers) or score_general(plan, answers)


def score_responses(
    registry: Registry, responses: Iterable[SurveyResponse]
) -> list[ScoreResult | ScoreFailure]:
    """:func:`score_response` for every survey of a session, in order (one call per session)."""
    plans = registry._plans
    out: list[ScoreResult | ScoreFailure] = []
    append = out.append
    for response in responses:
        plan = plans.get(response.instrument) or registry.plan(response.instrument)
        if plan is None:
            append(unknown_instrument(response.instrument))
            continue
        answers = response.answers
        append(plan.fast_typed(answers) or score_general(plan, answers))
    return out


def _format_errors(path: str, err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e.get("loc", ()))
        msg = str(e.get("msg", "")).removeprefix("Value error, ")
        lines.append(f"{path}: {loc}: {msg}" if loc else f"{path}: {msg}")
    return "invalid instrument spec\n  " + "\n  ".join(lines)


def parse_spec(data: Any, origin: str = "<spec>") -> InstrumentSpec:
    """Validate a spec already parsed from YAML/JSON; ``origin`` names it in error messages."""
    if not isinstance(data, dict):
        raise SpecError(f"{origin}: a spec file must hold a mapping at the top level")
    if "variant" in data:
        raise SpecError(
            f"{origin}: variant: chosen when loading (load_registry(variants=...)), not in a file"
        )
    try:
        return InstrumentSpec.model_validate(data)
    except ValidationError as err:
        raise SpecError(_format_errors(origin, err)) from None


def load_spec(path: str | Path) -> InstrumentSpec:
    """Load and validate one YAML spec file; :class:`SpecError` names the file and the field."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"{p}: cannot read the spec file ({exc.strerror or type(exc).__name__})") from None
    return _parse_text(text, str(p))


def _parse_text(text: str, origin: str) -> InstrumentSpec:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise SpecError(f"{origin}: not valid YAML{where}") from None
    return parse_spec(data, origin)


def _load_dir(directory: Path) -> dict[str, InstrumentSpec]:
    if not directory.is_dir():
        raise SpecError(f"{directory}: instrument directory does not exist")
    found: dict[str, InstrumentSpec] = {}
    origin: dict[str, Path] = {}
    for path in sorted(p for p in directory.iterdir() if p.suffix in SPEC_SUFFIXES and p.is_file()):
        spec = load_spec(path)
        if spec.id in found:
            raise SpecError(f"{path}: id {spec.id!r} is already defined by {origin[spec.id].name}")
        found[spec.id] = spec
        origin[spec.id] = path
    return found


def packaged_specs() -> dict[str, InstrumentSpec]:
    """The specs shipped in ``shared/instruments/specs`` (read from package resources)."""
    found: dict[str, InstrumentSpec] = {}
    for entry in sorted(
        resources.files("shared.instruments").joinpath("specs").iterdir(), key=lambda e: e.name
    ):
        if not entry.name.endswith(SPEC_SUFFIXES):
            continue
        spec = _parse_text(entry.read_text(encoding="utf-8"), f"shared/instruments/specs/{entry.name}")
        if spec.id in found:
            raise SpecError(f"shared/instruments/specs/{entry.name}: id {spec.id!r} is defined twice")
        found[spec.id] = spec
    return found


def load_registry(
    extra_dirs: Iterable[str | Path] = (),
    variants: Mapping[str, str] | None = None,
) -> Registry:
    """The packaged specs, overridden/extended by each clinic directory in turn, with variants applied.

    ``variants`` maps an instrument id to the name of a variant in its spec (e.g. ``{"SRS":
    "at_or_below_36"}``); an unknown id or variant raises :class:`SpecError`.
    """
    specs = packaged_specs()
    for directory in extra_dirs:
        specs.update(_load_dir(Path(directory)))
    return Registry(specs).with_variants(variants or {})


@functools.cache
def default_registry() -> Registry:
    """The packaged specs with their default settings, loaded once per process."""
    return load_registry()
