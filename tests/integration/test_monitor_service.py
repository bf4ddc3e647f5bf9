"""The monitor on a real broker: live signals equal the offline rules, survive restarts, never repeat."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from shared.contracts import topics
from shared.rules.config import default_rulebook
from shared.rules.live import evaluate
from tests.support import (
    PHQ9_MODERATE,
    consume,
    produce,
    running_service,
    scored_events,
    session_event,
    srs,
    t,
    values,
)

pytestmark = pytest.mark.integration
PREFIX = "RAPPORT_MONITOR_"
NOW = datetime(2026, 3, 1, tzinfo=UTC)


def _trajectory(client: str, srs_totals: list[float]) -> list:
    out = []
    for n, total in enumerate(srs_totals, start=1):
        answers = dict(PHQ9_MODERATE)
        if n == len(srs_totals):
            answers["9"] = 1  # risk item endorsed at the last session
        out += scored_events(
            session_event(client=client, session_number=n, surveys=(("SRS", srs(total)), ("PHQ-9", answers)))
        )
    return out


def _offline_signal_ids(events: list) -> set[str]:
    states: dict[str, object] = {}
    ids: set[str] = set()
    for e in events:
        key = f"{e.clinic_id}|{e.data.client_id}"
        result = evaluate(states.get(key), e, default_rulebook(), NOW)  # type: ignore[arg-type]
        states[key] = result.state
        ids |= {str(s.id) for s in result.signals}
    return ids


def _records(events: list) -> list[tuple[bytes, bytes]]:
    return [(e.data.client_id.encode(), e.model_dump_json().encode()) for e in events]


@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
def test_signals_survive_restart_and_match_offline_rules(
    kafka_bootstrap: str, ns: str, tmp_path: Path, store: str
) -> None:
    events = _trajectory("c-rupture", [39.0, 39.5, 38.8, 39.2, 39.0, 30.0])
    expected = _offline_signal_ids(events)
    kinds_expected = {"alliance_drop", "critical_item"}
    scored_topic = t(ns, topics.SURVEY_SCORED)
    signals_topic = t(ns, topics.SIGNALS)
    app_id = f"monitor-{ns.rstrip('.')}"
    before, after = events[:10], events[10:]

    with running_service(
        "services.monitor", PREFIX, kafka_bootstrap, ns, tmp_path, store=store, app_id=app_id
    ):
        produce(kafka_bootstrap, scored_topic, _records(before))
        early = consume(kafka_bootstrap, signals_topic, expected=0, timeout_s=10, settle_s=8)
    # Restarted: an empty in-memory store must recover the trajectory from the changelog; the
    # rocksdict store reopens its local files and catches up from the changelog.
    with running_service(
        "services.monitor", PREFIX, kafka_bootstrap, ns, tmp_path, store=store, app_id=app_id
    ) as svc:
        produce(kafka_bootstrap, scored_topic, _records(after))
        got = consume(kafka_bootstrap, signals_topic, expected=len(expected), timeout_s=60)
        metrics = svc.get("/metrics")[1]

    ids = [v["id"] for v in values(got)]
    kinds = {v["data"]["kind"] for v in values(got)}
    assert len(early) < len(expected), "the decisive session came after the restart"
    assert len(ids) == len(set(ids)), "no signal repeated across the restart"
    assert set(ids) == expected, "live signals equal the offline rules over the whole trajectory"
    assert kinds_expected <= kinds, "the drop vs the recovered baseline and the risk item both fired"
    critical = [v for v in values(got) if v["data"]["kind"] == "critical_item"]
    assert critical and all(v["data"]["severity"] == "critical" for v in critical)
    assert "rapport_monitor_signals_total" in metrics


def test_out_of_order_and_duplicate_delivery(kafka_bootstrap: str, ns: str, tmp_path: Path) -> None:
    events = _trajectory("c-late", [39.0, 39.5, 38.8, 39.2, 30.0, 38.5])
    by_session: dict[int, list] = {}
    for e in events:
        by_session.setdefault(e.data.session_number, []).append(e)
    shuffled = [*by_session[1], *by_session[2], *by_session[4], *by_session[3], *by_session[5],
                *by_session[3], *by_session[6], *by_session[5]]  # fmt: skip
    expected = _offline_signal_ids(shuffled)
    with running_service("services.monitor", PREFIX, kafka_bootstrap, ns, tmp_path, store="memory://"):
        produce(kafka_bootstrap, t(ns, topics.SURVEY_SCORED), _records(shuffled))
        got = consume(kafka_bootstrap, t(ns, topics.SIGNALS), expected=len(expected), timeout_s=60)

    ids = [v["id"] for v in values(got)]
    assert len(ids) == len(set(ids)), "a redelivered survey never yields a repeated signal"
    assert set(ids) == expected
    assert set(ids) >= _offline_signal_ids(events), "late arrival re-evaluates: nothing in-order is missed"


def test_undecodable_scored_record_is_dead_lettered(kafka_bootstrap: str, ns: str, tmp_path: Path) -> None:
    good = _trajectory("c-ok", [39.0])
    with running_service("services.monitor", PREFIX, kafka_bootstrap, ns, tmp_path, store="memory://"):
        produce(kafka_bootstrap, t(ns, topics.SURVEY_SCORED), [(b"c-x", b"nope"), *_records(good)])
        dead = consume(kafka_bootstrap, t(ns, topics.DEAD_LETTER), expected=1)
        signals = consume(kafka_bootstrap, t(ns, topics.SIGNALS), expected=1)
    assert [v["reason"] for v in values(dead)] == ["undecodable"]
    assert values(dead)[0]["stage"] == "monitor"
    assert [v["data"]["kind"] for v in values(signals)] == ["critical_item"], "valid events still flow"


def test_each_clients_state_lands_on_its_input_partition_and_survives_a_restart(
    kafka_bootstrap: str, ns: str, tmp_path: Path
) -> None:
    """Batched state writes name the client's partition (faust would take the batch's last event's):
    a backlog of many clients on every partition, processed in batches, leaves each client's
    trajectory on the changelog partition of its input records; a restarted worker with an empty
    store rebuilds the trajectories from there and raises the signals that depend on them."""
    import json
    import time

    from services.monitor.handlers import state_key
    from shared.contracts.events import SurveyScored
    from tests.faults import committed_offsets, read_topic

    clients = [f"c-part-{n:02d}" for n in range(24)]
    trajectories = {c: _trajectory(c, [39.0, 39.5, 38.8, 39.2, 39.0, 30.0]) for c in clients}
    per_session = {c: len(events) // 6 for c, events in trajectories.items()}
    # Session by session across all clients, so every batch holds clients of several partitions.
    before = [
        e
        for n in range(5)
        for c in clients
        for e in trajectories[c][n * per_session[c] : (n + 1) * per_session[c]]
    ]
    after = [e for c in clients for e in trajectories[c][5 * per_session[c] :]]
    expected = _offline_signal_ids(before + after)
    scored_topic = t(ns, topics.SURVEY_SCORED)
    app_id = f"monitor-{ns.rstrip('.')}"
    changelog = f"{app_id}-trajectories-changelog"

    produce(kafka_bootstrap, scored_topic, _records(before))  # a backlog: full batches from the start
    with running_service(
        "services.monitor", PREFIX, kafka_bootstrap, ns, tmp_path, store="memory://", app_id=app_id
    ):
        deadline = time.monotonic() + 60
        while sum(committed_offsets(kafka_bootstrap, app_id, scored_topic).values()) < len(before):
            assert time.monotonic() < deadline, "the backlog was not processed within 60 s"
            time.sleep(0.5)
        early = consume(kafka_bootstrap, t(ns, topics.SIGNALS), expected=0, settle_s=0)
    with running_service(
        "services.monitor", PREFIX, kafka_bootstrap, ns, tmp_path, store="memory://", app_id=app_id
    ):
        produce(kafka_bootstrap, scored_topic, _records(after))
        got = consume(kafka_bootstrap, t(ns, topics.SIGNALS), expected=len(expected), timeout_s=90)

    input_partition: dict[str, int] = {}
    for r in read_topic(kafka_bootstrap, scored_topic):
        input_partition[state_key(SurveyScored.model_validate_json(r.value))] = r.partition
    written = [(json.loads(r.key), r.partition) for r in read_topic(kafka_bootstrap, changelog)]
    assert len(set(input_partition.values())) == 3, "precondition: the clients span every partition"
    assert {key for key, _ in written} == set(input_partition), "every client's state was written"
    misplaced = [(key, p, input_partition[key]) for key, p in written if p != input_partition[key]]
    assert not misplaced, f"state written to another partition than its client's input: {misplaced[:5]}"
    ids = [v["id"] for v in values(got)]
    assert len(early) < len(expected), "signals of the last session depend on the recovered history"
    assert len(ids) == len(set(ids)) and set(ids) == expected, (
        "after the restart: exactly the offline signals"
    )
    drops = {v["data"]["client_id"] for v in values(got) if v["data"]["kind"] == "alliance_drop"}
    assert drops == set(clients), "each client's drop was measured against its recovered baseline"
