"""Delivery channels behind one small port: ``deliver(outbound) -> AttemptOutcome``.

Adapters: a Standard Webhooks v1 signed webhook, SMTP email (STARTTLS or implicit TLS), a
Slack-compatible chat incoming webhook, and a null channel (the canary clinic). Each attempt is
bounded by a timeout; every failure is classified (``shared.alerting.retry``), never raised.
"""

from __future__ import annotations

import asyncio
import email.message
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import aiohttp
from pydantic import SecretStr

from services.notifier.settings import NotifierSettings
from shared.alerting.messages import Message, chat_payload, webhook_headers
from shared.alerting.retry import AttemptOutcome, classify_http
from shared.alerting.state import DeliveryJob
from shared.contracts.alerts import ChatChannel, EmailChannel, WebhookChannel


@dataclass(frozen=True)
class Outbound:
    """One attempt to make: the job, the channel's configuration, and what to say."""

    job: DeliveryJob
    channel: WebhookChannel | EmailChannel | ChatChannel | None
    """``None`` for the null channel."""
    webhook_body: bytes
    message: Message


class ChannelPort(Protocol):
    """What the dispatcher needs from a channel."""

    async def deliver(self, outbound: Outbound) -> AttemptOutcome:
        """Make one attempt; never raises."""


class WebhookAdapter:
    """Standard Webhooks v1: ``webhook-id`` (the delivery id, stable across retries),
    ``webhook-timestamp`` and ``webhook-signature`` signed with every secret of a rotation."""

    def __init__(
        self,
        session: Callable[[], aiohttp.ClientSession],
        secrets: Mapping[str, SecretStr],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.session = session
        self.secrets = secrets
        self.clock = clock

    async def deliver(self, outbound: Outbound) -> AttemptOutcome:
        """POST the signed body."""
        channel = outbound.channel
        assert isinstance(channel, WebhookChannel)  # noqa: S101 - routed by type
        keys = [self.secrets[name].get_secret_value() for name in channel.secrets if name in self.secrets]
        if not keys:
            return AttemptOutcome("rejected", "missing_secret")
        body = outbound.webhook_body
        headers = webhook_headers(outbound.job.id, int(self.clock()), body, keys)
        return await _post(self.session(), channel.url, body, headers)


class ChatAdapter:
    """A Slack-compatible incoming webhook: ``{"text": …}``, no client data."""

    def __init__(
        self, session: Callable[[], aiohttp.ClientSession], secrets: Mapping[str, SecretStr]
    ) -> None:
        self.session = session
        self.secrets = secrets

    async def deliver(self, outbound: Outbound) -> AttemptOutcome:
        """POST the message to the secret URL."""
        channel = outbound.channel
        assert isinstance(channel, ChatChannel)  # noqa: S101 - routed by type
        url = self.secrets.get(channel.url_secret)
        if url is None:
            return AttemptOutcome("rejected", "missing_secret")
        return await _post(
            self.session(),
            url.get_secret_value(),
            chat_payload(outbound.message),
            {"content-type": "application/json"},
        )


async def _post(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]
) -> AttemptOutcome:
    try:
        async with session.post(url, data=body, headers=headers, allow_redirects=False) as response:
            await response.read()
            return classify_http(response.status, response.headers.get("Retry-After"), datetime.now(UTC))
    except TimeoutError:
        return AttemptOutcome("retry", "timeout")
    except aiohttp.ClientError as exc:
        return AttemptOutcome("retry", _error_code(exc))


def _error_code(exc: BaseException) -> str:
    name = type(exc).__name__
    if "Connect" in name or "Connection" in name:
        return "connection"
    return "client_error"


class EmailAdapter:
    """SMTP with STARTTLS (required when configured) or implicit TLS, via aiosmtplib."""

    def __init__(self, settings: NotifierSettings) -> None:
        self.settings = settings
        context = ssl.create_default_context(cafile=settings.smtp_ca_file) if settings.smtp_ca_file else None
        self.tls_context = context or ssl.create_default_context()

    async def deliver(self, outbound: Outbound) -> AttemptOutcome:
        """Send one message; 4xx replies and connection problems are retried, 5xx are not."""
        import aiosmtplib

        channel = outbound.channel
        assert isinstance(channel, EmailChannel)  # noqa: S101 - routed by type
        s = self.settings
        msg = email.message.EmailMessage()
        msg["From"] = s.smtp_from
        msg["To"] = channel.to
        msg["Subject"] = outbound.message.subject
        msg["Message-ID"] = f"<{outbound.job.id}@rapport>"
        msg.set_content(outbound.message.text)
        kwargs: dict[str, Any] = {
            "hostname": s.smtp_host,
            "port": s.smtp_port,
            "timeout": s.delivery_timeout_s,
            "tls_context": self.tls_context,
            "use_tls": s.smtp_security == "tls",
            "start_tls": s.smtp_security == "starttls",
        }
        if s.smtp_username:
            kwargs["username"] = s.smtp_username
            kwargs["password"] = s.smtp_password.get_secret_value() if s.smtp_password else ""
        try:
            await aiosmtplib.send(msg, **kwargs)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            code = codes[0] if codes else 550
            return AttemptOutcome("retry" if 400 <= code < 500 else "rejected", f"smtp_{code}")
        except aiosmtplib.SMTPResponseException as exc:
            return AttemptOutcome("retry" if 400 <= exc.code < 500 else "rejected", f"smtp_{exc.code}")
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            return AttemptOutcome("retry", "timeout" if isinstance(exc, TimeoutError) else "connection")
        return AttemptOutcome("delivered", "smtp_250")


class NullAdapter:
    """Delivers nothing and succeeds: the canary clinic's alerts stop here."""

    async def deliver(self, outbound: Outbound) -> AttemptOutcome:
        """Succeed without sending."""
        return AttemptOutcome("delivered", "null")


class ChannelRouter:
    """Picks the adapter of an outbound's channel type and bounds each attempt by a timeout."""

    def __init__(self, adapters: Mapping[str, ChannelPort], timeout_s: float) -> None:
        self.adapters = adapters
        self.timeout_s = timeout_s

    async def deliver(self, outbound: Outbound) -> AttemptOutcome:
        """One attempt through the right adapter."""
        kind = outbound.channel.type if outbound.channel is not None else "null"
        adapter = self.adapters.get(kind)
        if adapter is None:
            return AttemptOutcome("rejected", "no_adapter")
        try:
            return await asyncio.wait_for(adapter.deliver(outbound), self.timeout_s)
        except TimeoutError:
            return AttemptOutcome("retry", "timeout")


class HttpSession:
    """One aiohttp session for every HTTP channel, created in the running loop on first use."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None

    def __call__(self) -> aiohttp.ClientSession:
        """The session (created on first call)."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s))
        return self._session

    async def close(self) -> None:
        """Close the session, if any."""
        if self._session is not None:
            await self._session.close()


def default_adapters(
    settings: NotifierSettings, secrets: Mapping[str, SecretStr]
) -> tuple[dict[str, ChannelPort], HttpSession]:
    """The production adapters of every channel type, sharing one HTTP session."""
    http = HttpSession(settings.delivery_timeout_s)
    adapters: dict[str, ChannelPort] = {
        "webhook": WebhookAdapter(http, secrets),
        "chat": ChatAdapter(http, secrets),
        "email": EmailAdapter(settings),
        "null": NullAdapter(),
    }
    return adapters, http
