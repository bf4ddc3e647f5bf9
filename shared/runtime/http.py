"""The HTTP side of services that are not Faust workers (FastAPI + uvicorn): ``/metrics``,
``/healthz``, ``/readyz`` with the same meaning as :mod:`shared.runtime.health`, and a runner with
Rapport's JSON logs.

uvicorn's access log is off: a request line carries the query string, and a query string can carry a
client id (``?subject=Patient/…``). Services count requests in their own metrics instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry

from shared.runtime.health import render_metrics

#: A readiness probe: (ready, details). Details are bounded facts (no ids), shown on ``/readyz``.
Readiness = Callable[[], tuple[bool, dict[str, Any]]]


def add_health_routes(app: Any, registry: CollectorRegistry, readiness: Readiness) -> None:
    """Add ``/metrics``, ``/healthz`` (the loop answers) and ``/readyz`` (``readiness`` says ready)
    to a FastAPI app, outside its OpenAPI schema."""
    from fastapi.responses import JSONResponse, Response

    @app.get("/metrics", include_in_schema=False)  # type: ignore[untyped-decorator]
    async def metrics_view() -> Response:
        body, content_type = render_metrics(registry)
        return Response(body, headers={"Content-Type": content_type})

    @app.get("/healthz", include_in_schema=False)  # type: ignore[untyped-decorator]
    async def healthz_view() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @app.get("/readyz", include_in_schema=False)  # type: ignore[untyped-decorator]
    async def readyz_view() -> JSONResponse:
        ready, details = readiness()
        return JSONResponse(
            {"status": "ready" if ready else "starting", **details}, status_code=200 if ready else 503
        )


def run_http(app: Any, *, host: str, port: int, log_level: str = "INFO", graceful_s: float = 15.0) -> None:
    """Serve an ASGI app with uvicorn (uvloop, httptools) and JSON logs until SIGTERM/SIGINT, then
    finish in-flight requests (bounded by ``graceful_s``) and run the app's shutdown."""
    import signal

    import uvicorn

    from shared.runtime.logs import logging_config

    log_config = logging_config(log_level)
    log_config["filters"] = {"repeats": {"()": "shared.runtime.logs.RepeatFilter"}}
    log_config["handlers"]["stderr"]["filters"] = ["repeats"]
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_config=log_config,
        log_level=log_level.lower(),
        timeout_graceful_shutdown=int(graceful_s),
        server_header=False,
    )
    # uvicorn re-raises the signal that stopped it once it has shut down; under the default SIGTERM
    # handler that kills the process (exit -15) after a clean stop. The stop is done by then: let
    # the process exit 0, like the Faust workers do.
    signal.signal(signal.SIGTERM, lambda *_: None)
    uvicorn.Server(config).run()
