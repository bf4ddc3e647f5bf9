"""Gateway settings (environment prefix ``RAPPORT_GATEWAY_``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class GatewaySettings(BaseSettings):
    """Everything the gateway reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="RAPPORT_GATEWAY_", frozen=True)

    bootstrap_servers: str = "127.0.0.1:9092"
    app_id: str = "rapport-gateway"
    """Kafka client id."""
    topic_namespace: str = ""
    """Prefix of every topic name; empty in production."""
    web_host: str = "127.0.0.1"
    web_port: int = 6065
    db_path: str = ".gateway/gateway.sqlite3"
    """SQLite file of the API keys, the idempotency ledger and the scores read model (one gateway
    process per file)."""
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    """Largest request body; larger ones get 413."""
    ack_timeout_s: float = Field(default=5.0, gt=0)
    """How long a request waits for the broker's acknowledgement before answering 503."""
    retry_after_s: int = Field(default=5, ge=1)
    """``Retry-After`` of a 503."""
    request_timeout_s: float = Field(default=10.0, gt=0)
    """The producer's request timeout (metadata, broker requests)."""
    linger_ms: int = Field(default=0, ge=0)
    """Producer linger; 0: concurrent requests batch by themselves while a request is in flight."""
    max_pending: int = Field(default=10_000, ge=1)
    """Most deliveries awaiting a broker acknowledgement; beyond it requests get 503 at once."""
    rate_per_s: float = Field(default=50.0, gt=0)
    """Sustained requests per second per API key; beyond it 429 with ``Retry-After``."""
    rate_burst: int = Field(default=100, ge=1)
    consume_scores: bool = True
    """Follow ``rapport.survey-scored.v1`` into the local read model behind ``GET /fhir/Observation``."""
    observation_limit: int = Field(default=1000, ge=1)
    """Most Observations one search returns."""
    ledger_days: int = Field(default=30, ge=1)
    """How long an accepted event id / Idempotency-Key keeps returning the same answer."""
    instrument_dirs: tuple[str, ...] = ()
    """Extra instrument spec folders (the scoring service's), for the warnings of a 202."""
    log_level: str = "INFO"
