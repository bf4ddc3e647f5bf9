"""GET /fhir/Observation: the calling clinic's scores only, linked back to the FHIR intake."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.gateway.store import GatewayStore
from shared.contracts.events import SurveyScored
from shared.runtime.apikeys import connect
from tests.gateway_support import auth, phq9_response
from tests.support import PHQ9_MODERATE, scored_events, session_event
from tests.unit.gateway.conftest import Gateway

CLINICS = ("clinic-01", "clinic-02", "clinic-03")


def store_scores(gw: Gateway, scores: list[SurveyScored]) -> None:
    GatewayStore(connect(gw.db)).store_scores("t", scores, {})


def search(gw: Gateway, clinic: str, query: str) -> Any:
    return gw.client.get(f"/fhir/Observation?{query}", headers=auth(gw.keys[clinic], None))


def test_scores_of_a_fhir_session_come_back_linked_to_encounter_and_response(gateway: Gateway) -> None:
    key = gateway.keys["clinic-01"]
    r = gateway.client.post(
        "/fhir/QuestionnaireResponse", content=json.dumps(phq9_response()), headers=auth(key)
    )
    assert r.status_code == 202
    from shared.contracts.events import SessionCompleted

    [(_, _, raw)] = gateway.producer.sent
    store_scores(gateway, scored_events(SessionCompleted.model_validate_json(raw)))
    store_scores(gateway, scored_events(session_event(session_number=2)))  # came straight from Kafka
    bundle = search(gateway, "clinic-01", "subject=Patient/c-001").json()
    assert bundle["type"] == "searchset" and bundle["total"] == 2
    first, second = (e["resource"] for e in bundle["entry"])
    assert first["encounter"] == {"reference": "Encounter/enc-1"}
    assert first["derivedFrom"] == [{"reference": "QuestionnaireResponse/qr-1"}]
    assert first["valueQuantity"]["value"] == 11
    assert "encounter" not in second
    assert bundle["entry"][0]["fullUrl"] == f"http://testserver/fhir/Observation/{first['id']}"
    only = search(gateway, "clinic-01", "subject=c-001&encounter=Encounter/enc-1").json()
    assert [e["resource"]["id"] for e in only["entry"]] == [first["id"]]
    assert search(gateway, "clinic-01", "subject=c-001&encounter=Encounter/other").json()["total"] == 0


def test_subject_is_required_and_checked(gateway: Gateway) -> None:
    for query in ("", "subject=", "subject=Patient/Jane%20Doe", "subject=c-001&encounter=Encounter/a%20b"):
        r = search(gateway, "clinic-01", query)
        assert r.status_code == 400 and r.json()["resourceType"] == "OperationOutcome"
        assert "Jane" not in r.text


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.lists(
        st.tuples(st.sampled_from(CLINICS), st.sampled_from(("a", "b")), st.integers(1, 5)),
        min_size=1,
        max_size=12,
    ),
    caller=st.sampled_from(CLINICS),
    client=st.sampled_from(("a", "b")),
)
def test_tenant_isolation(
    gateway_factory: Callable[..., Any], data: list[tuple[str, str, int]], caller: str, client: str
) -> None:
    """Whatever clinics hold scores for the same client ids, a key reads only its own clinic's, and
    can submit only its own clinic's events."""
    run = uuid.uuid4().hex[:8]  # fresh client ids per example: the file outlives examples
    with gateway_factory() as gw:
        expected: set[str] = set()
        for clinic, who, n in data:
            scores = scored_events(session_event(clinic=clinic, client=f"{run}-{who}", session_number=n))
            store_scores(gw, scores)
            if clinic == caller and who == client:
                expected |= {str(s.id) for s in scores}
        bundle = search(gw, caller, f"subject=Patient/{run}-{client}").json()
        got = {e["resource"]["id"] for e in bundle["entry"]}
        assert got == expected
        for clinic, who, n in data:
            body = session_event(clinic=clinic, client=f"{run}-{who}", session_number=n).model_dump_json()
            r = gw.client.post(
                "/v1/sessions", content=body, headers=auth(gw.keys[caller], "application/json")
            )
            assert r.status_code == (202 if clinic == caller else 403)
        assert {json.loads(v)["clinic_id"] for _, _, v in gw.producer.sent} <= {caller}


def test_one_score_per_event_id_whatever_the_redeliveries(gateway: Gateway) -> None:
    scores = scored_events(session_event(surveys=[("PHQ-9", PHQ9_MODERATE)]))
    for _ in range(3):
        store_scores(gateway, scores)
    assert search(gateway, "clinic-01", "subject=c-001").json()["total"] == 1
