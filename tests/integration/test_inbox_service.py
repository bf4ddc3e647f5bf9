"""The inbox on the real broker: topics into its database, unreadable records dead-lettered, and
replaying the topics (twice, and into a fresh database) gives identical tables."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from shared.contracts import topics
from shared.inbox.store import InboxStore
from shared.inbox.tenancy import Viewer, scope_for
from tests.inbox_support import alert_event, directory, episode
from tests.support import consume, produce, running_service, t, values

pytestmark = pytest.mark.integration

CHEAP = {"argon2_time_cost": "1", "argon2_memory_kib": "8", "argon2_parallelism": "1"}


def _produce_history(bootstrap: str, ns: str) -> dict[str, int]:
    scored, signals = episode(client="c-int")
    crit = next(s for s in signals if s.data.kind == "critical_item")
    alerts = [
        alert_event(crit, "raised"),
        alert_event(crit, "escalated", at=crit.time + timedelta(minutes=15), escalation_step="supervisor"),
    ]
    d = directory()
    produce(bootstrap, t(ns, topics.DIRECTORY), [(d.clinic_id.encode(), d.model_dump_json().encode())])
    produce(
        bootstrap,
        t(ns, topics.SURVEY_SCORED),
        [(b"clinic-01|c-int", s.model_dump_json().encode()) for s in scored],
    )
    produce(
        bootstrap,
        t(ns, topics.SIGNALS),
        [(b"clinic-01|c-int", s.model_dump_json().encode()) for s in signals]
        + [(b"junk", b'{"not": "a signal"')],
    )
    produce(
        bootstrap,
        t(ns, topics.ALERTS),
        [(str(a.data.alert_id).encode(), a.model_dump_json().encode()) for a in alerts],
    )
    return {
        "scores": len(scored),
        "signals": len(signals),
        "records": 1 + len(scored) + len(signals) + 1 + len(alerts),
    }


def _wait(check: Callable[[], bool], what: str, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def _consumed(url: str) -> int:
    store = InboxStore.open(url)
    try:
        return sum(store.offsets().values())
    finally:
        store.close()


def test_topics_reach_the_database_and_replays_give_identical_tables(
    kafka_bootstrap: str, ns: str, tmp_path: Path
) -> None:
    expected = _produce_history(kafka_bootstrap, ns)
    url = f"sqlite:///{tmp_path / 'inbox.db'}"
    with running_service(
        "services.inbox", "RAPPORT_INBOX_", kafka_bootstrap, ns, tmp_path, database_url=url, **CHEAP
    ) as svc:
        _wait(lambda: _consumed(url) == expected["records"], "every record in the database")
        metrics = svc.get("/metrics")[1]
        assert 'rapport_inbox_dead_letters_total{reason="undecodable"} 1.0' in metrics
        assert "rapport_inbox_consumer_lag_messages" in metrics
    store = InboxStore.open(url)
    first = store.dump()
    assert len(first["alerts"]) == 1 and len(first["scores"]) == expected["scores"]
    assert len(first["signals"]) == expected["signals"] and len(first["directories"]) == 1
    scope = scope_for(Viewer("clinic-01", "clin-01"), store.directory("clinic-01"))
    assert scope is not None
    (alert,) = store.alerts_in_scope(scope)
    assert alert.escalated and alert.escalation_step == "supervisor" and alert.status == "open"
    offsets = store.offsets()
    store.reset_offsets()
    store.close()

    (dead,) = values(consume(kafka_bootstrap, t(ns, topics.DEAD_LETTER), expected=1))
    assert dead["stage"] == "inbox" and dead["reason"] == "undecodable"

    # Replay everything into the same database (its offsets forgotten) ...
    with running_service(
        "services.inbox", "RAPPORT_INBOX_", kafka_bootstrap, ns, tmp_path, database_url=url, **CHEAP
    ):
        _wait(lambda: _consumed(url) == expected["records"], "the replay")
    again = InboxStore.open(url)
    assert again.dump() == first and again.offsets() == offsets
    again.close()
    # ... and into a fresh one, under another consumer group.
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    with running_service(
        "services.inbox",
        "RAPPORT_INBOX_",
        kafka_bootstrap,
        ns,
        tmp_path,
        database_url=fresh,
        app_id=f"{ns}other",
        **CHEAP,
    ):
        _wait(lambda: _consumed(fresh) == expected["records"], "the fresh database")
    other = InboxStore.open(fresh)
    assert other.dump() == first
    other.close()
    # Nothing was dead-lettered twice under a new id: the replayed dead letter has the same id.
    letters = values(consume(kafka_bootstrap, t(ns, topics.DEAD_LETTER), expected=3, timeout_s=20))
    assert {d["id"] for d in letters} == {dead["id"]}
