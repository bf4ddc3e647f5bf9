"""Inbox service settings (environment prefix ``RAPPORT_INBOX_``)."""

from __future__ import annotations

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class InboxSettings(BaseSettings):
    """Everything the inbox reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="RAPPORT_INBOX_", frozen=True)

    bootstrap_servers: str = "127.0.0.1:9092"
    app_id: str = "rapport-inbox"
    """Consumer group (offsets live in the database; the group's commits show the lag)."""
    topic_namespace: str = ""
    database_url: str = "sqlite:///rapport-inbox.db"
    """``sqlite:///path`` (embedded default) or ``postgresql://user:password@host:port/db``."""
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    secret_key: SecretStr | None = None
    """Signs session and login cookies. Set it in production (a restart otherwise logs everyone
    out); at least 32 characters."""
    behind_tls: bool = False
    """Served over HTTPS (directly or by a proxy): cookies get ``Secure`` and responses HSTS."""
    session_idle_timeout_s: float = 15 * 60
    session_max_age_s: float = 10 * 60 * 60
    login_max_failures: int = 5
    """Failed logins per username within ``login_window_s`` before further attempts get 429."""
    login_max_failures_per_address: int = 20
    login_window_s: float = 15 * 60
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 64 * 1024
    argon2_parallelism: int = 4
    consume: bool = True
    """Run the topic consumer (off only in tests of the web layer)."""
    batch_max: int = 500
    ack_publish_timeout_s: float = 10.0
    outbox_interval_s: float = 5.0
    """How often acknowledgements the broker has not confirmed are sent again."""
    log_level: str = "INFO"
