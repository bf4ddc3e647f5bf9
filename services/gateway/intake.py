"""Intake: produce accepted events once, answer 202 only after the broker acknowledged them.

Per event id (per clinic) at most one delivery is in flight. A request waits for its deliveries up to
a deadline and answers 503 when they are not acknowledged by then; the delivery goes on (the
idempotent producer retries it), and when it succeeds it is written to the ledger, so a retry of the
same event joins the running delivery or is answered from the ledger — it is never sent a second
time by this process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from services.gateway.handlers import fingerprint, request_fingerprint
from services.gateway.metrics import GatewayMetrics
from services.gateway.store import GatewayStore
from shared.contracts.events import SessionCompleted
from shared.runtime.producer import AsyncProducer, ProduceUnavailable

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Prepared:
    """A validated event and, for FHIR intake, where its scores should point back to."""

    event: SessionCompleted
    encounter: str | None = None
    derived_from: dict[str, Any] | None = None


class Conflict(Exception):
    """The event id or ``Idempotency-Key`` was already used for different content (422)."""


class Unavailable(Exception):
    """Not every event was acknowledged by the broker within the deadline (503)."""


class Intake:
    """Submits validated events for one clinic; see the module docstring."""

    def __init__(
        self,
        *,
        producer: AsyncProducer,
        store: GatewayStore,
        topic: str,
        metrics: GatewayMetrics,
        ack_timeout_s: float,
        max_pending: int,
    ) -> None:
        self.producer = producer
        self.store = store
        self.topic = topic
        self.metrics = metrics
        self.ack_timeout_s = ack_timeout_s
        self.max_pending = max_pending
        self._inflight: dict[tuple[str, str], tuple[str, asyncio.Future[Any]]] = {}

    @property
    def pending(self) -> int:
        """Deliveries handed to the producer and not finished."""
        return len(self._inflight)

    async def submit(
        self, clinic_id: str, route: str, prepared: Sequence[Prepared], idempotency_key: str | None
    ) -> bool:
        """Make every event of one request durable on the topic, once.

        Returns True when the request was answered before (a replay). Raises :class:`Conflict` or
        :class:`Unavailable`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.ack_timeout_s
        wires = [p.event.model_dump_json().encode() for p in prepared]
        prints = [fingerprint(wire) for wire in wires]
        whole = request_fingerprint(route, prints)
        if idempotency_key is not None:
            seen = self.store.idempotency_key(clinic_id, idempotency_key)
            if seen is not None:
                if seen != whole:
                    raise Conflict("this Idempotency-Key was used for a different request")
                self.metrics.events.labels("replayed").inc(len(prepared))
                return True
        # Decide for every event first, so a conflict anywhere in the request produces nothing.
        waits: list[asyncio.Future[Any]] = []
        new: list[tuple[Prepared, bytes, str]] = []
        replayed = 0
        for item, wire, print_ in zip(prepared, wires, prints, strict=True):
            event_id = str(item.event.id)
            row = self.store.produced(clinic_id, event_id)
            if row is not None:
                if row.fingerprint != print_:
                    raise Conflict("this event id was already accepted with different content")
                replayed += 1
                continue
            running = self._inflight.get((clinic_id, event_id))
            if running is not None:
                if running[0] != print_:
                    raise Conflict("this event id is being accepted with different content")
                waits.append(running[1])
                continue
            new.append((item, wire, print_))
        if len(self._inflight) + len(new) > self.max_pending:
            raise Unavailable("too many deliveries awaiting the broker")
        for item, wire, print_ in new:
            try:
                ack = await self.producer.enqueue(
                    self.topic, item.event.data.client_id.encode(), wire, max(0.001, deadline - loop.time())
                )
            except ProduceUnavailable:
                self.metrics.events.labels("failed").inc()
                raise Unavailable("the producer could not take the event") from None
            self._track(clinic_id, str(item.event.id), print_, item, ack)
            waits.append(ack)
        if waits:
            _, not_done = await asyncio.wait(waits, timeout=max(0.0, deadline - loop.time()))
            failed = [f for f in waits if f.done() and (f.cancelled() or f.exception() is not None)]
            if not_done or failed:
                self.metrics.events.labels("failed").inc(len(not_done) + len(failed))
                raise Unavailable("the broker did not acknowledge in time")
        if idempotency_key is not None:
            self.store.record_idempotency_key(clinic_id, idempotency_key, whole)
        if replayed:
            self.metrics.events.labels("replayed").inc(replayed)
        return replayed == len(prepared)

    def _track(
        self, clinic_id: str, event_id: str, print_: str, item: Prepared, ack: asyncio.Future[Any]
    ) -> None:
        """Keep the delivery findable by event id until the broker answers; then write the ledger.

        The callback is registered before any request awaits ``ack``, so it runs first: when a
        request sees the acknowledgement, the ledger row is already written."""
        key = (clinic_id, event_id)
        self._inflight[key] = (print_, ack)
        self.metrics.pending.set(len(self._inflight))
        started = time.perf_counter()

        def acked(f: asyncio.Future[Any]) -> None:
            self._inflight.pop(key, None)
            self.metrics.pending.set(len(self._inflight))
            if f.cancelled() or f.exception() is not None:
                error = "CancelledError" if f.cancelled() else type(f.exception()).__name__
                log.warning("delivery failed", extra={"error_type": error})
                return
            delivered = f.result()  # topic, partition and offset of the stored record
            self.metrics.ack_seconds.observe(time.perf_counter() - started)
            self.store.record_produced(
                clinic_id,
                event_id,
                print_,
                delivered.partition,
                delivered.offset,
                encounter=item.encounter,
                derived_from=item.derived_from,
            )
            self.metrics.events.labels("produced").inc()

        ack.add_done_callback(acked)

    async def close(self, timeout_s: float) -> None:
        """Wait (bounded) for deliveries still in flight, so their ledger rows are written."""
        acks = [f for _, f in self._inflight.values()]
        if acks:
            with contextlib.suppress(Exception):
                await asyncio.wait(acks, timeout=timeout_s)
