"""``rapport topics apply|list`` — provision the design's topics on a broker, idempotently."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from shared.contracts.topics import CATALOGUE, topic_name


def register(sub: Any) -> None:
    """Add the ``topics`` subcommand."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "topics", help="Create every Rapport topic (idempotent) or list the catalogue."
    )
    parser.add_argument("action", choices=("apply", "list"))
    parser.add_argument(
        "--bootstrap-servers",
        default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
        help="Kafka bootstrap servers (default: $KAFKA_BOOTSTRAP_SERVERS or 127.0.0.1:9092).",
    )
    parser.add_argument(
        "--partitions",
        type=int,
        default=int(os.environ.get("RAPPORT_PARTITIONS", "12")),
        help="Partitions of each new topic (default: $RAPPORT_PARTITIONS or 12).",
    )
    parser.add_argument(
        "--namespace",
        default=os.environ.get("RAPPORT_TOPIC_NAMESPACE", ""),
        help="Prefix of every topic name (tests and demos); empty in production.",
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    if args.action == "list":
        for spec in CATALOGUE:
            retention = "infinite" if spec.retention_ms is None else f"{spec.retention_ms // 86_400_000}d"
            print(
                f"{topic_name(spec.name, args.namespace):40} key={spec.keyed_by:13} "
                f"cleanup={spec.cleanup_policy:8} retention={retention}"
            )
        return 0
    if args.partitions < 1:
        print("error: --partitions must be at least 1", file=sys.stderr)
        return 2
    from shared.runtime.provisioning import apply_topics, wait_for_broker

    try:
        wait_for_broker(args.bootstrap_servers, timeout_s=30)
        results = apply_topics(args.bootstrap_servers, partitions=args.partitions, namespace=args.namespace)
    except Exception as exc:  # operator-facing: one clear line, no traceback
        print(f"error: could not provision topics: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    for r in results:
        print(f"{r.action:8} {r.name} ({r.partitions} partitions)")
    return 0
