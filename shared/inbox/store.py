"""The inbox's database: one small repository layer over SQLAlchemy Core, SQLite or PostgreSQL.

The same code path serves both: ``sqlite:///path.db`` (embedded default, nothing to set up) and
``postgresql://user@host:port/db`` (server option; driven by psycopg 3). Every write from a topic is
an idempotent upsert keyed by the event's id (directories: by clinic, newest version wins), and the
consumer's next offsets are written in the same transaction as the rows they cover, so a crash
anywhere replays records into upserts that change nothing, and replaying the topics twice yields
identical tables.

Times are stored as fixed-width ISO-8601 UTC text (:func:`shared.inbox.projection.iso`), which
sorts correctly and reads back identically on both databases.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ColumnElement,
    Connection,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    create_engine,
    delete,
    event,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.pool import StaticPool

from shared.contracts.alerts import AlertEvent, ClinicDirectory
from shared.contracts.events import Signal, SurveyScored
from shared.inbox.projection import SEVERITY_RANK, AlertSummary, fold_alert, iso
from shared.inbox.tenancy import Scope

metadata = MetaData()

alert_events = Table(
    "alert_events",
    metadata,
    Column("event_id", String(36), primary_key=True),
    Column("alert_id", String(36), nullable=False, index=True),
    Column("state", String(16), nullable=False),
    Column("time", String(32), nullable=False),
    Column("payload", Text, nullable=False),
)

alerts = Table(
    "alerts",
    metadata,
    Column("alert_id", String(36), primary_key=True),
    Column("clinic_id", String, nullable=False),
    Column("client_id", String, nullable=False),
    Column("clinician_id", String, nullable=False),
    # Null for an alert of a session event whose episode or session number was invalid.
    Column("episode_id", String),
    Column("session_number", Integer),
    Column("instrument", String, nullable=False),
    Column("kind", String, nullable=False),
    Column("severity", String, nullable=False),
    Column("rule_id", String, nullable=False),
    Column("rule_version", String, nullable=False),
    Column("signal_id", String(36), nullable=False),
    Column("explanation", Text, nullable=False),
    Column("correlation_id", String(36), nullable=False),
    Column("raised_at", String(32), nullable=False),
    Column("updated_at", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("escalated", Boolean, nullable=False),
    Column("escalation_step", String),
    Column("escalated_at", String(32)),
    Column("acknowledged_by", String),
    Column("acknowledged_at", String(32)),
    Column("resolved_at", String(32)),
    Index("ix_alerts_scope", "clinic_id", "status", "clinician_id"),
)

signals = Table(
    "signals",
    metadata,
    Column("signal_id", String(36), primary_key=True),
    Column("clinic_id", String, nullable=False),
    Column("client_id", String, nullable=False),
    Column("episode_id", String, nullable=False),
    Column("session_number", Integer, nullable=False),
    Column("instrument", String, nullable=False),
    Column("kind", String, nullable=False),
    Column("severity", String, nullable=False),
    Column("rule_id", String, nullable=False),
    Column("rule_version", String, nullable=False),
    Column("ruleset_version", String, nullable=False),
    Column("explanation", Text, nullable=False),
    Column("evidence", Text, nullable=False),
    Column("time", String(32), nullable=False),
    Index("ix_signals_client", "clinic_id", "client_id", "episode_id"),
)

scores = Table(
    "scores",
    metadata,
    Column("event_id", String(36), primary_key=True),
    Column("clinic_id", String, nullable=False),
    Column("client_id", String, nullable=False),
    Column("episode_id", String, nullable=False),
    Column("session_number", Integer, nullable=False),
    Column("session_time", String(32), nullable=False),
    Column("instrument", String, nullable=False),
    Column("instrument_version", String, nullable=False),
    Column("domain", String(16), nullable=False),
    Column("total", Float),
    Column("band", String),
    Column("critical_items", Text, nullable=False),
    Column("scale", Text, nullable=False),
    Column("time", String(32), nullable=False),
    Index("ix_scores_client", "clinic_id", "client_id", "episode_id"),
)

directories = Table(
    "directories",
    metadata,
    Column("clinic_id", String, primary_key=True),
    Column("version", Integer, nullable=False),
    Column("document", Text, nullable=False),
)

acknowledgements = Table(
    "acknowledgements",
    metadata,
    Column("alert_id", String(36), primary_key=True),
    Column("event_id", String(36), nullable=False, unique=True),
    Column("clinic_id", String, nullable=False),
    Column("person_id", String, nullable=False),
    Column("username", String, nullable=False),
    Column("acknowledged_at", String(32), nullable=False),
    Column("note", Text),
    Column("published_at", String(32)),
)

users = Table(
    "users",
    metadata,
    Column("username", String, primary_key=True),
    Column("clinic_id", String, nullable=False),
    Column("person_id", String, nullable=False),
    Column("password_hash", Text, nullable=False),
    Column("disabled", Boolean, nullable=False),
    Column("created_at", String(32), nullable=False),
    Column("disabled_at", String(32)),
    UniqueConstraint("clinic_id", "person_id", name="uq_users_person"),
)

web_sessions = Table(
    "web_sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("username", String, nullable=False, index=True),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("last_seen_at", Float, nullable=False),
)

consumer_offsets = Table(
    "consumer_offsets",
    metadata,
    Column("topic", String, primary_key=True),
    Column("partition", Integer, primary_key=True),
    Column("next_offset", BigInteger, nullable=False),
)

#: Tables filled from topics only: replaying the topics must leave them identical.
TOPIC_TABLES: tuple[Table, ...] = (alert_events, alerts, signals, scores, directories)


@dataclass(frozen=True)
class DirectoryRemoved:
    """A tombstone on the compacted directory topic: the clinic is gone."""

    clinic_id: str


Change = AlertEvent | Signal | SurveyScored | ClinicDirectory | DirectoryRemoved
"""One decoded topic record the store takes in."""


@dataclass(frozen=True)
class ScorePoint:
    """One scored survey of a client's episode, for the trajectory chart."""

    session_number: int
    session_time: str
    instrument: str
    domain: str
    total: float | None
    band: str | None
    critical_items: tuple[str, ...]
    scale: Mapping[str, Any]
    time: str


