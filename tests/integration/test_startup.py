"""Startup on the real broker: partition counts come from the broker; a disagreeing topic or a taken
web port is one clear error and a non-zero exit, never a crash loop."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from shared.contracts import topics
from shared.runtime.startup import EXIT_CONFIG
from tests.faults import create_changelog
from tests.support import ServiceProcess, free_port, namespace, t

pytestmark = pytest.mark.integration


def _run_to_exit(module: str, prefix: str, env: dict[str, str], tmp_path: Path) -> tuple[int, str]:
    port = int(env.get(f"{prefix}WEB_PORT") or free_port())
    service = ServiceProcess(module, {f"{prefix}WEB_PORT": str(port), **env}, port, tmp_path / "svc.log")
    service.spawn()
    assert service.proc is not None
    try:
        code = service.proc.wait(timeout=90)
    except subprocess.TimeoutExpired:
        service.stop()
        pytest.fail(f"{module} kept running instead of refusing to start:\n{service.logs()}")
    return code, service.log_path.read_text()


def test_a_changelog_with_another_partition_count_stops_the_monitor_with_both_topics_named(
    kafka_bootstrap: str, ns: str, tmp_path: Path
) -> None:
    app_id = f"monitor-{ns.rstrip('.')}"
    changelog = f"{app_id}-trajectories-changelog"
    create_changelog(kafka_bootstrap, changelog, partitions=2)  # left over from an older provisioning
    env = {
        "RAPPORT_MONITOR_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "RAPPORT_MONITOR_APP_ID": app_id,
        "RAPPORT_MONITOR_TOPIC_NAMESPACE": ns,
        "RAPPORT_MONITOR_STORE": "memory://",
    }
    code, logs = _run_to_exit("services.monitor", "RAPPORT_MONITOR_", env, tmp_path)
    assert code == EXIT_CONFIG
    assert f"input topic '{t(ns, topics.SURVEY_SCORED)}' has 3 partitions" in logs
    assert f"changelog topic '{changelog}' has 2 partitions" in logs
    assert logs.count("cannot start") == 1, "one clear line, no retry loop"
    assert "PartitionsMismatch" not in logs, "caught before faust starts"


def test_an_unprovisioned_namespace_is_a_clear_startup_error(kafka_bootstrap: str, tmp_path: Path) -> None:
    ns = namespace()  # no topics created
    env = {"RAPPORT_SCORING_BOOTSTRAP_SERVERS": kafka_bootstrap, "RAPPORT_SCORING_TOPIC_NAMESPACE": ns}
    code, logs = _run_to_exit("services.scoring", "RAPPORT_SCORING_", env, tmp_path)
    assert code == EXIT_CONFIG
    assert f"input topic '{t(ns, topics.SESSION_COMPLETED)}' does not exist" in logs
    assert "rapport topics apply" in logs


def test_a_taken_web_port_exits_with_a_message_naming_the_port(
    kafka_bootstrap: str, ns: str, tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {
            "RAPPORT_SCORING_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "RAPPORT_SCORING_TOPIC_NAMESPACE": ns,
            "RAPPORT_SCORING_WEB_PORT": str(port),
        }
        code, logs = _run_to_exit("services.scoring", "RAPPORT_SCORING_", env, tmp_path)
    assert code == EXIT_CONFIG
    assert f"web port {port} on 127.0.0.1 is already in use" in logs
    assert "RAPPORT_SCORING_WEB_PORT" in logs
    assert "'OSError'" not in logs
