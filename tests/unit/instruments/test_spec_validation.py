"""Spec validation: packaged specs load, every broken spec is rejected naming its file and field."""

from __future__ import annotations

import math
import re
import shutil
from pathlib import Path

import pytest

from shared.instruments import InstrumentSpec, SpecError, default_registry, load_registry, load_spec

from .conftest import BROKEN_DIR, FIXTURES

#: A path of some machine (``/abc/def/``), not a URL's path nor a relative one.
ABSOLUTE_PATH = re.compile(r"(?<![\w.~/:])/(?:[\w.-]+/)+")

BROKEN = sorted(BROKEN_DIR.glob("*.yaml"))
VALID = FIXTURES / "valid" / "test-3.yaml"


def expectation(path: Path) -> str:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# expect: "), f"{path.name} must start with '# expect: <message fragment>'"
    return first.removeprefix("# expect: ")


def test_the_valid_twin_of_the_broken_fixtures_loads() -> None:
    spec = load_spec(VALID)
    assert spec.id == "TEST-3"
    assert (spec.total_min, spec.total_max) == (0, 9)


def test_there_are_many_broken_fixtures() -> None:
    assert len(BROKEN) >= 20


@pytest.mark.parametrize("path", BROKEN, ids=[p.stem for p in BROKEN])
def test_broken_spec_is_rejected_naming_file_and_field(path: Path) -> None:
    with pytest.raises(SpecError) as info:
        load_spec(path)
    message = str(info.value)
    assert str(path) in message
    assert expectation(path) in message


def test_a_broken_spec_in_a_clinic_directory_fails_the_registry(tmp_path: Path) -> None:
    shutil.copy(BROKEN_DIR / "bands-gap.yaml", tmp_path / "clinic.yaml")
    with pytest.raises(SpecError, match=r"clinic\.yaml.*gap between"):
        load_registry(extra_dirs=[tmp_path])


def test_two_specs_with_one_id_in_a_directory_are_rejected(tmp_path: Path) -> None:
    shutil.copy(VALID, tmp_path / "a.yaml")
    shutil.copy(VALID, tmp_path / "b.yml")
    with pytest.raises(SpecError, match=r"b\.yml: id 'TEST-3' is already defined by a\.yaml"):
        load_registry(extra_dirs=[tmp_path])


def test_a_missing_directory_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="does not exist"):
        load_registry(extra_dirs=[tmp_path / "nope"])


def test_a_missing_file_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot read"):
        load_spec(tmp_path / "nope.yaml")


def test_packaged_specs_match_the_published_facts() -> None:
    reg = default_registry()
    assert set(reg) == {"PHQ-9", "GAD-7", "CORE-10", "K10", "ORS", "SRS", "WAI-SR"}
    expected = {
        # id: (domain, direction, min, max, cutoff, concern_when, reliable change, bands)
        "PHQ-9": (
            "outcome",
            "higher_is_worse",
            0,
            27,
            10,
            "at_or_above",
            6,  # NHS Talking Therapies manual; Löwe et al. 2004's 5 is the `lowe_mcid` variant
            ["minimal", "mild", "moderate", "moderately_severe", "severe"],
        ),
        "GAD-7": (
            "outcome",
            "higher_is_worse",
            0,
            21,
            10,
            "at_or_above",
            4,  # NHS Talking Therapies manual
            ["minimal", "mild", "moderate", "severe"],
        ),
        "CORE-10": (
            "outcome",
            "higher_is_worse",
            0,
            40,
            11,
            "at_or_above",
            6,
            ["low", "mild", "moderate", "moderately_severe", "severe"],
        ),
        "K10": (
            "outcome",
            "higher_is_worse",
            10,
            50,
            22,
            "at_or_above",
            5.87,  # Jacobson & Truax from SD 8 and α .93 (Kessler et al. 2002)
            ["low", "moderate", "high", "very_high"],
        ),
        "ORS": ("outcome", "higher_is_better", 0, 40, 25, "at_or_below", 5, None),
        "SRS": ("alliance", "higher_is_better", 0, 40, 36, "below", None, None),
        "WAI-SR": ("alliance", "higher_is_better", 12, 60, None, None, None, None),
    }
    for instrument, (domain, direction, low, high, cutoff, when, rc, bands) in expected.items():
        spec = reg[instrument]
        assert spec.domain == domain, instrument
        assert spec.direction == direction, instrument
        assert (spec.total_min, spec.total_max) == (low, high), instrument
        assert (spec.cutoff.value if spec.cutoff else None) == cutoff, instrument
        assert (spec.cutoff.concern_when if spec.cutoff else None) == when, instrument
        assert (spec.reliable_change.threshold if spec.reliable_change else None) == rc, instrument
        assert ([b.name for b in spec.bands] if spec.bands else None) == bands, instrument
        assert spec.citation and spec.license, instrument
    assert reg["CORE-10"].reversed == ("2", "3")
    assert [c.item for c in reg["CORE-10"].critical_items] == ["6"]
    assert [c.item for c in reg["PHQ-9"].critical_items] == ["9"]
    assert reg["PHQ-9"].never_impute == ("9",)
    assert reg["WAI-SR"].subscales == {
        "task": ("1", "2", "10", "12"),
        "bond": ("3", "5", "7", "9"),
        "goal": ("4", "6", "8", "11"),
    }
    assert all(i.step == 0.1 for i in reg["ORS"].items + reg["SRS"].items)


