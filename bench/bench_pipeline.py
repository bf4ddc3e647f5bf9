"""Live throughput of the scoring and monitor workers on the real broker, against relays in the same run.

A backlog of synthetic sessions (the simulator's IAPT-style clinic: SRS + PHQ-9 + GAD-7) is put on a
fresh topic namespace, then one worker of each service drains it, as after an outage or a replay.

- relays (``bench/relays.py``): a kafka-python and an aiokafka consume → produce loop over the same
  input, producing for each input record exactly the records the service produces for it (scoring:
  one ``SurveyScored`` per survey, plus any signal or dead letter; monitor: one trajectory-document
  record, the size of the client's changelog value after that survey, plus its signals), with the
  same ``acks=all`` and idempotence. Their rate: input records from the first one received to the
  last output acknowledged.
- scoring: one ``python -m services.scoring`` worker; input rate from the first to the last output
  record's broker timestamp.
- monitor: one ``python -m services.monitor`` worker (memory store) over the scored events; input
  rate from the first to the last record it wrote (signals and changelog) by broker timestamp.

Every service's input rate is reported as a ratio to the faster relay of its shape. Run with a
broker up (``make kafka-up``); writes ``bench-results/pipeline.json``. Numbers, not assertions.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from bench.relays import RelayRun, aiokafka_relay, kafka_python_relay
from shared.contracts import topics
from shared.contracts.topics import TopicSpec
from shared.history.synthetic import SimulationConfig, generate_records
from shared.runtime.provisioning import apply_topics, producer_config, wait_for_broker
from tests.support import consume, running_service

ROOT = Path(__file__).resolve().parent.parent

BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or f"127.0.0.1:{os.environ.get('KAFKA_PORT', '9092')}"
SESSIONS = int(os.environ.get("BENCH_SESSIONS", "20000"))
PARTITIONS = 3
NOW = datetime(2026, 1, 5, tzinfo=UTC)

#: For each input record's value, the (key, value) records a service publishes for it.
Published = dict[bytes, list[tuple[bytes | None, bytes]]]


def _drain(topic: str, expected: int, timeout_s: float = 600) -> list[Any]:
    return consume(BOOTSTRAP, topic, expected, timeout_s=timeout_s, settle_s=0.0)


def _rate(records: list[Any], n: int) -> float:
    stamps = [r.timestamp for r in records]
    span = (max(stamps) - min(stamps)) / 1000
    return n / span if span > 0 else float("inf")


def read_all(names: Sequence[str]) -> list[Any]:
    """Every record now on ``names`` (bounded wait)."""
    consumer = KafkaConsumer(bootstrap_servers=BOOTSTRAP.split(","), enable_auto_commit=False)
    try:
        tps = [TopicPartition(t, p) for t in names for p in sorted(consumer.partitions_for_topic(t) or ())]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        out: list[Any] = []
        deadline = time.monotonic() + 120
        while any(consumer.position(tp) < end[tp] for tp in tps) and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                out.extend(records)
        return out
    finally:
        consumer.close()


def scoring_outputs(records: Sequence[tuple[bytes, bytes]]) -> Published:
    """For each session record, the records the scoring worker publishes for it (its handler's
    outputs and dead letters), built offline by the service's own code."""
    from services.scoring.handlers import score_record
    from shared.instruments import default_registry

    registry = default_registry()
    loop = _offline_loop(lambda record, _state, now: score_record(record, registry, now))
    return {value: _published(loop, key, value, offset) for offset, (key, value) in enumerate(records)}


def monitor_outputs(records: Sequence[tuple[bytes | None, bytes]]) -> Published:
    """For each scored record, in order: one record of the client's trajectory document as stored
    after it (what a per-event changelog write would carry), plus the signals the monitor publishes."""
    from services.monitor.handlers import track_record
    from shared.rules.config import default_rulebook
    from shared.rules.trajectory import ClientState
    from shared.runtime.worker import BatchState

    rules = default_rulebook()
    store: dict[str, str] = {}

    class Store:
        def get(self, key: str) -> str | None:
            return store.get(key)

        def put(self, key: str, value: str, record: Any) -> None:
            store[key] = value

        def delete(self, key: str, record: Any) -> None:
            store.pop(key, None)

    state: BatchState[ClientState] = BatchState(Store(), ClientState.from_json, ClientState.to_json)
    loop = _offline_loop(lambda record, view, now: track_record(record, view, rules, now), state)
    out: Published = {}
    for offset, (key, value) in enumerate(records):
        published = _published(loop, key, value, offset)
        changed = list(state._dirty)
        state.flush()
        out[value] = [(json.dumps(k).encode(), json.dumps(store[k]).encode()) for k in changed] + published
    return out


def _offline_loop(handler: Any, state: Any = None) -> Any:
    from prometheus_client import CollectorRegistry

    from shared.runtime.worker import LoopMetrics, WorkerLoop

    return WorkerLoop(
        stage="bench",
        handler=handler,
        publisher=None,  # type: ignore[arg-type]
        metrics=LoopMetrics.create(CollectorRegistry(), "bench", "inputs", "Inputs"),
        state=state,
        clock=lambda: NOW,
    )


