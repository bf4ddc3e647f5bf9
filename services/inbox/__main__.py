"""``python -m services.inbox`` — run the inbox: web pages, topic consumer, acknowledgement outbox."""

from __future__ import annotations

import uvicorn

from services.inbox.app import create_app
from services.inbox.settings import InboxSettings
from shared.runtime.logs import logging_config


def main() -> None:
    """Build settings and the app from the environment, then serve until SIGTERM."""
    settings = InboxSettings()
    config = logging_config(settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=settings.web_host,
        port=settings.web_port,
        log_config=config,
        access_log=False,  # paths are PHI-free, but the inbox's own metrics say enough
        server_header=False,
        proxy_headers=True,
        timeout_graceful_shutdown=20,
    )


if __name__ == "__main__":
    main()
