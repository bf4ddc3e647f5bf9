"""``evaluate``: envelopes, deterministic ids, redelivery, late arrival, corrections, rule books."""

from __future__ import annotations

from shared.contracts.events import Signal, SurveyScored, derive_id
from shared.rules import ClientState, RuleBook, RuleSet, evaluate, rulebook_from_mapping
from shared.rules.live import SOURCE
from tests.unit.rules.factories import NOW, TEST_DOC, ruleset, scored


def _feed(
    events: list[SurveyScored], rules: RuleSet | RuleBook | None = None, state: ClientState | None = None
) -> tuple[ClientState | None, list[Signal]]:
    chosen = rules or ruleset()
    out: list[Signal] = []
    for event in events:
        result = evaluate(state, event, chosen, NOW)
        state = result.state
        out.extend(result.signals)
    return state, out


SRS_DROP = [38, 38, 38, 30, 37]  # drop at 4, repair at 5


def test_signals_are_full_envelopes_about_the_session() -> None:
    events = [scored("SRS", s, v) for s, v in enumerate(SRS_DROP, start=1)]
    _, signals = _feed(events)
    drop = next(s for s in signals if s.data.kind == "alliance_drop")
    assert drop.source == SOURCE
    assert drop.subject == "c1" and drop.clinic_id == "k1"
    assert drop.time == NOW
    assert drop.correlation_id == events[3].correlation_id
    d = drop.data
    assert (d.client_id, d.episode_id, d.session_number, d.instrument) == ("c1", "e1", 4, "SRS")
    assert d.session_time == events[3].data.session_time
    assert (d.rule_id, d.rule_version, d.ruleset_version, d.severity) == (
        "alliance.drop_vs_baseline",
        "2",
        "test-1",
        "moderate",
    )
    assert [p.value for p in d.evidence.series] == [38, 38, 38, 30]
    assert d.evidence.thresholds["threshold"] == 31.0
    assert len(d.explanation) <= 300
    Signal.model_validate_json(drop.model_dump_json())  # emits strictly, reads back


def test_signal_ids_are_deterministic() -> None:
    events = [scored("SRS", s, v) for s, v in enumerate(SRS_DROP, start=1)]
    _, first = _feed(events)
    _, second = _feed(events)
    assert [s.id for s in first] == [s.id for s in second]
    drop = next(s for s in first if s.data.kind == "alliance_drop")
    assert drop.id == derive_id("k1", "c1", "e1", "SRS", 4, "alliance_drop", "alliance.drop_vs_baseline", "2")


def test_ids_are_scoped_by_clinic_client_and_episode() -> None:
    ids = set()
    for clinic, client, episode in [
        ("k1", "c1", "e1"),
        ("k2", "c1", "e1"),
        ("k1", "c2", "e1"),
        ("k1", "c1", "e2"),
    ]:
        events = [
            scored("SRS", s, v, clinic=clinic, client=client, episode=episode)
            for s, v in enumerate(SRS_DROP, 1)
        ]
        _, signals = _feed(events)
        ids |= {s.id for s in signals}
    assert len(ids) == 4 * 3  # below-cutoff, drop, repair for each


def test_redelivery_emits_nothing_and_keeps_the_state() -> None:
    events = [scored("SRS", s, v) for s, v in enumerate(SRS_DROP, start=1)]
    state, _ = _feed(events)
    for event in events:
        result = evaluate(state, event, ruleset(), NOW)
        assert result.change == "unchanged"
        assert result.signals == []
        assert result.state is state


def test_a_late_session_is_inserted_in_place_and_later_sessions_re_evaluated() -> None:
    # Sessions 1, 2, 4 arrive; 3 comes last. Without 3 there is no baseline of three at session 4 (early
    # drops from a two-session baseline are off here, so only the late session makes the drop).
    rules = ruleset(rules={"alliance_drop": {"early_baseline_sessions": None}})
    events = {s: scored("SRS", s, v) for s, v in enumerate(SRS_DROP, start=1)}
    state, early = _feed([events[1], events[2], events[4]], rules)
    assert not [s for s in early if s.data.kind == "alliance_drop"]
    result = evaluate(state, events[3], rules, NOW)
    assert result.change == "inserted_late"
    assert [(s.data.kind, s.data.session_number) for s in result.signals] == [("alliance_drop", 4)]
    assert result.signals[0].correlation_id == events[4].correlation_id  # about session 4, not 3
    assert [o.session for o in result.state.episodes["e1"].tracks["SRS"].observations] == [1, 2, 3, 4]


def test_late_insert_never_repeats_an_emitted_signal() -> None:
    # Below-cutoff at 4 is emitted on arrival; a late 3 re-evaluates 4 and finds it again: not re-sent.
    events = {s: scored("SRS", s, v) for s, v in enumerate([38, 38, 38, 35], start=1)}
    state, first = _feed([events[1], events[2], events[4]])
    assert [(s.data.kind, s.data.session_number) for s in first] == [("alliance_below_cutoff", 4)]
    result = evaluate(state, events[3], ruleset(), NOW)
    assert result.signals == []


def test_a_correction_replaces_the_score_and_re_evaluates() -> None:
    state, _ = _feed([scored("PHQ-9", 1, 10), scored("PHQ-9", 2, 12), scored("PHQ-9", 3, 12)])
    result = evaluate(state, scored("PHQ-9", 2, 21, variant="corrected"), ruleset(), NOW)
    assert result.change == "replaced"
    assert [(s.data.kind, s.data.session_number) for s in result.signals] == [
        ("outcome_reliable_deterioration", 2)
    ]


def test_a_critical_item_goes_out_at_once() -> None:
    result = evaluate(None, scored("PHQ-9", 1, 14, critical=["9"]), ruleset(), NOW)
    assert [(s.data.kind, s.data.severity, s.data.evidence.items) for s in result.signals] == [
        ("critical_item", "critical", ["9"])
    ]


def test_a_rule_book_picks_the_clinics_overrides() -> None:
    doc = {**TEST_DOC, "clinics": {"k2": {"version": "7", "rules": {"alliance_drop": {"enabled": False}}}}}
    book = rulebook_from_mapping(doc)
    _, k1 = _feed([scored("SRS", s, v, clinic="k1") for s, v in enumerate(SRS_DROP, 1)], rules=book)
    _, k2 = _feed([scored("SRS", s, v, clinic="k2") for s, v in enumerate(SRS_DROP, 1)], rules=book)
    assert "alliance_drop" in {s.data.kind for s in k1}
    assert "alliance_drop" not in {s.data.kind for s in k2}
    assert {s.data.ruleset_version for s in k1} == {"test-1"}
    assert {s.data.ruleset_version for s in k2} == {"test-1+k2.7"}


def test_state_of_another_client_is_refused() -> None:
    state, _ = _feed([scored("SRS", 1, 38)])
    try:
        evaluate(state, scored("SRS", 2, 38, client="c2"), ruleset(), NOW)
    except ValueError as err:
        assert "c2" not in str(err)
    else:  # pragma: no cover
        raise AssertionError("expected ValueError")


def test_a_round_tripped_state_continues_exactly_like_the_original() -> None:
    events = [scored("SRS", s, v) for s, v in enumerate(SRS_DROP, start=1)]
    state, _ = _feed(events[:3])
    assert state is not None
    restored = ClientState.from_json(state.to_json())
    _, a = _feed(events[3:], state=state)
    _, b = _feed(events[3:], state=restored)
    assert [s.model_dump() for s in a] == [s.model_dump() for s in b]
