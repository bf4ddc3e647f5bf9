"""Registry: packaged + clinic specs, overrides, lookups, and scoring by instrument id."""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

import pytest

from shared.contracts.events import SurveyResponse
from shared.instruments import (
    Registry,
    ScoreFailure,
    ScoreResult,
    default_registry,
    load_registry,
    load_spec,
    score,
    score_response,
    score_responses,
    score_survey,
)

from .conftest import CLINIC_DIR, FIXTURES

OQ_SD = [2, 3, 5, 6, 8, 9, 10, 11, 13, 15, 22, 23, 24, 25, 27, 29, 31, 33, 34, 35, 36, 40, 41, 42, 45]
OQ_IR = [1, 7, 16, 17, 18, 19, 20, 26, 30, 37, 43]
OQ_SR = [4, 12, 14, 21, 28, 32, 38, 39, 44]
OQ_REVERSED = {1, 12, 13, 20, 21, 24, 31, 37, 43}


def test_default_registry_is_loaded_once() -> None:
    assert default_registry() is default_registry()


def test_get_returns_none_and_indexing_raises_for_unknown_ids() -> None:
    reg = default_registry()
    assert reg.get("NOPE") is None
    with pytest.raises(KeyError, match="unknown instrument 'NOPE'"):
        reg["NOPE"]
    assert "PHQ-9" in reg and "NOPE" not in reg
    assert reg.plan("NOPE") is None


def test_clinic_spec_loads_from_an_extra_directory() -> None:
    reg = load_registry(extra_dirs=[CLINIC_DIR])
    oq = reg["OQ-45"]
    assert (oq.total_min, oq.total_max) == (0, 180)
    assert {k: len(v) for k, v in oq.subscales.items()} == {
        "symptom_distress": 25,
        "interpersonal_relations": 11,
        "social_role": 9,
    }
    assert sorted(map(int, oq.reversed)) == sorted(OQ_REVERSED)
    assert oq.reliable_change is not None and oq.reliable_change.threshold == 14
    assert "PHQ-9" in reg  # the packaged specs are still there
    assert "OQ-45" not in default_registry()


def test_oq45_scores_reversed_items_subscales_and_imputes_by_subscale_mean() -> None:
    reg = load_registry(extra_dirs=[CLINIC_DIR])
    # Raw answer = item number mod 5: the expected scores are computed here, item by item.
    raw = {i: i % 5 for i in range(1, 46)}
    scored = {i: (4 - v if i in OQ_REVERSED else v) for i, v in raw.items()}
    result = score_survey(reg, "OQ-45", {str(i): v for i, v in raw.items()})
    assert isinstance(result, ScoreResult)
    assert result.subscales == {
        "symptom_distress": sum(scored[i] for i in OQ_SD),
        "interpersonal_relations": sum(scored[i] for i in OQ_IR),
        "social_role": sum(scored[i] for i in OQ_SR),
    }
    assert result.total == sum(scored.values())
    assert result.concern is (result.total >= 64)
    # Item 12 (social role, reversed) missing: imputed as the rounded mean of the other SR scores.
    answers = {str(i): v for i, v in raw.items() if i != 12}
    others = [scored[i] for i in OQ_SR if i != 12]
    imputed = int(sum(others) / len(others) + 0.5)
    result = score_survey(reg, "OQ-45", answers)
    assert isinstance(result, ScoreResult)
    assert result.prorated and result.missing_items == ["12"]
    assert result.subscales["social_role"] == sum(others) + imputed
    assert result.total == sum(scored.values()) - scored[12] + imputed


def test_a_clinic_spec_with_a_packaged_id_overrides_it(tmp_path: Path) -> None:
    text = resources.files("shared.instruments").joinpath("specs/srs.yaml").read_text(encoding="utf-8")
    (tmp_path / "srs.yaml").write_text(text.replace('version: "1.0.0"', 'version: "clinic-7"'))
    reg = load_registry(extra_dirs=[CLINIC_DIR, tmp_path])
    assert reg["SRS"].version == "clinic-7"
    result = score_survey(reg, "SRS", {"1": 9, "2": 9, "3": 9, "4": 9})
    assert isinstance(result, ScoreResult) and result.version == "clinic-7"


def test_later_directories_override_earlier_ones(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    shutil.copy(FIXTURES / "valid" / "test-3.yaml", first / "t.yaml")
    text = (FIXTURES / "valid" / "test-3.yaml").read_text().replace("version: '1'", "version: '2'")
    (second / "t.yaml").write_text(text)
    assert load_registry(extra_dirs=[first, second])["TEST-3"].version == "2"
    assert load_registry(extra_dirs=[second, first])["TEST-3"].version == "1"


def test_variants_are_applied_by_the_registry() -> None:
    reg = load_registry(variants={"K10": "andrews_slade", "SRS": "at_or_below_36"})
    assert reg["K10"].version.endswith("+andrews_slade")
    result = score_survey(reg, "SRS", {"1": 9, "2": 9, "3": 9, "4": 9})
    assert isinstance(result, ScoreResult) and result.concern is True
    assert result.version == "1.0.0+at_or_below_36"


def test_score_survey_reports_an_unknown_instrument() -> None:
    result = score_survey(default_registry(), "BDI-II", {"1": 0})
    assert result == ScoreFailure("unknown_instrument", "no spec for instrument 'BDI-II'", None)
    odd = score_survey(default_registry(), "Jane Doe's form", {"1": 0})
    assert isinstance(odd, ScoreFailure) and odd.reason == "unknown_instrument"
    assert "Jane" not in odd.detail


def test_score_survey_accepts_a_plain_mapping_of_specs() -> None:
    reg = default_registry()
    plain = {"GAD-7": reg["GAD-7"]}
    answers = {str(i): 1 for i in range(1, 8)}
    assert score_survey(plain, "GAD-7", answers) == score_survey(reg, "GAD-7", answers)
    assert isinstance(score_survey(plain, "PHQ-9", answers), ScoreFailure)


def test_response_paths_agree_with_score_survey() -> None:
    reg = default_registry()
    surveys = [
        SurveyResponse(instrument="PHQ-9", answers={str(i): i % 4 for i in range(1, 10)}),
        SurveyResponse(instrument="SRS", answers={"1": 9.1, "2": 8.7, "3": 9.0, "4": 9.1}),
        SurveyResponse(instrument="GAD-7", answers={"1": 1, "2": None}),
        SurveyResponse(instrument="NOPE", answers={}),
    ]
    expected = [score_survey(reg, s.instrument, s.answers) for s in surveys]
    assert [score_response(reg, s) for s in surveys] == expected
    assert score_responses(reg, surveys) == expected
    assert [type(r) for r in expected] == [ScoreResult, ScoreResult, ScoreFailure, ScoreFailure]


def test_registry_rejects_a_key_that_is_not_the_spec_id() -> None:
    spec = load_spec(FIXTURES / "valid" / "test-3.yaml")
    assert Registry([spec])["TEST-3"] is spec
    with pytest.raises(ValueError, match="differs from the spec id"):
        Registry({"OTHER": spec})


def test_score_uses_the_spec_object_it_is_given() -> None:
    base = load_spec(FIXTURES / "valid" / "test-3.yaml")
    strict = base.with_variant("strict")
    answers = {"1": 3, "2": 3, "3": 0}
    first, second = score(base, answers), score(strict, answers)
    assert isinstance(first, ScoreResult) and isinstance(second, ScoreResult)
    assert (first.concern, second.concern) == (True, False)
    assert (first.version, second.version) == ("1", "1+strict")
