"""Notifier service settings (environment prefix ``RAPPORT_NOTIFIER_``).

Channel secrets (webhook signing secrets ``whsec_…``, chat webhook URLs) are never in the directory
topic: a channel names a secret, and the notifier reads ``RAPPORT_NOTIFIER_SECRET_<NAME>`` from its
environment (or a file under ``RAPPORT_NOTIFIER_SECRETS_DIR`` named ``<NAME>``).
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from shared.alerting.retry import DEFAULT_SCHEDULE_S
from shared.runtime.kafka import WorkerSettings

SECRET_PREFIX = "RAPPORT_NOTIFIER_SECRET_"  # noqa: S105 - a variable-name prefix, not a secret


class NotifierSettings(WorkerSettings):
    """Everything the notifier worker reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="RAPPORT_NOTIFIER_", frozen=True)

    app_id: str = "rapport-notifier"
    web_port: int = 6064
    store: str = "rocksdb://"
    batch_max: int = 200
    inbox_url: str = "http://127.0.0.1:6066"
    """Base URL of the clinician inbox; messages link to ``<inbox_url>/alerts/<alert id>``."""
    # --- delivery
    retry_schedule_s: tuple[float, ...] = DEFAULT_SCHEDULE_S
    """Nominal delays after each failed attempt (full jitter applies); bounded by its length."""
    delivery_timeout_s: float = Field(default=10.0, gt=0)
    """Longest wait for one delivery attempt."""
    endpoint_concurrency: int = Field(default=4, ge=1)
    """Attempts in flight per endpoint: a slow endpoint never holds up the others."""
    dispatch_interval_s: float = Field(default=0.2, gt=0)
    """How often due deliveries and timers are looked for."""
    # --- SMTP
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_security: str = Field(default="starttls", pattern="^(none|starttls|tls)$")
    """``starttls`` upgrades the connection (refusing a server that cannot), ``tls`` is implicit TLS."""
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str = "rapport@localhost"
    smtp_ca_file: str | None = None
    """A CA bundle to trust besides the system's (a private mail relay, tests)."""
    secrets_dir: str | None = None
    """A folder of secret files (one per secret name), e.g. a mounted Kubernetes secret."""


def load_secrets(settings: NotifierSettings, environ: dict[str, str] | None = None) -> dict[str, SecretStr]:
    """Channel secrets by name, from the secrets folder and ``RAPPORT_NOTIFIER_SECRET_<NAME>``."""
    env = os.environ if environ is None else environ
    out: dict[str, SecretStr] = {}
    if settings.secrets_dir:
        for path in Path(settings.secrets_dir).iterdir():
            if path.is_file():
                out[path.name] = SecretStr(path.read_text(encoding="utf-8").strip())
    for name, value in env.items():
        if name.startswith(SECRET_PREFIX):
            out[name.removeprefix(SECRET_PREFIX)] = SecretStr(value)
    return out
