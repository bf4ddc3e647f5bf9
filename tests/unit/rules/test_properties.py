"""Properties of the live path over random trajectories: idempotence and order (in)dependence.

What holds, and is tested here:

* duplicates (any redelivery, in order) → exactly the in-order signal ids;
* any order with duplicates → the same final trajectories, never a signal id twice, and a superset of
  the in-order ids. It can be a strict superset: a signal judged on the trajectory known at the time
  (e.g. a drop "vs last session" before the real last session arrived) is never retracted;
* the ids the final state supports (every session re-judged on the full trajectory) are exactly the
  in-order ids, and the backtest's fast path counts exactly those too.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.contracts.events import SurveyScored
from shared.rules import ClientState, History, evaluate, evaluate_episode, rulebook_from_mapping, run_backtest
from shared.rules.live import signal_id
from tests.unit.rules.factories import NOW, PHQ9, SRS, TEST_DOC, ruleset, scored

RULES = ruleset()

session_scores = st.tuples(
    st.integers(min_value=150, max_value=400).map(lambda t: t / 10),  # SRS, one decimal
    st.integers(min_value=0, max_value=27),  # PHQ-9
    st.booleans(),  # item 9 endorsed
)
trajectories = st.lists(session_scores, min_size=1, max_size=9)


def _events(
    traj: list[tuple[float, int, bool]], skip_phq: frozenset[int] = frozenset()
) -> list[SurveyScored]:
    out = []
    for s, (srs, phq, crit) in enumerate(traj, start=1):
        out.append(scored("SRS", s, srs))
        if s not in skip_phq:
            out.append(scored("PHQ-9", s, float(phq), critical=["9"] if crit else []))
    return out


def _deliver(events: list[SurveyScored]) -> tuple[ClientState | None, list[str]]:
    state: ClientState | None = None
    ids: list[str] = []
    for event in events:
        result = evaluate(state, event, RULES, NOW)
        state = result.state
        ids.extend(s.id.hex for s in result.signals)
    return state, ids


def _tracks(state: ClientState | None) -> dict[str, Any]:
    assert state is not None
    return {
        eid: {
            name: [(o.session, o.total, o.critical_items) for o in t.observations]
            for name, t in ep.tracks.items()
        }
        for eid, ep in state.episodes.items()
    }


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(traj=trajectories, data=st.data())
def test_duplicates_in_order_emit_exactly_the_in_order_signals(traj: list[Any], data: st.DataObject) -> None:
    events = _events(traj)
    _, in_order = _deliver(events)
    repeats = data.draw(st.lists(st.integers(0, 3), min_size=len(events), max_size=len(events)))
    with_dupes = [e for e, r in zip(events, repeats, strict=True) for _ in range(1 + r)]
    _, ids = _deliver(with_dupes)
    assert ids == in_order


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(traj=trajectories, data=st.data())
def test_any_order_with_duplicates_converges(traj: list[Any], data: st.DataObject) -> None:
    events = _events(traj)
    in_state, in_order = _deliver(events)
    shuffled = data.draw(st.permutations(events))
    dupes = data.draw(st.lists(st.sampled_from(events), max_size=len(events)))
    arrival = list(shuffled)
    for dup in dupes:
        arrival.insert(data.draw(st.integers(0, len(arrival))), dup)
    state, ids = _deliver(arrival)
    assert _tracks(state) == _tracks(in_state)
    assert len(ids) == len(set(ids)), "a signal id was emitted twice"
    assert set(ids) >= set(in_order)
    assert state is not None and set(state.episodes["e1"].emitted) == set(ids)
    # What the final trajectory supports is exactly the in-order set.
    supported = {
        signal_id("k1", "c1", "e1", f).hex for f in evaluate_episode(state.episodes["e1"].tracks, RULES)
    }
    assert supported == set(in_order)
    # Redelivering everything afterwards changes nothing.
    again_state, again = _deliver_from(state, events)
    assert again == [] and again_state == state


def _deliver_from(state: ClientState, events: list[SurveyScored]) -> tuple[ClientState, list[str]]:
    ids: list[str] = []
    for event in events:
        result = evaluate(state, event, RULES, NOW)
        state = result.state
        ids.extend(s.id.hex for s in result.signals)
    return state, ids


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(traj=trajectories, data=st.data())
def test_session_order_within_a_session_does_not_matter(traj: list[Any], data: st.DataObject) -> None:
    # Each session's two surveys arrive in either order: the combined dropout rule waits for both.
    events = _events(traj)
    swapped: list[SurveyScored] = []
    for i in range(0, len(events), 2):
        pair = events[i : i + 2]
        swapped.extend(reversed(pair) if data.draw(st.booleans()) else pair)
    assert set(_deliver(swapped)[1]) == set(_deliver(events)[1])


@settings(max_examples=100, deadline=None)
@given(traj=trajectories, skip=st.sets(st.integers(1, 9), max_size=3))
def test_backtest_counts_what_the_live_path_emits_in_order(traj: list[Any], skip: set[int]) -> None:
    events = _events(traj, frozenset(skip))
    _, ids = _deliver(events)
    live_kinds: dict[str, int] = {}
    state, signals = None, []
    for event in events:
        result = evaluate(state, event, RULES, NOW)
        state = result.state
        signals.extend(result.signals)
    for s in signals:
        live_kinds[s.data.rule_id] = live_kinds.get(s.data.rule_id, 0) + 1
    history = History()
    for event in events:
        d = event.data
        history.add(
            "k1",
            "c1",
            "e1",
            d.session_number,
            d.instrument,
            d.domain,
            d.scale,
            d.total,
            tuple(d.critical_items),
            tuple(d.risk_unknown),
        )
    report = run_backtest(history, rulebook_from_mapping(TEST_DOC))
    offline: dict[str, int] = {}
    for (rule, _kind, _sev), count in report.by_rule.items():
        offline[rule] = offline.get(rule, 0) + count.signals
    assert offline == live_kinds
    assert report.signals == len(ids)


@settings(max_examples=100, deadline=None)
@given(traj=trajectories, data=st.data())
def test_state_json_round_trip(traj: list[Any], data: st.DataObject) -> None:
    events = data.draw(st.permutations(_events(traj)))
    state, _ = _deliver(list(events))
    assert state is not None
    assert ClientState.from_json(state.to_json()) == state


def test_scales_used_by_the_properties_are_the_published_ones() -> None:
    assert (SRS.cutoff, SRS.concern_when) == (36, "below")
    assert (PHQ9.cutoff, PHQ9.reliable_change) == (10, 5)
