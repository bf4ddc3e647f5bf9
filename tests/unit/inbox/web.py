"""A test harness around the inbox app: SQLite database, a recording publisher, cheap argon2."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from services.inbox.app import create_app
from services.inbox.settings import InboxSettings
from shared.contracts.events import utc_now
from shared.inbox.accounts import HashParameters, add_user, password_hasher
from shared.inbox.store import InboxStore

PASSWORD = "correct horse battery staple"  # noqa: S105 - the test accounts' password
CHEAP = HashParameters(time_cost=1, memory_kib=8, parallelism=1)
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class RecordingPublisher:
    """Keeps what the app publishes; ``fail`` makes the next publishes raise."""

    sent: list[tuple[str, bytes | None, bytes]] = field(default_factory=list)
    fail: int = 0

    async def publish(self, topic: str, key: bytes | None, value: bytes) -> None:
        if self.fail > 0:
            self.fail -= 1
            raise ConnectionError("broker away")
        self.sent.append((topic, key, value))


@dataclass
class Web:
    store: InboxStore
    publisher: RecordingPublisher
    registry: CollectorRegistry
    settings: InboxSettings

    def add_user(self, username: str, clinic: str, person: str) -> None:
        add_user(
            self.store,
            password_hasher(CHEAP),
            username=username,
            clinic_id=clinic,
            person_id=person,
            password=PASSWORD,
            now=utc_now(),
        )

    @contextmanager
    def client(self) -> Iterator[TestClient]:
        app = create_app(self.settings, self.registry, store=self.store, publisher=self.publisher)
        with TestClient(app, base_url="http://inbox.test") as c:
            yield c

    def metric(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels or None) or 0.0


def token(html: str) -> str:
    found = _TOKEN.search(html)
    assert found, "the page has a CSRF token"
    return found.group(1)


def login(client: TestClient, username: str, password: str = PASSWORD) -> Any:
    form = client.get("/login")
    return client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": token(form.text), "next": "/alerts"},
        follow_redirects=False,
    )


def make_web(tmp: Path, **overrides: Any) -> Web:
    settings = InboxSettings(
        consume=False,
        database_url=f"sqlite:///{tmp / 'inbox.db'}",
        argon2_time_cost=CHEAP.time_cost,
        argon2_memory_kib=CHEAP.memory_kib,
        argon2_parallelism=CHEAP.parallelism,
        outbox_interval_s=0.1,
        **overrides,
    )
    store = InboxStore.open(settings.database_url)
    return Web(store, RecordingPublisher(), CollectorRegistry(), settings)
