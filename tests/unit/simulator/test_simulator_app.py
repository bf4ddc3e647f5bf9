"""The simulator service shell: settings, CLI, pacing, producing (to a fake), history output, signals."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from services.simulator import app
from services.simulator.__main__ import main, settings_from_args
from services.simulator.app import TokenBucket, default_start, produce, run
from services.simulator.metrics import SimulatorMetrics
from services.simulator.settings import SimulatorSettings
from shared.contracts.events import SessionCompleted
from shared.history.synthetic import SimulationConfig, generate_history_lines, generate_records

START = datetime(2024, 1, 1, tzinfo=UTC)
SMALL = {
    "clinics": 2,
    "clinicians_per_clinic": 1,
    "clients_per_clinician": 3,
    "sessions_min": 6,
    "sessions_max": 6,
}


class FakeFuture:
    def __init__(self, fail: bool) -> None:
        self.fail = fail
        self.callbacks: list[Any] = []
        self.errbacks: list[Any] = []

    def add_callback(self, f: Any, *args: Any) -> FakeFuture:
        self.callbacks.append((f, args))
        return self

    def add_errback(self, f: Any, *args: Any) -> FakeFuture:
        self.errbacks.append((f, args))
        return self

    def resolve(self) -> None:
        if self.fail:
            for f, args in self.errbacks:
                f(*args, RuntimeError("broker said no"))
        else:
            for f, args in self.callbacks:
                f(*args, "metadata")


class FakeProducer:
    """Records sends; delivers (or fails) them on flush, like a real producer's I/O thread would."""

    def __init__(self, fail_every: int = 0, on_send: Any = None) -> None:
        self.sent: list[tuple[str, bytes | None, bytes | None]] = []
        self.pending: list[FakeFuture] = []
        self.fail_every = fail_every
        self.on_send = on_send
        self.flushed = self.closed = False

    def send(self, topic: str, value: bytes | None = None, key: bytes | None = None) -> FakeFuture:
        self.sent.append((topic, key, value))
        future = FakeFuture(bool(self.fail_every) and len(self.sent) % self.fail_every == 0)
        self.pending.append(future)
        if self.on_send is not None:
            self.on_send(len(self.sent))
        return future

    def flush(self, timeout: float | None = None) -> None:
        for f in self.pending:
            f.resolve()
        self.pending.clear()
        self.flushed = True

    def close(self, timeout: float | None = None) -> None:
        self.closed = True


def settings(**kw: Any) -> SimulatorSettings:
    return SimulatorSettings(**{**SMALL, "start": START, **kw})


def sample(registry: CollectorRegistry, name: str, kind: str) -> float:
    value = registry.get_sample_value(name, {"kind": kind})
    assert value is not None
    return value


# --------------------------------------------------------------------------- settings and CLI


def test_settings_defaults_and_env_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    s = SimulatorSettings()
    assert s.bootstrap_servers == "127.0.0.1:9092"
    assert s.topic_namespace == ""
    monkeypatch.setenv("RAPPORT_SIMULATOR_BOOTSTRAP_SERVERS", "kafka:9092")
    monkeypatch.setenv("RAPPORT_SIMULATOR_TOPIC_NAMESPACE", "demo.")
    monkeypatch.setenv("RAPPORT_SIMULATOR_CLINICS", "7")
    s = SimulatorSettings()
    assert (s.bootstrap_servers, s.topic_namespace, s.clinics) == ("kafka:9092", "demo.", 7)
    with pytest.raises(ValueError):
        s.clinics = 3  # type: ignore[misc]  # frozen


def test_cli_flags_override_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAPPORT_SIMULATOR_SEED", "1")
    monkeypatch.setenv("RAPPORT_SIMULATOR_RATE", "5")
    s = settings_from_args(
        [
            "--seed",
            "9",
            "--sessions",
            "8",
            "--clinics",
            "3",
            "--clients-per-clinician",
            "4",
            "--max-events",
            "10",
            "--invalid-rate",
            "0.1",
            "--history-out",
            "x.jsonl",
            "--start",
            "2024-02-05T00:00:00+00:00",
            "--clinic-types",
            "pcoms,WAI-SR+PHQ-9",
        ]
    )
    assert (s.seed, s.sessions_min, s.sessions_max, s.clinics, s.clients_per_clinician) == (9, 8, 8, 3, 4)
    assert (s.rate, s.max_events, s.invalid_rate, s.history_out) == (5.0, 10, 0.1, Path("x.jsonl"))
    assert s.start == datetime(2024, 2, 5, tzinfo=UTC)
    cfg = s.simulation_config()
    assert cfg.clinic_types == ("pcoms", "WAI-SR+PHQ-9")
    assert settings_from_args(["--as-fast-as-possible"]).as_fast_as_possible


