"""Scores back to the EHR: ``SurveyScored`` → FHIR R4 ``Observation`` (and a searchset ``Bundle``).

Rules (documented in ``docs/gateway.md``): category ``survey``; code = the LOINC total where LOINC
has one (PHQ-9 44261-6, GAD-7 70274-6) plus Rapport's local ``<instrument>-total`` code; value = the
total as a ``{score}`` quantity (a survey scored only for its risk items has no total: a
``dataAbsentReason``); interpretation = the spec's band (local band system), normal/abnormal from
the clinical cutoff, and critical-abnormal when a risk item was endorsed; subscales as components;
``derivedFrom`` the ``QuestionnaireResponse`` and ``encounter`` when the session came in over FHIR.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from shared.contracts.events import SurveyScored
from shared.fhir import codes

_SCORE_UNIT = {"unit": "{score}", "system": codes.UCUM, "code": "{score}"}


def observation(
    scored: SurveyScored, *, encounter: str | None = None, derived_from: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The ``Observation`` (JSON) of one scored survey, validated by the R4B model."""
    from fhir.resources.R4B.observation import Observation

    d = scored.data
    local_total = {"system": codes.INSTRUMENT_SYSTEM, "code": f"{d.instrument}-total"}
    coding = [local_total]
    if d.instrument in codes.LOINC_TOTALS:
        code, display = codes.LOINC_TOTALS[d.instrument]
        coding.insert(0, {"system": codes.LOINC, "code": code, "display": display})
    doc: dict[str, Any] = {
        "resourceType": "Observation",
        "id": str(scored.id),
        "status": "final",
        "category": [
            {"coding": [{"system": codes.OBSERVATION_CATEGORY, "code": "survey", "display": "Survey"}]}
        ],
        "code": {"coding": coding, "text": f"{d.instrument} total score"},
        "subject": {"reference": f"Patient/{d.client_id}"},
        "effectiveDateTime": d.session_time.isoformat(),
        "issued": scored.time.isoformat(),
    }
    if encounter:
        doc["encounter"] = {"reference": f"Encounter/{encounter}"}
    if d.total is not None:
        doc["valueQuantity"] = {"value": d.total, **_SCORE_UNIT}
    else:
        doc["dataAbsentReason"] = {
            "coding": [{"system": codes.DATA_ABSENT_REASON, "code": "error", "display": "Error"}],
            "text": f"not scorable ({d.unscorable_reason}); scored for its risk items only",
        }
    interpretation = _interpretation(scored)
    if interpretation:
        doc["interpretation"] = interpretation
    if derived_from:
        doc["derivedFrom"] = [derived_from]
    if d.subscales:
        doc["component"] = [
            {
                "code": {
                    "coding": [{"system": codes.INSTRUMENT_SYSTEM, "code": f"{d.instrument}-{name}"}],
                    "text": f"{d.instrument} {name} subscale",
                },
                "valueQuantity": {"value": value, **_SCORE_UNIT},
            }
            for name, value in sorted(d.subscales.items())
        ]
    validated: dict[str, Any] = json.loads(Observation.model_validate(doc).model_dump_json())
    return validated


def _interpretation(scored: SurveyScored) -> list[dict[str, Any]]:
    d = scored.data
    out: list[dict[str, Any]] = []
    if d.band:
        out.append({"coding": [{"system": codes.BAND_SYSTEM, "code": d.band}], "text": d.band})
    if d.concern is not None:
        code, display = ("A", "Abnormal") if d.concern else ("N", "Normal")
        text = "on the concerning side of the clinical cutoff" if d.concern else "not on the concerning side"
        out.append(
            {"coding": [{"system": codes.V3_INTERPRETATION, "code": code, "display": display}], "text": text}
        )
    if d.critical_items:
        items = ", ".join(d.critical_items)
        out.append(
            {
                "coding": [{"system": codes.V3_INTERPRETATION, "code": "AA", "display": "Critical abnormal"}],
                "text": f"critical item endorsed: {items}",
            }
        )
    return out


def search_bundle(observations: Sequence[dict[str, Any]], *, base_url: str, self_url: str) -> dict[str, Any]:
    """A ``searchset`` Bundle of ``observations``; ``base_url`` is the FHIR base (absolute)."""
    base = base_url.rstrip("/")
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(observations),
        "link": [{"relation": "self", "url": self_url}],
        "entry": [
            {"fullUrl": f"{base}/Observation/{o['id']}", "resource": o, "search": {"mode": "match"}}
            for o in observations
        ],
    }
