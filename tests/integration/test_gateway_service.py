"""The gateway on a real broker: JSON and FHIR intake end as scored events, scores come back as FHIR
Observations (checked by an independent validator), and the same event is produced once across a
gateway restart."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from shared.contracts import topics
from shared.contracts.events import SurveyScored, derive_id
from tests.gateway_support import auth, create_key, http, install_validator, phq9_response, validate_fhir
from tests.support import consume, running_service, session_event, t, values

pytestmark = pytest.mark.integration
PREFIX = "RAPPORT_GATEWAY_"


@pytest.fixture(scope="module")
def fhir_validator(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install_validator(tmp_path_factory.mktemp("fhir-validator"))


def gateway(kafka_bootstrap: str, ns: str, tmp_path: Path, db: Path, **extra: str) -> Any:
    return running_service(
        "services.gateway", PREFIX, kafka_bootstrap, ns, tmp_path, db_path=str(db), **extra
    )


def observations(base: str, key: str, query: str, want: int, timeout_s: float = 90.0) -> dict[str, Any]:
    """Poll the search until it holds ``want`` entries (bounded); returns the last Bundle."""
    deadline = time.monotonic() + timeout_s
    bundle: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status, _, body = http("GET", f"{base}/fhir/Observation?{query}", headers=auth(key, None))
        assert status == 200, body
        bundle = json.loads(body)
        if bundle["total"] >= want:
            return bundle
        time.sleep(0.5)
    return bundle


def test_fhir_phq9_and_json_sessions_are_scored_and_come_back_as_observations(
    kafka_bootstrap: str, ns: str, tmp_path: Path, fhir_validator: Path
) -> None:
    db = tmp_path / "gateway.sqlite3"
    _, key = create_key(db, "clinic-01")
    _, other_key = create_key(db, "clinic-02")
    event = session_event(client="c-json", surveys=[("GAD-7", {str(i): 2 for i in range(1, 8)})])
    with (
        running_service("services.scoring", "RAPPORT_SCORING_", kafka_bootstrap, ns, tmp_path),
        gateway(kafka_bootstrap, ns, tmp_path, db) as gw,
    ):
        base = f"http://127.0.0.1:{gw.port}"
        status, headers, body = http(
            "POST", f"{base}/fhir/QuestionnaireResponse", json.dumps(phq9_response()).encode(), auth(key)
        )
        assert status == 202, body
        assert headers["content-type"].startswith("application/fhir+json")
        status, _, body = http(
            "POST", f"{base}/v1/sessions", event.model_dump_json().encode(), auth(key, "application/json")
        )
        assert status == 202, body

        sessions = values(consume(kafka_bootstrap, t(ns, topics.SESSION_COMPLETED), expected=2))
        scored = [
            SurveyScored.model_validate(v)
            for v in values(consume(kafka_bootstrap, t(ns, topics.SURVEY_SCORED), expected=2))
        ]

        fhir_bundle = observations(base, key, "subject=Patient/c-001&encounter=Encounter/enc-1", want=1)
        json_bundle = observations(base, key, "subject=c-json", want=1)
        _, _, foreign = http(
            "GET", f"{base}/fhir/Observation?subject=Patient/c-001", headers=auth(other_key, None)
        )
        metrics = gw.get("/metrics")[1]

    assert sorted(s["clinic_id"] for s in sessions) == ["clinic-01", "clinic-01"]
    [fhir_session] = [s for s in sessions if s["data"]["client_id"] == "c-001"]
    assert fhir_session["data"]["surveys"][0]["instrument"] == "PHQ-9"
    by_instrument = {s.data.instrument: s for s in scored}
    assert by_instrument["PHQ-9"].data.total == 11 and by_instrument["GAD-7"].data.total == 14
    assert by_instrument["GAD-7"].id == derive_id(event.id, "survey-scored", "GAD-7")

    [entry] = fhir_bundle["entry"]
    obs = entry["resource"]
    assert obs["id"] == str(by_instrument["PHQ-9"].id)
    assert {"system": "http://loinc.org", "code": "44261-6"}.items() <= obs["code"]["coding"][0].items()
    assert obs["valueQuantity"]["value"] == 11
    assert obs["derivedFrom"] == [{"reference": "QuestionnaireResponse/qr-1"}]
    assert obs["encounter"] == {"reference": "Encounter/enc-1"}
    assert obs["interpretation"][0]["text"] == "moderate"
    [json_obs] = [e["resource"] for e in json_bundle["entry"]]
    assert json_obs["code"]["coding"][0]["code"] == "70274-6"
    assert json.loads(foreign)["total"] == 0, "another clinic's key sees nothing of clinic-01"

    results = validate_fhir(fhir_validator, [fhir_bundle, obs, json_bundle, json_obs])
    assert all(not r["fhirjs"] and not r["schema"] for r in results), results
    assert 'rapport_gateway_requests_total{route="/fhir/QuestionnaireResponse",status="202"} 1.0' in metrics
    assert 'rapport_gateway_events_total{outcome="produced"} 2.0' in metrics


def test_same_event_is_produced_once_across_a_gateway_restart(
    kafka_bootstrap: str, ns: str, tmp_path: Path
) -> None:
    db = tmp_path / "gateway.sqlite3"
    _, key = create_key(db, "clinic-01")
    event = session_event(client="c-restart").model_dump_json().encode()
    answers = []
    for _ in range(2):
        with gateway(kafka_bootstrap, ns, tmp_path, db, consume_scores="false") as gw:
            base = f"http://127.0.0.1:{gw.port}"
            for _ in range(2):
                status, _, body = http("POST", f"{base}/v1/sessions", event, auth(key, "application/json"))
                answers.append((status, json.loads(body)))
    assert [a[0] for a in answers] == [202] * 4
    assert all(a[1] == answers[0][1] for a in answers), "the same answer every time"
    records = consume(kafka_bootstrap, t(ns, topics.SESSION_COMPLETED), expected=1, settle_s=3)
    assert len(records) == 1, "produced once, also across the restart"
