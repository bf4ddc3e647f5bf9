"""Thin Kafka helpers: the Faust app factory, producer settings, codecs and topic provisioning.

Nothing here connects at import time; faust and kafka-python are imported inside the functions
that need them so the offline CLI starts fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.events import DeadLetter
from shared.topics import CATALOGUE, TopicSpec, topic_name

if TYPE_CHECKING:  # pragma: no cover
    import faust

log = logging.getLogger(__name__)

#: Exit code of a worker that stops itself because it could not publish a result: its offsets were
#: not committed, so the orchestrator restarts it and the input is processed again (nothing lost).
EXIT_PUBLISH_FAILED = 75


def producer_config(bootstrap_servers: str) -> dict[str, Any]:
    """kafka-python producer settings: idempotent, all in-sync replicas acknowledge."""
    return {
        "bootstrap_servers": bootstrap_servers.split(","),
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 5,
        "retries": 10,
        "client_id": "rapport",
    }


def _register_idempotent_transport() -> str:
    """Register a faust transport whose producer is idempotent with ``acks=all``.

    faust-streaming only turns idempotence on inside exactly-once transactions; Rapport wants it for
    every produce so broker-side retries never duplicate a record.
    """
    from faust.transport import drivers
    from faust.transport.drivers import aiokafka as driver

    scheme = "rapport-kafka"
    if scheme not in drivers.TRANSPORTS.aliases:

        class IdempotentProducer(driver.Producer):
            def _settings_extra(self) -> dict[str, Any]:
                return {**super()._settings_extra(), "acks": "all", "enable_idempotence": True}

        class IdempotentTransport(driver.Transport):
            Producer = IdempotentProducer

        globals()["IdempotentTransport"] = IdempotentTransport
        drivers.TRANSPORTS.aliases[scheme] = f"{__name__}:IdempotentTransport"
    return scheme


class WorkerSettings(BaseSettings):
    """What every Rapport Faust worker reads from its environment; each service subclasses it with
    its own ``RAPPORT_<NAME>_`` prefix and defaults."""

    model_config = SettingsConfigDict(frozen=True)

    bootstrap_servers: str = "127.0.0.1:9092"
    app_id: str = "rapport"
    """Consumer group and internal-topic prefix; one per service."""
    topic_namespace: str = ""
    """Prefix of every topic name; empty in production, unique per test run."""
    partitions: int = 12
    """Partitions of the topics the worker declares (tables: equal to their source topic's)."""
    store: str = "memory://"
    data_dir: str = ".faust-data"
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    session_timeout_s: float = 30.0
    """How long the group waits for a silent (crashed) worker before giving its partitions away."""
    log_level: str = "INFO"


def create_faust_app(settings: WorkerSettings) -> faust.App:
    """A faust App with Rapport's defaults: idempotent producer, earliest offsets, no autodiscovery."""
    import faust

    scheme = _register_idempotent_transport()
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
        consumer_auto_offset_reset="earliest",
        topic_partitions=settings.partitions,
        topic_replication_factor=1,
        topic_allow_declare=True,
        table_cleanup_interval=30.0,
        broker_session_timeout=settings.session_timeout_s,
    )


async def deliver(topic: Any, *, key: bytes | None, value: bytes, attempts: int = 5) -> None:
    """Send one record and wait for the broker's acknowledgement, retrying with backoff.

    When the broker refuses every attempt the process stops without acknowledging its input, so
    the record is processed again after a restart instead of being lost.
    """
    delay = 0.2
    for attempt in range(1, attempts + 1):
        try:
            fut = await topic.send(key=key, value=value)
            await fut
            return
        except Exception as exc:  # any produce failure: retry, then stop the process
            log.warning("produce failed", extra={"error_type": type(exc).__name__, "attempt": attempt})
            if attempt == attempts:
                break
            await asyncio.sleep(delay)
            delay *= 2
    log.critical("giving up on produce; stopping so the input is replayed after restart")
    logging.shutdown()
    os._exit(EXIT_PUBLISH_FAILED)


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


