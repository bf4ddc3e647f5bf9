"""The one worker loop against an in-memory topic: order, ack after publish, dead letters, exit 75.

The fake stream acknowledges a batch's offsets only after ``process_batch`` returns, as faust's
``take_events`` does; the fake publisher's acknowledgements are released by the test.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from shared.contracts.deadletters import Rejection
from shared.runtime.worker import (
    EXIT_PUBLISH_FAILED,
    BatchState,
    Handled,
    LoopMetrics,
    Output,
    Record,
    WorkerLoop,
)

NOW = datetime(2026, 1, 5, tzinfo=UTC)


class FakeTopic:
    """Records published, in order, with acknowledgements the test can hold back or fail."""

    def __init__(self, *, hold: bool = False, refuse: int = 0) -> None:
        self.records: list[tuple[str, bytes | None, bytes]] = []
        self.acked: list[tuple[str, bytes | None, bytes]] = []
        self.hold = hold
        self.refuse = refuse
        self.pending: list[tuple[asyncio.Future[None], tuple[str, bytes | None, bytes]]] = []

    async def send(
        self, topic: str, key: bytes | None, value: bytes, partition: int | None = None
    ) -> Awaitable[Any]:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        record = (topic, key, value)
        self.records.append(record)
        if self.refuse:
            self.refuse -= 1
            fut.set_exception(ConnectionError("broker refused"))
        elif self.hold:
            self.pending.append((fut, record))
        else:
            self.acked.append(record)
            fut.set_result(None)
        return fut

    def release(self) -> None:
        for fut, record in self.pending:
            self.acked.append(record)
            fut.set_result(None)
        self.pending.clear()


class FakeStream:
    """Feeds batches to the loop; commits a batch's offsets only after the loop returned."""

    def __init__(self) -> None:
        self.committed: list[int] = []

    async def run(self, loop: WorkerLoop, batches: list[list[Record]]) -> None:
        for batch in batches:
            await loop.process_batch(batch)
            self.committed.extend(r.offset for r in batch)


def rec(offset: int, value: bytes, key: bytes | None = b"k") -> Record:
    return Record(key, value, "in", 0, offset)


def echo(record: Record, _state: Any, _now: datetime) -> Handled:
    if record.value == b"boom":
        raise RuntimeError("bug with PHI-looking text: Jane")
    if record.value == b"bad":
        return Handled("rejected", rejections=(Rejection("schema_violation", "data@client_id"),))
    return Handled("ok", outputs=(Output("out", record.key, record.value.upper()),))


def make_loop(topic: FakeTopic, handler: Any = echo, **kwargs: Any) -> tuple[WorkerLoop, CollectorRegistry]:
    registry = CollectorRegistry()
    loop = WorkerLoop(
        stage="test",
        handler=handler,
        publisher=topic,
        metrics=LoopMetrics.create(registry, "test", "events", "Events"),
        clock=lambda: NOW,
        backoff_s=0.001,
        **kwargs,
    )
    return loop, registry


def test_outputs_are_published_in_input_order() -> None:
    topic = FakeTopic()
    loop, registry = make_loop(topic)
    stream = FakeStream()
    asyncio.run(stream.run(loop, [[rec(0, b"a"), rec(1, b"b")], [rec(2, b"c")]]))
    assert [v for _, _, v in topic.records] == [b"A", b"B", b"C"]
    assert stream.committed == [0, 1, 2]
    assert registry.get_sample_value("rapport_test_events_total", {"outcome": "ok"}) == 3


def test_input_is_acknowledged_only_after_every_output_is_acknowledged() -> None:
    topic = FakeTopic(hold=True)
    loop, _ = make_loop(topic)
    stream = FakeStream()

    async def scenario() -> None:
        task = asyncio.create_task(stream.run(loop, [[rec(0, b"a"), rec(1, b"b")]]))
        for _ in range(20):
            await asyncio.sleep(0)
        assert len(topic.records) == 2, "both outputs were sent"
        assert stream.committed == [], "nothing acknowledged while the broker has not acked"
        topic.release()
        await task
        assert stream.committed == [0, 1]

    asyncio.run(scenario())


