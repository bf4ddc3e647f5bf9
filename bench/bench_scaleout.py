"""Scale-out on one broker: 1, 2 and 4 scoring workers (one consumer group) on a 12-partition topic.

For each worker count, on its own topic namespace (12 partitions): the workers are started and
ready (the group has settled) before a backlog of ``BENCH_SCALEOUT_SESSIONS`` synthetic sessions
(default 20,000) is produced; the rate is the sessions over the span of the scored outputs' broker
timestamps. This machine has 2 cores shared with the broker: expect no gain past 2 workers. Writes
``bench-results/scaleout.json``. Numbers, not assertions.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kafka import KafkaProducer

from bench.bench_pipeline import BOOTSTRAP, read_all
from shared.contracts import topics
from shared.history.synthetic import SimulationConfig, generate_records
from shared.runtime.provisioning import apply_topics, producer_config, wait_for_broker
from tests.support import consume, running_service

ROOT = Path(__file__).resolve().parent.parent
SESSIONS = int(os.environ.get("BENCH_SCALEOUT_SESSIONS", "20000"))
WORKERS = [int(w) for w in os.environ.get("BENCH_SCALEOUT_WORKERS", "1,2,4").split(",")]
PARTITIONS = 12


def run(workers: int, records: list[Any], tmp: Path) -> dict[str, Any]:
    """``workers`` scoring workers drain the backlog; their combined input rate."""
    ns = f"bench-scale-{uuid.uuid4().hex[:6]}."
    apply_topics(BOOTSTRAP, partitions=PARTITIONS, namespace=ns)
    app_id = f"scoring-{ns.rstrip('.')}"
    scored_topic = topics.topic_name(topics.SURVEY_SCORED, ns)
    surveys = sum(len(r.event.data.surveys) for r in records if r.event is not None)
    with contextlib.ExitStack() as stack:
        for _ in range(workers):
            stack.enter_context(
                running_service("services.scoring", "RAPPORT_SCORING_", BOOTSTRAP, ns, tmp, app_id=app_id)
            )
        time.sleep(5.0)  # the group settles after the last join
        producer = KafkaProducer(**producer_config(BOOTSTRAP))
        for r in records:
            producer.send(topics.topic_name(topics.SESSION_COMPLETED, ns), key=r.key, value=r.value)
        producer.flush()
        producer.close()
        consume(BOOTSTRAP, scored_topic, surveys, timeout_s=600, settle_s=0.0)
    stamps = [r.timestamp for r in read_all([scored_topic])]
    span = (max(stamps) - min(stamps)) / 1000
    rate = len(records) / span if span > 0 else 0.0
    print(f"  {workers} worker(s): {rate:8,.0f} sessions/s ({len(stamps):,} scored events in {span:.1f} s)")
    return {"workers": workers, "partitions": PARTITIONS, "sessions_per_s": round(rate)}


def main() -> int:
    """Every worker count; print and write the numbers."""
    wait_for_broker(BOOTSTRAP, timeout_s=30)
    config = SimulationConfig(
        clinics=1, clinicians_per_clinic=10, clients_per_clinician=200, clinic_types=("iapt",)
    )
    records = []
    for record in generate_records(config, 7, datetime(2026, 1, 5, tzinfo=UTC)):
        records.append(record)
        if len(records) == SESSIONS:
            break
    tmp = ROOT / "bench-results" / "scaleout-work"
    tmp.mkdir(parents=True, exist_ok=True)
    print(f"scale-out: {SESSIONS:,} sessions, {PARTITIONS} partitions")
    rows = [run(w, records, tmp) for w in WORKERS]
    base = rows[0]["sessions_per_s"] or 1
    for row in rows:
        row["vs_one_worker"] = round(row["sessions_per_s"] / base, 2)
    out = ROOT / "bench-results" / "scaleout.json"
    out.write_text(
        json.dumps({"rows": rows, "when": datetime.now(UTC).isoformat(timespec="seconds")}, indent=2) + "\n"
    )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
