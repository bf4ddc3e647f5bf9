"""The AsyncAPI document: generated from the models, committed in docs/, internally consistent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from shared.contracts.schemas import CHANNELS, asyncapi_document, render_asyncapi
from shared.contracts.topics import CATALOGUE

ROOT = Path(__file__).resolve().parents[3]


def test_committed_document_matches_the_models() -> None:
    committed = (ROOT / "docs" / "asyncapi.yaml").read_text(encoding="utf-8")
    assert committed == render_asyncapi(), "run `make schemas` and review the diff"


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_every_reference_resolves_inside_the_document() -> None:
    doc = yaml.safe_load(render_asyncapi())
    for ref in _refs(doc):
        assert ref.startswith("#/"), ref
        node: Any = doc
        for part in ref[2:].split("/"):
            assert part in node, f"dangling {ref}"
            node = node[part]


def test_every_channel_is_a_catalogue_topic_and_payloads_are_the_models() -> None:
    doc = asyncapi_document()
    names = {spec.name for spec in CATALOGUE}
    assert {c["address"] for c in doc["channels"].values()} == set(CHANNELS) <= names
    schemas = doc["components"]["schemas"]
    for _channel, model, _action, _description in CHANNELS.values():
        assert set(schemas[model.__name__]["properties"]) == set(model.model_fields)
    assert not any("$defs" in s for s in schemas.values())
