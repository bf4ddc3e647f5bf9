"""``rapport topics apply|list`` — provision the design's topics on a broker, idempotently."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from shared.cli.options import add_broker_options
from shared.contracts.topics import CATALOGUE, topic_name

EPILOG = """\
actions:
  apply  create every topic of the catalogue that is missing and enforce the configs Rapport owns
         (cleanup policy, retention) on existing ones; partition counts of existing topics are
         reported, never changed. Safe to run again.
  list   print the catalogue (no broker needed)

input: none (the catalogue is shared/contracts/topics.py); the broker from --bootstrap-servers.

output (stdout):
  apply  one line per topic: "<action> <name> (<n> partitions)", action = created, updated or
         unchanged
  list   one line per topic: name, key, cleanup policy, retention

exit status:
  0  done
  1  the broker could not be reached or refused a change (one line on stderr says why)
  2  usage error (e.g. --partitions below 1)
"""


def register(sub: Any) -> None:
    """Add the ``topics`` subcommand."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "topics",
        help="create every Rapport topic (idempotent) or list the catalogue",
        description="Provision Rapport's topics on a Kafka broker, or list them.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("action", choices=("apply", "list"), help="apply or list (see below)")
    parser.add_argument(
        "--partitions",
        type=int,
        default=int(os.environ.get("RAPPORT_PARTITIONS", "12")),
        help="partitions of each new topic (default: $RAPPORT_PARTITIONS or 12)",
    )
    add_broker_options(parser)
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