@dataclass(frozen=True)
class SignalView:
    """A signal as the inbox shows it: the rule, its evidence and explanation."""

    signal_id: str
    session_number: int
    instrument: str
    kind: str
    severity: str
    rule_id: str
    rule_version: str
    ruleset_version: str
    explanation: str
    evidence: Mapping[str, Any]
    time: str


@dataclass(frozen=True)
class AlertEventView:
    """One lifecycle step of an alert, for the alert page's history."""

    state: str
    time: str
    escalation_step: str | None
    recipient_id: str | None
    channel: str | None
    outcome: str | None


@dataclass(frozen=True)
class Acknowledgement:
    """An acknowledgement made in this inbox; the note never leaves the inbox's database."""

    alert_id: str
    event_id: str
    clinic_id: str
    person_id: str
    username: str
    acknowledged_at: str
    note: str | None
    published_at: str | None


@dataclass(frozen=True)
class User:
    """An inbox login bound to one person of one clinic's directory."""

    username: str
    clinic_id: str
    person_id: str
    password_hash: str
    disabled: bool
    created_at: str
    disabled_at: str | None


@dataclass(frozen=True)
class WebSession:
    """A logged-in browser session (the cookie carries a signed token; the table its hash)."""

    token_hash: str
    username: str
    csrf_token: str
    created_at: float
    last_seen_at: float


@dataclass(frozen=True)
class IngestResult:
    """What one :meth:`InboxStore.ingest` transaction wrote."""

    alert_events: int = 0
    signals: int = 0
    scores: int = 0
    directories: int = 0
    directories_ignored: int = 0
    alerts_refolded: int = 0


class UserExists(ValueError):
    """The username, or the clinic's person, already has an account."""