def test_invalid_settings_exit_with_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--sessions-min", "9", "--sessions-max", "3", "--dry-run"]) == 2
    assert main(["--clinic-types", "bogus", "--dry-run"]) == 2
    assert "invalid settings" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--rate", "3", "--as-fast-as-possible"])


def test_default_start_puts_the_cohort_in_the_past() -> None:
    now = datetime(2024, 5, 15, 13, 0, tzinfo=UTC)  # a Wednesday
    start = default_start(now, 16)
    assert start.weekday() == 0 and start.hour == 0
    assert start == datetime(2024, 1, 22, tzinfo=UTC)


def test_importing_does_no_io() -> None:
    code = "import services.simulator.app, services.simulator.__main__, sys; print('kafka' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "False"


# --------------------------------------------------------------------------- pacing


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_token_bucket_paces_at_the_rate_and_bounds_bursts() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=10, capacity=5, clock=clock)
    waits = []
    for _ in range(21):
        wait = bucket.reserve()
        clock.sleep(wait)
        waits.append(wait)
    assert waits[0] == 0
    assert clock.now - 100.0 == pytest.approx(2.0)  # 20 more records at 10/s
    clock.sleep(60)  # a long pause refills only up to the capacity
    assert [bucket.reserve() for _ in range(5)] == [0, 0, 0, 0, 0]
    assert bucket.reserve() == pytest.approx(0.1)


def test_produce_paces_records_with_the_bucket() -> None:
    clock = FakeClock()
    producer = FakeProducer()
    s = settings(rate=50, burst=1, max_events=101, clients_per_clinician=20)
    records = generate_records(s.simulation_config(), s.seed, START)
    metrics = SimulatorMetrics(CollectorRegistry())
    produce(s, records, producer, metrics, threading.Event(), clock=clock, sleep=clock.sleep)
    assert len(producer.sent) == 101
    assert clock.now - 100.0 == pytest.approx(2.0)


# --------------------------------------------------------------------------- producing


def test_run_produces_every_record_keyed_by_client_to_the_namespaced_topic() -> None:
    producer = FakeProducer()
    registry = CollectorRegistry()
    out = io.StringIO()
    s = settings(topic_namespace="t1.", as_fast_as_possible=True, invalid_rate=0.2)
    code = run(s, registry=registry, producer_factory=lambda _: producer, stdout=out)
    assert code == 0
    assert producer.flushed and producer.closed
    expected = list(generate_records(s.simulation_config(), s.seed, START))
    assert [(k, v) for _, k, v in producer.sent] == [(r.key, r.value) for r in expected]
    assert {t for t, _, _ in producer.sent} == {"t1.rapport.session-completed.v1"}
    for (_, key, value), record in zip(producer.sent, expected, strict=True):
        if record.valid:
            event = SessionCompleted.model_validate_json(value or b"")
            assert key == event.data.client_id.encode()
    n_valid = sum(r.valid for r in expected)
    n_invalid = len(expected) - n_valid
    assert n_invalid > 0
    assert sample(registry, "rapport_simulator_events_sent_total", "valid") == n_valid
    assert sample(registry, "rapport_simulator_events_sent_total", "invalid") == n_invalid
    line = out.getvalue().strip()
    assert "\n" not in line
    assert f"sent {len(expected)} events ({n_valid} valid, {n_invalid} invalid)" in line
    assert "t1.rapport.session-completed.v1" in line and "events/s" in line


def test_max_events_bounds_the_run() -> None:
    producer = FakeProducer()
    code = run(
        settings(as_fast_as_possible=True, max_events=7),
        producer_factory=lambda _: producer,
        stdout=io.StringIO(),
    )
    assert code == 0 and len(producer.sent) == 7


def test_delivery_failures_are_counted_and_fail_the_run() -> None:
    producer = FakeProducer(fail_every=4)
    registry = CollectorRegistry()
    out = io.StringIO()
    code = run(
        settings(as_fast_as_possible=True, max_events=20),
        registry=registry,
        producer_factory=lambda _: producer,
        stdout=out,
    )
    assert code == 1
    failed = sample(registry, "rapport_simulator_send_errors_total", "valid")
    failed += sample(registry, "rapport_simulator_send_errors_total", "invalid")
    assert failed == 5
    assert "5 failed" in out.getvalue()