async def deliver_all(records: Sequence[tuple[Any, bytes | None, bytes]]) -> None:
    """Send ``(topic, key, value)`` records together and wait until the broker acknowledged each.

    One round trip for a whole batch instead of one per record. A record the broker refused is sent
    again through :func:`deliver` (retries, then stops the process without acknowledging the input).
    """
    futures = [await topic.send(key=key, value=value) for topic, key, value in records]
    results = await asyncio.gather(*futures, return_exceptions=True)
    for (topic, key, value), result in zip(records, results, strict=True):
        if isinstance(result, BaseException):
            log.warning("produce failed", extra={"error_type": type(result).__name__})
            await deliver(topic, key=key, value=value)


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


async def publish_dead_letter(topic: Any, record: DeadLetter, key: bytes | None) -> None:
    """Send a dead-letter record (awaiting the broker) and log it."""
    await deliver(topic, key=key, value=record.model_dump_json().encode())
    log_dead_letter(record)


# --------------------------------------------------------------------------- provisioning


@dataclass(frozen=True)
class ProvisionResult:
    """What ``apply_topics`` did to one topic."""

    name: str
    action: str  # created | exists (configs enforced)
    partitions: int


def apply_topics(
    bootstrap_servers: str,
    *,
    partitions: int = 12,
    namespace: str = "",
    specs: Iterable[TopicSpec] = CATALOGUE,
    timeout_s: float = 30.0,
) -> list[ProvisionResult]:
    """Create every catalogue topic that is missing and enforce configs on those that exist.

    Idempotent: running it twice changes nothing the second time. Existing partition counts are
    never reduced (Kafka cannot) and are only reported, never silently changed.
    """
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap_servers.split(","),
        client_id="rapport-provisioner",
        request_timeout_ms=int(timeout_s * 1000),
    )
    try:
        existing = set(admin.list_topics())
        results: list[ProvisionResult] = []
        to_create = []
        for spec in specs:
            name = topic_name(spec.name, namespace)
            if name in existing:
                continue
            to_create.append(
                NewTopic(
                    name=name,
                    num_partitions=partitions,
                    replication_factor=1,
                    topic_configs=spec.configs(),
                )
            )
        if to_create:
            # A concurrent provisioner may win the race; the topics then exist, which is the goal.
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(to_create, timeout_ms=int(timeout_s * 1000))
        created = {t.name for t in to_create}
        described = {
            d.get("name", d.get("topic")): len(d["partitions"])
            for d in admin.describe_topics([topic_name(s.name, namespace) for s in specs])
        }
        for spec in specs:
            name = topic_name(spec.name, namespace)
            if name in created:
                results.append(ProvisionResult(name, "created", described.get(name, partitions)))
                continue
            # Incremental: set only the configs the catalogue owns, leave operators' others alone.
            admin.alter_configs(
                [ConfigResource(ConfigResourceType.TOPIC, name, configs=spec.configs())],
                incremental=True,
            )
            results.append(ProvisionResult(name, "exists", described.get(name, 0)))
        return results
    finally:
        admin.close()


def wait_for_broker(bootstrap_servers: str, timeout_s: float = 60.0) -> None:
    """Block until the broker answers a metadata request, or raise ``TimeoutError``."""
    import time

    from kafka.admin import KafkaAdminClient

    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers.split(","), request_timeout_ms=5000)
            try:
                admin.list_topics()
                return
            finally:
                admin.close()
        except Exception as exc:  # not up yet; keep polling until the deadline
            last = exc
            time.sleep(0.5)
    raise TimeoutError(
        f"no Kafka broker answered at {bootstrap_servers} within {timeout_s:.0f}s "
        f"({type(last).__name__ if last else 'no error'}); start one with `make kafka-up`"
    )
