"""The scoring service on a real broker: scored events out, dead letters with reasons, nothing lost."""

from __future__ import annotations

import base64
import random
from pathlib import Path

import pytest

from shared.contracts import topics
from shared.contracts.events import DeadLetter, SurveyScored, derive_id
from shared.contracts.keys import subject_key
from tests.support import (
    PHQ9_MODERATE,
    consume,
    produce,
    running_service,
    session_event,
    t,
    values,
)

pytestmark = pytest.mark.integration
PREFIX = "RAPPORT_SCORING_"


def test_valid_session_yields_expected_scored_event(kafka_bootstrap: str, ns: str, tmp_path: Path) -> None:
    event = session_event(client="c-valid")
    with running_service("services.scoring", PREFIX, kafka_bootstrap, ns, tmp_path) as svc:
        record = (b"other-key", event.model_dump_json().encode())
        produce(kafka_bootstrap, t(ns, topics.SESSION_COMPLETED), [record])
        records = consume(kafka_bootstrap, t(ns, topics.SURVEY_SCORED), expected=1)
        metrics = svc.get("/metrics")[1]
        assert svc.get("/healthz")[0] == 200

    assert len(records) == 1, "exactly one scored event per survey"
    assert records[0].key == subject_key("clinic-01", "c-valid"), "keyed by the subject, not the input key"
    scored = SurveyScored.model_validate_json(records[0].value)
    assert scored.id == derive_id(event.id, "survey-scored", "PHQ-9")
    assert scored.correlation_id == event.id
    assert scored.data.instrument == "PHQ-9"
    assert scored.data.total == 11
    assert scored.data.band == "moderate"
    assert scored.data.concern is True
    assert scored.data.critical_items == []
    assert scored.data.session_number == 1
    assert 'rapport_scoring_sessions_total{outcome="scored"} 1.0' in metrics
    assert 'rapport_scoring_surveys_scored_total{instrument="PHQ-9"} 1.0' in metrics
    assert "rapport_scoring_consumer_lag_messages{" in metrics
    assert "rapport_scoring_ready 1.0" in metrics
    assert "rapport_scoring_broker_unreachable_seconds 0.0" in metrics
    assert "process_start_time_seconds " in metrics


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\xff\xfe not json", "undecodable"),
        (b'{"id": "not-a-uuid", "type": "rapport.session.completed"}', "schema_violation"),
    ],
)
def test_malformed_event_is_dead_lettered_with_reason(
    kafka_bootstrap: str, ns: str, tmp_path: Path, raw: bytes, reason: str
) -> None:
    good = session_event(client="c-after")
    with running_service("services.scoring", PREFIX, kafka_bootstrap, ns, tmp_path) as svc:
        produce(
            kafka_bootstrap,
            t(ns, topics.SESSION_COMPLETED),
            [(b"c-bad", raw), (b"c-after", good.model_dump_json().encode())],
        )
        dead = consume(kafka_bootstrap, t(ns, topics.DEAD_LETTER), expected=1)
        scored = consume(kafka_bootstrap, t(ns, topics.SURVEY_SCORED), expected=1)
        metrics = svc.get("/metrics")[1]

    assert len(dead) == 1
    record = DeadLetter.model_validate_json(dead[0].value)
    assert record.reason == reason
    assert record.stage == "scoring"
    assert base64.b64decode(record.original_value_b64) == raw, "original bytes kept whole"
    assert record.original_topic == t(ns, topics.SESSION_COMPLETED)
    assert dead[0].key == b"c-bad"
    assert len(scored) == 1, "the valid event after the bad one still flows"
    assert f'rapport_scoring_dead_letters_total{{reason="{reason}"}} 1.0' in metrics


def test_one_unscorable_survey_does_not_block_its_siblings(
    kafka_bootstrap: str, ns: str, tmp_path: Path
) -> None:
    event = session_event(
        client="c-mixed",
        surveys=(("PHQ-9", PHQ9_MODERATE), ("GAD-7", {str(i): 9 for i in range(1, 8)})),
    )
    with running_service("services.scoring", PREFIX, kafka_bootstrap, ns, tmp_path):
        produce(
            kafka_bootstrap, t(ns, topics.SESSION_COMPLETED), [(b"c-mixed", event.model_dump_json().encode())]
        )
        scored = consume(kafka_bootstrap, t(ns, topics.SURVEY_SCORED), expected=1)
        dead = consume(kafka_bootstrap, t(ns, topics.DEAD_LETTER), expected=1)

    assert [v["data"]["instrument"] for v in values(scored)] == ["PHQ-9"]
    assert len(dead) == 1
    record = DeadLetter.model_validate_json(dead[0].value)
    assert (record.reason, record.instrument) == ("out_of_range_answer", "GAD-7")
    assert "9" not in record.detail.replace("GAD-7", ""), "no answer values in the detail"


