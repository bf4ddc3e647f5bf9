"""Property: over random directories, alerts, accounts and requests, nobody reads or acknowledges an
alert outside their scope; every denied access is a 404 and is counted."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.contracts.alerts import ClinicDirectory, EscalationPolicy, Person
from tests.inbox_support import synthetic_alert
from tests.unit.inbox.web import Web, login, make_web, token

CLINICS = ("clinic-a", "clinic-b")
PEOPLE = ("p0", "p1", "p2", "p3", "p4")  # the same pseudonyms in both clinics: ids alone prove nothing


@dataclass(frozen=True)
class AlertSpec:
    clinic: str
    clinician: str
    severity: str
    escalated: bool


@st.composite
def directories(draw: st.DrawFn) -> dict[str, ClinicDirectory]:
    out = {}
    for clinic in CLINICS:
        if not draw(st.booleans()) and clinic == "clinic-b":
            continue  # sometimes a clinic's directory has not arrived
        ids = draw(st.lists(st.sampled_from(PEOPLE), min_size=1, max_size=len(PEOPLE), unique=True))
        people = []
        for pid in ids:
            roles = draw(
                st.lists(
                    st.sampled_from(["clinician", "supervisor", "on_call"]),
                    min_size=1,
                    max_size=3,
                    unique=True,
                )
            )
            supervisor = draw(st.sampled_from([None, *[o for o in ids if o != pid]]))
            people.append(Person(id=pid, roles=roles, supervisor=supervisor))
        on_call = draw(st.lists(st.sampled_from(ids), max_size=2, unique=True))
        out[clinic] = ClinicDirectory(
            clinic_id=clinic, people=people, escalation=EscalationPolicy(on_call=on_call)
        )
    return out


alert_specs = st.lists(
    st.builds(
        AlertSpec,
        clinic=st.sampled_from(CLINICS),
        clinician=st.sampled_from([*PEOPLE, "p-unlisted"]),
        severity=st.sampled_from(["critical", "high", "moderate", "info"]),
        escalated=st.booleans(),
    ),
    min_size=1,
    max_size=6,
)
accounts = st.lists(
    st.tuples(st.sampled_from(CLINICS), st.sampled_from(PEOPLE)), min_size=1, max_size=4, unique=True
)


def may_see(clinic: str, person: str, alert: AlertSpec, dirs: dict[str, ClinicDirectory]) -> bool:
    """The rule as the issue states it, written independently of the implementation."""
    d = dirs.get(clinic)
    if d is None or alert.clinic != clinic:
        return False
    listed = {p.id: p for p in d.people}
    if person not in listed:
        return False
    if alert.clinician == person:
        return True
    treating = listed.get(alert.clinician)
    if treating is not None and treating.supervisor == person:
        return True
    on_call = "on_call" in listed[person].roles or person in d.escalation.on_call
    return on_call and alert.severity == "critical" and alert.escalated


@given(directories(), alert_specs, accounts, st.data())
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_no_cross_tenant_read_or_acknowledge(dirs, specs, logins, data) -> None:  # type: ignore[no-untyped-def]
    with tempfile.TemporaryDirectory() as tmp:
        web: Web = make_web(Path(tmp))
        try:
            _check(web, dirs, specs, logins, data)
        finally:
            web.store.close()


def _check(web: Web, dirs, specs, logins, data) -> None:  # type: ignore[no-untyped-def]
    events = []
    ids: list[tuple[str, AlertSpec]] = []
    for n, spec in enumerate(specs):
        states = ("raised", "escalated") if spec.escalated else ("raised",)
        made = synthetic_alert(
            clinic=spec.clinic,
            clinician=spec.clinician,
            severity=spec.severity,
            states=states,
            n=n,
            kind="critical_item" if spec.severity == "critical" else "alliance_drop",
        )
        events.extend(made)
        ids.append((str(made[0].data.alert_id), spec))
    web.store.ingest([*dirs.values(), *events], {})
    for i, (clinic, person) in enumerate(logins):
        web.add_user(f"user{i}", clinic, person)

    denied = 0
    acked: set[str] = set()
    with web.client() as c:
        for i, (clinic, person) in enumerate(logins):
            c.cookies.clear()
            assert login(c, f"user{i}").status_code == 303
            listing = c.get("/alerts")
            assert listing.status_code == 200
            csrf = token(listing.text)
            for alert_id, spec in ids:
                allowed = may_see(clinic, person, spec, dirs)
                assert (alert_id in listing.text) == (allowed and alert_id not in acked)
                page = c.get(f"/alerts/{alert_id}")
                assert page.status_code == (200 if allowed else 404)
                denied += not allowed
                if data.draw(st.booleans(), label=f"acknowledge {alert_id} as user{i}"):
                    r = c.post(
                        f"/alerts/{alert_id}/acknowledge", data={"csrf_token": csrf}, follow_redirects=False
                    )
                    assert r.status_code == (303 if allowed else 404)
                    denied += not allowed
                    if allowed:
                        acked.add(alert_id)
    published = {str(__import__("json").loads(v)["data"]["alert_id"]) for _, _, v in web.publisher.sent}
    assert published == acked, "exactly the permitted acknowledgements left the inbox"
    counted = sum(
        web.metric("rapport_inbox_access_denied_total", action=a, reason=r)
        for a in ("read", "acknowledge")
        for r in ("unknown", "not_permitted")
    )
    assert counted == denied
