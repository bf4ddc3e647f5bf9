"""The one generic scorer: a pure function of an instrument spec and a survey's answers.

Everything that depends only on the spec is compiled once per spec into a :class:`Plan` (cached):
item tuples in integer answer units, per-item lookup tables (answer → scored units, reversal
included), band and concern of every reachable total, the ``ScaleInfo``. :func:`score` then runs a
fast path that does its per-item work in C (``itemgetter``, ``map``, ``sum``) and falls back to a
general path, item by item, for anything unusual: a missing, unknown, off-grid or non-numeric answer.

Arithmetic runs on integers in the spec's answer units (tenths for one-decimal visual-analogue
items), which keeps totals exact: 9.1 + 8.7 + 9.0 + 9.1 is 35.9, never 35.900000000000006.

Failures name item ids and counts only, never answer values (they are PHI).
"""

from __future__ import annotations

import math
import operator
import re
from bisect import bisect_right
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

from shared.contracts.events import DeadLetterReason, ScaleInfo
from shared.instruments.spec import InstrumentSpec

Answers = Mapping[str, float | int | None]
"""Answers by item id; ``None`` or an absent key means not answered."""

_CONCERN_OPS: dict[str, Callable[[float, float], bool]] = {
    "below": operator.lt,
    "at_or_below": operator.le,
    "at_or_above": operator.ge,
    "above": operator.gt,
}
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")
_GRID_TOLERANCE = 1e-6
_TABLE_LIMIT = 100_000
_NUMBERS = frozenset({int, float})
_lookup = dict.__getitem__
_new_result: Any = tuple.__new__


class ScoreResult(NamedTuple):
    """A scored survey: the total, its interpretation and what was estimated or unknown.

    Immutable. A ``NamedTuple`` rather than a frozen dataclass because it is built once per survey on
    the hot path and a frozen dataclass costs about six times as much to construct.
    """

    instrument: str
    version: str
    """Version of the spec used (``<version>+<variant>`` when a variant was applied)."""
    domain: str
    total: float
    subscales: dict[str, float]
    band: str | None
    concern: bool | None
    """On the concerning side of the cutoff; ``None`` when the instrument has no cutoff."""
    critical_items: list[str]
    """Critical items the client endorsed (answer above the item's threshold)."""
    risk_unknown: list[str]
    """Critical items left unanswered: risk is unknown, never imputed."""
    prorated: bool
    """The total (or a subscale) was estimated from incomplete answers."""
    missing_items: list[str]
    scale: ScaleInfo


@dataclass(frozen=True, slots=True)
class ScoreFailure:
    """A survey that could not be scored; ``detail`` names item ids and counts only (no answers)."""

    reason: DeadLetterReason
    detail: str
    instrument: str | None = None
    critical_items: list[str] = field(default_factory=list)
    """Critical items endorsed (with a valid answer) even though the total is not scorable: a risk
    answer must never be lost because other items are missing or invalid."""
    risk_unknown: list[str] = field(default_factory=list)
    """Critical items left unanswered, when the answers were otherwise valid."""


# (item id, lowest answer, highest answer, min+max for reversed items else None, step) in units.
_Item = tuple[str, int, int, int | None, int]
_FastFn = Callable[[Answers], ScoreResult | None]


@dataclass(frozen=True, slots=True)
class Plan:
    """Everything about a spec the scorer needs, precomputed by :func:`compile_plan`."""

    spec: InstrumentSpec
    instrument: str
    version: str
    domain: str
    units: int
    """Integer units per answer point (10 for one-decimal items)."""
    res: int
    """Resolution of a sum total, in units (gcd of item steps)."""
    n: int
    items: tuple[_Item, ...]
    unscored: tuple[_Item, ...]
    known: frozenset[str]
    mean: bool
    subscales: tuple[tuple[str, tuple[int, ...]], ...]
    """(name, member indices)."""
    critical: tuple[tuple[str, float], ...]
    never_impute: frozenset[str]
    band_mins: tuple[float, ...]
    band_names: tuple[str, ...]
    cutoff: float | None
    concern_op: Callable[[float, float], bool] | None
    scale: ScaleInfo
    fast: _FastFn
    """Scores a complete, on-grid survey, or returns ``None`` for the general path to handle."""
    fast_typed: _FastFn
    """:attr:`fast` for answers already validated as ints/floats (``shared.contracts.events.Answer``):
    it skips the per-answer type check, which only matters for ``bool`` (an int, and ``True == 1``)."""


