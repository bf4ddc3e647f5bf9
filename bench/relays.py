"""Relay baselines for the live benchmarks: what one bare Python process moves through this broker.

A relay consumes the same input topic as a service and produces, for every input record, exactly
the records the service produces for it (same count, same keys, same bytes: precomputed offline by
the service's own handler), with the same producer guarantees (``acks=all``, idempotent). It does
no decoding, no scoring and no state: the difference between a relay's rate and a service's is the
cost of the service's own work plus its framework (faust).

Two clients, each in its plainest correct form: consume a poll's worth of records, produce their
outputs, wait for every acknowledgement, commit the input offsets.

- :func:`kafka_python_relay` (kafka-python, synchronous);
- :func:`aiokafka_relay` (aiokafka, the client faust runs on).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from shared.runtime.kafka import PRODUCER_BATCH_BYTES
from shared.runtime.provisioning import producer_config

#: What a relay produces for one input record (found by its value): (key, value) pairs.
Outputs = Mapping[bytes, Sequence[tuple[bytes | None, bytes]]]

POLL_RECORDS = 500
"""Records per poll: the workers' batch size (``*_BATCH_MAX``)."""


@dataclass(frozen=True)
class RelayRun:
    """One relay pass over a backlog: input records, output records, and the time between the first
    input record received and the last output acknowledged."""

    inputs: int
    outputs: int
    seconds: float

    @property
    def rate(self) -> float:
        """Input records per second."""
        return self.inputs / self.seconds if self.seconds > 0 else float("inf")


def kafka_python_relay(bootstrap: str, src: str, dst: str, outputs: Outputs, n: int) -> RelayRun:
    """Relay ``n`` records of ``src`` to ``dst`` with kafka-python."""
    from kafka import KafkaConsumer, KafkaProducer

    consumer = KafkaConsumer(
        src,
        bootstrap_servers=bootstrap.split(","),
        group_id=f"bench-relay-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_poll_records=POLL_RECORDS,
    )
    producer = KafkaProducer(**{**producer_config(bootstrap), "batch_size": PRODUCER_BATCH_BYTES})
    moved = produced = 0
    started: float | None = None
    deadline = time.monotonic() + 600
    try:
        while moved < n and time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=500)
            if batch and started is None:
                started = time.perf_counter()
            futures = []
            for records in batch.values():
                for r in records:
                    for key, value in outputs[r.value]:
                        futures.append(producer.send(dst, key=key, value=value))
                    moved += 1
            producer.flush()
            for f in futures:
                f.get(timeout=30)
            produced += len(futures)
            if batch:
                consumer.commit()
        return RelayRun(moved, produced, time.perf_counter() - (started or time.perf_counter()))
    finally:
        consumer.close()
        producer.close()


def aiokafka_relay(bootstrap: str, src: str, dst: str, outputs: Outputs, n: int) -> RelayRun:
    """Relay ``n`` records of ``src`` to ``dst`` with aiokafka."""
    return asyncio.run(_aiokafka_relay(bootstrap, src, dst, outputs, n))


async def _aiokafka_relay(bootstrap: str, src: str, dst: str, outputs: Outputs, n: int) -> RelayRun:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    consumer = AIOKafkaConsumer(
        src,
        bootstrap_servers=bootstrap,
        group_id=f"bench-relay-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        max_batch_size=PRODUCER_BATCH_BYTES,
    )
    await consumer.start()
    await producer.start()
    moved = produced = 0
    started: float | None = None
    deadline = time.monotonic() + 600
    try:
        while moved < n and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500, max_records=POLL_RECORDS)
            if batch and started is None:
                started = time.perf_counter()
            futures = []
            for records in batch.values():
                for r in records:
                    for key, value in outputs[r.value]:
                        futures.append(await producer.send(dst, value, key=key))
                    moved += 1
            await asyncio.gather(*futures)
            produced += len(futures)
            if batch:
                await consumer.commit()
        return RelayRun(moved, produced, time.perf_counter() - (started or time.perf_counter()))
    finally:
        await consumer.stop()
        await producer.stop()
