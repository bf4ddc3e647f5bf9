"""Session → webhook latency through the whole pipeline, and the notifier's throughput beside the
monitor's, on the real broker. ``python -m bench.bench_notifier`` (with a broker up).

1. Latency: scoring, monitor and notifier run as their own processes; a local webhook receiver is
   every clinician's endpoint. Synthetic sessions are offered at a fixed rate (``BENCH_RATE``,
   default 200/s, for ``BENCH_SECONDS``, default 30 s); each session event's ``time`` is its send
   time. Latency = the webhook's arrival minus that time, matched by (client, session). Percentiles
   for every alert and for critical items separately.
2. Throughput, same run: a backlog of scored surveys drained by one monitor worker, and a backlog of
   signals drained by one notifier worker (every signal a new alert with one webhook delivery);
   rates from each service's own input counter.

Writes ``bench-results/notifier.json``. Numbers, not assertions.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kafka import KafkaProducer

from shared.contracts import topics
from shared.contracts.alerts import ClinicDirectory
from shared.history.synthetic import SimulationConfig, generate_records
from shared.runtime.provisioning import apply_topics, producer_config, wait_for_broker
from tests.channels import start_http_receiver, wait_for
from tests.support import running_service, scored_events
from tests.unit.alerting.factories import signal

ROOT = Path(__file__).resolve().parent.parent
BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or f"127.0.0.1:{os.environ.get('KAFKA_PORT', '9092')}"
RATE = float(os.environ.get("BENCH_RATE", "200"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "30"))
BACKLOG = int(os.environ.get("BENCH_BACKLOG", "3000"))
PARTITIONS = 3
SECRET = "whsec_" + "cmFwcG9ydC1iZW5jaC1zaWduaW5nLWtleS0wMTIzNDU2Nzg="


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _directory(clinic: str, clinicians: list[str], url: str) -> ClinicDirectory:
    return ClinicDirectory.model_validate(
        {
            "clinic_id": clinic,
            "people": [
                {
                    "id": c,
                    "channels": [{"type": "webhook", "id": f"hook-{c}", "url": url, "secrets": ["BENCH"]}],
                }
                for c in clinicians
            ],
        }
    )


def _counter(text: str, name: str) -> float:
    return sum(float(x) for x in re.findall(rf"^{name}\{{[^}}]*\}} ([0-9.e+]+)$", text, re.M))


def _drain_rate(svc: Any, metric: str, expected: int, timeout_s: float = 600) -> float:
    first: float | None = None
    first_count = done = 0.0
    deadline = time.monotonic() + timeout_s
    while done < expected and time.monotonic() < deadline:
        done = _counter(svc.get("/metrics")[1], metric)
        if done and first is None:
            first, first_count = time.monotonic(), done
        time.sleep(0.2)
    elapsed = time.monotonic() - (first or time.monotonic())
    return (done - first_count) / elapsed if first and elapsed > 0 else 0.0


def latency(work: Path) -> dict[str, Any]:
    """Offer sessions at RATE/s through the whole pipeline; webhook arrival minus send time."""
    ns = f"bench-{uuid.uuid4().hex[:6]}."
    apply_topics(BOOTSTRAP, partitions=PARTITIONS, namespace=ns)
    receiver, stop = start_http_receiver()
    config = SimulationConfig(
        clinics=2, clinicians_per_clinic=5, clients_per_clinician=60, clinic_types=("iapt", "pcoms")
    )
    records = [
        r for r in generate_records(config, 11, datetime(2026, 1, 5, tzinfo=UTC)) if r.event is not None
    ]
    records = records[: int(RATE * SECONDS)]
    clinics: dict[str, set[str]] = {}
    for r in records:
        clinics.setdefault(r.event.clinic_id, set()).add(r.event.data.clinician_id)
    producer = KafkaProducer(**producer_config(BOOTSTRAP))
    for clinic, people in clinics.items():
        entry = _directory(clinic, sorted(people), receiver.url("/hook"))
        producer.send(f"{ns}{topics.DIRECTORY}", key=clinic.encode(), value=entry.model_dump_json().encode())
    producer.flush()
    os.environ["RAPPORT_NOTIFIER_SECRET_BENCH"] = SECRET
    sent: dict[tuple[str, int], float] = {}
    try:
        with (
            running_service("services.scoring", "RAPPORT_SCORING_", BOOTSTRAP, ns, work),
            running_service("services.monitor", "RAPPORT_MONITOR_", BOOTSTRAP, ns, work, store="memory://"),
            running_service(
                "services.notifier",
                "RAPPORT_NOTIFIER_",
                BOOTSTRAP,
                ns,
                work,
                store="memory://",
                dispatch_interval_s="0.02",
            ),
        ):
            start = time.monotonic()
            for i, r in enumerate(records):
                due = start + i / RATE
                pause = due - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                now = datetime.now(UTC)
                event = r.event.model_copy(update={"time": now})
                sent[(event.data.client_id, event.data.session_number)] = now.timestamp()
                producer.send(
                    f"{ns}{topics.SESSION_COMPLETED}", key=r.key, value=event.model_dump_json().encode()
                )
            producer.flush()
            offered = len(records) / (time.monotonic() - start)
            settle = time.monotonic() + 20
            while time.monotonic() < settle:
                time.sleep(1)
    finally:
        producer.close()
        stop()
    all_lat: list[float] = []
    crit_lat: list[float] = []
    for req in receiver.delivered("/hook"):
        body = req.json()
        t0 = sent.get((body.get("client_id"), body.get("session_number")))
        if t0 is None:
            continue
        lat = req.at - t0
        all_lat.append(lat)
        if body.get("kind") == "critical_item":
            crit_lat.append(lat)
    return {
        "offered_sessions_per_s": round(offered, 1),
        "sessions": len(records),
        "webhooks": len(all_lat),
        "critical_webhooks": len(crit_lat),
        "all_ms": {
            q: round(1000 * _pct(all_lat, p), 1) for q, p in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
        },
        "critical_ms": {
            q: round(1000 * _pct(crit_lat, p), 1) for q, p in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
        },
        "mean_ms": round(1000 * statistics.fmean(all_lat), 1) if all_lat else None,
    }


def throughput(work: Path) -> dict[str, Any]:
    """The monitor over a backlog of scored surveys and the notifier over a backlog of signals."""
    ns = f"bench-{uuid.uuid4().hex[:6]}."
    apply_topics(BOOTSTRAP, partitions=PARTITIONS, namespace=ns)
    receiver, stop = start_http_receiver()
    producer = KafkaProducer(**producer_config(BOOTSTRAP))
    config = SimulationConfig(
        clinics=1, clinicians_per_clinic=10, clients_per_clinician=100, clinic_types=("iapt",)
    )
    scored = []
    for r in generate_records(config, 7, datetime(2026, 1, 5, tzinfo=UTC)):
        if r.event is not None:
            scored += scored_events(r.event)
        if len(scored) >= BACKLOG:
            break
    for e in scored:
        producer.send(
            f"{ns}{topics.SURVEY_SCORED}",
            key=f"{e.clinic_id}|{e.subject}".encode(),
            value=e.model_dump_json().encode(),
        )
    sigs = [signal("critical_item", client=f"b-{i:05d}", clinician=f"t{i % 10}") for i in range(BACKLOG)]
    entry = _directory("k1", [f"t{i}" for i in range(10)], receiver.url("/hook"))
    producer.send(f"{ns}{topics.DIRECTORY}", key=b"k1", value=entry.model_dump_json().encode())
    for s in sigs:
        producer.send(
            f"{ns}{topics.SIGNALS}",
            key=f"{s.clinic_id}|{s.subject}".encode(),
            value=s.model_dump_json().encode(),
        )
    producer.flush()
    producer.close()
    os.environ["RAPPORT_NOTIFIER_SECRET_BENCH"] = SECRET
    try:
        with running_service(
            "services.monitor", "RAPPORT_MONITOR_", BOOTSTRAP, ns, work, store="memory://"
        ) as m:
            monitor = _drain_rate(m, "rapport_monitor_scores_total", len(scored))
        with running_service(
            "services.notifier", "RAPPORT_NOTIFIER_", BOOTSTRAP, ns, work, store="memory://"
        ) as n:
            notifier = _drain_rate(n, "rapport_notifier_records_total", len(sigs))
            wait_for(
                lambda: len(receiver.delivered("/hook")) >= len(sigs), timeout_s=300, what="every webhook"
            )
    finally:
        stop()
    return {
        "monitor_scored_surveys_per_s": round(monitor),
        "notifier_signals_per_s": round(notifier),
        "notifier_vs_monitor": round(notifier / monitor, 3) if monitor else None,
        "backlog": BACKLOG,
    }


def main() -> int:
    """Run both parts and write the numbers."""
    wait_for_broker(BOOTSTRAP, timeout_s=30)
    work = ROOT / "bench-results" / "notifier-work"
    work.mkdir(parents=True, exist_ok=True)
    lat = latency(work)
    print(
        f"session → webhook at {lat['offered_sessions_per_s']} sessions/s offered: "
        f"{lat['webhooks']} webhooks, all p50/p95/p99 = {lat['all_ms']['p50']}/{lat['all_ms']['p95']}/"
        f"{lat['all_ms']['p99']} ms; critical ({lat['critical_webhooks']}) = {lat['critical_ms']['p50']}/"
        f"{lat['critical_ms']['p95']}/{lat['critical_ms']['p99']} ms (goal p99 <= 500 ms)"
    )
    tp = throughput(work)
    print(
        f"throughput: monitor {tp['monitor_scored_surveys_per_s']:,} scored surveys/s, notifier "
        f"{tp['notifier_signals_per_s']:,} signals/s ({tp['notifier_vs_monitor']}x the monitor)"
    )
    out = ROOT / "bench-results" / "notifier.json"
    out.write_text(json.dumps({"latency": lat, "throughput": tp}, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
