"""The Faust side of every worker: settings, the app factory (idempotent producer), raw topics and
a table whose writes name their changelog partition.

Nothing here connects at import time; faust is imported inside the functions that need it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.contracts.topics import topic_name
from shared.runtime.startup import Topology
from shared.runtime.worker import Output, Sent

if TYPE_CHECKING:  # pragma: no cover
    import faust

log = logging.getLogger(__name__)


#: Largest record batch the producer builds (faust's default is 16 KiB).
PRODUCER_BATCH_BYTES = 512 * 1024

#: Most (topic, partition count, key) → partition answers :class:`FaustPublisher` remembers.
PARTITION_MEMO_SIZE = 100_000


class WorkerSettings(BaseSettings):
    """What every Rapport Faust worker reads from its environment; each service subclasses it with
    its own ``RAPPORT_<NAME>_`` prefix and defaults."""

    model_config = SettingsConfigDict(frozen=True)

    bootstrap_servers: str = "127.0.0.1:9092"
    app_id: str = "rapport"
    """Consumer group and internal-topic prefix; one per service."""
    topic_namespace: str = ""
    """Prefix of every topic name; empty in production, unique per test run."""
    store: str = "memory://"
    data_dir: str = ".faust-data"
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    batch_max: int = 500
    """Most input records handled and published as one batch."""
    batch_within_s: float = 0.05
    """Longest wait to fill a batch; bounds the latency a batch adds at low rates."""
    state_cache_size: int = 5_000
    """Most decoded state values (clients) kept in memory between batches; ``0``: one batch only. A
    monitor client with a long history is about 27 KB decoded (a 7 KB document): 5,000 ≈ 130 MB."""
    fetch_max_wait_s: float = 0.1
    """How long the broker may hold a fetch that finds no new record (faust hard-codes 1.5 s, which
    delayed records by up to that much at low rates)."""
    session_timeout_s: float = 30.0
    """How long the group waits for a silent (crashed) worker before giving its partitions away."""
    commit_interval_s: float = 2.8
    """How often processed input offsets are committed (a restart replays at most this much)."""
    broker_grace_s: float = 15.0
    """How long the broker may be unreachable before ``/readyz`` answers 503."""
    startup_timeout_s: float = 60.0
    """How long a starting worker waits for the broker before it gives up (exit 69)."""
    log_level: str = "INFO"


def create_faust_app(settings: WorkerSettings, partitions: int) -> faust.App:
    """A faust App with Rapport's defaults: the ``rapport-kafka://`` transport (idempotent producer, no
    input record lost after a restart), earliest offsets, no autodiscovery.

    ``partitions`` is the partition count of the worker's input topic as the broker reports it
    (:func:`shared.runtime.startup.resolve_partitions`); topics and tables it declares get the same.
    """
    import faust

    from shared.runtime.transport import FETCH_MAX_WAIT_MS, SafeTableManager, register_transport

    scheme = register_transport()
    FETCH_MAX_WAIT_MS[settings.app_id] = max(1, round(settings.fetch_max_wait_s * 1000))
    brokers = ";".join(f"{scheme}://{host}" for host in settings.bootstrap_servers.split(","))
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)  # faust creates only the last level
    return faust.App(
        settings.app_id,
        broker=brokers,
        store=settings.store,
        # One folder per app id: faust would otherwise put every app's local table files in the
        # same place, and a second app started there finds the first one's offsets.
        datadir=f"{settings.data_dir}/{settings.app_id}",
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_enabled=True,
        web_in_thread=False,
        autodiscover=False,
        producer_acks=-1,
        # One record batch per partition and worker batch (FaustPublisher.send_batch): room for a
        # whole batch's outputs (500 sessions ≈ 1 MB over three partitions) in a few record
        # batches, each well below the broker's default 1 MiB message.max.bytes.
        producer_max_batch_size=PRODUCER_BATCH_BYTES,
        consumer_auto_offset_reset="earliest",
        topic_partitions=partitions,
        topic_replication_factor=1,
        topic_allow_declare=True,
        table_cleanup_interval=30.0,
        broker_session_timeout=settings.session_timeout_s,
        broker_commit_interval=settings.commit_interval_s,
        # Input partitions resume only after the post-recovery seek (shared/runtime/transport.py).
        TableManager=SafeTableManager,
    )


def raw_topic(app: Any, base: str, namespace: str = "") -> Any:
    """A faust topic of raw bytes keys and values: decoding and validation happen in our handlers,
    where a bad record becomes a dead letter instead of a codec error inside faust."""
    return app.topic(
        topic_name(base, namespace),
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )


class FaustPublisher:
    """The worker loop's :class:`~shared.runtime.worker.BatchPublisher` on a faust app: raw-bytes
    topics by base name, namespaced, sent by faust's (idempotent, ``acks=all``) producer.

    A batch of outputs goes out through the producer's *batch API* (aiokafka's ``create_batch`` /
    ``send_batch``, reached through faust's producer): one record batch per partition, one
    acknowledgement each. faust's ``Topic.send`` passes every record through
    ``app.maybe_start_producer()``, whose stampede guard yields to the event loop up to three times
    per record; with ``linger_ms=0`` the sender then ships a produce request every two or three
    records (measured: 60,000 records in 13,752 requests, against about 1,100 this way) and
    publishing took half the scoring worker's time. Partitions are chosen by the producer's own
    partitioner, so a key lands where ``Topic.send`` would have put it.
    """

    def __init__(self, app: Any, namespace: str = "") -> None:
        self._app = app
        self._namespace = namespace
        self._topics: dict[str, Any] = {}
        self._names: dict[str, str] = {}
        self._known: set[str] = set()
        self._partitions: dict[tuple[str, int, bytes], int] = {}

    def topic(self, base: str) -> Any:
        """The raw topic of ``base`` (declared once)."""
        found = self._topics.get(base)
        if found is None:
            found = self._topics[base] = raw_topic(self._app, base, self._namespace)
        return found

    def name(self, base: str) -> str:
        """The physical name of topic ``base``."""
        found = self._names.get(base)
        if found is None:
            found = self._names[base] = topic_name(base, self._namespace)
        return found

    async def _producer(self) -> Any:
        """The aiokafka producer inside faust's producer (started if it was not)."""
        producer = await self._app.maybe_start_producer()
        return producer._ensure_producer()

    async def send(self, topic: str, key: bytes | None, value: bytes, partition: int | None = None) -> Any:
        """Enqueue one record; returns the future of its broker acknowledgement."""
        producer = await self._producer()
        return await producer.send(self.name(topic), value, key=key, partition=partition)

    async def send_batch(self, outputs: Sequence[Output]) -> list[Sent]:
        """Enqueue ``outputs`` as one record batch per partition (more when one fills up), in their
        order within each partition; one :class:`~shared.runtime.worker.Sent` per record batch."""
        producer = await self._producer()
        groups: dict[tuple[str, int], list[Output]] = {}
        counts: dict[str, int] = {}
        memo = self._partitions
        for out in outputs:
            name = self.name(out.topic)
            if name not in self._known:
                await producer.client._wait_on_metadata(name)
                self._known.add(name)
            partition = out.partition
            if partition is None:
                partition = self._partition_of(producer, name, out, counts, memo)
            groups.setdefault((name, partition), []).append(out)
        sent: list[Sent] = []
        for (name, partition), outs in groups.items():
            batch = producer.create_batch()
            members: list[Output] = []
            for out in outs:
                if batch.append(timestamp=None, key=out.key, value=out.value, headers=[]) is None:
                    sent.append(await self._submit(producer, batch, name, partition, members))
                    batch, members = producer.create_batch(), []
                    # An empty batch always takes its first record, however large.
                    batch.append(timestamp=None, key=out.key, value=out.value, headers=[])
                members.append(out)
            sent.append(await self._submit(producer, batch, name, partition, members))
        return sent

    @staticmethod
    def _partition_of(
        producer: Any, name: str, out: Output, counts: dict[str, int], memo: dict[tuple[str, int, bytes], int]
    ) -> int:
        """The producer's partitioner's choice for ``out``. Keyed outputs are remembered per topic,
        partition count and key: the default partitioner (murmur2 in pure Python) is a fair share of
        a worker's time, and a client's key comes back batch after batch."""
        if out.key is None:
            return int(producer._partition(name, None, None, None, None, out.value))
        count = counts.get(name)
        if count is None:
            count = counts[name] = len(producer._metadata.partitions_for_topic(name) or ())
        found = memo.get((name, count, out.key))
        if found is None:
            if len(memo) >= PARTITION_MEMO_SIZE:
                memo.clear()
            found = memo[(name, count, out.key)] = int(
                producer._partition(name, None, None, None, out.key, out.value)
            )
        return found

    @staticmethod
    async def _submit(producer: Any, batch: Any, name: str, partition: int, members: list[Output]) -> Sent:
        # Closed: a record sent one by one (``send``) to the same partition starts its own batch
        # instead of joining this one.
        batch.close()
        try:
            return Sent(members, await producer.send_batch(batch, name, partition=partition))
        except Exception as exc:  # not enqueued (closed, timed out): the loop retries these records
            return Sent(members, exc)


