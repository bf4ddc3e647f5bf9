"""Settings of the simulator: environment (``RAPPORT_SIMULATOR_*``), overridden by CLI flags."""

from __future__ import annotations

from pathlib import Path

from pydantic import AwareDatetime, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.history.synthetic import SimulationConfig


class SimulatorSettings(BaseSettings):
    """Where to send, how fast, and what synthetic cohort to generate."""

    model_config = SettingsConfigDict(env_prefix="RAPPORT_SIMULATOR_", frozen=True, extra="ignore")

    # --- Kafka
    bootstrap_servers: str = "127.0.0.1:9092"
    topic_namespace: str = ""
    """Prefix of the physical topic names (empty in production)."""
    client_id: str = "rapport-simulator"
    max_block_ms: int = Field(default=10_000, ge=100)
    """How long ``send`` may block waiting for metadata before the run fails."""
    flush_timeout_seconds: float = Field(default=30.0, gt=0)

    # --- pacing
    rate: float = Field(default=20.0, gt=0)
    """Records per second (token bucket)."""
    burst: int = Field(default=20, ge=1, le=100_000)
    """Bucket capacity: the most records sent back to back after a pause."""
    as_fast_as_possible: bool = False
    max_events: int | None = Field(default=None, ge=0)
    """Stop after this many records (valid and invalid)."""

    # --- the cohort (see shared.history.synthetic.SimulationConfig)
    seed: int = 42
    start: AwareDatetime | None = None
    """Monday of week 1; default: the Monday ``sessions_max`` weeks before this week (all in the past).
    Give it explicitly for byte-identical runs."""
    clinics: int = Field(default=4, ge=1)
    clinicians_per_clinic: int = Field(default=3, ge=1)
    clients_per_clinician: int = Field(default=10, ge=1)
    sessions_min: int = Field(default=6, ge=1)
    sessions_max: int = Field(default=16, ge=1)
    clinic_types: str = "pcoms,iapt,core,k10"
    """Comma-separated clinic types, cycled over clinics: pcoms, iapt, core, k10 or e.g. WAI-SR+PHQ-9."""
    invalid_rate: float = Field(default=0.0, ge=0.0, le=0.5)
    id_prefix: str = ""
    demo_cases: bool = False
    """Add the designed demo clients (risk, deterioration, repaired and unrepaired rupture)."""

    # --- offline output instead of Kafka
    history_out: Path | None = None
    """Write JSON Lines history here instead of producing (``-`` = stdout)."""
    dry_run: bool = False
    """Write JSON Lines history to stdout instead of producing (no broker needed)."""

    metrics_port: int | None = Field(default=None, ge=1, le=65_535)
    """Serve /metrics on this port while running (off by default: the simulator is a batch job)."""

    @model_validator(mode="after")
    def _cohort_is_valid(self) -> SimulatorSettings:
        self.simulation_config()
        return self

    def simulation_config(self) -> SimulationConfig:
        """The generator's config built from these settings (raises ``ValueError`` if inconsistent)."""
        return SimulationConfig(
            clinics=self.clinics,
            clinicians_per_clinic=self.clinicians_per_clinic,
            clients_per_clinician=self.clients_per_clinician,
            sessions_min=self.sessions_min,
            sessions_max=self.sessions_max,
            clinic_types=tuple(t.strip() for t in self.clinic_types.split(",") if t.strip()),
            invalid_rate=self.invalid_rate,
            id_prefix=self.id_prefix,
            demo_cases=self.demo_cases,
        )

    @property
    def writes_history(self) -> bool:
        """True when the run writes history lines instead of producing to Kafka."""
        return self.dry_run or self.history_out is not None
