"""The canary's shell: send a probe session every ``interval_s``, watch the scored and signals topics
for its results, and export what it saw.

A kafka-python producer (idempotent, ``acks=all``) sends the probes; a group-less consumer assigned
to every partition of the watched topics, positioned at their ends before the first probe, reads
the results. Nothing happens at import time.
"""

from __future__ import annotations

import logging
import secrets
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import FrameType
from typing import Any

from prometheus_client import CollectorRegistry

from services.canary.handlers import FINAL_STAGE, SIGNAL_STAGE, ProbeTracker, probe_of
from services.canary.metrics import CanaryMetrics
from services.canary.settings import CanarySettings
from shared.contracts import topics
from shared.contracts.canary import canary_session
from shared.runtime.plain_http import serve_http
from shared.runtime.provisioning import producer_config

log = logging.getLogger(__name__)

#: Stage name → the topic whose records answer it; a later stage is one more entry here and one
#: more case in ``probe_of``.
WATCHED: dict[str, str] = {
    "scored": topics.SURVEY_SCORED,
    SIGNAL_STAGE: topics.SIGNALS,
    FINAL_STAGE: topics.ALERTS,
}


def watched(settings: CanarySettings) -> dict[str, str]:
    """The stages this canary measures (without the notifier's when it is not deployed)."""
    return {s: t for s, t in WATCHED.items() if settings.through_notifier or s != FINAL_STAGE}


def default_run_id(now: datetime) -> str:
    """A run id unique per start: UTC start time plus a random suffix."""
    return f"{now:%Y%m%d%H%M%S}-{secrets.token_hex(2)}"


