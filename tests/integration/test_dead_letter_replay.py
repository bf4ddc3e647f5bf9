"""`rapport dead-letters replay` on the real broker: a session the scoring service could not score
(an instrument it did not know) is replayed after the fix (the clinic's spec folder added) and
scored; the replay is recorded and a second run replays nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from shared.contracts import topics
from tests.support import consume, produce, running_service, session_event, t, values

pytestmark = pytest.mark.integration
CLINIC_SPECS = Path(__file__).resolve().parents[1] / "unit" / "instruments" / "fixtures" / "clinic"
OQ45 = {str(i): 1 for i in range(1, 46)}


def _cli(bootstrap: str, ns: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shared.cli", "dead-letters", "replay",
         "--bootstrap-servers", bootstrap, "--namespace", ns, *args],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_replay_after_a_fix_scores_the_session_once_and_is_recorded(
    kafka_bootstrap: str, ns: str, tmp_path: Path
) -> None:
    unknown = session_event(client="c-oq", surveys=(("OQ-45", OQ45),))
    known = session_event(client="c-phq")
    produce(
        kafka_bootstrap,
        t(ns, topics.SESSION_COMPLETED),
        [(b"c-oq", unknown.model_dump_json().encode()), (b"c-phq", known.model_dump_json().encode())],
    )
    with running_service("services.scoring", "RAPPORT_SCORING_", kafka_bootstrap, ns, tmp_path):
        dead = consume(kafka_bootstrap, t(ns, topics.DEAD_LETTER), expected=1)
        consume(kafka_bootstrap, t(ns, topics.SURVEY_SCORED), expected=1)
    assert [d["reason"] for d in values(dead)] == ["unknown_instrument"]

    dry = _cli(kafka_bootstrap, ns, "--reason", "unknown_instrument", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would replay 1 dead letters (1 original records)" in dry.stdout
    nothing_else = _cli(kafka_bootstrap, ns, "--reason", "schema_violation")
    assert "replayed 0 dead letters" in nothing_else.stdout, nothing_else.stdout + nothing_else.stderr

    done = _cli(kafka_bootstrap, ns, "--reason", "unknown_instrument")
    assert done.returncode == 0, done.stderr
    assert "replayed 1 dead letters (1 original records)" in done.stdout

    sessions = consume(kafka_bootstrap, t(ns, topics.SESSION_COMPLETED), expected=3)
    replayed = [r for r in sessions if r.headers]
    assert len(replayed) == 1 and replayed[0].key == b"c-oq"
    assert replayed[0].value == unknown.model_dump_json().encode(), "the original bytes, unchanged"
    assert dict(replayed[0].headers) == {"rapport-replay-of": json.loads(dead[0].value)["id"].encode()}
    ledger = values(consume(kafka_bootstrap, t(ns, topics.DEAD_LETTER_REPLAYS), expected=1))
    assert [(e["dead_letter_id"], e["replayed_offset"]) for e in ledger] == [
        (json.loads(dead[0].value)["id"], replayed[0].offset)
    ]

    again = _cli(kafka_bootstrap, ns, "--reason", "unknown_instrument")
    assert "replayed 0 dead letters" in again.stdout and "skipped 1 already replayed" in again.stdout

    # The fix: the clinic's spec folder. The scoring service picks up where it left off and scores
    # the replayed session; the session it had scored before is not read again.
    with running_service(
        "services.scoring", "RAPPORT_SCORING_", kafka_bootstrap, ns, tmp_path,
        instrument_dirs=json.dumps([str(CLINIC_SPECS)]),
    ):  # fmt: skip
        scored = consume(kafka_bootstrap, t(ns, topics.SURVEY_SCORED), expected=2)
    assert sorted(v["data"]["instrument"] for v in values(scored)) == ["OQ-45", "PHQ-9"]
