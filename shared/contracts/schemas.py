"""JSON Schemas and the AsyncAPI document of the event contracts, generated from the pydantic models.

The generated files are committed under ``schemas/`` and ``docs/asyncapi.yaml``; a test regenerates
them and fails when a model changed without its committed files being updated
(``rapport schemas write`` updates them).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from shared.contracts.alerts import AlertAcknowledged, AlertEvent, ClinicDirectory
from shared.contracts.canary import CANARY_CLINIC_ID
from shared.contracts.events import (
    SCHEMA_VERSION,
    DeadLetter,
    DeadLetterReplayed,
    SessionCompleted,
    Signal,
    SurveyScored,
)
from shared.contracts.topics import (
    ALERT_ACKS,
    ALERTS,
    CATALOGUE,
    DEAD_LETTER,
    DEAD_LETTER_REPLAYS,
    DIRECTORY,
    SESSION_COMPLETED,
    SIGNALS,
    SURVEY_SCORED,
)

#: Published contracts by schema file name.
CONTRACTS: dict[str, type[BaseModel]] = {
    "session-completed.v1.json": SessionCompleted,
    "survey-scored.v1.json": SurveyScored,
    "signal.v1.json": Signal,
    "dead-letter.v1.json": DeadLetter,
    "alert.v1.json": AlertEvent,
    "alert-ack.v1.json": AlertAcknowledged,
    "directory.v1.json": ClinicDirectory,
    "dead-letter-replayed.v1.json": DeadLetterReplayed,
}


def render(model: type[BaseModel]) -> str:
    """The JSON Schema of ``model`` (validation mode: what a producer must send), as stable text."""
    schema: dict[str, Any] = model.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def write_all(directory: Path) -> list[Path]:
    """Write every contract's schema into ``directory``; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, model in CONTRACTS.items():
        path = directory / name
        path.write_text(render(model), encoding="utf-8")
        paths.append(path)
    return paths


def stale(directory: Path) -> list[str]:
    """Names of committed schema files that differ from what the models generate now."""
    return [
        name
        for name, model in CONTRACTS.items()
        if not (directory / name).is_file() or (directory / name).read_text(encoding="utf-8") != render(model)
    ]


# --------------------------------------------------------------------------- AsyncAPI

#: Topics described in the AsyncAPI document: base name → (channel id, message model, Rapport's
#: action on it, what it carries). A new service's topic is one more entry here.
CHANNELS: dict[str, tuple[str, type[BaseModel], str, str]] = {
    SESSION_COMPLETED: (
        "sessionCompleted",
        SessionCompleted,
        "receive",
        "A therapy session ended and the client's surveys are in. Produced by clinic integrations "
        "(directly or through the gateway) and by the canary (clinic_id "
        f"`{CANARY_CLINIC_ID}`); the source of truth for replay.",
    ),
    SURVEY_SCORED: (
        "surveyScored",
        SurveyScored,
        "send",
        "One event per scorable survey of a session, from the scoring service; read by the monitor.",
    ),
    SIGNALS: (
        "signals",
        Signal,
        "send",
        "Explainable signals from the monitor's rules over each client's trajectory; read by the "
        "notifier.",
    ),
    ALERTS: (
        "alerts",
        AlertEvent,
        "send",
        "Every state change of every alert (raised, held, delivered and failed per channel and "
        "attempt, escalated, acknowledged, resolved) from the notifier: the audit trail of who was "
        "told what, when; read by the inbox.",
    ),
    ALERT_ACKS: (
        "alertAcks",
        AlertAcknowledged,
        "receive",
        "A clinician acknowledged an alert (from the inbox or a clinic integration); stops its "
        "escalation. Keyed like signals, by the client.",
    ),
    DIRECTORY: (
        "directory",
        ClinicDirectory,
        "receive",
        "Compacted: one record per clinic (people, channels by reference to secrets, supervisors, "
        "on-call, escalation deadlines, quiet hours, digests), published by `rapport directory load`.",
    ),
    DEAD_LETTER: (
        "deadLetter",
        DeadLetter,
        "send",
        "Records a stage could not process, whole (base64) with a reason code, for inspection and "
        "`rapport dead-letters replay`.",
    ),
    DEAD_LETTER_REPLAYS: (
        "deadLetterReplays",
        DeadLetterReplayed,
        "send",
        "The replay ledger: one record per dead letter re-published by `rapport dead-letters replay`.",
    ),
}

