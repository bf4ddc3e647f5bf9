"""``rapport dead-letters replay`` — re-publish dead letters to their source topic after a fix.

Parsing and printing only; the logic is :mod:`shared.runtime.replay`. Output names counts, reasons,
stages and topics, never record contents.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, get_args

from shared.cli.options import add_broker_options
from shared.contracts.events import DeadLetterReason

EPILOG = """\
input: the dead-letter topic (<namespace>rapport.dead-letter.v1) on the broker, selected by
  --reason (required), --stage and --source-topic; the replay ledger topic says what was replayed
  before (skipped unless --again).

output (stdout): "replayed <n> dead letters (<m> original records)" ("would replay" with --dry-run),
  then one line per reason with its count, and what was skipped and why; counts, reasons, stages
  and topics only, never record contents. Each original record is re-published whole to its source
  topic; the services process it again with today's code and rules.

exit status:
  0  done (or, with --dry-run, counted)
  1  the broker could not be reached, or a topic is missing (one line on stderr says which)
  2  usage error (e.g. --limit below 1)
"""


def register(sub: Any) -> None:
    """Add the ``dead-letters`` subcommand."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "dead-letters",
        help="Replay dead letters to their source topic after a fix (recorded, never twice by accident).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("action", choices=("replay",), help="replay (see below)")
    parser.add_argument(
        "--reason",
        action="append",
        required=True,
        choices=get_args(DeadLetterReason),
        help="Replay dead letters with this reason code (repeatable).",
    )
    parser.add_argument("--stage", action="append", default=[], help="Only dead letters of this stage.")
    parser.add_argument(
        "--source-topic", action="append", default=[], help="Only dead letters whose original topic is this."
    )
    parser.add_argument("--limit", type=int, help="Re-publish at most this many original records.")
    parser.add_argument("--dry-run", action="store_true", help="Say what would be replayed; publish nothing.")
    parser.add_argument(
        "--again",
        action="store_true",
        help="Also replay dead letters already replayed, and dead letters of replayed records.",
    )
    add_broker_options(parser)
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    if args.limit is not None and args.limit < 1:
        print("error: --limit must be at least 1", file=sys.stderr)
        return 2
    from shared.runtime.replay import replay

    try:
        result = replay(
            args.bootstrap_servers,
            reasons=args.reason,
            namespace=args.namespace,
            stages=args.stage,
            source_topics=args.source_topic,
            again=args.again,
            dry_run=args.dry_run,
            limit=args.limit,
        )
    except (LookupError, TimeoutError) as exc:  # our own messages: topic names and durations only
        print(f"error: replay failed: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # operator-facing: one clear line, no traceback, no record contents
        print(f"error: replay failed: {type(exc).__name__}", file=sys.stderr)
        return 1
    selection = result.selection
    verb = "would replay" if args.dry_run else "replayed"
    count = sum(result.by_reason.values()) if args.dry_run else result.recorded
    records = len(selection.groups) if args.dry_run else result.published
    if args.limit is not None and args.dry_run:
        records = min(records, args.limit)
    print(f"{verb} {count} dead letters ({records} original records)")
    for reason, n in sorted(result.by_reason.items()):
        print(f"  {reason}: {n}")
    for why, n in sorted(selection.skipped.items()):
        if why != "not_selected":
            print(f"skipped {n} {why.replace('_', ' ')}")
    if result.undecodable:
        print(f"skipped {result.undecodable} undecodable dead-letter records")
    return 0
