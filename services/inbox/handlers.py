"""Pure pieces of the inbox: decoding topic records into database changes, building the
acknowledgement event, and the labels pages show.
"""

from __future__ import annotations

from datetime import datetime

from shared.contracts import topics
from shared.contracts.alerts import AlertAcknowledged, AlertAcknowledgedData, AlertEvent, ClinicDirectory
from shared.contracts.deadletters import Rejection, decode
from shared.contracts.events import PseudonymousId, Signal, SurveyScored, derive_id
from shared.inbox.projection import AlertSummary
from shared.inbox.store import Change, DirectoryRemoved

STAGE = "inbox"
SOURCE = "rapport/inbox"

#: The topics the inbox takes into its database (base names).
INPUT_TOPICS: tuple[str, ...] = (topics.ALERTS, topics.DIRECTORY, topics.SIGNALS, topics.SURVEY_SCORED)

_MODELS: dict[str, type[AlertEvent] | type[Signal] | type[SurveyScored] | type[ClinicDirectory]] = {
    topics.ALERTS: AlertEvent,
    topics.SIGNALS: Signal,
    topics.SURVEY_SCORED: SurveyScored,
    topics.DIRECTORY: ClinicDirectory,
}


def decode_record(base_topic: str, key: bytes | None, value: bytes | None) -> Change | Rejection:
    """The database change one record of ``base_topic`` stands for, or why it cannot be read.

    A null value on the compacted directory topic is a tombstone: the clinic (its key) is removed.
    """
    if value is None:
        if base_topic == topics.DIRECTORY and key:
            clinic = _pseudonym(key)
            if clinic is not None:
                return DirectoryRemoved(clinic)
        return Rejection("undecodable", "null value")
    model = _MODELS.get(base_topic)
    if model is None:
        return Rejection("processing_error", "topic not read by the inbox")
    decoded = decode(model, value)
    if isinstance(decoded, ClinicDirectory) and key is not None and key != decoded.clinic_id.encode():
        return Rejection("schema_violation", "directory key differs from clinic_id")
    return decoded


def _pseudonym(raw: bytes) -> str | None:
    from pydantic import TypeAdapter, ValidationError

    try:
        text = raw.decode("utf-8")
        return TypeAdapter(PseudonymousId).validate_python(text)
    except (UnicodeDecodeError, ValidationError):
        return None


def ack_key(clinic_id: str, client_id: str) -> bytes:
    """Topic key of an acknowledgement: the client subject, scoped by clinic (next to the client's
    alert state in the notifier)."""
    return f"{clinic_id}|{client_id}".encode()


def ack_event_id(alert_id: str) -> str:
    """Deterministic id of the inbox's acknowledgement of an alert: one per alert, so a retry or a
    second click publishes the same event."""
    return str(derive_id("inbox-acknowledgement", alert_id))


def build_acknowledgement(
    alert: AlertSummary, *, event_id: str, person_id: str, acknowledged_at: datetime
) -> AlertAcknowledged:
    """The ``AlertAcknowledged`` event of ``alert``; it carries no note (notes stay in the inbox)."""
    return AlertAcknowledged(
        id=event_id,
        source=SOURCE,
        time=acknowledged_at,
        subject=alert.client_id,
        clinic_id=alert.clinic_id,
        correlation_id=alert.correlation_id,
        data=AlertAcknowledgedData(
            alert_id=alert.alert_id,
            acknowledged_by=person_id,
            acknowledged_at=acknowledged_at,
            via="inbox",
        ),
    )


KIND_LABELS: dict[str, str] = {
    "critical_item": "Critical item endorsed",
    "alliance_below_cutoff": "Alliance below cutoff",
    "alliance_drop": "Alliance drop",
    "alliance_decline": "Alliance declining",
    "alliance_repaired": "Alliance rupture repaired",
    "outcome_reliable_deterioration": "Reliable deterioration",
    "outcome_not_on_track": "Not on track",
    "outcome_reliable_improvement": "Reliable improvement",
    "dropout_risk": "Dropout risk",
}


def kind_label(kind: str) -> str:
    """A person's words for a signal kind."""
    return KIND_LABELS.get(kind, kind.replace("_", " ").capitalize())
