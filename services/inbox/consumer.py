"""The inbox's topic consumer: a plain aiokafka loop into the database, and the Kafka producer of
acknowledgements and dead letters.

Per batch: decode every record → publish dead letters for the unreadable ones and await the broker →
write the rows *and the next offsets* in one database transaction → commit the offsets to the group.
The database's offsets are the truth: on every partition assignment the consumer seeks to them (to
the log start for partitions the database has never seen), so a crash anywhere replays records into
upserts that change nothing, and a fresh or restored database catches up by itself. The group's
commits only let operators see the lag with the usual tools.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from prometheus_client.core import GaugeMetricFamily, Metric

from services.inbox.handlers import INPUT_TOPICS, STAGE, decode_record
from services.inbox.metrics import InboxMetrics
from services.inbox.settings import InboxSettings
from shared.contracts import topics
from shared.contracts.deadletters import Rejection, build_dead_letter
from shared.contracts.events import utc_now
from shared.inbox.store import Change, InboxStore

log = logging.getLogger(__name__)


class KafkaPublisher:
    """An idempotent producer (``acks=all``) for acknowledgements and dead letters."""

    def __init__(self, settings: InboxSettings) -> None:
        self._settings = settings
        self._producer: AIOKafkaProducer | None = None
        self._starting = asyncio.Lock()

    async def start(self) -> None:
        """Connect to the broker; when it cannot be reached now, the first publish tries again
        (acknowledgements wait in the outbox meanwhile)."""
        try:
            await self._start()
        except Exception as exc:
            log.warning("broker not reachable yet", extra={"error_type": type(exc).__name__})

    async def _start(self) -> None:
        async with self._starting:
            if self._producer is not None:
                return
            producer = AIOKafkaProducer(
                bootstrap_servers=self._settings.bootstrap_servers.split(","),
                client_id=f"{self._settings.app_id}-producer",
                acks="all",
                enable_idempotence=True,
                request_timeout_ms=int(self._settings.ack_publish_timeout_s * 1000),
            )
            try:
                await asyncio.wait_for(producer.start(), self._settings.ack_publish_timeout_s)
            except BaseException:
                await producer.stop()
                raise
            self._producer = producer

    async def stop(self) -> None:
        """Flush and disconnect."""
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def publish(self, topic: str, key: bytes | None, value: bytes) -> None:
        """Send one record to ``topic`` (a base name) and wait until the broker acknowledged it."""
        if self._producer is None:
            await self._start()
        assert self._producer is not None  # noqa: S101 - _start() sets it or raises
        name = topics.topic_name(topic, self._settings.topic_namespace)
        await asyncio.wait_for(
            self._producer.send_and_wait(name, key=key, value=value), self._settings.ack_publish_timeout_s
        )


class _SeekToStoredOffsets(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: TopicConsumer) -> None:
        self._owner = owner

    async def on_partitions_revoked(self, revoked: Any) -> None:
        return None

    async def on_partitions_assigned(self, assigned: Any) -> None:
        await self._owner.seek_stored(list(assigned))


class TopicConsumer:
    """Reads the inbox's input topics into the database until stopped."""

    def __init__(
        self, settings: InboxSettings, store: InboxStore, publisher: Any, metrics: InboxMetrics
    ) -> None:
        self._settings = settings
        self._store = store
        self._publisher = publisher
        self._metrics = metrics
        self._base = {topics.topic_name(t, settings.topic_namespace): t for t in INPUT_TOPICS}
        self._consumer: AIOKafkaConsumer | None = None
        self._next: dict[TopicPartition, int] = {}
        self.assigned = False
        self.healthy = True

    async def seek_stored(self, assigned: list[TopicPartition]) -> None:
        """Position every assigned partition at the database's next offset (or the log start)."""
        stored = await asyncio.to_thread(self._store.offsets)
        assert self._consumer is not None  # noqa: S101 - called by the consumer's own listener
        for tp in assigned:
            # Offset 0 of a partition whose start was deleted by retention is out of range, and the
            # consumer's reset policy (earliest) moves it to the log start.
            self._consumer.seek(tp, stored.get((tp.topic, tp.partition), 0))
        self.assigned = bool(assigned)
        log.info("partitions assigned", extra={"count": len(assigned)})

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set."""
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self._settings.bootstrap_servers.split(","),
            group_id=self._settings.app_id,
            client_id=f"{self._settings.app_id}-consumer",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        self._consumer.subscribe(topics=sorted(self._base), listener=_SeekToStoredOffsets(self))
        await self._consumer.start()
        try:
            while not stop.is_set():
                batch = await self._consumer.getmany(timeout_ms=500, max_records=self._settings.batch_max)
                if batch:
                    await self._handle(batch, stop)
        finally:
            await self._consumer.stop()
            self.assigned = False

    async def _handle(self, batch: dict[TopicPartition, list[Any]], stop: asyncio.Event) -> None:
        changes: list[Change] = []
        dead: list[tuple[Rejection, Any]] = []
        offsets: dict[tuple[str, int], int] = {}
        counts: dict[tuple[str, str], int] = {}
        for tp, records in batch.items():
            base = self._base.get(tp.topic, tp.topic)
            for record in records:
                decoded = decode_record(base, record.key, record.value)
                if isinstance(decoded, Rejection):
                    dead.append((decoded, record))
                    outcome = "dead_lettered"
                else:
                    changes.append(decoded)
                    outcome = "stored"
                counts[(base, outcome)] = counts.get((base, outcome), 0) + 1
            if records:
                offsets[(tp.topic, tp.partition)] = records[-1].offset + 1
        # Dead letters leave before the offsets that skip their records are stored.
        for rejection, record in dead:
            letter = build_dead_letter(
                rejection,
                stage=STAGE,
                key=record.key,
                value=record.value or b"",
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                now=utc_now(),
            )
            await self._publisher.publish(topics.DEAD_LETTER, record.key, letter.model_dump_json().encode())
            self._metrics.dead_letters.labels(rejection.reason).inc()
            log.warning(
                "record dead-lettered",
                extra={
                    "reason": rejection.reason,
                    "topic": record.topic,
                    "partition": record.partition,
                    "offset": record.offset,
                },
            )
        delay = 0.5
        while True:
            started = time.perf_counter()
            try:
                await asyncio.to_thread(self._store.ingest, changes, offsets)
                break
            except Exception as exc:  # a database outage: keep the batch and try again
                self.healthy = False
                self._metrics.ingest_errors.inc()
                log.error("database write failed; retrying", extra={"error_type": type(exc).__name__})
                if stop.is_set():
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
        self.healthy = True
        self._metrics.ingest_seconds.observe(time.perf_counter() - started)
        for (base, outcome), n in counts.items():
            self._metrics.records.labels(base, outcome).inc(n)
        commit = {TopicPartition(t, p): o for (t, p), o in offsets.items()}
        self._next.update(commit)
        assert self._consumer is not None  # noqa: S101 - only run() calls this
        try:
            await self._consumer.commit(commit)
        except Exception as exc:  # the database holds the offsets; the group's copy is for lag tools
            log.warning("offset commit to the group failed", extra={"error_type": type(exc).__name__})

    def lag(self) -> Iterator[tuple[str, int, int]]:
        """(topic, partition, records not yet read) of every assigned partition."""
        consumer = self._consumer
        if consumer is None:
            return
        for tp in consumer.assignment():
            high = consumer.highwater(tp)
            position = self._next.get(tp)
            if high is not None and position is not None:
                yield tp.topic, tp.partition, max(0, high - position)


class ConsumerLagCollector:
    """``rapport_inbox_consumer_lag_messages{topic,partition}``, read at scrape time."""

    def __init__(self, consumer: TopicConsumer) -> None:
        self._consumer = consumer

    def collect(self) -> Iterator[Metric]:
        """Yield the lag gauge."""
        family = GaugeMetricFamily(
            "rapport_inbox_consumer_lag_messages",
            "Records on the input partitions not yet in the inbox's database.",
            labels=["topic", "partition"],
        )
        for topic, partition, lag in self._consumer.lag():
            family.add_metric([topic, str(partition)], lag)
        yield family
