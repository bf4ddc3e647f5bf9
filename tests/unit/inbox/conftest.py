"""Fixtures of the inbox's unit tests: a fresh SQLite database per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.inbox.store import InboxStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[InboxStore]:
    """An empty inbox database (SQLite file)."""
    s = InboxStore.open(f"sqlite:///{tmp_path / 'inbox.db'}")
    yield s
    s.close()
