"""``python -m services.notifier`` — run the notifier worker."""

from __future__ import annotations

from services.notifier.app import create_app
from services.notifier.settings import NotifierSettings
from shared.runtime.kafka import run_worker


def main() -> None:
    """Build settings and the app from the environment, then run until SIGTERM."""
    settings = NotifierSettings()
    run_worker(create_app(settings), settings.log_level)


if __name__ == "__main__":
    main()
