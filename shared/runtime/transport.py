"""Rapport's faust transport: an idempotent producer, and no input record lost after a restart.

Registered as ``rapport-kafka://`` by :func:`register_transport`; :func:`create_faust_app` in
:mod:`shared.runtime.kafka` uses it together with :class:`SafeTableManager`. This module subclasses
internals of faust-streaming, aiokafka and mode-streaming, so ``pyproject.toml`` pins all three to the
exact versions read here (:data:`PINNED`) and a unit test fails when the installed ones differ.

The hard-crash loss (upstream: faust-streaming issue #596, aiokafka issue #1003)
---------------------------------------------------------------------------------
A worker restarted after ``kill -9`` reads its table's changelog with the consumer's flow *active*
(``faust/tables/recovery.py``). When that is done, faust's ``Recovery.on_recovery_completed``

1. resumes the input partitions while the flow is still active, so the fetcher starts putting
   prefetched input records into the stream buffers,
2. awaits ``perform_seek`` (a seek back to the committed offsets), during which those records
   are delivered and some of them processed,
3. resumes ``app.flow_control``, which clears every buffer created with ``clear_on_resume=True``
   (``mode/utils/queues.py``), dropping the records still buffered.

faust relies on the seek to read the dropped records again, but aiokafka's ``seek_to_committed`` only
seeks ``if offset and offset > 0``: for a group that has committed nothing (or 0) there is no seek,
the fetch position stays *after* the dropped records, and the next commit jumps the gap (the gap check
in ``faust/transport/consumer.py`` only runs for a non-zero committed offset). Their signals never
appear. The same order is used without tables (``Recovery._resume_streams``).

The fix has two halves; each alone still lost records in the fault experiments:

* :class:`SafeRecovery` keeps the input partitions paused — nothing of theirs can reach a stream
  buffer — until the seek is done, waits for the fetcher to finish handing over any record it had
  already taken, and then resumes the inputs and clears the buffers in one step with no suspension
  point in between, so no input record is fetched before the seek or dropped after it.
* :class:`RapportConsumerThread` rewinds every input partition without a committed offset (``None``
  or 0) to the start of its log when the reset policy is ``earliest``, which is what the missing
  seek should have done; stale prefetched records are discarded by that seek too.

``processing_guarantee="exactly_once"`` is no fix: the same recovery path runs, and under ``kill -9``
it delivered duplicates to ``read_committed`` readers.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Mapping
from typing import Any, cast

from faust.tables.manager import TableManager
from faust.tables.recovery import Recovery
from faust.transport import drivers
from faust.transport.drivers import aiokafka as driver
from faust.types import TP, Message

log = logging.getLogger(__name__)

#: The exact versions whose internals this module overrides (see the module docstring).
PINNED = {"faust-streaming": "0.15.3", "aiokafka": "0.14.0", "mode-streaming": "0.7.1"}

SCHEME = "rapport-kafka"

#: How long the broker may hold a worker's fetch that finds too little new data, by app id (set by
#: :func:`shared.runtime.kafka.create_faust_app` from ``*_FETCH_MAX_WAIT_S``). faust hard-codes
#: 1.5 s; measured at 200 sessions/s offered, that added about 1.3 s to the monitor's signals (p50
#: session → signal 1.36 s; with 100 ms, 94 ms).
FETCH_MAX_WAIT_MS: dict[str, int] = {}
DEFAULT_FETCH_MAX_WAIT_MS = 100

#: Test-only fault injection (read only when set; never set it in production): the restarted worker's
#: post-recovery seek back to the committed offsets is held open until input records have been
#: reaching the streams for this many seconds and some of them wait in a stream buffer while the
#: stream is busy (at most :data:`FAULT_HOLD_LIMIT_S` in all). That is the moment at which stock faust
#: clears the buffer and loses them; with the fix no input record can be in a buffer then.
SEEK_DELAY_ENV = "RAPPORT_FAULT_SEEK_DELAY_S"
FAULT_HOLD_LIMIT_S = 5.0


def _fault_seek_delay() -> float:
    raw = os.environ.get(SEEK_DELAY_ENV)
    return max(0.0, float(raw)) if raw else 0.0


def _input_records_buffered(app: Any) -> int:
    changelog_queue = app.tables.changelog_queue
    queues = list(getattr(app.flow_control, "_queues", ()))
    return sum(q.qsize() for q in queues if q is not changelog_queue)


class IdempotentProducer(driver.Producer):
    """faust-streaming turns idempotence on only inside exactly-once transactions; Rapport wants it on
    every produce so broker-side retries never duplicate a record."""

    def _settings_extra(self) -> Mapping[str, Any]:
        return {**super()._settings_extra(), "acks": "all", "enable_idempotence": True}


class RapportConsumerThread(driver.AIOKafkaConsumerThread):
    """The aiokafka consumer thread, with the seek that rewinds uncommitted input partitions."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        """faust's aiokafka consumer, with the app's :data:`FETCH_MAX_WAIT_MS` instead of faust's
        hard-coded 1.5 s."""
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS.get(self.app.conf.id, DEFAULT_FETCH_MAX_WAIT_MS)
        return consumer

    async def seek_to_committed(self) -> Mapping[TP, int]:
        """Seek every assigned partition to its committed offset; input partitions with none (or 0)
        to the start of their log when the reset policy is ``earliest``."""
        return cast(Mapping[TP, int], await self.call_thread(self._seek_to_committed_or_log_start))

    async def _seek_to_committed_or_log_start(self) -> Mapping[TP, int]:
        consumer = self._ensure_consumer()
        committed = cast(Mapping[TP, int], await consumer.seek_to_committed())
        if self.app.conf.consumer_auto_offset_reset != "earliest":
            return committed
        changelogs = self.app.tables.changelog_topics
        uncommitted = [tp for tp, offset in committed.items() if not offset and tp.topic not in changelogs]
        if uncommitted:
            starts = await consumer.beginning_offsets(uncommitted)
            for tp in uncommitted:
                consumer.seek(tp, starts[tp])
        return committed


class RapportConsumer(driver.Consumer):
    """The faust consumer: :class:`RapportConsumerThread`, and a way to wait until the fetcher holds
    no record it has taken but not yet handed to a stream."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.fetch_done = asyncio.Event()
        self.fetch_done.set()
        self.handover_done = asyncio.Event()
        self.handover_done.set()
        self._fault_delay = _fault_seek_delay()
        self._input_since: float | None = None
        super().__init__(*args, **kwargs)

    def _new_consumer_thread(self) -> driver.AIOKafkaConsumerThread:
        return RapportConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _getmany(self, active_partitions: set[TP] | None, timeout: float) -> Any:
        """Fetch for the partitions active *now*. faust hands aiokafka its live set of active
        partitions, which aiokafka reads again while it waits for records; when pauses empty that set
        meanwhile, aiokafka takes the empty set for "every partition" and returns (consumes) records
        of paused partitions, which faust then drops. A snapshot, and no fetch for an empty one."""
        if active_partitions is None:
            return await super()._getmany(None, timeout)
        snapshot = set(active_partitions)
        if not snapshot:
            return {}
        self.fetch_done.clear()
        try:
            return await super()._getmany(snapshot, timeout)
        finally:
            self.fetch_done.set()

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Message]]:
        """faust's fetch loop hands each record to the streams between two steps of this iterator;
        :attr:`handover_done` is clear exactly while one is being handed over."""
        async for item in super().getmany(timeout):
            if self._fault_delay and self._input_since is None and not self._is_changelog_tp(item[0]):
                self._input_since = asyncio.get_running_loop().time()
            self.handover_done.clear()
            try:
                yield item
            finally:
                self.handover_done.set()

    async def perform_seek(self) -> None:
        """Seek to the committed offsets (with the test-only fault of :data:`SEEK_DELAY_ENV`)."""
        if not self._fault_delay:
            await super().perform_seek()
            return
        log.warning("fault injection: holding the seek open", extra={"elapsed_s": self._fault_delay})
        self._input_since = None
        await super().perform_seek()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + FAULT_HOLD_LIMIT_S
        # Armed when records have sat in a buffer across two checks: the stream is busy (awaiting the
        # broker's acks), and it takes one loop turn per record to drain them, so some are still
        # there when the seek returns. Several records make that near certain; one will do late on.
        seen = 0
        while seen < 2 and loop.time() < deadline:
            await asyncio.sleep(0.002)
            since = self._input_since
            flowing = since is not None and loop.time() - since >= self._fault_delay
            wanted = 3 if loop.time() < deadline - FAULT_HOLD_LIMIT_S / 2 else 1
            seen = seen + 1 if flowing and _input_records_buffered(self.app) >= wanted else 0
        log.warning("fault injection: seek returns", extra={"count": seen})


