"""The rule-set configuration: packaged defaults, validation, per-clinic overrides, resolution."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from shared.contracts.events import ScaleInfo
from shared.rules import default_rulebook, default_ruleset, load_rulebook, rulebook_from_mapping
from tests.unit.rules.factories import PHQ9, SRS, TEST_DOC

#: A path of some machine (``/abc/def/``), not a URL's path nor a relative one.
ABSOLUTE_PATH = re.compile(r"(?<![\w.~/:])/(?:[\w.-]+/)+")


def test_packaged_default_loads_with_a_version() -> None:
    rules = default_ruleset()
    assert rules.version
    assert default_rulebook().for_clinic("any-clinic") is rules


def test_packaged_defaults_follow_the_clinical_reference() -> None:
    r = default_ruleset().rules
    assert r.alliance_drop.k_sd == 2.0  # Stiles et al. 2004
    assert r.outcome_reliable_deterioration.severity == "high"
    assert r.outcome_reliable_improvement.severity == "info"
    assert r.alliance_repaired.severity == "info"
    srs = default_ruleset().params_for("SRS", SRS)
    assert (srs.cutoff, srs.concern_when) == (36, "below")  # from the spec, not the rule set


def test_a_document_must_name_its_version() -> None:
    with pytest.raises(ValueError, match="version"):
        rulebook_from_mapping({"rules": {}})


def test_unknown_keys_are_rejected() -> None:
    with pytest.raises(ValidationError):
        rulebook_from_mapping({"version": "x", "rules": {"alliance_drop": {"k_SD": 1}}})
    with pytest.raises(ValidationError):
        rulebook_from_mapping({"version": "x", "rules": {"no_such_rule": {}}})


def test_clinic_overrides_merge_onto_the_base_and_carry_a_version() -> None:
    doc = {
        **TEST_DOC,
        "clinics": {
            "k-strauss": {"version": "2", "rules": {"alliance_drop": {"k_sd": 1.0}}},
            "k-nover": {"rules": {"alliance_drop": {"k_sd": 1.5}}},
        },
    }
    book = rulebook_from_mapping(doc)
    strauss = book.for_clinic("k-strauss")
    assert strauss.rules.alliance_drop.k_sd == 1.0
    assert strauss.rules.alliance_drop.min_baseline_sessions == 3  # untouched keys kept
    assert strauss.version == "test-1+k-strauss.2"
    nover = book.for_clinic("k-nover")
    assert nover.version.startswith("test-1+k-nover.") and len(nover.version) == len("test-1+k-nover.") + 8
    assert book.for_clinic("elsewhere").rules.alliance_drop.k_sd == 2.0


def test_a_bad_clinic_override_fails_at_load_time() -> None:
    with pytest.raises(ValidationError):
        rulebook_from_mapping({**TEST_DOC, "clinics": {"k1": {"rules": {"alliance_drop": {"k_sd": -1}}}}})


def test_a_file_is_merged_onto_the_packaged_default(tmp_path: Path) -> None:
    path = tmp_path / "strauss.yaml"
    path.write_text('version: "clinic-7"\nrules:\n  alliance_drop:\n    k_sd: 1.0\n', encoding="utf-8")
    book = load_rulebook(path)
    assert book.base.version == "clinic-7"
    assert book.base.rules.alliance_drop.k_sd == 1.0
    assert book.base.instruments["SRS"] == default_ruleset().instruments["SRS"]


def test_resolution_order_for_reliable_change() -> None:
    no_rc = ScaleInfo(min=0, max=21, direction="higher_is_worse", cutoff=10, concern_when="at_or_above")
    book = rulebook_from_mapping(
        {
            "version": "x",
            "instruments": {
                "GAD-7": {"reliable_change_fallback": 4},
                "PHQ-9": {"reliable_change_fallback": 9},
                "CORE-10": {"reliable_change": 7},
            },
        }
    )
    rules = book.base
    assert rules.params_for("GAD-7", no_rc).reliable_change == 4  # spec has none → fallback
    assert rules.params_for("PHQ-9", PHQ9).reliable_change == 5  # spec wins over a fallback
    assert rules.params_for("CORE-10", PHQ9).reliable_change == 7  # an override wins over the spec
    assert rules.params_for("K10", no_rc).reliable_change is None


def test_unlisted_instruments_get_range_fractions() -> None:
    scale = ScaleInfo(min=12, max=60, direction="higher_is_better")
    p = rulebook_from_mapping({"version": "x"}).base.params_for("NEW-ALLIANCE", scale)
    assert p.between_sd == pytest.approx(0.075 * 48)
    assert p.drop_from_last == pytest.approx(0.05 * 48)
    assert p.cutoff is None and p.concern_when is None


def test_params_are_cached_by_scale_value_and_the_cache_is_bounded() -> None:
    import gc
    import weakref

    from shared.rules import config

    config._MEMO.clear()
    rules = default_ruleset()
    first = rules.params_for("SRS", SRS)
    # The live monitor decodes a new, equal scale at every event: the same entry answers.
    decoded = [ScaleInfo.model_validate(SRS.model_dump()) for _ in range(1000)]
    assert all(rules.params_for("SRS", s) is first for s in decoded)
    memo = config._MEMO[id(rules)]
    assert len(memo.by_value) <= 2 and len(memo.last) <= 2
    # No decoded scale is kept alive but the latest one per instrument.
    probe = ScaleInfo.model_validate(SRS.model_dump())
    alive = weakref.ref(probe)
    rules.params_for("SRS", probe)
    rules.params_for("SRS", ScaleInfo.model_validate(SRS.model_dump()))
    del probe, decoded
    gc.collect()
    assert alive() is None
    # Distinct values are bounded too.
    for k in range(3 * config._MEMO_LIMIT):
        scale = SRS.model_copy(update={"cutoff": float(k)})
        assert rules.params_for("SRS", scale).cutoff == float(k)
    assert len(memo.by_value) <= config._MEMO_LIMIT


def test_every_number_of_the_packaged_rule_set_names_its_source() -> None:
    import re
    from importlib import resources

    text = resources.files("shared.rules").joinpath("default_ruleset.yaml").read_text(encoding="utf-8")
    numeric = [line for line in text.splitlines() if re.match(r"^\s+[a-z_]+: -?[0-9.]+\s", line + " ")]
    assert len(numeric) >= 25
    sourced = re.compile(r"#.*(\b(19|20)\d\d\b|\[calibrated\]|\[unconfirmed\]|Rapport policy)")
    unsourced = [line.strip() for line in numeric if not sourced.search(line)]
    assert unsourced == [], "each threshold names a paper, or says it is calibrated, unconfirmed or policy"
    assert "CLINICAL.md" not in text and not ABSOLUTE_PATH.search(text)
