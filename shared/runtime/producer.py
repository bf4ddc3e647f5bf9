"""A plain asyncio Kafka producer for services that are not Faust workers (the gateway).

Idempotent with ``acks=all``: the broker acknowledges a record only once every in-sync replica has
it, and the producer's own retries never duplicate it. :meth:`AsyncProducer.enqueue` hands a record
to the producer within a deadline and returns the future of its acknowledgement; the caller decides
how long to wait for it. aiokafka retries an idempotent batch until it is delivered, so a future
that outlives a caller's deadline may still succeed later: callers keep it rather than send again.

A delivery that fails for good (a batch expired while the partition had no leader, an
out-of-order sequence after a broker restart…) leaves an idempotent producer's sequence numbers
broken: every later record to that partition would fail too. So a failed delivery replaces the
producer with a new one (a new producer id); until it is connected, :meth:`AsyncProducer.enqueue`
refuses records and callers answer "unavailable".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


class ProduceUnavailable(Exception):
    """The record could not be handed to the producer (not connected, no metadata, buffer full)."""


@dataclass(frozen=True, slots=True)
class Delivered:
    """Where the broker stored an acknowledged record."""

    topic: str
    partition: int
    offset: int


class AsyncProducer:
    """aiokafka's ``AIOKafkaProducer`` with Rapport's settings, started in the background.

    ``start`` returns at once and keeps trying to connect until it succeeds, so a service can come
    up (and answer 503) while the broker is down; :attr:`started` says when records can be sent.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        client_id: str = "rapport",
        request_timeout_s: float = 10.0,
        linger_ms: int = 0,
        max_batch_bytes: int = 256 * 1024,
        retry_every_s: float = 1.0,
    ) -> None:
        self._bootstrap = bootstrap_servers
        self._client_id = client_id
        self._request_timeout_ms = int(request_timeout_s * 1000)
        self._linger_ms = linger_ms
        self._max_batch_bytes = max_batch_bytes
        self._retry_every_s = retry_every_s
        self._producer: Any = None
        self._connector: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def started(self) -> bool:
        """True once the producer is connected and accepts records."""
        return self._producer is not None

    def config(self) -> dict[str, Any]:
        """The ``AIOKafkaProducer`` settings (idempotent, ``acks=all``, bounded request time, large
        batches)."""
        return {
            "bootstrap_servers": self._bootstrap.split(","),
            "client_id": self._client_id,
            "acks": "all",
            "enable_idempotence": True,
            "linger_ms": self._linger_ms,
            # An idempotent aiokafka producer has one request in flight per broker, carrying one
            # batch per partition: the batch size caps records per round trip (16 KiB by default,
            # about 18 sessions), so under concurrent load it is what bounds throughput.
            "max_batch_size": self._max_batch_bytes,
            "request_timeout_ms": self._request_timeout_ms,
        }

    async def start(self) -> None:
        """Begin connecting in the background (retrying every ``retry_every_s``)."""
        if self._connector is None:
            self._connector = asyncio.create_task(self._connect(), name="producer-connect")

    async def wait_started(self, timeout_s: float) -> bool:
        """Wait (bounded) until the producer is connected; returns :attr:`started`."""
        if self._connector is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._connector), timeout_s)
        return self.started

    async def _replace(self, broken: Any) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(broken.stop(), self._request_timeout_ms / 1000)
        if not self._stopping:
            await self._connect()

    def _discard(self, producer: Any, exc: BaseException) -> None:
        """Replace ``producer`` after a failed delivery (once, if it is still the current one)."""
        if self._producer is not producer or self._stopping:
            return
        self._producer = None
        log.warning("delivery failed; replacing the producer", extra={"error_type": type(exc).__name__})
        self._connector = asyncio.create_task(self._replace(producer), name="producer-replace")

    async def _connect(self) -> None:
        from aiokafka import AIOKafkaProducer

        attempt = 0
        while True:
            attempt += 1
            producer = AIOKafkaProducer(**self.config())
            try:
                await producer.start()
            except Exception as exc:  # broker unreachable: keep trying, the service stays not-ready
                with contextlib.suppress(Exception):
                    await producer.stop()
                if attempt == 1 or attempt % 30 == 0:
                    log.warning(
                        "producer cannot connect yet",
                        extra={"error_type": type(exc).__name__, "attempt": attempt},
                    )
                await asyncio.sleep(self._retry_every_s)
                continue
            self._producer = producer
            log.info("producer connected", extra={"attempt": attempt})
            return

    async def enqueue(
        self, topic: str, key: bytes | None, value: bytes, timeout_s: float
    ) -> asyncio.Future[Any]:
        """Hand one record to the producer within ``timeout_s``; returns the future of its broker
        acknowledgement (resolving to metadata with ``topic``, ``partition`` and ``offset``, like
        :class:`Delivered`). Raises :class:`ProduceUnavailable` when the record could not be handed
        over: then it will never be sent."""
        producer = self._producer
        if producer is None:
            raise ProduceUnavailable("producer not connected")
        try:
            # Cancelling send() before it returns drops the record (aiokafka's contract), so a
            # timeout here means "not sent".
            async with asyncio.timeout(timeout_s):
                future: asyncio.Future[Any] = await producer.send(topic, value=value, key=key)
        except TimeoutError:
            raise ProduceUnavailable("timed out handing the record to the producer") from None
        except Exception as exc:
            raise ProduceUnavailable(type(exc).__name__) from None
        future.add_done_callback(lambda f: self._check(f, producer))
        return future

    def _check(self, future: asyncio.Future[Any], producer: Any) -> None:
        if not future.cancelled() and future.exception() is not None:
            self._discard(producer, future.exception())  # type: ignore[arg-type]

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Flush what is buffered (bounded) and close."""
        self._stopping = True
        if self._connector is not None and not self._connector.done():
            self._connector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._connector
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                await asyncio.wait_for(producer.stop(), timeout_s)
            except TimeoutError:
                log.warning("producer did not flush in time", extra={"elapsed_s": timeout_s})
