"""Monitor service settings (environment prefix ``RAPPORT_MONITOR_``)."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class MonitorSettings(BaseSettings):
    """Everything the monitor worker reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="RAPPORT_MONITOR_", frozen=True)

    bootstrap_servers: str = "127.0.0.1:9092"
    app_id: str = "rapport-monitor"
    topic_namespace: str = ""
    """Prefix of every topic name; empty in production, unique per test run."""
    partitions: int = 12
    """Must equal the partition count of the survey-scored topic (the table is co-partitioned)."""
    store: str = "rocksdb://"
    """Table store: ``rocksdb://`` (rocksdict) in production, ``memory://`` in tests; both recover
    from the changelog topic."""
    data_dir: str = ".faust-data"
    ruleset_path: str | None = None
    """A rule-set YAML merged onto the packaged default (per-clinic overrides inside)."""
    web_host: str = "127.0.0.1"
    web_port: int = 6062
    log_level: str = "INFO"