@dataclass
class Canary:
    """One canary process: producer, consumer, tracker, metrics."""

    settings: CanarySettings
    metrics: CanaryMetrics
    producer: Any
    consumer: Any
    run_id: str
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    tracker: ProbeTracker = field(init=False)
    seq: int = 0
    heartbeat: float = field(default=0.0)
    watching: bool = False
    _in_flight: list[tuple[str, Any]] = field(default_factory=list)
    _stage_of_topic: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.final = FINAL_STAGE if self.settings.through_notifier else SIGNAL_STAGE
        self.tracker = ProbeTracker(self.settings.timeout_s, self.final)
        ns = self.settings.topic_namespace
        self._stage_of_topic = {topics.topic_name(t, ns): s for s, t in watched(self.settings).items()}
        self.heartbeat = self.clock()

    def watch(self, stop: threading.Event, timeout_s: float = 60.0) -> bool:
        """Assign every partition of the watched topics and move to their ends (bounded wait for
        metadata). True once watching; results of earlier probes are never counted."""
        from kafka import TopicPartition

        deadline = self.clock() + timeout_s
        while not stop.is_set() and self.clock() < deadline:
            self.heartbeat = self.clock()
            found: list[Any] = []
            for name in self._stage_of_topic:
                parts = self.consumer.partitions_for_topic(name)
                if not parts:
                    break
                found += [TopicPartition(name, p) for p in sorted(parts)]
            else:
                self.consumer.assign(found)
                self.consumer.seek_to_end(*found)
                for tp in found:
                    self.consumer.position(tp)  # resolve the end offsets now, before any probe
                self.watching = True
                self.metrics.ready.set(1)
                return True
            stop.wait(0.5)
        return False

    def send_probe(self) -> None:
        """Send the next probe session."""
        event = canary_session(
            self.run_id, self.seq, datetime.now(UTC), sessions_per_client=self.settings.sessions_per_client
        )
        self.seq += 1
        probe_id = str(event.id)
        topic = topics.topic_name(topics.SESSION_COMPLETED, self.settings.topic_namespace)
        self.tracker.sent(probe_id, self.clock())
        try:
            future = self.producer.send(
                topic, key=event.data.client_id.encode(), value=event.model_dump_json().encode()
            )
        except Exception as exc:  # e.g. KafkaTimeoutError when metadata does not arrive
            log.warning("canary probe not sent", extra={"error_type": type(exc).__name__})
            self.tracker.forget(probe_id)
            self.metrics.probes.labels("send_failed").inc()
            return
        self._in_flight.append((probe_id, future))
        self.metrics.sent.inc()
        self.metrics.last_sent.set(self.wall())

    def check_sends(self) -> None:
        """Count probes the producer gave up on."""
        still: list[tuple[str, Any]] = []
        for probe_id, future in self._in_flight:
            if not future.is_done:
                still.append((probe_id, future))
            elif future.failed():
                log.warning("canary probe not acknowledged", extra={"error_type": "ProduceFailed"})
                if self.tracker.forget(probe_id):
                    self.metrics.probes.labels("send_failed").inc()
        self._in_flight = still

    def read(self, timeout_ms: int) -> None:
        """Poll the watched topics once and record every probe result that arrived."""
        batch = self.consumer.poll(timeout_ms=timeout_ms)
        now = self.clock()
        for tp, records in batch.items():
            stage = self._stage_of_topic.get(tp.topic)
            if stage is None:
                continue
            for record in records:
                probe_id = probe_of(stage, record.key, record.value)
                if probe_id is None:
                    continue
                latency = self.tracker.seen(stage, probe_id, now)
                if latency is None:
                    continue
                self.metrics.latency.labels(stage).observe(latency)
                if stage == self.final:
                    self.metrics.probes.labels("succeeded").inc()
                    self.metrics.last_success.set(self.wall())
                    log.info("canary probe succeeded", extra={"elapsed_s": round(latency, 3)})

    def expire(self) -> None:
        """Count probes that waited longer than the timeout."""
        for _ in self.tracker.expire(self.clock()):
            self.metrics.probes.labels("timed_out").inc()
            log.warning("canary probe timed out", extra={"stage": self.final})
        self.metrics.pending.set(len(self.tracker.pending))

    def run(self, stop: threading.Event) -> None:
        """Probe every ``interval_s`` until ``stop`` is set."""
        next_send = self.clock()
        while not stop.is_set():
            now = self.clock()
            self.heartbeat = now
            if now >= next_send:
                self.send_probe()
                next_send = max(next_send + self.settings.interval_s, now)
            wait_ms = int(max(0.0, min(0.5, next_send - self.clock())) * 1000)
            self.read(max(wait_ms, 10))
            self.check_sends()
            self.expire()

    def alive(self) -> bool:
        """The loop turned recently (``/healthz``)."""
        return self.clock() - self.heartbeat < 30.0


def run(settings: CanarySettings, registry: CollectorRegistry | None = None) -> int:
    """Run the canary until SIGTERM/SIGINT; returns the exit code."""
    from kafka import KafkaConsumer, KafkaProducer

    registry = registry or CollectorRegistry()
    metrics = CanaryMetrics.create(registry)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    # A send blocks at most 10 s for metadata, well inside the /healthz staleness limit (30 s).
    config = {**producer_config(settings.bootstrap_servers), "client_id": "rapport-canary"}
    producer = KafkaProducer(**config, max_block_ms=10_000)
    consumer = KafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers.split(","),
        client_id="rapport-canary",
        group_id=None,
        enable_auto_commit=False,
    )
    canary = Canary(
        settings, metrics, producer, consumer, settings.run_id or default_run_id(datetime.now(UTC))
    )
    server = serve_http(
        settings.web_host, settings.web_port, registry, alive=canary.alive, ready=lambda: canary.watching
    )
    try:
        if not canary.watch(stop):
            if stop.is_set():
                return 0
            log.error("canary topics not found", extra={"count": len(WATCHED)})
            return 1
        log.info("canary watching", extra={"count": len(WATCHED)})
        canary.run(stop)
        return 0
    finally:
        metrics.ready.set(0)
        server.shutdown()
        producer.flush(timeout=10)
        producer.close(timeout=10)
        consumer.close()
