"""The notifier on a real broker, with real endpoints: a signed webhook receiver, an SMTP server that
requires STARTTLS, and a chat incoming webhook."""

from __future__ import annotations

import base64
import os
import signal as os_signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import standardwebhooks

from shared.contracts import topics
from shared.contracts.alerts import ClinicDirectory
from tests.channels import HttpReceiver, SmtpSink, start_http_receiver, start_smtp_sink, wait_for
from tests.support import ServiceProcess, consume, free_port, produce, running_service, t, values
from tests.unit.alerting.factories import ack, signal

pytestmark = pytest.mark.integration
PREFIX = "RAPPORT_NOTIFIER_"
SECRET = "whsec_" + base64.b64encode(b"rapport-test-signing-key-0123456").decode()


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    rx, stop = start_http_receiver()
    yield rx
    stop()


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpSink]:
    sink, stop = start_smtp_sink(tmp_path)
    yield sink
    stop()


def directory(receiver: HttpReceiver, deadline_min: float = 10.0) -> ClinicDirectory:
    return ClinicDirectory.model_validate(
        {
            "clinic_id": "k1",
            "people": [
                {
                    "id": "t1",
                    "supervisor": "s1",
                    "channels": [
                        {"type": "webhook", "id": "ehr-1", "url": receiver.url("/ehr"), "secrets": ["EHR"]},
                        {"type": "email", "id": "t1-mail", "to": "t1@clinic.example"},
                        {"type": "chat", "id": "t1-chat", "url_secret": "CHAT"},
                    ],
                },
                {
                    "id": "s1",
                    "roles": ["clinician", "supervisor"],
                    "channels": [{"type": "email", "id": "s1-mail", "to": "s1@clinic.example"}],
                },
                {
                    "id": "o1",
                    "roles": ["on_call"],
                    "channels": [{"type": "chat", "id": "o1-chat", "url_secret": "OC"}],
                },
            ],
            "escalation": {
                "ack_deadline_minutes": deadline_min,
                "supervisor_deadline_minutes": deadline_min,
                "on_call": ["o1"],
            },
        }
    )


def env(receiver: HttpReceiver, smtp: SmtpSink, **extra: str) -> dict[str, str]:
    """Settings of the notifier under test (secrets the way production reads them)."""
    os.environ["RAPPORT_NOTIFIER_SECRET_EHR"] = SECRET
    os.environ["RAPPORT_NOTIFIER_SECRET_CHAT"] = receiver.url("/chat")
    os.environ["RAPPORT_NOTIFIER_SECRET_OC"] = receiver.url("/oncall")
    return {
        "store": "memory://",
        "smtp_port": str(smtp.port),
        "smtp_security": "starttls",
        "smtp_ca_file": str(smtp.ca_file),
        "retry_schedule_s": "[0.5, 0.5, 0.5]",
        "dispatch_interval_s": "0.1",
        "inbox_url": "https://inbox.example",
        **extra,
    }


def publish_directory(bootstrap: str, ns: str, entry: ClinicDirectory) -> None:
    produce(
        bootstrap, t(ns, topics.DIRECTORY), [(entry.clinic_id.encode(), entry.model_dump_json().encode())]
    )


def send_signals(bootstrap: str, ns: str, signals: list[Any]) -> None:
    produce(
        bootstrap,
        t(ns, topics.SIGNALS),
        [(f"{s.clinic_id}|{s.subject}".encode(), s.model_dump_json().encode()) for s in signals],
    )


def alert_events(bootstrap: str, ns: str, expected: int, timeout_s: float = 60.0) -> list[dict[str, Any]]:
    return values(consume(bootstrap, t(ns, topics.ALERTS), expected, timeout_s=timeout_s))


def verify(webhook: Any) -> dict[str, Any]:
    """Verify a delivery with the Standard Webhooks reference library (raises when invalid)."""
    return standardwebhooks.Webhook(SECRET).verify(webhook.body, webhook.headers)  # type: ignore[no-any-return]


