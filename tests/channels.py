"""Real local endpoints for the notifier's channels: an HTTP receiver (webhooks and chat) that can be
told to fail, and an SMTP server (aiosmtpd) that requires STARTTLS with a test CA (trustme)."""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import trustme
from aiosmtpd.controller import Controller

from tests.support import free_port


@dataclass
class Received:
    """One HTTP request the receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    at: float = 0.0
    """Unix time of arrival."""

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class HttpReceiver:
    """Records every POST; ``plan[path]`` lists statuses to answer in turn (then 200)."""

    port: int = 0
    requests: list[Received] = field(default_factory=list)
    plan: dict[str, list[int]] = field(default_factory=dict)
    delay_s: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def delivered(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.path == path and r.status == 200]

    def all(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.path == path]


def start_http_receiver() -> tuple[HttpReceiver, Callable[[], None]]:
    """Start a receiver on a free loopback port; returns it and its stop function."""
    receiver = HttpReceiver(port=free_port())

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            arrived = time.time()
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            delay = receiver.delay_s.get(self.path, 0.0)
            if delay:
                time.sleep(delay)
            with receiver.lock:
                planned = receiver.plan.get(self.path) or []
                status = planned.pop(0) if planned else 200
                receiver.requests.append(
                    Received(
                        self.path, {k.lower(): v for k, v in self.headers.items()}, body, status, arrived
                    )
                )
            try:
                self.send_response(status)
                if status in (429, 503):
                    self.send_header("Retry-After", "1")
                body_out = b"" if status == 204 else b"{}"
                self.send_header("Content-Length", str(len(body_out)))
                self.end_headers()
                self.wfile.write(body_out)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout under test)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", receiver.port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()

    return receiver, stop


@dataclass
class Mail:
    """One message the SMTP server accepted."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    tls: bool


class _Sink:
    def __init__(self) -> None:
        self.messages: list[Mail] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(
            Mail(envelope.mail_from, list(envelope.rcpt_tos), envelope.content, session.ssl is not None)
        )
        return "250 OK"


@dataclass
class SmtpSink:
    """A real SMTP server on loopback requiring STARTTLS; ``ca_file`` is the CA the client trusts."""

    port: int
    ca_file: Path
    handler: _Sink

    @property
    def messages(self) -> list[Mail]:
        return list(self.handler.messages)

    def to(self, address: str) -> list[Mail]:
        return [m for m in self.handler.messages if address in m.rcpt_tos]


def start_smtp_sink(tmp: Path) -> tuple[SmtpSink, Callable[[], None]]:
    """Start aiosmtpd with STARTTLS required, certificate from a throwaway CA."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    ca_file = tmp / "smtp-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    handler = _Sink()
    port = free_port()
    controller = Controller(
        handler, hostname="127.0.0.1", port=port, tls_context=context, require_starttls=True
    )
    controller.start()
    return SmtpSink(port, ca_file, handler), controller.stop


def wait_for(check: Callable[[], bool], timeout_s: float = 60.0, what: str = "condition") -> None:
    """Poll ``check`` until true (bounded); fail with ``what`` otherwise."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")
