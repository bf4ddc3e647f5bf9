"""The notifier's internal records: what its timer and delivery side tell its stateful side.

They travel on the notifier's own internal topics, to the partition of the state they concern, so
every state change happens inside stream processing (and its changelog) — a delivery attempt's
result, a due timer, a digest item, or an input that arrived on the wrong partition.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.alerting.retry import Result
from shared.alerting.state import DigestEntry

Target = Literal["client", "digest"]


class _Internal(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class AttemptResult(_Internal):
    """One delivery attempt finished."""

    kind: Literal["attempt"] = "attempt"
    target: Target
    key: str
    """State key: ``clinic|client`` or ``clinic|clinician`` for a digest."""
    owner_id: str
    """The alert id, or the digest's id."""
    job_id: str
    attempt: int = Field(ge=1)
    result: Result
    code: str = Field(max_length=64)
    retry_after_s: float | None = None
    at: float
    seconds: float = 0.0
    """How long the attempt took."""


class DueTick(_Internal):
    """Something of this state fell due (an escalation deadline, a hold, a digest)."""

    kind: Literal["due"] = "due"
    target: Target
    key: str
    at: float


class DigestItem(_Internal):
    """An alert for a clinician's digest (sent by the client side to the digest side)."""

    kind: Literal["digest_item"] = "digest_item"
    clinic_id: str
    clinician_id: str
    entry: DigestEntry


class Forwarded(_Internal):
    """An input that arrived on a partition other than its state's: re-sent to the right one."""

    kind: Literal["forward"] = "forward"
    source: Literal["signal", "ack"]
    value: str
    """The original record value (UTF-8 JSON)."""


Internal = Annotated[AttemptResult | DueTick | DigestItem | Forwarded, Field(discriminator="kind")]


class InternalRecord(_Internal):
    """Envelope that lets one internal topic carry every internal record kind."""

    record: Internal
