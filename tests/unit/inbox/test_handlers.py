"""Decoding topic records into database changes; the acknowledgement event."""

from __future__ import annotations

from datetime import UTC, datetime

from services.inbox.handlers import ack_event_id, ack_key, build_acknowledgement, decode_record
from shared.contracts import topics
from shared.contracts.alerts import AlertEvent, ClinicDirectory
from shared.contracts.deadletters import Rejection
from shared.inbox.projection import fold_alert
from shared.inbox.store import DirectoryRemoved
from tests.inbox_support import directory, synthetic_alert


def test_each_topic_decodes_to_its_model() -> None:
    d = directory()
    assert decode_record(topics.DIRECTORY, b"clinic-01", d.model_dump_json().encode()) == d
    (event,) = synthetic_alert(clinic="k", clinician="c")
    assert isinstance(decode_record(topics.ALERTS, None, event.model_dump_json().encode()), AlertEvent)


def test_a_directory_tombstone_removes_the_clinic() -> None:
    assert decode_record(topics.DIRECTORY, b"clinic-01", None) == DirectoryRemoved("clinic-01")
    bad = decode_record(topics.DIRECTORY, b"not a pseudonym!", None)
    assert isinstance(bad, Rejection) and bad.reason == "undecodable"


def test_unreadable_records_are_rejections_without_values() -> None:
    junk = decode_record(topics.SIGNALS, b"k", b'{"subject": "Jane Doe"')
    assert isinstance(junk, Rejection) and junk.reason == "undecodable" and "Jane" not in junk.detail
    wrong = decode_record(topics.SURVEY_SCORED, b"k", b'{"subject": "Jane Doe"}')
    assert isinstance(wrong, Rejection) and wrong.reason == "schema_violation" and "Jane" not in wrong.detail
    null = decode_record(topics.ALERTS, b"k", None)
    assert isinstance(null, Rejection)


def test_a_directory_under_another_clinics_key_is_refused() -> None:
    raw = directory("clinic-01").model_dump_json().encode()
    assert isinstance(decode_record(topics.DIRECTORY, b"clinic-02", raw), Rejection)
    assert isinstance(decode_record(topics.DIRECTORY, b"clinic-01", raw), ClinicDirectory)


def test_acknowledgement_event_is_deterministic_keyed_by_client_and_carries_no_note() -> None:
    alert = fold_alert(synthetic_alert(clinic="clinic-01", clinician="clin-01", client="c-9"))
    when = datetime(2026, 1, 5, 10, tzinfo=UTC)
    event = build_acknowledgement(
        alert, event_id=ack_event_id(alert.alert_id), person_id="clin-01", acknowledged_at=when
    )
    assert str(event.id) == ack_event_id(alert.alert_id) == ack_event_id(alert.alert_id)
    assert event.subject == "c-9" and event.clinic_id == "clinic-01"
    assert str(event.data.alert_id) == alert.alert_id and event.data.via == "inbox"
    assert set(event.data.model_dump()) == {"alert_id", "acknowledged_by", "acknowledged_at", "via"}
    assert ack_key("clinic-01", "c-9") == b"clinic-01|c-9"
