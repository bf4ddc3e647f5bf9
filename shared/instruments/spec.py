"""Instrument specifications: an instrument is data, checked by this schema, scored by one generic scorer.

A spec file (YAML) declares the items and their answer grid, reversed items, subscales, the missing-item
policy, bands, the clinical cutoff, the direction, reliable change and critical items. Everything a
clinic may legitimately choose differently (a band scheme, a cutoff comparator, a reliable-change
source) is either a named **variant** inside the spec file or a clinic-supplied spec with the same id.

Variants: a spec file may carry ``variants: {name: {field: value, ...}}``. A variant replaces whole
top-level fields (only ``bands``, ``cutoff``, ``missing``, ``reliable_change``, ``critical_items``,
``never_impute`` and ``notes`` may be replaced; an explicit ``null`` clears a field). Applying a variant
yields a spec whose ``version`` is ``"<version>+<variant>"``, so every score records the exact rules
used. Every variant is validated when the file is loaded, so a broken variant is rejected up front.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

Domain = Literal["alliance", "outcome"]
Direction = Literal["higher_is_better", "higher_is_worse"]
ConcernWhen = Literal["below", "at_or_below", "at_or_above", "above"]
Aggregation = Literal["sum", "mean"]
MissingMethod = Literal["prorate", "subscale_mean", "none"]

SpecId = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
VariantName = Annotated[str, Field(min_length=1, max_length=24, pattern=r"^[a-z0-9][a-z0-9_]*$")]
ItemRef = Annotated[str, Field(min_length=1, max_length=16, pattern=r"^[A-Za-z0-9_.-]+$")]

#: Fields a variant may replace; everything else (items, reversal, subscales...) defines the instrument.
VARIANT_FIELDS = ("bands", "cutoff", "missing", "reliable_change", "critical_items", "never_impute", "notes")

#: Finest answer grid supported: steps are multiples of 10**-MAX_DECIMALS.
MAX_DECIMALS = 3


class SpecError(ValueError):
    """An instrument spec (file, variant selection or directory) is invalid; the message names where."""


class _Spec(BaseModel):
    """Base of the spec schema: immutable and strict about unknown keys (typos in spec files fail)."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


def _decimals(x: float) -> int:
    """Number of decimal places of ``x`` as written (``0.1`` → 1, ``1`` → 0), capped at MAX_DECIMALS+1."""
    for d in range(MAX_DECIMALS + 1):
        scaled = x * 10**d
        if abs(scaled - round(scaled)) < 1e-9:
            return d
    return MAX_DECIMALS + 1


class ItemSpec(_Spec):
    """One item and its answer grid: ``min``, ``min + step``, ..., ``max``."""

    id: ItemRef
    min: float
    """Lowest allowed answer."""
    max: float
    """Highest allowed answer."""
    step: float = 1
    """Answer grid: 1 for integer items, 0.1 for visual-analogue items with one decimal."""

    @model_validator(mode="after")
    def _check_grid(self) -> Self:
        if not (math.isfinite(self.min) and math.isfinite(self.max)):
            raise ValueError(f"item {self.id!r}: min and max must be finite numbers")
        if self.max <= self.min:
            raise ValueError(f"item {self.id!r}: max ({self.max:g}) must be greater than min ({self.min:g})")
        if not (self.step > 0 and math.isfinite(self.step)):
            raise ValueError(f"item {self.id!r}: step must be a positive number")
        if _decimals(self.step) > MAX_DECIMALS:
            raise ValueError(f"item {self.id!r}: step {self.step:g} has more than {MAX_DECIMALS} decimals")
        span = Fraction(str(self.max)) - Fraction(str(self.min))
        if (span / Fraction(str(self.step))).denominator != 1:
            raise ValueError(
                f"item {self.id!r}: min..max ({self.min:g}..{self.max:g}) is not on the step grid "
                f"({self.step:g})"
            )
        return self


