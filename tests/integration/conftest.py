"""Integration fixtures: a fresh topic namespace per test on the session's real broker."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import namespace, provision


@pytest.fixture
def ns(kafka_bootstrap: str) -> str:
    """A unique, provisioned topic namespace for one test."""
    name = namespace()
    provision(kafka_bootstrap, name)
    return name


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    """A real PostgreSQL server for the session (see ``tests/postgres.py``); fails, never skips."""
    from tests.postgres import postgres_server

    try:
        with postgres_server() as url:
            yield url
    except RuntimeError as exc:
        pytest.fail(str(exc))


@pytest.fixture
def postgres_url(postgres_admin_url: str) -> str:
    """A fresh, empty database on that server."""
    from tests.postgres import new_database

    return new_database(postgres_admin_url)
