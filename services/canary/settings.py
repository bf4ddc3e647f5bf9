"""Canary settings (environment prefix ``RAPPORT_CANARY_``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class CanarySettings(BaseSettings):
    """Where the canary sends its probes, how often, and how long it waits for each."""

    model_config = SettingsConfigDict(env_prefix="RAPPORT_CANARY_", frozen=True)

    bootstrap_servers: str = "127.0.0.1:9092"
    topic_namespace: str = ""
    """Prefix of every topic name; empty in production."""
    interval_s: float = Field(default=30.0, gt=0)
    """Seconds between probes."""
    timeout_s: float = Field(default=300.0, gt=0)
    """A probe whose signal has not arrived after this long counts as ``timed_out``."""
    sessions_per_client: int = Field(default=200, ge=1, le=10_000)
    """Probes per synthetic client before the canary moves to a new one (bounds monitor state)."""
    run_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9-]{1,32}$")
    """Names this run's synthetic clients; default: the start time plus a random suffix."""
    through_notifier: bool = True
    """A probe succeeds when the notifier delivered its alert (to its null channel); ``false`` for a
    deployment without the notifier: when the monitor's signal arrives."""
    web_host: str = "127.0.0.1"
    web_port: int = 6063
    log_level: str = "INFO"
