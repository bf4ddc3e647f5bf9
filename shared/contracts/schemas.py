"""JSON Schemas of the event contracts, generated from the pydantic models.

The generated files are committed under ``schemas/``; a test regenerates them and fails when a model
changed without its committed schema being updated (``rapport schemas write`` updates them).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from shared.contracts.events import DeadLetter, DeadLetterReplayed, SessionCompleted, Signal, SurveyScored

#: Published contracts by schema file name.
CONTRACTS: dict[str, type[BaseModel]] = {
    "session-completed.v1.json": SessionCompleted,
    "survey-scored.v1.json": SurveyScored,
    "signal.v1.json": Signal,
    "dead-letter.v1.json": DeadLetter,
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