class MissingPolicy(_Spec):
    """What to do when items are unanswered."""

    method: MissingMethod = "none"
    """``prorate``: total = mean of answered items × number of items, rounded to the answer grid, halves
    up (NHS Data Dictionary). ``subscale_mean``: a missing item takes the rounded mean of the answered
    items of its subscale (OQ-45 style). ``none``: every item is required."""
    max_missing: int = Field(default=0, ge=0)
    """Most items that may be missing overall; more → the survey is not scorable."""
    max_missing_per_subscale: int | None = Field(default=None, ge=0)
    """Most items that may be missing within any one subscale (``null``: no per-subscale limit)."""

    @model_validator(mode="after")
    def _check_none(self) -> Self:
        if self.method == "none" and (self.max_missing or self.max_missing_per_subscale):
            raise ValueError("method 'none' requires max_missing 0 (nothing is imputed)")
        return self


class Band(_Spec):
    """A named severity band over the total, bounds inclusive."""

    name: str = Field(min_length=1, max_length=40, pattern=r"^[a-z][a-z0-9_]*$")
    min: float
    max: float


class Cutoff(_Spec):
    """Clinical cutoff and which side of it is concerning."""

    value: float
    concern_when: ConcernWhen
    """``below``: total < value; ``at_or_below``: ≤; ``at_or_above``: ≥; ``above``: >."""
    source: str = ""
    """Where the cutoff comes from; mark unconfirmed values ``[unconfirmed]``."""


class ReliableChange(_Spec):
    """Raw-point change that counts as reliable: a published ``value``, or Jacobson–Truax from SD and r."""

    value: float | None = Field(default=None, gt=0)
    """Published threshold in raw points."""
    sd: float | None = Field(default=None, gt=0)
    """Standard deviation of the reference sample (with ``reliability``)."""
    reliability: float | None = Field(default=None, gt=0, lt=1)
    """Reliability (e.g. Cronbach's α or test–retest r) of the reference sample."""
    source: str = ""

    @model_validator(mode="after")
    def _one_way(self) -> Self:
        computed = self.sd is not None or self.reliability is not None
        if self.value is not None and computed:
            raise ValueError("give either value or sd + reliability, not both")
        if self.value is None and (self.sd is None or self.reliability is None):
            raise ValueError("give value, or both sd and reliability")
        return self

    @property
    def threshold(self) -> float:
        """The threshold in raw points: ``value``, or 1.96·√2·SD·√(1−r) rounded to 2 decimals."""
        if self.value is not None:
            return self.value
        if self.sd is None or self.reliability is None:  # excluded by validation; keeps mypy informed
            raise SpecError("reliable_change: give value, or both sd and reliability")
        return round(1.96 * math.sqrt(2.0) * self.sd * math.sqrt(1.0 - self.reliability), 2)


class CriticalItem(_Spec):
    """A risk item: endorsed when the client's raw answer is greater than ``threshold``."""

    item: ItemRef
    threshold: float = 0


class Variant(_Spec):
    """Replacement values for some top-level fields of a spec (see module docstring)."""

    description: str = ""
    bands: tuple[Band, ...] | None = None
    cutoff: Cutoff | None = None
    missing: MissingPolicy | None = None
    reliable_change: ReliableChange | None = None
    critical_items: tuple[CriticalItem, ...] | None = None
    never_impute: tuple[ItemRef, ...] | None = None
    notes: str | None = None


def _expand_items(raw: Any) -> Any:
    """Expand the shorthand ``{count: n, min, max, step}`` into the item list ``"1".."n"``."""
    if isinstance(raw, dict) and "count" in raw:
        extra = set(raw) - {"count", "min", "max", "step"}
        if extra:
            raise ValueError(f"items: unknown keys {sorted(extra)} in the shorthand form")
        count = raw["count"]
        if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 200:
            raise ValueError("items: count must be an integer from 1 to 200")
        base = {k: raw[k] for k in ("min", "max", "step") if k in raw}
        return [{"id": str(i), **base} for i in range(1, count + 1)]
    return raw


