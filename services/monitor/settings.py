"""Monitor service settings (environment prefix ``RAPPORT_MONITOR_``)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from shared.runtime.kafka import WorkerSettings


class MonitorSettings(WorkerSettings):
    """Everything the monitor worker reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="RAPPORT_MONITOR_", frozen=True)

    app_id: str = "rapport-monitor"
    web_port: int = 6062
    store: str = "rocksdb://"
    """Table store: ``rocksdb://`` (rocksdict) in production, ``memory://`` in tests; both recover
    from the changelog topic."""
    ruleset_path: str | None = None
    """A rule-set YAML merged onto the packaged default (per-clinic overrides inside)."""
