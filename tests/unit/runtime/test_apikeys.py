"""API keys: stored hashed, verified in constant time, revoked at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.runtime.apikeys import ApiKeyStore, Principal, connect, digest


def test_create_verify_revoke(tmp_path: Path) -> None:
    store = ApiKeyStore(connect(tmp_path / "g.db"))
    info, key = store.create("clinic-01", "ehr")
    assert key.startswith(f"rk_{info.key_id}.")
    assert store.verify(key) == Principal(info.key_id, "clinic-01")
    assert store.verify(key + "x") is None
    assert store.verify(key.replace(info.key_id, "0" * 16)) is None
    assert store.verify("Bearer nonsense") is None
    assert store.revoke(info.key_id) and not store.revoke(info.key_id)
    assert store.verify(key) is None
    [listed] = store.list()
    assert listed.revoked_at is not None


def test_only_a_digest_is_stored(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    _, key = ApiKeyStore(connect(db)).create("clinic-01")
    secret = key.split(".", 1)[1]
    assert secret.encode() not in db.read_bytes() + (tmp_path / "g.db-wal").read_bytes()
    [(stored,)] = connect(db).execute("SELECT key_hash FROM api_keys").fetchall()
    assert stored == digest(key)


def test_keys_are_per_clinic_and_survive_reopening(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    store = ApiKeyStore(connect(db))
    _, a = store.create("clinic-a")
    _, b = store.create("clinic-b")
    reopened = ApiKeyStore(connect(db))
    assert reopened.verify(a).clinic_id == "clinic-a"  # type: ignore[union-attr]
    assert reopened.verify(b).clinic_id == "clinic-b"  # type: ignore[union-attr]
    assert [k.clinic_id for k in reopened.list("clinic-b")] == ["clinic-b"]


@pytest.mark.parametrize("clinic", ["", "Jane Doe", "x" * 65])
def test_clinic_ids_are_pseudonyms(tmp_path: Path, clinic: str) -> None:
    with pytest.raises(ValueError):
        ApiKeyStore(connect(tmp_path / "g.db")).create(clinic)


def test_no_key_can_be_made_for_the_canary_clinic(tmp_path: Path) -> None:
    from shared.contracts.canary import CANARY_CLINIC_ID

    with pytest.raises(ValueError, match="canary"):
        ApiKeyStore(connect(tmp_path / "g.db")).create(CANARY_CLINIC_ID)
