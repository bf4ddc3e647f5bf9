"""``rapport inbox users add|list|disable`` — manage the clinician inbox's accounts.

Parsing and printing only; the logic is :mod:`shared.inbox.accounts`. The database is the inbox's
(``--database-url`` or ``$RAPPORT_INBOX_DATABASE_URL``, default ``sqlite:///rapport-inbox.db``).
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from typing import Any

DEFAULT_DATABASE_URL = "sqlite:///rapport-inbox.db"


def register(sub: Any) -> None:
    """Add the ``inbox`` subcommand."""
    parser: argparse.ArgumentParser = sub.add_parser("inbox", help="Manage the clinician inbox's accounts.")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("RAPPORT_INBOX_DATABASE_URL", DEFAULT_DATABASE_URL),
        help="The inbox database (default: $RAPPORT_INBOX_DATABASE_URL or %(default)s).",
    )
    inbox = parser.add_subparsers(dest="inbox_command", required=True, metavar="WHAT")
    users = inbox.add_parser("users", help="Create, list and disable logins.")
    action = users.add_subparsers(dest="users_action", required=True, metavar="ACTION")

    add = action.add_parser("add", help="Create a login bound to one person of a clinic's directory.")
    add.add_argument("username")
    add.add_argument("--clinic", required=True, help="Clinic id (as in the directory).")
    add.add_argument("--person", required=True, help="The person's id in the clinic's directory.")
    add.add_argument(
        "--password-stdin",
        action="store_true",
        help="Read the password from the first line of standard input instead of prompting.",
    )
    add.set_defaults(handler=_add)

    listing = action.add_parser("list", help="List logins (never their passwords).")
    listing.set_defaults(handler=_list)

    disable = action.add_parser("disable", help="Disable a login and end its sessions.")
    disable.add_argument("username")
    disable.set_defaults(handler=_disable)


def _hasher() -> Any:
    from shared.inbox.accounts import HashParameters, password_hasher

    defaults = HashParameters()
    env = os.environ.get
    return password_hasher(
        HashParameters(
            time_cost=int(env("RAPPORT_INBOX_ARGON2_TIME_COST", defaults.time_cost)),
            memory_kib=int(env("RAPPORT_INBOX_ARGON2_MEMORY_KIB", defaults.memory_kib)),
            parallelism=int(env("RAPPORT_INBOX_ARGON2_PARALLELISM", defaults.parallelism)),
        )
    )


def _open(url: str) -> Any:
    from shared.inbox.store import InboxStore

    return InboxStore.open(url)


def _read_password(from_stdin: bool) -> str | None:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Password again: ") != first:
        print("error: the passwords differ", file=sys.stderr)
        return None
    return first


def _add(args: argparse.Namespace) -> int:
    from shared.contracts.events import utc_now
    from shared.inbox.accounts import AccountError, add_user
    from shared.inbox.store import UserExists

    password = _read_password(args.password_stdin)
    if password is None:
        return 2
    store = _open(args.database_url)
    try:
        user = add_user(
            store,
            _hasher(),
            username=args.username,
            clinic_id=args.clinic,
            person_id=args.person,
            password=password,
            now=utc_now(),
        )
        directory = store.directory(user.clinic_id)
    except (AccountError, UserExists) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    print(f"added {user.username} (clinic {user.clinic_id}, person {user.person_id})")
    if directory is None:
        print("note: the inbox has no directory of this clinic yet; the login sees nothing till it has")
    elif directory.person(user.person_id) is None:
        print("warning: the clinic's directory does not list this person; the login sees nothing")
    return 0


def _list(args: argparse.Namespace) -> int:
    store = _open(args.database_url)
    try:
        accounts = store.users()
    finally:
        store.close()
    print(f"{'username':32} {'clinic':20} {'person':20} {'status':9} created")
    for u in accounts:
        status = "disabled" if u.disabled else "active"
        print(f"{u.username:32} {u.clinic_id:20} {u.person_id:20} {status:9} {u.created_at}")
    return 0


def _disable(args: argparse.Namespace) -> int:
    from shared.contracts.events import utc_now
    from shared.inbox.accounts import AccountError, disable_user

    store = _open(args.database_url)
    try:
        found = disable_user(store, args.username, utc_now())
    except AccountError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    if not found:
        print("error: no such login", file=sys.stderr)
        return 1
    print(f"disabled {args.username.strip().lower()} and ended its sessions")
    return 0
