"""Readiness and liveness from faust's state and the broker probe, and the gauges that show them."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from faust.types import TP
from prometheus_client import CollectorRegistry, generate_latest

from shared.runtime.health import AGENT_DEAD_GRACE_S, BrokerProbe, Health


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Actor:
    def __init__(self, running: bool = True, crashed: bool = False) -> None:
        loop = asyncio.new_event_loop()
        self.actor_task: Any = loop.create_future()
        if not running:
            self.actor_task.set_result(None)
        self.crashed = crashed
        loop.close()


def _app(*, assigned: tuple[TP, ...] = (TP("in", 0),), actors: tuple[Actor, ...] = (), **state: Any) -> Any:
    agent = SimpleNamespace(_actors=list(actors or (Actor(),)))
    consumer = SimpleNamespace(assignment=lambda: set(assigned))
    state = {"rebalancing": False, "in_recovery": False, **state}
    return SimpleNamespace(agents={"score_sessions": agent}, _consumer=consumer, **state)


def _health(app: Any, clock: Clock | None = None) -> Health:
    clock = clock or Clock()
    probe = BrokerProbe("127.0.0.1:1", clock=clock)
    return Health(app, "scoring", "in", probe, broker_grace_s=15, clock=clock)


def test_ready_when_assigned_recovered_running_and_the_broker_answers() -> None:
    assert _health(_app()).readiness() == (True, [])


@pytest.mark.parametrize(
    ("app", "reason"),
    [
        (_app(assigned=()), "no input partition assigned"),
        (_app(assigned=(TP("app-trajectories-changelog", 0),)), "no input partition assigned"),
        (_app(rebalancing=True), "rebalancing"),
        (_app(in_recovery=True), "table recovery running"),
        (_app(actors=(Actor(crashed=True),)), "agent not running"),
        (_app(actors=(Actor(running=False),)), "agent not running"),
    ],
)
def test_not_ready(app: Any, reason: str) -> None:
    ready, reasons = _health(app).readiness()
    assert not ready and reason in reasons


def test_not_ready_once_the_broker_has_been_unreachable_longer_than_the_grace() -> None:
    clock = Clock()
    health = _health(_app(), clock)
    health.probe.record(False)
    clock.now += 14
    assert health.readiness()[0], "within the grace"
    assert health.probe.unreachable_seconds() == 14
    clock.now += 2
    ready, reasons = health.readiness()
    assert not ready and reasons == ["broker unreachable for 16 s"]
    health.probe.record(True)
    assert health.readiness()[0] and health.probe.unreachable_seconds() == 0


def test_liveness_fails_only_when_the_agent_stays_dead() -> None:
    clock = Clock()
    app = _app(actors=(Actor(crashed=True),))
    health = _health(app, clock)
    assert health.liveness()[0], "a supervisor restarts a crashed instance at once"
    clock.now += AGENT_DEAD_GRACE_S + 1
    assert health.liveness() == (False, ["agent dead"])
    app.agents["score_sessions"]._actors = [Actor()]
    assert health.liveness()[0]


def test_gauges_show_readiness_and_broker_reachability() -> None:
    clock = Clock()
    health = _health(_app(rebalancing=True), clock)
    health.probe.record(False)
    clock.now += 7
    registry = CollectorRegistry()
    registry.register(health)
    text = generate_latest(registry).decode()
    assert "rapport_scoring_ready 0.0" in text
    assert "rapport_scoring_broker_unreachable_seconds 7.0" in text


def test_a_probe_of_a_broker_nobody_runs_fails_and_counts_from_the_last_answer() -> None:
    clock = Clock()
    probe = BrokerProbe("127.0.0.1:9", timeout_s=2, clock=clock)  # discard port: nothing listens
    assert asyncio.run(probe.probe_once()) is False
    clock.now += 3
    assert probe.unreachable_seconds() == 3