def test_one_signal_is_one_alert_on_every_channel_and_repeats_change_nothing(
    kafka_bootstrap: str, ns: str, tmp_path: Path, receiver: HttpReceiver, smtp: SmtpSink
) -> None:
    publish_directory(kafka_bootstrap, ns, directory(receiver))
    crit = signal("critical_item")
    with running_service("services.notifier", PREFIX, kafka_bootstrap, ns, tmp_path, **env(receiver, smtp)):
        send_signals(kafka_bootstrap, ns, [crit])
        wait_for(
            lambda: (
                receiver.delivered("/ehr") and receiver.delivered("/chat") and smtp.to("t1@clinic.example")
            ),
            what="delivery on all three channels",
        )
        send_signals(kafka_bootstrap, ns, [crit, crit])
        events = alert_events(kafka_bootstrap, ns, expected=4, timeout_s=30)
    raised = [e for e in events if e["data"]["state"] == "raised"]
    delivered = {e["data"]["channel"] for e in events if e["data"]["state"] == "delivered"}
    assert len(raised) == 1, "three copies of one signal make one alert"
    assert delivered == {"webhook", "email", "chat"}
    (hook,) = receiver.delivered("/ehr")
    payload = verify(hook)
    assert payload["alert_id"] == raised[0]["data"]["alert_id"] and payload["severity"] == "critical"
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(SECRET).verify(hook.body + b" ", hook.headers)
    other = "whsec_" + base64.b64encode(b"another-key-0123456789abcdefghij").decode()
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(other).verify(hook.body, hook.headers)
    stale = {**hook.headers, "webhook-timestamp": str(int(hook.headers["webhook-timestamp"]) - 3600)}
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(SECRET).verify(hook.body, stale)
    (mail,) = smtp.to("t1@clinic.example")
    assert mail.tls, "delivered over STARTTLS"
    text = mail.data.decode()
    assert "c-1" not in text and "PHQ-9" not in text and "inbox.example/alerts/" in text
    (chat,) = receiver.delivered("/chat")
    assert "c-1" not in chat.body.decode() and "critical" in chat.json()["text"]


def test_a_failing_endpoint_is_retried_with_the_same_webhook_id(
    kafka_bootstrap: str, ns: str, tmp_path: Path, receiver: HttpReceiver, smtp: SmtpSink
) -> None:
    publish_directory(kafka_bootstrap, ns, directory(receiver))
    receiver.plan["/ehr"] = [503, 500]
    with running_service("services.notifier", PREFIX, kafka_bootstrap, ns, tmp_path, **env(receiver, smtp)):
        send_signals(kafka_bootstrap, ns, [signal("outcome_reliable_deterioration")])
        wait_for(lambda: receiver.delivered("/ehr"), what="the third attempt to succeed")
        events = alert_events(kafka_bootstrap, ns, expected=6)
    attempts = receiver.all("/ehr")
    assert [a.status for a in attempts] == [503, 500, 200]
    assert len({a.headers["webhook-id"] for a in attempts}) == 1, "one idempotency key across retries"
    for a in attempts:
        verify(a)
    failed = [e["data"] for e in events if e["data"]["state"] == "failed"]
    assert [(f["attempt"], f["outcome"]) for f in failed] == [(1, "http_503"), (2, "http_500")]
    assert all(f["next_attempt_at"] for f in failed)


