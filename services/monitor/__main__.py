"""``python -m services.monitor`` — run the monitor worker."""

from __future__ import annotations

from services.monitor.app import TOPOLOGY, create_app
from services.monitor.settings import MonitorSettings
from shared.runtime.kafka import run_worker


def main() -> None:
    """Build settings and the app from the environment, then run until SIGTERM."""
    settings = MonitorSettings()
    run_worker(settings, TOPOLOGY, lambda partitions: create_app(settings, partitions), "RAPPORT_MONITOR_")


if __name__ == "__main__":
    main()
