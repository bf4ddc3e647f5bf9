"""Event contracts: the CloudEvents-style envelope and every event Rapport puts on a topic.

Consumers read tolerantly (unknown fields are ignored); producers write strictly (frozen models,
validated before they are serialised). Ids of derived events are deterministic, so a replay or a
redelivery yields the same ids and consumers can deduplicate. No names, birth dates, free text or
contact details of clients appear anywhere: identifiers are clinic-issued pseudonyms.
"""

from __future__ import annotations

import functools
import hashlib
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
)

SCHEMA_VERSION = "1"

#: Largest original value a dead letter carries whole. Base64 grows it by a third, and a dead letter
#: that exceeds the broker's message size could never be published: the worker would stop and replay
#: the same record forever.
MAX_DEAD_LETTER_VALUE = 256 * 1024

#: Namespace of every deterministic id Rapport derives (UUIDv5).
RAPPORT_NAMESPACE = uuid.UUID("5b0c8f8e-3c1e-5d6a-9f7e-2a4d1c0b9e71")

PseudonymousId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$",
        description="A clinic-issued pseudonym: letters, digits and . _ : - only, never a name.",
    ),
]
InstrumentId = Annotated[
    str,
    Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$"),
]
ItemId = Annotated[str, Field(min_length=1, max_length=16, pattern=r"^[A-Za-z0-9_.-]+$")]
#: An answer is a JSON number; strings and booleans are rejected, null means "not answered".
Answer = StrictInt | StrictFloat | None


def derive_id(*parts: object) -> uuid.UUID:
    """Deterministic UUIDv5 of the given parts, joined with ``|``.

    Used for every derived event so that reprocessing the same input yields the same id. Equal to
    ``uuid.uuid5(RAPPORT_NAMESPACE, "|".join(map(str, parts)))`` (a unit test checks it), built
    without ``uuid.UUID.__init__``'s argument checks: a worker derives one id per output record.
    """
    digest = _sha1(_NAMESPACE_BYTES + "|".join([str(p) for p in parts]).encode()).digest()
    derived = _new_uuid(uuid.UUID)
    _set_slot(derived, "int", (int.from_bytes(digest[:16], "big") & _V5_CLEAR) | _V5_SET)
    _set_slot(derived, "is_safe", uuid.SafeUUID.unknown)
    return derived


_NAMESPACE_BYTES = RAPPORT_NAMESPACE.bytes
_sha1 = hashlib.sha1
_new_uuid = uuid.UUID.__new__
_set_slot = object.__setattr__
#: RFC 4122 variant and version 5 bits, as ``uuid.UUID(bytes=..., version=5)`` sets them.
_V5_CLEAR = ~((0xC000 << 48) | (0xF000 << 64))
_V5_SET = (0x8000 << 48) | (5 << 76)


class _Model(BaseModel):
    """Base of every contract model: immutable, tolerant on read."""

    model_config = ConfigDict(frozen=True, extra="ignore", use_attribute_docstrings=True)


class Envelope(_Model):
    """CloudEvents-style envelope shared by every event."""

    id: uuid.UUID
    """Unique id of this event; deterministic for derived events."""
    type: str
    """Event type, e.g. ``rapport.session.completed``."""
    source: str = Field(min_length=1, max_length=128)
    """Producer of the event, e.g. ``rapport/scoring`` or a clinic integration id."""
    time: AwareDatetime
    """When the event was produced (timezone-aware)."""
    subject: PseudonymousId
    """Pseudonymous client id (the topic key)."""
    clinic_id: PseudonymousId
    """The clinic the client belongs to; client ids are scoped by clinic."""
    schema_version: Literal["1"] = "1"
    """Version of the data schema; additive changes keep it, breaking ones move to a new topic."""
    correlation_id: uuid.UUID
    """Id of the originating ``SessionCompleted`` event."""


# --------------------------------------------------------------------------- session-completed


class SurveyResponse(_Model):
    """One completed survey: the client's answers by item."""

    instrument: InstrumentId
    """Instrument id, e.g. ``PHQ-9``, ``SRS``."""
    instrument_version: str | None = Field(default=None, max_length=32)
    """Version of the instrument form the client answered, if the sender knows it."""
    answers: dict[ItemId, Answer] = Field(max_length=200)
    """Answers by item number (as a string); ``null`` or absent means not answered."""
    completed_at: AwareDatetime | None = None
    """When the client completed the survey."""


class SessionCompletedData(_Model):
    """A therapy session has ended and the client's surveys are in."""

    clinician_id: PseudonymousId
    client_id: PseudonymousId
    episode_id: PseudonymousId
    """Episode of care; trajectories are tracked per episode."""
    session_number: int = Field(ge=1, le=10_000)
    """1-based session number within the episode."""
    session_time: AwareDatetime
    surveys: list[SurveyResponse] = Field(min_length=1, max_length=20)


