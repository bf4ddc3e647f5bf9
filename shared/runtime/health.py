"""Health and metrics endpoints of a Faust worker: ``/metrics``, ``/healthz``, ``/readyz``."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
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


def add_health_views(
    app: Any, registry: CollectorRegistry, service: str, ready_checks: Sequence[Callable[[], bool]] = ()
) -> None:
    """Add ``/metrics``, ``/healthz`` (the loop answers) and ``/readyz`` to a faust app, and the
    consumer-lag gauge to ``registry``.

    Ready means: partitions assigned, no rebalance under way, and table recovery finished.
    """
    registry.register(ConsumerLagCollector(app, service))

    @app.page("/metrics")  # type: ignore[untyped-decorator]
    async def metrics_view(web: Any, request: Any) -> Any:
        body, content_type = render_metrics(registry)
        # aiohttp refuses a charset inside content_type=, so the full header goes in headers.
        return web.bytes(body, headers={"Content-Type": content_type})

    @app.page("/healthz")  # type: ignore[untyped-decorator]
    async def healthz_view(web: Any, request: Any) -> Any:
        return web.json({"status": "ok"})

    @app.page("/readyz")  # type: ignore[untyped-decorator]
    async def readyz_view(web: Any, request: Any) -> Any:
        assigned = len(app.consumer.assignment())
        ready = assigned > 0 and not app.rebalancing and not getattr(app, "in_recovery", False)
        ready = ready and all(check() for check in ready_checks)
        return web.json(
            {"status": "ready" if ready else "starting", "assigned_partitions": assigned},
            status=200 if ready else 503,
        )
