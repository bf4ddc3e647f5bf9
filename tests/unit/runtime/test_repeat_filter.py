"""Repeated warnings and errors are logged once per kind per interval, with a count."""

from __future__ import annotations

import json
import logging

from shared.runtime.logs import JsonFormatter, RepeatFilter


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def _record(msg: str, *args: object, level: int = logging.ERROR, name: str = "aiokafka") -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


def test_a_storm_of_one_error_is_one_line_per_interval_with_the_count() -> None:
    clock = Clock()
    f = RepeatFilter(interval_s=60, clock=clock)
    passed = []
    for i in range(4000):  # a broker outage: thousands of the same error, with varying arguments
        clock.now = i * 0.015
        record = _record("Unable connect to node with id %s: %s", 1, "refused")
        if f.filter(record):
            passed.append(record)
    assert len(passed) == 1, "one line in the first minute"
    clock.now = 61
    record = _record("Unable connect to node with id %s: %s", 1, "refused")
    assert f.filter(record)
    assert record.repeated == 3999  # type: ignore[attr-defined]
    line = json.loads(JsonFormatter().format(record))
    assert line["repeated"] == 3999


def test_kinds_are_counted_apart_and_info_always_passes() -> None:
    f = RepeatFilter(interval_s=60, clock=Clock())
    assert f.filter(_record("a %s", 1)) and f.filter(_record("b %s", 1))
    assert f.filter(_record("a %s", 2, level=logging.WARNING)), "another level is another kind"
    assert not f.filter(_record("a %s", 3))
    assert all(f.filter(_record("progress %s", i, level=logging.INFO)) for i in range(10))
