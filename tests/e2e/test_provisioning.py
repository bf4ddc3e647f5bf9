"""The README's provisioning steps, followed as written, give a working pipeline: `rapport topics apply
--partitions 24`, then the services with their default settings (no partition setting exists: they
read the counts from the broker)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from shared.contracts import topics
from tests.support import (
    PHQ9_MODERATE,
    consume,
    namespace,
    produce,
    running_service,
    session_event,
    t,
    values,
)

pytestmark = pytest.mark.e2e


def test_readme_provisioning_with_24_partitions_gives_a_working_pipeline(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    ns = namespace()
    apply = subprocess.run(
        [sys.executable, "-m", "shared.cli", "topics", "apply", "--partitions", "24",
         "--bootstrap-servers", kafka_bootstrap, "--namespace", ns],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert apply.returncode == 0, apply.stderr
    assert f"created  {t(ns, topics.SURVEY_SCORED)} (24 partitions)" in apply.stdout
    event = session_event(client="c-readme", surveys=(("PHQ-9", {**PHQ9_MODERATE, "9": 2}),))
    with (
        running_service("services.scoring", "RAPPORT_SCORING_", kafka_bootstrap, ns, tmp_path) as scoring,
        running_service("services.monitor", "RAPPORT_MONITOR_", kafka_bootstrap, ns, tmp_path) as monitor,
    ):
        record = (b"c-readme", event.model_dump_json().encode())
        produce(kafka_bootstrap, t(ns, topics.SESSION_COMPLETED), [record])
        signals = consume(kafka_bootstrap, t(ns, topics.SIGNALS), expected=1, timeout_s=90)
        for svc in (scoring, monitor):
            assert svc.get("/readyz")[0] == 200
        monitor_logs = monitor.log_path.read_text()
    assert [v["data"]["kind"] for v in values(signals)] == ["critical_item"]
    assert "PartitionsMismatch" not in monitor_logs
    assert '"count":24' in monitor_logs, "the monitor read 24 partitions from the broker"