class FaustTableStore:
    """The worker loop's :class:`~shared.runtime.worker.TableStore` on a faust table of ``str``.

    faust picks a table write's changelog partition (and, for rocksdb, its local partition store)
    from the *current event*; after a batch that is the batch's last event, not the one that changed
    the key. :meth:`put` makes the record that changed the key the current event for the write.
    """

    def __init__(self, table: Any) -> None:
        self.table = table

    def get(self, key: str) -> str | None:
        """The stored value of ``key``."""
        value = self.table.get(key)
        return value if isinstance(value, str) else None

    def put(self, key: str, value: str, record: Any) -> None:
        """Store ``value`` in the partition of ``record`` (a :class:`~shared.runtime.worker.Record`)."""
        with _as_current(record):
            self.table[key] = value

    def delete(self, key: str, record: Any) -> None:
        """Delete ``key`` (a tombstone in the changelog partition of ``record``)."""
        with _as_current(record):
            if key in self.table:
                del self.table[key]


@contextlib.contextmanager
def _as_current(record: Any) -> Iterator[None]:
    """Make ``record``'s faust event the current event (faust reads the partition from it)."""
    import weakref

    from faust.streams import _current_event

    token = _current_event.set(weakref.ref(record.origin))
    try:
        yield
    finally:
        _current_event.reset(token)


