"""The one worker loop every Faust service runs: decode → pure handler → publish → await acks → ack.

A service supplies a :class:`Handler` (a pure function of one input :class:`Record`, plus the
client state it reads through a :class:`StateView`) and a few lines of wiring; the loop does the rest
the same way for every service:

1. take a batch of input records (``take_events``: up to ``batch_max`` or ``within`` seconds);
2. call the handler on each record in order; an exception becomes a ``processing_error`` dead letter
   (a raising faust agent acks, i.e. loses, its message);
3. publish every output and dead letter of the batch, in input order, and await **every** broker
   acknowledgement; a record the broker refuses is retried with backoff, and when it is refused
   every time the process exits with :data:`EXIT_PUBLISH_FAILED` *without acknowledging its input*,
   so the batch is processed again after a restart;
4. write the batch's state changes (each changed key once, encoded once, to the changelog partition
   of the input record that changed it): effects leave the process before the state that records
   them, so a crash in between replays the input and re-publishes the same deterministic ids
   (at-least-once);
5. count outcomes; returning from the batch lets faust acknowledge its input offsets.

Decoded state values stay in memory between batches (:class:`BatchState`, bounded, dropped when
partitions are revoked), so a client seen again soon is neither read nor decoded again.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar, cast

from prometheus_client import CollectorRegistry, Counter, Histogram

from shared.contracts.deadletters import Rejection, build_dead_letter
from shared.contracts.events import DeadLetter, utc_now
from shared.contracts.topics import DEAD_LETTER

log = logging.getLogger(__name__)

#: Exit code of a worker that stops itself because it could not publish a result: its offsets were
#: not committed, so the orchestrator restarts it and the input is processed again (nothing lost).
EXIT_PUBLISH_FAILED = 75

S = TypeVar("S")


@dataclass(frozen=True, slots=True)
class Record:
    """One input record as a handler sees it."""

    key: bytes | None
    value: bytes
    topic: str
    partition: int
    offset: int
    origin: Any = field(default=None, compare=False, repr=False)
    """The transport's own event (faust's ``Event``), for state writes that must name it."""


@dataclass(frozen=True, slots=True)
class Output:
    """One record to publish: a topic's base name (the loop adds the namespace), key and value;
    ``partition`` only where a record must reach a given partition (internal co-partitioned topics)."""

    topic: str
    key: bytes | None
    value: bytes
    partition: int | None = None


@dataclass(frozen=True, slots=True)
class Handled:
    """What a handler made of one input record.

    ``outcome`` is a bounded metric label. ``rejections`` become dead letters (``stage`` = the
    service) carrying ``correlation_id`` and ``clinic_id`` when the handler could read them, keyed by
    ``key`` (the subject's key, :func:`shared.contracts.keys.subject_key`) when the handler knows
    the subject, else by the input record's own key.
    """

    outcome: str
    outputs: tuple[Output, ...] = ()
    rejections: tuple[Rejection, ...] = ()
    correlation_id: object | None = None
    clinic_id: str | None = None
    key: bytes | None = None
    facts: tuple[Any, ...] = ()
    """Whatever the service's own metrics hook wants to count once the batch is published."""


class StateView(Protocol[S]):
    """A keyed state store seen from one batch: reads see the batch's own earlier writes."""

    def get(self, key: str) -> S | None:
        """The current value of ``key``, or ``None``."""

    def set(self, key: str, value: S, record: Record) -> None:
        """Change ``key`` because of ``record``; it is stored (in ``record``'s partition) after the
        batch is published."""

    def delete(self, key: str, record: Record) -> None:
        """Forget ``key`` (after the batch is published)."""


class Handler(Protocol):
    """A service's per-record logic: a pure function of the record, the state it reads and the clock."""

    def __call__(self, record: Record, state: Any, now: datetime) -> Handled:
        """Handle one record."""


class Publisher(Protocol):
    """Where outputs go: ``send`` enqueues one record and returns an awaitable of its broker ack."""

    async def send(
        self, topic: str, key: bytes | None, value: bytes, partition: int | None = None
    ) -> Awaitable[Any]:
        """Enqueue one record for ``topic`` (a base name)."""


@dataclass(frozen=True, slots=True)
class Sent:
    """Outputs enqueued together, and the awaitable of their broker acknowledgement (or the
    exception that kept them from being enqueued)."""

    outputs: Sequence[Output]
    ack: Awaitable[Any] | BaseException


class BatchPublisher(Publisher, Protocol):
    """A publisher that enqueues many outputs at once, grouped as the broker will receive them."""

    async def send_batch(self, outputs: Sequence[Output]) -> list[Sent]:
        """Enqueue every output (each partition's in their order); one :class:`Sent` per group."""


class TableStore(Protocol):
    """The durable side of a :class:`BatchState` (a faust table, or a dict in tests)."""

    def get(self, key: str) -> str | None:
        """The stored value of ``key``."""

    def put(self, key: str, value: str, record: Record) -> None:
        """Store ``value``, in (and to the changelog partition of) the partition ``record`` came from."""

    def delete(self, key: str, record: Record) -> None:
        """Delete ``key`` (a tombstone in ``record``'s changelog partition)."""


class BatchState(Generic[S]):
    """A :class:`StateView` over a :class:`TableStore` that keeps decoded values between batches.

    A value is decoded on its first read and then served from memory; a batch's changed keys are
    written back once each, encoded once, by :meth:`flush` (after the batch's outputs are
    acknowledged). Up to ``capacity`` values are kept between batches (least recently used first
    out; ``0`` keeps them for one batch only). Values must be immutable, or at least never changed in
    place by a handler: a cached value is handed out again in later batches.

    The durable copy stays the store's (a changelog-backed table): :meth:`invalidate` forgets every
    cached value when the worker's partitions are revoked, so after a rebalance every value is read
    (and a moved partition rebuilt from its changelog) again.
    """

    def __init__(
        self, store: TableStore, decode: Callable[[str], S], encode: Callable[[S], str], capacity: int = 0
    ) -> None:
        self.store = store
        self.decode = decode
        self.encode = encode
        self.capacity = capacity
        self._cache: OrderedDict[str, S | None] = OrderedDict()
        self._dirty: dict[str, Record] = {}
        self._forget_after_flush = False
        self.hits = 0
        """Reads answered from memory (for the service's metrics and the benchmarks)."""
        self.misses = 0
        """Reads that went to the store."""

    def get(self, key: str) -> S | None:
        """The current value of ``key``: the batch's own write, a cached value, else the store's."""
        cache = self._cache
        if key in cache:
            self.hits += 1
            cache.move_to_end(key)
            return cache[key]
        self.misses += 1
        raw = self.store.get(key)
        value = self.decode(raw) if raw is not None else None
        cache[key] = value
        return value

    def set(self, key: str, value: S, record: Record) -> None:
        """Change ``key`` within the batch."""
        self._cache[key] = value
        self._cache.move_to_end(key)
        self._dirty[key] = record

    def delete(self, key: str, record: Record) -> None:
        """Delete ``key`` within the batch (stored as a deletion by :meth:`flush`)."""
        self._cache[key] = None
        self._dirty[key] = record

    def flush(self) -> int:
        """Write every changed key to the store once; returns how many were written."""
        written = 0
        cache = self._cache
        for key, record in self._dirty.items():
            value = cache[key]
            if value is not None:
                self.store.put(key, self.encode(value), record)
            else:
                self.store.delete(key, record)
            written += 1
        self._dirty.clear()
        if self._forget_after_flush:
            self._forget_after_flush = False
            cache.clear()
        while len(cache) > self.capacity:
            cache.popitem(last=False)
        return written

    def invalidate(self) -> None:
        """Forget every cached value (partitions were revoked, or a handler failed half-way): values
        a batch in flight has changed are forgotten once that batch is flushed."""
        if self._dirty:
            self._forget_after_flush = True
            for key in [k for k in self._cache if k not in self._dirty]:
                del self._cache[key]
        else:
            self._cache.clear()

    def __len__(self) -> int:
        return len(self._cache)


@dataclass(frozen=True)
class LoopMetrics:
    """The metrics every worker loop keeps: ``rapport_<service>_<input>_total{outcome}``,
    ``_dead_letters_total{reason}``, ``_processing_seconds`` (per record) and ``_publish_seconds``
    (per batch: every output published and acknowledged)."""

    inputs: Counter
    dead_letters: Counter
    processing_seconds: Histogram
    publish_seconds: Histogram

    @classmethod
    def create(cls, registry: CollectorRegistry, service: str, inputs: str, what: str) -> LoopMetrics:
        """Register the loop's metrics for ``service``, whose input records are called ``inputs``."""
        prefix = f"rapport_{service}"
        return cls(
            inputs=Counter(
                f"{prefix}_{inputs}_total", f"{what} consumed, by outcome.", ["outcome"], registry=registry
            ),
            dead_letters=Counter(
                f"{prefix}_dead_letters_total",
                "Records sent to the dead-letter topic, by reason code.",
                ["reason"],
                registry=registry,
            ),
            processing_seconds=Histogram(
                f"{prefix}_processing_seconds",
                f"Time to handle one of the {what.lower()} (publishing is measured per batch).",
                buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
                registry=registry,
            ),
            publish_seconds=Histogram(
                f"{prefix}_publish_seconds",
                "Time to publish one batch's outputs and receive every broker acknowledgement.",
                buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
                registry=registry,
            ),
        )


class WorkerLoop:
    """Processes batches of input records for one service; see the module docstring for the order."""

    def __init__(
        self,
        *,
        stage: str,
        handler: Handler | Callable[[Record, Any, datetime], Handled],
        publisher: Publisher,
        metrics: LoopMetrics,
        state: BatchState[Any] | None = None,
        on_published: Callable[[Sequence[Handled]], None] | None = None,
        clock: Callable[[], datetime] = utc_now,
        exit_process: Callable[[int], Any] = os._exit,
        attempts: int = 5,
        backoff_s: float = 0.2,
    ) -> None:
        self.stage = stage
        self.handler = handler
        self.publisher = publisher
        self.metrics = metrics
        self.state = state
        self.on_published = on_published
        self.clock = clock
        self.exit_process = exit_process
        self.attempts = attempts
        self.backoff_s = backoff_s

    def handle(self, record: Record) -> Handled:
        """The handler's result for one record; an exception becomes a ``processing_error``."""
        started = time.perf_counter()
        try:
            handled = self.handler(record, self.state, self.clock())
        except Exception as exc:  # a bug must not ack-and-lose: dead-letter the input instead
            log.exception("handler failed", extra={"stage": self.stage, "error_type": type(exc).__name__})
            if self.state is not None:
                # It may have read (and, in breach of the contract, changed) cached values.
                self.state.invalidate()
            handled = Handled("rejected", rejections=(Rejection("processing_error", type(exc).__name__),))
        self.metrics.processing_seconds.observe(time.perf_counter() - started)
        return handled

    def dead_letters(self, record: Record, handled: Handled, now: datetime) -> list[DeadLetter]:
        """The dead-letter records of one handled input."""
        return [
            build_dead_letter(
                rejection,
                stage=self.stage,
                key=record.key,
                value=record.value,
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                now=now,
                correlation_id=handled.correlation_id,
                clinic_id=handled.clinic_id,
            )
            for rejection in handled.rejections
        ]

    async def process_batch(self, records: Sequence[Record]) -> list[Handled]:
        """Handle, publish (awaiting every ack), write state, count. Returns normally only when
        everything of the batch is durable; faust acknowledges the input offsets afterwards."""
        outgoing: list[Output] = []
        results: list[Handled] = []
        dead: list[DeadLetter] = []
        now = self.clock()
        for record in records:
            handled = self.handle(record)
            results.append(handled)
            outgoing.extend(handled.outputs)
            for letter in self.dead_letters(record, handled, now):
                dead.append(letter)
                key = handled.key if handled.key is not None else record.key
                outgoing.append(Output(DEAD_LETTER, key, letter.model_dump_json().encode()))
        started = time.perf_counter()
        await self.publish(outgoing)
        if self.state is not None:
            self.state.flush()
        self.metrics.publish_seconds.observe(time.perf_counter() - started)
        for handled in results:
            self.metrics.inputs.labels(handled.outcome).inc()
        for letter in dead:
            self.metrics.dead_letters.labels(letter.reason).inc()
            log_dead_letter(letter)
        if self.on_published is not None:
            self.on_published(results)
        return results

    async def publish(self, outputs: Sequence[Output]) -> None:
        """Send every output and wait for each broker acknowledgement; a refused record is retried
        with backoff and, when every attempt fails, the process exits without acking its input."""
        pending = list(outputs)
        delay = self.backoff_s
        for attempt in range(1, self.attempts + 1):
            if not pending:
                return
            failed: list[Output] = []
            for sent in await self.enqueue(pending):
                if isinstance(sent.ack, BaseException):
                    failed.extend(sent.outputs)
                    continue
                try:
                    await sent.ack
                except Exception as exc:  # the broker refused it: retry below
                    log.warning(
                        "produce failed", extra={"error_type": type(exc).__name__, "attempt": attempt}
                    )
                    failed.extend(sent.outputs)
            pending = failed
            if pending and attempt < self.attempts:
                await asyncio.sleep(delay)
                delay *= 2
        if pending:
            log.critical(
                "giving up on produce; stopping so the input is replayed after restart",
                extra={"stage": self.stage, "count": len(pending)},
            )
            logging.shutdown()
            self.exit_process(EXIT_PUBLISH_FAILED)
            raise SystemExit(EXIT_PUBLISH_FAILED)  # exit_process returned (a test double)

    async def enqueue(self, outputs: Sequence[Output]) -> list[Sent]:
        """Hand every output to the publisher: as batches when it takes them, else one by one."""
        send_batch = getattr(self.publisher, "send_batch", None)
        if send_batch is not None:
            try:
                return cast(list[Sent], await send_batch(outputs))
            except Exception as exc:  # nothing was enqueued: retry all of them
                return [Sent(outputs, exc)]
        sent: list[Sent] = []
        for out in outputs:
            try:
                ack = await self.publisher.send(out.topic, out.key, out.value, out.partition)
                sent.append(Sent((out,), ack))
            except Exception as exc:  # enqueue failed: retry below
                sent.append(Sent((out,), exc))
        return sent


def log_dead_letter(record: DeadLetter) -> None:
    """Log a published dead letter with allowlisted fields only."""
    log.info(
        "dead-lettered",
        extra={
            "stage": record.stage,
            "reason": record.reason,
            "topic": record.original_topic,
            "partition": record.original_partition,
            "offset": record.original_offset,
        },
    )


def record_of(event: Any) -> Record:
    """The :class:`Record` of a faust event read from a raw-bytes topic."""
    message = event.message
    value = message.value if isinstance(message.value, bytes) else b""
    key = message.key if isinstance(message.key, bytes) or message.key is None else None
    return Record(key, value, message.topic, message.partition, message.offset, event)
