"""The monitor service's pure handler: stored state in, new state and signals out."""

from __future__ import annotations

from typing import Any

from services.monitor.handlers import decode_scored, state_key, track
from shared.contracts.deadletters import Rejection
from shared.rules.config import default_rulebook
from shared.rules.trajectory import ClientState
from tests.support import PHQ9_MODERATE, T0, scored_events, session_event, srs

RULES = default_rulebook()


def test_state_round_trips_through_the_table_format_and_redelivery_is_silent() -> None:
    answers = {**PHQ9_MODERATE, "9": 2}
    (event,) = scored_events(session_event(client="c-9", surveys=(("PHQ-9", answers),)))
    first = track(event, None, RULES, T0)
    assert [s.data.kind for s in first.signals] == ["critical_item"]
    assert first.state is not None and first.change == "appended"
    stored = ClientState.from_json(first.state.to_json())
    assert stored == first.state
    again = track(event, stored, RULES, T0)
    assert again.signals == () and again.state is None and again.change == "unchanged"


def test_keys_are_scoped_by_clinic() -> None:
    (a,) = scored_events(session_event(client="c-1", clinic="clinic-a", surveys=(("SRS", srs(38)),)))
    (b,) = scored_events(session_event(client="c-1", clinic="clinic-b", surveys=(("SRS", srs(38)),)))
    assert state_key(a) != state_key(b)


def test_undecodable_scored_record_is_a_rejection() -> None:
    assert isinstance(decode_scored(b"nope"), Rejection)
    assert decode_scored(b"nope").reason == "undecodable"  # type: ignore[union-attr]


def test_risk_item_of_an_unscorable_survey_raises_a_critical_signal_once() -> None:
    from shared.instruments import default_registry
    from shared.pipeline.session import score_raw_session

    event = session_event(client="c-r", surveys=(("PHQ-9", {"1": 1, "2": 2, "9": 3}),))
    _session, scores = score_raw_session(event.model_dump_json().encode(), default_registry())
    (scored,) = scores.events(default_registry(), now=T0, source="test")
    first = track(scored, None, RULES, T0)
    assert [(s.data.kind, s.data.severity) for s in first.signals] == [("critical_item", "critical")]
    assert "not scorable" in first.signals[0].data.explanation
    assert first.change == "risk_only" and first.state is not None
    again = track(scored, first.state, RULES, T0)
    assert again.signals == (), "redelivery raises nothing"


def test_the_session_events_time_travels_to_the_scores_and_the_signals_it_raises() -> None:
    """Where the notifier's session → alert latency starts: the SessionCompleted envelope's time,
    also on a signal about an earlier session that a late arrival raises."""
    from datetime import timedelta

    from shared.instruments import default_registry
    from shared.pipeline.session import score_raw_session

    def scored(n: int, answers: dict[str, int], sent_at_offset_s: float) -> Any:
        event = session_event(client="c-t", session_number=n, surveys=(("PHQ-9", answers),))
        event = event.model_copy(update={"time": event.time + timedelta(seconds=sent_at_offset_s)})
        _s, scores = score_raw_session(event.model_dump_json().encode(), default_registry())
        (out,) = scores.events(default_registry(), now=T0, source="test")
        assert out.data.session_event_time == event.time
        return out

    low = {str(i): 0 for i in range(1, 10)}
    high = {**{str(i): 3 for i in range(1, 9)}, "9": 0}
    late = scored(2, high, 3600)
    first = track(late, None, RULES, T0)
    assert first.signals == ()
    intake = scored(1, low, 7200)  # intake arrives last: session 2 is now a reliable deterioration
    second = track(intake, first.state, RULES, T0)
    assert second.signals, "the late intake makes session 2 a reliable deterioration"
    assert {s.data.session_number for s in second.signals} == {2}
    assert {s.data.session_event_time for s in second.signals} == {intake.data.session_event_time}
