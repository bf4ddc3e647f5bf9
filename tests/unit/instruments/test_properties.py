"""Property tests of the scorer over every spec: ranges, monotonicity, path agreement, PHI-free failures."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.instruments import InstrumentSpec, ScoreFailure, ScoreResult, load_registry, score
from shared.instruments.scorer import plan_for, score_general

from .conftest import CLINIC_DIR

# Synthetic specs that reach what the packaged ones do not: mean aggregation, mixed grids, a reversed
# VAS item, subscale_mean with a never-imputed critical item, a per-subscale missing limit.
SYNTHETIC = [
    {
        "id": "MEAN-5",
        "name": "mean",
        "version": "1",
        "domain": "outcome",
        "direction": "higher_is_worse",
        "items": {"count": 5, "min": 1, "max": 7},
        "aggregation": "mean",
        "reversed": ["2"],
        "subscales": {"a": ["1", "2"], "b": ["3", "4", "5"]},
        "missing": {"method": "prorate", "max_missing": 2, "max_missing_per_subscale": 1},
        "bands": [{"name": "low", "min": 1, "max": 3.5}, {"name": "high", "min": 3.6, "max": 7}],
        "cutoff": {"value": 4, "concern_when": "above"},
        "citation": "synthetic",
    },
    {
        "id": "MIXED",
        "name": "mixed",
        "version": "1",
        "domain": "outcome",
        "direction": "higher_is_worse",
        "items": [
            {"id": "1", "min": 0, "max": 4},
            {"id": "2", "min": 0, "max": 10, "step": 0.5},
            {"id": "3", "min": 1, "max": 5},
            {"id": "4", "min": 0, "max": 4},
        ],
        "reversed": ["1", "2"],
        "subscales": {"x": ["1", "3"], "y": ["2", "4"]},
        "missing": {"method": "subscale_mean", "max_missing": 2},
        "never_impute": ["3"],
        "critical_items": [{"item": "3", "threshold": 3}],
        "cutoff": {"value": 10, "concern_when": "at_or_above"},
        "citation": "synthetic",
    },
    {
        "id": "VAS-REV",
        "name": "vas",
        "version": "1",
        "domain": "alliance",
        "direction": "higher_is_better",
        "items": {"count": 3, "min": 0, "max": 10, "step": 0.1},
        "reversed": ["3"],
        "missing": {"method": "prorate", "max_missing": 1},
        "bands": [{"name": "low", "min": 0, "max": 14.9}, {"name": "high", "min": 15, "max": 30}],
        "cutoff": {"value": 20, "concern_when": "below"},
        "citation": "synthetic",
    },
]


def _all_specs() -> list[InstrumentSpec]:
    reg = load_registry(extra_dirs=[CLINIC_DIR])
    specs = []
    for spec in reg.values():
        specs.append(spec)
        specs.extend(spec.with_variant(name) for name in spec.variants)
    specs.extend(InstrumentSpec.model_validate(data) for data in SYNTHETIC)
    return specs


SPECS = _all_specs()
SPEC_IDS = [s.version and f"{s.id}@{s.version}" for s in SPECS]
PROFILE = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def grid(spec: InstrumentSpec, item_id: str) -> list[int | float]:
    """Every allowed answer of an item, as the JSON parser would deliver it."""
    item = next(i for i in spec.items if i.id == item_id)
    lo, hi, step = Fraction(str(item.min)), Fraction(str(item.max)), Fraction(str(item.step))
    values = []
    k = 0
    while lo + k * step <= hi:
        v = lo + k * step
        values.append(int(v) if v.denominator == 1 and step.denominator == 1 else float(v))
        k += 1
    return values


@st.composite
def answers_for(draw: st.DrawFn, spec: InstrumentSpec, complete: bool = False) -> dict[str, Any]:
    answers: dict[str, Any] = {}
    for item in spec.items:
        if not complete and draw(st.integers(0, 9)) == 0:
            if draw(st.booleans()):
                answers[item.id] = None
            continue
        answers[item.id] = draw(st.sampled_from(grid(spec, item.id)))
    return answers


def band_index(spec: InstrumentSpec, band: str | None) -> int:
    return [b.name for b in spec.bands or ()].index(band) if band is not None else -1


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
@PROFILE
@given(data=st.data())
def test_totals_and_subscales_lie_within_their_ranges(spec: InstrumentSpec, data: st.DataObject) -> None:
    answers = data.draw(answers_for(spec))
    result = score(spec, answers)
    if isinstance(result, ScoreFailure):
        assert result.reason == "too_many_missing"
        return
    assert spec.total_min <= result.total <= spec.total_max
    assert result.scale.min == spec.total_min and result.scale.max == spec.total_max
    for name, value in result.subscales.items():
        low, high = spec.subscale_range(name)
        assert low <= value <= high, name
    assert set(result.subscales) == set(spec.subscales)
    assert (result.band is None) == (spec.bands is None)
    assert (result.concern is None) == (spec.cutoff is None)
    assert result.prorated == bool(result.missing_items)
    missing = [i.id for i in spec.items if answers.get(i.id) is None]
    assert result.missing_items == missing
    critical = {c.item for c in spec.critical_items}
    assert result.risk_unknown == [i for i in missing if i in critical]


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
@PROFILE
@given(data=st.data())
def test_raising_the_scored_value_of_an_item_never_lowers_the_total_band_or_severity(
    spec: InstrumentSpec, data: st.DataObject
) -> None:
    answers = data.draw(answers_for(spec))
    answered = [i for i, v in answers.items() if v is not None]
    if not answered:
        return
    item = data.draw(st.sampled_from(answered))
    values = grid(spec, item)
    k = values.index(answers[item])
    # Non-reversed: a higher answer scores higher; reversed: a lower answer does.
    k2 = k - 1 if item in spec.reversed else k + 1
    if not 0 <= k2 < len(values):
        return
    before, after = score(spec, answers), score(spec, {**answers, item: values[k2]})
    if isinstance(before, ScoreFailure):
        assert isinstance(after, ScoreFailure)  # same missing items → same scorability
        return
    assert isinstance(after, ScoreResult)
    assert after.total >= before.total
    assert band_index(spec, after.band) >= band_index(spec, before.band)
    if spec.direction == "higher_is_worse":
        assert not (before.concern and not after.concern)
    else:
        assert not (after.concern and not before.concern)


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
@PROFILE
@given(data=st.data())
def test_fast_general_and_validated_paths_agree(spec: InstrumentSpec, data: st.DataObject) -> None:
    answers = data.draw(answers_for(spec, complete=data.draw(st.booleans())))
    plan = plan_for(spec)
    expected = score_general(plan, answers)
    assert score(spec, answers) == expected
    assert (plan.fast_typed(answers) or score_general(plan, answers)) == expected
    # Whole numbers sent as floats (2.0 for 2) score the same.
    as_floats = {k: (float(v) if isinstance(v, int) else v) for k, v in answers.items()}
    assert score(spec, as_floats) == expected
    assert score(spec, answers) == expected  # idempotent; the answers were not touched


@pytest.mark.parametrize(
    "spec", [s for s in SPECS if s.scale_units == 10], ids=lambda s: f"{s.id}@{s.version}"
)
@PROFILE
@given(data=st.data())
def test_one_decimal_totals_are_exact(spec: InstrumentSpec, data: st.DataObject) -> None:
    result = score(spec, data.draw(answers_for(spec, complete=True)))
    assert isinstance(result, ScoreResult)
    assert result.total == round(result.total, 1)
    assert len(repr(result.total).partition(".")[2]) <= 1


@pytest.mark.parametrize("instrument", ["PHQ-9", "GAD-7", "CORE-10"])
@PROFILE
@given(data=st.data())
def test_prorating_is_mean_times_n_rounded_halves_up(instrument: str, data: st.DataObject) -> None:
    spec = next(s for s in SPECS if s.id == instrument and s.variant is None)
    answers = data.draw(answers_for(spec, complete=True))
    ids = [i.id for i in spec.items]
    dropped = data.draw(st.lists(st.sampled_from(ids), unique=True, max_size=spec.missing.max_missing))
    for item in dropped:
        del answers[item]
    scored = [
        (4 - v if i in spec.reversed else v)
        for i, v in answers.items()
        if i in ids  # CORE-10 reverses 0-4
    ]
    n, k = len(ids), len(scored)
    expected = int((Fraction(sum(scored) * n, k) * 2 + 1) // 2)
    result = score(spec, answers)
    assert isinstance(result, ScoreResult)
    assert result.total == expected
    assert result.prorated == bool(dropped)


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_failures_name_items_and_counts_never_answer_values(
    spec: InstrumentSpec, data: st.DataObject
) -> None:
    answers = data.draw(answers_for(spec, complete=True))
    item = data.draw(st.sampled_from([i.id for i in spec.items]))
    secret: Any = data.draw(st.sampled_from([987654, -424242, 31337.5, 271.828, "self-harm", True]))
    result = score(spec, {**answers, item: secret})
    assert isinstance(result, ScoreFailure)
    assert result.reason == "out_of_range_answer"
    assert item in result.detail
    assert str(secret) not in result.detail
    unknown = score(spec, {**answers, "zz": 1, "Jane Doe": 2})
    assert isinstance(unknown, ScoreFailure) and unknown.reason == "unknown_item"
    assert "zz" in unknown.detail and "Jane" not in unknown.detail


def test_booleans_are_not_answers() -> None:
    spec = next(s for s in SPECS if s.id == "PHQ-9")
    result = score(spec, {str(i): (True if i == 1 else 0) for i in range(1, 10)})
    assert isinstance(result, ScoreFailure) and result.reason == "out_of_range_answer"


def test_a_missing_never_imputed_item_blocks_subscale_mean_imputation() -> None:
    spec = next(s for s in SPECS if s.id == "MIXED")
    result = score(spec, {"1": 1, "2": 2.5, "4": 2})
    assert isinstance(result, ScoreFailure) and result.reason == "too_many_missing"
    assert "never imputed" in result.detail and result.risk_unknown == ["3"]
    ok = score(spec, {"1": 1, "2": 2.5, "3": 4})
    assert isinstance(ok, ScoreResult) and ok.critical_items == ["3"] and ok.missing_items == ["4"]


def test_per_subscale_missing_limit() -> None:
    spec = next(s for s in SPECS if s.id == "MEAN-5")
    result = score(spec, {"1": 1, "2": 1, "3": 1})
    assert isinstance(result, ScoreFailure) and "subscale b: 2 of 3 items missing" in result.detail
