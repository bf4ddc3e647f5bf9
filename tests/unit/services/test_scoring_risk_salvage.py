"""Risk answers never vanish: a session event that fails validation still raises its endorsed critical
items as a ``critical_item`` signal, addressed to whatever routing fields are valid, and its dead
letter says a risk item was endorsed. One case per envelope field."""

from __future__ import annotations

import copy
import json
from datetime import datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.scoring.handlers import STAGE, UnroutableRisk, score_record
from shared.contracts.deadletters import build_dead_letter
from shared.contracts.events import Signal
from shared.contracts.keys import subject_key
from shared.contracts.topics import SIGNALS
from shared.instruments import default_registry
from shared.pipeline.session import salvage_risk
from shared.runtime.worker import Handled, Record
from tests.support import PHQ9_MODERATE, T0, session_event

REGISTRY = default_registry()
BAD_ID = "ünï 😀"
RISK = {**PHQ9_MODERATE, "9": 3}


def _doc(**kwargs: Any) -> dict[str, Any]:
    event = session_event(
        client="c-risk", clinic="clinic-7", clinician="clin-3", episode="ep-2", session_number=4,
        surveys=(("GAD-7", {str(i): 1 for i in range(1, 8)}), ("PHQ-9", RISK)), **kwargs,
    )  # fmt: skip
    return json.loads(event.model_dump_json())


