"""FaustPublisher.send_batch against a stand-in for aiokafka's producer (no broker): one record batch
per partition in input order, the producer's own partitioner, a full batch continued in a new one."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka.partitioner import DefaultPartitioner

from shared.runtime.kafka import FaustPublisher
from shared.runtime.worker import Output


class Batch:
    def __init__(self, limit: int) -> None:
        self.records: list[tuple[bytes | None, bytes]] = []
        self.limit = limit
        self.closed = False

    def append(self, *, timestamp: Any, key: bytes | None, value: bytes, headers: Any) -> object | None:
        if self.records and len(self.records) >= self.limit:
            return None
        self.records.append((key, value))
        return object()

    def close(self) -> None:
        self.closed = True


class Metadata:
    def partitions_for_topic(self, topic: str) -> set[int]:
        return {0, 1, 2}

    def available_partitions_for_topic(self, topic: str) -> set[int]:
        return {0, 1, 2}


class Client:
    async def _wait_on_metadata(self, topic: str) -> None:
        return None


class Producer:
    """The parts of ``AIOKafkaProducer`` that ``send_batch`` uses."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.client = Client()
        self._metadata = Metadata()
        self.partitioner = DefaultPartitioner()
        self.partitioned = 0
        self.submitted: list[tuple[str, int, Batch]] = []

    def _partition(self, topic: str, partition: Any, key: Any, value: Any, skey: Any, svalue: Any) -> int:
        self.partitioned += 1
        parts = sorted(self._metadata.partitions_for_topic(topic))
        return int(self.partitioner(skey, parts, parts))

    def create_batch(self) -> Batch:
        return Batch(self.limit)

    async def send_batch(self, batch: Batch, topic: str, *, partition: int) -> asyncio.Future[None]:
        assert batch.closed, "a submitted batch is closed: no later record joins it"
        self.submitted.append((topic, partition, batch))
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut


class FaustProducer:
    def __init__(self, inner: Producer) -> None:
        self.inner = inner

    def _ensure_producer(self) -> Producer:
        return self.inner


class App:
    def __init__(self, inner: Producer) -> None:
        self.producer = FaustProducer(inner)

    async def maybe_start_producer(self) -> FaustProducer:
        return self.producer


def test_one_record_batch_per_partition_in_input_order_on_the_producers_partitioner() -> None:
    inner = Producer(limit=1000)
    publisher = FaustPublisher(App(inner), "ns.")
    keys = [f"clinic|client-{n}".encode() for n in range(12)]
    outputs = [Output("out", k, f"{i}".encode()) for i, k in enumerate(keys * 2)]
    outputs.append(Output("internal", b"x", b"pinned", partition=2))

    sent = asyncio.run(publisher.send_batch(outputs))

    partitions = sorted(range(3))
    expected: dict[int, list[bytes]] = {}
    for out in outputs[:-1]:
        p = int(DefaultPartitioner()(out.key, partitions, partitions))
        expected.setdefault(p, []).append(out.value)
    got = {p: [v for _, v in b.records] for t, p, b in inner.submitted if t == "ns.out"}
    assert got == expected, "each partition's records in input order, where Topic.send would put them"
    assert [(t, p) for t, p, _ in inner.submitted if t != "ns.out"] == [("ns.internal", 2)]
    assert sum(len(s.outputs) for s in sent) == len(outputs) and len(sent) == len(inner.submitted)
    assert inner.partitioned == len(keys), "each key's partition computed once, then remembered"


def test_a_full_record_batch_is_submitted_and_the_partition_continues_in_a_new_one() -> None:
    inner = Producer(limit=2)
    publisher = FaustPublisher(App(inner), "")
    outputs = [Output("out", None, f"{i}".encode(), partition=0) for i in range(5)]
    sent = asyncio.run(publisher.send_batch(outputs))
    assert [[v for _, v in b.records] for _, _, b in inner.submitted] == [[b"0", b"1"], [b"2", b"3"], [b"4"]]
    assert [[o.value for o in s.outputs] for s in sent] == [[b"0", b"1"], [b"2", b"3"], [b"4"]]