def test_burst_of_mixed_events_loses_nothing(kafka_bootstrap: str, ns: str, tmp_path: Path) -> None:
    rng = random.Random(20261125)
    records: list[tuple[bytes, bytes]] = []
    expected_ids: set[str] = set()
    expected_reasons: dict[str, int] = {}
    for i in range(1000):
        client = f"c-{i % 97:03d}"
        kind = rng.choices(["valid", "undecodable", "schema", "unknown", "range"], weights=[70, 8, 8, 7, 7])[
            0
        ]
        if kind == "valid":
            answers = {str(k): rng.randint(0, 3) for k in range(1, 10)}
            event = session_event(client=client, episode=f"ep-{i}", surveys=(("PHQ-9", answers),))
            records.append((client.encode(), event.model_dump_json().encode()))
            expected_ids.add(str(derive_id(event.id, "survey-scored", "PHQ-9")))
            continue
        if kind == "undecodable":
            raw, reason = b"{truncated", "undecodable"
        elif kind == "schema":
            raw, reason = b'{"type": "rapport.session.completed", "data": {}}', "schema_violation"
        elif kind == "unknown":
            event = session_event(client=client, episode=f"ep-{i}", surveys=(("XYZ-1", {"1": 1}),))
            raw, reason = event.model_dump_json().encode(), "unknown_instrument"
        else:
            event = session_event(
                client=client, episode=f"ep-{i}", surveys=(("PHQ-9", {**PHQ9_MODERATE, "4": 7}),)
            )
            raw, reason = event.model_dump_json().encode(), "out_of_range_answer"
        records.append((client.encode(), raw))
        expected_reasons[reason] = expected_reasons.get(reason, 0) + 1

    n_dead = sum(expected_reasons.values())
    with running_service("services.scoring", PREFIX, kafka_bootstrap, ns, tmp_path) as svc:
        produce(kafka_bootstrap, t(ns, topics.SESSION_COMPLETED), records)
        scored = consume(
            kafka_bootstrap, t(ns, topics.SURVEY_SCORED), expected=len(expected_ids), timeout_s=180
        )
        dead = consume(kafka_bootstrap, t(ns, topics.DEAD_LETTER), expected=n_dead, timeout_s=60)
        assert svc.proc is not None and svc.proc.poll() is None, "the worker never crashed"

    scored_ids = [v["id"] for v in values(scored)]
    assert len(scored_ids) == len(set(scored_ids)), "every valid event scored exactly once"
    assert set(scored_ids) == expected_ids, "no valid event lost"
    got_reasons: dict[str, int] = {}
    for v in values(dead):
        got_reasons[v["reason"]] = got_reasons.get(v["reason"], 0) + 1
    assert got_reasons == expected_reasons, "every invalid event dead-lettered once, right reason"


def test_risk_answers_in_bad_envelopes_reach_the_signals_topic(
    kafka_bootstrap: str, ns: str, tmp_path: Path
) -> None:
    """PHQ-9 item 9 = 3 in session events that each fail validation on one unrelated envelope field."""
    import json

    def broken(client: str, **fields: object) -> bytes:
        event = session_event(client=client, surveys=(("PHQ-9", {**PHQ9_MODERATE, "9": 3}),))
        doc = json.loads(event.model_dump_json())
        for path, value in fields.items():
            node = doc
            *parents, last = path.split("__")
            for part in parents:
                node = node[part]
            node[last] = value
        return json.dumps(doc).encode()

    records = [
        (b"k1", broken("c-time", time="yesterday")),
        (b"k2", broken("c-uni", subject="ünï 😀", data__client_id="ünï 😀")),
        (b"k3", broken("c-session", data__session_number=0)),
        (b"k4", broken("c-bytes").replace(b'"clin-01"', b'"clin-\xff"')),
        (b"k5", broken("c-noclinic", clinic_id="ünï 😀")),
    ]
    with running_service("services.scoring", PREFIX, kafka_bootstrap, ns, tmp_path) as svc:
        produce(kafka_bootstrap, t(ns, topics.SESSION_COMPLETED), records)
        signals = consume(kafka_bootstrap, t(ns, topics.SIGNALS), expected=4)
        dead = consume(kafka_bootstrap, t(ns, topics.DEAD_LETTER), expected=5)
        metrics = svc.get("/metrics")[1]

    got = {v["data"]["client_id"]: v for v in values(signals)}
    assert set(got) == {"c-time", None, "c-session", "c-bytes"}, "four routed critical_item signals"
    assert all(v["data"]["kind"] == "critical_item" and v["clinic_id"] == "clinic-01" for v in got.values())
    assert got["c-session"]["data"]["session_number"] is None
    assert got["c-bytes"]["data"]["clinician_id"] is None
    assert got[None]["data"]["clinician_id"] == "clin-01", "the other fields still route the signal"
    letters = [DeadLetter.model_validate_json(r.value) for r in dead]
    for d in letters:
        assert d.risk_endorsed and [(r.instrument, r.item) for r in d.risk_items] == [("PHQ-9", "9")]
    assert "rapport_scoring_unroutable_risk_total 1.0" in metrics
    assert 'rapport_scoring_risk_signals_total{instrument="PHQ-9"} 4.0' in metrics
    for d in letters:
        assert "ünï" not in d.detail and "yesterday" not in d.detail
