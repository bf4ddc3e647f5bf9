"""Alliance rules at their thresholds: just beyond, exactly at, just short."""

from __future__ import annotations

import pytest

from tests.unit.rules.factories import kinds, ruleset, run, track

# --------------------------------------------------------------------------- below cutoff (SRS < 36)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(35.9, [(2, "info")]), (36.0, []), (36.1, [])],
    ids=["just-below", "at-cutoff", "just-above"],
)
def test_below_cutoff_uses_the_strict_comparator(value: float, expected: list[tuple[int, str]]) -> None:
    assert kinds(run([track("SRS", [38, value])]), "alliance_below_cutoff") == expected


def test_below_cutoff_comparator_is_configurable() -> None:
    rules = ruleset(instruments={"SRS": {"concern_when": "at_or_below"}})
    assert kinds(run([track("SRS", [38, 36.0])], rules), "alliance_below_cutoff") == [(2, "info")]


@pytest.mark.parametrize(
    ("value", "severity"),
    [(25.9, "moderate"), (26.0, "moderate"), (26.1, "info")],
    ids=["beyond-far-margin", "at-far-margin", "short-of-far-margin"],
)
def test_far_below_cutoff_raises_severity(value: float, severity: str) -> None:
    assert kinds(run([track("SRS", [38, value])]), "alliance_below_cutoff") == [(2, severity)]


def test_below_cutoff_fires_on_entry_not_every_session() -> None:
    found = kinds(run([track("SRS", [38, 35, 34, 35, 33])]), "alliance_below_cutoff")
    assert found == [(2, "info")]


def test_deepening_into_the_far_band_fires_once_more() -> None:
    found = kinds(run([track("SRS", [38, 35, 25, 24])]), "alliance_below_cutoff")
    assert found == [(2, "info"), (3, "moderate")]


def test_below_cutoff_rearms_only_after_two_sessions_above() -> None:
    one_blip = kinds(run([track("SRS", [35, 37, 35])]), "alliance_below_cutoff")
    two_above = kinds(run([track("SRS", [35, 37, 37, 35])]), "alliance_below_cutoff")
    assert one_blip == [(1, "info")]
    assert two_above == [(1, "info"), (4, "info")]


def test_no_cutoff_no_below_cutoff_signal() -> None:
    assert kinds(run([track("WAI-SR", [50, 20])]), "alliance_below_cutoff") == []


# --------------------------------------------------------------------------- drop vs last + own baseline
# Baseline 38, 38, 38: own SD 0, floor 3.5, k = 2 → threshold 31.0.


@pytest.mark.parametrize(
    ("value", "fires"), [(30.9, True), (31.0, True), (31.1, False)], ids=["below", "at", "above"]
)
def test_drop_below_baseline_minus_k_sd(value: float, fires: bool) -> None:
    found = kinds(run([track("SRS", [38, 38, 38, value])]), "alliance_drop")
    assert found == ([(4, "moderate")] if fires else [])


def test_drop_uses_the_clients_own_sd_when_it_is_the_stricter() -> None:
    # 30, 40, 35: mean 35, own SD 5 > floor 3.5 → threshold 25.
    assert kinds(run([track("SRS", [30, 40, 35, 25.0])]), "alliance_drop") == [(4, "moderate")]
    assert kinds(run([track("SRS", [30, 40, 35, 25.1])]), "alliance_drop") == []


@pytest.mark.parametrize(
    ("value", "fires"), [(34.9, True), (35.0, True), (35.1, False)], ids=["more", "at", "less"]
)
def test_drop_needs_a_fall_from_last_session(value: float, fires: bool) -> None:
    # k = 0.5 → threshold 38 - 1.75 = 36.25, so only the fall from 37.0 (>= 2 points) decides.
    rules = ruleset(rules={"alliance_drop": {"k_sd": 0.5}})
    found = kinds(run([track("SRS", [38, 38, 38, 37.0, value])], rules), "alliance_drop")
    assert found == ([(5, "moderate")] if fires else [])


@pytest.mark.parametrize(
    ("value", "fires"), [(31.9, True), (32.0, True), (32.1, False)], ids=["more", "at", "less"]
)
def test_drop_from_a_two_session_baseline_needs_twice_the_between_client_floor(
    value: float, fires: bool
) -> None:
    # Two earlier sessions: no own SD yet; the floor alone: 39 - 2 x 3.5 = 32 (Gumz et al. 2012).
    found = kinds(run([track("SRS", [39, 39, value])]), "alliance_drop")
    assert found == ([(3, "moderate")] if fires else [])


