"""Follows ``rapport.survey-scored.v1`` into the gateway's read model (``GET /fhir/Observation``).

Every gateway process reads every partition itself (no consumer group): its SQLite file is its own.
Rows and the next offsets are written in one transaction, so a restart resumes exactly where the
file says, and a redelivered record only rewrites the same row (keyed by clinic and event id).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from pydantic import ValidationError

from services.gateway.metrics import GatewayMetrics
from services.gateway.store import GatewayStore
from shared.contracts.events import SurveyScored

log = logging.getLogger(__name__)


class ScoresFollower:
    """A background task reading scored surveys into :class:`GatewayStore`."""

    def __init__(
        self,
        *,
        bootstrap_servers: str,
        topic: str,
        store: GatewayStore,
        metrics: GatewayMetrics,
        client_id: str,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.store = store
        self.metrics = metrics
        self.client_id = client_id
        self.following = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start following in the background (retrying while the broker is away)."""
        self._task = asyncio.create_task(self._run(), name="scores-follower")

    async def stop(self) -> None:
        """Stop following."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # broker away or topic missing: try again shortly
                self.following = False
                log.warning("scores follower restarting", extra={"error_type": type(exc).__name__})
                await asyncio.sleep(2.0)

    async def _follow(self) -> None:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        partitions = await self._partitions()
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers.split(","),
            client_id=f"{self.client_id}-scores",
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
        )
        await consumer.start()
        try:
            tps = [TopicPartition(self.topic, p) for p in partitions]
            consumer.assign(tps)
            stored = self.store.offsets(self.topic)
            for tp in tps:
                if tp.partition in stored:
                    consumer.seek(tp, stored[tp.partition])
                else:
                    await consumer.seek_to_beginning(tp)
            self.following = True
            while True:
                batch = await consumer.getmany(timeout_ms=500, max_records=500)
                if batch:
                    self._store(batch)
        finally:
            self.following = False
            await consumer.stop()

    async def _partitions(self) -> list[int]:
        """The topic's partitions (waits while the topic does not exist yet)."""
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(
            bootstrap_servers=self.bootstrap_servers.split(","), client_id=f"{self.client_id}-scores"
        )
        await admin.start()
        try:
            while True:
                described = await admin.describe_topics([self.topic])
                found = [
                    p["partition"] for d in described if d.get("error_code") == 0 for p in d["partitions"]
                ]
                if found:
                    return sorted(found)
                await asyncio.sleep(2.0)
        finally:
            await admin.close()

    def _store(self, batch: dict[Any, list[Any]]) -> None:
        scores: list[SurveyScored] = []
        next_offsets: dict[int, int] = {}
        skipped = 0
        for tp, records in batch.items():
            for record in records:
                next_offsets[tp.partition] = record.offset + 1
                try:
                    scores.append(SurveyScored.model_validate_json(record.value or b""))
                except ValidationError:
                    # Not ours to dead-letter (the producer of the topic did); counted and skipped.
                    skipped += 1
        written = self.store.store_scores(self.topic, scores, next_offsets)
        self.metrics.scores.labels("stored").inc(written)
        if skipped:
            self.metrics.scores.labels("undecodable").inc(skipped)
