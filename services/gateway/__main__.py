"""``python -m services.gateway`` — run the gateway's HTTP server."""

from __future__ import annotations

import gc

from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings
from shared.runtime.http import run_http


def main() -> None:
    """Build settings and the app from the environment, then serve until SIGTERM."""
    settings = GatewaySettings()
    app = create_app(settings)
    # Modules, schemas and the instrument registry live as long as the process: keep them out of
    # the collector's full passes, which would otherwise scan them again and again mid-request.
    gc.freeze()
    run_http(app, host=settings.web_host, port=settings.web_port, log_level=settings.log_level)


if __name__ == "__main__":
    main()
