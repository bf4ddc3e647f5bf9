"""Operations on the real broker with a real Prometheus (Debian's ``prometheus`` package): it scrapes
every service, the canary's probes come through, and stopping the monitor fires the
stalled-pipeline alert from the production rule file (its threshold and ``for:`` shortened so the
test stays bounded).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import free_port, running_service

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "rules" / "rapport.yml"
STALLED = "RapportPipelineStalled"


def _rules_for_the_stalled_pipeline(tmp_path: Path) -> Path:
    """The production rule file with the stalled-pipeline alert shortened: 15 s without a canary
    success, for 3 s. Everything else is unchanged."""
    doc = yaml.safe_load(RULES.read_text())
    found = 0
    for group in doc["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == STALLED:
                rule["expr"], n = re.subn(r">\s*600\b", "> 15", rule["expr"])
                assert n == 1, f"{STALLED} no longer compares with 600 s: {rule['expr']}"
                rule["for"] = "3s"
                found += 1
    assert found == 1, f"{STALLED} missing from {RULES}"
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as r:  # noqa: S310 - http on loopback
        return json.loads(r.read())


def _wait(what: str, check: Callable[[], Any], timeout_s: float, explain: Callable[[], str]) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            got = check()
        except OSError:
            got = None
        if got:
            return got
        time.sleep(1)
    raise AssertionError(f"{what} not seen within {timeout_s:.0f}s\n{explain()}")


@pytest.fixture
def prometheus_binary() -> str:
    found = shutil.which("prometheus")
    if found is None:
        pytest.fail("the prometheus binary is missing: apt-get install prometheus (.ci/run installs it)")
    return found


@pytest.fixture
def prometheus(prometheus_binary: str, tmp_path: Path) -> Iterator[Callable[[dict[str, int]], str]]:
    """Starts Prometheus on a free port scraping the given ``{job: port}`` every second."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(targets: dict[str, int]) -> str:
        port = free_port()
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(_rules_for_the_stalled_pipeline(tmp_path))],
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": [f"127.0.0.1:{p}"]}]}
                for job, p in targets.items()
            ],
        }
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
        log = (tmp_path / "prometheus.log").open("wb")
        procs.append(
            subprocess.Popen(
                [
                    prometheus_binary,
                    f"--config.file={tmp_path / 'prometheus.yml'}",
                    f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        base = f"http://127.0.0.1:{port}"

        def ready() -> bool:
            with urllib.request.urlopen(f"{base}/-/ready", timeout=3) as r:  # noqa: S310
                return r.status == 200

        _wait("Prometheus ready", ready, 60, lambda: (tmp_path / "prometheus.log").read_text()[-3000:])
        return base

    yield start
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _query(base: str, expr: str) -> list[dict[str, Any]]:
    body = _get(f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def _alert_states(base: str) -> dict[str, str]:
    return {a["labels"]["alertname"]: a["state"] for a in _get(f"{base}/api/v1/alerts")["data"]["alerts"]}


def test_prometheus_scrapes_every_service_sees_the_canary_and_fires_stalled_when_monitor_stops(
    kafka_bootstrap: str, ns: str, tmp_path: Path, prometheus: Callable[[dict[str, int]], str]
) -> None:
    with (
        running_service("services.scoring", "RAPPORT_SCORING_", kafka_bootstrap, ns, tmp_path) as scoring,
        running_service(
            "services.monitor", "RAPPORT_MONITOR_", kafka_bootstrap, ns, tmp_path, store="memory://"
        ) as monitor,
        running_service(
            "services.notifier",
            "RAPPORT_NOTIFIER_",
            kafka_bootstrap,
            ns,
            tmp_path,
            store="memory://",
            dispatch_interval_s="0.1",
        ) as notifier,  # fmt: skip
        running_service(
            "services.canary",
            "RAPPORT_CANARY_",
            kafka_bootstrap,
            ns,
            tmp_path,
            interval_s="1",
            timeout_s="60",
        ) as canary,  # fmt: skip
    ):
        base = prometheus(
            {
                "scoring": scoring.port,
                "monitor": monitor.port,
                "notifier": notifier.port,
                "canary": canary.port,
            }
        )

        def targets() -> str:
            return json.dumps(_get(f"{base}/api/v1/targets")["data"]["activeTargets"], indent=1)[-4000:]

        def all_up() -> bool:
            up = {r["metric"]["job"]: r["value"][1] for r in _query(base, "up")}
            return up == {"scoring": "1", "monitor": "1", "notifier": "1", "canary": "1"}

        _wait("every service scraped and up", all_up, 60, targets)

        # The canary's probes come through scoring, the monitor and the notifier (its null channel).
        def canary_succeeds() -> bool:
            ok = _query(base, 'rapport_canary_probes_total{outcome="succeeded"} > 2')
            recent = _query(base, "time() - rapport_canary_last_success_timestamp_seconds < 10")
            return bool(ok and recent)

        _wait("canary successes", canary_succeeds, 90, canary.logs)
        assert _query(base, 'rapport_canary_latency_seconds_count{stage="signal"} > 0')
        assert _query(base, 'rapport_canary_latency_seconds_count{stage="alerted"} > 0')
        assert _query(
            base, 'rapport_notifier_delivery_attempts_total{channel="null",outcome="delivered"} > 0'
        )
        closed = 'rapport_notifier_alerts_total{kind="critical_item",outcome="acknowledged"} > 0'
        assert _query(base, closed), "canary alerts close on delivery"
        # ...and never page as a critical alert nobody acknowledged.
        assert _query(base, "rapport_notifier_oldest_unacked_critical_seconds == 0")
        assert _query(base, 'rapport_scoring_sessions_total{outcome!=""} > 0'), "scoring scraped"
        assert _query(base, 'rapport_monitor_signals_total{kind="critical_item"} > 0'), "monitor scraped"
        assert _alert_states(base).get(STALLED) is None, "stalled while the pipeline flows"

        monitor.stop()
        assert monitor.proc is not None and monitor.proc.returncode == 0, monitor.logs()

        def stalled_fires() -> bool:
            return _alert_states(base).get(STALLED) == "firing"

        _wait(f"{STALLED} firing", stalled_fires, 90, lambda: json.dumps(_alert_states(base)))
        # The canary still runs and its sends still work: it is the signals that stopped.
        assert _query(base, "rapport_canary_pending_probes > 0")
