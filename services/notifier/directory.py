"""Every worker's copy of the clinic directory, read from the compacted ``rapport.directory.v1``.

Each notifier worker needs every clinic's entry (any partition's clients may belong to any clinic),
so this reads all partitions of the topic from the beginning with a plain consumer (no group) and
keeps following it; :attr:`loaded` is set once it has caught up with the end offsets it found at
start, and readiness waits for it. A record with a lower ``version`` than the one held is ignored; a
tombstone removes the clinic.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pydantic import ValidationError

from shared.contracts.alerts import ClinicDirectory

log = logging.getLogger(__name__)


class DirectoryCache:
    """Clinic id → its latest directory entry."""

    def __init__(self) -> None:
        self.clinics: dict[str, ClinicDirectory] = {}
        self.loaded = asyncio.Event()
        self.rejected = 0

    def get(self, clinic_id: str) -> ClinicDirectory | None:
        """The clinic's entry, if known."""
        return self.clinics.get(clinic_id)

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        """Take one directory record."""
        if value is None:
            if key is not None:
                self.clinics.pop(key.decode("utf-8", "replace"), None)
            return
        try:
            entry = ClinicDirectory.model_validate_json(value)
        except ValidationError as exc:
            self.rejected += 1
            log.warning("directory record rejected", extra={"error_type": type(exc).__name__})
            return
        held = self.clinics.get(entry.clinic_id)
        if held is None or entry.version >= held.version:
            self.clinics[entry.clinic_id] = entry

    async def follow(self, bootstrap_servers: str, topic: str, poll_s: float = 1.0) -> None:
        """Read ``topic`` from the beginning and keep following it (until cancelled)."""
        from aiokafka import AIOKafkaConsumer, TopicPartition

        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_servers.split(","),
            enable_auto_commit=False,
            group_id=None,
            client_id="rapport-notifier-directory",
        )
        await consumer.start()
        try:
            partitions: set[Any] = set()
            while not partitions:
                partitions = consumer.partitions_for_topic(topic) or set()
                if not partitions:
                    await consumer._client.force_metadata_update()
                    await asyncio.sleep(poll_s)
            tps = [TopicPartition(topic, p) for p in sorted(partitions)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            while True:
                batches = await consumer.getmany(timeout_ms=int(poll_s * 1000))
                for records in batches.values():
                    for record in records:
                        self.apply(record.key, record.value)
                if not self.loaded.is_set():
                    positions = {tp: await consumer.position(tp) for tp in tps}
                    if all(positions[tp] >= ends[tp] for tp in tps):
                        self.loaded.set()
                        log.info("directory loaded", extra={"count": len(self.clinics)})
        finally:
            await consumer.stop()
