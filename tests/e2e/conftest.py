"""Integration fixtures: a fresh topic namespace per test on the session's real broker."""

from __future__ import annotations

import pytest

from tests.support import namespace, provision


@pytest.fixture
def ns(kafka_bootstrap: str) -> str:
    """A unique, provisioned topic namespace for one test."""
    name = namespace()
    provision(kafka_bootstrap, name)
    return name
