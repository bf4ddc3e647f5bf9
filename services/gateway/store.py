"""The gateway's SQLite tables beside the API keys: the idempotency ledger and the scores read model.

* ``produced``: one row per event the broker acknowledged, per clinic — the same event id answers
  the same, and is never produced again, also after a restart; it also remembers the FHIR encounter
  and response an event came from, for the Observations built from its scores.
* ``idempotency_keys``: ``Idempotency-Key`` header → fingerprint of the request it answered.
* ``scores`` + ``score_offsets``: ``rapport.survey-scored.v1`` read into rows (idempotent by clinic and
  event id) with the next offset per partition, written in one transaction.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.contracts.events import SurveyScored

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS produced ("
    " clinic_id TEXT NOT NULL, event_id TEXT NOT NULL, fingerprint TEXT NOT NULL,"
    " encounter TEXT, derived_from TEXT, topic_partition INTEGER NOT NULL, topic_offset INTEGER NOT NULL,"
    " produced_at TEXT NOT NULL, PRIMARY KEY (clinic_id, event_id))",
    "CREATE TABLE IF NOT EXISTS idempotency_keys ("
    " clinic_id TEXT NOT NULL, key TEXT NOT NULL, fingerprint TEXT NOT NULL, created_at TEXT NOT NULL,"
    " PRIMARY KEY (clinic_id, key))",
    "CREATE TABLE IF NOT EXISTS scores ("
    " clinic_id TEXT NOT NULL, event_id TEXT NOT NULL, client_id TEXT NOT NULL,"
    " correlation_id TEXT NOT NULL, session_number INTEGER NOT NULL, instrument TEXT NOT NULL,"
    " body TEXT NOT NULL, PRIMARY KEY (clinic_id, event_id))",
    "CREATE INDEX IF NOT EXISTS scores_by_client ON scores (clinic_id, client_id)",
    "CREATE TABLE IF NOT EXISTS score_offsets ("
    " topic TEXT NOT NULL, partition INTEGER NOT NULL, next_offset INTEGER NOT NULL,"
    " PRIMARY KEY (topic, partition))",
)


@dataclass(frozen=True, slots=True)
class ProducedRow:
    """What the ledger keeps of one acknowledged event."""

    fingerprint: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class StoredScore:
    """A scored survey with the FHIR facts of the session it came from (if it came over FHIR)."""

    scored: SurveyScored
    encounter: str | None
    derived_from: dict[str, Any] | None


class GatewayStore:
    """The ledger and the read model on one SQLite connection (the event loop's thread only).

    Ledger rows of acknowledged events are committed in groups: :meth:`record_produced` queues the
    row and commits every queued row in one transaction at the end of the current event-loop
    iteration (the broker acknowledges a whole batch at once, so its rows share one commit). A
    queued row already answers :meth:`produced`.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._queued: dict[tuple[str, str], tuple[Any, ...]] = {}
        self._flush_scheduled = False
        for statement in _SCHEMA:
            conn.execute(statement)

    # ------------------------------------------------------------------ idempotency ledger

    def produced(self, clinic_id: str, event_id: str) -> ProducedRow | None:
        """The ledger row of an acknowledged event, or ``None``."""
        queued = self._queued.get((clinic_id, event_id))
        if queued is not None:
            return ProducedRow(queued[2], queued[5], queued[6])
        row = self._conn.execute(
            "SELECT fingerprint, topic_partition, topic_offset FROM produced"
            " WHERE clinic_id = ? AND event_id = ?",
            (clinic_id, event_id),
        ).fetchone()
        return ProducedRow(*row) if row else None

    def record_produced(
        self,
        clinic_id: str,
        event_id: str,
        fingerprint: str,
        partition: int,
        offset: int,
        encounter: str | None = None,
        derived_from: dict[str, Any] | None = None,
    ) -> None:
        """Remember an event the broker acknowledged (committed with its group, see the class)."""
        self._queued[(clinic_id, event_id)] = (
            clinic_id,
            event_id,
            fingerprint,
            encounter,
            json.dumps(derived_from) if derived_from is not None else None,
            partition,
            offset,
            _now(),
        )
        if not self._flush_scheduled:
            self._flush_scheduled = True
            try:
                asyncio.get_running_loop().call_soon(self.flush)
            except RuntimeError:  # no loop (tools, tests): commit now
                self.flush()

    def flush(self) -> None:
        """Commit every queued ledger row in one transaction."""
        self._flush_scheduled = False
        if not self._queued:
            return
        rows = list(self._queued.values())
        with _transaction(self._conn):
            self._conn.executemany(
                "INSERT OR IGNORE INTO produced (clinic_id, event_id, fingerprint, encounter, derived_from,"
                " topic_partition, topic_offset, produced_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        self._queued.clear()

    def idempotency_key(self, clinic_id: str, key: str) -> str | None:
        """The fingerprint of the request an ``Idempotency-Key`` answered, or ``None``."""
        row = self._conn.execute(
            "SELECT fingerprint FROM idempotency_keys WHERE clinic_id = ? AND key = ?", (clinic_id, key)
        ).fetchone()
        return str(row[0]) if row else None

    def record_idempotency_key(self, clinic_id: str, key: str, fingerprint: str) -> None:
        """Remember that ``key`` answered the request with ``fingerprint``."""
        self._conn.execute(
            "INSERT OR IGNORE INTO idempotency_keys (clinic_id, key, fingerprint, created_at)"
            " VALUES (?, ?, ?, ?)",
            (clinic_id, key, fingerprint, _now()),
        )

    def purge(self, older_than_days: int) -> int:
        """Forget ledger entries older than ``older_than_days``; returns how many went."""
        cutoff = (datetime.now(UTC) - timedelta(days=older_than_days)).isoformat()
        gone = self._conn.execute("DELETE FROM idempotency_keys WHERE created_at < ?", (cutoff,)).rowcount
        # Keep the FHIR facts of sessions whose scores are still stored: Observations point at them.
        gone += self._conn.execute(
            "DELETE FROM produced WHERE produced_at < ? AND encounter IS NULL", (cutoff,)
        ).rowcount
        return int(gone)

    # ------------------------------------------------------------------ scores read model

    def offsets(self, topic: str) -> dict[int, int]:
        """The next offset to read, per partition of ``topic``."""
        rows = self._conn.execute(
            "SELECT partition, next_offset FROM score_offsets WHERE topic = ?", (topic,)
        ).fetchall()
        return {int(p): int(o) for p, o in rows}

    def store_scores(self, topic: str, scores: Iterable[SurveyScored], next_offsets: dict[int, int]) -> int:
        """Upsert scored surveys and advance the offsets, in one transaction; returns rows written."""
        written = 0
        with _transaction(self._conn):
            for s in scores:
                self._conn.execute(
                    "INSERT OR REPLACE INTO scores (clinic_id, event_id, client_id, correlation_id,"
                    " session_number, instrument, body) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        s.clinic_id,
                        str(s.id),
                        s.data.client_id,
                        str(s.correlation_id),
                        s.data.session_number,
                        s.data.instrument,
                        s.model_dump_json(),
                    ),
                )
                written += 1
            self._conn.executemany(
                "INSERT OR REPLACE INTO score_offsets (topic, partition, next_offset) VALUES (?, ?, ?)",
                [(topic, p, o) for p, o in next_offsets.items()],
            )
        return written

    def scores_of(
        self, clinic_id: str, client_id: str, encounter: str | None = None, limit: int = 1000
    ) -> Sequence[StoredScore]:
        """A client's scored surveys of one clinic (optionally of one FHIR encounter), in session order."""
        sql = (
            "SELECT s.body, p.encounter, p.derived_from FROM scores s LEFT JOIN produced p"
            " ON p.clinic_id = s.clinic_id AND p.event_id = s.correlation_id"
            " WHERE s.clinic_id = ? AND s.client_id = ?"
        )
        args: list[Any] = [clinic_id, client_id]
        if encounter is not None:
            sql += " AND p.encounter = ?"
            args.append(encounter)
        sql += " ORDER BY s.session_number, s.instrument, s.event_id LIMIT ?"
        args.append(limit)
        return [
            StoredScore(
                SurveyScored.model_validate_json(body),
                enc,
                json.loads(derived) if derived else None,
            )
            for body, enc, derived in self._conn.execute(sql, args).fetchall()
        ]


class _transaction:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *_: object) -> None:
        self._conn.execute("ROLLBACK" if exc_type is not None else "COMMIT")


def _now() -> str:
    return datetime.now(UTC).isoformat()
