"""Recovery: how long a monitor worker takes to be ready with many clients' trajectories in its changelog.

For each count in ``BENCH_RECOVERY_CLIENTS`` (comma-separated; default 100,000), that many clients'
trajectory documents are written straight to a fresh monitor changelog topic (3 partitions,
compacted, as faust declares it). The documents are real ones: the monitor's own handler run offline
over the simulator's clinic (IAPT-style, SRS + PHQ-9 + GAD-7), each client's final ``ClientState``
JSON used for many clients (only the table key differs: recovery reads bytes, it does not decode
trajectories). Then one ``python -m services.monitor`` worker is started and timed from spawn to
``/readyz`` answering 200 (which waits for table recovery):

- ``memory://``: the table is rebuilt from the changelog at every start;
- ``rocksdb://`` with no local files (a new node): the same read, written to local RocksDB;
- ``rocksdb://`` restarted on the same node: the local files are reopened, only the changelog's tail
  is read.

Also the changelog's size per client. Writes ``bench-results/recovery.json``. Numbers, not assertions.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from bench.bench_pipeline import BOOTSTRAP, PARTITIONS, monitor_outputs, scoring_outputs
from shared.history.synthetic import SimulationConfig, generate_records
from shared.runtime.kafka import partition_for
from shared.runtime.provisioning import apply_topics, producer_config, wait_for_broker
from tests.support import ServiceProcess, free_port

ROOT = Path(__file__).resolve().parent.parent
COUNTS = [int(c) for c in os.environ.get("BENCH_RECOVERY_CLIENTS", "100000").split(",")]


def templates() -> list[str]:
    """Final trajectory documents of the simulator's clients (the monitor's handler, offline)."""
    config = SimulationConfig(
        clinics=1, clinicians_per_clinic=4, clients_per_clinician=50, clinic_types=("iapt",)
    )
    records = [(r.key, r.value) for r in generate_records(config, 5, datetime(2026, 1, 5, tzinfo=UTC))]
    # Every output of scoring; the monitor's handler dead-letters what is not a scored survey.
    scored = [kv for outs in scoring_outputs(records).values() for kv in outs]
    final: dict[bytes, bytes] = {}
    for outs in monitor_outputs(scored).values():
        for key, value in outs:
            if value.startswith(b'"'):  # a trajectory document (faust's json codec around str)
                final[key] = value
    return [json.loads(v) for v in final.values()]


def fill_changelog(changelog: str, docs: list[str], clients: int) -> int:
    """Write ``clients`` documents; returns the bytes written (keys and values)."""
    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP.split(","))
    try:
        admin.create_topics([NewTopic(changelog, PARTITIONS, 1, topic_configs={"cleanup.policy": "compact"})])
    finally:
        admin.close()
    producer = KafkaProducer(**{**producer_config(BOOTSTRAP), "linger_ms": 20, "batch_size": 512 * 1024})
    written = 0
    try:
        for n in range(clients):
            key = json.dumps(f"clinic-bench|client-{n:07d}").encode()
            value = json.dumps(docs[n % len(docs)]).encode()
            producer.send(changelog, key=key, value=value, partition=partition_for(key, PARTITIONS))
            written += len(key) + len(value)
        producer.flush(timeout=600)
    finally:
        producer.close()
    return written


def time_to_ready(env: dict[str, str], port: int, log: Path) -> float:
    """Seconds from spawning the worker to ``/readyz`` 200 (bounded); the worker is stopped after."""
    service = ServiceProcess("services.monitor", env, port, log)
    started = time.perf_counter()
    service.spawn()
    try:
        deadline = time.monotonic() + 1800
        while time.monotonic() < deadline:
            if service.get("/readyz")[0] == 200:
                return time.perf_counter() - started
            if service.proc is not None and service.proc.poll() is not None:
                raise RuntimeError(f"the monitor exited:\n{service.logs()}")
            time.sleep(0.1)
        raise TimeoutError("the monitor was not ready within 30 minutes")
    finally:
        service.stop()


def measure(clients: int, docs: list[str], work: Path) -> tuple[list[dict[str, Any]], int]:
    """Fill a fresh changelog with ``clients`` documents and time the three starts."""
    ns = f"bench-rec-{uuid.uuid4().hex[:6]}."
    apply_topics(BOOTSTRAP, partitions=PARTITIONS, namespace=ns)
    app_id = f"monitor-{ns.rstrip('.')}"
    changelog = f"{app_id}-trajectories-changelog"
    started = time.perf_counter()
    written = fill_changelog(changelog, docs, clients)
    print(
        f"changelog: {clients:,} clients, {written / clients:,.0f} bytes per client, "
        f"written in {time.perf_counter() - started:.1f} s"
    )
    port = free_port()
    base = {
        "RAPPORT_MONITOR_BOOTSTRAP_SERVERS": BOOTSTRAP,
        "RAPPORT_MONITOR_APP_ID": app_id,
        "RAPPORT_MONITOR_TOPIC_NAMESPACE": ns,
        "RAPPORT_MONITOR_WEB_PORT": str(port),
        "RAPPORT_MONITOR_DATA_DIR": str(work / ns.rstrip(".")),
    }
    rows: list[dict[str, Any]] = []
    for label, store in (
        ("memory:// (rebuilt)", "memory://"),
        ("rocksdb:// new node (no local files)", "rocksdb://"),
        ("rocksdb:// restart (local files)", "rocksdb://"),
    ):
        seconds = time_to_ready({**base, "RAPPORT_MONITOR_STORE": store}, port, work / "monitor.log")
        rows.append({"store": label, "clients": f"{clients:,}", "ready_s": round(seconds, 1)})
        print(f"  {label:<38} ready in {seconds:6.1f} s")
    shutil.rmtree(work / ns.rstrip("."), ignore_errors=True)
    return rows, written


def main() -> int:
    """Fill a changelog per count, time the three starts, write the numbers."""
    wait_for_broker(BOOTSTRAP, timeout_s=30)
    docs = templates()
    print(f"trajectory documents: mean {sum(len(d) for d in docs) / len(docs):,.0f} B")
    work = ROOT / "bench-results" / "recovery-work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    rows: list[dict[str, Any]] = []
    per_client: dict[str, int] = {}
    for clients in COUNTS:
        measured, written = measure(clients, docs, work)
        rows += measured
        per_client[f"{clients:,} clients"] = round(written / clients)
    out = ROOT / "bench-results" / "recovery.json"
    out.write_text(
        json.dumps(
            {
                "rows": rows,
                "changelog_bytes_per_client": per_client,
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