ASYNCAPI_FILE = "asyncapi.yaml"


def _asyncapi_discriminators(node: Any) -> Any:
    """AsyncAPI's schema object names the discriminator by its property (a string); pydantic writes
    OpenAPI's ``{propertyName, mapping}``. The ``oneOf`` beside it already lists the variants."""
    if isinstance(node, dict):
        return {
            key: value["propertyName"]
            if key == "discriminator" and isinstance(value, dict) and "propertyName" in value
            else _asyncapi_discriminators(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_asyncapi_discriminators(item) for item in node]
    return node


def _asyncapi_schemas(models: list[type[BaseModel]]) -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    for model in models:
        schema = _asyncapi_discriminators(
            model.model_json_schema(mode="validation", ref_template="#/components/schemas/{model}")
        )
        for name, definition in {**schema.pop("$defs", {}), model.__name__: schema}.items():
            if schemas.setdefault(name, definition) != definition:
                raise ValueError(f"two different schemas are called {name}")
    return dict(sorted(schemas.items()))


def asyncapi_document() -> dict[str, Any]:
    """An AsyncAPI 3.0 document of every topic in :data:`CHANNELS`, its payload schemas generated
    from the same models as the JSON Schemas (``$defs`` hoisted into ``components/schemas``)."""
    specs = {spec.name: spec for spec in CATALOGUE}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for topic, (channel, model, action, description) in CHANNELS.items():
        name = model.__name__
        spec = specs[topic]
        config: dict[str, Any] = {"cleanup.policy": [spec.cleanup_policy]}
        if spec.retention_ms is not None:
            config["retention.ms"] = spec.retention_ms
        channels[channel] = {
            "address": topic,
            "description": description,
            "messages": {name: {"$ref": f"#/components/messages/{name}"}},
            "bindings": {"kafka": {"topic": topic, "topicConfiguration": config, "bindingVersion": "0.5.0"}},
        }
        operations[f"{action}{name}"] = {
            "action": action,
            "channel": {"$ref": f"#/channels/{channel}"},
            "summary": f"Rapport {'reads' if action == 'receive' else 'publishes'} {topic}.",
            "messages": [{"$ref": f"#/channels/{channel}/messages/{name}"}],
        }
        doc = (model.__doc__ or name).strip()
        messages[name] = {
            "name": name,
            "title": name,
            "summary": doc.splitlines()[0],
            "contentType": "application/json",
            "payload": {"$ref": f"#/components/schemas/{name}"},
            "bindings": {
                "kafka": {
                    "key": {"type": "string", "description": f"Keyed by {spec.keyed_by} (UTF-8)."},
                    "bindingVersion": "0.5.0",
                }
            },
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Rapport events",
            "version": SCHEMA_VERSION,
            "description": (
                "Every Rapport topic and its JSON payload, generated from the pydantic models "
                "(`rapport schemas write`). Consumers read tolerantly (ignore unknown fields); "
                "changes are additive, a breaking change is a new topic. Canary events carry "
                f"clinic_id `{CANARY_CLINIC_ID}`: analytics consumers drop them."
            ),
            "license": {"name": "Apache-2.0"},
        },
        "defaultContentType": "application/json",
        "servers": {
            "kafka": {
                "host": "{bootstrap}",
                "protocol": "kafka",
                "description": "The Kafka cluster (topic names may carry a namespace prefix in tests).",
                "variables": {"bootstrap": {"default": "127.0.0.1:9092"}},
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": messages,
            "schemas": _asyncapi_schemas([m for _c, m, _a, _d in CHANNELS.values()]),
        },
    }


def render_asyncapi() -> str:
    """The AsyncAPI document as stable YAML text."""
    import yaml

    header = "# Generated by `rapport schemas write` from shared/contracts; do not edit.\n"
    return header + yaml.safe_dump(asyncapi_document(), sort_keys=False, allow_unicode=True, width=100)
