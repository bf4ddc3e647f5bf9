"""The broker stops mid-test: the gateway answers 503 with Retry-After, and never 202 for an event that
is not on the topic. The test runs its own broker (its own state folder and ports) and stops only
that one, never the session's."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from shared.contracts import topics
from shared.runtime.provisioning import wait_for_broker
from tests.conftest import ROOT
from tests.gateway_support import auth, create_key, http
from tests.support import consume, free_port, namespace, provision, running_service, session_event, t

pytestmark = pytest.mark.integration
LAUNCHER = ROOT / "deploy" / "kafka" / "kafka.sh"


class OwnBroker:
    """A broker of this test only: ``deploy/kafka/kafka.sh`` with a state folder under ``tmp_path``."""

    def __init__(self, home: Path) -> None:
        self.port = free_port()
        self.env = {
            **os.environ,
            "KAFKA_HOME_DIR": str(home),
            "KAFKA_PORT": str(self.port),
            "KAFKA_CONTROLLER_PORT": str(free_port()),
        }
        self.bootstrap = f"127.0.0.1:{self.port}"

    def run(self, action: str) -> None:
        done = subprocess.run(
            ["bash", str(LAUNCHER), action],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert done.returncode == 0, f"kafka.sh {action} failed:\n{done.stdout}\n{done.stderr}"
        if action == "up":
            wait_for_broker(self.bootstrap, timeout_s=90)


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[OwnBroker]:
    broker = OwnBroker(tmp_path / "kafka")
    broker.run("up")
    try:
        yield broker
    finally:
        broker.run("down")


def test_broker_stopped_mid_stream_gives_503_and_no_false_202(own_broker: OwnBroker, tmp_path: Path) -> None:
    ns = namespace()
    provision(own_broker.bootstrap, ns)
    db = tmp_path / "gateway.sqlite3"
    _, key = create_key(db, "clinic-01")
    headers = auth(key, "application/json")
    answers: dict[str, tuple[int, dict[str, str]]] = {}
    bodies: dict[str, bytes] = {}
    counter = iter(range(1, 100_000))

    def post(base: str) -> tuple[str, int]:
        n = next(counter)
        event = session_event(client=f"c-{n % 7}", session_number=n)
        bodies[str(event.id)] = body = event.model_dump_json().encode()
        status, hdrs, _ = http("POST", f"{base}/v1/sessions", body, headers, timeout=30)
        answers[str(event.id)] = (status, hdrs)
        return str(event.id), status

    with running_service(
        "services.gateway",
        "RAPPORT_GATEWAY_",
        own_broker.bootstrap,
        ns,
        tmp_path,
        db_path=str(db),
        consume_scores="false",
        ack_timeout_s="2",
        retry_after_s="3",
        rate_per_s="10000",
        rate_burst="10000",
    ) as gw:
        base = f"http://127.0.0.1:{gw.port}"
        with ThreadPoolExecutor(max_workers=4) as pool:
            before = list(pool.map(lambda _: post(base), range(40)))
            assert Counter(s for _, s in before) == {202: 40}

            stopper = pool.submit(own_broker.run, "down")
            during: list[tuple[str, int]] = []
            deadline = time.monotonic() + 180
            # Keep sending while the broker goes away, until 503s have been seen (bounded).
            while time.monotonic() < deadline and sum(s == 503 for _, s in during) < 8:
                during += list(pool.map(lambda _: post(base), range(4)))
            stopper.result(timeout=120)
            assert sum(s == 503 for _, s in during) >= 8, Counter(s for _, s in during)
            down = [post(base) for _ in range(3)]
            assert [s for _, s in down] == [503, 503, 503], "broker down: nothing is accepted"

            own_broker.run("up")
            # Every 503'd event is retried until the gateway accepts it (bounded).
            refused = {eid for eid, (s, _) in answers.items() if s != 202}
            retry_deadline = time.monotonic() + 120
            while refused and time.monotonic() < retry_deadline:
                time.sleep(1)
                for eid in list(refused):
                    status, _, _ = http("POST", f"{base}/v1/sessions", bodies[eid], headers, timeout=30)
                    if status == 202:
                        refused.discard(eid)
            assert not refused, f"{len(refused)} events never accepted after the broker came back"

    statuses = Counter(s for s, _ in answers.values())
    assert set(statuses) <= {202, 503}, statuses
    assert all(h.get("retry-after") == "3" for s, h in answers.values() if s == 503)
    accepted_first_time = {eid for eid, (s, _) in answers.items() if s == 202}
    on_topic = consume(
        own_broker.bootstrap, t(ns, topics.SESSION_COMPLETED), expected=len(answers), settle_s=3
    )
    ids = Counter(json.loads(r.value)["id"] for r in on_topic)
    assert accepted_first_time <= set(ids), "a 202 was answered for an event that is not on the topic"
    assert set(ids) == set(answers), "every event is on the topic after its retries"
    assert max(ids.values()) == 1, "each event produced once, retries and all"
    print(f"broker-down run: {statuses[202]} answered 202, {statuses[503]} answered 503, {len(ids)} on topic")
