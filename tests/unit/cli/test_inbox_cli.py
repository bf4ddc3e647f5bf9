"""``rapport inbox users add|list|disable`` against a real SQLite inbox database."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from shared.cli import main
from shared.inbox.accounts import Authenticator, HashParameters, password_hasher
from shared.inbox.store import InboxStore
from tests.inbox_support import directory

CHEAP = {
    "RAPPORT_INBOX_ARGON2_TIME_COST": "1",
    "RAPPORT_INBOX_ARGON2_MEMORY_KIB": "8",
    "RAPPORT_INBOX_ARGON2_PARALLELISM": "1",
}


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    for k, v in CHEAP.items():
        monkeypatch.setenv(k, v)
    url = f"sqlite:///{tmp_path / 'inbox.db'}"
    store = InboxStore.open(url)
    store.ingest([directory()], {})
    store.close()
    return url


def _run(monkeypatch: pytest.MonkeyPatch, db: str, *argv: str, stdin: str = "") -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return main(["inbox", "--database-url", db, "users", *argv])


def test_add_list_disable(
    db: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code = _run(
        monkeypatch,
        db,
        "add",
        "Alice",
        "--clinic",
        "clinic-01",
        "--person",
        "clin-01",
        "--password-stdin",
        stdin="a long enough password\n",
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "added alice" in out and "warning" not in out
    store = InboxStore.open(db)
    try:
        auth = Authenticator(store, password_hasher(HashParameters(1, 8, 1)))
        user = auth.authenticate("alice", "a long enough password")
        assert user is not None and user.person_id == "clin-01"
        stored = store.user("alice")
        assert stored is not None and stored.password_hash.startswith("$argon2id$")
        assert "a long enough password" not in stored.password_hash
    finally:
        store.close()
    assert _run(monkeypatch, db, "list") == 0
    listing = capsys.readouterr().out
    assert "alice" in listing and "active" in listing and "argon2" not in listing
    assert _run(monkeypatch, db, "disable", "alice") == 0
    assert _run(monkeypatch, db, "list") == 0
    assert "disabled" in capsys.readouterr().out


def test_refusals_are_clear(
    db: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    short = _run(
        monkeypatch,
        db,
        "add",
        "bob",
        "--clinic",
        "clinic-01",
        "--person",
        "clin-02",
        "--password-stdin",
        stdin="short\n",
    )
    assert short == 1 and "password" in capsys.readouterr().err
    assert (
        _run(
            monkeypatch,
            db,
            "add",
            "bob",
            "--clinic",
            "clinic-01",
            "--person",
            "clin-02",
            "--password-stdin",
            stdin="a long enough password\n",
        )
        == 0
    )
    twice = _run(
        monkeypatch,
        db,
        "add",
        "bob2",
        "--clinic",
        "clinic-01",
        "--person",
        "clin-02",
        "--password-stdin",
        stdin="a long enough password\n",
    )
    assert twice == 1 and "already exists" in capsys.readouterr().err
    assert _run(monkeypatch, db, "disable", "nobody") == 1
    unlisted = _run(
        monkeypatch,
        db,
        "add",
        "carol",
        "--clinic",
        "clinic-01",
        "--person",
        "ghost",
        "--password-stdin",
        stdin="a long enough password\n",
    )
    assert unlisted == 0 and "does not list this person" in capsys.readouterr().out
