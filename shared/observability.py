"""Logging, metrics and health helpers shared by every service.

Logs are JSON lines carrying an allowlisted set of fields only: whatever else a caller passes in
``extra`` is dropped, so a client id or an answer can never reach a log line by accident.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

#: The only ``extra`` fields a log line may carry. None of them can hold PHI.
ALLOWED_LOG_FIELDS = frozenset(
    {
        "service",
        "stage",
        "reason",
        "error_type",
        "topic",
        "partition",
        "offset",
        "attempt",
        "count",
        "instrument",
        "rule",
        "kind",
        "severity",
        "event_id",
        "correlation_id",
        "elapsed_s",
    }
)

_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and allowlisted extras."""

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record`` as a JSON line, dropping non-allowlisted fields."""
        out: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": _message(record),
        }
        for key, value in vars(record).items():
            if key in ALLOWED_LOG_FIELDS and key not in _STANDARD_ATTRS:
                out[key] = value if isinstance(value, int | float | bool) else str(value)
        if record.exc_info and record.exc_info[0] is not None:
            # The exception type only: exception messages can echo input values.
            out["error_type"] = record.exc_info[0].__name__
        return json.dumps(out, separators=(",", ":"))


_SAFE_TOKEN = re.compile(r"^[A-Za-z0-9._:/@=-]{0,200}$")


def _safe_arg(value: object, depth: int = 0) -> object:
    """A log argument reduced to what cannot carry PHI: numbers, identifier-like strings (topics,
    group ids, hosts), sequences of those (topic-partitions); anything else — free text, bytes,
    mappings (a decoded record would be one) — by type only."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return value if _SAFE_TOKEN.match(value) else "<str>"
    if isinstance(value, BaseException):
        return type(value).__name__
    if depth < 3 and isinstance(value, tuple | list | set | frozenset):
        items = [_safe_arg(v, depth + 1) for v in list(value)[:50]]
        return tuple(items) if isinstance(value, tuple) else items
    return f"<{type(value).__name__}>"


def _message(record: logging.LogRecord) -> str:
    # Our own messages are fixed strings with allowlisted args. Third-party libraries may format a
    # record's value into theirs, so their args are reduced to PHI-free forms before formatting.
    if record.name.startswith(("shared", "services")):
        return record.getMessage()
    template = record.msg if isinstance(record.msg, str) else type(record.msg).__name__
    if not record.args:
        return template
    args = record.args if isinstance(record.args, tuple) else (record.args,)
    try:
        return template % tuple(_safe_arg(a) for a in args)
    except (TypeError, ValueError, KeyError):
        return template


def logging_config(level: str = "INFO") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` mapping that sends every logger through ``JsonFormatter``."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": f"{__name__}.JsonFormatter"}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": level.upper(), "handlers": ["stderr"]},
    }


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


def add_health_views(app: Any, registry: CollectorRegistry, service: str) -> None:
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
        return web.json(
            {"status": "ready" if ready else "starting", "assigned_partitions": assigned},
            status=200 if ready else 503,
        )


def run_worker(app: Any, log_level: str = "INFO") -> None:
    """Run a faust app as a worker with JSON logs until SIGTERM/SIGINT, then stop cleanly."""
    import faust

    worker = faust.Worker(
        app,
        loglevel=log_level,
        logging_config=logging_config(log_level),
        redirect_stdouts=False,
    )
    worker.execute_from_commandline()