def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2, as the Java client, aiokafka and
    kafka-python compute it) puts ``key`` in."""
    from aiokafka.partitioner import murmur2

    return int(murmur2(key) & 0x7FFFFFFF) % partitions


def create_table(app: Any, name: str, partitions: int) -> Any:
    """A changelog-backed table of ``str`` keys and values (faust's json codec: the one pairing it
    applies consistently to the store, the changelog and recovery; a raw-bytes schema is ignored on
    recovery)."""
    return app.Table(name, partitions=partitions, key_type=str, value_type=str)


def attach_loop(app: Any, source: Any, loop: Any, *, name: str, batch_max: int, within_s: float) -> Any:
    """Run ``loop`` (a :class:`~shared.runtime.worker.WorkerLoop`) as the agent ``name`` on ``source``.

    ``concurrency=1``: per-client order matters, and faust-streaming can commit past unprocessed
    offsets with higher concurrency. ``take_events`` acknowledges a batch's input offsets only after
    the body returns, and the loop returns only when every output of the batch is acknowledged.
    The loop's cached state is dropped whenever partitions are revoked or assigned and when the
    rebalance is complete: what the worker owns afterwards is read again from the table (rebuilt
    from its changelog where it moved).
    """
    from shared.runtime.worker import record_of

    async def agent(stream: Any) -> None:
        async for events in stream.take_events(batch_max, within=within_s):
            await loop.process_batch([record_of(e) for e in events])

    if loop.state is not None:

        async def forget(sender: Any, *args: Any, **kwargs: Any) -> None:
            loop.state.invalidate()

        forget.__name__ = f"{name}_forget_state"
        app.on_partitions_revoked.connect(forget, weak=False)
        app.on_partitions_assigned.connect(forget, weak=False)
        # Again once the assigned partitions' tables are rebuilt from their changelogs: nothing read
        # while they were recovering is kept.
        app.on_rebalance_complete.connect(forget, weak=False)

    agent.__name__ = agent.__qualname__ = name
    return app.agent(source, name=name, concurrency=1)(agent)


def use_fast_loop() -> None:
    """Run the worker (and faust's consumer thread) on uvloop: the event loop's own overhead per
    callback is a fair share of a worker's time when every record is a few awaits."""
    import asyncio

    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def freeze_startup_objects() -> None:
    """Move everything alive after start-up (modules, schemas, registries, faust's services) out of
    the garbage collector's reach: its full passes would otherwise scan them again and again while
    the worker allocates short-lived events, and a young-generation pass runs every 700
    allocations; 10,000 keeps those passes rare without letting cycles pile up."""
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


def run_worker(
    settings: WorkerSettings, topology: Topology, build: Callable[[int], faust.App], setting_prefix: str
) -> None:
    """Check the worker's environment, build its app and run it with JSON logs until SIGTERM/SIGINT.

    Before faust starts: the web port must be free and every topic of ``topology`` must have the
    partition count of its input topic, read from the broker (``build`` gets it). A failed check is
    one clear log line and exit :data:`~shared.runtime.startup.EXIT_CONFIG` (or ``EXIT_UNAVAILABLE``
    when no broker answered), never a crash loop. ``setting_prefix`` (``RAPPORT_SCORING_``...) names
    settings in those messages. The worker runs on uvloop, with the objects alive after start-up
    frozen out of the garbage collector (:func:`freeze_startup_objects`).
    """
    import logging.config

    import faust

    from shared.runtime.logs import logging_config
    from shared.runtime.startup import StartupError, check_port_free, resolve_partitions

    logging.config.dictConfig(logging_config(settings.log_level))
    try:
        check_port_free(settings.web_host, settings.web_port, f"{setting_prefix}WEB_PORT")
        partitions = resolve_partitions(
            settings.bootstrap_servers,
            topology,
            namespace=settings.topic_namespace,
            app_id=settings.app_id,
            timeout_s=settings.startup_timeout_s,
        )
    except StartupError as exc:
        log.critical("cannot start: %s", str(exc), extra={"reason": "startup"})
        logging.shutdown()
        raise SystemExit(exc.exit_code) from None
    log.info("topics checked", extra={"topic": topology.input, "count": partitions})
    use_fast_loop()
    app = build(partitions)
    previous = app.on_startup_finished

    async def started() -> None:
        if previous is not None:
            await previous()
        freeze_startup_objects()

    app.on_startup_finished = started
    worker = faust.Worker(
        app,
        loglevel=settings.log_level,
        logging_config=logging_config(settings.log_level),
        redirect_stdouts=False,
    )
    worker.execute_from_commandline()
