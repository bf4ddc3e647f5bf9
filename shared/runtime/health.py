"""Health and metrics endpoints of a Faust worker: ``/metrics``, ``/healthz``, ``/readyz``, the
broker probe behind them and the gauges that show the same facts to Prometheus."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST


def render_metrics(registry: CollectorRegistry) -> tuple[bytes, str]:
    """The Prometheus text exposition of ``registry`` and its content type."""
    return generate_latest(registry), CONTENT_TYPE_LATEST


class ConsumerLagCollector:
    """``rapport_<service>_consumer_lag_messages{topic,partition}``, read from faust's monitor at
    scrape time: the broker's high-water mark minus the next offset this worker will read."""

    def __init__(self, app: Any, service: str) -> None:
        self._app = app
        self._name = f"rapport_{service}_consumer_lag_messages"

    def collect(self) -> Iterator[Metric]:
        """Yield the lag gauge (one sample per partition this worker has read from)."""
        family = GaugeMetricFamily(
            self._name,
            "Records on the input partitions not yet read by this worker.",
            labels=["topic", "partition"],
        )
        monitor = getattr(self._app, "monitor", None)
        read = dict(getattr(monitor, "tp_read_offsets", None) or {})
        end = dict(getattr(monitor, "tp_end_offsets", None) or {})
        for tp, highwater in end.items():
            last = read.get(tp)
            if last is not None:
                family.add_metric([tp.topic, str(tp.partition)], max(0, highwater - last - 1))
        yield family


#: Seconds between two broker probes.
PROBE_INTERVAL_S = 2.0
#: How long an agent may be without a running instance before ``/healthz`` fails (its supervisor
#: restarts a crashed instance within a second; longer means it gave up).
AGENT_DEAD_GRACE_S = 5.0