def test_no_broker_fails_with_a_clear_message() -> None:
    def refuse(_: SimulatorSettings) -> Any:
        raise ConnectionError("nope")

    err = io.StringIO()
    assert run(settings(), producer_factory=refuse, stderr=err) == 1
    assert "cannot connect to Kafka at 127.0.0.1:9092" in err.getvalue()
    assert "--history-out" in err.getvalue()


def test_kafka_producer_uses_the_reliability_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    import kafka

    seen: dict[str, Any] = {}

    class Recorder:
        def __init__(self, **kw: Any) -> None:
            seen.update(kw)

    monkeypatch.setattr(kafka, "KafkaProducer", Recorder)
    app.kafka_producer(settings(bootstrap_servers="a:9092,b:9092"))
    assert seen["acks"] == "all"
    assert seen["enable_idempotence"] is True
    assert seen["linger_ms"] == 5
    assert seen["bootstrap_servers"] == ["a:9092", "b:9092"]


def test_sigterm_stops_cleanly_flushes_and_summarises() -> None:
    def term_after_ten(count: int) -> None:
        if count == 10:
            os.kill(os.getpid(), signal.SIGTERM)

    producer = FakeProducer(on_send=term_after_ten)
    out = io.StringIO()
    before = signal.getsignal(signal.SIGTERM)
    code = run(settings(as_fast_as_possible=True), producer_factory=lambda _: producer, stdout=out)
    assert code == 0
    assert 10 <= len(producer.sent) <= 11
    assert producer.flushed and producer.closed
    assert "stopped early" in out.getvalue()
    assert signal.getsignal(signal.SIGTERM) == before


def test_keyboard_interrupt_flushes_and_summarises() -> None:
    def interrupt(count: int) -> None:
        if count == 3:
            raise KeyboardInterrupt

    producer = FakeProducer(on_send=interrupt)
    out = io.StringIO()
    assert run(settings(as_fast_as_possible=True), producer_factory=lambda _: producer, stdout=out) == 130
    assert producer.flushed and producer.closed
    assert "sent 2 events" in out.getvalue() and "stopped early" in out.getvalue()


# --------------------------------------------------------------------------- history output


def test_history_out_writes_json_lines_without_a_broker(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    registry = CollectorRegistry()
    out = io.StringIO()

    def no_broker(_: SimulatorSettings) -> Any:
        raise AssertionError("history mode must not touch Kafka")

    s = settings(history_out=path, rate=0.001)  # the rate does not slow history down
    assert run(s, registry=registry, producer_factory=no_broker, stdout=out) == 0
    lines = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]
    assert lines == list(generate_history_lines(s.simulation_config(), s.seed, START))
    assert sample(registry, "rapport_simulator_events_sent_total", "valid") == len(lines) == 36
    assert f"sent 36 events (36 valid, 0 invalid) to {path}" in out.getvalue()


def test_dry_run_writes_history_to_stdout_and_the_summary_to_stderr() -> None:
    out, err = io.StringIO(), io.StringIO()
    s = settings(dry_run=True, invalid_rate=0.3)
    assert run(s, stdout=out, stderr=err) == 0
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    records = list(generate_records(s.simulation_config(), s.seed, START))
    representable = [r for r in records if r.event is not None]
    assert len(lines) == len(representable)
    skipped = len(records) - len(representable)
    assert skipped > 0
    assert f"{skipped} skipped" in err.getvalue()
    assert {"client", "session", "clinic", "clinician", "episode", "time", "surveys"} == set(lines[0])


def test_module_entry_point_dry_run(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    path = tmp_path / "h.jsonl"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "services.simulator",
            "--history-out",
            str(path),
            "--clinics",
            "1",
            "--clinicians-per-clinic",
            "1",
            "--clients-per-clinician",
            "2",
            "--sessions",
            "3",
            "--seed",
            "5",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert len(path.read_text().splitlines()) == 6
    assert "sent 6 events" in proc.stdout
    cfg = SimulationConfig(
        clinics=1, clinicians_per_clinic=1, clients_per_clinician=2, sessions_min=3, sessions_max=3
    )
    assert cfg.n_clients == 2


def test_a_failing_flush_still_ends_in_a_summary() -> None:
    class StuckProducer(FakeProducer):
        def flush(self, timeout: float | None = None) -> None:
            raise TimeoutError("flush timed out")

    producer = StuckProducer()
    out, err = io.StringIO(), io.StringIO()
    code = run(
        settings(as_fast_as_possible=True, max_events=5),
        producer_factory=lambda _: producer,
        stdout=out,
        stderr=err,
    )
    assert code == 1
    assert producer.closed
    assert "flush failed: TimeoutError" in err.getvalue()
    assert "sent 0 events" in out.getvalue()
