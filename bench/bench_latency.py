"""End-to-end latency at a fixed offered rate: session → scored → signal, on the real broker.

One scoring worker and one monitor worker (memory store) run on a fresh topic namespace; synthetic
sessions (the simulator's IAPT-style clinic) are produced at a fixed rate (``BENCH_LATENCY_RATES``,
default 200 and 1,000 sessions/s) for ``BENCH_LATENCY_SECONDS`` each. Latencies come from broker
timestamps (the producing client's create time; one machine, one clock):

- session → scored: a session record's timestamp to the last ``SurveyScored`` of that session;
- session → signal: to each signal of that session (by correlation id), critical items (raised at
  once, by scoring for the risk item) separately from the monitor's trajectory signals.

Writes ``bench-results/latency.json``. Numbers, not assertions.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kafka import KafkaProducer

from bench.bench_pipeline import BOOTSTRAP, PARTITIONS, read_all
from shared.contracts import topics
from shared.history.synthetic import SimulationConfig, generate_records
from shared.runtime.provisioning import apply_topics, producer_config, wait_for_broker
from tests.support import consume, running_service

ROOT = Path(__file__).resolve().parent.parent
RATES = [int(r) for r in os.environ.get("BENCH_LATENCY_RATES", "200,1000").split(",")]
SECONDS = float(os.environ.get("BENCH_LATENCY_SECONDS", "15"))
TICK_S = 0.01


def percentiles(values: Sequence[float]) -> dict[str, float | int]:
    """p50/p95/p99/max in milliseconds (nearest rank), and the count."""
    if not values:
        return {"count": 0}
    ordered = sorted(values)

    def rank(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.5) - 1))], 1)

    return {
        "count": len(ordered),
        "p50": rank(0.50),
        "p95": rank(0.95),
        "p99": rank(0.99),
        "max": round(ordered[-1], 1),
    }


def offer(topic: str, records: Sequence[Any], rate: int) -> float:
    """Produce ``records`` at ``rate`` per second (every ``TICK_S``); returns the achieved rate."""
    producer = KafkaProducer(**{**producer_config(BOOTSTRAP), "linger_ms": 0})
    per_tick = rate * TICK_S
    started = time.perf_counter()
    sent = 0
    try:
        while sent < len(records):
            due = min(len(records), int((time.perf_counter() - started) / TICK_S * per_tick) + 1)
            while sent < due:
                producer.send(topic, key=records[sent].key, value=records[sent].value)
                sent += 1
            time.sleep(TICK_S)
        producer.flush()
        return sent / (time.perf_counter() - started)
    finally:
        producer.close()


def measure(rate: int, records: Sequence[Any], tmp: Path) -> dict[str, Any]:
    """One offered rate on its own namespace."""
    ns = f"bench-lat-{uuid.uuid4().hex[:6]}."
    apply_topics(BOOTSTRAP, partitions=PARTITIONS, namespace=ns)
    session_topic = topics.topic_name(topics.SESSION_COMPLETED, ns)
    scored_topic = topics.topic_name(topics.SURVEY_SCORED, ns)
    signals_topic = topics.topic_name(topics.SIGNALS, ns)
    warm = records[:20]
    with (
        running_service("services.scoring", "RAPPORT_SCORING_", BOOTSTRAP, ns, tmp),
        running_service("services.monitor", "RAPPORT_MONITOR_", BOOTSTRAP, ns, tmp, store="memory://"),
    ):
        # Warm up: both workers joined and processing before the clock starts.
        offer(session_topic, warm, 100)
        consume(BOOTSTRAP, scored_topic, expected=len(warm), timeout_s=120, settle_s=2.0)
        achieved = offer(session_topic, records[20:], rate)
        time.sleep(3.0)  # let the last sessions through both workers
    sent_at: dict[str, int] = {}
    for r in read_all([session_topic]):
        try:
            sent_at[json.loads(r.value)["id"]] = r.timestamp
        except (ValueError, KeyError, TypeError):
            continue
    warm_sent = {json.loads(r.value)["id"] for r in warm if r.event is not None}
    scored_at: dict[str, int] = defaultdict(int)
    for r in read_all([scored_topic]):
        cid = json.loads(r.value)["correlation_id"]
        scored_at[cid] = max(scored_at[cid], r.timestamp)
    to_scored = [scored_at[s] - sent_at[s] for s in scored_at if s in sent_at and s not in warm_sent]
    critical: list[float] = []
    trajectory: list[float] = []
    for r in read_all([signals_topic]):
        doc = json.loads(r.value)
        cid = doc.get("correlation_id")
        if cid not in sent_at or cid in warm_sent:
            continue
        (critical if doc["data"]["kind"] == "critical_item" else trajectory).append(
            r.timestamp - sent_at[cid]
        )
    result = {
        "offered_sessions_per_s": rate,
        "achieved_sessions_per_s": round(achieved),
        "sessions": len(records) - len(warm),
        "session_to_scored_ms": percentiles(to_scored),
        "session_to_critical_item_ms": percentiles(critical),
        "session_to_trajectory_signal_ms": percentiles(trajectory),
    }
    print(f"  {rate:>5}/s offered ({achieved:,.0f}/s achieved):")
    for name in ("session_to_scored_ms", "session_to_critical_item_ms", "session_to_trajectory_signal_ms"):
        p = result[name]
        line = ", ".join(f"{k} {v}" for k, v in p.items())
        print(f"    {name:<34} {line}")
    return result


def main() -> int:
    """Measure every offered rate, print and write the numbers."""
    wait_for_broker(BOOTSTRAP, timeout_s=30)
    config = SimulationConfig(
        clinics=1, clinicians_per_clinic=10, clients_per_clinician=200, clinic_types=("iapt",)
    )
    needed = 20 + int(max(RATES) * SECONDS)
    pool = []
    for record in generate_records(config, 11, datetime(2026, 1, 5, tzinfo=UTC)):
        if record.event is not None:
            pool.append(record)
        if len(pool) == needed:
            break
    tmp = ROOT / "bench-results" / "latency-work"
    tmp.mkdir(parents=True, exist_ok=True)
    print(f"latency: scoring + monitor workers, {PARTITIONS} partitions, {SECONDS:.0f} s per rate")
    runs = [measure(rate, pool[: 20 + int(rate * SECONDS)], tmp) for rate in RATES]
    out = ROOT / "bench-results" / "latency.json"
    out.write_text(
        json.dumps({"runs": runs, "when": datetime.now(UTC).isoformat(timespec="seconds")}, indent=2) + "\n"
    )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
