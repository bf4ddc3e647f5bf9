"""The trajectory model: session order, the arrival policy, bounds and the JSON form."""

from __future__ import annotations

import json

import pytest

from shared.rules import MAX_EPISODES, MAX_OBSERVATIONS, ClientState, Observation, insert_observation
from shared.rules.live import evaluate
from tests.unit.rules.factories import NOW, PHQ9, SRS, ruleset, scored


def _obs(session: int, total: float, event: str = "", **kw: object) -> Observation:
    return Observation(session=session, total=total, event_id=event or f"ev{session}-{total}", **kw)  # type: ignore[arg-type]


def test_observations_are_kept_in_session_order_not_arrival_order() -> None:
    obs: tuple[Observation, ...] = ()
    changes = []
    for session in (3, 1, 4, 2):
        obs, change = insert_observation(obs, _obs(session, 30.0 + session))
        changes.append(change)
    assert [o.session for o in obs] == [1, 2, 3, 4]
    assert changes == ["appended", "inserted_late", "appended", "inserted_late"]


def test_redelivery_changes_nothing() -> None:
    obs, _ = insert_observation((), _obs(1, 30.0, "a"))
    again, change = insert_observation(obs, _obs(1, 30.0, "a"))
    assert change == "unchanged"
    assert again is obs


def test_same_score_under_a_new_event_id_is_a_resend_and_keeps_the_first() -> None:
    obs, _ = insert_observation((), _obs(1, 30.0, "a"))
    again, change = insert_observation(obs, _obs(1, 30.0, "b"))
    assert change == "unchanged"
    assert again[0].event_id == "a"


def test_a_different_score_for_a_seen_session_replaces_it_last_writer_wins() -> None:
    obs, _ = insert_observation((), _obs(1, 30.0, "a"))
    obs, _ = insert_observation(obs, _obs(2, 31.0, "b"))
    fixed, change = insert_observation(obs, _obs(1, 35.0, "c"))
    assert change == "replaced"
    assert [(o.session, o.total) for o in fixed] == [(1, 35.0), (2, 31.0)]


def test_a_new_critical_item_is_a_different_score() -> None:
    obs, _ = insert_observation((), _obs(1, 12.0, "a"))
    _, change = insert_observation(obs, _obs(1, 12.0, "b", critical_items=("9",)))
    assert change == "replaced"


def test_observations_are_bounded_and_the_intake_is_kept() -> None:
    obs: tuple[Observation, ...] = ()
    for session in range(1, MAX_OBSERVATIONS + 11):
        obs, _ = insert_observation(obs, _obs(session, 20.0))
    assert len(obs) == MAX_OBSERVATIONS
    assert obs[0].session == 1
    assert obs[1].session == 12
    assert obs[-1].session == MAX_OBSERVATIONS + 10


def test_episodes_are_bounded_oldest_first() -> None:
    state = ClientState("k1", "c1")
    rules = ruleset()
    for e in range(MAX_EPISODES + 2):
        event = scored("SRS", 1, 38.0, episode=f"e{e}")
        # Later episodes get later session times, so e0 and e1 are the oldest.
        data = event.data.model_copy(update={"session_time": event.data.session_time.replace(year=2026 + e)})
        state = evaluate(state, event.model_copy(update={"data": data}), rules, NOW).state
    assert len(state.episodes) == MAX_EPISODES
    assert "e0" not in state.episodes and "e1" not in state.episodes
    assert f"e{MAX_EPISODES + 1}" in state.episodes


def test_json_round_trip_keeps_everything() -> None:
    state = ClientState("k1", "c1")
    rules = ruleset()
    for session, (srs, phq) in enumerate([(38, 12), (38, 13), (38, 12), (29, 19), (37, 20)], start=1):
        state = evaluate(state, scored("SRS", session, srs), rules, NOW).state
        crit = ["9"] if session == 4 else []
        state = evaluate(state, scored("PHQ-9", session, phq, critical=crit), rules, NOW).state
    text = state.to_json()
    back = ClientState.from_json(text)
    assert back == state
    assert back.to_json() == text
    assert back.episodes["e1"].emitted  # the dedup memory survives the table round trip
    assert back.episodes["e1"].tracks["SRS"].scale == SRS
    assert back.episodes["e1"].tracks["PHQ-9"].scale == PHQ9
    json.loads(text)  # plain JSON


def test_from_json_rejects_garbage_without_echoing_it() -> None:
    with pytest.raises(ValueError) as err:
        ClientState.from_json('{"v": 1, "clinic": "k1"}')
    assert "k1" not in str(err.value)
    with pytest.raises(ValueError, match="format"):
        ClientState.from_json('{"v": 99}')
