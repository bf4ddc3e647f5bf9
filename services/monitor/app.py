"""Wiring of the monitor service: the trajectory table, the agent, /metrics, /healthz, /readyz."""

from __future__ import annotations

import logging
import time
from typing import Any

import faust
from prometheus_client import CollectorRegistry

from services.monitor import handlers
from services.monitor.metrics import MonitorMetrics
from services.monitor.settings import MonitorSettings
from shared import topics
from shared.deadletters import Rejection, build_dead_letter
from shared.events import utc_now
from shared.kafka import create_faust_app, deliver, publish_dead_letter, raw_topic
from shared.observability import add_health_views
from shared.rules.config import load_rulebook

log = logging.getLogger(__name__)


def create_app(settings: MonitorSettings, registry: CollectorRegistry | None = None) -> faust.App:
    """Build the monitor Faust app: a changelog-backed trajectory table and one agent."""
    registry = registry or CollectorRegistry()
    metrics = MonitorMetrics.create(registry)
    rules = load_rulebook(settings.ruleset_path)
    app = create_faust_app(settings)

    def topic(base: str) -> Any:
        return raw_topic(app, base, settings.topic_namespace)

    scored_topic = topic(topics.SURVEY_SCORED)
    signals_topic = topic(topics.SIGNALS)
    dead_letter_topic = topic(topics.DEAD_LETTER)
    # One JSON document per client (all episodes); the changelog topic makes it survive restarts.
    trajectories = app.Table(
        "trajectories",
        partitions=settings.partitions,
        # str keys/values with faust's json codec: the one pairing faust applies consistently to
        # the store, the changelog and recovery (a raw-bytes schema is ignored on recovery).
        key_type=str,
        value_type=str,
    )

    async def dead_letter(message: Any, raw: bytes, rejection: Rejection, event: Any) -> None:
        record = build_dead_letter(
            rejection,
            stage=handlers.STAGE,
            key=message.key,
            value=raw,
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            now=utc_now(),
            correlation_id=event.correlation_id if event else None,
            clinic_id=event.clinic_id if event else None,
        )
        await publish_dead_letter(dead_letter_topic, record, message.key)
        metrics.dead_letters.labels(rejection.reason).inc()
        metrics.scores.labels("rejected").inc()

    # concurrency=1: per-client order matters, and faust-streaming can lose offsets with more.
    @app.agent(scored_topic, concurrency=1)
    async def track_trajectories(stream: Any) -> None:
        async for event in stream.events():
            started = time.perf_counter()
            message = event.message
            raw = message.value if isinstance(message.value, bytes) else b""
            decoded = handlers.decode_scored(raw)
            if isinstance(decoded, Rejection):
                await dead_letter(message, raw, decoded, None)
                continue
            key = handlers.state_key(decoded)
            try:
                outcome = handlers.track(decoded, trajectories.get(key), rules, utc_now())
            except Exception as exc:  # a bug must not ack-and-lose: dead-letter the input instead
                log.exception("tracking failed", extra={"error_type": type(exc).__name__})
                await dead_letter(message, raw, Rejection("processing_error", type(exc).__name__), decoded)
                continue
            # Signals first, state second: a crash in between replays the input, and the same
            # deterministic signal ids go out again (at-least-once) instead of never.
            for signal in outcome.signals:
                await deliver(
                    signals_topic,
                    key=message.key or decoded.data.client_id.encode(),
                    value=signal.model_dump_json().encode(),
                )
                metrics.signals.labels(signal.data.kind, signal.data.severity).inc()
                metrics.score_to_signal_seconds.observe(max(0.0, (utc_now() - decoded.time).total_seconds()))
            if outcome.state is not None:
                trajectories[key] = outcome.state
            metrics.scores.labels(outcome.change).inc()
            metrics.processing_seconds.observe(time.perf_counter() - started)

    add_health_views(app, registry, "monitor")
    return app
