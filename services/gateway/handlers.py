"""Pure pieces of the gateway: fingerprints, the per-key rate limit, answers and error bodies.

Nothing here does I/O; the clock and the instrument registry are passed in.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from shared.contracts.events import SessionCompleted
from shared.instruments import Registry
from shared.pipeline.session import score_session

SOURCE = "rapport/gateway"
ACCEPTED_CONTENT_TYPES = frozenset({"application/json", "application/fhir+json"})
_DIGITS = re.compile(r"^[0-9]{1,6}$")
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


def media_type(content_type: str | None) -> str:
    """The media type of a ``Content-Type`` header, lower case, without parameters."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def valid_idempotency_key(value: str) -> bool:
    """An ``Idempotency-Key`` is 1-255 visible ASCII characters."""
    return bool(_IDEMPOTENCY_KEY.match(value))


_TIME_FIELD = re.compile(rb'"time":"[^"]*"')


def fingerprint(wire: bytes) -> str:
    """What makes two submissions of one event id the same: the event as produced (its JSON, as
    :meth:`SessionCompleted.model_dump_json` writes it), all but the production time.

    The envelope's ``time`` is its first ``"time"`` key: envelope fields come before ``data``, and
    inside a JSON string a quote is escaped, so the pattern cannot match in a value."""
    return hashlib.sha256(_TIME_FIELD.sub(b'"time":""', wire, count=1)).hexdigest()


def request_fingerprint(route: str, fingerprints: Sequence[str]) -> str:
    """The fingerprint of a whole request (its route and its events), for ``Idempotency-Key``."""
    return hashlib.sha256("|".join([route, *fingerprints]).encode()).hexdigest()


@dataclass
class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up."""

    rate: float
    burst: float
    tokens: float
    updated: float

    def take(self, now: float) -> float:
        """Take one token: 0.0 when allowed, else the seconds until one is available."""
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


@dataclass
class RateLimiter:
    """A token bucket per API key id; the least recently used buckets are dropped past ``max_keys``
    (a dropped bucket comes back full, which only ever lets a key through)."""

    rate: float
    burst: int
    max_keys: int = 10_000
    _buckets: OrderedDict[str, TokenBucket] = field(default_factory=OrderedDict)

    def check(self, key_id: str, now: float) -> float:
        """0.0 when ``key_id`` may make a request now, else the seconds to wait."""
        bucket = self._buckets.get(key_id)
        if bucket is None:
            bucket = self._buckets[key_id] = TokenBucket(self.rate, self.burst, self.burst, now)
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key_id)
        return bucket.take(now)


def warnings_of(event: SessionCompleted, registry: Registry) -> list[dict[str, Any]]:
    """What the scoring service will dead-letter of an accepted event (unknown instrument or item,
    out-of-range answer, too many missing…), by the same pure pipeline; details carry no values.

    The event is accepted anyway: a survey that cannot be scored may still carry an endorsed risk
    item, which the scoring service passes on at once."""
    scores = score_session(event, registry)
    return [{"instrument": r.instrument, "reason": r.reason, "detail": r.detail} for r in scores.rejections]


def accepted_body(event: SessionCompleted, warnings: list[dict[str, Any]]) -> dict[str, Any]:
    """The JSON answer of a 202 for one event."""
    return {"status": "accepted", "event_id": str(event.id), "warnings": warnings}


def accepted_outcome(event: SessionCompleted, warnings: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``OperationOutcome`` of a 202 for one FHIR response: accepted, plus scoring warnings."""
    issues: list[dict[str, Any]] = [
        {
            "severity": "information",
            "code": "informational",
            "diagnostics": f"accepted: event {event.id} is on the broker and will be scored",
        }
    ]
    issues += [
        {
            "severity": "warning",
            "code": "business-rule",
            "diagnostics": f"{w['instrument'] or 'session'}: {w['reason']} ({w['detail']}); "
            "scoring will not produce a total for this survey",
        }
        for w in warnings
    ]
    return {"resourceType": "OperationOutcome", "issue": issues}


def transaction_response(outcomes: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The ``transaction-response`` Bundle of an accepted transaction, one entry per response."""
    return {
        "resourceType": "Bundle",
        "type": "transaction-response",
        "entry": [{"response": {"status": "202 Accepted", "outcome": o}} for o in outcomes],
    }


def error_body(error: str, message: str, detail: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """The JSON error answer of the ``/v1`` API."""
    return {"error": error, "message": message, "detail": list(detail)}


def json_error_detail(errors: Sequence[Any], limit: int = 20) -> list[dict[str, Any]]:
    """Field locations and error types of a ``SessionCompleted`` validation, never input values.

    An ``answers`` key (the sender's item id) is shown when it is an item number, else as ``*``."""
    from shared.fhir.problems import SAFE_MESSAGE_TYPES

    out: list[dict[str, Any]] = []
    for err in errors[:limit]:
        loc: list[str | int] = ["body"]
        parts = list(err.get("loc", ()))
        for i, part in enumerate(parts):
            after_answers = i > 0 and parts[i - 1] == "answers"
            named = not after_answers and isinstance(part, str) and part.isidentifier()
            item_number = after_answers and isinstance(part, str) and _DIGITS.match(part)
            if isinstance(part, int) or named or item_number:
                loc.append(part)
            elif part == "[key]":
                loc.append("[key]")
            else:
                loc.append("*")
        kind = str(err.get("type", "error"))
        msg = str(err.get("msg", "")) if kind in SAFE_MESSAGE_TYPES else "Invalid value"
        out.append({"loc": loc, "type": kind, "msg": msg})
    return out
