"""Pure pieces of the gateway: fingerprints, the rate limit, media types."""

from __future__ import annotations

from datetime import timedelta

from services.gateway import handlers
from tests.support import session_event


def test_fingerprint_ignores_only_the_production_time() -> None:
    event = session_event()
    later = event.model_copy(update={"time": event.time + timedelta(hours=1)})
    assert handlers.fingerprint(event.model_dump_json().encode()) == handlers.fingerprint(
        later.model_dump_json().encode()
    )
    other = session_event(surveys=[("PHQ-9", {"1": 3})])
    assert handlers.fingerprint(other.model_dump_json().encode()) != handlers.fingerprint(
        event.model_dump_json().encode()
    )
    tricky = event.model_copy(update={"source": 'x","time":"y'})
    assert handlers.fingerprint(tricky.model_dump_json().encode()) != handlers.fingerprint(
        event.model_dump_json().encode()
    )


def test_token_bucket_rate_and_burst() -> None:
    limiter = handlers.RateLimiter(rate=2.0, burst=3)
    assert [limiter.check("k", 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.check("k", 0.0) == 0.5
    assert limiter.check("k", 0.5) == 0.0
    assert limiter.check("other", 0.5) == 0.0


def test_rate_limiter_forgets_the_least_recent_keys_only_past_its_bound() -> None:
    limiter = handlers.RateLimiter(rate=1.0, burst=1, max_keys=2)
    assert limiter.check("a", 0.0) == 0.0 and limiter.check("b", 0.0) == 0.0
    assert limiter.check("a", 0.0) > 0  # still limited
    limiter.check("c", 0.0)  # evicts b, the least recently used
    assert limiter.check("a", 0.0) > 0


def test_media_types() -> None:
    assert handlers.media_type("Application/FHIR+JSON; charset=utf-8") == "application/fhir+json"
    assert handlers.media_type(None) == ""