def _getter(ids: Sequence[str]) -> Callable[[Any], tuple[Any, ...]]:
    """``itemgetter`` that always returns a tuple (a one-id itemgetter returns the bare value)."""
    if len(ids) == 1:
        only = ids[0]
        return lambda mapping: (mapping[only],)
    return operator.itemgetter(*ids)


def _answer_table(item: _Item, units: int) -> dict[float, int]:
    """Every allowed answer → its scored value in units (reversal applied).

    Keys are the answers as numbers; an int and an equal float hash alike, so ``2`` and ``2.0`` (or
    ``9`` and ``9.0``) both hit, and a one-decimal float is the same double the JSON parser produces.
    """
    _iid, lo, hi, rs, step = item
    return {(u / units if units != 1 else u): (u if rs is None else rs - u) for u in range(lo, hi + 1, step)}


def _interpret(plan: Plan, total: float) -> tuple[str | None, bool | None]:
    """(band, concern) of a final total."""
    band = plan.band_names[bisect_right(plan.band_mins, total) - 1] if plan.band_names else None
    op = plan.concern_op
    concern = op(total, plan.cutoff) if op is not None and plan.cutoff is not None else None
    return band, concern


def compile_plan(spec: InstrumentSpec) -> Plan:
    """Precompute the scoring plan of ``spec`` (pure; :func:`plan_for` caches it per spec object)."""
    units = spec.scale_units

    def item_tuple(item: Any, reverse: bool) -> _Item:
        lo, hi = round(item.min * units), round(item.max * units)
        return (item.id, lo, hi, lo + hi if reverse else None, round(item.step * units))

    rev = set(spec.reversed)
    items = tuple(item_tuple(i, i.id in rev) for i in spec.items)
    unscored = tuple(item_tuple(i, False) for i in spec.unscored_items)
    index = {i.id: k for k, i in enumerate(spec.items)}
    subscales = tuple((name, tuple(index[m] for m in members)) for name, members in spec.subscales.items())
    res = spec.total_resolution
    bands = spec.bands or ()
    cutoff = spec.cutoff
    rc = spec.reliable_change
    scale = ScaleInfo(
        min=spec.total_min,
        max=spec.total_max,
        direction=spec.direction,
        cutoff=cutoff.value if cutoff else None,
        concern_when=cutoff.concern_when if cutoff else None,
        reliable_change=rc.threshold if rc else None,
    )
    band_mins = tuple(b.min for b in bands)
    band_names = tuple(b.name for b in bands)
    op = _CONCERN_OPS[cutoff.concern_when] if cutoff else None
    partial = Plan(
        spec=spec,
        instrument=spec.id,
        version=spec.version,
        domain=spec.domain,
        units=units,
        res=res.numerator * (units // res.denominator),
        n=len(items),
        items=items,
        unscored=unscored,
        known=frozenset(index) | {i[0] for i in unscored},
        mean=spec.aggregation == "mean",
        subscales=subscales,
        critical=tuple((c.item, c.threshold) for c in spec.critical_items),
        never_impute=frozenset(spec.never_impute),
        band_mins=band_mins,
        band_names=band_names,
        cutoff=cutoff.value if cutoff else None,
        concern_op=op,
        scale=scale,
        fast=_no_fast,
        fast_typed=_no_fast,
    )
    return replace(partial, fast=_make_fast(partial, True), fast_typed=_make_fast(partial, False))


def _no_fast(answers: Answers) -> ScoreResult | None:
    # Placeholder while the plan the fast paths close over is being built.
    return None


def _make_fast(plan: Plan, check_types: bool) -> _FastFn:
    """The fast path of ``plan``: a closure over everything it needs (closure reads are cheap)."""
    n = plan.n
    units = plan.units
    getter = _getter([i[0] for i in plan.items])
    tables = tuple(_answer_table(i, units) for i in plan.items)
    n_unscored = len(plan.unscored)
    unscored_getter = _getter([i[0] for i in plan.unscored]) if plan.unscored else None
    unscored_tables = tuple(_answer_table(i, units) for i in plan.unscored)
    sub_getters = tuple(
        (name, operator.itemgetter(*idx) if len(idx) > 1 else None, idx[0], len(idx))
        for name, idx in plan.subscales
    )
    mean = plan.mean
    # One answer grid and no subscales (most instruments): validate with one set operation and add
    # the raw answers; reversed items are corrected afterwards (Σ scored = Σ raw − 2·Σ rev + Σ(min+max)).
    grids = {(i[1], i[2], i[4]) for i in plan.items}
    simple = len(grids) == 1 and not sub_getters
    valid = frozenset(tables[0])
    rev_ids = [i[0] for i in plan.items if i[3] is not None]
    rev_getter = _getter(rev_ids) if rev_ids else None
    rev_const = sum(i[3] for i in plan.items if i[3] is not None)
    lo_u = sum(min(t.values()) for t in tables)
    hi_u = sum(max(t.values()) for t in tables)
    # (band, concern) of every reachable sum, looked up by index (means are interpreted as they come).
    table: tuple[tuple[str | None, bool | None], ...] | None = None
    if not mean and hi_u - lo_u <= _TABLE_LIMIT:
        table = tuple(_interpret(plan, t / units) for t in range(lo_u, hi_u + 1))
    crits = plan.critical
    crit_one, crit_thr = crits[0] if len(crits) == 1 else (None, 0.0)
    if float(crit_thr).is_integer():
        crit_thr = int(crit_thr)  # int > int compares faster than int > float
    instrument, version, domain, scale = plan.instrument, plan.version, plan.domain, plan.scale

    def fast(answers: Answers) -> ScoreResult | None:
        extra = len(answers) - n
        try:
            if extra:
                # Only a survey carrying every unscored item (e.g. PHQ-9 item 10) stays on this path.
                if extra != n_unscored or unscored_getter is None:
                    return None
                got = unscored_getter(answers)
                sum(map(_lookup, unscored_tables, got))
                if check_types and not _NUMBERS.issuperset(map(type, got)):
                    return None
            # An absent item → KeyError; an unhashable answer → TypeError.
            vals = getter(answers)
            if simple:
                if not valid.issuperset(vals):
                    return None
                raw = sum(vals)
                # On-grid floats are the nearest doubles of multiples of 1/units: rounding their sum
                # times units recovers the exact integer sum.
                t = raw if units == 1 and raw.__class__ is int else round(raw * units)
                if rev_getter is not None:
                    raw = sum(rev_getter(answers))
                    t += rev_const - 2 * (raw if units == 1 and raw.__class__ is int else round(raw * units))
            else:
                # Per-item tables: an answer off the grid or out of range → KeyError.
                scored = list(map(_lookup, tables, vals))
                t = sum(scored)
        except (KeyError, TypeError):
            return None
        # bool is an int and True == 1, so the tables alone would take it for an answer.
        if check_types and not _NUMBERS.issuperset(map(type, vals)):
            return None
        sub: dict[str, float] = {}
        if sub_getters:
            for name, sub_get, first, size in sub_getters:
                s = sum(sub_get(scored)) if sub_get is not None else scored[first]
                sub[name] = round(s / (size * units), 2) if mean else s / units
        total = round(t / (n * units), 2) if mean else t / units
        band, concern = table[t - lo_u] if table is not None else _interpret(plan, total)
        if crit_one is not None:
            critical = [crit_one] if answers[crit_one] > crit_thr else []  # type: ignore[operator]
        elif crits:
            critical = [iid for iid, thr in crits if answers[iid] > thr]  # type: ignore[operator]
        else:
            critical = []
        result: ScoreResult = _new_result(
            ScoreResult,
            (instrument, version, domain, total, sub, band, concern, critical, [], False, [], scale),
        )
        return result

    if not simple or table is None:
        return fast

    def fast_simple(answers: Answers) -> ScoreResult | None:
        # `fast` specialised for the common case (one grid, a sum, no subscales): same results.
        if len(answers) != n:
            return fast(answers)
        try:
            vals = getter(answers)
            if not valid.issuperset(vals):
                return None
        except (KeyError, TypeError):
            return None
        if check_types and not _NUMBERS.issuperset(map(type, vals)):
            return None
        raw = sum(vals)
        t = raw if units == 1 and raw.__class__ is int else round(raw * units)
        if rev_getter is not None:
            raw = sum(rev_getter(answers))
            t += rev_const - 2 * (raw if units == 1 and raw.__class__ is int else round(raw * units))
        band, concern = table[t - lo_u]
        if crit_one is not None:
            critical = [crit_one] if answers[crit_one] > crit_thr else []  # type: ignore[operator]
        elif crits:
            critical = [iid for iid, thr in crits if answers[iid] > thr]  # type: ignore[operator]
        else:
            critical = []
        result: ScoreResult = _new_result(
            ScoreResult,
            (instrument, version, domain, t / units, {}, band, concern, critical, [], False, [], scale),
        )
        return result

    return fast_simple


_PLANS: dict[int, Plan] = {}
_PLAN_CACHE_LIMIT = 4096


def plan_for(spec: InstrumentSpec) -> Plan:
    """The cached plan of ``spec`` (keyed by object identity; the plan holds the spec alive)."""
    plan = _PLANS.get(id(spec))
    if plan is None or plan.spec is not spec:
        if len(_PLANS) >= _PLAN_CACHE_LIMIT:
            _PLANS.clear()
        plan = _PLANS[id(spec)] = compile_plan(spec)
    return plan


def score(spec: InstrumentSpec, answers: Answers) -> ScoreResult | ScoreFailure:
    """Score one survey of ``spec``'s instrument.

    ``answers`` maps item ids to numbers; ``None`` or an absent key means not answered. Items are
    range- and grid-checked, reversed items scored ``min + max − answer``, missing items handled by
    the spec's policy; band and concern come from the final (possibly prorated) total. Returns a
    :class:`ScoreFailure` with reason ``unknown_item``, ``out_of_range_answer`` or ``too_many_missing``
    instead of raising.
    """
    plan = _PLANS.get(id(spec))
    if plan is None or plan.spec is not spec:
        plan = plan_for(spec)
    return plan.fast(answers) or score_general(plan, answers)


def score_plan(plan: Plan, answers: Answers) -> ScoreResult | ScoreFailure:
    """:func:`score` with a precompiled plan (see :func:`plan_for`)."""
    return plan.fast(answers) or score_general(plan, answers)


def unknown_instrument(instrument_id: object) -> ScoreFailure:
    """The failure for a survey whose instrument has no spec (the id is shown only if id-shaped)."""
    shown = instrument_id if isinstance(instrument_id, str) and _SAFE_ID.match(instrument_id) else None
    detail = f"no spec for instrument {shown!r}" if shown else "no spec for this instrument id"
    return ScoreFailure("unknown_instrument", detail, None)


# --------------------------------------------------------------------------- general (slow) path


def _round_half_up(num: int, den: int) -> int:
    """``num / den`` rounded to the nearest integer, halves up (exact; ``den`` > 0)."""
    return (2 * num + den) // (2 * den)


def _to_units(a: object, units: int) -> int | None:
    """An answer in integer units, or ``None`` when it is not a finite number on the unit grid."""
    if a.__class__ is bool or not isinstance(a, int | float):
        return None
    if isinstance(a, int):
        return a * units
    if not math.isfinite(a):
        return None
    u = a * units
    r = round(u)
    return r if abs(u - r) <= _GRID_TOLERANCE else None


def _ids(ids: Sequence[str], limit: int = 20) -> str:
    shown = ", ".join(ids[:limit])
    return shown + (f" (+{len(ids) - limit} more)" if len(ids) > limit else "")


def _describe_unknown(keys: list[str]) -> str:
    # Unknown keys come from the sender: show only those shaped like item ids, never anything else.
    safe = sorted(k for k in keys if isinstance(k, str) and _SAFE_ID.match(k))
    detail = f"{len(keys)} unknown item id(s)"
    if safe:
        detail += f": {_ids(safe, 10)}"
    if len(safe) < len(keys):
        detail += f" ({len(keys) - len(safe)} not shown: not shaped like item ids)"
    return detail


def _risk(plan: Plan, answers: Answers) -> tuple[list[str], list[str]]:
    """(endorsed critical items, unanswered critical items) from the raw, already validated answers."""
    endorsed: list[str] = []
    unknown: list[str] = []
    for iid, threshold in plan.critical:
        a = answers.get(iid)
        if a is None:
            unknown.append(iid)
        elif a > threshold:
            endorsed.append(iid)
    return endorsed, unknown


def _valid_endorsed(plan: Plan, answers: Answers) -> list[str]:
    """Critical items endorsed with a valid answer, for a survey failing on *other* items: a risk
    answer must reach a clinician even when the rest of the survey cannot be scored."""
    ranges = {item[0]: item for item in (*plan.items, *plan.unscored)}
    endorsed: list[str] = []
    for iid, threshold in plan.critical:
        a = answers.get(iid)
        item = ranges.get(iid)
        if a is None or item is None or isinstance(a, bool):
            continue
        u = _to_units(a, plan.units)
        _, lo, hi, _, step = item
        if u is not None and lo <= u <= hi and not (u - lo) % step and a > threshold:
            endorsed.append(iid)
    return endorsed


def score_general(plan: Plan, answers: Answers) -> ScoreResult | ScoreFailure:
    """Score item by item: full validation and the missing-item policies (the fast path defers here)."""
    instrument = plan.instrument
    unknown = [k for k in answers if k not in plan.known]
    if unknown:
        return ScoreFailure(
            "unknown_item", _describe_unknown(unknown), instrument, _valid_endorsed(plan, answers)
        )
    units = plan.units
    bad: list[str] = []
    vals: list[int | None] = []
    for iid, lo, hi, rs, step in (*plan.items, *plan.unscored):
        a = answers.get(iid)
        if a is None:
            vals.append(None)
            continue
        u = _to_units(a, units)
        if u is None or u < lo or u > hi or (u - lo) % step:
            bad.append(iid)
            vals.append(None)
            continue
        vals.append(u if rs is None else rs - u)
    if bad:
        return ScoreFailure(
            "out_of_range_answer",
            f"{len(bad)} answer(s) not a number, outside the item range or off the answer grid: "
            f"items {_ids(bad)}",
            instrument,
            _valid_endorsed(plan, answers),
        )
    vals = vals[: plan.n]
    spec = plan.spec
    missing = [item[0] for item, v in zip(plan.items, vals, strict=True) if v is None]
    endorsed, risk_unknown = _risk(plan, answers)

    def fail(detail: str) -> ScoreFailure:
        return ScoreFailure("too_many_missing", detail, instrument, endorsed, risk_unknown)

    policy = spec.missing
    if len(missing) > policy.max_missing:
        return fail(
            f"{len(missing)} of {plan.n} items missing, at most {policy.max_missing} allowed: "
            f"items {_ids(missing)}"
        )
    for name, idx in plan.subscales:
        m = sum(1 for k in idx if vals[k] is None)
        if m == len(idx) and missing:
            return fail(f"subscale {name}: all {m} items missing")
        if policy.max_missing_per_subscale is not None and m > policy.max_missing_per_subscale:
            return fail(
                f"subscale {name}: {m} of {len(idx)} items missing, at most "
                f"{policy.max_missing_per_subscale} allowed"
            )

    res = plan.res
    subscales: dict[str, float] = {}
    if not missing:
        full = [v for v in vals if v is not None]
        total_u = sum(full)
        for name, idx in plan.subscales:
            subscales[name] = _aggregate(plan, sum(full[k] for k in idx), len(idx))
        total = _aggregate(plan, total_u, plan.n)
    elif policy.method == "prorate":
        answered = [v for v in vals if v is not None]
        total = _prorate(plan, sum(answered), len(answered), plan.n, res)
        for name, idx in plan.subscales:
            got = [v for v in (vals[k] for k in idx) if v is not None]
            subscales[name] = _prorate(plan, sum(got), len(got), len(idx), res)
    else:  # subscale_mean (method "none" allows no missing item, so it never reaches here)
        blocked = [iid for iid in missing if iid in plan.never_impute]
        if blocked:
            return fail(f"items {_ids(blocked)} are never imputed and are missing")
        filled: list[int] = [0] * plan.n
        for name, idx in plan.subscales:
            got = [v for v in (vals[k] for k in idx) if v is not None]
            for k in idx:
                v = vals[k]
                if v is None:
                    _iid, lo, hi, _rs, step = plan.items[k]
                    # Rounded to the item's own grid and kept within its range (a subscale may mix
                    # items with different ranges).
                    v = lo + step * _round_half_up(sum(got) - lo * len(got), len(got) * step)
                    v = min(max(v, lo), hi)
                filled[k] = v
            subscales[name] = _aggregate(plan, sum(filled[k] for k in idx), len(idx))
        total = _aggregate(plan, sum(filled), plan.n)
    band, concern = _interpret(plan, total)
    return ScoreResult(
        instrument,
        plan.version,
        plan.domain,
        total,
        subscales,
        band,
        concern,
        endorsed,
        risk_unknown,
        bool(missing),
        missing,
        plan.scale,
    )


def score_total(plan: Plan, total: object) -> ScoreResult | ScoreFailure:
    """Take a pre-scored total (a history that kept totals only): checked against the instrument's
    range and total grid, interpreted with its bands and cutoff, its reliable change in the scale.
    No item is known, so every critical item is reported in ``risk_unknown``: the risk status is
    unknown, never assumed absent."""
    instrument = plan.instrument
    spec = plan.spec
    units = plan.units
    u = _to_units(total, units) if type(total) in _NUMBERS else None
    lo, hi = round(spec.total_min * units), round(spec.total_max * units)
    grid = 1 if plan.mean else plan.res
    if u is None or u < lo or u > hi or (u - lo) % grid:
        return ScoreFailure(
            "out_of_range_answer",
            f"pre-scored total not a number, outside {spec.total_min:g}..{spec.total_max:g} or off the "
            "total grid",
            instrument,
        )
    value = round(u / units, 2) if plan.mean else u / units
    band, concern = _interpret(plan, value)
    return ScoreResult(
        instrument,
        plan.version,
        plan.domain,
        value,
        {},
        band,
        concern,
        [],
        [item for item, _threshold in plan.critical],
        False,
        [],
        plan.scale,
    )


def _aggregate(plan: Plan, total_units: int, count: int) -> float:
    """A sum in units as a number: the sum itself, or the mean over ``count`` items (2 decimals)."""
    if plan.mean:
        return round(total_units / (count * plan.units), 2)
    return total_units / plan.units


def _prorate(plan: Plan, answered_sum: int, answered: int, size: int, res: int) -> float:
    """Prorated score: mean of the answered items × ``size``, rounded to the total grid, halves up."""
    if plan.mean:
        # The mean of the answered items already is the prorated mean.
        return round(answered_sum / (answered * plan.units), 2)
    return res * _round_half_up(answered_sum * size, answered * res) / plan.units
