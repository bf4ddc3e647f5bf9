"""``rapport directory load|check FILE`` — validate a clinic directory and publish it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from shared.cli.options import add_broker_options

EPILOG = """\
input: a YAML file with 'clinics:' — see examples/directory.yaml. Per clinic: its people (id,
roles, supervisor, channels: webhook / email / chat, quiet hours, digest), the escalation policy
(deadlines, on-call) and defaults. Channel secrets are named, never written here: the notifier reads
RAPPORT_NOTIFIER_SECRET_<NAME>.

output: one line per clinic ("published <clinic> version <n>" or "ok <clinic> ...").

exit status:
  0  valid (and published, for load)
  1  the broker refused or did not answer
  2  the file is invalid (the message names the clinic and the field)
"""


def register(sub: Any) -> None:
    """Add the ``directory`` subcommand."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "directory",
        help="Validate a clinic directory file and publish it to rapport.directory.v1.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "action", choices=("load", "check"), help="load: validate and publish; check: validate"
    )
    parser.add_argument("file", type=Path, help="Directory YAML file.")
    add_broker_options(parser)
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from shared.alerting.directory import DirectoryError, load_directory

    try:
        clinics = load_directory(args.file)
    except DirectoryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.action == "check":
        for c in clinics:
            print(f"ok {c.clinic_id} version {c.version} ({len(c.people)} people)")
        return 0
    from shared.contracts.topics import DIRECTORY, topic_name
    from shared.runtime.provisioning import publish_records

    records = [(c.clinic_id.encode(), c.model_dump_json().encode()) for c in clinics]
    try:
        publish_records(args.bootstrap_servers, topic_name(DIRECTORY, args.namespace), records)
    except Exception as exc:  # operator-facing: one clear line, no traceback
        print(f"error: could not publish the directory: {type(exc).__name__}", file=sys.stderr)
        return 1
    for c in clinics:
        print(f"published {c.clinic_id} version {c.version}")
    return 0