class BrokerProbe:
    """Asks the broker for its metadata every :data:`PROBE_INTERVAL_S` on the worker's loop and
    remembers when it last answered. Starts out reachable: a worker only starts after the broker
    answered its startup checks."""

    def __init__(
        self, bootstrap_servers: str, timeout_s: float = 5.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.timeout_s = timeout_s
        self.clock = clock
        self.last_ok = clock()
        self.reachable = True
        self._client: Any = None

    def unreachable_seconds(self) -> float:
        """Seconds since the broker last answered; 0 while it answers."""
        return 0.0 if self.reachable else max(0.0, self.clock() - self.last_ok)

    def record(self, ok: bool) -> None:
        """Take the result of one probe."""
        self.reachable = ok
        if ok:
            self.last_ok = self.clock()

    async def probe_once(self) -> bool:
        """One metadata round trip (bounded by ``timeout_s``); records and returns whether it worked."""
        from aiokafka.client import AIOKafkaClient

        try:
            if self._client is None:
                self._client = AIOKafkaClient(
                    bootstrap_servers=self.bootstrap_servers.split(","),
                    client_id="rapport-health",
                    request_timeout_ms=int(self.timeout_s * 1000),
                )
                await asyncio.wait_for(self._client.bootstrap(), self.timeout_s)
            else:
                await asyncio.wait_for(self._client.fetch_all_metadata(), self.timeout_s)
            ok = True
        except Exception:  # unreachable, timed out, refused: all the same to readiness
            if self._client is not None and not self._client.cluster.brokers():
                self._client = None  # never bootstrapped: start over next time
            ok = False
        self.record(ok)
        return ok


@dataclass(eq=False)  # a collector is registered by identity
class Health:
    """Readiness and liveness of one worker, from faust's own state and the broker probe.

    Ready: every agent has a running instance, input partitions are assigned, no rebalance or table
    recovery is under way, and the broker answered within ``broker_grace_s``. Alive: the event loop
    answers (or nothing would) and no agent has been without a running instance for longer than
    :data:`AGENT_DEAD_GRACE_S`.
    """

    app: Any
    service: str
    input_topic: str
    probe: BrokerProbe
    broker_grace_s: float
    clock: Callable[[], float] = time.monotonic
    checks: Sequence[tuple[str, Callable[[], bool]]] = ()
    """More conditions of readiness, by the reason shown while one is false (e.g. the notifier's
    directory not loaded yet)."""
    _dead_since: float | None = field(default=None, init=False)

    def dead_agents(self) -> list[str]:
        """Names of agents without a running instance."""
        dead = []
        for name, agent in dict(getattr(self.app, "agents", {}) or {}).items():
            actors = list(getattr(agent, "_actors", ()))
            running = [
                a
                for a in actors
                if a.actor_task is not None and not a.actor_task.done() and not a.crashed
            ]
            if not running:
                dead.append(str(name))
        return dead

    def _agents_dead_for(self) -> float:
        if not self.dead_agents():
            self._dead_since = None
            return 0.0
        now = self.clock()
        if self._dead_since is None:
            self._dead_since = now
        return now - self._dead_since

    def readiness(self) -> tuple[bool, list[str]]:
        """(ready, why not)."""
        reasons: list[str] = []
        app = self.app
        if self.dead_agents():
            reasons.append("agent not running")
        consumer = getattr(app, "_consumer", None)
        try:
            tps = consumer.assignment() if consumer is not None else ()
            assigned = [tp for tp in tps if tp.topic == self.input_topic]
        except Exception:  # consumer not started yet
            assigned = []
        if not assigned:
            reasons.append("no input partition assigned")
        if getattr(app, "rebalancing", False):
            reasons.append("rebalancing")
        if getattr(app, "in_recovery", False):
            reasons.append("table recovery running")
        down = self.probe.unreachable_seconds()
        if down > self.broker_grace_s:
            reasons.append(f"broker unreachable for {down:.0f} s")
        reasons += [why for why, check in self.checks if not check()]
        return not reasons, reasons

    def liveness(self) -> tuple[bool, list[str]]:
        """(alive, why not)."""
        if self._agents_dead_for() > AGENT_DEAD_GRACE_S:
            return False, ["agent dead"]
        return True, []

    def collect(self) -> Iterator[Metric]:
        """``rapport_<service>_ready`` and ``rapport_<service>_broker_unreachable_seconds`` at scrape time."""
        ready = GaugeMetricFamily(
            f"rapport_{self.service}_ready", "1 when the worker is ready (/readyz answers 200), else 0."
        )
        ready.add_metric([], 1.0 if self.readiness()[0] else 0.0)
        yield ready
        down = GaugeMetricFamily(
            f"rapport_{self.service}_broker_unreachable_seconds",
            "Seconds since the broker last answered this worker's probe; 0 while it answers.",
        )
        down.add_metric([], self.probe.unreachable_seconds())
        yield down


def add_health_views(
    app: Any,
    registry: CollectorRegistry,
    service: str,
    *,
    input_topic: str,
    bootstrap_servers: str,
    broker_grace_s: float,
    checks: Sequence[tuple[str, Callable[[], bool]]] = (),
) -> Health:
    """Add ``/metrics``, ``/healthz`` and ``/readyz`` to a faust app, the broker probe (a faust timer),
    and to ``registry``: the consumer-lag, readiness and broker gauges and the process collector
    (``process_start_time_seconds`` and friends)."""
    health = Health(
        app, service, input_topic, BrokerProbe(bootstrap_servers), broker_grace_s, checks=tuple(checks)
    )
    registry.register(ConsumerLagCollector(app, service))
    registry.register(health)
    ProcessCollector(registry=registry)

    @app.timer(interval=PROBE_INTERVAL_S)  # type: ignore[untyped-decorator]
    async def probe_broker() -> None:
        await health.probe.probe_once()

    @app.page("/metrics")  # type: ignore[untyped-decorator]
    async def metrics_view(web: Any, request: Any) -> Any:
        body, content_type = render_metrics(registry)
        # aiohttp refuses a charset inside content_type=, so the full header goes in headers.
        return web.bytes(body, headers={"Content-Type": content_type})

    @app.page("/healthz")  # type: ignore[untyped-decorator]
    async def healthz_view(web: Any, request: Any) -> Any:
        alive, reasons = health.liveness()
        body = {"status": "ok" if alive else "dead", "reasons": reasons}
        return web.json(body, status=200 if alive else 503)

    @app.page("/readyz")  # type: ignore[untyped-decorator]
    async def readyz_view(web: Any, request: Any) -> Any:
        ready, reasons = health.readiness()
        return web.json(
            {"status": "ready" if ready else "not ready", "reasons": reasons}, status=200 if ready else 503
        )

    return health
