"""Inbox accounts: argon2id password hashes, creating, listing, disabling and checking logins.

An account is bound to one person of one clinic's directory; what it may see follows from the
directory (:mod:`shared.inbox.tenancy`), never from the account itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import TypeAdapter, ValidationError

from shared.contracts.events import PseudonymousId
from shared.inbox.projection import iso
from shared.inbox.store import InboxStore, User

USERNAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{2,63}$")
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024
_PSEUDONYM: TypeAdapter[str] = TypeAdapter(PseudonymousId)


class AccountError(ValueError):
    """An account request that cannot be carried out; the message names no secret."""


@dataclass(frozen=True)
class HashParameters:
    """argon2id cost; the defaults are RFC 9106's second recommended (low-memory) option."""

    time_cost: int = 3
    memory_kib: int = 64 * 1024
    parallelism: int = 4


def password_hasher(params: HashParameters | None = None) -> PasswordHasher:
    """An argon2id hasher with ``params``."""
    p = params or HashParameters()
    return PasswordHasher(time_cost=p.time_cost, memory_cost=p.memory_kib, parallelism=p.parallelism)


def normalise_username(username: str) -> str:
    """The stored form of a username (lower case), or :class:`AccountError`."""
    name = username.strip().lower()
    if not USERNAME.match(name):
        raise AccountError("a username is 3–64 characters: letters, digits and . _ @ - (lower case)")
    return name


def add_user(
    store: InboxStore,
    hasher: PasswordHasher,
    *,
    username: str,
    clinic_id: str,
    person_id: str,
    password: str,
    now: datetime,
) -> User:
    """Create an account for ``person_id`` of ``clinic_id``; the password is stored as an argon2id hash."""
    name = normalise_username(username)
    try:
        _PSEUDONYM.validate_python(clinic_id)
        _PSEUDONYM.validate_python(person_id)
    except ValidationError:
        raise AccountError("clinic and person ids are pseudonyms: letters, digits and . _ : -") from None
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise AccountError(f"a password has {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters")
    user = User(
        username=name,
        clinic_id=clinic_id,
        person_id=person_id,
        password_hash=hasher.hash(password),
        disabled=False,
        created_at=iso(now),
        disabled_at=None,
    )
    store.add_user(user)
    return user


def disable_user(store: InboxStore, username: str, now: datetime) -> bool:
    """Disable an account and end its sessions; False when there is no such account."""
    return store.disable_user(normalise_username(username), iso(now))


class Authenticator:
    """Checks a username and password against the stored hash, in constant work per attempt."""

    def __init__(self, store: InboxStore, hasher: PasswordHasher) -> None:
        self._store = store
        self._hasher = hasher
        # Verified when the username is unknown, so an attempt costs the same either way.
        self._dummy = hasher.hash("not a password of anyone")

    def authenticate(self, username: str, password: str) -> User | None:
        """The account when the password is right and the account enabled, else None."""
        try:
            name = normalise_username(username)
        except AccountError:
            name = ""
        user = self._store.user(name) if name else None
        if len(password) > MAX_PASSWORD_LENGTH:
            return None
        try:
            self._hasher.verify(user.password_hash if user else self._dummy, password)
        except (VerificationError, InvalidHashError):
            return None
        if user is None or user.disabled:
            return None
        if self._hasher.check_needs_rehash(user.password_hash):
            self._store.set_password_hash(user.username, self._hasher.hash(password))
        return user
