"""``python -m services.inbox`` — run the inbox: web pages, topic consumer, acknowledgement outbox."""

from __future__ import annotations

import logging.config
import signal
import sys

import uvicorn

from services.inbox.app import create_app
from services.inbox.settings import InboxSettings
from shared.runtime.logs import logging_config


def _stopped(signum: int, frame: object) -> None:
    sys.exit(0)


def main() -> None:
    """Build settings and the app from the environment, then serve until SIGTERM (exit 0 after a
    graceful shutdown: uvicorn re-raises the signal it caught, and this handler receives it)."""
    settings = InboxSettings()
    config = logging_config(settings.log_level)
    logging.config.dictConfig(config)
    signal.signal(signal.SIGTERM, _stopped)
    uvicorn.run(
        create_app(settings),
        host=settings.web_host,
        port=settings.web_port,
        log_config=config,
        access_log=False,  # request lines would add nothing the metrics do not say
        server_header=False,
        proxy_headers=True,
        timeout_graceful_shutdown=20,
    )


if __name__ == "__main__":
    main()
