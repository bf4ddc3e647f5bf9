"""Hard-kill fault experiments on the real broker: ``kill -9`` a worker early in a backlog, restart it,
compare what is on its output topic with what the offline pipeline predicts for the same input.

Used by the regression tests (``tests/integration/test_hard_kill.py``, with a test-only delay injected
into the post-recovery seek) and by ``make test-reliability``, which runs the unmodified experiment on
the monitor several times in a row:

    .venv/bin/python -m tests.faults [runs] [--service monitor|scoring] [--store memory://|rocksdb://]

Exit status 0 only when no run lost anything.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shared.contracts import topics
from shared.contracts.keys import subject_id, subject_key
from shared.history.synthetic import SimulationConfig, generate_records
from shared.instruments import default_registry
from shared.pipeline.session import score_raw_session
from shared.rules.config import default_rulebook
from shared.rules.live import evaluate
from shared.runtime.transport import SEEK_DELAY_ENV
from tests.support import ServiceProcess, consume, free_port, namespace, produce, provision, t, values

NOW = datetime(2026, 3, 1, tzinfo=UTC)
SEED = 5
#: ~4.4k sessions → ~11k scored surveys → ~1k signals: seconds of work for one worker, so a kill right
#: after the first output lands early in the backlog.
CONFIG = SimulationConfig(clinics=2, clinicians_per_clinic=4, clients_per_clinician=50)
SESSION_TIMEOUT_S = "6"
#: Long enough that the first worker never commits before it is killed: the defect needs a group
#: without committed offsets. The experiment records whether that held.
NO_COMMIT_INTERVAL_S = "600"


@dataclass(frozen=True)
class Service:
    """What the experiment needs to know about one service."""

    module: str
    prefix: str
    input_topic: str
    output_topic: str
    table: str | None


MONITOR = Service(
    "services.monitor", "RAPPORT_MONITOR_", topics.SURVEY_SCORED, topics.SIGNALS, "trajectories"
)
SCORING = Service(
    "services.scoring", "RAPPORT_SCORING_", topics.SESSION_COMPLETED, topics.SURVEY_SCORED, None
)
SERVICES = {"monitor": MONITOR, "scoring": SCORING}


@functools.cache
def session_records() -> tuple[tuple[bytes | None, bytes], ...]:
    """The synthetic clinic's session-completed records (key, value)."""
    return tuple((r.key, r.value) for r in generate_records(CONFIG, SEED, NOW))


@functools.cache
def scored_events() -> tuple[Any, ...]:
    """The ``SurveyScored`` events the scoring pipeline makes of :func:`session_records`."""
    registry = default_registry()
    out: list[Any] = []
    for _key, value in session_records():
        out += score_raw_session(value, registry)[1].events(registry, now=NOW, source="rapport/scoring")
    return tuple(out)


@functools.cache
def _offline_monitor() -> tuple[frozenset[str], dict[str, str]]:
    states: dict[str, Any] = {}
    ids: set[str] = set()
    for e in scored_events():
        key = subject_id(e.clinic_id, e.data.client_id)
        result = evaluate(states.get(key), e, default_rulebook(), NOW)
        states[key] = result.state
        ids |= {str(s.id) for s in result.signals}
    return frozenset(ids), {k: v.to_json() for k, v in states.items()}


def expected_signal_ids() -> frozenset[str]:
    """Signal ids the offline rules raise over :func:`scored_events` in order."""
    return _offline_monitor()[0]


def expected_states() -> dict[str, str]:
    """Every client's final trajectory (``ClientState`` JSON) after :func:`scored_events` in order."""
    return _offline_monitor()[1]


def table_states(bootstrap: str, changelog: str) -> dict[str, str]:
    """The last value of every key of a table's changelog (faust's json codec around ``str``)."""
    return {json.loads(r.key): json.loads(r.value) for r in read_topic(bootstrap, changelog) if r.value}


