"""``python -m services.canary`` — run the canary."""

from __future__ import annotations

import logging.config
import sys

from services.canary.app import run
from services.canary.settings import CanarySettings
from shared.runtime.logs import logging_config


def main() -> int:
    """Build settings from the environment, then probe until SIGTERM."""
    settings = CanarySettings()
    logging.config.dictConfig(logging_config(settings.log_level))
    return run(settings)


if __name__ == "__main__":
    sys.exit(main())
