"""The channel adapters against real local endpoints (no broker): how each answer is classified,
what is signed, and that a slow endpoint is cut off by the timeout."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
import standardwebhooks
from pydantic import SecretStr

from services.notifier.channels import (
    ChannelRouter,
    ChatAdapter,
    EmailAdapter,
    HttpSession,
    NullAdapter,
    Outbound,
    WebhookAdapter,
)
from services.notifier.settings import NotifierSettings
from shared.alerting.messages import Message
from shared.alerting.state import DeliveryJob
from shared.contracts.alerts import ChatChannel, EmailChannel, WebhookChannel
from tests.channels import HttpReceiver, start_http_receiver, start_smtp_sink
from tests.support import free_port

SECRET = "whsec_" + base64.b64encode(b"unit-test-signing-key-0123456789").decode()
OLD = "whsec_" + base64.b64encode(b"previous-signing-key-0123456789a").decode()


@pytest.fixture
def rx() -> Iterator[HttpReceiver]:
    receiver, stop = start_http_receiver()
    yield receiver
    stop()


def job(channel: str = "webhook") -> DeliveryJob:
    return DeliveryJob(id="d-1", recipient_id="t1", role="clinician", channel=channel, endpoint_id="e-1")  # type: ignore[arg-type]


def hook(rx: HttpReceiver, path: str = "/h", secrets: tuple[str, ...] = ("NEW",)) -> Outbound:
    channel = WebhookChannel(id="e-1", url=rx.url(path), secrets=list(secrets))
    return Outbound(job(), channel, b'{"alert_id":"a"}', Message("s", "t"))


def router(adapters: dict, timeout_s: float = 5.0) -> ChannelRouter:  # type: ignore[type-arg]
    return ChannelRouter(adapters, timeout_s)


def deliver(r: ChannelRouter, outbound: Outbound) -> tuple[str, str, float | None]:
    async def go() -> tuple[str, str, float | None]:
        outcome = await r.deliver(outbound)
        return outcome.result, outcome.code, outcome.retry_after_s

    return asyncio.run(go())


def webhooks(secrets: dict[str, str]) -> ChannelRouter:
    http = HttpSession(5.0)
    return router({"webhook": WebhookAdapter(http, {k: SecretStr(v) for k, v in secrets.items()})})


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (200, ("delivered", "http_200", None)),
        (204, ("delivered", "http_204", None)),
        (503, ("retry", "http_503", 1.0)),
        (429, ("retry", "http_429", 1.0)),
        (500, ("retry", "http_500", None)),
        (410, ("gone", "http_410", None)),
        (400, ("rejected", "http_400", None)),
        (401, ("rejected", "http_401", None)),
    ],
)
def test_webhook_answers_are_classified(
    rx: HttpReceiver, status: int, expected: tuple[str, str, float | None]
) -> None:
    rx.plan["/h"] = [status]
    assert deliver(webhooks({"NEW": SECRET}), hook(rx)) == expected


def test_every_secret_of_a_rotation_signs_and_each_verifies(rx: HttpReceiver) -> None:
    deliver(webhooks({"NEW": SECRET, "OLD": OLD}), hook(rx, secrets=("NEW", "OLD")))
    (req,) = rx.all("/h")
    assert req.headers["webhook-id"] == "d-1"
    assert len(req.headers["webhook-signature"].split(" ")) == 2
    for secret in (SECRET, OLD):
        standardwebhooks.Webhook(secret).verify(req.body, req.headers)


def test_a_missing_secret_is_refused_without_sending(rx: HttpReceiver) -> None:
    assert deliver(webhooks({}), hook(rx))[:2] == ("rejected", "missing_secret")
    assert rx.all("/h") == []


def test_an_endpoint_nobody_listens_on_is_retried() -> None:
    channel = WebhookChannel(id="e-1", url=f"http://127.0.0.1:{free_port()}/h", secrets=["NEW"])
    outcome = deliver(webhooks({"NEW": SECRET}), Outbound(job(), channel, b"{}", Message("s", "t")))
    assert outcome[:2] == ("retry", "connection")


def test_a_slow_endpoint_is_cut_off_by_the_timeout(rx: HttpReceiver) -> None:
    rx.delay_s["/slow"] = 2.0
    http = HttpSession(5.0)
    slow = router({"webhook": WebhookAdapter(http, {"NEW": SecretStr(SECRET)})}, timeout_s=0.3)
    assert deliver(slow, hook(rx, "/slow"))[:2] == ("retry", "timeout")


def test_chat_carries_only_the_message(rx: HttpReceiver) -> None:
    http = HttpSession(5.0)
    r = router({"chat": ChatAdapter(http, {"CHAT": SecretStr(rx.url("/chat"))})})
    channel = ChatChannel(id="c-1", url_secret="CHAT")  # noqa: S106 - a secret name
    assert deliver(r, Outbound(job("chat"), channel, b"", Message("Subj", "Text")))[0] == "delivered"
    (req,) = rx.all("/chat")
    assert req.json() == {"text": "*Subj*\nText"}


def test_the_null_channel_delivers_nothing() -> None:
    assert (
        deliver(router({"null": NullAdapter()}), Outbound(job(), None, b"", Message("s", "t")))[0]
        == "delivered"
    )


def test_email_goes_over_starttls_and_a_server_without_tls_is_not_used(tmp_path: Path) -> None:
    sink, stop = start_smtp_sink(tmp_path)
    try:
        settings = NotifierSettings(
            smtp_port=sink.port,
            smtp_security="starttls",
            smtp_ca_file=str(sink.ca_file),
            smtp_from="r@x.example",
        )
        channel = EmailChannel(id="m-1", to="t1@clinic.example")
        out = Outbound(job("email"), channel, b"", Message("Rapport: an alert is waiting", "link"))
        assert deliver(router({"email": EmailAdapter(settings)}), out)[0] == "delivered"
        (mail,) = sink.to("t1@clinic.example")
        assert mail.tls and b"Subject: Rapport: an alert is waiting" in mail.data
        untrusted = NotifierSettings(smtp_port=sink.port, smtp_security="starttls")
        assert deliver(router({"email": EmailAdapter(untrusted)}), out)[0] == "retry", (
            "unverified TLS is refused"
        )
    finally:
        stop()
