"""Wiring of the monitor service: the trajectory table, the worker loop, /metrics, /healthz, /readyz."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import faust
from prometheus_client import CollectorRegistry

from services.monitor import handlers
from services.monitor.metrics import MonitorMetrics
from services.monitor.settings import MonitorSettings
from shared.contracts import topics
from shared.contracts.events import utc_now
from shared.rules.config import load_rulebook
from shared.rules.trajectory import ClientState
from shared.runtime.health import add_health_views
from shared.runtime.kafka import FaustPublisher, FaustTableStore, attach_loop, create_faust_app, create_table
from shared.runtime.startup import Topology
from shared.runtime.worker import BatchState, Handled, LoopMetrics, Record, WorkerLoop

#: The topics this service reads, writes and keeps state in: all must have its input's partition count.
TOPOLOGY = Topology(
    input=topics.SURVEY_SCORED, outputs=(topics.SIGNALS, topics.DEAD_LETTER), tables=("trajectories",)
)


def create_app(
    settings: MonitorSettings, partitions: int, registry: CollectorRegistry | None = None
) -> faust.App:
    """Build the monitor Faust app: a changelog-backed trajectory table and the worker loop."""
    registry = registry or CollectorRegistry()
    metrics = MonitorMetrics.create(registry)
    rules = load_rulebook(settings.ruleset_path)
    app = create_faust_app(settings, partitions)
    publisher = FaustPublisher(app, settings.topic_namespace)
    # One JSON document per client (all episodes); the changelog topic makes it survive restarts.
    # The loop keeps the decoded ClientState objects of recently seen clients in memory and writes
    # each changed client's document once per batch.
    trajectories = create_table(app, "trajectories", partitions)
    state: BatchState[ClientState] = BatchState(
        FaustTableStore(trajectories),
        ClientState.from_json,
        ClientState.to_json,
        capacity=settings.state_cache_size,
    )

    def handle(record: Record, view: Any, now: datetime) -> Handled:
        return handlers.track_record(record, view, rules, now)

    def count(results: Sequence[Handled]) -> None:
        now = utc_now()
        for handled in results:
            for event, signals in handled.facts:
                for signal in signals:
                    metrics.signals.labels(signal.data.kind, signal.data.severity).inc()
                    metrics.score_to_signal_seconds.observe(max(0.0, (now - event.time).total_seconds()))

    loop = WorkerLoop(
        stage=handlers.STAGE,
        handler=handle,
        publisher=publisher,
        metrics=LoopMetrics.create(registry, "monitor", "scores", "Scored surveys"),
        state=state,
        on_published=count,
    )
    attach_loop(
        app,
        publisher.topic(topics.SURVEY_SCORED),
        loop,
        name="track_trajectories",
        batch_max=settings.batch_max,
        within_s=settings.batch_within_s,
    )
    add_health_views(
        app,
        registry,
        "monitor",
        input_topic=topics.topic_name(TOPOLOGY.input, settings.topic_namespace),
        bootstrap_servers=settings.bootstrap_servers,
        broker_grace_s=settings.broker_grace_s,
    )
    return app
