"""The inbox database: idempotent upserts, replay gives identical tables, directory versions,
acknowledgements, accounts and sessions. Runs on SQLite here and on PostgreSQL in
``tests/integration/test_inbox_postgres.py`` (same tests, other ``store`` fixture)."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from shared.inbox.store import Acknowledgement, DirectoryRemoved, InboxStore, User, UserExists, WebSession
from shared.inbox.tenancy import Viewer, scope_for
from tests.inbox_support import alert_event, directory, episode, synthetic_alert


def _all_changes():  # type: ignore[no-untyped-def]
    scored, signals = episode()
    crit = next(s for s in signals if s.data.kind == "critical_item")
    events = [
        alert_event(crit, "raised"),
        alert_event(crit, "delivered", at=crit.time + timedelta(seconds=2), channel="email", attempt=1),
        alert_event(crit, "escalated", at=crit.time + timedelta(minutes=15), escalation_step="supervisor"),
    ]
    return [directory(), *scored, *signals, *events]


def test_ingesting_twice_changes_nothing(store: InboxStore) -> None:
    changes = _all_changes()
    store.ingest(changes, {("t", 0): 10})
    first = store.dump()
    assert first["alerts"] and first["scores"] and first["signals"] and first["directories"]
    store.ingest(changes, {("t", 0): 10})
    assert store.dump() == first


def test_any_batching_and_order_gives_identical_tables(store: InboxStore, tmp_path) -> None:  # type: ignore[no-untyped-def]
    changes = _all_changes()
    store.ingest(changes, {})
    shuffled = list(changes) * 2
    random.Random(7).shuffle(shuffled)
    other = InboxStore.open(f"sqlite:///{tmp_path / 'other.db'}")
    try:
        for i in range(0, len(shuffled), 3):
            other.ingest(shuffled[i : i + 3], {})
        assert other.dump() == store.dump()
    finally:
        other.close()


def test_offsets_are_written_with_the_rows_and_can_be_reset(store: InboxStore) -> None:
    store.ingest([directory()], {("a", 0): 5, ("a", 1): 7})
    store.ingest([], {("a", 0): 9})
    assert store.offsets() == {("a", 0): 9, ("a", 1): 7}
    store.reset_offsets()
    assert store.offsets() == {}


def test_an_older_directory_version_never_replaces_a_newer_one(store: InboxStore) -> None:
    v2 = directory(version=2, timezone="Europe/Berlin")
    result = store.ingest([v2, directory(version=1)], {})
    assert result.directories == 1 and result.directories_ignored == 1
    found = store.directory("clinic-01")
    assert found is not None and found.version == 2 and found.timezone == "Europe/Berlin"


def test_a_tombstone_removes_the_clinic_and_with_it_everyones_scope(store: InboxStore) -> None:
    store.ingest([directory()], {})
    store.ingest([DirectoryRemoved("clinic-01")], {})
    assert store.directory("clinic-01") is None
    assert scope_for(Viewer("clinic-01", "clin-01"), store.directory("clinic-01")) is None


def test_alerts_in_scope_are_sorted_by_severity_then_age(store: InboxStore) -> None:
    events = [
        *synthetic_alert(clinic="clinic-01", clinician="clin-01", severity="info", n=1),
        *synthetic_alert(clinic="clinic-01", clinician="clin-01", severity="critical", n=5),
        *synthetic_alert(clinic="clinic-01", clinician="clin-01", severity="critical", n=3),
        *synthetic_alert(clinic="clinic-01", clinician="clin-01", severity="high", n=2),
        *synthetic_alert(
            clinic="clinic-01", clinician="clin-01", severity="high", n=4, states=("raised", "resolved")
        ),
        *synthetic_alert(clinic="clinic-01", clinician="clin-02", severity="critical", n=0),
    ]
    store.ingest([directory(), *events], {})
    scope = scope_for(Viewer("clinic-01", "clin-01"), store.directory("clinic-01"))
    assert scope is not None
    found = store.alerts_in_scope(scope)
    assert [(a.severity, a.raised_at[11:16]) for a in found] == [
        ("critical", "09:03"),
        ("critical", "09:05"),
        ("high", "09:02"),
        ("info", "09:01"),
    ]


def test_the_newest_score_of_a_session_wins_on_the_chart(store: InboxStore) -> None:
    scored, _ = episode(phq9_totals=(10, 12), srs_totals=(38, 38), critical_at=None)
    resent = scored[2].model_copy(
        update={
            "id": scored[2].id.__class__(int=scored[2].id.int + 1),
            "time": scored[2].time + timedelta(hours=1),
            "data": scored[2].data.model_copy(update={"total": 20.0}),
        }
    )
    store.ingest([*scored, resent], {})
    points = store.episode_scores("clinic-01", "c-001", "ep-1")
    phq = [(p.session_number, p.total) for p in points if p.instrument == "PHQ-9"]
    assert phq == [(1, 10.0), (2, 20.0)]


def test_one_acknowledgement_per_alert_and_the_outbox(store: InboxStore) -> None:
    first = Acknowledgement(
        "a-1", "e-1", "clinic-01", "clin-01", "alice", "2026-01-05T09:00:00.000000Z", "called", None
    )
    second = Acknowledgement(
        "a-1", "e-2", "clinic-01", "sup-01", "bob", "2026-01-05T09:05:00.000000Z", None, None
    )
    assert store.acknowledge(first) == first
    assert store.acknowledge(second) == first, "the first acknowledgement stands"
    assert [a.alert_id for a in store.unpublished_acknowledgements()] == ["a-1"]
    store.mark_published("a-1", "2026-01-05T09:00:01.000000Z")
    assert store.unpublished_acknowledgements() == []
    found = store.acknowledgement("a-1")
    assert found is not None and found.note == "called" and found.published_at is not None
    assert store.acknowledged_ids(["a-1", "a-2"]) == {"a-1"}


def test_accounts_are_unique_per_username_and_person(store: InboxStore) -> None:
    user = User("alice", "clinic-01", "clin-01", "hash", False, "2026-01-05T09:00:00.000000Z", None)
    store.add_user(user)
    with pytest.raises(UserExists):
        store.add_user(User("alice", "clinic-02", "x", "h", False, user.created_at, None))
    with pytest.raises(UserExists):
        store.add_user(User("alice2", "clinic-01", "clin-01", "h", False, user.created_at, None))
    assert [u.username for u in store.users()] == ["alice"]


def test_disabling_an_account_ends_its_sessions_and_sessions_expire(store: InboxStore) -> None:
    store.add_user(User("alice", "clinic-01", "clin-01", "hash", False, "2026-01-05T09:00:00.000000Z", None))
    store.create_session(WebSession("h1", "alice", "csrf", created_at=100.0, last_seen_at=100.0))
    store.create_session(WebSession("h2", "alice", "csrf", created_at=100.0, last_seen_at=500.0))
    assert store.delete_expired_sessions(idle_before=200.0, created_before=0.0) == 1
    assert store.session("h1") is None and store.session("h2") is not None
    assert store.disable_user("alice", "2026-01-05T10:00:00.000000Z")
    assert store.session("h2") is None
    disabled = store.user("alice")
    assert disabled is not None and disabled.disabled
    assert not store.disable_user("nobody", "2026-01-05T10:00:00.000000Z")


def test_concurrent_writers_wait_for_each_other(store: InboxStore) -> None:
    """The consumer and web requests write at the same time, two people may acknowledge one alert
    at the same moment: nobody fails, and one acknowledgement per alert stands."""
    import threading

    errors: list[BaseException] = []
    standing: dict[str, set[str]] = {}

    def directories() -> None:
        try:
            for v in range(1, 60):
                store.ingest([directory(version=v)], {("d", 0): v})
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    def acknowledgements(person: str) -> None:
        try:
            for n in range(60):
                ack = Acknowledgement(
                    f"a-{n}", f"e-{n}", "k", person, person, "2026-01-05T09:00:00.000000Z", None, None
                )
                standing.setdefault(f"a-{n}", set()).add(store.acknowledge(ack).person_id)
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=directories)] + [
        threading.Thread(target=acknowledgements, args=(p,)) for p in ("p1", "p2", "p3")
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert all(len(people) == 1 for people in standing.values()), "everyone sees the same acknowledgement"
    assert len(store.unpublished_acknowledgements(limit=1000)) == 60 and store.offsets() == {("d", 0): 59}
    found = store.directory("clinic-01")
    assert found is not None and found.version == 59


def test_on_call_scope_selects_escalated_critical_alerts_only(store: InboxStore) -> None:
    def one(n: int, severity: str, states: tuple[str, ...], clinic: str = "clinic-01") -> list:  # type: ignore[type-arg]
        return synthetic_alert(clinic=clinic, clinician="clin-02", severity=severity, states=states, n=n)  # type: ignore[arg-type]

    escalated = one(1, "critical", ("raised", "escalated"))
    store.ingest(
        [
            directory(),
            *escalated,
            *one(2, "critical", ("raised",)),
            *one(3, "high", ("raised", "escalated")),
            *one(4, "critical", ("raised", "escalated"), clinic="clinic-02"),
        ],
        {},
    )
    scope = scope_for(Viewer("clinic-01", "oncall-01"), store.directory("clinic-01"))
    assert scope is not None
    assert [a.alert_id for a in store.alerts_in_scope(scope)] == [str(escalated[0].data.alert_id)]