def test_every_packaged_spec_file_cites_its_papers_in_its_header() -> None:
    import re
    from importlib import resources

    files = [f for f in resources.files("shared.instruments").joinpath("specs").iterdir()]
    specs = [f for f in files if f.name.endswith(".yaml")]
    assert len(specs) == 7
    for f in specs:
        text = f.read_text(encoding="utf-8")
        header = "".join(line for line in text.splitlines(keepends=True) if line.startswith("#"))
        assert "Implements:" in header, f.name
        assert re.search(r"\b(19|20)\d\d\b", header), f"{f.name}: the header names no paper's year"
        # Sources are papers, never a document outside the repository.
        assert "CLINICAL.md" not in text and not ABSOLUTE_PATH.search(text) and "../" not in text, f.name


def test_every_variant_applies_and_records_itself_in_the_version() -> None:
    for spec in default_registry().values():
        for name in spec.variants:
            applied = spec.with_variant(name)
            assert applied.version == f"{spec.version}+{name}"
            assert applied.variant == name
            assert applied.variants == {}


def test_documented_alternative_defaults() -> None:
    reg = default_registry()
    k10 = reg["K10"].with_variant("andrews_slade")
    assert [(b.name, b.min, b.max) for b in k10.bands or ()] == [
        ("likely_well", 10, 19),
        ("mild", 20, 24),
        ("moderate", 25, 29),
        ("severe", 30, 50),
    ]
    srs = reg["SRS"].with_variant("at_or_below_36")
    assert srs.cutoff is not None and (srs.cutoff.value, srs.cutoff.concern_when) == (36, "at_or_below")
    core = reg["CORE-10"].with_variant("rc_from_sd")
    assert core.reliable_change is not None
    # Jacobson–Truax: 1.96 · √2 · SD · √(1 − r)
    assert core.reliable_change.threshold == round(1.96 * math.sqrt(2) * 7.7 * math.sqrt(0.1), 2) == 6.75


def test_a_variant_can_clear_a_field() -> None:
    spec = load_spec(VALID)
    assert spec.with_variant("no_cutoff").cutoff is None
    assert spec.with_variant("strict").cutoff is not None


def test_unknown_variant_and_double_application_are_rejected() -> None:
    spec = default_registry()["K10"]
    with pytest.raises(SpecError, match=r"unknown variant 'nope'.*andrews_slade"):
        spec.with_variant("nope")
    with pytest.raises(SpecError, match="already applied"):
        spec.with_variant("andrews_slade").with_variant("andrews_slade")
    with pytest.raises(SpecError, match="no instrument 'XYZ'"):
        load_registry(variants={"XYZ": "a"})


def test_the_shorthand_and_the_explicit_item_list_are_the_same_spec() -> None:
    data = load_spec(VALID).model_dump(exclude={"variants"})
    explicit = InstrumentSpec.model_validate(data)
    assert explicit.items == load_spec(VALID).items


def test_specs_are_frozen() -> None:
    spec = load_spec(VALID)
    with pytest.raises(ValueError, match="frozen"):
        spec.version = "2"  # type: ignore[misc]
