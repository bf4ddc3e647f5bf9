"""The scoring service's pure handler: every outcome of one raw record, without Kafka."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime

from services.scoring.handlers import STAGE, score_record
from shared.contracts.deadletters import Rejection, build_dead_letter
from shared.contracts.events import DeadLetter, SurveyScored, derive_id
from shared.instruments import Registry, default_registry
from shared.runtime.worker import Output, Record
from tests.support import PHQ9_MODERATE, T0, session_event, srs

REGISTRY = default_registry()


@dataclass(frozen=True)
class _Outcome:
    scored: tuple[SurveyScored, ...]
    rejections: tuple[Rejection, ...]
    label: str
    outputs: tuple[Output, ...]


def score_session(raw: bytes, registry: Registry, now: datetime) -> _Outcome:
    """The handler's result for one record read from partition 2, offset 7."""
    handled = score_record(Record(b"k", raw, "t", 2, 7), registry, now)
    return _Outcome(handled.facts, handled.rejections, handled.outcome, handled.outputs)


def dead_letter(
    rejection: Rejection,
    *,
    key: bytes,
    value: bytes,
    topic: str,
    partition: int,
    offset: int,
    now: datetime,
    session: object,
) -> DeadLetter:
    """The dead letter the worker loop builds for a rejection of this stage."""
    return build_dead_letter(
        rejection, stage=STAGE, key=key, value=value, topic=topic, partition=partition, offset=offset, now=now
    )


def _raw(**kwargs: object) -> bytes:
    return session_event(**kwargs).model_dump_json().encode()  # type: ignore[arg-type]


def test_every_survey_of_a_session_is_scored_with_a_deterministic_id() -> None:
    event = session_event(surveys=(("PHQ-9", PHQ9_MODERATE), ("SRS", srs(38.0))))
    outcome = score_session(event.model_dump_json().encode(), REGISTRY, T0)
    assert outcome.label == "scored"
    assert [s.data.instrument for s in outcome.scored] == ["PHQ-9", "SRS"]
    assert outcome.scored[0].id == derive_id(event.id, "survey-scored", "PHQ-9")
    assert outcome.scored[1].data.total == 38.0
    again = score_session(event.model_dump_json().encode(), REGISTRY, T0)
    assert [s.id for s in again.scored] == [s.id for s in outcome.scored], "replay gives same ids"


def test_unscorable_survey_is_rejected_while_siblings_are_scored() -> None:
    outcome = score_session(
        _raw(surveys=(("PHQ-9", PHQ9_MODERATE), ("NOPE", {"1": 1}), ("GAD-7", {"1": 1}))),
        REGISTRY,
        T0,
    )
    assert outcome.label == "partial"
    assert [s.data.instrument for s in outcome.scored] == ["PHQ-9"]
    assert [(r.reason, r.instrument) for r in outcome.rejections] == [
        ("unknown_instrument", "NOPE"),
        ("too_many_missing", "GAD-7"),
    ]


def test_duplicate_instrument_in_one_session_is_rejected() -> None:
    outcome = score_session(_raw(surveys=(("PHQ-9", PHQ9_MODERATE), ("PHQ-9", PHQ9_MODERATE))), REGISTRY, T0)
    assert len(outcome.scored) == 1
    assert [r.reason for r in outcome.rejections] == ["schema_violation"]


def test_undecodable_and_schema_violations_are_told_apart() -> None:
    assert score_session(b"\x00\xff", REGISTRY, T0).rejections[0].reason == "undecodable"
    assert score_session(b"[1, 2]", REGISTRY, T0).rejections[0].reason == "schema_violation"
    assert score_session(b"{}", REGISTRY, T0).label == "rejected"