class SessionCompleted(Envelope):
    """Topic ``rapport.session-completed.v1``; the source of truth for replay."""

    type: Literal["rapport.session.completed"] = "rapport.session.completed"
    data: SessionCompletedData


# --------------------------------------------------------------------------- survey-scored


class ScaleInfo(_Model):
    """What a consumer needs to interpret a total without loading the instrument spec."""

    min: float
    max: float
    direction: Literal["higher_is_better", "higher_is_worse"]
    cutoff: float | None = None
    """Clinical cutoff, if the instrument has one."""
    concern_when: Literal["below", "at_or_below", "at_or_above", "above"] | None = None
    """Which side of the cutoff is concerning."""
    reliable_change: float | None = None
    """Raw-point change that counts as reliable (Jacobson–Truax), if known."""


class SurveyScoredData(_Model):
    """One survey of a session, scored by the instrument's spec."""

    clinician_id: PseudonymousId
    client_id: PseudonymousId
    episode_id: PseudonymousId
    session_number: int = Field(ge=1)
    session_time: AwareDatetime
    instrument: InstrumentId
    instrument_version: str
    """Version of the instrument spec used to score."""
    session_event_time: AwareDatetime | None = None
    """``time`` of the ``SessionCompleted`` event scored (for session → alert latency); null from
    offline tools, whose input has no event time."""
    domain: Literal["alliance", "outcome"]
    total: float | None
    """The total; ``null`` only for a survey that could not be scored but whose risk items were
    endorsed (see ``unscorable_reason``): the risk answer must reach the monitor regardless."""
    unscorable_reason: Literal["unknown_item", "out_of_range_answer", "too_many_missing"] | None = None
    """Why ``total`` is null; the survey is also dead-lettered with this reason."""
    subscales: dict[str, float] = Field(default_factory=dict)
    band: str | None = None
    concern: bool | None = None
    """True when the total is on the concerning side of the cutoff; null when no cutoff."""
    critical_items: list[str] = Field(default_factory=list)
    """Critical (risk) items the client endorsed."""
    risk_unknown: list[str] = Field(default_factory=list)
    """Critical items left unanswered: the risk status is unknown, never imputed."""
    prorated: bool = False
    missing_items: list[str] = Field(default_factory=list)
    scale: ScaleInfo


class SurveyScored(Envelope):
    """Topic ``rapport.survey-scored.v1``: one event per scorable survey of a session."""

    type: Literal["rapport.survey.scored"] = "rapport.survey.scored"
    data: SurveyScoredData


# --------------------------------------------------------------------------- signals

SignalKind = Literal[
    "critical_item",
    "alliance_below_cutoff",
    "alliance_drop",
    "alliance_session_drop",
    "alliance_decline",
    "alliance_repaired",
    "outcome_reliable_deterioration",
    "outcome_not_on_track",
    "outcome_reliable_improvement",
    "dropout_risk",
]
"""Fixed vocabulary of signal kinds."""

Severity = Literal["critical", "high", "moderate", "info"]


class SeriesPoint(_Model):
    """One score of a trajectory, as used as evidence."""

    session: int
    value: float


class Evidence(_Model):
    """What a rule looked at: the series and the thresholds it compared against."""

    series: list[SeriesPoint] = Field(default_factory=list)
    thresholds: dict[str, float] = Field(default_factory=dict)
    """Named numbers the rule used, e.g. ``cutoff``, ``reliable_change``, ``baseline_mean``."""
    items: list[str] = Field(default_factory=list)
    """Item numbers involved (critical items), never their wording."""


class SignalData(_Model):
    """A rule fired for one client at one session.

    The routing fields (``clinician_id``, ``client_id``, ``episode_id``, ``session_number``,
    ``session_time``) are null only on a ``critical_item`` raised by the scoring service from a session
    event that failed validation: a risk answer is never dropped for an unrelated bad field, so such a
    signal carries every field that was valid and null for the others (``clinic_id`` is always set).
    """

    clinician_id: PseudonymousId | None
    client_id: PseudonymousId | None
    episode_id: PseudonymousId | None
    session_number: int | None = Field(ge=1)
    session_time: AwareDatetime | None
    session_event_time: AwareDatetime | None = None
    """``time`` of the ``SessionCompleted`` event whose processing raised this signal (after a late
    arrival, the late event's, even when the signal is about an earlier session): where the
    notifier's session → alert latency starts. Null from offline tools."""
    instrument: InstrumentId
    kind: SignalKind
    severity: Severity
    rule_id: str
    rule_version: str
    ruleset_version: str
    evidence: Evidence
    explanation: str = Field(max_length=300)
    """One line in plain clinical language; built from numbers only, never from free text."""


