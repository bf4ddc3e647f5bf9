"""Test helpers: event factories, a service subprocess runner, bounded produce/consume on real Kafka."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from shared.contracts.events import SessionCompleted, SessionCompletedData, SurveyResponse, derive_id
from shared.contracts.topics import topic_name
from shared.runtime.provisioning import apply_topics, producer_config

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

PHQ9_MODERATE = {"1": 1, "2": 2, "3": 1, "4": 2, "5": 1, "6": 1, "7": 2, "8": 1, "9": 0}  # total 11


def session_event(
    *,
    client: str = "c-001",
    clinic: str = "clinic-01",
    clinician: str = "clin-01",
    episode: str = "ep-1",
    session_number: int = 1,
    surveys: Sequence[tuple[str, dict[str, Any]]] = (("PHQ-9", PHQ9_MODERATE),),
) -> SessionCompleted:
    """A valid ``SessionCompleted`` with a deterministic id."""
    when = T0 + timedelta(weeks=session_number - 1)
    return SessionCompleted(
        id=derive_id("test-session", clinic, client, episode, session_number),
        source="tests",
        time=when,
        subject=client,
        clinic_id=clinic,
        correlation_id=derive_id("test-session", clinic, client, episode, session_number),
        data=SessionCompletedData(
            clinician_id=clinician,
            client_id=client,
            episode_id=episode,
            session_number=session_number,
            session_time=when,
            surveys=[SurveyResponse(instrument=i, answers=a, completed_at=when) for i, a in surveys],
        ),
    )


def free_port() -> int:
    """A TCP port on loopback nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def namespace() -> str:
    """A unique topic namespace so a test never sees another test's records."""
    return f"t{uuid.uuid4().hex[:10]}."


def provision(bootstrap: str, ns: str, partitions: int = 3) -> None:
    """Create every catalogue topic under ``ns``."""
    apply_topics(bootstrap, partitions=partitions, namespace=ns)


def produce(bootstrap: str, topic: str, records: Sequence[tuple[bytes | None, bytes]]) -> None:
    """Send records and wait until the broker acknowledged all of them."""
    from kafka import KafkaProducer

    producer = KafkaProducer(**producer_config(bootstrap))
    try:
        futures = [producer.send(topic, key=k, value=v) for k, v in records]
        producer.flush(timeout=60)
        for f in futures:
            f.get(timeout=30)
    finally:
        producer.close(timeout=10)


def consume(
    bootstrap: str, topic: str, expected: int, timeout_s: float = 60.0, settle_s: float = 2.0
) -> list[Any]:
    """Read ``topic`` from the beginning until ``expected`` records arrived (then ``settle_s`` more
    to catch extras), or the timeout passes. Returns what arrived; callers assert on it."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap.split(","),
        group_id=f"test-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=500,
    )
    records: list[Any] = []
    deadline = time.monotonic() + timeout_s
    settle_until: float | None = None
    try:
        while time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=500)
            for recs in batch.values():
                records.extend(recs)
            if len(records) >= expected:
                settle_until = settle_until or time.monotonic() + settle_s
                if time.monotonic() >= settle_until:
                    break
    finally:
        consumer.close()
    return records


def values(records: Sequence[Any]) -> list[dict[str, Any]]:
    """Decode record values as JSON."""
    return [json.loads(r.value) for r in records]


@dataclass
class ServiceProcess:
    """A service started as its own process, exactly as in production (``python -m services.X``)."""

    module: str
    env: dict[str, str]
    port: int
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    def spawn(self) -> ServiceProcess:
        """Start the process without waiting for it to be ready."""
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", self.module],
            env={**os.environ, **self.env},
            cwd=self.log_path.parent,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        return self

    def start(self, ready_timeout_s: float = 120.0) -> ServiceProcess:
        """Start the process and wait until ``/readyz`` answers 200 (bounded)."""
        self.spawn()
        assert self.proc is not None
        deadline = time.monotonic() + ready_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.module} exited early ({self.proc.returncode}):\n{self.logs()}")
            if self.get("/readyz")[0] == 200:
                return self
            time.sleep(0.5)
        raise TimeoutError(f"{self.module} not ready within {ready_timeout_s}s:\n{self.logs()}")

    def get(self, path: str) -> tuple[int, str]:
        """GET a path of the service's web server; (status, body), or (0, '') if unreachable."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=3) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()
        except (urllib.error.URLError, OSError):
            return 0, ""

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """SIGTERM, wait (bounded), SIGKILL if needed; returns the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout=10)

    def logs(self) -> str:
        """The service's output so far (for failure messages)."""
        return self.log_path.read_text(errors="replace")[-6000:] if self.log_path.exists() else ""


@contextlib.contextmanager
def running_service(
    module: str, prefix: str, bootstrap: str, ns: str, tmp_path: Path, **extra: str
) -> Iterator[ServiceProcess]:
    """Run ``module`` with its settings pointing at ``bootstrap`` and namespace ``ns``."""
    port = free_port()
    env = {
        f"{prefix}BOOTSTRAP_SERVERS": bootstrap,
        f"{prefix}APP_ID": f"{module.rsplit('.', 1)[-1]}-{ns.rstrip('.')}",
        f"{prefix}TOPIC_NAMESPACE": ns,
        f"{prefix}WEB_PORT": str(port),
        **{f"{prefix}{k.upper()}": v for k, v in extra.items()},
    }
    service = ServiceProcess(module, env, port, tmp_path / f"{module}.log")
    service.start()
    try:
        yield service
    except BaseException:
        service.stop()
        raise
    code = service.stop()
    assert code == 0, f"{module} did not stop cleanly on SIGTERM (exit {code}):\n{service.logs()}"


def t(ns: str, base: str) -> str:
    """Shorthand for the physical topic name in a namespace."""
    return topic_name(base, ns)


def scored_events(event: SessionCompleted) -> list[Any]:
    """The ``SurveyScored`` events the real scoring handler makes of ``event``."""
    from services.scoring.handlers import score_record
    from shared.instruments import default_registry
    from shared.runtime.worker import Record

    record = Record(None, event.model_dump_json().encode(), "t", 0, 0)
    handled = score_record(record, default_registry(), event.time)
    assert not handled.rejections, handled.rejections
    return list(handled.facts)


def srs(total: float) -> dict[str, float]:
    """SRS answers (4 items, 0–10) summing to ``total``."""
    each = round(total / 4, 1)
    last = round(total - 3 * each, 1)
    return {"1": each, "2": each, "3": each, "4": last}
