"""The simulator's shell: pace the synthetic cohort onto Kafka, or write it as offline history.

All trajectories come from :mod:`shared.history.synthetic`; this module only does the I/O: a token-bucket
pacer, a kafka-python producer (idempotent, ``acks=all``), a JSON Lines writer, signal handling and
a one-line summary. Nothing happens at import time.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import IO, Any, Protocol

from prometheus_client import CollectorRegistry, start_http_server

from services.simulator.metrics import SimulatorMetrics
from services.simulator.settings import SimulatorSettings
from shared.contracts.topics import SESSION_COMPLETED, topic_name
from shared.history.synthetic import (
    SimulatedRecord,
    SimulationConfig,
    generate_history_lines,
    generate_records,
    to_history_line,
)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130


class Producer(Protocol):
    """The slice of ``kafka.KafkaProducer`` the simulator uses (a fake in tests)."""

    def send(self, topic: str, value: bytes | None = None, key: bytes | None = None) -> Any: ...
    def flush(self, timeout: float | None = None) -> None: ...
    def close(self, timeout: float | None = None) -> None: ...


ProducerFactory = Callable[[SimulatorSettings], Producer]


def kafka_producer(settings: SimulatorSettings) -> Producer:
    """A kafka-python producer with the project's reliability settings (idempotent, acks=all)."""
    from kafka import KafkaProducer

    producer: Producer = KafkaProducer(
        bootstrap_servers=settings.bootstrap_servers.split(","),
        client_id=settings.client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_block_ms=settings.max_block_ms,
    )
    return producer


class TokenBucket:
    """Token-bucket pacing: ``rate`` records per second with bursts of at most ``capacity``.

    ``reserve`` takes a token and says how long to wait before using it; the bucket never holds more
    than ``capacity`` tokens, so a pause is not followed by an unbounded burst.
    """

    def __init__(self, rate: float, capacity: int, clock: Callable[[], float]) -> None:
        if rate <= 0 or capacity < 1:
            raise ValueError("rate must be positive and capacity at least 1")
        self.rate = rate
        self.capacity = float(capacity)
        self._clock = clock
        self._tokens = 1.0
        self._last = clock()

    def reserve(self) -> float:
        """Take one token; return the seconds to wait before it may be used (0 if available now)."""
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
        self._last = now
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate


@dataclass
class Tally:
    """What a run did; updated from the producer's I/O thread, hence the lock."""

    produced: int = 0
    """Records handed to the producer (or written)."""
    valid: int = 0
    invalid: int = 0
    failed: int = 0
    skipped: int = 0
    """Records that have no history form (undecodable / schema-violating bytes)."""
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def sent(self) -> int:
        """Records delivered."""
        return self.valid + self.invalid


def default_start(now: datetime, sessions_max: int) -> datetime:
    """Monday 00:00 UTC ``sessions_max`` weeks before the week of ``now``: the cohort lies in the past."""
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    this_monday = today - timedelta(days=today.weekday())
    return this_monday - timedelta(weeks=sessions_max)


def _bounded(records: Iterable[SimulatedRecord], max_events: int | None) -> Iterator[SimulatedRecord]:
    for count, record in enumerate(records):
        if max_events is not None and count >= max_events:
            return
        yield record


