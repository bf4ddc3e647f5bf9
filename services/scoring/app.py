"""Wiring of the scoring service: topics, the agent, /metrics, /healthz, /readyz."""

from __future__ import annotations

import logging
import time
from typing import Any

import faust
from prometheus_client import CollectorRegistry

from services.scoring import handlers
from services.scoring.metrics import ScoringMetrics
from services.scoring.settings import ScoringSettings
from shared import topics
from shared.deadletters import Rejection
from shared.events import DeadLetter, utc_now
from shared.instruments import load_registry
from shared.kafka import create_faust_app, deliver_all, log_dead_letter, raw_topic
from shared.observability import add_health_views

log = logging.getLogger(__name__)


def create_app(settings: ScoringSettings, registry: CollectorRegistry | None = None) -> faust.App:
    """Build the scoring Faust app: one agent, concurrency 1, raw bytes in and out."""
    registry = registry or CollectorRegistry()
    metrics = ScoringMetrics.create(registry)
    instruments = load_registry(extra_dirs=settings.instrument_dirs)
    app = create_faust_app(settings)

    def topic(base: str) -> Any:
        return raw_topic(app, base, settings.topic_namespace)

    sessions_topic = topic(topics.SESSION_COMPLETED)
    scored_topic = topic(topics.SURVEY_SCORED)
    dead_letter_topic = topic(topics.DEAD_LETTER)

    # concurrency=1: faust-streaming can commit past unprocessed offsets with higher concurrency.
    @app.agent(sessions_topic, concurrency=1)
    async def score_sessions(stream: Any) -> None:
        # A batch's results are published together and every acknowledgement awaited before
        # take_events acknowledges the batch's input offsets, so nothing is committed unpublished.
        async for events in stream.take_events(settings.batch_max, within=settings.batch_within_s):
            outgoing: list[tuple[Any, bytes | None, bytes]] = []
            outcomes: list[handlers.ScoringOutcome] = []
            dead: list[DeadLetter] = []
            for event in events:
                started = time.perf_counter()
                message = event.message
                raw = message.value if isinstance(message.value, bytes) else b""
                now = utc_now()
                try:
                    outcome = handlers.score_session(raw, instruments, now)
                except Exception as exc:  # a bug must not ack-and-lose: dead-letter the input
                    log.exception("scoring failed", extra={"error_type": type(exc).__name__})
                    outcome = handlers.ScoringOutcome(
                        None, (), (Rejection("processing_error", type(exc).__name__),)
                    )
                for scored in outcome.scored:
                    outgoing.append((scored_topic, message.key, scored.model_dump_json().encode()))
                for rejection in outcome.rejections:
                    record = handlers.dead_letter(
                        rejection,
                        key=message.key,
                        value=raw,
                        topic=message.topic,
                        partition=message.partition,
                        offset=message.offset,
                        now=now,
                        session=outcome.session,
                    )
                    outgoing.append((dead_letter_topic, message.key, record.model_dump_json().encode()))
                    dead.append(record)
                outcomes.append(outcome)
                metrics.processing_seconds.observe(time.perf_counter() - started)
            started = time.perf_counter()
            await deliver_all(outgoing)
            metrics.publish_seconds.observe(time.perf_counter() - started)
            for outcome in outcomes:
                metrics.sessions.labels(outcome.label).inc()
                for scored in outcome.scored:
                    # A risk-only event (total null) is not a scored survey; its dead letter counts.
                    if scored.data.total is not None:
                        metrics.surveys_scored.labels(scored.data.instrument).inc()
            for record in dead:
                metrics.dead_letters.labels(record.reason).inc()
                log_dead_letter(record)

    add_health_views(app, registry, "scoring")
    return app
