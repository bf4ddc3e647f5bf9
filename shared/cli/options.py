"""Options several commands share."""

from __future__ import annotations

import argparse
import os


def add_broker_options(parser: argparse.ArgumentParser) -> None:
    """``--bootstrap-servers`` and ``--namespace``, with the same defaults as the services and tests."""
    parser.add_argument(
        "--bootstrap-servers",
        default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        or f"127.0.0.1:{os.environ.get('KAFKA_PORT') or '9092'}",
        help="Kafka bootstrap servers (default: $KAFKA_BOOTSTRAP_SERVERS, else 127.0.0.1:$KAFKA_PORT, "
        "else 127.0.0.1:9092)",
    )
    parser.add_argument(
        "--namespace",
        default=os.environ.get("RAPPORT_TOPIC_NAMESPACE", ""),
        help="prefix of every topic name (default: $RAPPORT_TOPIC_NAMESPACE; tests and demos); "
        "empty in production",
    )
