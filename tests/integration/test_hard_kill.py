"""Nothing lost after ``kill -9``: the regression tests of the monitor's hard-crash loss (faust-streaming
#596, aiokafka #1003; fixed in ``shared/runtime/transport.py``), and the same test for the scoring
service.

A worker is killed right after its first output while a backlog is queued and before it committed
any offset, then restarted (without local table files, as on another node, so its table is recovered
from the changelog) with a test-only fault that holds its post-recovery seek open until input records
sit in a stream buffer (the moment stock faust clears them). Every signal the offline rules
predict must be on the topic, and every client's stored trajectory must equal the offline one (a lost
input record shows there even when it raised no signal). Without the fix these fail on both stores.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults import MONITOR, SCORING, KillRun, kill_experiment

pytestmark = pytest.mark.integration


def _assert_nothing_lost(run: KillRun) -> None:
    assert "fault injection: seek returns" in run.logs, "the restarted worker ran with the seek fault"
    assert run.outputs_before_kill > 0, "killed after its first output"
    assert not run.committed_before_kill, "precondition of the defect: nothing committed before the kill"
    assert not run.lost, f"{len(run.lost)} of {run.expected} expected outputs lost: {run.summary()}"
    assert not run.extra, f"outputs the offline pipeline does not predict: {run.summary()}"


@pytest.mark.parametrize("seek_delay_s", [0.15, 1.2])
@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
def test_monitor_killed_early_in_a_backlog_loses_no_signal(
    kafka_bootstrap: str, tmp_path: Path, store: str, seek_delay_s: float
) -> None:
    run = kill_experiment(kafka_bootstrap, MONITOR, store=store, seek_delay_s=seek_delay_s, workdir=tmp_path)
    assert run.changelog_before_kill > 0, "precondition: the restart recovers a non-empty changelog"
    assert "Restoring state from changelog topics" in run.logs, "precondition: the table was recovered"
    _assert_nothing_lost(run)
    assert run.wrong_states == 0, f"trajectories differ from the offline rules: {run.summary()}"


def test_scoring_killed_early_in_a_backlog_loses_no_survey(kafka_bootstrap: str, tmp_path: Path) -> None:
    run = kill_experiment(kafka_bootstrap, SCORING, seek_delay_s=1.2, workdir=tmp_path)
    _assert_nothing_lost(run)
