"""Outcome, critical-item and dropout rules at their thresholds: just beyond, exactly at, just short."""

from __future__ import annotations

import math

import pytest

from tests.unit.rules.factories import kinds, ruleset, run, track

# --------------------------------------------------------------------------- critical items


def test_critical_item_fires_every_session_it_is_endorsed() -> None:
    t = track("PHQ-9", [12, 13, 14, 12], critical={2: ["9"], 3: ["9"]})
    found = [f for f in run([t]) if f.kind == "critical_item"]
    assert [(f.session, f.severity, f.items) for f in found] == [
        (2, "critical", ("9",)),
        (3, "critical", ("9",)),
    ]
    assert "item 9 endorsed at session 2" in found[0].explanation


def test_critical_item_ignores_every_switch_that_silences_other_rules() -> None:
    rules = ruleset(rules={"rearm_after": 12, "outcome_reliable_deterioration": {"enabled": False}})
    t = track("PHQ-9", [12, 12], critical={1: ["9"], 2: ["9"]})
    assert kinds(run([t], rules), "critical_item") == [(1, "critical"), (2, "critical")]


def test_critical_item_has_no_enabled_switch() -> None:
    with pytest.raises(ValueError, match="enabled"):
        ruleset(rules={"critical_item": {"enabled": False}})


# --------------------------------------------------------------------------- reliable deterioration
# PHQ-9, higher is worse, RC 5 (test scale); moderate at the first reliably-worse session, high once
# confirmed over 2 sessions or at once from 2 x RC.


@pytest.mark.parametrize(
    ("value", "fires"), [(15.1, True), (15.0, True), (14.9, False)], ids=["beyond", "at", "short"]
)
def test_deterioration_flagged_at_once_and_confirmed_at_the_next_session(value: float, fires: bool) -> None:
    found = kinds(run([track("PHQ-9", [10, value, value])]), "outcome_reliable_deterioration")
    assert found == ([(2, "moderate"), (3, "high")] if fires else [])


def test_one_bad_week_is_flagged_as_not_yet_confirmed() -> None:
    found = run([track("PHQ-9", [10, 15, 13, 15])])
    assert kinds(found, "outcome_reliable_deterioration") == [(2, "moderate")]
    (first,) = [f for f in found if f.kind == "outcome_reliable_deterioration"]
    assert "not yet confirmed" in first.explanation
    # The session after a one-off bad week is not a confirmation; a later, separate run is.
    found = run([track("PHQ-9", [10, 15, 13, 13, 15, 15])])
    assert kinds(found, "outcome_reliable_deterioration") == [(2, "moderate"), (5, "moderate"), (6, "high")]


def test_the_published_example_ors_22_21_14_is_flagged_at_session_3() -> None:
    # ORS (higher is better), RC 5: one reliably-worse administration is a signal (OQ, PCOMS).
    found = kinds(run([track("ORS", [22, 21, 14])]), "outcome_reliable_deterioration")
    assert found == [(3, "moderate")]


def test_waiting_for_confirmation_stays_configurable() -> None:
    wait = ruleset(rules={"outcome_reliable_deterioration": {"first_severity": None}})
    assert kinds(run([track("PHQ-9", [10, 15, 15])], wait), "outcome_reliable_deterioration") == [
        (3, "high")
    ]
    once = ruleset(rules={"outcome_reliable_deterioration": {"consecutive": 1}})
    assert kinds(run([track("PHQ-9", [10, 15, 15])], once), "outcome_reliable_deterioration") == [
        (2, "high")
    ]


@pytest.mark.parametrize(
    ("value", "fires"), [(20.1, True), (20.0, True), (19.9, False)], ids=["beyond", "at", "short"]
)
def test_a_very_large_change_fires_at_once(value: float, fires: bool) -> None:
    found = kinds(run([track("PHQ-9", [10, value])]), "outcome_reliable_deterioration")
    assert found == ([(2, "high")] if fires else [(2, "moderate")])


def test_deterioration_respects_direction() -> None:
    # ORS: higher is better, so a fall of 5 is the worse direction.
    assert kinds(run([track("ORS", [30, 25, 25])]), "outcome_reliable_deterioration") == [
        (2, "moderate"),
        (3, "high"),
    ]
    assert kinds(run([track("ORS", [20, 25, 25])]), "outcome_reliable_deterioration") == []


def test_rule_set_overrides_the_specs_reliable_change() -> None:
    rules = ruleset(instruments={"PHQ-9": {"reliable_change": 6, "residual_sd": 2.0}})
    assert kinds(run([track("PHQ-9", [10, 15, 15])], rules), "outcome_reliable_deterioration") == []
    assert kinds(run([track("PHQ-9", [10, 16, 16])], rules), "outcome_reliable_deterioration") == [
        (2, "moderate"),
        (3, "high"),
    ]


# --------------------------------------------------------------------------- reliable improvement


@pytest.mark.parametrize(
    ("value", "fires"), [(9.9, True), (10.0, True), (10.1, False)], ids=["beyond", "at", "short"]
)
def test_improvement_at_reliable_change(value: float, fires: bool) -> None:
    found = kinds(run([track("PHQ-9", [15, value])]), "outcome_reliable_improvement")
    assert found == ([(2, "info")] if fires else [])


