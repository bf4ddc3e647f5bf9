"""Third-party log storms are thinned; Rapport's own lines never are."""

from __future__ import annotations

import logging

from shared.runtime.logs import RepeatFilter


def record(name: str, msg: str, created: float) -> logging.LogRecord:
    r = logging.LogRecord(name, logging.ERROR, "f", 1, msg, (), None)
    r.created = created
    return r


def test_repeats_within_the_window_are_dropped_per_template() -> None:
    f = RepeatFilter(window_s=10)
    passed = [f.filter(record("aiokafka", "Unable to update metadata from %s", t / 100)) for t in range(1000)]
    assert sum(passed) == 1
    assert f.filter(record("aiokafka", "another message", 1.0))
    assert f.filter(record("aiokafka", "Unable to update metadata from %s", 10.5))


def test_own_lines_always_pass() -> None:
    f = RepeatFilter(window_s=10)
    assert all(f.filter(record("services.gateway.intake", "delivery failed", 1.0)) for _ in range(5))
