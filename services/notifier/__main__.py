"""``python -m services.notifier`` — run the notifier worker."""

from __future__ import annotations

from services.notifier.app import TOPOLOGY, create_app
from services.notifier.settings import NotifierSettings
from shared.runtime.kafka import run_worker


def main() -> None:
    """Build settings and the app from the environment, then run until SIGTERM."""
    settings = NotifierSettings()
    run_worker(settings, TOPOLOGY, lambda partitions: create_app(settings, partitions), "RAPPORT_NOTIFIER_")


if __name__ == "__main__":
    main()