def read_topic(bootstrap: str, topic: str, timeout_s: float = 60.0) -> list[Any]:
    """Every record on ``topic`` up to its end offsets at the time of the call (bounded wait)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(","), enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        out: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < end[tp] for tp in tps) and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                out.extend(records)
        return out
    finally:
        consumer.close()


def _input_and_expected(service: Service) -> tuple[list[tuple[bytes | None, bytes]], frozenset[str]]:
    if service is MONITOR:
        events = scored_events()
        records = [(subject_key(e.clinic_id, e.data.client_id), e.model_dump_json().encode()) for e in events]
        return records, expected_signal_ids()
    return list(session_records()), frozenset(str(e.id) for e in scored_events())


@dataclass
class KillRun:
    """What one experiment saw."""

    expected: int
    got_ids: set[str]
    lost: set[str]
    extra: set[str]
    outputs_before_kill: int
    committed_before_kill: dict[int, int] = field(default_factory=dict)
    changelog_before_kill: int = 0
    wrong_states: int = 0
    """Clients whose final trajectory differs from the offline one (a lost input record shows here
    even when it raised no signal)."""
    logs: str = ""

    @property
    def ok(self) -> bool:
        """Nothing lost, nothing unexpected."""
        return not (self.lost or self.extra or self.wrong_states)

    def summary(self) -> str:
        """One line for people."""
        return (
            f"expected {self.expected}, lost {len(self.lost)}, extra {len(self.extra)}, clients with a wrong "
            f"trajectory {self.wrong_states}; before the kill: "
            f"{self.outputs_before_kill} outputs, {self.changelog_before_kill} changelog records, "
            f"committed offsets {self.committed_before_kill or 'none'}"
        )


def committed_offsets(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """The group's committed offsets on ``topic`` by partition (empty when none)."""
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","), request_timeout_ms=10_000)
    try:
        offsets = admin.list_group_offsets({group: None}).get(group, {})
    finally:
        admin.close()
    return {tp.partition: m.offset for tp, m in offsets.items() if tp.topic == topic and m.offset > 0}


class RecordWatch:
    """Counts records arriving on a few topics from now on (manual assignment: no group join, so it
    sees a record within one poll and a kill lands right after it)."""

    def __init__(self, bootstrap: str, topics_: Sequence[str]) -> None:
        from kafka import KafkaConsumer, TopicPartition

        self._consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(","), enable_auto_commit=False)
        tps = [
            TopicPartition(topic, p)
            for topic in topics_
            for p in sorted(self._consumer.partitions_for_topic(topic) or ())
        ]
        self._consumer.assign(tps)
        self._consumer.seek_to_end(*tps)
        for tp in tps:
            self._consumer.position(tp)
        self.counts = dict.fromkeys(topics_, 0)

    def wait(self, minimum: dict[str, int], timeout_s: float) -> None:
        """Poll until every topic of ``minimum`` saw that many records (or the timeout passes)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and any(self.counts[k] < n for k, n in minimum.items()):
            for tp, records in self._consumer.poll(timeout_ms=20).items():
                self.counts[tp.topic] += len(records)

    def close(self) -> None:
        """Release the consumer."""
        self._consumer.close()


def create_changelog(bootstrap: str, name: str, partitions: int = 3) -> None:
    """Create a table's changelog topic as faust would (compacted), so it can be watched from the start."""
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","))
    try:
        admin.create_topics([NewTopic(name, partitions, 1, topic_configs={"cleanup.policy": "compact"})])
    finally:
        admin.close()


