"""What each channel says, and the Standard Webhooks signature.

Email and chat carry **no client data**: only that an alert (or several) of some severity waits, and
the inbox link (alert ids are random-looking UUIDs, not client data). A webhook goes to the clinic's
own system (its EHR) and may carry the alert itself: pseudonyms, the rule, the numbers and the
one-line explanation — never free text. Its body is stable across retries of one delivery.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from shared.alerting.state import AlertRecord, DigestEntry
from shared.contracts.events import Severity

SEVERITY_WORD: dict[str, str] = {
    "critical": "A critical alert",
    "high": "A high-priority alert",
    "moderate": "An alert",
    "info": "An update",
}


@dataclass(frozen=True, slots=True)
class Message:
    """One message for a human channel: a subject line and a plain-text body."""

    subject: str
    text: str


def alert_link(inbox_url: str, alert_id: str) -> str:
    """The inbox page of one alert."""
    return f"{inbox_url.rstrip('/')}/alerts/{alert_id}"


def alert_message(severity: Severity, alert_id: str, inbox_url: str, escalated: bool = False) -> Message:
    """The email/chat message of one alert: its severity and the link, nothing about the client."""
    what = SEVERITY_WORD[severity]
    if escalated:
        subject = f"Rapport: {what.lower()} was escalated to you"
    else:
        subject = f"Rapport: {what.lower()} is waiting"
    text = (
        f"{what} is waiting for you in the Rapport inbox"
        + (" (escalated: not yet acknowledged by the treating clinician)" if escalated else "")
        + f".\nOpen it here: {alert_link(inbox_url, alert_id)}\n"
        "This message contains no client information by design."
    )
    return Message(subject, text)


def digest_message(entries: Sequence[DigestEntry], inbox_url: str) -> Message:
    """The digest message: how many alerts of each severity wait, and the inbox link."""
    counts: dict[str, int] = {}
    for e in entries:
        counts[e.severity] = counts.get(e.severity, 0) + 1
    parts = [f"{n} {sev}" for sev, n in sorted(counts.items(), key=lambda kv: _ORDER.index(kv[0]))]
    total = len(entries)
    subject = f"Rapport: {total} alert{'s' if total != 1 else ''} waiting"
    text = (
        f"{total} alert{'s are' if total != 1 else ' is'} waiting for you in the Rapport inbox "
        f"({', '.join(parts)}).\nOpen the inbox: {inbox_url.rstrip('/')}/\n"
        "This message contains no client information by design."
    )
    return Message(subject, text)


_ORDER = ["critical", "high", "moderate", "info"]


def chat_payload(message: Message) -> bytes:
    """A Slack-compatible incoming-webhook body."""
    return json.dumps({"text": f"*{message.subject}*\n{message.text}"}, separators=(",", ":")).encode()


def webhook_body(
    record: AlertRecord,
    *,
    clinic_id: str,
    client_id: str,
    role: str,
    inbox_url: str,
    full_payload: bool,
) -> bytes:
    """The JSON body of a webhook delivery (identical on every retry of the same delivery)."""
    s = record.summary
    body: dict[str, Any] = {
        "type": "rapport.alert",
        "alert_id": record.alert_id,
        "severity": s.severity,
        "escalation_step": role,
        "inbox_url": alert_link(inbox_url, record.alert_id),
    }
    if full_payload:
        body |= {
            "clinic_id": clinic_id,
            "client_id": client_id,
            "clinician_id": s.clinician_id,
            "episode_id": s.episode_id,
            "session_number": s.session_number,
            "instrument": s.instrument,
            "kind": s.kind,
            "rule_id": s.rule_id,
            "rule_version": s.rule_version,
            "signal_id": s.signal_id,
            "explanation": s.explanation,
        }
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()


def sign(msg_id: str, timestamp: int, body: bytes, secrets: Iterable[str]) -> str:
    """The ``webhook-signature`` header of Standard Webhooks v1: ``v1,<base64 HMAC-SHA256>`` of
    ``"{id}.{timestamp}.{body}"`` with each secret (``whsec_`` + base64 key), space-separated, so a
    receiver holding any one of the secrets of a rotation accepts it."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    out = []
    for secret in secrets:
        key = base64.b64decode(secret.removeprefix("whsec_"))
        digest = hmac.new(key, signed, hashlib.sha256).digest()
        out.append("v1," + base64.b64encode(digest).decode())
    return " ".join(out)


def webhook_headers(msg_id: str, timestamp: int, body: bytes, secrets: Iterable[str]) -> dict[str, str]:
    """Every header of a Standard Webhooks delivery."""
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(msg_id, timestamp, body, secrets),
    }
