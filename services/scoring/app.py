"""Wiring of the scoring service: the worker loop on the session topic, /metrics, /healthz, /readyz."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import faust
from prometheus_client import CollectorRegistry

from services.scoring import handlers
from services.scoring.metrics import ScoringMetrics
from services.scoring.settings import ScoringSettings
from shared.contracts import topics
from shared.contracts.events import Signal, SurveyScored
from shared.instruments import load_registry
from shared.pipeline.clinics import ClinicRegistries
from shared.rules.config import load_rulebook
from shared.runtime.health import add_health_views
from shared.runtime.kafka import FaustPublisher, attach_loop, create_faust_app
from shared.runtime.startup import Topology
from shared.runtime.worker import Handled, LoopMetrics, Record, WorkerLoop

log = logging.getLogger(__name__)


#: The topics this service reads, writes and keeps state in: all must have its input's partition count.
TOPOLOGY = Topology(
    input=topics.SESSION_COMPLETED, outputs=(topics.SURVEY_SCORED, topics.SIGNALS, topics.DEAD_LETTER)
)


def create_app(
    settings: ScoringSettings, partitions: int, registry: CollectorRegistry | None = None
) -> faust.App:
    """Build the scoring Faust app: one agent running the worker loop over raw session records."""
    registry = registry or CollectorRegistry()
    metrics = ScoringMetrics.create(registry)
    # Each clinic's sessions are scored with the spec variants its rule set names (the same file the
    # monitor loads), so a clinic's choice of e.g. reliable change reaches its signals.
    instruments = ClinicRegistries(
        load_registry(extra_dirs=settings.instrument_dirs), load_rulebook(settings.ruleset_path)
    )
    app = create_faust_app(settings, partitions)
    publisher = FaustPublisher(app, settings.topic_namespace)

    def handle(record: Record, _state: Any, now: datetime) -> Handled:
        return handlers.score_record(record, instruments, now)

    def count(results: Sequence[Handled]) -> None:
        for handled in results:
            for event in handled.facts:
                # A risk-only event (total null) is not a scored survey; its dead letter counts.
                if isinstance(event, SurveyScored) and event.data.total is not None:
                    metrics.surveys_scored.labels(event.data.instrument).inc()
                elif isinstance(event, Signal):
                    metrics.risk_signals.labels(event.data.instrument).inc()
                elif isinstance(event, handlers.UnroutableRisk):
                    metrics.unroutable_risk.inc()
                    log.warning("risk answer with no readable clinic", extra={"instrument": event.instrument})

    loop = WorkerLoop(
        stage=handlers.STAGE,
        handler=handle,
        publisher=publisher,
        metrics=LoopMetrics.create(registry, "scoring", "sessions", "Session events"),
        on_published=count,
    )
    attach_loop(
        app,
        publisher.topic(topics.SESSION_COMPLETED),
        loop,
        name="score_sessions",
        batch_max=settings.batch_max,
        within_s=settings.batch_within_s,
    )
    add_health_views(
        app,
        registry,
        "scoring",
        input_topic=topics.topic_name(TOPOLOGY.input, settings.topic_namespace),
        bootstrap_servers=settings.bootstrap_servers,
        broker_grace_s=settings.broker_grace_s,
    )
    return app