def kill_experiment(
    bootstrap: str,
    service: Service,
    *,
    store: str = "memory://",
    seek_delay_s: float | None = None,
    workdir: Path | None = None,
    timeout_s: float = 120.0,
) -> KillRun:
    """Queue the backlog, start the worker, ``kill -9`` it right after its first output (and, with a
    table, its first changelog record), restart it, and compare what is on the output topic (and in
    the table) with the offline prediction.

    ``seek_delay_s`` is the regression mode: the restarted worker gets the test-only seek fault
    (:data:`SEEK_DELAY_ENV`) and no local table files (it recovers its table from the changelog, as
    on another node), and the first worker is kept from committing (the defect needs a group without
    committed offsets) and works in small batches so it is killed early in the backlog (the records
    the restarted worker can drop are then ones nobody has processed yet). Without it the experiment
    runs the services exactly as configured in production.
    """
    workdir = workdir or Path(tempfile.mkdtemp(prefix="rapport-kill-"))
    ns = namespace()
    provision(bootstrap, ns)
    records, expected = _input_and_expected(service)
    produce(bootstrap, t(ns, service.input_topic), records)
    app_id = f"{service.module.rsplit('.', 1)[-1]}-{ns.rstrip('.')}"
    output = t(ns, service.output_topic)
    changelog = f"{app_id}-{service.table}-changelog" if service.table else None
    p = service.prefix
    env = {
        f"{p}BOOTSTRAP_SERVERS": bootstrap,
        f"{p}APP_ID": app_id,
        f"{p}TOPIC_NAMESPACE": ns,
        f"{p}SESSION_TIMEOUT_S": SESSION_TIMEOUT_S,
        f"{p}STORE": store,
    }
    first_env = {**env, f"{p}WEB_PORT": str(free_port())}
    if seek_delay_s is not None:
        first_env[f"{p}COMMIT_INTERVAL_S"] = NO_COMMIT_INTERVAL_S
        first_env[f"{p}BATCH_MAX"] = "5"
    watched = [output] + ([changelog] if changelog else [])
    if changelog:
        create_changelog(bootstrap, changelog)
    watch = RecordWatch(bootstrap, watched)
    first = ServiceProcess(service.module, first_env, int(first_env[f"{p}WEB_PORT"]), workdir / "first.log")
    try:
        first.spawn()
        watch.wait(dict.fromkeys(watched, 1), timeout_s=90)
    finally:
        if first.proc is not None:
            first.proc.send_signal(signal.SIGKILL)
            first.proc.wait(timeout=10)
        watch.close()
    if watch.counts[output] == 0:
        raise RuntimeError(f"{service.module} produced nothing before the kill:\n{first.logs()}")
    committed = committed_offsets(bootstrap, app_id, t(ns, service.input_topic))

    second_env = {**env, f"{p}WEB_PORT": str(free_port())}
    if seek_delay_s is not None:
        second_env[SEEK_DELAY_ENV] = str(seek_delay_s)
        # Restarted as on another node: no local table files, so the table is recovered from the
        # changelog (a rocksdict store reopening its own files after kill -9 would need no recovery).
        second_env[f"{p}DATA_DIR"] = str(workdir / "restarted-state")
    second_port = int(second_env[f"{p}WEB_PORT"])
    second = ServiceProcess(service.module, second_env, second_port, workdir / "second.log")
    second.start()
    try:
        got = consume(bootstrap, output, expected=len(expected), timeout_s=timeout_s)
    finally:
        code = second.stop()
    ids = {v["id"] for v in values(got)}
    logs = second.log_path.read_text(errors="replace")
    if code != 0:
        raise RuntimeError(f"{service.module} did not stop cleanly after the restart (exit {code}):\n{logs}")
    wrong = 0
    if changelog:
        live = table_states(bootstrap, changelog)
        offline = expected_states()
        wrong = sum(1 for k, state in offline.items() if live.get(k) != state) + len(set(live) - set(offline))
    return KillRun(
        expected=len(expected),
        got_ids=ids,
        lost=set(expected) - ids,
        extra=ids - set(expected),
        outputs_before_kill=watch.counts[output],
        committed_before_kill=committed,
        changelog_before_kill=watch.counts.get(changelog or "", 0),
        wrong_states=wrong,
        logs=logs,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the unmodified experiment ``runs`` times in a row; exit 1 if any run lost anything."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", type=int, nargs="?", default=10)
    parser.add_argument("--service", choices=sorted(SERVICES), default="monitor")
    parser.add_argument("--store", default="memory://")
    args = parser.parse_args(argv)
    port = os.environ.get("KAFKA_PORT", "9092")
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or f"127.0.0.1:{port}"
    service = SERVICES[args.service]
    failed = 0
    started = time.monotonic()
    for run in range(1, args.runs + 1):
        result = kill_experiment(bootstrap, service, store=args.store)
        failed += not result.ok
        print(f"run {run}/{args.runs} {args.service} {args.store}: {result.summary()}", flush=True)
    took = time.monotonic() - started
    print(f"{args.runs - failed} of {args.runs} hard kills lost nothing ({took:.0f} s)", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