class InstrumentSpec(_Spec):
    """A scoring specification of one instrument version (see the module docstring for files)."""

    id: SpecId
    """Canonical instrument id, e.g. ``PHQ-9``; the ``instrument`` of surveys and scores."""
    name: str = Field(min_length=1, max_length=200)
    version: str = Field(min_length=1, max_length=64)
    """Version of this spec; recorded with every score (a variant appends ``+<variant>``)."""
    domain: Domain
    items: tuple[ItemSpec, ...] = Field(max_length=200)
    """Scored items with ids ``"1".."n"`` in order. Shorthand: ``{count, min, max, step}``."""
    unscored_items: tuple[ItemSpec, ...] = ()
    """Items accepted and range-checked but never scored (e.g. PHQ-9 item 10, difficulty)."""
    reversed: tuple[ItemRef, ...] = ()
    """Items scored ``min + max − answer`` before aggregation."""
    subscales: dict[str, tuple[ItemRef, ...]] = Field(default_factory=dict)
    """Subscale name → item ids; subscales aggregate like the total."""
    aggregation: Aggregation = "sum"
    """``sum`` of item scores, or their ``mean`` (rounded to 2 decimals)."""
    missing: MissingPolicy = MissingPolicy()
    never_impute: tuple[ItemRef, ...] = ()
    """Items never given an estimated value: under ``subscale_mean`` a missing one makes the survey not
    scorable; ``prorate`` estimates only the total, never an item, so it stays allowed. Either way a
    missing critical item is reported in ``risk_unknown``."""
    bands: tuple[Band, ...] | None = None
    """Contiguous bands covering the whole total range, ascending; ``null`` when none are published."""
    cutoff: Cutoff | None = None
    direction: Direction
    reliable_change: ReliableChange | None = None
    critical_items: tuple[CriticalItem, ...] = ()
    total_range: tuple[float, float] | None = None
    """Optional declared total range; checked against the range implied by the items."""
    citation: str = Field(min_length=1)
    license: str = ""
    """Licence note (who owns the instrument, whether commercial use needs a licence)."""
    notes: str = ""
    """Choices made where sources disagree, and ``[unconfirmed]`` defaults."""
    variants: dict[VariantName, Variant] = Field(default_factory=dict)
    """Named alternative defaults (see the module docstring)."""
    variant: VariantName | None = None
    """The variant applied to this spec; set by :meth:`with_variant`, never written in a file."""

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, dict) and "items" in data:
            data = {**data, "items": _expand_items(data["items"])}
        return data

    # ------------------------------------------------------------------ derived values

    @property
    def item_ids(self) -> tuple[str, ...]:
        """Scored item ids in order."""
        return tuple(i.id for i in self.items)

    @property
    def scale_units(self) -> int:
        """Integer units per answer point: 1 for integer grids, 10 for one-decimal grids."""
        d = max(_decimals(v) for i in (*self.items, *self.unscored_items) for v in (i.step, i.min, i.max))
        return int(10**d)

    @property
    def total_min(self) -> float:
        """Lowest possible total."""
        low = sum(Fraction(str(i.min)) for i in self.items)
        return float(low / len(self.items)) if self.aggregation == "mean" else float(low)

    @property
    def total_max(self) -> float:
        """Highest possible total."""
        high = sum(Fraction(str(i.max)) for i in self.items)
        return float(high / len(self.items)) if self.aggregation == "mean" else float(high)

    @property
    def total_resolution(self) -> Fraction:
        """Smallest difference between two totals of a sum-aggregated spec (gcd of the item steps)."""
        units = self.scale_units
        g = 0
        for i in self.items:
            g = math.gcd(g, round(i.step * units))
        return Fraction(g, units)

    def subscale_range(self, name: str) -> tuple[float, float]:
        """Lowest and highest possible score of subscale ``name``."""
        by_id = {i.id: i for i in self.items}
        members = [by_id[m] for m in self.subscales[name]]
        low = sum(Fraction(str(i.min)) for i in members)
        high = sum(Fraction(str(i.max)) for i in members)
        if self.aggregation == "mean":
            return float(low / len(members)), float(high / len(members))
        return float(low), float(high)

    def with_variant(self, name: str) -> InstrumentSpec:
        """This spec with variant ``name`` applied; raises :class:`SpecError` for an unknown name."""
        if self.variant is not None:
            raise SpecError(f"{self.id}: variant {self.variant!r} is already applied")
        variant = self.variants.get(name)
        if variant is None:
            known = ", ".join(sorted(self.variants)) or "none"
            raise SpecError(f"{self.id}: unknown variant {name!r} (known: {known})")
        data = self.model_dump(mode="python", exclude={"variants", "variant", "version"})
        for field in variant.model_fields_set & set(VARIANT_FIELDS):
            value = getattr(variant, field)
            data[field] = value.model_dump() if isinstance(value, BaseModel) else value
        data["version"] = f"{self.version}+{name}"
        data["variant"] = name
        return InstrumentSpec.model_validate(data)

    # ------------------------------------------------------------------ validation

    @model_validator(mode="after")
    def _check(self) -> Self:
        ids = self.item_ids
        if not ids:
            raise ValueError("items: an instrument needs at least one item")
        expected = tuple(str(n) for n in range(1, len(ids) + 1))
        if ids != expected:
            raise ValueError(f"items: ids must be '1'..'{len(ids)}' in order")
        known = set(ids)
        unscored = [i.id for i in self.unscored_items]
        if len(set(unscored)) != len(unscored) or known & set(unscored):
            raise ValueError("unscored_items: ids must be unique and distinct from the scored items")
        if _decimals(1 / self.scale_units) > MAX_DECIMALS:
            raise ValueError(f"items: answer grids finer than {MAX_DECIMALS} decimals are not supported")
        self._check_refs(known)
        self._check_missing(len(ids))
        self._check_range()
        self._check_bands()
        self._check_cutoff()
        self._check_variants()
        return self

    def _check_refs(self, known: set[str]) -> None:
        for field, refs in (("reversed", self.reversed), ("never_impute", self.never_impute)):
            for ref in refs:
                if ref not in known:
                    raise ValueError(f"{field}: item {ref!r} is not an item of this instrument")
            if len(set(refs)) != len(refs):
                raise ValueError(f"{field}: items are listed twice")
        for name, members in self.subscales.items():
            if not members:
                raise ValueError(f"subscales.{name}: a subscale needs at least one item")
            if len(set(members)) != len(members):
                raise ValueError(f"subscales.{name}: items are listed twice")
            for ref in members:
                if ref not in known:
                    raise ValueError(f"subscales.{name}: item {ref!r} is not an item of this instrument")
        by_id = {i.id: i for i in self.items}
        seen: set[str] = set()
        for crit in self.critical_items:
            item = by_id.get(crit.item)
            if item is None:
                raise ValueError(f"critical_items: item {crit.item!r} is not an item of this instrument")
            if crit.item in seen:
                raise ValueError(f"critical_items: item {crit.item!r} is listed twice")
            seen.add(crit.item)
            if not item.min <= crit.threshold < item.max:
                raise ValueError(
                    f"critical_items: threshold of item {crit.item!r} must lie in [min, max) of the item"
                )

    def _check_missing(self, n: int) -> None:
        policy = self.missing
        if policy.max_missing >= n:
            raise ValueError(f"missing: max_missing must be less than the number of items ({n})")
        if policy.method == "subscale_mean":
            if not self.subscales:
                raise ValueError("missing: method 'subscale_mean' needs subscales")
            counts: dict[str, int] = {}
            for members in self.subscales.values():
                for ref in members:
                    counts[ref] = counts.get(ref, 0) + 1
            orphan = [i for i in self.item_ids if counts.get(i, 0) != 1]
            if orphan:
                raise ValueError(
                    "missing: method 'subscale_mean' needs every item in exactly one subscale; "
                    f"not so for items {', '.join(orphan)}"
                )
        if policy.max_missing_per_subscale is not None and not self.subscales:
            raise ValueError("missing: max_missing_per_subscale is set but there are no subscales")

    def _check_range(self) -> None:
        if self.total_range is None:
            return
        low, high = self.total_range
        if not (math.isclose(low, self.total_min) and math.isclose(high, self.total_max)):
            raise ValueError(
                f"total_range: declared {low:g}..{high:g} but the items give "
                f"{self.total_min:g}..{self.total_max:g}"
            )

    def _check_bands(self) -> None:
        if self.bands is None:
            return
        if not self.bands:
            raise ValueError("bands: give at least one band, or null for none")
        names = [b.name for b in self.bands]
        if len(set(names)) != len(names):
            raise ValueError("bands: band names must be unique")
        low, high = Fraction(str(self.total_min)), Fraction(str(self.total_max))
        res = self.total_resolution
        first, last = self.bands[0], self.bands[-1]
        if Fraction(str(first.min)) != low:
            raise ValueError(f"bands: first band {first.name!r} must start at the lowest total {low}")
        if Fraction(str(last.max)) != high:
            raise ValueError(f"bands: last band {last.name!r} must end at the highest total {high}")
        for band in self.bands:
            if band.max < band.min:
                raise ValueError(f"bands: band {band.name!r} has max below min")
        for prev, nxt in zip(self.bands, self.bands[1:], strict=False):
            gap = Fraction(str(nxt.min)) - Fraction(str(prev.max))
            if gap <= 0:
                raise ValueError(
                    f"bands: bands {prev.name!r} and {nxt.name!r} overlap (or are not ascending)"
                )
            # A sum moves in steps of `res`: the next band starts exactly one step on. A mean can fall
            # between two bands, so it only needs no gap wider than one item step.
            if (self.aggregation == "sum" and gap != res) or (self.aggregation == "mean" and gap > res):
                raise ValueError(
                    f"bands: gap between {prev.name!r} (max {prev.max:g}) and {nxt.name!r} "
                    f"(min {nxt.min:g}); totals move in steps of {float(res):g}"
                )
        if self.aggregation == "sum":
            for band in self.bands:
                for bound in (band.min, band.max):
                    if ((Fraction(str(bound)) - low) / res).denominator != 1:
                        raise ValueError(f"bands: bound {bound:g} of {band.name!r} is not a reachable total")

    def _check_cutoff(self) -> None:
        if self.cutoff is None:
            return
        if not self.total_min <= self.cutoff.value <= self.total_max:
            raise ValueError(
                f"cutoff: value {self.cutoff.value:g} lies outside the total range "
                f"{self.total_min:g}..{self.total_max:g}"
            )
        worse_high = self.direction == "higher_is_worse"
        high_side = self.cutoff.concern_when in ("at_or_above", "above")
        if worse_high != high_side:
            raise ValueError(
                f"cutoff: concern_when {self.cutoff.concern_when!r} contradicts direction {self.direction!r}"
            )

    def _check_variants(self) -> None:
        if self.variant is not None and self.variants:
            raise ValueError("variants: a spec with an applied variant carries no further variants")
        for name in self.variants:
            try:
                self.with_variant(name)
            except ValueError as exc:  # pydantic's ValidationError is a ValueError too
                raise ValueError(f"variants.{name}: {_compact_errors(exc)}") from None


def _compact_errors(exc: Exception) -> str:
    """A compact message of a nested validation error: its problems, one per clause."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        parts = []
        for err in errors():
            msg = str(err.get("msg", "")).removeprefix("Value error, ")
            loc = ".".join(str(p) for p in err.get("loc", ()))
            parts.append(f"{loc}: {msg}" if loc else msg)
        return "; ".join(parts)
    return str(exc)
