"""The consumer-lag gauge reads faust's monitor at scrape time."""

from __future__ import annotations

from types import SimpleNamespace

from faust.types import TP
from prometheus_client import CollectorRegistry, generate_latest

from shared.runtime.health import ConsumerLagCollector


def test_lag_is_highwater_minus_next_offset_to_read() -> None:
    a, b, c = TP("in", 0), TP("in", 1), TP("in", 2)
    monitor = SimpleNamespace(tp_read_offsets={a: 9, b: 41}, tp_end_offsets={a: 10, b: 50, c: 7})
    registry = CollectorRegistry()
    registry.register(ConsumerLagCollector(SimpleNamespace(monitor=monitor), "scoring"))
    text = generate_latest(registry).decode()
    assert 'rapport_scoring_consumer_lag_messages{partition="0",topic="in"} 0.0' in text
    assert 'rapport_scoring_consumer_lag_messages{partition="1",topic="in"} 8.0' in text
    assert 'partition="2"' not in text, "a partition never read from has no sample yet"
