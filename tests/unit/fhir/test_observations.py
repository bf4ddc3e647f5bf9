"""SurveyScored → Observation: the documented rules, checked by two validators that share no code
with the producer (FHIR.js and the HL7 R4 JSON schema)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from services.gateway import handlers
from shared.fhir import codes
from shared.fhir.observations import observation, search_bundle
from shared.fhir.problems import Problem, operation_outcome
from tests.gateway_support import validate_fhir
from tests.support import PHQ9_MODERATE, scored_events, session_event, srs

WAI = {str(i): 4 for i in range(1, 13)}
CORE10 = {str(i): 1 for i in range(1, 11)}
K10 = {str(i): 2 for i in range(1, 11)}
ORS = {"1": 6.5, "2": 5, "3": 7, "4": 4}
GAD7 = {str(i): 2 for i in range(1, 8)}


def scored(instrument: str, answers: dict[str, Any]) -> Any:
    [event] = scored_events(session_event(surveys=[(instrument, answers)]))
    return event


def coding(concept: dict[str, Any]) -> set[tuple[str, str]]:
    return {(c["system"], c["code"]) for c in concept["coding"]}


def test_phq9_total_has_its_loinc_code_band_and_links() -> None:
    s = scored("PHQ-9", PHQ9_MODERATE)
    ref = {"reference": "QuestionnaireResponse/qr-1"}
    o = observation(s, encounter="enc-1", derived_from=ref)
    assert o["id"] == str(s.id) and o["status"] == "final"
    assert coding(o["code"]) == {(codes.LOINC, "44261-6"), (codes.INSTRUMENT_SYSTEM, "PHQ-9-total")}
    assert coding(o["category"][0]) == {(codes.OBSERVATION_CATEGORY, "survey")}
    assert o["subject"] == {"reference": "Patient/c-001"}
    assert o["encounter"] == {"reference": "Encounter/enc-1"}
    assert o["derivedFrom"] == [ref]
    assert o["valueQuantity"]["value"] == 11
    assert (codes.BAND_SYSTEM, "moderate") in coding(o["interpretation"][0])
    assert (codes.V3_INTERPRETATION, "A") in coding(o["interpretation"][1])


def test_gad7_loinc_and_local_codes_for_the_rest() -> None:
    assert (codes.LOINC, "70274-6") in coding(observation(scored("GAD-7", GAD7))["code"])
    for instrument, answers in (
        ("ORS", ORS),
        ("SRS", srs(38)),
        ("WAI-SR", WAI),
        ("CORE-10", CORE10),
        ("K10", K10),
    ):
        o = observation(scored(instrument, answers))
        assert coding(o["code"]) == {(codes.INSTRUMENT_SYSTEM, f"{instrument}-total")}
        assert "encounter" not in o and "derivedFrom" not in o


def test_subscales_are_components_and_critical_items_are_critical() -> None:
    wai = observation(scored("WAI-SR", WAI))
    assert {c["code"]["coding"][0]["code"] for c in wai["component"]} == {
        "WAI-SR-bond",
        "WAI-SR-goal",
        "WAI-SR-task",
    }
    risk = observation(scored("PHQ-9", {**PHQ9_MODERATE, "9": 2}))
    assert (codes.V3_INTERPRETATION, "AA") in coding(risk["interpretation"][-1])


def test_risk_only_survey_has_no_value_but_a_reason() -> None:
    partial = {"1": 0, "9": 3}  # too many missing, item 9 endorsed: published with a null total
    from services.scoring.handlers import score_record
    from shared.instruments import default_registry
    from shared.runtime.worker import Record

    event = session_event(surveys=[("PHQ-9", partial)])
    handled = score_record(
        Record(None, event.model_dump_json().encode(), "t", 0, 0), default_registry(), event.time
    )
    [risk_only] = handled.facts
    assert risk_only.data.total is None
    o = observation(risk_only)
    assert "valueQuantity" not in o
    assert o["dataAbsentReason"]["coding"][0]["code"] == "error"


def every_resource() -> list[dict[str, Any]]:
    obs = [
        observation(
            scored("PHQ-9", {**PHQ9_MODERATE, "9": 1}),
            encounter="enc-1",
            derived_from={"reference": "QuestionnaireResponse/qr-1"},
        ),
        observation(
            scored("GAD-7", GAD7),
            derived_from={
                "type": "QuestionnaireResponse",
                "identifier": {
                    "system": codes.URI_IDENTIFIER_SYSTEM,
                    "value": "urn:uuid:8c4e7a9e-0d5b-4a43-9a55-1f0c6a1b2c3d",
                },
            },
        ),
        observation(scored("WAI-SR", WAI)),
        observation(scored("ORS", ORS)),
        observation(scored("SRS", srs(30))),
        observation(scored("CORE-10", CORE10)),
        observation(scored("K10", K10)),
    ]
    event = session_event()
    return [
        *obs,
        search_bundle(
            obs,
            base_url="http://127.0.0.1:1/fhir",
            self_url="http://127.0.0.1:1/fhir/Observation?subject=c-001",
        ),
        search_bundle(
            [], base_url="http://127.0.0.1:1/fhir", self_url="http://127.0.0.1:1/fhir/Observation?subject=x"
        ),
        handlers.accepted_outcome(
            event, [{"instrument": "PHQ-9", "reason": "out_of_range_answer", "detail": "item 9"}]
        ),
        handlers.transaction_response([handlers.accepted_outcome(event, [])]),
        operation_outcome([Problem("value", "QuestionnaireResponse.status", "only completed")]),
    ]


def test_an_independent_validator_accepts_every_resource_the_gateway_returns(fhir_validator: Path) -> None:
    resources = every_resource()
    results = validate_fhir(fhir_validator, resources)
    bad = [
        (r["resourceType"], res)
        for r, res in zip(resources, results, strict=True)
        if res["fhirjs"] or res["schema"]
    ]
    assert bad == []


def test_the_independent_validator_can_fail(fhir_validator: Path) -> None:
    broken = observation(scored("PHQ-9", PHQ9_MODERATE))
    broken["status"] = "done"  # fhir.resources accepts it; R4's required binding does not
    [result] = validate_fhir(fhir_validator, [broken])
    assert result["fhirjs"] and result["schema"]


@pytest.mark.parametrize("instrument", ["PHQ-9", "GAD-7"])
def test_loinc_totals_exist_only_for_loinc_instruments(instrument: str) -> None:
    assert instrument in codes.LOINC_TOTALS and not set(codes.LOCAL_INSTRUMENTS) & set(codes.LOINC_TOTALS)
