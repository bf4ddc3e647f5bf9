"""Plain Kafka clients for what is not a Faust worker: topic provisioning, broker readiness and
producer settings (the simulator, the CLI, tests and benches).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from shared.contracts.topics import CATALOGUE, TopicSpec, topic_name


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
        _wait_until_listed(admin, created, timeout_s)
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


def _wait_until_listed(admin: Any, names: set[str], timeout_s: float) -> None:
    """Wait (bounded) until the broker's metadata lists every topic of ``names``: a broker that has
    just started, with many topics to load, answers ``create_topics`` before it lists the new ones,
    and a service started right after provisioning would stop with "topic does not exist"."""
    deadline = time.monotonic() + timeout_s
    missing = set(names)
    while missing:
        missing -= set(admin.list_topics())
        if not missing:
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(
                f"{len(missing)} created topics not listed by the broker within {timeout_s:.0f}s"
            )
        time.sleep(0.2)


def wait_for_broker(bootstrap_servers: str, timeout_s: float = 60.0) -> None:
    """Block until the broker answers a metadata request, or raise ``TimeoutError``."""
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


def publish_records(
    bootstrap_servers: str,
    topic: str,
    records: Iterable[tuple[bytes | None, bytes | None]],
    timeout_s: float = 30.0,
) -> int:
    """Produce ``(key, value)`` records to ``topic`` (idempotent, ``acks=all``) and wait until the
    broker acknowledged each; returns how many were written."""
    from kafka import KafkaProducer

    producer = KafkaProducer(**producer_config(bootstrap_servers))
    try:
        futures = [producer.send(topic, key=key, value=value) for key, value in records]
        producer.flush(timeout=timeout_s)
        for fut in futures:
            fut.get(timeout=timeout_s)
        return len(futures)
    finally:
        producer.close(timeout=timeout_s)


@dataclass(frozen=True)
class NamespaceRemoval:
    """What ``delete_namespace`` removed."""

    topics: tuple[str, ...]
    groups: tuple[str, ...]
    busy_groups: tuple[str, ...] = ()
    """Groups that still had members (a consumer killed without leaving): retry once they expire."""


def delete_namespace(bootstrap_servers: str, namespace: str, timeout_s: float = 30.0) -> NamespaceRemoval:
    """Delete every topic and consumer group whose name starts with ``namespace`` (demos, tests).

    That covers the catalogue's topics, the services' internal topics (changelogs, faust's assignor
    topic: their app ids start with the namespace) and their consumer groups. Refuses an empty or
    too short namespace: it would match production topics.
    """
    if len(namespace) < 4 or not namespace.endswith("."):
        raise ValueError("refusing to delete by a namespace shorter than 4 characters or not ending in '.'")
    from kafka.admin import KafkaAdminClient
    from kafka.errors import UnknownTopicOrPartitionError

    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap_servers.split(","),
        client_id="rapport-provisioner",
        request_timeout_ms=int(timeout_s * 1000),
    )
    try:
        topics = sorted(t for t in admin.list_topics() if t.startswith(namespace))
        if topics:
            with contextlib.suppress(UnknownTopicOrPartitionError):
                admin.delete_topics(topics, timeout_ms=int(timeout_s * 1000))
        listed = (g.get("group_id", "") for g in admin.list_groups())
        groups = sorted(g for g in listed if g.startswith(namespace))
        # A group with members still joined cannot be deleted; the caller stops its consumers first.
        deleted = admin.delete_groups(groups) if groups else {}
        ok = tuple(g for g in groups if deleted.get(g) == "OK")
        return NamespaceRemoval(tuple(topics), ok, tuple(g for g in groups if g not in ok))
    finally:
        admin.close()
