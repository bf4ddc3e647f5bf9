"""``python -m services.scoring [worker]`` — run the scoring worker."""

from __future__ import annotations

from services.scoring.app import TOPOLOGY, create_app
from services.scoring.settings import ScoringSettings
from shared.runtime.kafka import run_worker


def main() -> None:
    """Build settings and the app from the environment, then run until SIGTERM."""
    settings = ScoringSettings()
    run_worker(settings, TOPOLOGY, lambda partitions: create_app(settings, partitions), "RAPPORT_SCORING_")


if __name__ == "__main__":
    main()
