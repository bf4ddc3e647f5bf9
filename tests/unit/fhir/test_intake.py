"""FHIR intake mapping: QuestionnaireResponse → SessionCompleted, and every documented rule."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.fhir import codes
from shared.fhir.intake import session_from_document, sessions_from_bundle
from shared.fhir.problems import FhirRejected
from tests.gateway_support import PHQ9_ANSWERS, local_response, phq9_response, transaction
from tests.support import scored_events

NOW = datetime(2026, 1, 6, 12, 0, tzinfo=UTC)


def mapped(doc: dict[str, Any], clinic: str = "clinic-01") -> Any:
    return session_from_document(doc, clinic_id=clinic, now=NOW, source="tests")


def problems(doc: dict[str, Any]) -> list[dict[str, Any]]:
    with pytest.raises(FhirRejected) as exc:
        mapped(doc)
    return [p.issue() for p in exc.value.problems]


def test_loinc_phq9_maps_subject_encounter_author_and_answers() -> None:
    m = mapped(phq9_response())
    e = m.event
    assert e.clinic_id == "clinic-01" and e.subject == "c-001"
    assert (e.data.client_id, e.data.clinician_id, e.data.episode_id) == ("c-001", "clin-01", "default")
    assert e.data.session_number == 1
    assert e.data.session_time == datetime.fromisoformat("2026-01-05T09:00:00+01:00")
    [survey] = e.data.surveys
    assert survey.instrument == "PHQ-9"
    assert survey.answers == {str(i): a for i, a in enumerate(PHQ9_ANSWERS, start=1)}
    assert m.encounter == "enc-1"
    assert m.derived_from == {"reference": "QuestionnaireResponse/qr-1"}
    [scored] = scored_events(e)
    assert scored.data.total == sum(PHQ9_ANSWERS)


@pytest.mark.parametrize(
    ("answer", "value"),
    [
        ({"valueCoding": {"system": codes.LOINC, "code": "LA6571-9"}}, 3),
        ({"valueInteger": 2}, 2),
        ({"valueDecimal": 1}, 1),
        (
            {
                "valueCoding": {
                    "system": "urn:other",
                    "code": "x",
                    "extension": [{"url": codes.ORDINAL_VALUE_EXTENSIONS[0], "valueDecimal": 2}],
                }
            },
            2,
        ),
    ],
)
def test_answer_types(answer: dict[str, Any], value: int) -> None:
    doc = phq9_response()
    doc["item"][8]["answer"] = [answer]
    assert mapped(doc).event.data.surveys[0].answers["9"] == value


def test_item_numbers_groups_and_ignored_codes() -> None:
    doc = phq9_response()
    doc["item"] = [
        {
            "linkId": "group",
            "item": [{"linkId": str(i), "answer": [{"valueInteger": 1}]} for i in range(1, 10)],
        },
        {"linkId": "/69722-7", "answer": [{"valueCoding": {"system": codes.LOINC, "code": "LA6570-1"}}]},
        {"linkId": "/44261-6", "answer": [{"valueInteger": 27}]},  # a submitted total is never trusted
    ]
    assert mapped(doc).event.data.surveys[0].answers == {str(i): 1 for i in range(1, 10)}


def test_local_instrument_by_canonical_with_decimals_and_episode() -> None:
    doc = local_response("ORS", {"1": 6.5, "2": 7, "3": 5.5, "4": 6})
    doc["questionnaire"] += "|2.0"
    doc["extension"].append(
        {"url": codes.EPISODE_EXTENSION, "valueReference": {"reference": "EpisodeOfCare/ep-7"}}
    )
    e = mapped(doc).event
    assert e.data.episode_id == "ep-7"
    [survey] = e.data.surveys
    assert (survey.instrument, survey.instrument_version) == ("ORS", "2.0")
    assert survey.answers == {"1": 6.5, "2": 7, "3": 5.5, "4": 6}


@pytest.mark.parametrize(
    ("canonical", "instrument"),
    [
        ("http://loinc.org/q/69737-5", "GAD-7"),
        ("https://forms.example/Questionnaire/44249-1|3", "PHQ-9"),
        ("https://forms.example/Questionnaire/WAI-SR", "WAI-SR"),
        ("https://forms.example/Questionnaire/k10", "K10"),
        (f"{codes.CANONICAL_BASE}/Questionnaire/core-10", "CORE-10"),
        ("https://forms.example/Questionnaire/unknown", None),
    ],
)
def test_questionnaire_canonicals(canonical: str, instrument: str | None) -> None:
    assert codes.instrument_of_questionnaire(canonical) == instrument


def test_references_absolute_logical_and_practitioner_role() -> None:
    doc = phq9_response()
    doc["subject"] = {"reference": "https://ehr.example/fhir/Patient/c-9/_history/3"}
    doc["encounter"] = {"type": "Encounter", "identifier": {"value": "enc-9"}}
    doc["author"] = {"reference": "PractitionerRole/role-1"}
    m = mapped(doc)
    assert (m.event.data.client_id, m.encounter, m.event.data.clinician_id) == ("c-9", "enc-9", "role-1")


def test_event_id_is_deterministic_and_follows_identity() -> None:
    a, b = mapped(phq9_response()), mapped(phq9_response())
    assert a.event.id == b.event.id
    assert mapped(phq9_response(resource_id="qr-2")).event.id != a.event.id
    assert mapped(phq9_response(), clinic="clinic-02").event.id != a.event.id
    no_id = phq9_response(resource_id=None)
    assert mapped(no_id).event.id == mapped(copy.deepcopy(no_id)).event.id
    assert mapped(no_id).derived_from["identifier"]["value"] == f"urn:uuid:{mapped(no_id).event.id}"
    versioned = phq9_response()
    versioned["meta"] = {"versionId": "2"}
    assert mapped(versioned).event.id != a.event.id


def test_every_problem_is_located_and_no_answer_value_is_echoed() -> None:
    doc = phq9_response()
    doc["status"] = "in-progress"
    del doc["author"]
    doc["subject"] = {"reference": "Group/g1"}
    doc["authored"] = "2026-01"
    doc["extension"] = []
    doc["item"][0]["answer"] = [{"valueInteger": "7777"}]
    doc["item"][1]["answer"] = [{"valueString": "I feel 8888"}]
    doc["item"][2]["answer"] = [{"valueCoding": {"system": codes.LOINC, "code": "LA9999-9"}}]
    doc["item"][3]["answer"] = [{"valueInteger": 1}, {"valueInteger": 2}]
    doc["item"][4]["linkId"] = "/69725-0"  # a GAD-7 item in a PHQ-9
    issues = problems(doc)
    where = {i["expression"][0]: i["code"] for i in issues}
    assert where == {
        "QuestionnaireResponse.status": "value",
        "QuestionnaireResponse.subject": "required",
        "QuestionnaireResponse.author": "required",
        "QuestionnaireResponse.authored": "value",
        "QuestionnaireResponse.extension": "required",
        "QuestionnaireResponse.item[0].answer[0].valueInteger": "value",
        "QuestionnaireResponse.item[1].answer[0]": "not-supported",
        "QuestionnaireResponse.item[2].answer[0].valueCoding": "code-invalid",
        "QuestionnaireResponse.item[3].answer": "value",
        "QuestionnaireResponse.item[4].linkId": "value",
    }
    text = json.dumps(issues)
    for secret in ("7777", "8888", "I feel", "g1", "LA9999-9"):
        assert secret not in text


def test_structural_errors_from_the_r4b_model_are_located() -> None:
    doc = phq9_response()
    doc["item"][0]["answer"][0] = {"valueInteger": "abc5"}
    doc["unknownElement"] = "Jane Doe"
    issues = problems(doc)
    assert {"QuestionnaireResponse.item[0].answer[0].valueInteger", "QuestionnaireResponse"} <= {
        i["expression"][0] for i in issues
    }
    assert "abc5" not in json.dumps(issues) and "Jane" not in json.dumps(issues)


def test_wrong_resource_and_unknown_questionnaire() -> None:
    assert problems({"resourceType": "Observation"})[0]["code"] == "not-supported"
    doc = phq9_response()
    doc["questionnaire"] = "https://forms.example/Questionnaire/mystery"
    assert problems(doc) == [
        {
            "severity": "error",
            "code": "not-supported",
            "diagnostics": "unknown questionnaire: use a documented canonical URL or LOINC panel",
            "expression": ["QuestionnaireResponse.questionnaire"],
        }
    ]


def test_bundle_maps_every_entry_or_rejects_all() -> None:
    ok = sessions_from_bundle(
        transaction(phq9_response(), phq9_response(resource_id="qr-2", encounter="enc-2", session_number=2)),
        clinic_id="clinic-01",
        now=NOW,
        source="tests",
    )
    assert [m.event.data.session_number for m in ok] == [1, 2]
    bad = phq9_response(resource_id="qr-3")
    bad["status"] = "stopped"
    with pytest.raises(FhirRejected) as exc:
        sessions_from_bundle(transaction(phq9_response(), bad), clinic_id="c", now=NOW, source="t")
    assert [p.expression for p in exc.value.problems] == ["Bundle.entry[1].resource.status"]
    with pytest.raises(FhirRejected) as exc:
        sessions_from_bundle(
            transaction(phq9_response(), phq9_response()), clinic_id="c", now=NOW, source="t"
        )
    assert exc.value.problems[0].code == "duplicate"
    batch = transaction(phq9_response())
    batch["type"] = "batch"
    with pytest.raises(FhirRejected):
        sessions_from_bundle(batch, clinic_id="c", now=NOW, source="t")