def _set(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    node = out
    *parents, last = path.split(".")
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return out


def _handle(raw: bytes) -> Handled:
    return score_record(Record(b"producer-key", raw, "sessions", 1, 42), REGISTRY, T0)


ROUTED = {"clinic": "clinic-7", "clinician": "clin-3", "client": "c-risk", "episode": "ep-2", "session": 4}

# (field path, bad value, routing fields that must be missing from the signal)
ENVELOPE_DEFECTS = [
    ("id", "not-a-uuid", set()),
    ("type", "rapport.something.else", set()),
    ("source", "", set()),
    ("time", "yesterday", set()),
    ("subject", BAD_ID, set()),
    ("schema_version", "2", set()),
    ("correlation_id", 17, set()),
    ("data.clinician_id", BAD_ID, {"clinician"}),
    ("data.client_id", BAD_ID, {"client"}),
    ("data.episode_id", "", {"episode"}),
    ("data.session_number", 0, {"session"}),
    ("data.session_time", "yesterday", {"session_time"}),
    ("data.surveys.0.instrument", "not an id!", set()),
    ("data.surveys.1.completed_at", "yesterday", set()),
    ("data.surveys.0.answers.1", "1", set()),
]


@pytest.mark.parametrize(("path", "bad", "missing"), ENVELOPE_DEFECTS, ids=[d[0] for d in ENVELOPE_DEFECTS])
def test_risk_in_a_session_with_one_bad_field_is_raised_to_the_valid_routing_fields(
    path: str, bad: Any, missing: set[str]
) -> None:
    doc = _set(_doc(), path, bad)
    raw = json.dumps(doc).encode()
    handled = _handle(raw)

    assert handled.outcome == "rejected"
    (rejection,) = handled.rejections
    assert rejection.reason == "schema_violation"
    assert rejection.risk_items == (("PHQ-9", "9"),)
    (output,) = handled.outputs
    assert output.topic == SIGNALS
    signal = Signal.model_validate_json(output.value)
    d = signal.data
    assert (d.kind, d.severity, d.instrument) == ("critical_item", "critical", "PHQ-9")
    assert d.evidence.items == ["9"]
    assert d.session_event_time == (None if path == "time" else datetime.fromisoformat(doc["time"]))
    got = {
        "clinic": signal.clinic_id,
        "clinician": d.clinician_id,
        "client": d.client_id,
        "episode": d.episode_id,
        "session": d.session_number,
        "session_time": d.session_time,
    }
    for name, value in got.items():
        if name in missing:
            assert value is None, f"{name} was invalid and must not be guessed"
        elif name != "session_time":
            assert value == ROUTED[name], name
        else:
            assert value is not None
    assert signal.subject == d.client_id
    assert "schema_violation" in d.explanation and rejection.detail in d.explanation
    if d.client_id is not None:
        assert output.key == subject_key("clinic-7", "c-risk"), "keyed by the subject, not the input key"
        assert handled.key == output.key
    else:
        assert output.key is None
    letter = build_dead_letter(
        rejection, stage=STAGE, key=b"producer-key", value=raw, topic="sessions", partition=1, offset=42,
        now=T0, correlation_id=handled.correlation_id, clinic_id=handled.clinic_id,
    )  # fmt: skip
    assert letter.risk_endorsed is True
    assert [(r.instrument, r.item) for r in letter.risk_items] == [("PHQ-9", "9")]
    assert letter.clinic_id == "clinic-7"
    for text in (letter.detail, d.explanation):
        assert BAD_ID not in text and "yesterday" not in text and "c-risk" not in text, "no values"


def test_the_same_bad_record_always_raises_the_same_signal_id() -> None:
    raw = json.dumps(_set(_doc(), "time", "yesterday")).encode()
    first, again = _handle(raw), _handle(raw)
    assert first.outputs[0].value == again.outputs[0].value
    no_id = json.dumps(_set(_doc(), "id", "nope")).encode()
    other_offset = score_record(Record(None, no_id, "sessions", 1, 43), REGISTRY, T0)
    assert (
        Signal.model_validate_json(_handle(no_id).outputs[0].value).id
        != Signal.model_validate_json(other_offset.outputs[0].value).id
    ), "without a session id the record's offset makes the id"


def test_risk_with_no_readable_clinic_is_counted_as_unroutable_and_dead_lettered_with_risk() -> None:
    raw = json.dumps(_set(_doc(), "clinic_id", BAD_ID)).encode()
    handled = _handle(raw)
    assert handled.outputs == (), "nobody to address a signal to"
    assert handled.facts == (UnroutableRisk("PHQ-9"),)
    assert handled.rejections[0].risk_items == (("PHQ-9", "9"),)
    assert handled.key is None, "no subject: the dead letter keeps the input's key"


def test_undecodable_bytes_in_one_field_still_route_the_rest() -> None:
    raw = json.dumps(_doc()).encode().replace(b'"c-risk"', b'"c-\xff-risk"')
    handled = _handle(raw)
    assert handled.rejections[0].reason == "undecodable"
    signal = Signal.model_validate_json(handled.outputs[0].value)
    assert signal.clinic_id == "clinic-7" and signal.data.client_id is None


@pytest.mark.parametrize(
    ("path", "value"),
    [("data.surveys.1.answers.9", "3"), ("data.surveys.1.answers.9", 7), ("data.surveys.1.answers.9", 0),
     ("data.surveys.1.answers.9", True), ("data.surveys.1.instrument", "PHQ-99")],
)  # fmt: skip
def test_no_signal_without_a_critical_item_endorsed_with_a_valid_answer(path: str, value: Any) -> None:
    doc = _set(_set(_doc(), "time", "yesterday"), path, value)
    handled = _handle(json.dumps(doc).encode())
    assert handled.outputs == () and handled.facts == ()
    assert handled.rejections[0].risk_items == ()


def test_valid_sessions_are_keyed_by_subject_whatever_the_input_key() -> None:
    raw = session_event(client="c-9", clinic="clinic-2").model_dump_json().encode()
    handled = score_record(Record(b"other-key", raw, "sessions", 0, 0), REGISTRY, T0)
    assert {o.key for o in handled.outputs} == {subject_key("clinic-2", "c-9")}


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(JSON)
def test_salvage_never_raises_on_any_json(doc: Any) -> None:
    salvage_risk(json.dumps(doc).encode(), REGISTRY)
    survey = {"instrument": "PHQ-9", "answers": doc}
    salvage_risk(json.dumps({"clinic_id": "c", "data": {"surveys": [survey]}}).encode(), REGISTRY)