def _published(loop: Any, key: bytes | None, value: bytes, offset: int) -> list[tuple[bytes | None, bytes]]:
    from shared.runtime.worker import Record

    record = Record(key, value, "bench", 0, offset)
    handled = loop.handle(record)
    out = [(o.key, o.value) for o in handled.outputs]
    for letter in loop.dead_letters(record, handled, NOW):
        out.append((handled.key if handled.key is not None else key, letter.model_dump_json().encode()))
    return out


def relay_pair(src: str, ns: str, shape: str, outputs: Any, n: int) -> dict[str, RelayRun]:
    """Both relays over ``src`` (each to its own output topic)."""
    runs = {}
    for name, relay in (("kafka-python", kafka_python_relay), ("aiokafka", aiokafka_relay)):
        base = f"bench.relay-{shape}-{name}"
        apply_topics(BOOTSTRAP, partitions=PARTITIONS, namespace=ns, specs=(TopicSpec(base),))
        dst = topics.topic_name(base, ns)
        runs[name] = run = relay(BOOTSTRAP, src, dst, outputs, n)
        print(
            f"  relay {shape:<8} {name:<13} {run.rate:9,.0f} inputs/s  "
            f"({run.inputs:,} in, {run.outputs:,} out, {run.seconds:.2f} s)"
        )
    return runs


def main() -> int:
    """Run the benchmark and print/write its numbers."""
    wait_for_broker(BOOTSTRAP, timeout_s=30)
    ns = f"bench-{uuid.uuid4().hex[:6]}."
    apply_topics(BOOTSTRAP, partitions=PARTITIONS, namespace=ns)
    config = SimulationConfig(
        clinics=1, clinicians_per_clinic=10, clients_per_clinician=200, clinic_types=("iapt",)
    )
    records = []
    for record in generate_records(config, 7, datetime(2026, 1, 5, tzinfo=UTC)):
        records.append(record)
        if len(records) == SESSIONS:
            break
    n = len(records)
    surveys = sum(len(r.event.data.surveys) for r in records if r.event is not None)
    session_topic = topics.topic_name(topics.SESSION_COMPLETED, ns)
    scored_topic = topics.topic_name(topics.SURVEY_SCORED, ns)
    producer = KafkaProducer(**producer_config(BOOTSTRAP))
    for r in records:
        producer.send(session_topic, key=r.key, value=r.value)
    producer.flush()
    producer.close()
    print(f"backlog: {n:,} session events ({surveys:,} surveys) on {PARTITIONS} partitions")

    scoring_out = scoring_outputs([(r.key, r.value) for r in records])
    scoring_relays = relay_pair(session_topic, ns, "scoring", scoring_out, n)
    tmp = ROOT / "bench-results" / "pipeline-work"
    tmp.mkdir(parents=True, exist_ok=True)
    expected_scored = sum(len(v) for v in scoring_out.values())
    with running_service("services.scoring", "RAPPORT_SCORING_", BOOTSTRAP, ns, tmp):
        _drain(scored_topic, surveys)
    scored = read_all([scored_topic])
    scoring = _rate(scored, n)
    relay_best = max(run.rate for run in scoring_relays.values())
    print(
        f"  scoring worker                       {scoring:9,.0f} inputs/s  "
        f"({scoring / relay_best:.2f}x the faster relay; {len(scored):,} scored events, "
        f"relays produced {expected_scored:,} records)"
    )

    scored_records = [(r.key, r.value) for r in sorted(scored, key=lambda r: (r.partition, r.offset))]
    monitor_out = monitor_outputs(scored_records)
    m = len(scored_records)
    monitor_relays = relay_pair(scored_topic, ns, "monitor", monitor_out, m)
    app_id = f"monitor-{ns.rstrip('.')}"
    with running_service(
        "services.monitor", "RAPPORT_MONITOR_", BOOTSTRAP, ns, tmp, store="memory://", app_id=app_id
    ) as svc:
        pattern = re.compile(r'^rapport_monitor_scores_total\{outcome="[a-z_]+"\} ([0-9.e+]+)$', re.M)
        done = 0.0
        deadline = time.monotonic() + 600
        while done < m and time.monotonic() < deadline:
            done = sum(float(x) for x in pattern.findall(svc.get("/metrics")[1]))
            time.sleep(0.2)
    written = read_all([topics.topic_name(topics.SIGNALS, ns), f"{app_id}-trajectories-changelog"])
    monitor = _rate(written, m)
    monitor_best = max(run.rate for run in monitor_relays.values())
    print(
        f"  monitor worker                       {monitor:9,.0f} inputs/s  "
        f"({monitor / monitor_best:.2f}x the faster relay; {len(written):,} records written)"
    )

    def relays(runs: dict[str, RelayRun]) -> dict[str, Any]:
        return {k: {"inputs_per_s": round(v.rate), "outputs": v.outputs} for k, v in runs.items()}

    out = ROOT / "bench-results" / "pipeline.json"
    out.write_text(
        json.dumps(
            {
                "sessions": n,
                "surveys": surveys,
                "partitions": PARTITIONS,
                "scoring_relays": relays(scoring_relays),
                "scoring_sessions_per_s": round(scoring),
                "scoring_vs_faster_relay": round(scoring / relay_best, 3),
                "monitor_relays": relays(monitor_relays),
                "monitor_surveys_per_s": round(monitor),
                "monitor_vs_faster_relay": round(monitor / monitor_best, 3),
                "monitor_inputs_processed": round(done),
                "when": datetime.now(UTC).isoformat(timespec="seconds"),
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