class _Stop:
    """Set by SIGTERM (or a test) to end the run cleanly after the current record."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.event.set()


def produce(
    settings: SimulatorSettings,
    records: Iterable[SimulatedRecord],
    producer: Producer,
    metrics: SimulatorMetrics,
    stop: threading.Event,
    *,
    tally: Tally | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Tally:
    """Send ``records`` to the session-completed topic, paced unless as fast as possible.

    Delivered and failed records are counted into ``tally`` from the producer's callbacks (pass one
    in to keep the counts if this is interrupted); the caller flushes. Stops early (cleanly) when
    ``stop`` is set.
    """
    topic = topic_name(SESSION_COMPLETED, settings.topic_namespace)
    bucket = None if settings.as_fast_as_possible else TokenBucket(settings.rate, settings.burst, clock)
    tally = tally if tally is not None else Tally()

    def delivered(valid: bool, _metadata: object) -> None:
        with tally.lock:
            if valid:
                tally.valid += 1
            else:
                tally.invalid += 1
        metrics.sent(valid)

    def failed(valid: bool, _error: BaseException) -> None:
        with tally.lock:
            tally.failed += 1
        metrics.failed(valid)

    for record in _bounded(records, settings.max_events):
        if stop.is_set():
            break
        if bucket is not None:
            wait = bucket.reserve()
            # Sleep in short slices so SIGTERM is honoured promptly even at slow rates.
            while wait > 0 and not stop.is_set():
                step = min(wait, 0.2)
                sleep(step)
                wait -= step
            if stop.is_set():
                break
        future = producer.send(topic, value=record.value, key=record.key)
        future.add_callback(delivered, record.valid)
        future.add_errback(failed, record.valid)
        tally.produced += 1
    return tally


def write_history(
    settings: SimulatorSettings,
    config: SimulationConfig,
    start: datetime,
    out: IO[str],
    metrics: SimulatorMetrics,
    stop: threading.Event,
    tally: Tally | None = None,
) -> Tally:
    """Write the cohort as JSON Lines history (the ``rapport signals|backtest`` input format).

    Invalid records that are valid JSON events (out-of-range answers, unknown instruments) are
    written too; undecodable and schema-violating ones have no history form and are skipped.
    """
    tally = tally if tally is not None else Tally()
    dumps = json.JSONEncoder(separators=(",", ":")).encode
    lines: Iterator[tuple[bool, dict[str, Any] | None]]
    if config.invalid_rate == 0:
        # The fast path: no pydantic on the way, same trajectories.
        lines = ((True, line) for line in generate_history_lines(config, settings.seed, start))
    else:
        lines = (
            (r.valid, to_history_line(r.event) if r.event is not None else None)
            for r in generate_records(config, settings.seed, start)
        )
    for count, (valid, line) in enumerate(lines):
        if (settings.max_events is not None and count >= settings.max_events) or stop.is_set():
            break
        tally.produced += 1
        if line is None:
            tally.skipped += 1
            continue
        out.write(dumps(line))
        out.write("\n")
        if valid:
            tally.valid += 1
        else:
            tally.invalid += 1
        metrics.sent(valid)
    out.flush()
    return tally


def summary(tally: Tally, elapsed: float, destination: str, stopped: bool) -> str:
    """The one-line report printed at the end of a run."""
    rate = tally.sent / elapsed if elapsed > 0 else 0.0
    parts = [
        f"simulator: sent {tally.sent} events ({tally.valid} valid, {tally.invalid} invalid) "
        f"to {destination} in {elapsed:.2f} s ({rate:.0f} events/s)"
    ]
    if tally.failed:
        parts.append(f"{tally.failed} failed")
    if tally.skipped:
        parts.append(f"{tally.skipped} skipped (no history form)")
    if stopped:
        parts.append("stopped early")
    return ", ".join(parts)


def run(
    settings: SimulatorSettings,
    *,
    registry: CollectorRegistry | None = None,
    producer_factory: ProducerFactory = kafka_producer,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
    stop: threading.Event | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> int:
    """Run the simulator once: produce (or write) the cohort, flush, print a summary; the exit code.

    SIGTERM and Ctrl-C stop it cleanly: what was sent is flushed and summarised.
    """
    stdout = stdout if stdout is not None else sys.stdout
    stderr = stderr if stderr is not None else sys.stderr
    registry = registry if registry is not None else CollectorRegistry()
    metrics = SimulatorMetrics(registry)
    if settings.metrics_port is not None:
        start_http_server(settings.metrics_port, registry=registry)
    config = settings.simulation_config()
    start = settings.start if settings.start is not None else default_start(now(), config.sessions_max)

    handler = _Stop()
    if stop is not None:
        handler.event = stop
    installed = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, handler) if installed else None
    interrupted = False
    began = time.monotonic()
    try:
        if settings.writes_history:
            return _run_history(settings, config, start, metrics, handler.event, stdout, stderr, began)
        try:
            producer = producer_factory(settings)
        except Exception as exc:  # kafka-python raises NoBrokersAvailable and friends
            print(
                f"simulator: cannot connect to Kafka at {settings.bootstrap_servers}: "
                f"{type(exc).__name__}. Start a broker, or write history with --history-out FILE "
                "or --dry-run.",
                file=stderr,
            )
            return EXIT_FAILED
        tally = Tally()
        records = generate_records(config, settings.seed, start)
        try:
            produce(settings, records, producer, metrics, handler.event, tally=tally)
        except KeyboardInterrupt:
            interrupted = True
        except Exception as exc:  # e.g. KafkaTimeoutError when metadata never arrives
            print(f"simulator: producing failed: {type(exc).__name__}: {exc}", file=stderr)
            tally.failed += 1
        finally:
            try:
                producer.flush(timeout=settings.flush_timeout_seconds)
            except Exception as exc:  # a flush timeout must still end in a summary
                print(f"simulator: flush failed: {type(exc).__name__}: {exc}", file=stderr)
                tally.failed += 1
            finally:
                producer.close(timeout=settings.flush_timeout_seconds)
        topic = topic_name(SESSION_COMPLETED, settings.topic_namespace)
        stopped = interrupted or handler.event.is_set()
        print(summary(tally, time.monotonic() - began, topic, stopped), file=stdout, flush=True)
        if interrupted:
            return EXIT_INTERRUPTED
        return EXIT_FAILED if tally.failed else EXIT_OK
    finally:
        if installed:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def _run_history(
    settings: SimulatorSettings,
    config: SimulationConfig,
    start: datetime,
    metrics: SimulatorMetrics,
    stop: threading.Event,
    stdout: IO[str],
    stderr: IO[str],
    began: float,
) -> int:
    path = settings.history_out
    to_stdout = path is None or str(path) == "-"
    interrupted = False
    tally = Tally()
    try:
        if path is None or to_stdout:
            write_history(settings, config, start, stdout, metrics, stop, tally)
        else:
            with path.open("w", encoding="utf-8", newline="\n") as fh:
                write_history(settings, config, start, fh, metrics, stop, tally)
    except KeyboardInterrupt:
        interrupted = True
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop quietly, and keep the interpreter's final
        # flush of the dead stdout from raising again.
        stop.set()
        if stdout is sys.stdout:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
    destination = "stdout" if to_stdout else str(path)
    # The summary goes to stderr when stdout carries the history itself.
    print(
        summary(tally, time.monotonic() - began, destination, interrupted or stop.is_set()),
        file=stderr if to_stdout else stdout,
        flush=True,
    )
    return EXIT_INTERRUPTED if interrupted else EXIT_OK
