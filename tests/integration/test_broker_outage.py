"""Honest health during a broker outage, on a private broker this test stops and starts again (the
session's broker stays up for every other test): both services turn not-ready once the broker has
been unreachable for longer than their grace, stay alive, log each kind of error once instead of
thousands of times, become ready again when it returns, and lose nothing."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from shared.contracts import topics
from shared.contracts.events import derive_id
from shared.runtime.provisioning import wait_for_broker
from tests.support import (
    ServiceProcess,
    consume,
    free_port,
    namespace,
    produce,
    provision,
    running_service,
    session_event,
    t,
    values,
)

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
LAUNCHER = ROOT / "deploy" / "kafka" / "kafka.sh"
GRACE_S = 3
OUTAGE_S = 25


@dataclass
class PrivateBroker:
    bootstrap: str
    env: dict[str, str]

    def run(self, action: str) -> None:
        command = ["bash", str(LAUNCHER), action]
        done = subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 0, f"kafka.sh {action} failed:\n{done.stdout}\n{done.stderr}"


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[PrivateBroker]:
    """A broker of its own (native launcher, free ports, state under tmp_path)."""
    home = tmp_path / "kafka"
    home.mkdir()
    shared_libs = Path(os.environ.get("KAFKA_HOME_DIR") or ROOT / ".kafka") / "libs"
    if shared_libs.is_dir():  # the session broker's resolved jars: no Maven run
        (home / "libs").symlink_to(shared_libs)
    port = free_port()
    env = {
        **os.environ,
        "KAFKA_HOME_DIR": str(home),
        "KAFKA_PORT": str(port),
        "KAFKA_CONTROLLER_PORT": str(free_port()),
    }
    broker = PrivateBroker(f"127.0.0.1:{port}", env)
    broker.run("up")
    try:
        wait_for_broker(broker.bootstrap, timeout_s=60)
        yield broker
    finally:
        broker.run("down")


def _wait_for(check: object, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        time.sleep(0.5)
    return False


def test_broker_outage_is_not_ready_alive_quiet_and_loses_nothing(
    private_broker: PrivateBroker, tmp_path: Path
) -> None:
    bootstrap = private_broker.bootstrap
    ns = namespace()
    provision(bootstrap, ns)
    before, after = session_event(client="c-before"), session_event(client="c-after")
    extra = {"broker_grace_s": str(GRACE_S), "store": "memory://"}
    with (
        running_service("services.scoring", "RAPPORT_SCORING_", bootstrap, ns, tmp_path, **extra) as scoring,
        running_service("services.monitor", "RAPPORT_MONITOR_", bootstrap, ns, tmp_path, **extra) as monitor,
    ):
        services: list[ServiceProcess] = [scoring, monitor]
        produce(bootstrap, t(ns, topics.SESSION_COMPLETED), [(b"c", before.model_dump_json().encode())])
        assert len(consume(bootstrap, t(ns, topics.SURVEY_SCORED), expected=1, settle_s=0)) == 1
        lines_before = [len(s.log_path.read_text().splitlines()) for s in services]

        private_broker.run("down")
        down_at = time.monotonic()
        for svc in services:
            assert _wait_for(lambda svc=svc: svc.get("/readyz")[0] == 503, 60), f"{svc.module} still ready"
            body = svc.get("/readyz")[1]
            assert "broker unreachable" in body
            assert svc.get("/healthz")[0] == 200, "alive: waiting for the broker is not a reason to restart"
            name = svc.module.rsplit(".", 1)[-1]
            metrics = svc.get("/metrics")[1]
            assert f"rapport_{name}_ready 0.0" in metrics
            unreachable = next(
                float(line.split()[-1])
                for line in metrics.splitlines()
                if line.startswith(f"rapport_{name}_broker_unreachable_seconds ")
            )
            assert unreachable > GRACE_S
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_at)))
        outage_lines = [
            len(s.log_path.read_text().splitlines()) - n for s, n in zip(services, lines_before, strict=True)
        ]

        private_broker.run("up")
        for svc in services:
            assert _wait_for(lambda svc=svc: svc.get("/readyz")[0] == 200, 120), svc.logs()
            name = svc.module.rsplit(".", 1)[-1]
            assert f"rapport_{name}_broker_unreachable_seconds 0.0" in svc.get("/metrics")[1]
        produce(bootstrap, t(ns, topics.SESSION_COMPLETED), [(b"c", after.model_dump_json().encode())])
        scored = consume(bootstrap, t(ns, topics.SURVEY_SCORED), expected=2, timeout_s=90)

    for svc, n in zip(services, outage_lines, strict=True):
        # Before the repeat filter each service wrote ~4,000 error lines a minute with the broker down.
        assert n < 100, f"{svc.module} wrote {n} log lines in a {OUTAGE_S} s outage"
    ids = {v["id"] for v in values(scored)}
    assert ids == {str(derive_id(e.id, "survey-scored", "PHQ-9")) for e in (before, after)}, "nothing lost"
