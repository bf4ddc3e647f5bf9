"""The session-scoped Kafka broker fixture.

Order: ``KAFKA_BOOTSTRAP_SERVERS`` if set; else pytest-docker with ``docker-compose.yml`` when a Docker
engine answers; else the project's native launcher (``deploy/kafka/kafka.sh``). A broker that cannot be
had is a test failure with instructions, never a silent skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.runtime.provisioning import wait_for_broker

ROOT = Path(__file__).resolve().parent.parent
# The native launcher listens on $KAFKA_PORT (default 9092), like deploy/kafka/kafka.sh.
NATIVE_BOOTSTRAP = f"127.0.0.1:{os.environ.get('KAFKA_PORT', '9092')}"
HOW_TO = (
    "Start a broker with `make kafka-up` (needs Java 17 + Maven) or point KAFKA_BOOTSTRAP_SERVERS at one."
)


def _docker_engine_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return (
            subprocess.run(["docker", "info"], capture_output=True, timeout=15, check=False).returncode == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="session")
def docker_compose_file() -> str:
    """pytest-docker: the project's own compose file at the repository root."""
    return str(ROOT / "docker-compose.yml")


@pytest.fixture(scope="session")
def kafka_bootstrap(request: pytest.FixtureRequest) -> Iterator[str]:
    """Bootstrap servers of a real, answering Kafka broker for the whole test session."""
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
    if configured:
        try:
            wait_for_broker(configured, timeout_s=60)
        except TimeoutError as exc:
            pytest.fail(f"KAFKA_BOOTSTRAP_SERVERS={configured} does not answer: {exc}")
        yield configured
        return

    if _docker_engine_answers():
        docker_services = request.getfixturevalue("docker_services")
        docker_services.wait_until_responsive(
            check=lambda: _answers(NATIVE_BOOTSTRAP), timeout=120.0, pause=1.0
        )
        yield NATIVE_BOOTSTRAP
        return

    launcher = ROOT / "deploy" / "kafka" / "kafka.sh"
    status = subprocess.run(["bash", str(launcher), "status"], capture_output=True, check=False)
    started_here = status.returncode != 0
    up = subprocess.run(
        ["bash", str(launcher), "up"], capture_output=True, text=True, timeout=600, check=False
    )
    if up.returncode != 0:
        pytest.fail(
            f"the native Kafka launcher failed (exit {up.returncode}):\n{up.stdout}\n{up.stderr}\n{HOW_TO}"
        )
    try:
        wait_for_broker(NATIVE_BOOTSTRAP, timeout_s=60)
    except TimeoutError as exc:
        pytest.fail(f"{exc}\n{HOW_TO}")
    yield NATIVE_BOOTSTRAP
    if started_here and os.environ.get("RAPPORT_KEEP_KAFKA") != "1":
        subprocess.run(["bash", str(launcher), "down"], capture_output=True, timeout=120, check=False)


def _answers(bootstrap: str) -> bool:
    try:
        wait_for_broker(bootstrap, timeout_s=3)
        return True
    except TimeoutError:
        return False
