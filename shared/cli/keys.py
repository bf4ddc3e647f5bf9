"""``rapport keys create|revoke|list`` — the gateway's per-clinic API keys (stored hashed).

``create`` prints the key once on stdout (nothing else goes to stdout, so ``KEY=$(rapport keys
create --clinic c1)`` works) and its id on stderr; the key cannot be shown again.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

DEFAULT_DB = ".gateway/gateway.sqlite3"

EPILOG = """\
actions:
  create  make a key for a clinic; only its SHA-256 digest is stored, the key is shown once
  revoke  revoke a key by its id; the gateway refuses it within a second
  list    every key (optionally of one clinic), oldest first

input: none; the gateway's SQLite file from --db (the gateway reads the same file).

output:
  create  stdout: the key alone on one line (KEY=$(rapport keys create --clinic c1) works);
          stderr: the key id and a reminder that the key is not shown again
  revoke  stdout: "revoked <key id>"
  list    stdout: one line per key: key id, clinic, created, active or revoked <when>, label

exit status:
  0  done
  1  revoke: no active key with that id
  2  usage error (e.g. a clinic id that is not a pseudonym, a label too long)
"""


def register(sub: Any) -> None:
    """Add the ``keys`` subcommand."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "keys",
        help="create, revoke or list the gateway's per-clinic API keys",
        description="The gateway's per-clinic API keys (stored hashed).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--db",
        default=os.environ.get("RAPPORT_GATEWAY_DB_PATH", DEFAULT_DB),
        help=f"The gateway's SQLite file (default: $RAPPORT_GATEWAY_DB_PATH or {DEFAULT_DB}).",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="Create a key for a clinic; prints the key once.")
    create.add_argument("--clinic", required=True, help="The clinic id (pseudonym) the key acts for.")
    create.add_argument("--label", default="", help="What the key is for, e.g. the integration's name.")
    revoke = actions.add_parser("revoke", help="Revoke a key by its id (effective at once).")
    revoke.add_argument("key_id")
    listing = actions.add_parser("list", help="List keys (ids, clinics, labels, dates; never secrets).")
    listing.add_argument("--clinic", default=None, help="Only this clinic's keys.")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from shared.runtime.apikeys import ApiKeyStore, connect

    conn = connect(args.db)
    try:
        store = ApiKeyStore(conn)
        if args.action == "create":
            try:
                info, key = store.create(args.clinic, args.label)
            except ValueError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
            print(
                f"created key {info.key_id} for clinic {info.clinic_id}; store it now, it is not shown again",
                file=sys.stderr,
            )
            print(key)
            return 0
        if args.action == "revoke":
            if store.revoke(args.key_id):
                print(f"revoked {args.key_id}")
                return 0
            print(f"error: no active key {args.key_id}", file=sys.stderr)
            return 1
        for info in store.list(args.clinic):
            state = f"revoked {info.revoked_at}" if info.revoked_at else "active"
            print(
                f"{info.key_id}  clinic={info.clinic_id:20} created={info.created_at}  {state}  {info.label}"
            )
        return 0
    finally:
        conn.close()
