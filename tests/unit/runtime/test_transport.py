"""The transport fix for the hard-crash loss, piece by piece, without a broker (the end-to-end proof is
``tests/integration/test_hard_kill.py``)."""

from __future__ import annotations

import asyncio
import re
from importlib.metadata import version
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import TopicPartition

from shared.runtime.transport import (
    PINNED,
    RapportConsumer,
    RapportConsumerThread,
    SafeRecovery,
    SafeTableManager,
)

ROOT = Path(__file__).resolve().parents[3]
IN0, IN1, IN2 = (TopicPartition("in", p) for p in range(3))
LOG0 = TopicPartition("app-trajectories-changelog", 0)


@pytest.mark.parametrize("package", sorted(PINNED))
def test_the_subclassed_libraries_are_exactly_the_versions_the_fix_was_written_for(package: str) -> None:
    assert version(package) == PINNED[package]
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(rf'"{package}=={re.escape(PINNED[package])}"', pyproject), "exact pin in pyproject.toml"
    lock = (ROOT / "requirements.lock").read_text()
    assert f"\n{package}=={PINNED[package]}\n" in lock


class FakeAiokafka:
    """aiokafka's consumer as the seek sees it: committed offsets, log starts, seeks."""

    def __init__(self, committed: dict[TopicPartition, int | None]) -> None:
        self.committed = committed
        self.seeks: dict[TopicPartition, int] = {}

    async def seek_to_committed(self) -> dict[TopicPartition, int | None]:
        # aiokafka's own rule (issue #1003): no seek unless the committed offset is > 0.
        self.seeks.update({tp: o for tp, o in self.committed.items() if o and o > 0})
        return dict(self.committed)

    async def beginning_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: 40 + tp.partition for tp in tps}

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks[tp] = offset


def _thread(consumer: FakeAiokafka, reset: str = "earliest") -> Any:
    app = SimpleNamespace(
        conf=SimpleNamespace(consumer_auto_offset_reset=reset),
        tables=SimpleNamespace(changelog_topics={LOG0.topic}),
    )
    return SimpleNamespace(app=app, _ensure_consumer=lambda: consumer)


def test_uncommitted_input_partitions_are_rewound_to_the_log_start() -> None:
    aiokafka = FakeAiokafka({IN0: None, IN1: 0, IN2: 7, LOG0: None})
    committed = asyncio.run(RapportConsumerThread._seek_to_committed_or_log_start(_thread(aiokafka)))
    assert committed == {IN0: None, IN1: 0, IN2: 7, LOG0: None}, "faust still sees the committed offsets"
    assert aiokafka.seeks == {IN0: 40, IN1: 41, IN2: 7}, "None and 0 rewound; changelogs left to recovery"


def test_no_rewind_when_the_reset_policy_is_latest() -> None:
    aiokafka = FakeAiokafka({IN0: None, IN2: 7})
    asyncio.run(RapportConsumerThread._seek_to_committed_or_log_start(_thread(aiokafka, reset="latest")))
    assert aiokafka.seeks == {IN2: 7}


class FakeThread:
    def __init__(self) -> None:
        self.asked: list[Any] = []

    async def getmany(self, active: Any, timeout: float) -> dict[Any, Any]:
        self.asked.append(active)
        return {}


def _consumer() -> Any:
    consumer = RapportConsumer.__new__(RapportConsumer)
    consumer.fetch_done = asyncio.Event()
    consumer.fetch_done.set()
    consumer._thread = FakeThread()  # type: ignore[assignment]
    return consumer


def test_a_fetch_never_asks_aiokafka_for_every_partition_when_all_are_paused() -> None:
    async def run() -> tuple[Any, Any]:
        consumer = _consumer()
        empty = await consumer._getmany(set(), 1.0)
        live = {IN0, IN1}
        await consumer._getmany(live, 1.0)
        return empty, consumer._thread.asked

    empty, asked = asyncio.run(run())
    assert empty == {}
    assert asked == [{IN0, IN1}], "an empty set means 'every partition' to aiokafka: never sent"


def test_a_fetch_gets_a_snapshot_not_the_live_set_faust_keeps_mutating() -> None:
    async def run() -> Any:
        consumer = _consumer()
        live = {IN0, IN1}
        await consumer._getmany(live, 1.0)
        live.clear()  # faust pausing partitions while aiokafka still waits for records
        return consumer._thread.asked[0]

    assert asyncio.run(run()) == {IN0, IN1}


class Recorder:
    """A faust app and consumer around the recovery's last step, logging the order of effects."""

    def __init__(self) -> None:
        self.steps: list[str] = []
        self.assigned = {IN0, IN1, LOG0}
        test = self

        class Consumer:
            fetch_done = asyncio.Event()
            handover_done = asyncio.Event()

            def assignment(self) -> set[TopicPartition]:
                return set(test.assigned)

            def pause_partitions(self, tps: set[TopicPartition]) -> None:
                test.steps.append(f"pause {sorted(tp.partition for tp in tps)}")

            def resume_partitions(self, tps: set[TopicPartition]) -> None:
                test.steps.append(f"resume {sorted(tp.partition for tp in tps)}")

            async def perform_seek(self) -> None:
                test.steps.append("seek")

            def resume_flow(self) -> None:
                test.steps.append("resume_flow")

        self.consumer = Consumer()
        self.consumer.fetch_done.set()
        self.consumer.handover_done.set()

        class Fetcher:
            async def maybe_start(self) -> None:
                test.steps.append("fetcher")

        self.app = SimpleNamespace(
            consumer=self.consumer,
            conf=SimpleNamespace(broker_request_timeout=1.0),
            flow_control=SimpleNamespace(resume=lambda: self.steps.append("clear buffers and resume")),
            _fetcher=Fetcher(),
        )
        self.completed = SimpleNamespace(set=lambda: self.steps.append("completed"))
        self.log = SimpleNamespace(info=lambda *a, **k: None)

    def _is_changelog_tp(self, tp: TopicPartition) -> bool:
        return tp == LOG0

    async def _wait(self, awaitable: Any, timeout: float | None = None) -> None:
        await awaitable


def test_inputs_resume_only_after_the_seek_and_together_with_the_buffer_clear() -> None:
    recorder = Recorder()
    asyncio.run(SafeRecovery._seek_then_resume_inputs(recorder))  # type: ignore[arg-type]
    assert recorder.steps == [
        "pause [0, 1]",
        "seek",
        "resume [0, 1]",
        "completed",
        "clear buffers and resume",
        "resume_flow",
        "fetcher",
    ]


def test_the_seek_waits_for_a_fetch_begun_before_the_inputs_were_paused() -> None:
    recorder = Recorder()
    recorder.consumer.fetch_done.clear()

    async def run() -> list[str]:
        task = asyncio.ensure_future(SafeRecovery._seek_then_resume_inputs(recorder))  # type: ignore[arg-type]
        await asyncio.sleep(0.05)
        before = list(recorder.steps)
        recorder.consumer.fetch_done.set()
        await task
        return before

    assert asyncio.run(run()) == ["pause [0, 1]"], "no seek while a fetch could still consume input records"
    assert recorder.steps[1] == "seek"


def test_the_app_factory_uses_the_safe_recovery(tmp_path: Path) -> None:
    from shared.runtime.kafka import WorkerSettings, create_faust_app

    app = create_faust_app(WorkerSettings(app_id="r", data_dir=str(tmp_path)), 3)
    assert isinstance(app.tables, SafeTableManager)
    assert isinstance(app.tables.recovery, SafeRecovery)
    assert isinstance(app.consumer, RapportConsumer)
