"""Live throughput of the scoring and monitor workers on the real broker, against a baseline.

A backlog of synthetic sessions (the simulator's IAPT-style clinic: SRS + PHQ-9 + GAD-7) is put on a
fresh topic namespace, then one worker of each service drains it, as after an outage or a replay.

- baseline: a minimal kafka-python consume → produce pass-through (no decoding, no scoring) over the
  same backlog, in the same run: what one Python process moves through this broker on this machine.
- scoring: one `python -m services.scoring` worker; rate from the first to the last output record's
  broker timestamp.
- monitor: one `python -m services.monitor` worker over the scored events; rate from its
  `rapport_monitor_scores_total` counter.

Run with a broker up (`make kafka-up`); writes bench-results/pipeline.json. Numbers, not assertions.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer

from shared.contracts import topics
from shared.contracts.topics import TopicSpec
from shared.history.synthetic import SimulationConfig, generate_records
from shared.runtime.provisioning import apply_topics, producer_config, wait_for_broker
from tests.support import consume, running_service

ROOT = Path(__file__).resolve().parent.parent

BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or "127.0.0.1:9092"
SESSIONS = int(os.environ.get("BENCH_SESSIONS", "20000"))
PARTITIONS = 3


def _drain(topic: str, expected: int, timeout_s: float = 600) -> list[Any]:
    return consume(BOOTSTRAP, topic, expected, timeout_s=timeout_s, settle_s=0.0)


def _rate(records: list[Any], n: int) -> float:
    stamps = [r.timestamp for r in records]
    span = (max(stamps) - min(stamps)) / 1000
    return n / span if span > 0 else float("inf")


def _passthrough(src: str, dst: str, n: int) -> float:
    """Baseline: consume and re-produce every record, flushing per poll batch."""
    consumer = KafkaConsumer(
        src,
        bootstrap_servers=BOOTSTRAP.split(","),
        group_id=f"bench-pass-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_poll_records=500,
    )
    producer = KafkaProducer(**producer_config(BOOTSTRAP))
    moved = 0
    while moved < n:
        batch = consumer.poll(timeout_ms=500)
        for records in batch.values():
            for r in records:
                producer.send(dst, key=r.key, value=r.value)
                moved += 1
        producer.flush()
        if batch:
            consumer.commit()
    consumer.close()
    producer.close()
    return _rate(_drain(dst, n), n)


def main() -> int:
    """Run the benchmark and print/write its numbers."""
    wait_for_broker(BOOTSTRAP, timeout_s=30)
    ns = f"bench-{uuid.uuid4().hex[:6]}."
    apply_topics(BOOTSTRAP, partitions=PARTITIONS, namespace=ns)
    apply_topics(BOOTSTRAP, partitions=PARTITIONS, namespace=ns, specs=(TopicSpec("bench.passthrough"),))
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
    producer = KafkaProducer(**producer_config(BOOTSTRAP))
    for r in records:
        producer.send(session_topic, key=r.key, value=r.value)
    producer.flush()
    producer.close()
    print(f"backlog: {n:,} session events ({surveys:,} surveys) on {PARTITIONS} partitions")

    baseline = _passthrough(session_topic, f"{ns}bench.passthrough", n)
    print(f"baseline pass-through (kafka-python):  {baseline:9,.0f} records/s")

    tmp = ROOT / "bench-results" / "pipeline-work"
    tmp.mkdir(parents=True, exist_ok=True)
    with running_service("services.scoring", "RAPPORT_SCORING_", BOOTSTRAP, ns, tmp):
        scored = _drain(topics.topic_name(topics.SURVEY_SCORED, ns), surveys)
    scoring = _rate(scored, n)
    print(
        f"scoring worker:                        {scoring:9,.0f} sessions/s "
        f"({scoring / baseline:.2f}x baseline; {len(scored):,} scored events)"
    )

    with running_service(
        "services.monitor", "RAPPORT_MONITOR_", BOOTSTRAP, ns, tmp, store="memory://"
    ) as svc:
        pattern = re.compile(r'^rapport_monitor_scores_total\{outcome="[a-z_]+"\} ([0-9.e+]+)$', re.M)
        first: float | None = None
        done = 0.0
        deadline = time.monotonic() + 600
        while done < len(scored) and time.monotonic() < deadline:
            done = sum(float(x) for x in pattern.findall(svc.get("/metrics")[1]))
            if done and first is None:
                first, first_count = time.monotonic(), done
            time.sleep(0.2)
        elapsed = time.monotonic() - (first or time.monotonic())
    monitor = (done - first_count) / elapsed if first and elapsed > 0 else 0.0
    print(
        f"monitor worker:                        {monitor:9,.0f} scored surveys/s "
        f"({monitor / baseline:.2f}x baseline)"
    )
    out = ROOT / "bench-results" / "pipeline.json"
    out.write_text(
        json.dumps(
            {
                "sessions": n,
                "surveys": surveys,
                "partitions": PARTITIONS,
                "baseline_passthrough_records_per_s": round(baseline),
                "scoring_sessions_per_s": round(scoring),
                "scoring_vs_baseline": round(scoring / baseline, 3),
                "monitor_surveys_per_s": round(monitor),
                "monitor_vs_baseline": round(monitor / baseline, 3),
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
