"""End-to-end ``POST /v1/sessions`` (202 only after the broker's ack) against a bare FastAPI endpoint.

Both servers run as their own processes with the same uvicorn settings (uvloop, httptools, one
worker); the load generator is this process: a bounded asyncio HTTP/1.1 client on keep-alive
connections, the same for both targets, in the same run.

- gateway: ``python -m services.gateway`` on the real broker — key check (SQLite), validation, the
  idempotency ledger, the scoring warnings, produce and await the broker's acknowledgement (acks=all,
  idempotent). Every request carries a new event, so every one is produced.
- bare: a FastAPI app whose ``POST /v1/sessions`` reads the body and answers 202 (no Kafka, no checks).

Two loads per target:
1. closed loop, ``BENCH_CONNECTIONS`` connections back to back: the most requests/s each sustains;
2. open loop at each of ``BENCH_RATES`` (default 300 and 1000) requests/s for ``BENCH_SECONDS`` s:
   latency measured from each request's *scheduled* time (no coordinated omission), p50/p99.

Requests/s and latencies depend on everything else the machine runs (the broker and the load
generator share its cores); the server CPU time per request does not, and is reported too.

Goal (issue 13): gateway ≥ 0.5× the bare endpoint's requests/s, and p99 ≤ 50 ms at 1,000 requests/s.
Run with a broker up (`make kafka-up`); writes bench-results/gateway.json. Numbers, not assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import shutil
import statistics
import sys
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

ROOT = Path(__file__).resolve().parent.parent
BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or f"127.0.0.1:{os.environ.get('KAFKA_PORT', '9092')}"
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "32"))
CLOSED_REQUESTS = int(os.environ.get("BENCH_REQUESTS", "6000"))
RATES = [float(r) for r in os.environ.get("BENCH_RATES", "300,1000").split(",")]
SECONDS = float(os.environ.get("BENCH_SECONDS", "10"))
WARMUP = 500


# ---------------------------------------------------------------------------- the bare endpoint


def bare_app() -> Any:
    """A FastAPI app that answers 202 to ``POST /v1/sessions`` without touching Kafka."""
    app = FastAPI()

    @app.post("/v1/sessions", status_code=202)
    async def accept(request: Request) -> JSONResponse:
        await request.body()
        return JSONResponse({"status": "accepted"}, status_code=202)

    @app.get("/readyz")
    async def ready() -> JSONResponse:
        return JSONResponse({"status": "ready"})

    return app


# ---------------------------------------------------------------------------- the load generator


class Connection:
    """One keep-alive HTTP/1.1 connection; one request at a time."""

    def __init__(self, port: int, key: str) -> None:
        self.port = port
        self.head = (
            "POST /v1/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
        ).encode()

    @classmethod
    async def open(cls, port: int, key: str) -> Connection:
        conn = cls(port, key)
        await conn.connect()
        return conn

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)

    async def post(self, body: bytes) -> int:
        request = self.head + b"Content-Length: %d\r\n\r\n" % len(body) + body
        self.writer.write(request)
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                raise
            # The server closed an idle keep-alive connection before reading the request: resend
            # it once on a new connection (nothing was processed).
            self.writer.close()
            await self.connect()
            self.writer.write(request)
            head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        if length:
            await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        self.writer.close()


def _summary(latencies: Sequence[float], statuses: Counter[int], elapsed: float) -> dict[str, Any]:
    ordered = sorted(latencies)

    def pct(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000, 2)

    return {
        "requests": len(ordered),
        "requests_per_s": round(len(ordered) / elapsed, 1),
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "max_ms": round(ordered[-1] * 1000, 2),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 2),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
    }


async def closed_loop(port: int, key: str, bodies: list[bytes], connections: int) -> dict[str, Any]:
    """``connections`` clients sending back to back until every body is sent."""
    conns = [await Connection.open(port, key) for _ in range(connections)]
    queue = iter(bodies)
    latencies: list[float] = []
    statuses: Counter[int] = Counter()

    async def client(conn: Connection) -> None:
        for body in queue:
            started = time.perf_counter()
            status = await conn.post(body)
            latencies.append(time.perf_counter() - started)
            statuses[status] += 1

    began = time.perf_counter()
    await asyncio.gather(*(client(c) for c in conns))
    elapsed = time.perf_counter() - began
    for c in conns:
        c.close()
    return _summary(latencies, statuses, elapsed)


async def open_loop(
    port: int, key: str, bodies: list[bytes], rate: float, max_connections: int = 256
) -> dict[str, Any]:
    """One request every 1/``rate`` s whatever the answers' pace; latency from the scheduled time."""
    free: collections.deque[Connection] = collections.deque(
        [await Connection.open(port, key) for _ in range(16)]
    )
    opened = len(free)
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    tasks: list[asyncio.Task[None]] = []
    available = asyncio.Event()

    async def send(body: bytes, scheduled: float) -> None:
        nonlocal opened
        while not free:
            if opened < max_connections:
                opened += 1
                free.append(await Connection.open(port, key))
                break
            available.clear()
            await available.wait()
        conn = free.popleft()  # round robin: no connection idles past the server's keep-alive
        status = await conn.post(body)
        latencies.append(time.perf_counter() - scheduled)
        statuses[status] += 1
        free.append(conn)
        available.set()

    began = time.perf_counter()
    for i, body in enumerate(bodies):
        scheduled = began + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(send(body, scheduled)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - began
    for c in free:
        c.close()
    result = _summary(latencies, statuses, elapsed)
    result["offered_per_s"] = rate
    result["connections_opened"] = opened
    return result


# ---------------------------------------------------------------------------- the run


def _bodies(n: int, tag: str) -> list[bytes]:
    from tests.support import session_event

    run = uuid.uuid4().hex[:8]
    return [
        session_event(client=f"{tag}-{run}-{i % 500}", session_number=1 + i // 500).model_dump_json().encode()
        for i in range(n)
    ]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _measure(port: int, key: str, tag: str, pid: int) -> dict[str, Any]:
    await closed_loop(port, key, _bodies(WARMUP, f"{tag}w"), 8)
    cpu = cpu_seconds(pid)
    closed = await closed_loop(port, key, _bodies(CLOSED_REQUESTS, f"{tag}c"), CONNECTIONS)
    # CPU per request does not depend on what else the machine runs, unlike requests/s.
    closed["server_cpu_ms_per_request"] = round(1000 * (cpu_seconds(pid) - cpu) / CLOSED_REQUESTS, 3)
    opened = {
        f"{rate:.0f}_per_s": await open_loop(
            port, key, _bodies(int(rate * SECONDS), f"{tag}o{rate:.0f}"), rate
        )
        for rate in RATES
    }
    return {"closed_loop": closed, "open_loop": opened}


def _serve_bare(port: int) -> None:
    from shared.runtime.http import run_http

    run_http(bare_app(), host="127.0.0.1", port=port, log_level="WARNING")


def main() -> int:
    """Run the benchmark and print/write its numbers."""
    from shared.contracts import topics
    from shared.runtime.provisioning import wait_for_broker
    from tests.gateway_support import create_key
    from tests.support import ServiceProcess, consume, free_port, namespace, provision, running_service, t

    wait_for_broker(BOOTSTRAP, timeout_s=30)
    work = ROOT / "bench-results" / "gateway-work"
    shutil.rmtree(work, ignore_errors=True)  # the last run's logs and SQLite file
    work.mkdir(parents=True, exist_ok=True)
    ns = namespace()
    provision(BOOTSTRAP, ns)
    db = work / "gateway.sqlite3"
    _, key = create_key(db, "clinic-01")

    bare_port = free_port()
    bare = ServiceProcess(
        "bench.bench_gateway", {"BENCH_BARE_PORT": str(bare_port)}, bare_port, work / "bare.log"
    )
    bare.start()
    try:
        bare_result = asyncio.run(_measure(bare_port, key, "bare", _pid(bare)))
    finally:
        bare.stop()

    with running_service(
        "services.gateway",
        "RAPPORT_GATEWAY_",
        BOOTSTRAP,
        ns,
        work,
        db_path=str(db),
        consume_scores="false",
        rate_per_s="1000000",
        rate_burst="1000000",
        log_level="WARNING",
    ) as gw:
        gateway_result = asyncio.run(_measure(gw.port, key, "gw", _pid(gw)))
        metrics = gw.get("/metrics")[1]

    for name, measured in (("bare", bare_result), ("gateway", gateway_result)):
        for run in (measured["closed_loop"], *measured["open_loop"].values()):
            if set(run["statuses"]) != {"202"}:
                raise RuntimeError(f"{name} answered {run['statuses']}: the comparison is void")
    runs = [gateway_result["closed_loop"], *gateway_result["open_loop"].values()]
    accepted = sum(r["statuses"].get("202", 0) for r in runs) + WARMUP
    on_topic = len(consume(BOOTSTRAP, t(ns, topics.SESSION_COMPLETED), accepted, timeout_s=120, settle_s=2))
    ack_sum = _metric(metrics, "rapport_gateway_ack_seconds_sum")
    ack_count = _metric(metrics, "rapport_gateway_ack_seconds_count")
    result = {
        "machine": f"{os.cpu_count()} cores, shared with the broker and the load generator",
        "connections": CONNECTIONS,
        "bare": bare_result,
        "gateway": gateway_result,
        "ratio_requests_per_s": round(
            gateway_result["closed_loop"]["requests_per_s"] / bare_result["closed_loop"]["requests_per_s"], 2
        ),
        "ratio_cpu_per_request": round(
            bare_result["closed_loop"]["server_cpu_ms_per_request"]
            / gateway_result["closed_loop"]["server_cpu_ms_per_request"],
            2,
        ),
        "gateway_mean_ack_ms": round(1000 * ack_sum / ack_count, 2) if ack_count else None,
        "gateway_202_answered": accepted,
        "gateway_records_on_topic": on_topic,
        "goal": "ratio >= 0.5; gateway open-loop p99 <= 50 ms at 1000 requests/s",
    }
    out = ROOT / "bench-results" / "gateway.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    g, b = gateway_result, bare_result
    print(
        f"bench_gateway: closed loop ({CONNECTIONS} connections): "
        f"gateway {g['closed_loop']['requests_per_s']} req/s "
        f"(p99 {g['closed_loop']['p99_ms']} ms) vs bare {b['closed_loop']['requests_per_s']} req/s "
        f"(p99 {b['closed_loop']['p99_ms']} ms) -> ratio {result['ratio_requests_per_s']}"
    )
    for rate in g["open_loop"]:
        go, bo = g["open_loop"][rate], b["open_loop"][rate]
        print(
            f"bench_gateway: open loop at {go['offered_per_s']:.0f} req/s: gateway p50 {go['p50_ms']} ms, "
            f"p99 {go['p99_ms']} ms ({go['requests_per_s']} req/s done); bare p50 {bo['p50_ms']} ms, "
            f"p99 {bo['p99_ms']} ms ({bo['requests_per_s']} req/s done)"
        )
    print(
        f"bench_gateway: server CPU per request: gateway {g['closed_loop']['server_cpu_ms_per_request']} ms, "
        f"bare {b['closed_loop']['server_cpu_ms_per_request']} ms -> ratio {result['ratio_cpu_per_request']}"
    )
    print(f"bench_gateway: {accepted} answered 202, {on_topic} records on the topic; wrote {out}")
    return 0


def _pid(service: Any) -> int:
    if service.proc is None:
        raise RuntimeError(f"{service.module} is not running")
    return int(service.proc.pid)


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


if __name__ == "__main__":
    if os.environ.get("BENCH_BARE_PORT"):
        _serve_bare(int(os.environ["BENCH_BARE_PORT"]))
        sys.exit(0)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.parse_args()
    sys.exit(main())