def test_dead_letter_keeps_original_bytes_and_no_values_in_detail() -> None:
    raw = json.dumps({"data": {"client_id": "Jane Doe", "answers": {"9": 3}}}).encode()
    outcome = score_session(raw, REGISTRY, T0)
    record = dead_letter(
        outcome.rejections[0], key=b"k", value=raw, topic="t", partition=2, offset=7, now=T0, session=None
    )
    assert base64.b64decode(record.original_value_b64) == raw
    assert (record.original_partition, record.original_offset, record.stage) == (2, 7, "scoring")
    assert "Jane" not in record.detail and "Jane" not in record.model_dump_json().replace(
        record.original_value_b64, ""
    )
    same = dead_letter(
        outcome.rejections[0], key=b"k", value=raw, topic="t", partition=2, offset=7, now=T0, session=None
    )
    assert same.id == record.id, "a redelivered bad record gets the same dead-letter id"


def test_unscorable_survey_with_endorsed_risk_item_still_reaches_the_monitor() -> None:
    answers = {"1": 1, "2": 2, "9": 3}  # six items missing: not scorable, but item 9 endorsed
    outcome = score_session(_raw(surveys=(("PHQ-9", answers),)), REGISTRY, T0)
    assert [r.reason for r in outcome.rejections] == ["too_many_missing"], "still dead-lettered"
    (event,) = outcome.scored
    assert event.data.total is None
    assert event.data.unscorable_reason == "too_many_missing"
    assert event.data.critical_items == ["9"]


def test_out_of_range_answer_elsewhere_does_not_hide_a_risk_answer() -> None:
    answers = {**PHQ9_MODERATE, "4": 7, "9": 1}
    outcome = score_session(_raw(surveys=(("PHQ-9", answers),)), REGISTRY, T0)
    assert [r.reason for r in outcome.rejections] == ["out_of_range_answer"]
    assert [e.data.critical_items for e in outcome.scored] == [["9"]]


def test_unscorable_survey_without_risk_publishes_nothing() -> None:
    outcome = score_session(_raw(surveys=(("PHQ-9", {"1": 1, "9": 0}),)), REGISTRY, T0)
    assert outcome.scored == () and outcome.label == "rejected"


def test_huge_bad_record_is_dead_lettered_truncated_so_it_can_always_be_published() -> None:
    raw = b"x" * (1024 * 1024)
    outcome = score_session(raw, REGISTRY, T0)
    record = dead_letter(
        outcome.rejections[0], key=b"k", value=raw, topic="t", partition=0, offset=1, now=T0, session=None
    )
    assert record.original_value_truncated and record.original_size == len(raw)
    assert len(record.model_dump_json()) < 400 * 1024


def test_published_records_are_the_scored_events_keyed_like_the_input() -> None:
    event = session_event(surveys=(("PHQ-9", PHQ9_MODERATE), ("SRS", srs(38.0))))
    outcome = score_session(event.model_dump_json().encode(), REGISTRY, T0)
    assert [o.value for o in outcome.outputs] == [e.model_dump_json().encode() for e in outcome.scored]
    assert {o.topic for o in outcome.outputs} == {"rapport.survey-scored.v1"}


def test_a_duplicate_key_is_dead_lettered_as_duplicate_key_with_its_location() -> None:
    raw = _raw(surveys=(("PHQ-9", PHQ9_MODERATE),)).decode()
    # The client's answer to item 9 given twice: which one is true cannot be known.
    doubled = raw.replace('"9":', '"9":3,"9":', 1).encode()
    outcome = score_session(doubled, REGISTRY, T0)
    assert outcome.label == "rejected" and outcome.scored == ()
    (rejection,) = outcome.rejections
    assert rejection.reason == "duplicate_key"
    assert rejection.detail == "duplicate_key@data.surveys[0].answers.*"


def test_an_oversized_answer_is_out_of_range_not_undecodable() -> None:
    doc = json.loads(_raw(surveys=(("PHQ-9", PHQ9_MODERATE), ("SRS", srs(38.0)))))
    doc["data"]["surveys"][0]["answers"]["1"] = "BIG"
    huge = json.dumps(doc).replace('"BIG"', "9" * 20_000)  # PHQ-9 item 1: a 20,000-digit integer
    outcome = score_session(huge.encode(), REGISTRY, T0)
    assert [(r.reason, r.instrument) for r in outcome.rejections] == [("out_of_range_answer", "PHQ-9")]
    assert [s.data.instrument for s in outcome.scored] == ["SRS"], "the sibling survey still flows"
    assert "999" not in outcome.rejections[0].detail
