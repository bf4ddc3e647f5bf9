"""The whole pipeline on a real broker: simulator → scoring → monitor → signals, nothing lost."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shared.contracts import topics
from shared.history.synthetic import SimulationConfig, generate_records
from shared.instruments import default_registry
from shared.pipeline.session import risk_signals, salvage_risk, score_raw_session
from shared.rules.config import default_rulebook
from shared.rules.live import evaluate
from tests.support import consume, running_service, t, values

pytestmark = pytest.mark.e2e
START = datetime(2026, 1, 5, tzinfo=UTC)
SEED = 31
# Four clinics: one of each type (PCOMS, IAPT, CORE, K10), so every packaged instrument flows.
CONFIG = SimulationConfig(
    clinics=4,
    clinicians_per_clinic=1,
    clients_per_clinician=4,
    sessions_min=8,
    sessions_max=8,
    invalid_rate=0.05,
)


def _expected() -> tuple[set[str], Counter[str], set[str]]:
    """What the pipeline must produce, computed offline with the same pure code."""
    registry, rules, now = default_registry(), default_rulebook(), START
    scored_ids: set[str] = set()
    reasons: Counter[str] = Counter()
    states: dict[str, object] = {}
    signal_ids: set[str] = set()
    for record in generate_records(CONFIG, SEED, START):
        session, outcome = score_raw_session(record.value, registry)
        reasons.update(r.reason for r in outcome.rejections)
        salvaged = salvage_risk(record.value, registry) if session is None else None
        if salvaged is not None and outcome.envelope_rejection is not None:
            # A risk answer in an invalid session event: scoring raises it itself. The simulator's
            # invalid events keep a valid id, so the signal id does not depend on the offset.
            assert salvaged.routing.session_id is not None
            signal_ids |= {
                str(s.id)
                for s in risk_signals(
                    salvaged, outcome.envelope_rejection, origin=("", 0, 0), now=now, source="rapport/scoring"
                )
            }
        for scored in outcome.events(registry, now=now, source="rapport/scoring"):
            scored_ids.add(str(scored.id))
            key = f"{scored.clinic_id}|{scored.data.client_id}"
            result = evaluate(states.get(key), scored, rules, now)  # type: ignore[arg-type]
            states[key] = result.state
            signal_ids |= {str(s.id) for s in result.signals}
    return scored_ids, reasons, signal_ids


def test_simulated_clinic_flows_end_to_end(kafka_bootstrap: str, ns: str, tmp_path: Path) -> None:
    scored_ids, reasons, signal_ids = _expected()
    assert signal_ids, "the cohort is built to raise signals"
    assert sum(reasons.values()) > 0, "the cohort carries invalid records"

    with (
        running_service("services.scoring", "RAPPORT_SCORING_", kafka_bootstrap, ns, tmp_path),
        running_service(
            "services.monitor", "RAPPORT_MONITOR_", kafka_bootstrap, ns, tmp_path, store="memory://"
        ),
    ):
        sim = subprocess.run(
            [
                sys.executable, "-m", "services.simulator",
                "--bootstrap-servers", kafka_bootstrap, "--topic-namespace", ns,
                "--seed", str(SEED), "--start", START.isoformat(),
                "--clinics", "4", "--clinicians-per-clinic", "1", "--clients-per-clinician", "4",
                "--sessions", "8", "--invalid-rate", "0.05", "--as-fast-as-possible",
            ],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert sim.returncode == 0, sim.stderr
        scored = consume(kafka_bootstrap, t(ns, topics.SURVEY_SCORED), len(scored_ids), timeout_s=120)
        dead = consume(kafka_bootstrap, t(ns, topics.DEAD_LETTER), sum(reasons.values()), timeout_s=60)
        signals = consume(kafka_bootstrap, t(ns, topics.SIGNALS), len(signal_ids), timeout_s=120)

    instruments = {v["data"]["instrument"] for v in values(scored)}
    assert instruments == {"SRS", "WAI-SR", "ORS", "PHQ-9", "GAD-7", "CORE-10", "K10"}
    got_scored = [v["id"] for v in values(scored)]
    assert len(got_scored) == len(set(got_scored)) == len(scored_ids)
    assert set(got_scored) == scored_ids, "every valid survey scored exactly once"
    assert Counter(v["reason"] for v in values(dead)) == reasons, "every invalid record dead-lettered"
    got_signals = [v["id"] for v in values(signals)]
    assert len(got_signals) == len(set(got_signals)), "no signal repeated"
    assert set(got_signals) == signal_ids, "live signals equal the offline rules over the same input"
    assert {v["data"]["kind"] for v in values(signals)} & {"critical_item", "alliance_drop",
        "outcome_reliable_deterioration", "outcome_not_on_track", "alliance_below_cutoff"}  # fmt: skip