class Signal(Envelope):
    """Topic ``rapport.signals.v1``."""

    type: Literal["rapport.signal.raised"] = "rapport.signal.raised"
    subject: PseudonymousId | None  # type: ignore[assignment]
    """Pseudonymous client id (the topic key); null only when the client id of a session event that
    failed validation was itself invalid (see :class:`SignalData`)."""
    data: SignalData


# --------------------------------------------------------------------------- dead letters

DeadLetterReason = Literal[
    "undecodable",
    "schema_violation",
    "unknown_instrument",
    "unknown_item",
    "out_of_range_answer",
    "too_many_missing",
    "processing_error",
    "delivery_failed",
    "duplicate_key",
]
"""Fixed vocabulary of why a record could not be processed (``duplicate_key``: a key given twice in
one JSON object, or a CSV column named twice — "last one wins" would silently pick an answer)."""


class RiskItem(_Model):
    """A critical (risk) item endorsed with a valid answer: which instrument and item, never the answer."""

    instrument: InstrumentId
    item: ItemId


class DeadLetter(_Model):
    """Topic ``rapport.dead-letter.v1``: a record a stage could not process, kept whole for replay.

    ``detail`` names error types and field locations only, never input values.
    """

    id: uuid.UUID
    """Deterministic: the same bad record at the same offset yields the same id."""
    type: Literal["rapport.dead.letter"] = "rapport.dead.letter"
    time: AwareDatetime
    stage: str = Field(max_length=64)
    """The service that gave up, e.g. ``scoring``."""
    reason: DeadLetterReason
    detail: str = Field(default="", max_length=1000)
    """Error types and locations; no input values (they may carry PHI)."""
    instrument: str | None = None
    """Instrument of the survey that failed, when one survey of a valid session failed."""
    original_topic: str
    original_partition: int
    original_offset: int
    original_key_b64: str | None = None
    original_value_b64: str
    """The original record value, base64, byte for byte (its first ``MAX_DEAD_LETTER_VALUE`` bytes
    when ``original_value_truncated``)."""
    original_value_truncated: bool = False
    """True when the original value was too large to keep whole inside a dead letter."""
    original_size: int | None = None
    """Size of the original value in bytes."""
    correlation_id: uuid.UUID | None = None
    clinic_id: str | None = None
    risk_endorsed: bool = False
    """True when the record endorsed a critical (risk) item with a valid answer: a clinician must
    hear of it even though the record could not be processed (see ``risk_items``)."""
    risk_items: list[RiskItem] = Field(default_factory=list)
    """The endorsed critical items (instrument and item, never the answer)."""


class DeadLetterReplayed(_Model):
    """Topic ``rapport.dead-letter-replays.v1`` (compacted, keyed by the dead letter's id): the
    original record of a dead letter was re-published to its source topic by
    ``rapport dead-letters replay``. A dead letter with such a record is not replayed again unless
    asked to (``--again``), and neither is a dead letter *of* a replayed record.
    """

    id: uuid.UUID
    """Deterministic: ``derive_id(dead_letter_id, "replayed")``."""
    type: Literal["rapport.dead-letter.replayed"] = "rapport.dead-letter.replayed"
    time: AwareDatetime
    dead_letter_id: uuid.UUID
    stage: str = Field(max_length=64)
    reason: DeadLetterReason
    original_topic: str
    original_partition: int
    original_offset: int
    replayed_topic: str
    """Where the original record was re-published (its source topic)."""
    replayed_partition: int
    replayed_offset: int


def _field_names(model: type[BaseModel], seen: set[type[BaseModel]] | None = None) -> set[str]:
    seen = seen if seen is not None else set()
    if model in seen:
        return set()
    seen.add(model)
    names = set(model.model_fields)
    for field in model.model_fields.values():
        for arg in _type_args(field.annotation):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                names |= _field_names(arg, seen)
    return names


def _type_args(annotation: Any) -> list[Any]:
    from typing import get_args

    out = [annotation]
    for arg in get_args(annotation):
        out += _type_args(arg)
    return out


@functools.cache
def contract_field_names() -> frozenset[str]:
    """Every field name of every event contract: the location parts an error detail may show."""
    names: set[str] = set()
    for model in (SessionCompleted, SurveyScored, Signal, DeadLetter, DeadLetterReplayed):
        names |= _field_names(model)
    return frozenset(names)


def validation_error_summary(errors: list[Any], limit: int = 5) -> str:
    """Summarise pydantic errors by type and location only (their messages may echo PHI).

    Location parts that are not field names of the contracts (dict keys chosen by the sender, which
    could be anything) are shown as ``*``. The same rendering as
    :func:`shared.contracts.decoding.summarize_errors` without a model.
    """
    from shared.contracts.decoding import summarize_errors

    return summarize_errors(errors, None, limit)


def utc_now() -> datetime:
    """The current time, timezone-aware (UTC). Handlers receive time from callers instead."""
    return datetime.now(UTC)
