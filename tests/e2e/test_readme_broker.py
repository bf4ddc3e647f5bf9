"""The README's broker commands, exactly as written, on the test broker; and the demo's clean-up.

The commands come from the README itself (``tests/readme_commands.py``). The test points them at the
session's broker through the environment a user would set: ``KAFKA_BOOTSTRAP_SERVERS``,
``RAPPORT_*_WEB_PORT`` and ``RAPPORT_TOPIC_NAMESPACE``.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shared.contracts.topics import CATALOGUE, topic_name
from shared.runtime.provisioning import delete_namespace
from tests.readme_commands import ROOT, base, broker_commands
from tests.support import free_port, namespace, provision

pytestmark = pytest.mark.e2e


def _topics(bootstrap: str) -> set[str]:
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","))
    try:
        return set(admin.list_topics())
    finally:
        admin.close()


def _groups(bootstrap: str, prefix: str) -> set[str]:
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","))
    try:
        return {g["group_id"] for g in admin.list_groups() if g["group_id"].startswith(prefix)}
    finally:
        admin.close()


def _env(bootstrap: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAPPORT_") and k != "NO_COLOR"}
    return {**env, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, **extra}


def _command(name: str) -> str:
    return next(c for c in broker_commands() if base(c) == name)


def test_make_demo_as_written_shows_every_designed_case_and_leaves_no_topic(kafka_bootstrap: str) -> None:
    scoring_port, monitor_port = free_port(), free_port()
    notifier_port, inbox_port = free_port(), free_port()
    before = _topics(kafka_bootstrap)
    result = subprocess.run(
        ["bash", "-o", "pipefail", "-c", _command("make demo")],
        cwd=ROOT,
        env=_env(
            kafka_bootstrap,
            RAPPORT_SCORING_WEB_PORT=str(scoring_port),
            RAPPORT_MONITOR_WEB_PORT=str(monitor_port),
            RAPPORT_NOTIFIER_WEB_PORT=str(notifier_port),
            RAPPORT_INBOX_WEB_PORT=str(inbox_port),
        ),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    out = result.stdout
    assert result.returncode == 0, f"make demo failed:\n{out[-4000:]}\n{result.stderr[-4000:]}"
    assert f"broker {kafka_bootstrap}," in out
    assert (
        f"http://127.0.0.1:{scoring_port}/metrics" in out
        and f"http://127.0.0.1:{monitor_port}/metrics" in out
    )
    assert "\x1b[" not in out, "no colour when the output is not a terminal"
    summary = out[out.index("signals by kind:") :]
    for kind in ("critical_item", "outcome_reliable_deterioration", "alliance_drop", "alliance_repaired"):
        assert re.search(rf"^  {kind} +\d+$", summary, re.MULTILINE), kind
    assert summary.count(" seen: ") == 4 and "NOT SEEN" not in summary
    # The risk answer reached a clinician: a signed webhook, an email, an escalation, the inbox.
    hooks = re.search(r"webhooks received (\d+) \((\d+) with a valid Standard Webhooks signature\)", summary)
    assert hooks is not None and int(hooks.group(1)) >= 1 and hooks.group(1) == hooks.group(2)
    assert re.search(r"emails received +[1-9]", summary)
    assert "critical ESCALATED to supervisor" in out
    assert f"http://127.0.0.1:{inbox_port}/alerts — log in as demo" in summary
    ns = re.search(r"topic namespace '(demo-[0-9a-f]{6}\.)'", out)
    assert ns is not None
    after = _topics(kafka_bootstrap)
    assert {t for t in after if t.startswith(ns.group(1))} == set(), "the demo deleted its topics"
    assert after - before == set(), "the demo left no topic behind"
    assert _groups(kafka_bootstrap, ns.group(1)) == set(), "nor a consumer group"
    assert not list((ROOT / ".demo" / "runs").glob(f"{ns.group(1).rstrip('.')}.json"))


def test_make_demo_down_cleans_up_after_a_killed_demo(kafka_bootstrap: str) -> None:
    env = _env(
        kafka_bootstrap, RAPPORT_SCORING_WEB_PORT=str(free_port()), RAPPORT_MONITOR_WEB_PORT=str(free_port())
    )
    (ROOT / ".demo").mkdir(exist_ok=True)
    log = ROOT / ".demo" / "killed-demo.out"
    with log.open("w") as fh:
        demo = subprocess.Popen(
            [sys.executable, "deploy/demo.py", "--quiet-scores"],
            cwd=ROOT,
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 180
        while "services ready" not in log.read_text() and time.monotonic() < deadline:
            assert demo.poll() is None, log.read_text()
            time.sleep(0.5)
        assert "services ready" in log.read_text(), log.read_text()
        ns = re.search(r"topic namespace '(demo-[0-9a-f]{6}\.)'", log.read_text())
        assert ns is not None
        demo.send_signal(signal.SIGKILL)  # no clean-up of its own
        demo.wait(timeout=30)
    finally:
        if demo.poll() is None:
            demo.kill()
    assert {t for t in _topics(kafka_bootstrap) if t.startswith(ns.group(1))}, "the killed demo left topics"
    # With KAFKA_BOOTSTRAP_SERVERS set, demo-down never stops a broker (nor does make demo start one).
    down = subprocess.run(
        ["make", "demo-down"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert down.returncode == 0, down.stdout + down.stderr
    assert {t for t in _topics(kafka_bootstrap) if t.startswith(ns.group(1))} == set()
    assert _groups(kafka_bootstrap, ns.group(1)) == set()
    # Its services were stopped (they die with the demo, and demo-down stops any that did not).
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and _service_processes(ns.group(1)):
        time.sleep(0.5)
    assert _service_processes(ns.group(1)) == []


def _service_processes(ns: str) -> list[int]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/environ"):
        try:
            if f"TOPIC_NAMESPACE={ns}".encode() in cmdline.read_bytes():
                found.append(int(cmdline.parent.name))
        except OSError:
            continue
    return found


def test_topics_apply_as_written(kafka_bootstrap: str) -> None:
    ns = namespace()
    try:
        result = subprocess.run(
            ["bash", "-o", "pipefail", "-c", _command(".venv/bin/rapport topics apply --partitions 24")],
            cwd=ROOT,
            env=_env(kafka_bootstrap, RAPPORT_TOPIC_NAMESPACE=ns),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert len(lines) == len(CATALOGUE)
        for spec, line in zip(CATALOGUE, lines, strict=True):
            assert line.split() == ["created", topic_name(spec.name, ns), "(24", "partitions)"]
    finally:
        delete_namespace(kafka_bootstrap, ns)


def _wait_visible(bootstrap: str, names: list[str], timeout_s: float = 30.0) -> None:
    """Until a fresh consumer's metadata shows every topic (just created topics take a moment)."""
    from kafka import KafkaConsumer

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(","), group_id=None)
        try:
            if all(consumer.partitions_for_topic(n) for n in names):
                return
        finally:
            consumer.close()
        time.sleep(0.5)
    raise TimeoutError(f"topics not visible after {timeout_s}s: {names}")


def test_dead_letter_replay_dry_run_as_written(kafka_bootstrap: str) -> None:
    ns = namespace()
    provision(kafka_bootstrap, ns)
    _wait_visible(kafka_bootstrap, [topic_name(spec.name, ns) for spec in CATALOGUE])
    try:
        result = subprocess.run(
            [
                "bash",
                "-o",
                "pipefail",
                "-c",
                _command(".venv/bin/rapport dead-letters replay --reason unknown_instrument --dry-run"),
            ],
            cwd=ROOT,
            env=_env(kafka_bootstrap, RAPPORT_TOPIC_NAMESPACE=ns),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("would replay 0 dead letters (0 original records)")
    finally:
        delete_namespace(kafka_bootstrap, ns)
