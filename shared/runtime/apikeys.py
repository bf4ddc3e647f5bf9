"""Per-clinic API keys in a SQLite file: created and revoked with ``rapport keys``, checked by the
gateway on every request.

A key is ``rk_<key id>.<secret>``: the key id is public (it names the key in listings and
revocations), the secret is 32 random bytes. Only a SHA-256 digest of the whole key is stored —
a digest of a 256-bit random secret needs no slow hash — and the key itself is shown once, at
creation, and never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from shared.contracts.canary import is_canary

KEY_PREFIX = "rk_"
_CLINIC = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
_KEY_ID = re.compile(r"^[0-9a-f]{16}$")
_LABEL_MAX = 100


def connect(path: str | Path) -> sqlite3.Connection:
    """Open (creating its folder) the gateway's SQLite file: WAL journal, so readers never wait for
    the writer and another process (the CLI) may write at the same time; ``synchronous=NORMAL``:
    a committed transaction survives a process crash (not necessarily a power loss)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(target, timeout=5.0, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=5000")
    return conn


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the key's id and the clinic it belongs to."""

    key_id: str
    clinic_id: str


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """A stored key without its secret."""

    key_id: str
    clinic_id: str
    label: str
    created_at: str
    revoked_at: str | None


def digest(key: str) -> str:
    """The stored form of a key: its SHA-256, hex."""
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKeyStore:
    """The ``api_keys`` table of the gateway's SQLite file."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        conn.execute(
            "CREATE TABLE IF NOT EXISTS api_keys ("
            " key_id TEXT PRIMARY KEY, clinic_id TEXT NOT NULL, key_hash TEXT NOT NULL,"
            " label TEXT NOT NULL DEFAULT '', created_at TEXT NOT NULL, revoked_at TEXT)"
        )

    def create(self, clinic_id: str, label: str = "") -> tuple[KeyInfo, str]:
        """Create a key for ``clinic_id``; returns its info and the key itself (shown once)."""
        if not _CLINIC.match(clinic_id):
            raise ValueError("clinic id must be 1-64 letters, digits or . _ : - (a pseudonym, not a name)")
        if is_canary(clinic_id):
            # Integrations can never send canary events: those must never reach a clinician.
            raise ValueError(f"clinic id {clinic_id} is reserved for the canary")
        if len(label) > _LABEL_MAX or any(not ch.isprintable() for ch in label):
            raise ValueError(f"label must be at most {_LABEL_MAX} printable characters")
        key_id = secrets.token_hex(8)
        key = f"{KEY_PREFIX}{key_id}.{secrets.token_urlsafe(32)}"
        created = datetime.now(UTC).isoformat(timespec="seconds")
        self._conn.execute(
            "INSERT INTO api_keys (key_id, clinic_id, key_hash, label, created_at) VALUES (?, ?, ?, ?, ?)",
            (key_id, clinic_id, digest(key), label, created),
        )
        return KeyInfo(key_id, clinic_id, label, created, None), key

    def revoke(self, key_id: str) -> bool:
        """Revoke a key by id; False when no active key has that id. Takes effect at once."""
        now = datetime.now(UTC).isoformat(timespec="seconds")
        cur = self._conn.execute(
            "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL", (now, key_id)
        )
        return cur.rowcount == 1

    def list(self, clinic_id: str | None = None) -> list[KeyInfo]:
        """Every key (optionally of one clinic), oldest first, without secrets."""
        sql = "SELECT key_id, clinic_id, label, created_at, revoked_at FROM api_keys"
        args: tuple[str, ...] = ()
        if clinic_id is not None:
            sql += " WHERE clinic_id = ?"
            args = (clinic_id,)
        rows = self._conn.execute(sql + " ORDER BY created_at, key_id", args).fetchall()
        return [KeyInfo(*row) for row in rows]

    def verify(self, presented: str) -> Principal | None:
        """The principal of an active key, or ``None`` (unknown, malformed or revoked)."""
        if not presented.startswith(KEY_PREFIX) or "." not in presented or len(presented) > 200:
            return None
        key_id = presented[len(KEY_PREFIX) :].split(".", 1)[0]
        if not _KEY_ID.match(key_id):
            return None
        row = self._conn.execute(
            "SELECT clinic_id, key_hash FROM api_keys WHERE key_id = ? AND revoked_at IS NULL", (key_id,)
        ).fetchone()
        if row is None or not hmac.compare_digest(str(row[1]), digest(presented)):
            return None
        return Principal(key_id, str(row[0]))
