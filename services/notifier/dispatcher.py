"""The notifier's timer and delivery side.

The stateful side stores every delivery job and deadline in its changelog-backed tables; this side
keeps an in-memory index of the states that have something due (rebuilt from the tables whenever
this worker's partitions change, so a restarted worker fires what fell due while it was down),
and every ``dispatch_interval_s``:

* starts each due delivery attempt (bounded per endpoint, each attempt bounded by a timeout, so a
  slow or dead endpoint never holds up another clinician's alerts), then publishes the attempt's
  result to the internal topic, to the state's own partition;
* publishes a :class:`~shared.alerting.feedback.DueTick` for a state whose escalation deadline, hold
  or digest time has come.

The stateful side takes those records like any input, so every decision is made — and stored —
in stream processing. A crash after a delivery and before its result is stored repeats the attempt
after restart with the same ``webhook-id`` (at-least-once).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from services.notifier.channels import ChannelRouter, Outbound
from services.notifier.directory import DirectoryCache
from services.notifier.handlers import Facts
from services.notifier.metrics import NotifierMetrics
from shared.alerting import digest as digests
from shared.alerting import policy
from shared.alerting.feedback import AttemptResult, DueTick, InternalRecord
from shared.alerting.messages import alert_message, digest_message, webhook_body
from shared.alerting.retry import AttemptOutcome
from shared.alerting.state import AlertRecord, ClientAlerts, DeliveryJob, DigestState
from shared.contracts.alerts import ChatChannel, ClinicDirectory, EmailChannel, WebhookChannel
from shared.contracts.canary import is_canary
from shared.contracts.topics import NOTIFIER_CLIENT, NOTIFIER_DIGEST

log = logging.getLogger(__name__)

#: An attempt whose result has not come back after this long may be started again.
RELAUNCH_AFTER_S = 120.0
#: A due tick not yet answered by a state change is sent again after this long.
RETICK_AFTER_S = 30.0


@dataclass
class _Launch:
    attempt: int
    at: float


class Dispatcher:
    """Finds what is due in the states this worker owns and acts on it."""

    def __init__(
        self,
        *,
        publisher: Any,
        router: ChannelRouter,
        directory: DirectoryCache,
        metrics: NotifierMetrics,
        inbox_url: str,
        partitions: int,
        endpoint_concurrency: int,
        canary_clinic: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.publisher = publisher
        self.router = router
        self.directory = directory
        self.metrics = metrics
        self.inbox_url = inbox_url
        self.partitions = partitions
        self.endpoint_concurrency = endpoint_concurrency
        self.canary_clinic = canary_clinic
        self.clock = clock
        self.index: dict[tuple[str, str], ClientAlerts | DigestState] = {}
        self.critical_since: dict[str, float] = {}
        self.assigned: frozenset[int] | None = None
        self._launched: dict[str, _Launch] = {}
        self._ticked: dict[tuple[str, str], tuple[float, float]] = {}
        self._limits: dict[str, asyncio.Semaphore] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.disabled: dict[str, int] = {}
        """Endpoints that answered 410 Gone, with the clinic's directory version at the time: nothing
        is sent to them until the clinic's directory entry changes."""

    # ------------------------------------------------------------------ index

    def rebuild(self, assigned: frozenset[int], tables: dict[str, Iterable[tuple[str, str]]]) -> None:
        """Index every state of the assigned partitions (after start-up and each rebalance)."""
        self.index.clear()
        self.critical_since.clear()
        self._ticked.clear()
        self.assigned = assigned
        for target, items in tables.items():
            for key, raw in items:
                state = _decode(target, raw)
                if state is not None and state.partition in assigned:
                    self._track(target, key, state)
        log.info("dispatch index rebuilt", extra={"count": len(self.index)})

    def update(self, facts: Iterable[Facts]) -> None:
        """Take the states a published batch changed."""
        for f in facts:
            if f.touched or f.state is None:
                self._ticked.pop((f.target, f.key), None)
                if f.state is None:
                    self.index.pop((f.target, f.key), None)
                    self.critical_since.pop(f.key, None)
                else:
                    self._track(f.target, f.key, f.state)
            if f.attempt is not None:
                launched = self._launched.get(f.attempt.job_id)
                if launched is not None and launched.attempt <= f.attempt.attempt:
                    del self._launched[f.attempt.job_id]

    def _track(self, target: str, key: str, state: ClientAlerts | DigestState) -> None:
        if isinstance(state, ClientAlerts):
            # The canary's alerts wait for nobody (they close on delivery, and a stuck one is the
            # canary's alerts' business): the gauge pages for a person's unacknowledged alert only.
            since = None if is_canary(state.clinic_id) else state.open_critical_since()
            if since is None:
                self.critical_since.pop(key, None)
            else:
                self.critical_since[key] = since
        if state.next_due() is None:
            self.index.pop((target, key), None)
        else:
            self.index[(target, key)] = state

    def oldest_unacked_critical_s(self) -> float:
        """Age of the oldest open critical alert this worker owns (0 when none; the canary clinic's
        alerts never count)."""
        if not self.critical_since:
            return 0.0
        return max(0.0, self.clock() - min(self.critical_since.values()))

    # ------------------------------------------------------------------ dispatch

    async def tick(self) -> None:
        """Start every due attempt and send every due timer, once."""
        now = self.clock()
        assigned = self.assigned or frozenset()
        for (_target, key), state in list(self.index.items()):
            if state.partition not in assigned:
                continue
            due = state.next_due()
            if due is None or due > now:
                continue
            if isinstance(state, ClientAlerts):
                for record, job in policy.due_jobs(state, now):
                    self._launch("client", key, state, job, record)
                if policy.timers_due(state, now):
                    await self._tick_timer("client", key, state, now)
            else:
                for job in digests.due_jobs(state, now):
                    self._launch("digest", key, state, job, None)
                if state.due_at is not None and state.due_at <= now and state.pending and not state.sending:
                    await self._tick_timer("digest", key, state, now)

    async def _tick_timer(self, target: str, key: str, state: ClientAlerts | DigestState, now: float) -> None:
        due = state.next_due() or now
        sent = self._ticked.get((target, key))
        if sent is not None and sent[0] == due and now - sent[1] < RETICK_AFTER_S:
            return
        self._ticked[(target, key)] = (due, now)
        tick = InternalRecord(record=DueTick(target=target, key=key, at=now))
        await self._publish(target, key, state.partition, tick)

    def _launch(
        self,
        target: str,
        key: str,
        state: ClientAlerts | DigestState,
        job: DeliveryJob,
        record: AlertRecord | None,
    ) -> None:
        attempt = job.attempts + 1
        launched = self._launched.get(job.id)
        now = self.clock()
        if launched is not None and launched.attempt == attempt and now - launched.at < RELAUNCH_AFTER_S:
            return
        outbound = self._outbound(state, job, record)
        self._launched[job.id] = _Launch(attempt, now)
        owner = record.alert_id if record is not None else (state.sending_id or "")  # type: ignore[union-attr]
        task = asyncio.ensure_future(
            self._attempt(target, key, state.partition, owner, job, attempt, outbound)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _outbound(
        self, state: ClientAlerts | DigestState, job: DeliveryJob, record: AlertRecord | None
    ) -> Outbound | None:
        """What to send, or ``None`` when the endpoint is no longer in the directory. The canary
        clinic's messages go to the null channel."""
        clinic = state.clinic_id
        channel = None
        if clinic != self.canary_clinic:
            channel = _channel(self.directory.get(clinic), job)
            if channel is None:
                return None
        if isinstance(state, DigestState):
            message = digest_message(state.sending, self.inbox_url)
            return Outbound(job, channel, b"", message)
        assert record is not None  # noqa: S101 - client jobs always belong to an alert
        full = isinstance(channel, WebhookChannel) and channel.full_payload
        body = webhook_body(
            record,
            clinic_id=clinic,
            client_id=state.client_id,
            role=job.role,
            inbox_url=self.inbox_url,
            full_payload=full,
        )
        message = alert_message(
            record.summary.severity, record.alert_id, self.inbox_url, job.role != "clinician"
        )
        return Outbound(job, channel, body, message)

    async def _attempt(
        self,
        target: str,
        key: str,
        partition: int,
        owner: str,
        job: DeliveryJob,
        attempt: int,
        outbound: Outbound | None,
    ) -> None:
        started = time.perf_counter()
        clinic = key.split("|", 1)[0]
        entry = self.directory.get(clinic)
        version = entry.version if entry is not None else 0
        if outbound is None:
            outcome = AttemptOutcome("rejected", "endpoint_removed")
        elif self.disabled.get(job.endpoint_id) == version:
            outcome = AttemptOutcome("gone", "endpoint_disabled")
        else:
            async with self._limit(job.endpoint_id):
                outcome = await self.router.deliver(outbound)
        seconds = time.perf_counter() - started
        kind = outbound.channel.type if outbound is not None and outbound.channel is not None else "null"
        kind = job.channel if outbound is None else kind
        self.metrics.delivery_attempts.labels(kind, _attempt_label(outcome.result)).inc()
        self.metrics.delivery_seconds.labels(kind).observe(seconds)
        if outcome.result == "gone" and outcome.code != "endpoint_disabled":
            self.disabled[job.endpoint_id] = version
            log.error(
                "endpoint gone: disabled until the clinic's directory entry changes",
                extra={"reason": outcome.code, "kind": kind, "endpoint": job.endpoint_id},
            )
        elif outcome.result == "rejected":
            log.warning(
                "delivery refused by endpoint",
                extra={"reason": outcome.code, "kind": kind, "count": attempt},
            )
        result = AttemptResult(
            target=target,
            key=key,
            owner_id=owner,
            job_id=job.id,
            attempt=attempt,
            result=outcome.result,
            code=outcome.code,
            retry_after_s=outcome.retry_after_s,
            at=self.clock(),
            seconds=seconds,
        )
        try:
            await self._publish(target, key, partition, InternalRecord(record=result))
        except Exception as exc:  # the attempt is repeated after RELAUNCH_AFTER_S (same webhook-id)
            log.warning("could not record a delivery attempt", extra={"error_type": type(exc).__name__})

    def _limit(self, endpoint_id: str) -> asyncio.Semaphore:
        sem = self._limits.get(endpoint_id)
        if sem is None:
            sem = self._limits[endpoint_id] = asyncio.Semaphore(self.endpoint_concurrency)
        return sem

    async def _publish(self, target: str, key: str, partition: int, record: InternalRecord) -> None:
        topic = NOTIFIER_CLIENT if target == "client" else NOTIFIER_DIGEST
        fut = await self.publisher.send(topic, key.encode(), record.model_dump_json().encode(), partition)
        await fut

    async def drain(self) -> None:
        """Wait for the attempts in flight (on shutdown)."""
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)


def _attempt_label(result: str) -> str:
    return {"retry": "retrying"}.get(result, result)


def _channel(
    directory: ClinicDirectory | None, job: DeliveryJob
) -> WebhookChannel | EmailChannel | ChatChannel | None:
    if directory is None:
        return None
    for person in directory.people:
        for channel in person.channels:
            if channel.id == job.endpoint_id:
                return channel
    return None


def _decode(target: str, raw: str) -> ClientAlerts | DigestState | None:
    try:
        if target == "client":
            return ClientAlerts.model_validate_json(raw)
        return DigestState.model_validate_json(raw)
    except ValueError:
        return None
