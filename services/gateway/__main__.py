"""``python -m services.gateway`` — run the gateway's HTTP server."""

from __future__ import annotations

import gc

from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings
from shared.runtime.http import run_http


def main() -> None:
    """Build settings and the app from the environment, then serve until SIGTERM."""
    settings = GatewaySettings()
    run_http(
        create_app(settings), host=settings.web_host, port=settings.web_port, log_level=settings.log_level
    )


if __name__ == "__main__":
    main()
