"""Scoring service settings (environment prefix ``RAPPORT_SCORING_``)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from shared.runtime.kafka import WorkerSettings


class ScoringSettings(WorkerSettings):
    """Everything the scoring worker reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="RAPPORT_SCORING_", frozen=True)

    app_id: str = "rapport-scoring"
    web_port: int = 6061
    instrument_dirs: tuple[str, ...] = ()
    """Extra directories of clinic-supplied instrument spec files."""
    ruleset_path: str | None = None
    """The rule-set YAML the monitor uses (merged onto the packaged default): its ``variants`` (and each
    clinic's under ``clinics:``) choose the spec variants that score each clinic's sessions."""
