"""``/metrics``, ``/healthz`` and ``/readyz`` for a process that is not a Faust worker (the canary),
on the standard library's threaded HTTP server."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry

from shared.runtime.health import render_metrics


class _Handler(BaseHTTPRequestHandler):
    registry: CollectorRegistry
    alive: Callable[[], bool]
    ready: Callable[[], bool]

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            body, content_type = render_metrics(self.registry)
            self._send(200, body, content_type)
        elif path == "/healthz":
            ok = self.alive()
            self._json(200 if ok else 503, {"status": "ok" if ok else "stalled"})
        elif path == "/readyz":
            ok = self.ready()
            self._json(200 if ok else 503, {"status": "ready" if ok else "starting"})
        else:
            self._json(404, {"status": "not found"})

    def _json(self, status: int, payload: dict[str, str]) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Silence per-request access lines (scrapes every few seconds)."""


def serve_http(
    host: str,
    port: int,
    registry: CollectorRegistry,
    *,
    alive: Callable[[], bool],
    ready: Callable[[], bool],
) -> ThreadingHTTPServer:
    """Serve ``/metrics`` of ``registry``, ``/healthz`` (``alive()``) and ``/readyz`` (``ready()``)
    on a daemon thread; returns the server (``shutdown()`` stops it)."""
    handler = type(
        "RapportHttpHandler",
        (_Handler,),
        {"registry": registry, "alive": staticmethod(alive), "ready": staticmethod(ready)},
    )
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    return server
