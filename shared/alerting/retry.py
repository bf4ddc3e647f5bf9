"""Delivery outcomes and the retry schedule: which failures are retried, and when.

At-least-once delivery with a stable idempotency key: a failed attempt is retried on a schedule like
Standard Webhooks' (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h after the first, immediate attempt),
each delay drawn with *full jitter* (uniformly between 0 and the nominal delay) so receivers that
come back are not hit by every sender at once; a receiver's ``Retry-After`` is honoured. ``410 Gone``
disables the endpoint; other 4xx are the receiver refusing the request and are not retried.
The jitter is seeded by the job id and attempt, so a replayed decision gives the same time.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Literal

DEFAULT_SCHEDULE_S: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000)
"""Nominal delays after each failed attempt; the attempt after the last one is the last."""
RETRY_AFTER_CAP_S = 24 * 3600.0

Result = Literal["delivered", "retry", "gone", "rejected"]


@dataclass(frozen=True, slots=True)
class AttemptOutcome:
    """What one delivery attempt came to. ``code`` is a bounded label, e.g. ``http_503``."""

    result: Result
    code: str
    retry_after_s: float | None = None


def classify_http(status: int, retry_after: str | None = None, now: datetime | None = None) -> AttemptOutcome:
    """The outcome of an HTTP response status (webhook and chat channels)."""
    code = f"http_{status}"
    if 200 <= status < 300:
        return AttemptOutcome("delivered", code)
    if status == 410:
        return AttemptOutcome("gone", code)
    if status in (408, 425, 429) or status >= 500:
        return AttemptOutcome("retry", code, parse_retry_after(retry_after, now))
    return AttemptOutcome("rejected", code)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date), capped; else ``None``."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), RETRY_AFTER_CAP_S)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if now is None or when.tzinfo is None:
        return None
    return max(0.0, min((when - now).total_seconds(), RETRY_AFTER_CAP_S))


def next_delay(
    schedule: Sequence[float], attempts_made: int, job_id: str, retry_after_s: float | None = None
) -> float | None:
    """Seconds until the next attempt after ``attempts_made`` failed ones, or ``None`` when the
    schedule is exhausted."""
    if attempts_made < 1 or attempts_made > len(schedule):
        return None
    nominal = float(schedule[attempts_made - 1])
    delay = random.Random(f"{job_id}|{attempts_made}").uniform(0.0, nominal)  # noqa: S311 - jitter, not crypto
    if retry_after_s is not None:
        delay = max(delay, min(retry_after_s, RETRY_AFTER_CAP_S))
    return delay
