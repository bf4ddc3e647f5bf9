"""The one worker loop against an in-memory topic: order, ack after publish, dead letters, exit 75.

The fake stream acknowledges a batch's offsets only after ``process_batch`` returns, as faust's
``take_events`` does; the fake publisher's acknowledgements are released by the test.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Sequence
from datetime import UTC, datetime
from pathlib import Path
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
    Sent,
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
        self.pending: list[tuple[asyncio.Future[None], list[tuple[str, bytes | None, bytes]]]] = []

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
            self.pending.append((fut, [record]))
        else:
            self.acked.append(record)
            fut.set_result(None)
        return fut

    def release(self) -> None:
        for fut, records in self.pending:
            self.acked.extend(records)
            fut.set_result(None)
        self.pending.clear()


class FakeBatchTopic(FakeTopic):
    """A publisher with a batch API, as :class:`~shared.runtime.kafka.FaustPublisher`: a batch's
    outputs are enqueued at once, one acknowledgement per (topic, partition) group, which the test
    can hold back or fail as a whole."""

    def __init__(self, *, hold: bool = False, refuse: int = 0) -> None:
        super().__init__(hold=hold, refuse=refuse)
        self.groups: list[list[tuple[str, bytes | None, bytes]]] = []

    async def send_batch(self, outputs: Sequence[Output]) -> list[Sent]:
        groups: dict[tuple[str, int | None], list[Output]] = {}
        for out in outputs:
            groups.setdefault((out.topic, out.partition), []).append(out)
        sent: list[Sent] = []
        for members in groups.values():
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            records = [(o.topic, o.key, o.value) for o in members]
            self.records.extend(records)
            self.groups.append(records)
            if self.refuse:
                self.refuse -= 1
                fut.set_exception(ConnectionError("broker refused"))
            elif self.hold:
                self.pending.append((fut, records))
            else:
                self.acked.extend(records)
                fut.set_result(None)
            sent.append(Sent(members, fut))
        return sent


#: Both ways a publisher takes outputs: one record at a time, or a batch per partition.
PUBLISHERS = pytest.mark.parametrize("publisher", [FakeTopic, FakeBatchTopic], ids=["one-by-one", "batched"])


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


@PUBLISHERS
def test_input_is_acknowledged_only_after_every_output_is_acknowledged(publisher: type[FakeTopic]) -> None:
    topic = publisher(hold=True)
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


@PUBLISHERS
def test_a_refused_record_is_retried_and_then_acknowledged(publisher: type[FakeTopic]) -> None:
    topic = publisher(refuse=2)
    loop, _ = make_loop(topic)
    stream = FakeStream()
    asyncio.run(stream.run(loop, [[rec(0, b"a")]]))
    assert topic.acked == [("out", b"k", b"A")]
    assert stream.committed == [0]


@PUBLISHERS
def test_publish_failure_exits_75_without_acknowledging_the_input(publisher: type[FakeTopic]) -> None:
    exits: list[int] = []
    topic = publisher(refuse=100)
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


@PUBLISHERS
def test_state_is_read_through_the_batch_and_written_once_per_key_after_publishing(
    publisher: type[FakeTopic],
) -> None:
    store = DictStore()
    topic = publisher(hold=True)
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


def test_a_batch_goes_out_as_one_group_per_partition_in_input_order_and_a_refused_group_is_retried() -> None:
    topic = FakeBatchTopic(refuse=1)

    def spread(record: Record, _state: Any, _now: datetime) -> Handled:
        n = record.value.decode()
        return Handled(
            "ok",
            outputs=(
                Output("out", record.key, f"{n}-p{record.offset % 2}".encode(), partition=record.offset % 2),
            ),
        )

    loop, _ = make_loop(topic, handler=spread)
    stream = FakeStream()
    asyncio.run(stream.run(loop, [[rec(i, str(i).encode()) for i in range(6)]]))
    first, second, *retried = topic.groups
    assert [v for _, _, v in first] == [b"0-p0", b"2-p0", b"4-p0"], "partition 0's outputs in input order"
    assert [v for _, _, v in second] == [b"1-p1", b"3-p1", b"5-p1"]
    assert retried == [first], "only the refused group is sent again"
    assert sorted(v for _, _, v in topic.acked) == sorted(v for _, _, v in first + second)
    assert stream.committed == list(range(6))


class CountingStore(DictStore):
    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def get(self, key: str) -> str | None:
        self.reads += 1
        return super().get(key)


def _two_batches(loop: WorkerLoop, first: list[Record], second: list[Record]) -> None:
    async def scenario() -> None:
        await loop.process_batch(first)
        await loop.process_batch(second)

    asyncio.run(scenario())


def test_decoded_state_is_kept_between_batches_up_to_its_capacity() -> None:
    store = CountingStore()
    decoded: list[str] = []

    def decode(text: str) -> str:
        decoded.append(text)
        return text

    state: BatchState[str] = BatchState(store, decode, str, capacity=2)
    loop, _ = make_loop(FakeTopic(), handler=counting, state=state)
    a, b, c = (Record(k, b"", "in", 0, i) for i, k in enumerate((b"a", b"b", b"c")))
    _two_batches(loop, [a, b], [a, b])
    assert store.reads == 2 and decoded == [], "the second batch read neither key from the store"
    assert store.data == {"a": "2", "b": "2"}
    asyncio.run(loop.process_batch([c]))
    assert len(state) == 2, "bounded: the least recently used value left memory"
    asyncio.run(loop.process_batch([a]))
    assert store.reads == 4 and decoded == ["2"], "an evicted value is read (and decoded) again"
    assert store.data["a"] == "3"


def test_without_capacity_state_is_kept_for_one_batch_only() -> None:
    store = CountingStore()
    state: BatchState[str] = BatchState(store, str, str)
    loop, _ = make_loop(FakeTopic(), handler=counting, state=state)
    a = Record(b"a", b"", "in", 0, 0)
    _two_batches(loop, [a], [a])
    assert store.reads == 2 and len(state) == 0 and store.data == {"a": "2"}


def test_invalidate_drops_cached_state_so_a_rebuilt_store_is_read_again() -> None:
    store = CountingStore()
    state: BatchState[str] = BatchState(store, str, str, capacity=100)
    topic = FakeTopic()
    loop, _ = make_loop(topic, handler=counting, state=state)
    a = Record(b"a", b"", "in", 0, 0)
    asyncio.run(loop.process_batch([a]))
    # Meanwhile the partition moved to another worker, which counted on, and came back: the table
    # was rebuilt from the changelog; the cached "1" is stale.
    store.data["a"] = "7"
    state.invalidate()
    assert len(state) == 0
    asyncio.run(loop.process_batch([a]))
    assert topic.records[-1][2] == b"8", "the rebuilt value was read, not the cached one"


def test_invalidate_during_a_batch_in_flight_still_writes_its_changes_then_forgets_them() -> None:
    store = DictStore()
    state: BatchState[str] = BatchState(store, str, str, capacity=100)
    topic = FakeTopic(hold=True)
    loop, _ = make_loop(topic, handler=counting, state=state)
    a = Record(b"a", b"", "in", 0, 0)
    store.data["b"] = "5"
    assert state.get("b") == "5" and len(state) == 1  # cached, not changed by the batch below

    async def scenario() -> None:
        task = asyncio.create_task(loop.process_batch([a]))
        for _ in range(20):
            await asyncio.sleep(0)
        state.invalidate()  # partitions revoked while the batch awaits its acks
        assert len(state) == 1, "only the batch's own change is still held"
        topic.release()
        await task

    asyncio.run(scenario())
    assert store.writes == [("a", "1", 0)], "the batch's change was written"
    assert len(state) == 0, "and then forgotten with everything else"


def test_a_failing_handler_drops_cached_state() -> None:
    store = CountingStore()
    state: BatchState[str] = BatchState(store, str, str, capacity=100)

    def flaky(record: Record, view: Any, now: datetime) -> Handled:
        if record.value == b"boom":
            raise RuntimeError("bug")
        return counting(record, view, now)

    loop, _ = make_loop(FakeTopic(), handler=flaky, state=state)
    _two_batches(loop, [Record(b"a", b"", "in", 0, 0)], [Record(b"x", b"boom", "in", 0, 1)])
    assert len(state) == 0
    asyncio.run(loop.process_batch([Record(b"a", b"", "in", 0, 2)]))
    assert store.data["a"] == "2" and store.reads == 2, "read again from the store after the failure"


def test_the_faust_worker_drops_cached_state_when_partitions_are_revoked_or_assigned(tmp_path: Path) -> None:
    from shared.runtime.kafka import WorkerSettings, attach_loop, create_faust_app, raw_topic

    app = create_faust_app(WorkerSettings(app_id="cache", data_dir=str(tmp_path)), 3)
    store = DictStore()
    state: BatchState[str] = BatchState(store, str, str, capacity=100)
    loop, _ = make_loop(FakeTopic(), handler=counting, state=state)
    attach_loop(app, raw_topic(app, "in"), loop, name="count", batch_max=10, within_s=0.01)

    async def scenario() -> None:
        for signal in (app.on_partitions_revoked, app.on_partitions_assigned, app.on_rebalance_complete):
            await loop.process_batch([Record(b"a", b"", "in", 0, 0)])
            assert len(state) == 1
            if signal is app.on_rebalance_complete:
                await signal.send()
            else:
                await signal.send(set())
            assert len(state) == 0, f"{signal} dropped the cached state"

    asyncio.run(scenario())
