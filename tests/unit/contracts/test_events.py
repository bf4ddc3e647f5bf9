"""Contracts: frozen, tolerant on read, strict on answers, schemas in step with the models."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from shared.contracts.events import RAPPORT_NAMESPACE, SessionCompleted, derive_id, validation_error_summary
from shared.contracts.schemas import CONTRACTS, render, stale, write_all
from tests.support import session_event

ROOT = Path(__file__).resolve().parents[3]


def test_committed_schemas_match_the_models() -> None:
    assert stale(ROOT / "schemas") == [], "run `make schemas` and review the diff"


def test_schema_check_notices_a_changed_model(tmp_path: Path) -> None:
    write_all(tmp_path)
    name = next(iter(CONTRACTS))
    schema = json.loads((tmp_path / name).read_text())
    schema["properties"].pop("subject")
    (tmp_path / name).write_text(json.dumps(schema))
    assert stale(tmp_path) == [name]


def test_schemas_are_valid_json_schema_documents() -> None:
    from shared.contracts.alerts import ClinicDirectory

    for model in CONTRACTS.values():
        doc = json.loads(render(model))
        assert doc["type"] == "object"
        # Events carry an id; the directory is a compacted document keyed by its clinic.
        assert ("clinic_id" if model is ClinicDirectory else "id") in doc["required"]


def test_models_are_frozen() -> None:
    event = session_event()
    with pytest.raises(ValidationError):
        event.subject = "other"  # type: ignore[misc]


def test_unknown_fields_are_ignored_on_read() -> None:
    raw = json.loads(session_event().model_dump_json())
    raw["future_field"] = {"added": "later"}
    raw["data"]["another"] = 1
    assert SessionCompleted.model_validate(raw) == session_event()


@pytest.mark.parametrize("answer", ["3", True, [1]])
def test_answers_must_be_json_numbers(answer: object) -> None:
    raw = json.loads(session_event().model_dump_json())
    raw["data"]["surveys"][0]["answers"]["1"] = answer
    with pytest.raises(ValidationError):
        SessionCompleted.model_validate(raw)


def test_naive_timestamps_are_rejected() -> None:
    raw = json.loads(session_event().model_dump_json())
    raw["time"] = "2026-01-05T09:00:00"
    with pytest.raises(ValidationError):
        SessionCompleted.model_validate(raw)


def test_pseudonyms_reject_free_text() -> None:
    raw = json.loads(session_event().model_dump_json())
    raw["data"]["client_id"] = "Jane Doe"
    with pytest.raises(ValidationError):
        SessionCompleted.model_validate(raw)


def test_derived_ids_are_deterministic_and_distinct() -> None:
    assert derive_id("a", 1, "PHQ-9") == derive_id("a", 1, "PHQ-9")
    assert derive_id("a", 1, "PHQ-9") != derive_id("a", 1, "GAD-7")


@given(st.lists(st.one_of(st.text(), st.integers(), st.uuids()), max_size=5))
def test_derived_ids_are_the_standard_uuid5_of_the_joined_parts(parts: list[object]) -> None:
    """The fast construction changes no id ever published (replays must produce identical ids)."""
    expected = uuid.uuid5(RAPPORT_NAMESPACE, "|".join(str(p) for p in parts))
    derived = derive_id(*parts)
    assert derived == expected and str(derived) == str(expected) and hash(derived) == hash(expected)
    assert (derived.version, derived.variant, derived.bytes) == (5, uuid.RFC_4122, expected.bytes)


def test_validation_summary_names_locations_not_values() -> None:
    raw = json.loads(session_event().model_dump_json())
    raw["data"]["client_id"] = "Secret Name"
    with pytest.raises(ValidationError) as info:
        SessionCompleted.model_validate(raw)
    summary = validation_error_summary(info.value.errors())
    assert "data.client_id" in summary
    assert "Secret" not in summary


def test_validation_summary_masks_sender_chosen_keys() -> None:
    raw = json.loads(session_event().model_dump_json())
    raw["data"]["surveys"][0]["answers"]["Jane Doe"] = 1
    with pytest.raises(ValidationError) as info:
        SessionCompleted.model_validate(raw)
    summary = validation_error_summary(info.value.errors())
    assert "Jane" not in summary
    assert "data.surveys[0].answers.*" in summary
