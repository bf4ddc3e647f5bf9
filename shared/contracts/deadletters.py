"""Dead-letter records: what every stage builds when it cannot process a record.

The original bytes travel whole (base64) with stage, reason and original topic/partition/offset so a
record can be inspected and replayed. ``detail`` carries error types and locations, never values.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from pydantic import BaseModel

from shared.contracts.decoding import Invalid, validate_json
from shared.contracts.events import (
    MAX_DEAD_LETTER_VALUE,
    DeadLetter,
    DeadLetterReason,
    RiskItem,
    derive_id,
)

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Rejection:
    """Why a record, or one part of it, could not be processed. ``detail`` holds no input values.

    ``risk_items`` lists the critical items, as ``(instrument, item)``, that the rejected record
    endorsed with a valid answer (its dead letter says ``risk_endorsed``).
    """

    reason: DeadLetterReason
    detail: str
    instrument: str | None = None
    risk_items: tuple[tuple[str, str], ...] = ()


def decode(model: type[M], raw: bytes) -> M | Rejection:
    """Validate ``raw`` JSON as ``model`` with the strict decoder, or say why not.

    Reasons: ``undecodable``, ``duplicate_key`` or ``schema_violation`` — the same rules as the
    offline tools (see :mod:`shared.contracts.decoding`).
    """
    decoded = validate_json(model, raw)
    if isinstance(decoded, Invalid):
        return Rejection(decoded.reason, decoded.detail)
    return decoded


def build_dead_letter(
    rejection: Rejection,
    *,
    stage: str,
    key: bytes | None,
    value: bytes,
    topic: str,
    partition: int,
    offset: int,
    now: datetime,
    correlation_id: object | None = None,
    clinic_id: str | None = None,
) -> DeadLetter:
    """The dead-letter record of one rejection; its id is deterministic per input offset."""
    return DeadLetter(
        id=derive_id(topic, partition, offset, stage, rejection.reason, rejection.instrument or ""),
        time=now,
        stage=stage,
        reason=rejection.reason,
        detail=rejection.detail,
        instrument=rejection.instrument,
        original_topic=topic,
        original_partition=partition,
        original_offset=offset,
        original_key_b64=base64.b64encode(key[:1024]).decode() if key is not None else None,
        original_value_b64=base64.b64encode(value[:MAX_DEAD_LETTER_VALUE]).decode(),
        original_value_truncated=len(value) > MAX_DEAD_LETTER_VALUE,
        original_size=len(value),
        correlation_id=correlation_id,
        clinic_id=clinic_id,
        risk_endorsed=bool(rejection.risk_items),
        risk_items=[RiskItem(instrument=i, item=item) for i, item in rejection.risk_items],
    )
