"""``python -m services.monitor`` — run the monitor worker."""

from __future__ import annotations

from services.monitor.app import create_app
from services.monitor.settings import MonitorSettings
from shared.runtime.kafka import run_worker


def main() -> None:
    """Build settings and the app from the environment, then run until SIGTERM."""
    settings = MonitorSettings()
    run_worker(create_app(settings), settings.log_level)


if __name__ == "__main__":
    main()
