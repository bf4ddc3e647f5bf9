"""Who sees which alert, case by case (the property test drives random directories through the app)."""

from __future__ import annotations

from shared.inbox.projection import fold_alert
from shared.inbox.tenancy import Viewer, scope_for
from tests.inbox_support import directory, synthetic_alert


def alert(clinic: str = "clinic-01", clinician: str = "clin-01", **kw):  # type: ignore[no-untyped-def]
    return fold_alert(synthetic_alert(clinic=clinic, clinician=clinician, **kw))


def test_clinician_sees_own_alerts_only() -> None:
    scope = scope_for(Viewer("clinic-01", "clin-01"), directory())
    assert scope is not None
    assert scope.permits(alert(clinician="clin-01"))
    assert not scope.permits(alert(clinician="clin-02"))


def test_supervisor_sees_supervisees_and_own() -> None:
    scope = scope_for(Viewer("clinic-01", "sup-01"), directory())
    assert scope is not None
    assert scope.permits(alert(clinician="clin-01"))
    assert scope.permits(alert(clinician="clin-02"))
    assert scope.permits(alert(clinician="sup-01"))
    assert not scope.permits(alert(clinician="oncall-01"))


def test_on_call_sees_only_escalated_critical_alerts() -> None:
    scope = scope_for(Viewer("clinic-01", "oncall-01"), directory())
    assert scope is not None
    assert scope.permits(alert(severity="critical", states=("raised", "escalated")))
    assert not scope.permits(alert(severity="critical", states=("raised",)))
    assert not scope.permits(alert(severity="high", states=("raised", "escalated")))


def test_nobody_sees_another_clinics_alert_even_with_the_same_ids() -> None:
    scope = scope_for(Viewer("clinic-01", "clin-01"), directory())
    assert scope is not None
    assert not scope.permits(alert(clinic="clinic-02", clinician="clin-01"))
    on_call = scope_for(Viewer("clinic-01", "oncall-01"), directory())
    assert on_call is not None
    assert not on_call.permits(alert(clinic="clinic-02", severity="critical", states=("raised", "escalated")))


def test_no_directory_or_not_listed_sees_nothing() -> None:
    assert scope_for(Viewer("clinic-01", "clin-01"), None) is None
    assert scope_for(Viewer("clinic-01", "someone-else"), directory()) is None
    assert scope_for(Viewer("clinic-02", "clin-01"), directory()) is None, "another clinic's directory"
