"""Which dead letters a replay picks: by reason, stage and topic; never truncated ones; never twice
by accident (already replayed, or a dead letter of a record a replay published)."""

from __future__ import annotations

from datetime import UTC, datetime

from shared.contracts.deadletters import Rejection, build_dead_letter
from shared.contracts.events import MAX_DEAD_LETTER_VALUE, DeadLetter, DeadLetterReason
from shared.runtime.replay import Ledger, replay_record, select

NOW = datetime(2026, 3, 2, tzinfo=UTC)


def letter(
    offset: int,
    reason: DeadLetterReason = "unknown_instrument",
    *,
    stage: str = "scoring",
    topic: str = "rapport.session-completed.v1",
    instrument: str | None = None,
    value: bytes = b"{}",
) -> DeadLetter:
    return build_dead_letter(
        Rejection(reason, "x", instrument),
        stage=stage,
        key=b"c-1",
        value=value,
        topic=topic,
        partition=0,
        offset=offset,
        now=NOW,
    )


def test_selects_by_reason_stage_and_source_topic() -> None:
    letters = [
        letter(1),
        letter(2, "schema_violation"),
        letter(3, stage="monitor", topic="rapport.survey-scored.v1"),
        letter(4, "processing_error"),
    ]
    chosen = select(letters, Ledger(), reasons=["unknown_instrument", "processing_error"])
    assert sorted(o for _t, _p, o in chosen.groups) == [1, 3, 4]
    assert chosen.skipped["not_selected"] == 1
    only_scoring = select(letters, Ledger(), reasons=["unknown_instrument"], stages=["scoring"])
    assert [o for _t, _p, o in only_scoring.groups] == [1]
    by_topic = select(
        letters, Ledger(), reasons=["unknown_instrument"], source_topics=["rapport.survey-scored.v1"]
    )
    assert [o for _t, _p, o in by_topic.groups] == [3]


def test_dead_letters_of_one_record_form_one_group_and_redeliveries_count_once() -> None:
    a = letter(7, "unknown_item", instrument="PHQ-9")
    b = letter(7, "out_of_range_answer", instrument="GAD-7")
    chosen = select([a, b, a], Ledger(), reasons=["unknown_item", "out_of_range_answer"])
    assert list(chosen.groups) == [("rapport.session-completed.v1", 0, 7)]
    assert chosen.groups[("rapport.session-completed.v1", 0, 7)] == [a, b]
    assert chosen.letters == 2


def test_truncated_originals_are_never_replayed() -> None:
    big = letter(1, value=b"x" * (MAX_DEAD_LETTER_VALUE + 1))
    chosen = select([big], Ledger(), reasons=["unknown_instrument"], again=True)
    assert chosen.groups == {} and chosen.skipped["truncated"] == 1


def test_replays_are_not_replayed_twice_unless_asked() -> None:
    first = letter(1)
    done = replay_record(first, "rapport.session-completed.v1", 2, 40, NOW)
    ledger = Ledger.of([done])
    # The replayed record failed again: its dead letter points at the replay's output.
    failed_again = letter(40)
    failed_again = failed_again.model_copy(update={"original_partition": 2})
    fresh = letter(2)
    chosen = select([first, failed_again, fresh], ledger, reasons=["unknown_instrument"])
    assert [o for _t, _p, o in chosen.groups] == [2]
    assert chosen.skipped["already_replayed"] == 1
    assert chosen.skipped["failed_after_replay"] == 1
    forced = select([first, failed_again, fresh], ledger, reasons=["unknown_instrument"], again=True)
    assert forced.letters == 3


def test_replay_record_id_is_deterministic() -> None:
    a = letter(1)
    assert replay_record(a, "t", 0, 1, NOW).id == replay_record(a, "t", 5, 9, NOW).id
    assert replay_record(a, "t", 0, 1, NOW).dead_letter_id == a.id
