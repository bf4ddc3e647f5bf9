"""The gateway's HTTP contract without a broker: every answer class, idempotency, restarts.

The producer is a fake here; the integration tests run the same paths on the real broker.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import pytest

from shared.contracts.topics import SESSION_COMPLETED
from tests.gateway_support import FakeProducer, auth, phq9_response, transaction
from tests.support import session_event
from tests.unit.gateway.conftest import Gateway

JSON = "application/json"


def post_json(gw: Gateway, body: Any, key: str | None = None, **headers: str) -> Any:
    content = body if isinstance(body, bytes) else json.dumps(body) if isinstance(body, dict) else body
    return gw.client.post(
        "/v1/sessions", content=content, headers=auth(key or gw.keys["clinic-01"], JSON, **headers)
    )


def event_body(**kw: Any) -> dict[str, Any]:
    return json.loads(session_event(**kw).model_dump_json())


def test_json_session_is_produced_keyed_by_client_and_answered_202(gateway: Gateway) -> None:
    body = event_body()
    r = post_json(gateway, body)
    assert r.status_code == 202
    assert r.json() == {"status": "accepted", "event_id": body["id"], "warnings": []}
    [(topic, key, value)] = gateway.producer.sent
    assert topic == f"ns.{SESSION_COMPLETED}" and key == b"c-001"
    assert json.loads(value)["id"] == body["id"]


def test_fhir_json_content_type_is_accepted_too(gateway: Gateway) -> None:
    r = gateway.client.post(
        "/v1/sessions", content=json.dumps(event_body()), headers=auth(gateway.keys["clinic-01"])
    )
    assert r.status_code == 202


def test_instrument_problems_are_warnings_not_rejections(gateway: Gateway) -> None:
    answers = {"1": 1, "2": 2, "3": 1, "4": 2, "5": 1, "6": 1, "7": 2, "8": 1, "9": 7}
    r = post_json(gateway, event_body(surveys=[("PHQ-9", answers)]))
    assert r.status_code == 202
    [warning] = r.json()["warnings"]
    assert (warning["instrument"], warning["reason"]) == ("PHQ-9", "out_of_range_answer")
    assert "7" not in warning["detail"].replace("PHQ-9", "")
    assert len(gateway.producer.sent) == 1  # accepted: a risk answer elsewhere must still flow


def test_fhir_questionnaire_response_and_bundle(gateway: Gateway) -> None:
    key = gateway.keys["clinic-01"]
    r = gateway.client.post(
        "/fhir/QuestionnaireResponse", content=json.dumps(phq9_response()), headers=auth(key)
    )
    assert r.status_code == 202 and r.headers["content-type"].startswith("application/fhir+json")
    assert r.json()["resourceType"] == "OperationOutcome"
    [event] = gateway.producer.events()
    assert (event["clinic_id"], event["data"]["client_id"]) == ("clinic-01", "c-001")
    bundle = transaction(
        phq9_response(resource_id="a", encounter="e-a"), phq9_response(resource_id="b", encounter="e-b")
    )
    r = gateway.client.post("/fhir", content=json.dumps(bundle), headers=auth(key))
    assert r.status_code == 202
    assert r.json()["type"] == "transaction-response" and len(r.json()["entry"]) == 2
    assert len(gateway.producer.sent) == 3


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer rk_0123456789abcdef.nope"}, 401),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, 401),
    ],
)
def test_keys_are_required(gateway: Gateway, headers: dict[str, str], status: int) -> None:
    for path in ("/v1/sessions", "/fhir/QuestionnaireResponse", "/fhir"):
        r = gateway.client.post(path, content=b"{}", headers={"Content-Type": JSON, **headers})
        assert r.status_code == status
        if path.startswith("/fhir"):
            assert r.json()["issue"][0]["code"] == "security"
    assert gateway.client.get("/fhir/Observation?subject=c-001", headers=headers).status_code == 401
    assert gateway.producer.sent == []


def test_revoked_key_is_refused_within_a_second(gateway: Gateway) -> None:
    from services.gateway.app import KEY_CACHE_S
    from shared.runtime.apikeys import ApiKeyStore, connect

    key = gateway.keys["clinic-03"]
    assert post_json(gateway, event_body(clinic="clinic-03"), key).status_code == 202
    ApiKeyStore(connect(gateway.db)).revoke(key[3:].split(".", 1)[0])
    gateway.clock[0] += KEY_CACHE_S
    assert KEY_CACHE_S <= 1.0
    assert post_json(gateway, event_body(clinic="clinic-03", session_number=2), key).status_code == 401


def test_another_clinics_event_is_403_and_not_produced(gateway: Gateway) -> None:
    r = post_json(gateway, event_body(clinic="clinic-02"))
    assert r.status_code == 403 and r.json()["error"] == "forbidden"
    assert gateway.producer.sent == []


def test_content_types(gateway: Gateway) -> None:
    key = gateway.keys["clinic-01"]
    for ctype in ("text/plain", "application/xml", "application/fhir+xml", None):
        r = gateway.client.post("/v1/sessions", content=json.dumps(event_body()), headers=auth(key, ctype))
        assert r.status_code == 415
    r = gateway.client.post(
        "/fhir/QuestionnaireResponse", content=b"<x/>", headers=auth(key, "application/fhir+xml")
    )
    assert r.status_code == 415 and r.json()["resourceType"] == "OperationOutcome"
    ok = auth(key, "application/json; charset=utf-8")
    assert (
        gateway.client.post("/v1/sessions", content=json.dumps(event_body()), headers=ok).status_code == 202
    )


def test_size_limit_declared_and_streamed(gateway_factory: Callable[..., Any]) -> None:
    with gateway_factory(max_body_bytes=4096) as gw:
        big = json.dumps(event_body()).encode() + b" " * 5000
        assert post_json(gw, big).status_code == 413

        def chunks() -> Any:  # no Content-Length: the limit holds while reading
            yield big[:3000]
            yield big[3000:]

        r = gw.client.post(
            "/fhir/QuestionnaireResponse", content=chunks(), headers=auth(gw.keys["clinic-01"])
        )
        assert r.status_code == 413 and r.json()["issue"][0]["code"] == "too-costly"
        assert gw.producer.sent == []


def test_default_size_limit_is_one_mebibyte(gateway: Gateway) -> None:
    assert post_json(gateway, b"{" + b" " * (1024 * 1024) + b"}").status_code == 413
    assert post_json(gateway, b"{" + b" " * (1024 * 1024 - 10) + b"}").status_code == 422


def test_422_names_locations_and_never_echoes_answers(gateway: Gateway) -> None:
    body = event_body()
    body["data"]["surveys"][0]["answers"]["9"] = "7777"
    body["data"]["surveys"][0]["answers"]["Jane Doe"] = 1
    body["data"]["session_number"] = 0
    r = post_json(gateway, body)
    assert r.status_code == 422
    locs = [d["loc"] for d in r.json()["detail"]]
    assert ["body", "data", "session_number"] in locs
    assert ["body", "data", "surveys", 0, "answers", "9", "int"] in locs
    assert "7777" not in r.text and "Jane" not in r.text
    assert post_json(gateway, b'{"id": ').status_code == 422


def test_fhir_422_is_an_operation_outcome_with_expressions(gateway: Gateway) -> None:
    doc = phq9_response()
    doc["item"][8]["answer"] = [{"valueInteger": "4444"}]
    r = gateway.client.post(
        "/fhir/QuestionnaireResponse", content=json.dumps(doc), headers=auth(gateway.keys["clinic-01"])
    )
    assert r.status_code == 422
    [issue] = r.json()["issue"]
    assert issue["expression"] == ["QuestionnaireResponse.item[8].answer[0].valueInteger"]
    assert "4444" not in r.text
    r = gateway.client.post("/fhir", content=b"not json", headers=auth(gateway.keys["clinic-01"]))
    assert r.status_code == 422 and r.json()["issue"][0]["code"] == "structure"


def test_rate_limit_per_key_with_retry_after(gateway_factory: Callable[..., Any]) -> None:
    with gateway_factory(rate_per_s=1.0, rate_burst=2) as gw:
        statuses = [post_json(gw, event_body(session_number=n)).status_code for n in (1, 2, 3)]
        assert statuses == [202, 202, 429]
        r = post_json(gw, event_body(session_number=3))
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
        other = post_json(gw, event_body(clinic="clinic-02"), gw.keys["clinic-02"])
        assert other.status_code == 202  # another key has its own bucket
        gw.clock[0] += 1.0
        assert post_json(gw, event_body(session_number=3)).status_code == 202
        assert len(gw.producer.sent) == 4


@pytest.mark.parametrize("mode", ["down", "hang"])
def test_no_ack_means_503_with_retry_after_and_no_ledger_entry(
    gateway_factory: Callable[..., Any], mode: str
) -> None:
    producer = FakeProducer(mode=mode)
    with gateway_factory(producer=producer, ack_timeout_s=0.2, retry_after_s=7) as gw:
        r = post_json(gw, event_body())
        assert r.status_code == 503 and r.headers["Retry-After"] == "7"
        fhir = gw.client.post(
            "/fhir/QuestionnaireResponse",
            content=json.dumps(phq9_response()),
            headers=auth(gw.keys["clinic-01"]),
        )
        assert fhir.status_code == 503 and fhir.json()["issue"][0]["code"] == "transient"
        producer.mode = "ack"
        if mode == "hang":
            producer.release()  # the broker came back: the running deliveries finish…
        r = post_json(gw, event_body())
        assert r.status_code == 202
        # …and the retry joined or replayed them: one record per event, never two.
        assert producer.enqueued == (2 if mode == "hang" else 1)


def test_same_event_id_same_answer_produced_once_also_after_restart(
    gateway_factory: Callable[..., Any],
) -> None:
    body = event_body()
    with gateway_factory() as gw:
        first = post_json(gw, body)
        again = post_json(gw, body)
        assert (first.status_code, again.status_code) == (202, 202) and first.json() == again.json()
        assert len(gw.producer.sent) == 1
        changed = json.loads(json.dumps(body))
        changed["data"]["surveys"][0]["answers"]["1"] = 3
        conflict = post_json(gw, changed)
        assert conflict.status_code == 422 and conflict.json()["error"] == "idempotency_conflict"
        assert "3" not in conflict.json()["message"]
        fhir = gw.client.post(
            "/fhir/QuestionnaireResponse",
            content=json.dumps(phq9_response()),
            headers=auth(gw.keys["clinic-01"]),
        )
    with gateway_factory() as restarted:
        assert post_json(restarted, body).json() == first.json()
        again = restarted.client.post(
            "/fhir/QuestionnaireResponse",
            content=json.dumps(phq9_response()),
            headers=auth(restarted.keys["clinic-01"]),
        )
        assert again.status_code == 202 and again.json() == fhir.json()
        assert restarted.producer.sent == []


def test_idempotency_key_header(gateway: Gateway) -> None:
    a, b = event_body(session_number=1), event_body(session_number=2)
    first = post_json(gateway, a, **{"Idempotency-Key": "req-1"})
    assert first.status_code == 202
    assert post_json(gateway, a, **{"Idempotency-Key": "req-1"}).json() == first.json()
    reused = post_json(gateway, b, **{"Idempotency-Key": "req-1"})
    assert reused.status_code == 422 and "Idempotency-Key" in reused.json()["message"]
    assert post_json(gateway, b, **{"Idempotency-Key": "req-2"}).status_code == 202
    assert post_json(gateway, b, **{"Idempotency-Key": "x" * 256}).status_code == 422
    assert len(gateway.producer.sent) == 2


def test_same_event_id_in_two_clinics_is_two_events(gateway: Gateway) -> None:
    a = event_body(clinic="clinic-01")
    b = {**a, "clinic_id": "clinic-02"}
    assert post_json(gateway, a).status_code == 202
    assert post_json(gateway, b, gateway.keys["clinic-02"]).status_code == 202
    assert len(gateway.producer.sent) == 2


def test_nothing_identifying_reaches_logs_or_metric_labels(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    key = gateway.keys["clinic-01"]
    with caplog.at_level(logging.DEBUG):
        post_json(gateway, event_body(client="c-secret-77"))
        post_json(gateway, event_body(client="c-secret-78", clinic="clinic-02"))
        gateway.client.get("/fhir/Observation?subject=Patient/c-secret-77", headers=auth(key))
        gateway.client.post("/v1/sessions", content=b"{}", headers={"Authorization": f"Bearer {key}x"})
    # The test's own HTTP client (httpx) logs its request lines; the server side must log nothing of them.
    server_logs = "\n".join(
        r.getMessage() + str(vars(r)) for r in caplog.records if not r.name.startswith("httpx")
    )
    text = server_logs + gateway.client.get("/metrics").text
    assert "c-secret" not in text and key not in text and key[3:19] not in text
    assert 'rapport_gateway_requests_total{route="/v1/sessions",status="202"} 1.0' in text


def test_openapi_and_docs_are_published(gateway: Gateway) -> None:
    spec = gateway.client.get("/openapi.json").json()
    assert {"/v1/sessions", "/fhir/QuestionnaireResponse", "/fhir", "/fhir/Observation"} <= set(spec["paths"])
    assert "SessionCompleted" in spec["components"]["schemas"]
    assert spec["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
    assert all(op["security"] == [{"apiKey": []}] for path in spec["paths"].values() for op in path.values())
    assert gateway.client.get("/docs").status_code == 200
    assert gateway.client.get("/readyz").json()["status"] == "ready"


def test_a_conflict_anywhere_in_a_bundle_produces_nothing(gateway: Gateway) -> None:
    key = gateway.keys["clinic-01"]
    first = phq9_response(resource_id="a", encounter="e-a")
    assert (
        gateway.client.post(
            "/fhir/QuestionnaireResponse", content=json.dumps(first), headers=auth(key)
        ).status_code
        == 202
    )
    changed = phq9_response(resource_id="a", encounter="e-a", answers=(3, 3, 3, 3, 3, 3, 3, 3, 3))
    bundle = transaction(phq9_response(resource_id="b", encounter="e-b"), changed)
    r = gateway.client.post("/fhir", content=json.dumps(bundle), headers=auth(key))
    assert r.status_code == 422 and r.json()["issue"][0]["code"] == "conflict"
    assert len(gateway.producer.sent) == 1, "the valid entry before the conflict was not produced"
