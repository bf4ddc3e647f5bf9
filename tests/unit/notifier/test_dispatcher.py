"""The dispatcher with fake channels and a fake topic: what is due is attempted once, timers are
ticked once, results go to the state's partition, and a gone endpoint gets nothing more."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable
from typing import Any

from prometheus_client import CollectorRegistry

from services.notifier.channels import ChannelRouter, Outbound
from services.notifier.directory import DirectoryCache
from services.notifier.dispatcher import Dispatcher
from services.notifier.handlers import Facts
from services.notifier.metrics import NotifierMetrics
from shared.alerting.policy import PolicyConfig, new_state, on_signal
from shared.alerting.retry import AttemptOutcome
from shared.alerting.state import ClientAlerts
from shared.contracts.canary import CANARY_CLINIC_ID
from tests.unit.alerting.factories import NOW, directory, signal


class FakeTopic:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, dict[str, Any], int | None]] = []

    async def send(
        self, topic: str, key: bytes | None, value: bytes, partition: int | None = None
    ) -> Awaitable[Any]:
        self.sent.append((topic, key or b"", json.loads(value)["record"], partition))
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut


class FakeChannel:
    def __init__(self, answers: list[str]) -> None:
        self.calls: list[str] = []
        self.answers = answers

    async def deliver(self, outbound: Outbound) -> AttemptOutcome:
        self.calls.append(outbound.job.endpoint_id)
        await asyncio.sleep(0.01)
        result = self.answers.pop(0) if self.answers else "delivered"
        return AttemptOutcome(result, "http_410" if result == "gone" else "http_200")  # type: ignore[arg-type]


def make(answers: list[str], now: list[float]) -> tuple[Dispatcher, FakeTopic, FakeChannel]:
    cache = DirectoryCache()
    hook_only = directory()
    cache.apply(b"k1", hook_only.model_dump_json().encode())
    channel = FakeChannel(answers)
    topic = FakeTopic()
    d = Dispatcher(
        publisher=topic,
        router=ChannelRouter({"webhook": channel, "email": channel, "chat": channel}, 5.0),
        directory=cache,
        metrics=NotifierMetrics.create(CollectorRegistry()),
        inbox_url="https://inbox.example",
        partitions=3,
        endpoint_concurrency=2,
        clock=lambda: now[0],
    )
    return d, topic, channel


def client_with_alert(
    client: str, kind: str = "critical_item", partition: int = 1, clinic: str = "k1"
) -> ClientAlerts:
    st = new_state(clinic, client, partition)
    on_signal(st, signal(kind, client=client, clinic=clinic), directory(), NOW, PolicyConfig())
    return st


def run(d: Dispatcher) -> None:
    async def go() -> None:
        await d.tick()
        await asyncio.sleep(0.05)
        await d.tick()  # in flight or answered but not yet stored: nothing is started twice
        await d.drain()

    asyncio.run(go())


def test_due_deliveries_are_attempted_once_and_results_go_to_the_states_partition() -> None:
    now = [NOW]
    d, topic, channel = make([], now)
    st = client_with_alert("c-1", partition=2)
    d.rebuild(frozenset({2}), {"client": [("k1|c-1", st.model_dump_json())]})
    run(d)
    assert sorted(channel.calls) == ["ehr-1", "t1-chat", "t1-mail"]
    results = [r for _, _, r, _ in topic.sent if r["kind"] == "attempt"]
    assert len(results) == 3 and {p for *_, p in topic.sent} == {2}
    assert all(r["attempt"] == 1 and r["result"] == "delivered" for r in results)


def test_states_of_partitions_this_worker_does_not_own_are_left_alone() -> None:
    now = [NOW]
    d, topic, channel = make([], now)
    st = client_with_alert("c-1", partition=0)
    d.rebuild(frozenset({1, 2}), {"client": [("k1|c-1", st.model_dump_json())]})
    run(d)
    assert channel.calls == [] and topic.sent == []


def test_a_due_escalation_is_ticked_once_until_the_state_changes() -> None:
    now = [NOW]
    d, topic, _ = make([], now)
    st = client_with_alert("c-1")
    for record in st.alerts.values():
        for job in record.jobs:
            job.status, job.next_at = "delivered", None
    d.rebuild(frozenset({1}), {"client": [("k1|c-1", st.model_dump_json())]})
    now[0] = NOW + 16 * 60
    run(d)
    ticks = [r for _, _, r, _ in topic.sent if r["kind"] == "due"]
    assert len(ticks) == 1 and ticks[0]["key"] == "k1|c-1"
    d.update([Facts("client", "k1|c-1", st, touched=True)])
    run(d)
    assert len([r for _, _, r, _ in topic.sent if r["kind"] == "due"]) == 2, "ticked again after a change"


def test_an_endpoint_that_answered_gone_gets_nothing_more() -> None:
    now = [NOW]
    d, topic, channel = make(["gone"], now)
    first = client_with_alert("c-1", kind="outcome_reliable_deterioration")
    for record in first.alerts.values():
        record.jobs = [j for j in record.jobs if j.endpoint_id == "ehr-1"]
    d.rebuild(frozenset({1}), {"client": [("k1|c-1", first.model_dump_json())]})
    run(d)
    assert channel.calls == ["ehr-1"]
    second = client_with_alert("c-2", kind="outcome_reliable_deterioration")
    for record in second.alerts.values():
        record.jobs = [j for j in record.jobs if j.endpoint_id == "ehr-1"]
    d.update([Facts("client", "k1|c-2", second, touched=True)])
    run(d)
    assert channel.calls == ["ehr-1"], "not called again"
    last = [r for _, _, r, _ in topic.sent if r["kind"] == "attempt"][-1]
    assert (last["key"], last["result"], last["code"]) == ("k1|c-2", "gone", "endpoint_disabled")
    assert d.disabled == {"ehr-1": 1}


def test_oldest_unacknowledged_critical_age() -> None:
    now = [NOW + 90]
    d, _, _ = make([], now)
    d.rebuild(frozenset({1}), {"client": [("k1|c-1", client_with_alert("c-1").model_dump_json())]})
    assert d.oldest_unacked_critical_s() == 90
    d.update([Facts("client", "k1|c-1", None, touched=True)])
    assert d.oldest_unacked_critical_s() == 0


def test_the_canarys_open_critical_alerts_are_not_a_person_waiting() -> None:
    now = [NOW + 90]
    d, _, _ = make([], now)
    canary = client_with_alert("canary-r-0", clinic=CANARY_CLINIC_ID)
    assert canary.open_critical_since() is not None
    d.rebuild(frozenset({1}), {"client": [("rapport-canary|canary-r-0", canary.model_dump_json())]})
    assert d.oldest_unacked_critical_s() == 0
    d.update([Facts("client", "k1|c-1", client_with_alert("c-1"), touched=True)])
    assert d.oldest_unacked_critical_s() == 90
