"""``rapport keys``: the key is printed once on stdout, never listed; revocation by id."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.cli import main
from shared.runtime.apikeys import ApiKeyStore, connect


def test_create_list_revoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "g.db")
    assert main(["keys", "--db", db, "create", "--clinic", "clinic-01", "--label", "ehr"]) == 0
    out = capsys.readouterr()
    key = out.out.strip()
    assert key.startswith("rk_") and "\n" not in key
    key_id = key[3:].split(".", 1)[0]
    assert key_id in out.err and key not in out.err
    assert ApiKeyStore(connect(db)).verify(key) is not None

    assert main(["keys", "--db", db, "list"]) == 0
    listing = capsys.readouterr().out
    assert key_id in listing and "active" in listing and "ehr" in listing
    assert key.split(".", 1)[1] not in listing

    assert main(["keys", "--db", db, "revoke", key_id]) == 0
    assert ApiKeyStore(connect(db)).verify(key) is None
    assert main(["keys", "--db", db, "revoke", key_id]) == 1
    assert main(["keys", "--db", db, "create", "--clinic", "Jane Doe"]) == 2


def test_db_path_from_the_gateway_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "env.db"
    monkeypatch.setenv("RAPPORT_GATEWAY_DB_PATH", str(db))
    assert main(["keys", "create", "--clinic", "clinic-02"]) == 0
    key = capsys.readouterr().out.strip()
    assert ApiKeyStore(connect(db)).verify(key) is not None


def test_help_documents_input_output_and_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["keys", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "input" in text and "output" in text and "exit status" in text
