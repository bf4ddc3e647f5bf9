"""`make demo`: the whole pipeline on the real broker, with output a person can read.

Provisions a fresh topic namespace, starts the scoring and monitor services as their own processes,
lets the synthetic clinic send a few weeks of sessions (a few of them deliberately broken), and
prints scores, dead letters and signals as they arrive. Bounded in time; stops everything it started.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from pathlib import Path
from typing import Any, cast

from kafka import KafkaConsumer

from shared.contracts import topics
from shared.runtime.provisioning import apply_topics, wait_for_broker

ROOT = Path(__file__).resolve().parent.parent
STATE = ROOT / ".demo"
BOLD, RED, YELLOW, GREEN, DIM, RESET = "\033[1m", "\033[31m", "\033[33m", "\033[32m", "\033[2m", "\033[0m"
SEVERITY_COLOUR = {"critical": RED + BOLD, "high": RED, "moderate": YELLOW, "info": GREEN}


def _start(module: str, prefix: str, env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    STATE.mkdir(exist_ok=True)
    log = (STATE / f"{module.rsplit('.', 1)[-1]}.log").open("wb")
    full_env = {**os.environ, **{f"{prefix}{k}": v for k, v in env.items()}, f"{prefix}WEB_PORT": str(port)}
    return subprocess.Popen(  # noqa: S603 - our own module, fixed arguments
        [sys.executable, "-m", module], env=full_env, cwd=STATE, stdout=log, stderr=subprocess.STDOUT
    )


def _wait_ready(name: str, proc: subprocess.Popen[bytes], port: int, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{name} exited early; see .demo/{name}.log")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{name} not ready after {timeout_s:.0f}s; see .demo/{name}.log")


def _describe(topic: str, value: dict[str, object], ns: str) -> str:
    if topic == topics.topic_name(topics.SURVEY_SCORED, ns):
        d = cast(dict[str, Any], value["data"])
        band = f" {d['band']}" if d.get("band") else ""
        concern = f" {YELLOW}concern{RESET}" if d.get("concern") else ""
        crit = (
            f" {RED}{BOLD}critical item {','.join(d['critical_items'])}{RESET}"
            if d.get("critical_items")
            else ""
        )
        total = d["total"]
        return (
            f"{DIM}scored {RESET} {d['client_id']:>12} s{d['session_number']:<2} "
            f"{d['instrument']:7} {total:>5g}{band}{concern}{crit}"
        )
    if topic == topics.topic_name(topics.DEAD_LETTER, ns):
        where = f" ({value['instrument']})" if value.get("instrument") else ""
        offset = value["original_offset"]
        return f"{RED}dead   {RESET} {value['stage']}: {value['reason']}{where} — offset {offset}"
    d = cast(dict[str, Any], value["data"])
    colour = SEVERITY_COLOUR.get(str(d["severity"]), "")
    # A critical item raised from an invalid session event may lack the client or session (null).
    client, session = d["client_id"] or "?", d["session_number"] or "?"
    return (
        f"{colour}SIGNAL {d['severity']:>8}{RESET} {client:>12} s{session!s:<2} "
        f"{d['kind']}: {d['explanation']}"
    )


def main() -> int:
    """Run the demo; returns the process exit code."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--bootstrap-servers", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    )
    parser.add_argument("--clinics", type=int, default=2)
    parser.add_argument("--clients-per-clinician", type=int, default=4)
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--rate", type=float, default=40.0, help="session events per second")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--quiet-scores", action="store_true", help="print only dead letters and signals")
    args = parser.parse_args()

    bootstrap = args.bootstrap_servers
    # Every run is a new clinic on new topics: local table files of earlier runs are of no use.
    shutil.rmtree(STATE / ".faust-data", ignore_errors=True)
    ns = f"demo-{uuid.uuid4().hex[:6]}."
    print(f"{BOLD}Rapport demo{RESET} — broker {bootstrap}, topic namespace '{ns}'")
    wait_for_broker(bootstrap, timeout_s=60)
    apply_topics(bootstrap, partitions=3, namespace=ns)
    common = {"BOOTSTRAP_SERVERS": bootstrap, "TOPIC_NAMESPACE": ns, "PARTITIONS": "3"}
    procs: list[subprocess.Popen[bytes]] = []
    try:
        scoring = _start("services.scoring", "RAPPORT_SCORING_", {**common, "APP_ID": f"{ns}scoring"}, 6161)
        procs.append(scoring)
        monitor = _start("services.monitor", "RAPPORT_MONITOR_", {**common, "APP_ID": f"{ns}monitor"}, 6162)
        procs.append(monitor)
        _wait_ready("scoring", scoring, 6161)
        _wait_ready("monitor", monitor, 6162)
        print(
            "services ready: scoring (http://127.0.0.1:6161/metrics), monitor (http://127.0.0.1:6162/metrics)"
        )

        sim_env = {
            **os.environ,
            "RAPPORT_SIMULATOR_BOOTSTRAP_SERVERS": bootstrap,
            "RAPPORT_SIMULATOR_TOPIC_NAMESPACE": ns,
        }
        sim = subprocess.Popen(  # noqa: S603 - our own module, fixed arguments
            [
                sys.executable,
                "-m",
                "services.simulator",
                "--clinics",
                str(args.clinics),
                "--clients-per-clinician",
                str(args.clients_per_clinician),
                "--sessions",
                str(args.sessions),
                "--seed",
                str(args.seed),
                "--rate",
                str(args.rate),
                "--invalid-rate",
                "0.02",
            ],
            env=sim_env,
        )
        procs.append(sim)

        consumer = KafkaConsumer(
            *(topics.topic_name(t, ns) for t in (topics.SURVEY_SCORED, topics.DEAD_LETTER, topics.SIGNALS)),
            bootstrap_servers=bootstrap.split(","),
            group_id=f"{ns}demo-viewer",
            auto_offset_reset="earliest",
        )
        counts: Counter[str] = Counter()
        idle_since = time.monotonic()
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=500)
            for tp, records in batch.items():
                for rec in records:
                    value = json.loads(rec.value)
                    kind = tp.topic[len(ns) :].split(".")[1]
                    counts[kind] += 1
                    if kind == "survey-scored" and args.quiet_scores:
                        continue
                    print(_describe(tp.topic, value, ns), flush=True)
            if batch:
                idle_since = time.monotonic()
            elif sim.poll() is not None and time.monotonic() - idle_since > 8:
                break
        consumer.close()
        print(
            f"\n{BOLD}done{RESET}: {counts['survey-scored']} surveys scored, "
            f"{counts['dead-letter']} dead letters, {counts['signals']} signals. "
            "Service logs: .demo/*.log"
        )
        return 0 if sim.returncode == 0 else 1
    except KeyboardInterrupt:
        return 130
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    raise SystemExit(main())
