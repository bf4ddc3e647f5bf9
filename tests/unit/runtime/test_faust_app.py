"""The Faust app factory: per-app local state and an idempotent producer, without a broker."""

from __future__ import annotations

from pathlib import Path

from shared.runtime.kafka import WorkerSettings, create_faust_app


def test_each_app_id_gets_its_own_local_table_folder(tmp_path: Path) -> None:
    a = create_faust_app(WorkerSettings(app_id="a", data_dir=str(tmp_path / "state")), 3)
    b = create_faust_app(WorkerSettings(app_id="b", data_dir=str(tmp_path / "state")), 3)
    assert Path(a.conf.datadir) != Path(b.conf.datadir)
    assert (tmp_path / "state").is_dir()


def test_producer_is_idempotent_with_acks_all(tmp_path: Path) -> None:
    app = create_faust_app(WorkerSettings(app_id="p", data_dir=str(tmp_path)), 3)
    settings = app.producer._settings_extra()
    assert settings["enable_idempotence"] is True
    assert settings["acks"] == "all"


def test_the_consumer_waits_at_most_fetch_max_wait_s_for_new_records(tmp_path: Path) -> None:
    """faust hard-codes 1.5 s, which held the monitor's input back at low rates."""
    import asyncio

    async def build() -> int:
        app = create_faust_app(WorkerSettings(app_id="f", data_dir=str(tmp_path), fetch_max_wait_s=0.25), 3)
        thread = app.consumer._thread
        consumer = thread._create_worker_consumer(app.transport)
        return int(consumer._fetch_max_wait_ms)

    assert asyncio.run(build()) == 250