def test_an_early_rupture_and_its_repair_are_both_signalled() -> None:
    findings = run([track("SRS", [39, 39, 28, 38])])
    assert kinds(findings, "alliance_drop") == [(3, "moderate")]
    assert kinds(findings, "alliance_repaired") == [(4, "info")]
    (drop,) = [f for f in findings if f.kind == "alliance_drop"]
    assert drop.explanation.startswith("SRS fell from 39.0 to 28.0 (-11.0), below the client's first 2")
    assert dict(drop.thresholds)["baseline_sessions"] == 2.0


def test_drop_needs_two_earlier_sessions_or_the_configured_early_baseline() -> None:
    assert kinds(run([track("SRS", [38, 20])]), "alliance_drop") == []
    no_early = ruleset(rules={"alliance_drop": {"early_baseline_sessions": None}})
    assert kinds(run([track("SRS", [38, 38, 20])], no_early), "alliance_drop") == []
    assert kinds(run([track("SRS", [38, 38, 38, 20])], no_early), "alliance_drop") == [(4, "moderate")]


def test_session_drop_is_off_by_default_and_marks_every_fall_when_on() -> None:
    values = [39, 38, 38.5, 36, 37]
    assert kinds(run([track("SRS", values)]), "alliance_session_drop") == []
    on = ruleset(rules={"alliance_session_drop": {"enabled": True}})
    assert kinds(run([track("SRS", values)], on), "alliance_session_drop") == [(2, "info"), (4, "info")]
    half = ruleset(rules={"alliance_session_drop": {"enabled": True, "min_fall": 0.5}})
    assert kinds(run([track("SRS", [39, 38.6, 38.5])], half), "alliance_session_drop") == []


def test_no_second_drop_while_one_is_open() -> None:
    found = kinds(run([track("SRS", [38, 38, 38, 30, 22])]), "alliance_drop")
    assert found == [(4, "moderate")]


def test_drop_explanation_reads_like_the_spec() -> None:
    (f,) = [f for f in run([track("SRS", [38, 38, 38, 31])]) if f.kind == "alliance_drop"]
    assert f.explanation.startswith("SRS fell from 38.0 to 31.0 (-7.0), below the client's own baseline 38.0")
    assert "- 2 SD (31.0)" in f.explanation
    assert dict(f.thresholds)["threshold"] == pytest.approx(31.0)


# --------------------------------------------------------------------------- repair (the V closes)
# Drop at session 4 from baseline 38 with SD 3.5: repaired at >= 38 - 1 x 3.5 = 34.5.


@pytest.mark.parametrize(
    ("value", "fires"), [(34.6, True), (34.5, True), (34.4, False)], ids=["above", "at", "below"]
)
def test_repair_when_back_within_margin_of_the_baseline(value: float, fires: bool) -> None:
    found = kinds(run([track("SRS", [38, 38, 38, 30, value])]), "alliance_repaired")
    assert found == ([(5, "info")] if fires else [])


def test_repair_fires_once_and_reopens_the_drop_rule() -> None:
    found = run([track("SRS", [38, 38, 38, 30, 38, 38, 38, 29])])
    assert kinds(found, "alliance_repaired") == [(5, "info")]
    assert kinds(found, "alliance_drop") == [(4, "moderate"), (8, "moderate")]


def test_no_repair_without_a_drop() -> None:
    assert kinds(run([track("SRS", [38, 36, 38, 39])]), "alliance_repaired") == []


# --------------------------------------------------------------------------- sustained decline
# Window 4, even steps d: fitted fall 3d; threshold 4 points.


@pytest.mark.parametrize(
    ("step", "fires"), [(1.4, True), (4 / 3, True), (1.3, False)], ids=["steeper", "at", "shallower"]
)
def test_decline_over_the_window(step: float, fires: bool) -> None:
    values = [40 - step * i for i in range(4)]
    found = kinds(run([track("SRS", values)]), "alliance_decline")
    assert found == ([(4, "moderate")] if fires else [])


def test_one_sudden_fall_is_not_a_decline() -> None:
    # Fitted fall 4.2 and two steps down, but the last step carries 4 of the 4.5 points.
    assert kinds(run([track("SRS", [40, 40, 39.5, 35.5])]), "alliance_decline") == []


def test_decline_fires_once_while_it_continues() -> None:
    found = kinds(run([track("SRS", [40, 38.5, 37, 35.5, 34, 32.5])]), "alliance_decline")
    assert found == [(4, "moderate")]


def test_decline_is_not_reported_beside_a_drop_at_the_same_session() -> None:
    found = run([track("SRS", [39, 38, 37, 30])])
    assert kinds(found, "alliance_drop") == [(4, "moderate")]
    assert kinds(found, "alliance_decline") == []


def test_disabled_rules_are_silent() -> None:
    rules = ruleset(
        rules={
            "alliance_below_cutoff": {"enabled": False},
            "alliance_drop": {"enabled": False},
            "alliance_decline": {"enabled": False},
        }
    )
    assert run([track("SRS", [38, 38, 38, 20, 19, 18, 17])], rules) == []
