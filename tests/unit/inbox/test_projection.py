"""The alert projection depends on the set of lifecycle events, never on their order."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.inbox.projection import fold_alert
from tests.inbox_support import synthetic_alert

LIFECYCLE = synthetic_alert(
    clinic="clinic-01",
    clinician="clin-01",
    severity="critical",
    kind="critical_item",
    states=("raised", "delivered", "escalated", "acknowledged"),
)


@given(st.permutations(LIFECYCLE), st.lists(st.sampled_from(LIFECYCLE), max_size=4))
@settings(max_examples=60, deadline=None)
def test_order_and_duplicates_do_not_change_the_view(order, repeats) -> None:
    assert fold_alert([*order, *repeats]) == fold_alert(LIFECYCLE)


def test_status_follows_the_lifecycle() -> None:
    raised = fold_alert(LIFECYCLE[:1])
    assert raised.status == "open" and not raised.escalated and raised.acknowledged_by is None
    escalated = fold_alert(LIFECYCLE[:3])
    assert escalated.status == "open" and escalated.escalated and escalated.escalation_step == "on_call"
    acked = fold_alert(LIFECYCLE)
    assert acked.status == "acknowledged" and acked.acknowledged_by == "clin-01"
    assert acked.raised_at == raised.raised_at and acked.updated_at > raised.updated_at


def test_resolved_wins_and_a_missing_raise_still_yields_the_facts() -> None:
    events = synthetic_alert(clinic="k", clinician="c", states=("raised", "resolved"))
    assert fold_alert(events).status == "resolved"
    only_delivered = synthetic_alert(clinic="k", clinician="c", states=("delivered",))
    view = fold_alert(only_delivered)
    assert view.clinician_id == "c" and view.status == "open"


def test_events_of_two_alerts_are_refused() -> None:
    a = synthetic_alert(clinic="k", clinician="c", n=1)
    b = synthetic_alert(clinic="k", clinician="c", n=2)
    with pytest.raises(ValueError, match="different alerts"):
        fold_alert([*a, *b])
    with pytest.raises(ValueError, match="at least one"):
        fold_alert([])
