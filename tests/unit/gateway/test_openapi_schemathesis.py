"""Schemathesis over the published OpenAPI: generated requests (valid and invalid, with and without
a key) never get a 5xx, and every answer matches the documented status codes, content types,
headers and schemas."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings
from tests.gateway_support import FakeProducer, create_key

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def _app(db: Path) -> Any:
    return create_app(
        GatewaySettings(db_path=str(db), consume_scores=False, rate_per_s=10_000, rate_burst=10_000),
        producer_factory=lambda _s: FakeProducer(),  # type: ignore[arg-type,return-value]
    )


_DB = Path(__import__("tempfile").mkdtemp(prefix="rapport-schemathesis-")) / "gateway.sqlite3"
_KEY = create_key(_DB, "clinic-01")[1]
APP = _app(_DB)
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@pytest.fixture(scope="module", autouse=True)
def started() -> Iterator[None]:
    """Run the app's lifespan (SQLite, the fake producer) around the module."""
    with TestClient(APP):
        yield


SEEN: Counter[tuple[str, int]] = Counter()


@schema.parametrize()
@settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_5xx_and_no_schema_violation(case: Any) -> None:
    response = case.call_and_validate(headers={"Authorization": f"Bearer {_KEY}"}, checks=CHECKS)
    SEEN[(f"{case.method} {case.path}", response.status_code)] += 1


def test_generated_requests_reached_the_intake() -> None:
    """Guard against a run that only ever hit 401: the generated requests got past the key check
    (content answers), and a valid event with the key is accepted."""
    from tests.support import session_event

    past_the_key = {op for (op, status), n in SEEN.items() if status not in (401, 429)}
    assert {
        "POST /v1/sessions",
        "POST /fhir/QuestionnaireResponse",
        "POST /fhir",
        "GET /fhir/Observation",
    } <= (past_the_key), SEEN
    assert any(status in (202, 403) for (op, status) in SEEN if op == "POST /v1/sessions"), SEEN

    with TestClient(APP) as client:
        r = client.post(
            "/v1/sessions",
            content=session_event(client="schemathesis").model_dump_json(),
            headers={"Authorization": f"Bearer {_KEY}", "Content-Type": "application/json"},
        )
    assert r.status_code == 202, json.dumps(r.json())