def normalise_url(url: str) -> str:
    """The SQLAlchemy URL of a database URL: ``postgresql://`` and ``postgres://`` use psycopg 3."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


class InboxStore:
    """Every read and write of the inbox's database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._insert = sqlite_insert if engine.dialect.name == "sqlite" else pg_insert

    @classmethod
    def open(cls, url: str, *, create: bool = True) -> InboxStore:
        """Connect to ``url`` and (by default) create missing tables."""
        url = normalise_url(url)
        kwargs: dict[str, Any] = {}
        if url.startswith("sqlite"):
            # The web threads and the consumer thread share the database.
            kwargs["connect_args"] = {"check_same_thread": False}
            if url in ("sqlite://", "sqlite:///:memory:"):
                kwargs["poolclass"] = StaticPool
        else:
            kwargs["pool_pre_ping"] = True
        engine = create_engine(url, **kwargs)
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)
        elif engine.dialect.name != "postgresql":
            raise ValueError("the inbox database must be SQLite or PostgreSQL")
        store = cls(engine)
        if create:
            metadata.create_all(engine)
        return store

    def close(self) -> None:
        """Release every pooled connection."""
        self.engine.dispose()

    def ping(self) -> bool:
        """Whether the database answers a trivial query."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except Exception:  # readiness probe: any failure means not ready
            return False

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        """One write transaction. On SQLite it takes the write lock up front (``BEGIN IMMEDIATE``):
        a deferred transaction that reads first and writes later fails at once with "database is
        locked" when another connection wrote in between, instead of waiting its turn."""
        with self.engine.connect() as conn:
            if self.engine.dialect.name == "sqlite":
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.rollback()
                raise
            conn.commit()

    def _upsert(self, conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        keys = [c.name for c in table.primary_key.columns]
        stmt = self._insert(table)
        stmt = stmt.on_conflict_do_update(
            index_elements=keys,
            set_={c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys},
        )
        conn.execute(stmt, list(rows))

    # ------------------------------------------------------------------ topic records

    def ingest(self, changes: Iterable[Change], offsets: Mapping[tuple[str, int], int]) -> IngestResult:
        """Write ``changes`` and the consumer's next ``offsets`` ((topic, partition) → offset) in one
        transaction. Idempotent: the same changes again leave every table as it was."""
        event_rows: dict[str, dict[str, Any]] = {}
        signal_rows: dict[str, dict[str, Any]] = {}
        score_rows: dict[str, dict[str, Any]] = {}
        clinic_changes: list[ClinicDirectory | DirectoryRemoved] = []
        for change in changes:
            if isinstance(change, AlertEvent):
                event_rows[str(change.id)] = _alert_event_row(change)
            elif isinstance(change, Signal):
                d = change.data
                if d.client_id is None or d.episode_id is None or d.session_number is None:
                    # A risk answer salvaged from an invalid session event: it is no point of any
                    # trajectory; its alert (from the notifier) carries what is known.
                    continue
                signal_rows[str(change.id)] = _signal_row(change)
            elif isinstance(change, SurveyScored):
                score_rows[str(change.id)] = _score_row(change)
            else:
                clinic_changes.append(change)
        applied = ignored = 0
        with self._tx() as conn:
            self._upsert(conn, alert_events, list(event_rows.values()))
            touched = sorted({r["alert_id"] for r in event_rows.values()})
            for alert_id in touched:
                self._refold(conn, alert_id)
            self._upsert(conn, signals, list(signal_rows.values()))
            self._upsert(conn, scores, list(score_rows.values()))
            for change in clinic_changes:
                if self._apply_directory(conn, change):
                    applied += 1
                else:
                    ignored += 1
            self._upsert(
                conn,
                consumer_offsets,
                [{"topic": t, "partition": p, "next_offset": o} for (t, p), o in sorted(offsets.items())],
            )
        return IngestResult(
            alert_events=len(event_rows),
            signals=len(signal_rows),
            scores=len(score_rows),
            directories=applied,
            directories_ignored=ignored,
            alerts_refolded=len(touched),
        )

    def _refold(self, conn: Connection, alert_id: str) -> None:
        payloads = conn.execute(
            select(alert_events.c.payload).where(alert_events.c.alert_id == alert_id)
        ).scalars()
        summary = fold_alert(AlertEvent.model_validate_json(p) for p in payloads)
        self._upsert(conn, alerts, [vars(summary)])

    def _apply_directory(self, conn: Connection, change: ClinicDirectory | DirectoryRemoved) -> bool:
        if isinstance(change, DirectoryRemoved):
            conn.execute(delete(directories).where(directories.c.clinic_id == change.clinic_id))
            return True
        stmt = self._insert(directories).values(
            clinic_id=change.clinic_id, version=change.version, document=change.model_dump_json()
        )
        # One atomic statement: a late, older version changes nothing (the WHERE of the upsert).
        stmt = stmt.on_conflict_do_update(
            index_elements=["clinic_id"],
            set_={"version": stmt.excluded.version, "document": stmt.excluded.document},
            where=directories.c.version <= stmt.excluded.version,
        )
        # RETURNING, not rowcount: psycopg reports no row count for this statement.
        return conn.execute(stmt.returning(directories.c.clinic_id)).first() is not None

    def offsets(self) -> dict[tuple[str, int], int]:
        """The next offset to read of every (topic, partition) this database has taken in."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(consumer_offsets)).all()
        return {(r.topic, r.partition): r.next_offset for r in rows}

    def reset_offsets(self) -> None:
        """Forget every consumed offset: the consumer then re-reads every topic from its start."""
        with self._tx() as conn:
            conn.execute(delete(consumer_offsets))

    def dump(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of the topic-derived tables, sorted (to compare two databases)."""
        out: dict[str, list[tuple[Any, ...]]] = {}
        with self.engine.connect() as conn:
            for table in TOPIC_TABLES:
                rows = conn.execute(select(table)).all()
                out[table.name] = sorted((tuple(r) for r in rows), key=repr)
        return out

    # ------------------------------------------------------------------ reads for pages

    def directory(self, clinic_id: str) -> ClinicDirectory | None:
        """The newest directory of ``clinic_id`` taken in, if any."""
        with self.engine.connect() as conn:
            doc = conn.execute(
                select(directories.c.document).where(directories.c.clinic_id == clinic_id)
            ).scalar_one_or_none()
        return ClinicDirectory.model_validate_json(doc) if doc is not None else None

    def alerts_in_scope(self, scope: Scope, statuses: Sequence[str] = ("open",)) -> list[AlertSummary]:
        """The alerts ``scope`` permits, with one of ``statuses``, most severe first, then oldest."""
        who: ColumnElement[bool] = alerts.c.clinician_id.in_(sorted(scope.clinician_ids))
        if scope.escalated_critical:
            who = or_(who, and_(alerts.c.severity == "critical", alerts.c.escalated.is_(True)))
        query = select(alerts).where(
            alerts.c.clinic_id == scope.clinic_id, alerts.c.status.in_(list(statuses)), who
        )
        with self.engine.connect() as conn:
            found = [_summary(r._mapping) for r in conn.execute(query)]
        # The query and the predicate say the same; the predicate is the one the tests pin down.
        permitted = [a for a in found if scope.permits(a)]
        return sorted(permitted, key=lambda a: (SEVERITY_RANK.get(a.severity, 9), a.raised_at, a.alert_id))

    def alert(self, alert_id: str) -> AlertSummary | None:
        """One alert by id (callers check it against the viewer's scope)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(alerts).where(alerts.c.alert_id == alert_id)).first()
        return _summary(row._mapping) if row is not None else None

    def alert_history(self, alert_id: str) -> list[AlertEventView]:
        """The alert's lifecycle events in order."""
        with self.engine.connect() as conn:
            payloads = conn.execute(
                select(alert_events.c.payload).where(alert_events.c.alert_id == alert_id)
            ).scalars()
            events = [AlertEvent.model_validate_json(p) for p in payloads]
        from shared.inbox.projection import event_order

        return [
            AlertEventView(
                state=e.data.state,
                time=iso(e.time),
                escalation_step=e.data.escalation_step,
                recipient_id=e.data.recipient_id,
                channel=e.data.channel,
                outcome=e.data.outcome,
            )
            for e in sorted(events, key=event_order)
        ]

    def signal(self, signal_id: str) -> SignalView | None:
        """The signal behind an alert (its evidence), once taken in."""
        with self.engine.connect() as conn:
            row = conn.execute(select(signals).where(signals.c.signal_id == signal_id)).first()
        return _signal_view(row._mapping) if row is not None else None

    def episode_signals(self, clinic_id: str, client_id: str, episode_id: str) -> list[SignalView]:
        """Every signal of one client's episode (flagged sessions on the chart)."""
        query = select(signals).where(
            signals.c.clinic_id == clinic_id,
            signals.c.client_id == client_id,
            signals.c.episode_id == episode_id,
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        views = [_signal_view(r._mapping) for r in rows]
        return sorted(views, key=lambda s: (s.session_number, s.instrument, s.signal_id))

    def episode_scores(self, clinic_id: str, client_id: str, episode_id: str) -> list[ScorePoint]:
        """One score per (instrument, session) of a client's episode, by session: when a session was
        scored twice (re-sent), the newest event wins."""
        query = select(scores).where(
            scores.c.clinic_id == clinic_id,
            scores.c.client_id == client_id,
            scores.c.episode_id == episode_id,
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        latest: dict[tuple[str, int], tuple[tuple[str, str], ScorePoint]] = {}
        for r in rows:
            m = r._mapping
            point = ScorePoint(
                session_number=m["session_number"],
                session_time=m["session_time"],
                instrument=m["instrument"],
                domain=m["domain"],
                total=m["total"],
                band=m["band"],
                critical_items=tuple(json.loads(m["critical_items"])),
                scale=json.loads(m["scale"]),
                time=m["time"],
            )
            rank = (m["time"], m["event_id"])
            key = (point.instrument, point.session_number)
            if key not in latest or latest[key][0] < rank:
                latest[key] = (rank, point)
        return sorted((p for _, p in latest.values()), key=lambda p: (p.instrument, p.session_number))

    # ------------------------------------------------------------------ acknowledgements

    def acknowledge(self, ack: Acknowledgement) -> Acknowledgement:
        """Record ``ack`` unless the alert already has one here; returns the one that stands (two
        people acknowledging at the same moment both get the first)."""
        with self._tx() as conn:
            stmt = self._insert(acknowledgements).values(**vars(ack))
            conn.execute(stmt.on_conflict_do_nothing())  # any unique clash: the first one stands
            standing = conn.execute(
                select(acknowledgements).where(acknowledgements.c.alert_id == ack.alert_id)
            ).one()
        return Acknowledgement(**standing._mapping)

    def acknowledgement(self, alert_id: str) -> Acknowledgement | None:
        """The acknowledgement made here for ``alert_id``, if any."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(acknowledgements).where(acknowledgements.c.alert_id == alert_id)
            ).first()
        return Acknowledgement(**row._mapping) if row is not None else None

    def acknowledged_ids(self, alert_ids: Iterable[str]) -> set[str]:
        """Which of ``alert_ids`` were acknowledged here."""
        ids = sorted(set(alert_ids))
        if not ids:
            return set()
        with self.engine.connect() as conn:
            found = conn.execute(
                select(acknowledgements.c.alert_id).where(acknowledgements.c.alert_id.in_(ids))
            ).scalars()
            return set(found)

    def mark_published(self, alert_id: str, at: str) -> None:
        """The acknowledgement of ``alert_id`` is on the broker."""
        with self._tx() as conn:
            conn.execute(
                update(acknowledgements)
                .where(acknowledgements.c.alert_id == alert_id, acknowledgements.c.published_at.is_(None))
                .values(published_at=at)
            )

    def unpublished_acknowledgements(self, limit: int = 100) -> list[Acknowledgement]:
        """Acknowledgements not yet confirmed by the broker (the outbox), oldest first."""
        query = (
            select(acknowledgements)
            .where(acknowledgements.c.published_at.is_(None))
            .order_by(acknowledgements.c.acknowledged_at, acknowledgements.c.alert_id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [Acknowledgement(**r._mapping) for r in conn.execute(query)]

    # ------------------------------------------------------------------ users and sessions

    def add_user(self, user: User) -> None:
        """Create an account; :class:`UserExists` when the username or the person has one."""
        with self._tx() as conn:
            clash = conn.execute(
                select(users.c.username).where(
                    or_(
                        users.c.username == user.username,
                        and_(users.c.clinic_id == user.clinic_id, users.c.person_id == user.person_id),
                    )
                )
            ).first()
            if clash is not None:
                raise UserExists("an account with this username or for this person already exists")
            conn.execute(users.insert().values(**vars(user)))

    def user(self, username: str) -> User | None:
        """The account ``username``, if any."""
        with self.engine.connect() as conn:
            row = conn.execute(select(users).where(users.c.username == username)).first()
        return User(**row._mapping) if row is not None else None

    def users(self) -> list[User]:
        """Every account, by clinic and username."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(users).order_by(users.c.clinic_id, users.c.username)).all()
        return [User(**r._mapping) for r in rows]

    def set_password_hash(self, username: str, password_hash: str) -> None:
        """Store a new hash (after a rehash with stronger parameters)."""
        with self._tx() as conn:
            conn.execute(
                update(users).where(users.c.username == username).values(password_hash=password_hash)
            )

    def disable_user(self, username: str, at: str) -> bool:
        """Disable an account and end its sessions; False when there is no such account."""
        with self._tx() as conn:
            result = conn.execute(
                update(users).where(users.c.username == username).values(disabled=True, disabled_at=at)
            )
            conn.execute(delete(web_sessions).where(web_sessions.c.username == username))
            return bool(result.rowcount)

    def create_session(self, session: WebSession) -> None:
        """Store a new browser session."""
        with self._tx() as conn:
            conn.execute(web_sessions.insert().values(**vars(session)))

    def session(self, token_hash: str) -> WebSession | None:
        """The session whose token hashes to ``token_hash``, if any."""
        with self.engine.connect() as conn:
            row = conn.execute(select(web_sessions).where(web_sessions.c.token_hash == token_hash)).first()
        return WebSession(**row._mapping) if row is not None else None

    def touch_session(self, token_hash: str, at: float) -> None:
        """Record activity on a session (its idle timeout restarts)."""
        with self._tx() as conn:
            conn.execute(
                update(web_sessions).where(web_sessions.c.token_hash == token_hash).values(last_seen_at=at)
            )

    def delete_session(self, token_hash: str) -> None:
        """End one session (logout, timeout)."""
        with self._tx() as conn:
            conn.execute(delete(web_sessions).where(web_sessions.c.token_hash == token_hash))

    def delete_expired_sessions(self, idle_before: float, created_before: float) -> int:
        """End every session idle since ``idle_before`` or created before ``created_before``."""
        with self._tx() as conn:
            result = conn.execute(
                delete(web_sessions).where(
                    or_(
                        web_sessions.c.last_seen_at < idle_before,
                        web_sessions.c.created_at < created_before,
                    )
                )
            )
            return int(result.rowcount)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the web threads read while the consumer writes; the busy timeout makes a writer
    # wait for the other instead of failing at once.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _alert_event_row(e: AlertEvent) -> dict[str, Any]:
    return {
        "event_id": str(e.id),
        "alert_id": str(e.data.alert_id),
        "state": e.data.state,
        "time": iso(e.time),
        "payload": e.model_dump_json(),
    }


def _signal_row(s: Signal) -> dict[str, Any]:
    d = s.data
    return {
        "signal_id": str(s.id),
        "clinic_id": s.clinic_id,
        "client_id": d.client_id,
        "episode_id": d.episode_id,
        "session_number": d.session_number,
        "instrument": d.instrument,
        "kind": d.kind,
        "severity": d.severity,
        "rule_id": d.rule_id,
        "rule_version": d.rule_version,
        "ruleset_version": d.ruleset_version,
        "explanation": d.explanation,
        "evidence": _json(d.evidence.model_dump(mode="json")),
        "time": iso(s.time),
    }


def _score_row(s: SurveyScored) -> dict[str, Any]:
    d = s.data
    return {
        "event_id": str(s.id),
        "clinic_id": s.clinic_id,
        "client_id": d.client_id,
        "episode_id": d.episode_id,
        "session_number": d.session_number,
        "session_time": iso(d.session_time),
        "instrument": d.instrument,
        "instrument_version": d.instrument_version,
        "domain": d.domain,
        "total": d.total,
        "band": d.band,
        "critical_items": _json(list(d.critical_items)),
        "scale": _json(d.scale.model_dump(mode="json")),
        "time": iso(s.time),
    }


def _summary(m: Mapping[Any, Any]) -> AlertSummary:
    values = dict(m)
    values["escalated"] = bool(values["escalated"])
    return AlertSummary(**values)


def _signal_view(m: Mapping[Any, Any]) -> SignalView:
    values = {k: m[k] for k in SignalView.__dataclass_fields__}
    values["evidence"] = json.loads(values["evidence"])
    return SignalView(**values)