class IdempotentTransport(driver.Transport):
    """The aiokafka transport with :class:`IdempotentProducer` and :class:`RapportConsumer`."""

    Producer = IdempotentProducer
    Consumer = RapportConsumer


class SafeRecovery(Recovery):
    """faust's table recovery with the input partitions resumed only after the seek (see the module
    docstring)."""

    async def on_recovery_completed(self, generation_id: int = 0) -> None:
        """Active tables are recovered: seek the inputs, then let them flow."""
        app = self.app
        self.log.info("Restore complete!")
        await app.on_rebalance_complete.send()
        self._set_recovery_ended()
        pending = [
            asyncio.ensure_future(
                table.on_recovery_completed(self.actives_for_table[table], self.standbys_for_table[table])
            )
            for table in self.tables.values()
        ]
        if pending:
            await asyncio.wait(pending)
        if app.consumer_generation_id != generation_id:
            self.log.warning("Recovery rebalancing again")
            return
        await self._seek_then_resume_inputs()
        self.tables.on_actives_ready()
        if not app.assignor.assigned_standbys():
            self.tables.on_standbys_ready()
        app.on_rebalance_end()
        self.log.info("Worker ready")

    async def _resume_streams(self, generation_id: int = 0) -> None:
        """The path without tables (the scoring service): the same order."""
        app = self.app
        await app.on_rebalance_complete.send()
        if app.consumer_generation_id != generation_id:
            self.log.warning("Recovery rebalancing again")
            return
        await self._seek_then_resume_inputs()
        self.tables.on_actives_ready()
        self.tables.on_standbys_ready()
        app.on_rebalance_end()
        self.log.info("Worker ready")

    async def _seek_then_resume_inputs(self) -> None:
        app = self.app
        consumer = app.consumer
        assignment = consumer.assignment()
        inputs = {tp for tp in assignment if not self._is_changelog_tp(tp)}
        # Inputs are paused from assignment on; keep them so while seeking. A fetch begun before the
        # pause may still consume (and faust drop) their records, and a record taken before it may
        # still be on its way to a stream: wait for both, so the seek is the last word on positions.
        consumer.pause_partitions(inputs)
        for settled in ("fetch_done", "handover_done"):
            event = getattr(consumer, settled, None)
            if event is not None:
                await self._wait(event.wait(), timeout=app.conf.broker_request_timeout)
        if assignment:
            self.log.info("Seek stream partitions to committed offsets.")
            await self._wait(consumer.perform_seek(), timeout=app.conf.broker_request_timeout)
        # From here to the end of the block there is no await: the fetcher cannot put an input record
        # into a stream buffer before flow_control.resume() clears the buffers.
        consumer.resume_partitions(inputs)
        self.completed.set()
        app.flow_control.resume()
        consumer.resume_flow()
        await cast(Any, app)._fetcher.maybe_start()


class SafeTableManager(TableManager):
    """faust's table manager with :class:`SafeRecovery`."""

    @property
    def recovery(self) -> Recovery:
        """The recovery service (created once)."""
        if self._recovery is None:
            self._recovery = SafeRecovery(self.app, self, beacon=self.beacon, loop=self.loop)
        return self._recovery


def register_transport() -> str:
    """Register :class:`IdempotentTransport` under ``rapport-kafka://``; returns the scheme."""
    if SCHEME not in drivers.TRANSPORTS.aliases:
        drivers.TRANSPORTS.aliases[SCHEME] = f"{__name__}:IdempotentTransport"
    return SCHEME