def test_an_unacknowledged_critical_alert_escalates_also_across_a_restart_and_an_ack_stops_it(
    kafka_bootstrap: str, ns: str, tmp_path: Path, receiver: HttpReceiver, smtp: SmtpSink
) -> None:
    publish_directory(kafka_bootstrap, ns, directory(receiver, deadline_min=0.1))  # 6 s
    crit = signal("critical_item")
    settings = env(receiver, smtp, app_id=f"notifier-{ns.rstrip('.')}")
    with running_service("services.notifier", PREFIX, kafka_bootstrap, ns, tmp_path, **settings):
        send_signals(kafka_bootstrap, ns, [crit])
        wait_for(lambda: receiver.delivered("/ehr"), what="first delivery")
    # Down while the deadline passes; the restarted worker escalates what fell due meanwhile.
    time.sleep(7)
    assert smtp.to("s1@clinic.example") == [], "nothing escalated while the notifier was down"
    with running_service("services.notifier", PREFIX, kafka_bootstrap, ns, tmp_path, **settings):
        wait_for(lambda: smtp.to("s1@clinic.example"), timeout_s=60, what="escalation to the supervisor")
        events = alert_events(kafka_bootstrap, ns, expected=5)
        alert_id = next(e["data"]["alert_id"] for e in events if e["data"]["state"] == "raised")
        produce(
            kafka_bootstrap,
            t(ns, topics.ALERT_ACKS),
            [(b"k1|c-1", ack(alert_id, by="s1").model_dump_json().encode())],
        )
        wait_for(
            lambda: any(
                e["data"]["state"] == "acknowledged" for e in alert_events(kafka_bootstrap, ns, 1, 5)
            ),
            what="the acknowledgement",
        )
        time.sleep(8)  # past the supervisor's deadline: the on-call must not be called
        final = alert_events(kafka_bootstrap, ns, expected=1, timeout_s=10)
    steps = [e["data"]["escalation_step"] for e in final if e["data"]["state"] == "escalated"]
    assert steps == ["supervisor"], "escalated once, then stopped by the acknowledgement"
    assert receiver.delivered("/oncall") == []


@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
def test_a_notifier_killed_mid_stream_loses_no_alert_and_repeats_only_with_the_same_id(
    kafka_bootstrap: str, ns: str, tmp_path: Path, receiver: HttpReceiver, smtp: SmtpSink, store: str
) -> None:
    hook_only = ClinicDirectory.model_validate(
        {
            "clinic_id": "k1",
            "people": [
                {
                    "id": "t1",
                    "channels": [
                        {"type": "webhook", "id": "ehr-1", "url": receiver.url("/ehr"), "secrets": ["EHR"]}
                    ],
                }
            ],
        }
    )
    publish_directory(kafka_bootstrap, ns, hook_only)
    receiver.delay_s["/ehr"] = 0.05
    clients = [f"c-{i:03d}" for i in range(60)]
    sigs = [signal("critical_item", client=c) for c in clients]
    settings = env(
        receiver, smtp, store=store, app_id=f"notifier-{ns.rstrip('.')}", data_dir=str(tmp_path / "state")
    )
    service = ServiceProcess(
        "services.notifier",
        {
            f"{PREFIX}BOOTSTRAP_SERVERS": kafka_bootstrap,
            f"{PREFIX}TOPIC_NAMESPACE": ns,
            f"{PREFIX}PARTITIONS": "3",
            f"{PREFIX}WEB_PORT": str(free_port()),
            **{f"{PREFIX}{k.upper()}": v for k, v in settings.items()},
        },
        0,
        tmp_path / "notifier.log",
    )
    service.port = int(service.env[f"{PREFIX}WEB_PORT"])
    service.start()
    try:
        send_signals(kafka_bootstrap, ns, sigs)
        wait_for(lambda: len(receiver.delivered("/ehr")) >= 10, what="some deliveries before the kill")
        assert service.proc is not None
        service.proc.send_signal(os_signal.SIGKILL)
        service.proc.wait(timeout=30)
        delivered_before = len(receiver.delivered("/ehr"))
        service.start()
        wait_for(
            lambda: len({r.json()["alert_id"] for r in receiver.delivered("/ehr")}) == len(clients),
            timeout_s=120,
            what="every alert delivered after the restart",
        )
    finally:
        assert service.stop() == 0, service.logs()
    hooks = receiver.delivered("/ehr")
    by_id: dict[str, set[str]] = {}
    for h in hooks:
        by_id.setdefault(h.headers["webhook-id"], set()).add(verify(h)["alert_id"])
    assert all(len(ids) == 1 for ids in by_id.values()), "a webhook-id always names the same alert"
    assert len(by_id) == len(clients), "one delivery id per alert; repeats reuse it"
    assert {h.json()["client_id"] for h in hooks} == set(clients)
    events = alert_events(kafka_bootstrap, ns, expected=2 * len(clients))
    raised = {e["data"]["alert_id"]: e["id"] for e in events if e["data"]["state"] == "raised"}
    raised_ids = {e["id"] for e in events if e["data"]["state"] == "raised"}
    assert len(raised) == len(clients) and len(raised_ids) == len(clients), "no alert raised twice"
    assert delivered_before >= 10
