"""Wiring of the notifier: two worker loops over changelog-backed tables, the directory follower,
the dispatcher (timers and deliveries), /metrics, /healthz, /readyz."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import faust
from prometheus_client import CollectorRegistry

from services.notifier import handlers
from services.notifier.channels import ChannelPort, ChannelRouter, default_adapters
from services.notifier.directory import DirectoryCache
from services.notifier.dispatcher import Dispatcher
from services.notifier.handlers import Context, Facts
from services.notifier.metrics import NotifierMetrics
from services.notifier.settings import NotifierSettings, load_secrets
from shared.alerting.policy import PolicyConfig
from shared.alerting.state import ClientAlerts, DigestState
from shared.contracts import topics
from shared.contracts.canary import CANARY_CLINIC_ID
from shared.contracts.topics import topic_name
from shared.runtime.health import add_health_views
from shared.runtime.kafka import FaustPublisher, FaustTableStore, attach_loop, create_faust_app, create_table
from shared.runtime.startup import Topology
from shared.runtime.worker import BatchState, Handled, LoopMetrics, Record, WorkerLoop


def _dump(state: ClientAlerts | DigestState) -> str:
    return state.model_dump_json()


#: The topics this service reads, writes and keeps state in: all must have its input's partition count
#: (signals, acknowledgements and the client side's internal records are co-partitioned).
TOPOLOGY = Topology(
    input=topics.SIGNALS,
    outputs=(
        topics.ALERT_ACKS,
        topics.ALERTS,
        topics.NOTIFIER_CLIENT,
        topics.NOTIFIER_DIGEST,
        topics.DEAD_LETTER,
    ),
    tables=("client-alerts", "digests"),
)


def create_app(
    settings: NotifierSettings,
    partitions: int,
    registry: CollectorRegistry | None = None,
    *,
    adapters: Mapping[str, ChannelPort] | None = None,
) -> faust.App:
    """Build the notifier Faust app. ``adapters`` replaces the real channels (tests)."""
    registry = registry or CollectorRegistry()
    metrics = NotifierMetrics.create(registry)
    app = create_faust_app(settings, partitions)
    ns = settings.topic_namespace
    publisher = FaustPublisher(app, ns)
    directory = DirectoryCache()
    cfg = PolicyConfig(retry_schedule_s=settings.retry_schedule_s)
    ctx = Context(directory.get, cfg, partitions, ns)
    for channel in ("webhook", "email", "chat"):
        for outcome in ("delivered", "retrying", "gone", "rejected", "exhausted"):
            metrics.delivery_attempts.labels(channel, outcome)  # every series exists from the start
    http = None
    if adapters is None:
        adapters, http = default_adapters(settings, load_secrets(settings))
    router = ChannelRouter(adapters, settings.delivery_timeout_s)
    dispatcher = Dispatcher(
        publisher=publisher,
        router=router,
        directory=directory,
        metrics=metrics,
        inbox_url=settings.inbox_url,
        partitions=partitions,
        endpoint_concurrency=settings.endpoint_concurrency,
        canary_clinic=CANARY_CLINIC_ID,
    )
    metrics.oldest_unacked_critical_seconds.set_function(dispatcher.oldest_unacked_critical_s)
    metrics.directory_clinics.set_function(lambda: len(directory.clinics))
    metrics.endpoints_disabled.set_function(lambda: len(dispatcher.disabled))

    client_table = create_table(app, "client-alerts", partitions)
    digest_table = create_table(app, "digests", partitions)
    client_state: BatchState[ClientAlerts] = BatchState(
        FaustTableStore(client_table), ClientAlerts.model_validate_json, _dump
    )
    digest_state: BatchState[DigestState] = BatchState(
        FaustTableStore(digest_table), DigestState.model_validate_json, _dump
    )

    def observe(results: Sequence[Handled]) -> None:
        facts: list[Facts] = [f for h in results for f in h.facts if isinstance(f, Facts)]
        for f in facts:
            for kind, severity, outcome in f.outcomes:
                metrics.alerts.labels(kind or "-", severity or "-", outcome).inc()
            for channel in f.exhausted:
                metrics.delivery_attempts.labels(channel, "exhausted").inc()
            for step in f.escalations:
                metrics.escalations.labels(step).inc()
            for severity, seconds in f.first_delivery:
                metrics.session_to_alert_seconds.labels(severity).observe(seconds)
        dispatcher.update(facts)

    loop_metrics = LoopMetrics.create(registry, "notifier", "records", "Input records")

    def handle_client(record: Record, view: Any, now: datetime) -> Handled:
        return handlers.handle_client(record, view, now, ctx)

    def handle_digest(record: Record, view: Any, now: datetime) -> Handled:
        return handlers.handle_digest(record, view, now, ctx)

    client_loop = WorkerLoop(
        stage=handlers.STAGE,
        handler=handle_client,
        publisher=publisher,
        metrics=loop_metrics,
        state=client_state,
        on_published=observe,
    )
    digest_loop = WorkerLoop(
        stage=handlers.STAGE,
        handler=handle_digest,
        publisher=publisher,
        metrics=loop_metrics,
        state=digest_state,
        on_published=observe,
    )
    # Signals, acknowledgements and the client side's internal records are co-partitioned: one
    # client's state, inputs and timers share a partition number (and so a worker).
    client_source = app.topic(
        topic_name(topics.SIGNALS, ns),
        topic_name(topics.ALERT_ACKS, ns),
        topic_name(topics.NOTIFIER_CLIENT, ns),
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )
    for source, loop, name in (
        (client_source, client_loop, "route_signals"),
        (publisher.topic(topics.NOTIFIER_DIGEST), digest_loop, "send_digests"),
    ):
        attach_loop(
            app, source, loop, name=name, batch_max=settings.batch_max, within_s=settings.batch_within_s
        )

    signals_topic = topic_name(topics.SIGNALS, ns)

    @app.task  # type: ignore[untyped-decorator]
    async def follow_directory() -> None:
        await directory.follow(settings.bootstrap_servers, topic_name(topics.DIRECTORY, ns))

    @app.timer(settings.dispatch_interval_s)  # type: ignore[untyped-decorator]
    async def dispatch() -> None:
        if not directory.loaded.is_set() or app.rebalancing:
            return
        recovery = app.tables.recovery  # type: ignore[attr-defined]
        if recovery.in_recovery or not recovery.completed.is_set():
            return
        assigned = frozenset(tp.partition for tp in app.consumer.assignment() if tp.topic == signals_topic)
        if assigned != dispatcher.assigned:
            dispatcher.rebuild(assigned, {"client": client_table.items(), "digest": digest_table.items()})
        await dispatcher.tick()

    @app.on_before_shutdown.connect  # type: ignore[arg-type]
    async def close_channels(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        await dispatcher.drain()
        if http is not None:
            await http.close()

    add_health_views(
        app,
        registry,
        "notifier",
        input_topic=signals_topic,
        bootstrap_servers=settings.bootstrap_servers,
        broker_grace_s=settings.broker_grace_s,
        checks=(("directory not loaded yet", directory.loaded.is_set),),
    )
    app.rapport_dispatcher = dispatcher  # type: ignore[attr-defined]  # for tests and debugging
    return app
