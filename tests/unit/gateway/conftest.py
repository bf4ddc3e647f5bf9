"""An in-process gateway (TestClient) on a temporary SQLite file with a fake producer."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings
from tests.gateway_support import FakeProducer, create_key


@dataclass
class Gateway:
    client: TestClient
    producer: FakeProducer
    registry: CollectorRegistry
    db: Path
    keys: dict[str, str]
    clock: list[float]


@pytest.fixture
def gateway_factory(tmp_path: Path) -> Callable[..., Any]:
    """Start gateways on one SQLite file (a restart is a second one on the same file)."""
    db = tmp_path / "gateway.sqlite3"
    keys = {clinic: create_key(db, clinic)[1] for clinic in ("clinic-01", "clinic-02", "clinic-03")}

    @contextmanager
    def start(producer: FakeProducer | None = None, **settings: Any) -> Iterator[Gateway]:
        fake = producer or FakeProducer()
        registry = CollectorRegistry()
        clock = [1000.0]
        app = create_app(
            GatewaySettings(db_path=str(db), consume_scores=False, topic_namespace="ns.", **settings),
            registry=registry,
            producer_factory=lambda _s: fake,  # type: ignore[arg-type,return-value]
            monotonic=lambda: clock[0],
        )
        with TestClient(app) as client:
            yield Gateway(client, fake, registry, db, keys, clock)

    return start


@pytest.fixture
def gateway(gateway_factory: Callable[..., Any]) -> Iterator[Gateway]:
    with gateway_factory() as gw:
        yield gw
