"""Scoring service settings (environment prefix ``RAPPORT_SCORING_``)."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class ScoringSettings(BaseSettings):
    """Everything the scoring worker reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="RAPPORT_SCORING_", frozen=True)

    bootstrap_servers: str = "127.0.0.1:9092"
    app_id: str = "rapport-scoring"
    topic_namespace: str = ""
    """Prefix of every topic name; empty in production, unique per test run."""
    partitions: int = 12
    web_host: str = "127.0.0.1"
    web_port: int = 6061
    batch_max: int = 500
    """Most session events scored and published as one batch."""
    batch_within_s: float = 0.05
    """Longest wait to fill a batch; bounds the latency a batch adds."""
    instrument_dirs: tuple[str, ...] = ()
    """Extra directories of clinic-supplied instrument spec files."""
    log_level: str = "INFO"
