"""The inbox database on a real PostgreSQL server: the same repository tests as on SQLite, and the
service consuming from the real broker into PostgreSQL, replayed twice into identical tables."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.inbox.store import InboxStore
from tests.integration.test_inbox_service import CHEAP, _produce_history, _wait
from tests.support import running_service
from tests.unit.inbox.test_store import *  # noqa: F403 - the same tests, run against PostgreSQL

pytestmark = pytest.mark.integration


@pytest.fixture
def store(postgres_url: str) -> Iterator[InboxStore]:  # type: ignore[no-redef]
    """An empty inbox database on PostgreSQL (overrides the SQLite one of the imported tests)."""
    s = InboxStore.open(postgres_url)
    assert s.engine.dialect.name == "postgresql"
    yield s
    s.close()


def _consumed(url: str) -> int:
    store = InboxStore.open(url)
    try:
        return sum(store.offsets().values())
    finally:
        store.close()


def test_the_service_replays_into_postgres_with_identical_tables(
    kafka_bootstrap: str, ns: str, tmp_path: Path, postgres_url: str
) -> None:
    expected = _produce_history(kafka_bootstrap, ns)
    dumps = []
    for _replay in range(2):
        with running_service(
            "services.inbox",
            "RAPPORT_INBOX_",
            kafka_bootstrap,
            ns,
            tmp_path,
            database_url=postgres_url,
            **CHEAP,
        ):
            _wait(lambda: _consumed(postgres_url) == expected["records"], "every record in PostgreSQL")
        store = InboxStore.open(postgres_url)
        dumps.append(store.dump())
        store.reset_offsets()  # the next round re-reads every topic from its start
        store.close()
    first, second = dumps
    assert second == first and len(first["alerts"]) == 1 and len(first["scores"]) == expected["scores"]
