"""The whole chain on the real broker, through a real browser: a session event with a suicide-risk
answer → scoring → monitor (``critical_item``) → notifier (a signed webhook to the clinic's EHR) →
inbox → the clinician logs in, reads the alert and acknowledges it → the acknowledgement reaches the
notifier, and the escalation to the supervisor that was due never happens."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import standardwebhooks

from shared.contracts import topics
from shared.contracts.alerts import ClinicDirectory
from tests.channels import HttpReceiver, start_http_receiver, wait_for
from tests.support import PHQ9_MODERATE, consume, produce, running_service, session_event, t, values

pytestmark = pytest.mark.e2e
PASSWORD = "a long enough password"  # noqa: S105 - the test account's password
CHEAP = {"argon2_time_cost": "1", "argon2_memory_kib": "8", "argon2_parallelism": "1"}
SECRET = "whsec_" + base64.b64encode(b"chain-test-signing-key-012345678").decode()
DEADLINE_S = 40


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    rx, stop = start_http_receiver()
    yield rx
    stop()


def _directory(receiver: HttpReceiver) -> ClinicDirectory:
    return ClinicDirectory.model_validate(
        {
            "clinic_id": "clinic-01",
            "people": [
                {
                    "id": "clin-01",
                    "supervisor": "sup-01",
                    "channels": [
                        {"type": "webhook", "id": "ehr", "url": receiver.url("/ehr"), "secrets": ["EHR"]}
                    ],
                },
                {
                    "id": "sup-01",
                    "roles": ["clinician", "supervisor"],
                    "channels": [{"type": "chat", "id": "sup-chat", "url_secret": "SUP"}],
                },
            ],
            "escalation": {"ack_deadline_minutes": DEADLINE_S / 60},
        }
    )


def _alert_states(bootstrap: str, ns: str) -> list[dict[str, Any]]:
    return [e["data"] for e in values(consume(bootstrap, t(ns, topics.ALERTS), 1, timeout_s=10, settle_s=1))]


def test_a_risk_answer_reaches_the_clinician_who_acknowledges_it_in_the_inbox_and_escalation_stops(
    kafka_bootstrap: str, ns: str, tmp_path: Path, receiver: HttpReceiver, browser: Any
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    entry = _directory(receiver)
    produce(kafka_bootstrap, t(ns, topics.DIRECTORY), [(b"clinic-01", entry.model_dump_json().encode())])
    os.environ["RAPPORT_NOTIFIER_SECRET_EHR"] = SECRET
    os.environ["RAPPORT_NOTIFIER_SECRET_SUP"] = receiver.url("/supervisor")
    url = f"sqlite:///{tmp_path / 'inbox.db'}"
    env = {**os.environ, **{f"RAPPORT_INBOX_{k.upper()}": v for k, v in CHEAP.items()}}
    added = subprocess.run(
        [
            *(sys.executable, "-m", "shared.cli", "inbox", "--database-url", url, "users", "add", "alice"),
            *("--clinic", "clinic-01", "--person", "clin-01", "--password-stdin"),
        ],
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert added.returncode == 0, added.stderr

    with (
        running_service("services.scoring", "RAPPORT_SCORING_", kafka_bootstrap, ns, tmp_path),
        running_service(
            "services.monitor", "RAPPORT_MONITOR_", kafka_bootstrap, ns, tmp_path, store="memory://"
        ),
        running_service(
            "services.notifier",
            "RAPPORT_NOTIFIER_",
            kafka_bootstrap,
            ns,
            tmp_path,
            store="memory://",
            dispatch_interval_s="0.1",
        ) as notifier,  # fmt: skip
        running_service(
            "services.inbox",
            "RAPPORT_INBOX_",
            kafka_bootstrap,
            ns,
            tmp_path,
            database_url=url,
            secret_key="x" * 48,
            **CHEAP,
        ) as inbox,  # fmt: skip
    ):
        session = session_event(
            client="c-1042",
            clinic="clinic-01",
            clinician="clin-01",
            surveys=(("PHQ-9", {**PHQ9_MODERATE, "9": 3}),),
        )
        sent_at = time.monotonic()
        produce(
            kafka_bootstrap,
            t(ns, topics.SESSION_COMPLETED),
            [(b"clinic-01|c-1042", session.model_dump_json().encode())],
        )
        wait_for(lambda: receiver.delivered("/ehr"), timeout_s=90, what="the webhook to the clinic's EHR")
        (hook,) = receiver.delivered("/ehr")
        body = standardwebhooks.Webhook(SECRET).verify(hook.body, hook.headers)
        assert (body["kind"], body["severity"], body["client_id"]) == ("critical_item", "critical", "c-1042")
        alert_id = body["alert_id"]

        base = f"http://127.0.0.1:{inbox.port}"
        wait = WebDriverWait(browser, 30)
        browser.get(f"{base}/login")
        wait.until(ec.presence_of_element_located((By.ID, "username")))
        browser.find_element(By.ID, "username").send_keys("alice")
        browser.find_element(By.ID, "password").send_keys(PASSWORD)
        browser.find_element(By.CSS_SELECTOR, "form.login button[type=submit]").click()

        def listed() -> bool:
            browser.get(f"{base}/alerts")
            return bool(browser.find_elements(By.CSS_SELECTOR, f'a[href="/alerts/{alert_id}"]'))

        wait_for(listed, timeout_s=60, what="the alert in the clinician's inbox")
        browser.find_element(By.CSS_SELECTOR, f'a[href="/alerts/{alert_id}"]').click()
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, 'svg.chart[data-instrument="PHQ-9"]')))
        chart = browser.find_element(By.CSS_SELECTOR, 'svg.chart[data-instrument="PHQ-9"]')
        assert len(chart.find_elements(By.CSS_SELECTOR, "circle.point")) == 1
        browser.find_element(By.ID, "acknowledge").click()
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "p.acknowledged")))
        assert time.monotonic() - sent_at < DEADLINE_S, "acknowledged before the escalation deadline"

        wait_for(
            lambda: any(e["state"] == "acknowledged" for e in _alert_states(kafka_bootstrap, ns)),
            timeout_s=60,
            what="the notifier's acknowledged event",
        )
        remaining = DEADLINE_S - (time.monotonic() - sent_at)
        time.sleep(max(0.0, remaining) + 5)  # past the deadline the escalation would have fired at
        states = _alert_states(kafka_bootstrap, ns)
        metrics = notifier.get("/metrics")[1]

    assert [e["state"] for e in states if e["state"] in ("raised", "acknowledged", "escalated")] == [
        "raised",
        "acknowledged",
    ]
    acked = next(e for e in states if e["state"] == "acknowledged")
    assert acked["acknowledged_by"] == "clin-01"
    assert receiver.all("/supervisor") == [], "the supervisor was never paged"
    assert "rapport_notifier_oldest_unacked_critical_seconds 0.0" in metrics
    assert json.loads(hook.body)["alert_id"] == alert_id
