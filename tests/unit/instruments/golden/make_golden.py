"""Regenerate the golden files: ``python tests/unit/instruments/golden/make_golden.py``.

Expected values are NOT computed by the scorer: they come from the band tables, cutoffs and missing-item
rules typed in below (transcribed from the published scoring rules) and from plain arithmetic on the
answers. Each case says how it was derived. Review a diff of the ``.jsonl`` files like code.

Line format: ``{"case", "instrument", "variant"?, "answers", "expected"}``; ``expected`` is either the
scored fields or ``{"valid": false, "reason": ...}``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

Case = dict[str, Any]


def ids(n: int) -> list[str]:
    return [str(i) for i in range(1, n + 1)]


def fill(total: int, n: int, hi: int, lo: int = 0, order: list[int] | None = None) -> list[int]:
    """Answers lo..hi on n items whose plain sum is ``total``, filling items in ``order`` greedily."""
    values = [lo] * n
    rest = total - lo * n
    for k in order or range(n):
        take = min(hi - lo, rest)
        values[k] += take
        rest -= take
    assert rest == 0, "target total out of reach"
    return values


def band_of(table: Sequence[tuple[str, float, float]], total: float) -> str | None:
    for name, low, high in table:
        if low <= total <= high:
            return name
    return None


def half_up(x: Fraction) -> int:
    return int((x * 2 + 1) // 2)


def ok(total: float, band: str | None, concern: bool | None, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "valid": True,
        "total": total,
        "band": band,
        "subscales": {},
        "concern": concern,
        "critical_items": [],
        "prorated": False,
        "risk_unknown": [],
        "missing_items": [],
    }
    out.update(extra)
    return out


def bad(reason: str) -> dict[str, Any]:
    return {"valid": False, "reason": reason}


def as_answers(values: list[Any], drop: tuple[str, ...] = (), null: tuple[str, ...] = ()) -> dict[str, Any]:
    answers = {str(i): v for i, v in enumerate(values, start=1) if str(i) not in drop}
    for item in null:
        answers[item] = None
    return answers


# --------------------------------------------------------------------------- PHQ-9 / GAD-7

PHQ9_BANDS = [
    ("minimal", 0, 4),
    ("mild", 5, 9),
    ("moderate", 10, 14),
    ("moderately_severe", 15, 19),
    ("severe", 20, 27),
]
GAD7_BANDS = [("minimal", 0, 4), ("mild", 5, 9), ("moderate", 10, 14), ("severe", 15, 21)]


def phq9() -> list[Case]:
    cases: list[Case] = []

    def add(case: str, answers: dict[str, Any], expected: dict[str, Any]) -> None:
        cases.append({"case": case, "instrument": "PHQ-9", "answers": answers, "expected": expected})

    def full(values: list[int]) -> dict[str, Any]:
        total = sum(values)
        crit = ["9"] if values[8] > 0 else []
        return ok(total, band_of(PHQ9_BANDS, total), total >= 10, critical_items=crit)

    # External checks (worked examples).
    for values in ([0, 0, 0, 1, 2, 1, 3, 2, 1], [1, 2, 3, 0, 1, 2, 1, 0, 1], [3] * 9):
        add(f"external check {values} -> {sum(values)}", as_answers(values), full(values))
    # Every band boundary, item 9 kept at 0 where possible (items 1-8 reach 24).
    for total in (0, 4, 5, 9, 10, 14, 15, 19, 20, 24):
        values = fill(total, 9, 3, order=list(range(8)))
        add(f"band boundary total {total}", as_answers(values), full(values))
    add("critical: item 9 = 1 endorses", as_answers([0] * 8 + [1]), full([0] * 8 + [1]))
    add("critical: item 9 = 3 endorses", as_answers([0] * 8 + [3]), full([0] * 8 + [3]))
    add("item 10 (difficulty) accepted, not scored", as_answers([1] * 9) | {"10": 3}, full([1] * 9))
    add("float on the grid (2.0) is accepted", as_answers([2.0] + [0] * 8), full([2] + [0] * 8))
    # Prorating: mean of answered × 9, halves up (NHS).
    vals = [1, 1, 1, 1, 1, 1, 1, 1, 0]
    t = half_up(Fraction(sum(vals[1:]) * 9, 8))  # 7 × 9 / 8 = 7.875 → 8
    add(
        "1 missing (item 1 absent) prorated",
        as_answers(vals, drop=("1",)),
        ok(t, band_of(PHQ9_BANDS, t), t >= 10, prorated=True, missing_items=["1"]),
    )
    vals = [0, 1, 1, 1, 1, 0, 0, 0, 0]  # 8 answered (item 1 null), sum 4: 4 × 9 / 8 = 4.5 → 5 (not 4)
    t = half_up(Fraction(4 * 9, 8))
    add(
        "prorate rounds halves up: 4.5 -> 5 (mild)",
        as_answers(vals, null=("1",)),
        ok(t, band_of(PHQ9_BANDS, t), t >= 10, prorated=True, missing_items=["1"]),
    )
    vals = [0, 0, 2, 2, 2, 1, 1, 0, 0]  # items 1, 2 missing; 7 answered sum 8: 72 / 7 = 10.29 → 10
    t = half_up(Fraction(8 * 9, 7))
    add(
        "2 missing prorated (limit)",
        as_answers(vals, drop=("1", "2")),
        ok(t, band_of(PHQ9_BANDS, t), t >= 10, prorated=True, missing_items=["1", "2"]),
    )
    add("3 missing: not scorable", as_answers([1] * 9, drop=("1", "2", "3")), bad("too_many_missing"))
    add("all null: not scorable", as_answers([None] * 9), bad("too_many_missing"))
    add("no answers: not scorable", {}, bad("too_many_missing"))
    vals = [1, 1, 1, 1, 1, 1, 1, 1, 0]  # item 9 missing: 8 × 9 / 8 = 9, risk unknown
    add(
        "item 9 missing: prorated, risk unknown",
        as_answers(vals, drop=("9",)),
        ok(9, "mild", False, prorated=True, missing_items=["9"], risk_unknown=["9"]),
    )
    add(
        "item 9 null with item 1 missing: risk unknown",
        as_answers([0, 3, 3, 3, 1, 0, 0, 0, 0], null=("1", "9")),
        ok(
            half_up(Fraction(10 * 9, 7)),
            "moderate",
            True,
            prorated=True,
            missing_items=["1", "9"],
            risk_unknown=["9"],
        ),
    )
    add("out of range: 4", as_answers([4] + [0] * 8), bad("out_of_range_answer"))
    add("out of range: -1", as_answers([-1] + [0] * 8), bad("out_of_range_answer"))
    add("off the grid: 2.5", as_answers([2.5] + [0] * 8), bad("out_of_range_answer"))
    add("out of range: item 10 = 4", as_answers([0] * 9) | {"10": 4}, bad("out_of_range_answer"))
    add("unknown item 11", as_answers([0] * 9) | {"11": 1}, bad("unknown_item"))
    return cases


def gad7() -> list[Case]:
    cases: list[Case] = []

    def add(case: str, answers: dict[str, Any], expected: dict[str, Any]) -> None:
        cases.append({"case": case, "instrument": "GAD-7", "answers": answers, "expected": expected})

    for total in (0, 4, 5, 9, 10, 14, 15, 21):
        values = fill(total, 7, 3)
        add(
            f"band boundary total {total}",
            as_answers(values),
            ok(total, band_of(GAD7_BANDS, total), total >= 10),
        )
    vals = [0, 1, 1, 1, 0, 0, 0]  # item 1 missing; 6 answered sum 3: 21 / 6 = 3.5 → 4
    t = half_up(Fraction(3 * 7, 6))
    add(
        "1 missing, prorate halves up 3.5 -> 4",
        as_answers(vals, drop=("1",)),
        ok(t, "minimal", False, prorated=True, missing_items=["1"]),
    )
    vals = [0, 0, 2, 2, 2, 2, 1]  # 2 missing; 5 answered sum 9: 63 / 5 = 12.6 → 13
    t = half_up(Fraction(9 * 7, 5))
    add(
        "2 missing prorated (limit)",
        as_answers(vals, drop=("1", "2")),
        ok(t, "moderate", True, prorated=True, missing_items=["1", "2"]),
    )
    add("3 missing: not scorable", as_answers([1] * 7, null=("1", "2", "3")), bad("too_many_missing"))
    add("out of range: 5", as_answers([5] + [0] * 6), bad("out_of_range_answer"))
    add("off the grid: 1.5", as_answers([1.5] + [0] * 6), bad("out_of_range_answer"))
    add("unknown item 8", as_answers([0] * 7) | {"8": 0}, bad("unknown_item"))
    return cases


# --------------------------------------------------------------------------- CORE-10

CORE10_BANDS = [
    ("low", 0, 10),
    ("mild", 11, 14),
    ("moderate", 15, 19),
    ("moderately_severe", 20, 24),
    ("severe", 25, 40),
]
CORE10_REVERSED = {2, 3}


def core10_raw(scored: list[int]) -> list[int]:
    """Raw answers giving these item scores (items 2 and 3 are reverse-scored: raw = 4 − score)."""
    return [4 - s if i in CORE10_REVERSED else s for i, s in enumerate(scored, start=1)]


def core10() -> list[Case]:
    cases: list[Case] = []

    def add(case: str, answers: dict[str, Any], expected: dict[str, Any]) -> None:
        cases.append({"case": case, "instrument": "CORE-10", "answers": answers, "expected": expected})

    def full(raw: list[int]) -> dict[str, Any]:
        scored = [4 - r if i in CORE10_REVERSED else r for i, r in enumerate(raw, start=1)]
        total = sum(scored)
        return ok(
            total, band_of(CORE10_BANDS, total), total >= 11, critical_items=["6"] if raw[5] > 0 else []
        )

    # Band boundaries; item 6 (risk) filled last so it stays 0 below 36.
    order = [0, 1, 2, 3, 4, 6, 7, 8, 9, 5]
    for total in (0, 10, 11, 14, 15, 19, 20, 24, 25, 40):
        raw = core10_raw(fill(total, 10, 4, order=order))
        add(f"band boundary total {total}", as_answers(raw), full(raw))
    add("all raw 0: reversed items 2 and 3 score 4 each -> 8", as_answers([0] * 10), full([0] * 10))
    add("reversed item 2: raw 4 scores 0", as_answers([0, 4, 0, 0, 0, 0, 0, 0, 0, 0]), ok(4, "low", False))
    add("reversed item 3: raw 4 scores 0", as_answers([0, 0, 4, 0, 0, 0, 0, 0, 0, 0]), ok(4, "low", False))
    add(
        "reversed items 2 and 3 raw 4, item 1 raw 4",
        as_answers([4, 4, 4, 0, 0, 0, 0, 0, 0, 0]),
        ok(4, "low", False),
    )
    add(
        "critical: item 6 = 1 endorses",
        as_answers([0, 4, 4, 0, 0, 1, 0, 0, 0, 0]),
        ok(1, "low", False, critical_items=["6"]),
    )
    raw = [2] * 10  # item 1 missing; 9 answered, each scores 2: 10 × 18 / 9 = 20; item 6 = 2 endorsed
    add(
        "1 missing prorated 10 x sum / answered",
        as_answers(raw, drop=("1",)),
        ok(20, "moderately_severe", True, prorated=True, missing_items=["1"], critical_items=["6"]),
    )
    raw = [1, 0, 4, 1, 1, 0, 1, 1, 1, 1]  # item 2 (reversed) missing; scored answered: 1,0,1,1,0,1,1,1,1 = 7
    t = half_up(Fraction(10 * 7, 9))  # 7.78 → 8
    add(
        "missing reversed item 2, prorated",
        as_answers(raw, null=("2",)),
        ok(t, "low", False, prorated=True, missing_items=["2"]),
    )
    raw = [3, 1, 1, 3, 3, 0, 3, 3, 3, 3]  # item 6 missing: scored answered = 3,3,3,3,3,3,3,3,3 = 27 → 30
    add(
        "item 6 missing: prorated, risk unknown",
        as_answers(raw, drop=("6",)),
        ok(30, "severe", True, prorated=True, missing_items=["6"], risk_unknown=["6"]),
    )
    add("2 missing: not scorable", as_answers([1] * 10, drop=("1", "2")), bad("too_many_missing"))
    add("out of range: 5", as_answers([5] + [0] * 9), bad("out_of_range_answer"))
    add("out of range: -1 on a reversed item", as_answers([0, -1] + [0] * 8), bad("out_of_range_answer"))
    add("off the grid: 0.5", as_answers([0.5] + [0] * 9), bad("out_of_range_answer"))
    add("unknown item 11", as_answers([0] * 10) | {"11": 0}, bad("unknown_item"))
    return cases


# --------------------------------------------------------------------------- K10

K10_ABS = [("low", 10, 15), ("moderate", 16, 21), ("high", 22, 29), ("very_high", 30, 50)]
K10_AS = [("likely_well", 10, 19), ("mild", 20, 24), ("moderate", 25, 29), ("severe", 30, 50)]


def k10() -> list[Case]:
    cases: list[Case] = []

    def add(case: str, answers: dict[str, Any], expected: dict[str, Any], variant: str | None = None) -> None:
        case_obj: Case = {"case": case, "instrument": "K10", "answers": answers, "expected": expected}
        if variant:
            case_obj["variant"] = variant
        cases.append(case_obj)

    for total in (10, 15, 16, 21, 22, 29, 30, 50):
        values = fill(total, 10, 5, lo=1)
        add(
            f"ABS band boundary total {total}",
            as_answers(values),
            ok(total, band_of(K10_ABS, total), total >= 22),
        )
    for total in (10, 19, 20, 24, 25, 29, 30, 50):
        values = fill(total, 10, 5, lo=1)
        add(
            f"Andrews & Slade band boundary total {total}",
            as_answers(values),
            ok(total, band_of(K10_AS, total), total >= 20),
            variant="andrews_slade",
        )
    add("any missing: not scorable", as_answers([1] * 10, drop=("10",)), bad("too_many_missing"))
    add("out of range: 0 (items are 1-5)", as_answers([0] + [1] * 9), bad("out_of_range_answer"))
    add("out of range: 6", as_answers([6] + [1] * 9), bad("out_of_range_answer"))
    return cases


# --------------------------------------------------------------------------- ORS / SRS (VAS)


def vas_total(values: Sequence[float]) -> float:
    """Exact one-decimal sum (tenths as integers)."""
    return sum(round(v * 10) for v in values) / 10


def ors() -> list[Case]:
    cases: list[Case] = []

    def add(case: str, answers: dict[str, Any], expected: dict[str, Any], variant: str | None = None) -> None:
        case_obj: Case = {"case": case, "instrument": "ORS", "answers": answers, "expected": expected}
        if variant:
            case_obj["variant"] = variant
        cases.append(case_obj)

    for values in (
        [0, 0, 0, 0],
        [6.3, 6.2, 6.3, 6.2],
        [6.3, 6.3, 6.3, 6.2],
        [9.1, 8.7, 9.0, 9.1],
        [10, 10, 10, 10],
    ):
        t = vas_total(values)
        add(f"total {t} (cutoff 25, at or below = clinical)", as_answers(values), ok(t, None, t <= 25))
    add(
        "comparator variant below_25: 25.0 is not concerning",
        as_answers([6.3, 6.2, 6.3, 6.2]),
        ok(25, None, False),
        variant="below_25",
    )
    add(
        "adolescent variant: 27.9 at or below 28",
        as_answers([7, 7, 7, 6.9]),
        ok(27.9, None, True),
        variant="adolescent",
    )
    add("one item missing: all 4 required", as_answers([5, 5, 5, 5], drop=("4",)), bad("too_many_missing"))
    add("null item: all 4 required", as_answers([5, 5, 5, 5], null=("2",)), bad("too_many_missing"))
    add("off the grid: 9.15", as_answers([9.15, 5, 5, 5]), bad("out_of_range_answer"))
    add("out of range: 10.1", as_answers([10.1, 5, 5, 5]), bad("out_of_range_answer"))
    add("out of range: -0.1", as_answers([-0.1, 5, 5, 5]), bad("out_of_range_answer"))
    return cases


def srs() -> list[Case]:
    cases: list[Case] = []

    def add(case: str, answers: dict[str, Any], expected: dict[str, Any], variant: str | None = None) -> None:
        case_obj: Case = {"case": case, "instrument": "SRS", "answers": answers, "expected": expected}
        if variant:
            case_obj["variant"] = variant
        cases.append(case_obj)

    for values in (
        [9.1, 8.7, 9.0, 9.1],
        [9, 9, 9, 9],
        [9, 9, 9, 9.1],
        [10, 10, 10, 10],
        [0, 0, 0, 0],
        [0.1, 0.2, 0.3, 0.4],
    ):
        t = vas_total(values)
        add(f"total {t} (cutoff: below 36)", as_answers(values), ok(t, None, t < 36))
    add(
        "variant at_or_below_36: 36.0 concerning",
        as_answers([9, 9, 9, 9]),
        ok(36, None, True),
        variant="at_or_below_36",
    )
    add(
        "variant at_or_below_36: 36.1 not concerning",
        as_answers([9, 9, 9, 9.1]),
        ok(36.1, None, False),
        variant="at_or_below_36",
    )
    add("one item missing: all 4 required", as_answers([9, 9, 9, 9], drop=("1",)), bad("too_many_missing"))
    add("off the grid: 8.75", as_answers([8.75, 9, 9, 9]), bad("out_of_range_answer"))
    add("unknown item 5", as_answers([9, 9, 9, 9]) | {"5": 9}, bad("unknown_item"))
    return cases


# --------------------------------------------------------------------------- WAI-SR

WAI_SUBSCALES = {"task": [1, 2, 10, 12], "bond": [3, 5, 7, 9], "goal": [4, 6, 8, 11]}
WAI_VENDOR = [("weak", 12, 35), ("moderate", 36, 47), ("strong", 48, 60)]


def wai_sr() -> list[Case]:
    cases: list[Case] = []

    def add(case: str, answers: dict[str, Any], expected: dict[str, Any], variant: str | None = None) -> None:
        case_obj: Case = {"case": case, "instrument": "WAI-SR", "answers": answers, "expected": expected}
        if variant:
            case_obj["variant"] = variant
        cases.append(case_obj)

    def full(values: list[int], bands: Sequence[tuple[str, float, float]] | None = None) -> dict[str, Any]:
        subs = {name: sum(values[i - 1] for i in members) for name, members in WAI_SUBSCALES.items()}
        total = sum(values)
        return ok(total, band_of(bands, total) if bands else None, None, subscales=subs)

    for values in ([1] * 12, [5] * 12, [3] * 12):
        add(f"all {values[0]}", as_answers(values), full(values))
    task_only = [5 if i in WAI_SUBSCALES["task"] else 1 for i in range(1, 13)]
    add("task items 5, others 1 (subscale membership)", as_answers(task_only), full(task_only))
    bond_only = [5 if i in WAI_SUBSCALES["bond"] else 1 for i in range(1, 13)]
    add("bond items 5, others 1 (subscale membership)", as_answers(bond_only), full(bond_only))
    goal_only = [5 if i in WAI_SUBSCALES["goal"] else 1 for i in range(1, 13)]
    add("goal items 5, others 1 (subscale membership)", as_answers(goal_only), full(goal_only))
    for total in (12, 35, 36, 47, 48, 60):
        values = fill(total, 12, 5, lo=1)
        add(
            f"vendor band boundary {total}",
            as_answers(values),
            full(values, WAI_VENDOR),
            variant="vendor_bands",
        )
    add("one item missing: not scorable", as_answers([3] * 12, drop=("7",)), bad("too_many_missing"))
    add("out of range: 0 (items are 1-5)", as_answers([0] + [3] * 11), bad("out_of_range_answer"))
    return cases


# --------------------------------------------------------------------------- OQ-45 (clinic fixture)

OQ_REVERSED = {1, 12, 13, 20, 21, 24, 31, 37, 43}
OQ_SUBSCALES = {
    "symptom_distress": [
        2,
        3,
        5,
        6,
        8,
        9,
        10,
        11,
        13,
        15,
        22,
        23,
        24,
        25,
        27,
        29,
        31,
        33,
        34,
        35,
        36,
        40,
        41,
        42,
        45,
    ],
    "interpersonal_relations": [1, 7, 16, 17, 18, 19, 20, 26, 30, 37, 43],
    "social_role": [4, 12, 14, 21, 28, 32, 38, 39, 44],
}


def oq_raw(scored: Mapping[int, int | None]) -> dict[str, Any]:
    return {str(i): (None if s is None else (4 - s if i in OQ_REVERSED else s)) for i, s in scored.items()}


def oq45() -> list[Case]:
    cases: list[Case] = []

    def add(case: str, answers: dict[str, Any], expected: dict[str, Any]) -> None:
        cases.append({"case": case, "instrument": "OQ-45", "answers": answers, "expected": expected})

    def expect(
        scored: dict[int, int], prorated: bool = False, missing: list[str] | None = None
    ) -> dict[str, Any]:
        subs = {name: sum(scored[i] for i in members) for name, members in OQ_SUBSCALES.items()}
        total = sum(subs.values())
        band = "dysfunctional" if total >= 64 else "functional"
        return ok(total, band, total >= 64, subscales=subs, prorated=prorated, missing_items=missing or [])

    zeros = {i: 0 for i in range(1, 46)}
    add(
        "all raw 0: the 9 reversed items score 4 -> 36",
        {str(i): 0 for i in range(1, 46)},
        expect({i: (4 if i in OQ_REVERSED else 0) for i in range(1, 46)}),
    )
    add(
        "all raw 4: 36 items x 4 = 144",
        {str(i): 4 for i in range(1, 46)},
        expect({i: (0 if i in OQ_REVERSED else 4) for i in range(1, 46)}),
    )
    for target in (63, 64):
        scored = dict(zeros)
        rest = target
        for i in range(1, 46):
            scored[i] = min(4, rest)
            rest -= scored[i]
        add(f"cutoff boundary {target}", oq_raw(scored), expect(scored))
    # Missing item 2 (symptom distress): its 24 answered items score 12 × 1 and 12 × 2 → mean 1.5 → 2.
    sd_answered = [i for i in OQ_SUBSCALES["symptom_distress"] if i != 2]
    scored = {i: 1 for i in range(1, 46)}
    for k, i in enumerate(sd_answered):
        scored[i] = 1 if k < 12 else 2
    answers = oq_raw({**scored, 2: None})
    scored[2] = 2
    add(
        "missing item -> rounded subscale mean (1.5 -> 2, halves up)",
        answers,
        expect(scored, prorated=True, missing=["2"]),
    )
    # Missing reversed item 12 (social role): others in the subscale score 3 → imputed score 3.
    scored = {i: 3 if i in OQ_SUBSCALES["social_role"] else 1 for i in range(1, 46)}
    answers = oq_raw({**scored, 12: None})
    add(
        "missing reversed item 12 -> subscale mean of scored values",
        answers,
        expect(scored, prorated=True, missing=["12"]),
    )
    answers = oq_raw({i: 1 for i in range(1, 46)})
    for item in ("1", "2", "4", "5", "6"):
        answers[item] = None
    add("5 missing: not scorable (at most 4)", answers, bad("too_many_missing"))
    answers = oq_raw({i: 1 for i in range(1, 46)})
    answers["46"] = 1
    add("unknown item 46", answers, bad("unknown_item"))
    return cases


def main() -> None:
    """Write every golden file."""
    for name, build in (
        ("PHQ-9", phq9),
        ("GAD-7", gad7),
        ("CORE-10", core10),
        ("K10", k10),
        ("ORS", ors),
        ("SRS", srs),
        ("WAI-SR", wai_sr),
        ("OQ-45", oq45),
    ):
        lines = [json.dumps(case, ensure_ascii=False) for case in build()]
        (HERE / f"{name}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(f"{name}: {len(lines)} cases")


if __name__ == "__main__":
    main()