def test_an_exception_in_the_handler_is_a_processing_error_dead_letter_and_the_rest_flows() -> None:
    topic = FakeTopic()
    loop, registry = make_loop(topic)
    stream = FakeStream()
    asyncio.run(stream.run(loop, [[rec(0, b"a"), rec(1, b"boom"), rec(2, b"c")]]))
    topics = [t for t, _, _ in topic.records]
    assert topics == ["out", "rapport.dead-letter.v1", "out"]
    letter = json.loads(topic.records[1][2])
    assert (letter["reason"], letter["stage"], letter["original_offset"]) == ("processing_error", "test", 1)
    assert letter["detail"] == "RuntimeError" and "Jane" not in topic.records[1][2].decode()
    assert stream.committed == [0, 1, 2]
    assert registry.get_sample_value("rapport_test_dead_letters_total", {"reason": "processing_error"}) == 1


def test_rejections_become_dead_letters_keyed_like_the_input() -> None:
    topic = FakeTopic()
    loop, registry = make_loop(topic)
    asyncio.run(FakeStream().run(loop, [[rec(5, b"bad", key=b"client-key")]]))
    ((topic_name, key, value),) = topic.records
    assert topic_name == "rapport.dead-letter.v1" and key == b"client-key"
    assert json.loads(value)["reason"] == "schema_violation"
    assert registry.get_sample_value("rapport_test_events_total", {"outcome": "rejected"}) == 1


def test_a_refused_record_is_retried_and_then_acknowledged() -> None:
    topic = FakeTopic(refuse=2)
    loop, _ = make_loop(topic)
    stream = FakeStream()
    asyncio.run(stream.run(loop, [[rec(0, b"a")]]))
    assert topic.acked == [("out", b"k", b"A")]
    assert stream.committed == [0]


def test_publish_failure_exits_75_without_acknowledging_the_input() -> None:
    exits: list[int] = []
    topic = FakeTopic(refuse=100)
    loop, _ = make_loop(topic, exit_process=exits.append, attempts=3)
    stream = FakeStream()
    with pytest.raises(SystemExit) as stopped:
        asyncio.run(stream.run(loop, [[rec(0, b"a")]]))
    assert exits == [EXIT_PUBLISH_FAILED] and stopped.value.code == EXIT_PUBLISH_FAILED
    assert stream.committed == [], "the input is replayed after restart"
    assert len(topic.records) == 3, "three attempts"


class DictStore:
    def __init__(self) -> None:
        self.data: dict[str, str] = {}
        self.writes: list[tuple[str, str, int]] = []

    def get(self, key: str) -> str | None:
        return self.data.get(key)

    def put(self, key: str, value: str, record: Record) -> None:
        self.data[key] = value
        self.writes.append((key, value, record.partition))

    def delete(self, key: str, record: Record) -> None:
        self.data.pop(key, None)
        self.writes.append((key, "<deleted>", record.partition))


def counting(record: Record, state: Any, _now: datetime) -> Handled:
    """Counts records per key; publishes the running count."""
    key = record.key.decode() if record.key else ""
    count = int(state.get(key) or 0) + 1
    state.set(key, str(count), record)
    return Handled("ok", outputs=(Output("out", record.key, str(count).encode()),))


def test_state_is_read_through_the_batch_and_written_once_per_key_after_publishing() -> None:
    store = DictStore()
    topic = FakeTopic(hold=True)
    state: BatchState[str] = BatchState(store, str, str)
    loop, _ = make_loop(topic, handler=counting, state=state)
    batch = [
        Record(b"a", b"", "in", 3, 0),
        Record(b"b", b"", "in", 1, 1),
        Record(b"a", b"", "in", 3, 2),
    ]

    async def scenario() -> None:
        task = asyncio.create_task(loop.process_batch(batch))
        for _ in range(20):
            await asyncio.sleep(0)
        assert store.writes == [], "state waits for the outputs' acknowledgements"
        topic.release()
        await task

    asyncio.run(scenario())
    assert [v for _, _, v in topic.records] == [b"1", b"1", b"2"], "the batch sees its own writes"
    assert store.writes == [("a", "2", 3), ("b", "1", 1)], "one write per key, on its record's partition"


def test_publish_failure_leaves_state_unwritten() -> None:
    store = DictStore()
    state: BatchState[str] = BatchState(store, str, str)
    loop, _ = make_loop(FakeTopic(refuse=100), handler=counting, state=state, exit_process=lambda _c: None)
    with pytest.raises(SystemExit):
        asyncio.run(loop.process_batch([Record(b"a", b"", "in", 0, 0)]))
    assert store.writes == []