def test_improvement_says_recovered_only_out_of_the_clinical_range() -> None:
    (at_cutoff,) = [f for f in run([track("PHQ-9", [15, 10])]) if f.kind == "outcome_reliable_improvement"]
    (below,) = [f for f in run([track("PHQ-9", [15, 9])]) if f.kind == "outcome_reliable_improvement"]
    assert "recovered" not in at_cutoff.explanation
    assert "recovered" in below.explanation


# --------------------------------------------------------------------------- not on track
# Test rule set: recovery rate 0 (expected = intake), bound_z 1 x residual 2 → bound intake + 2.


@pytest.mark.parametrize(
    ("value", "fires"), [(22.1, True), (22.0, True), (21.9, False)], ids=["beyond", "at", "short"]
)
def test_not_on_track_beyond_the_bound_two_sessions_running(value: float, fires: bool) -> None:
    found = kinds(run([track("PHQ-9", [20, 20, value, value])]), "outcome_not_on_track")
    assert found == ([(4, "moderate")] if fires else [])


def test_not_on_track_waits_for_min_session() -> None:
    # Off track at sessions 2 and 3, but the curve is only checked from session 3: one session is not two.
    assert kinds(run([track("PHQ-9", [20, 23, 23])]), "outcome_not_on_track") == []


def test_expected_curve_is_log_linear_in_session() -> None:
    rules = ruleset(rules={"outcome_not_on_track": {"recovery_rate": 0.5}})
    found = [f for f in run([track("PHQ-9", [20, 20, 20, 20])], rules) if f.kind == "outcome_not_on_track"]
    assert [f.session for f in found] == [4]
    th = dict(found[0].thresholds)
    assert th["expected"] == pytest.approx(20 - 0.5 * 20 * math.log(4))
    assert th["bound"] == pytest.approx(20 - 0.5 * 20 * math.log(4) + 2)


def test_reliable_deterioration_is_a_floor_under_the_bound() -> None:
    # A wide bound (intake + 20) would never flag; the RCI floor (intake + 5) still does.
    rules = ruleset(
        rules={"outcome_reliable_deterioration": {"enabled": False}},
        instruments={"PHQ-9": {"residual_sd": 20.0}},
    )
    found = [f for f in run([track("PHQ-9", [20, 20, 25, 25])], rules) if f.kind == "outcome_not_on_track"]
    assert [f.session for f in found] == [4]
    assert dict(found[0].thresholds)["bound"] == pytest.approx(25)


def test_not_on_track_gives_way_to_deterioration_at_the_same_session() -> None:
    found = run([track("PHQ-9", [10, 15, 15, 15])])
    assert kinds(found, "outcome_reliable_deterioration") == [(2, "moderate"), (3, "high")]
    assert kinds(found, "outcome_not_on_track") == []


def test_risk_unknown_is_said_in_outcome_explanations() -> None:
    from shared.rules.trajectory import Observation, Track
    from tests.unit.rules.factories import PHQ9

    obs = (Observation(1, 10.0), Observation(2, 21.0, risk_unknown=("9",)))
    (f,) = run([Track("PHQ-9", "outcome", PHQ9, obs)])
    assert f.kind == "outcome_reliable_deterioration"
    assert "Risk item 9 unanswered: risk unknown." in f.explanation


# --------------------------------------------------------------------------- dropout risk
# SRS below cutoff 3 sessions running + PHQ-9 not improved by a quarter of RC (1.25) after 5 sessions.


def _dropout(phq: list[float | None], srs: list[float | None] | None = None) -> list[tuple[int, str]]:
    alliance = track("SRS", srs or [35] * len(phq))
    return kinds(run([alliance, track("PHQ-9", phq)]), "dropout_risk")


@pytest.mark.parametrize(
    ("value", "fires"),
    [(13.8, True), (13.75, False), (13.7, False)],
    ids=["not-improving", "at", "improving"],
)
def test_dropout_when_the_outcome_has_not_improved(value: float, fires: bool) -> None:
    assert _dropout([15, 15, 15, 15, value]) == ([(5, "moderate")] if fires else [])


def test_dropout_needs_enough_outcome_sessions() -> None:
    assert _dropout([15, 15, 15, 15]) == []


def test_dropout_needs_a_persistent_alliance_concern() -> None:
    assert _dropout([15] * 5, srs=[38, 38, 38, 35, 35]) == []
    assert _dropout([15] * 5, srs=[38, 38, 35, 35, 35]) == [(5, "moderate")]


def test_dropout_counts_leaving_the_clinical_range_as_improving() -> None:
    assert _dropout([11, 11, 11, 11, 9.5]) == []


def test_dropout_is_judged_only_where_both_domains_were_measured() -> None:
    assert _dropout([15, 15, 15, 15, 15, None], srs=[35] * 6) == [(5, "moderate")]
    assert _dropout([15, 15, 15, 15, None, 15], srs=[35] * 6) == [(6, "moderate")]


def test_dropout_concern_includes_an_unrepaired_drop() -> None:
    srs = [39, 39, 39, 32, 32, 33.5]  # a drop at 4, never back to 35.5; never below the far band
    rules = ruleset(instruments={"SRS": {"cutoff": 30}})  # so "below cutoff" cannot be the concern
    found = kinds(run([track("SRS", srs), track("PHQ-9", [15] * 6)], rules), "dropout_risk")
    assert found == [(6, "moderate")]
