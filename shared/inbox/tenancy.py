"""Who may see which alert (pure).

A person logged in to the inbox sees an alert only when it belongs to their own clinic, their
clinic's directory lists them, and one of these holds:

* they are the alert's treating clinician;
* they are the treating clinician's supervisor (the directory's ``supervisor`` link);
* they are on call (role ``on_call`` or listed in the clinic's escalation ``on_call``) and the alert
  is critical and has been escalated.

Nobody sees another clinic's alerts, and a person the directory no longer lists sees nothing. The
same :class:`Scope` filters the list query and checks every single-alert read and acknowledgement.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from shared.contracts.alerts import ClinicDirectory


class AlertFacts(Protocol):
    """What tenancy looks at in an alert."""

    @property
    def clinic_id(self) -> str: ...

    @property
    def clinician_id(self) -> str: ...

    @property
    def severity(self) -> str: ...

    @property
    def escalated(self) -> bool: ...


@dataclass(frozen=True)
class Viewer:
    """A logged-in user: the clinic and directory person their account is bound to."""

    clinic_id: str
    person_id: str


@dataclass(frozen=True)
class Scope:
    """The alerts one viewer may see and acknowledge."""

    clinic_id: str
    clinician_ids: frozenset[str]
    """The viewer themselves and the clinicians they supervise."""
    escalated_critical: bool
    """On call: also every escalated critical alert of the clinic."""

    def permits(self, alert: AlertFacts) -> bool:
        """Whether the viewer may see (and acknowledge) ``alert``."""
        if alert.clinic_id != self.clinic_id:
            return False
        if alert.clinician_id in self.clinician_ids:
            return True
        return self.escalated_critical and alert.severity == "critical" and alert.escalated


def scope_for(viewer: Viewer, directory: ClinicDirectory | None) -> Scope | None:
    """The viewer's scope under their clinic's current directory; ``None`` (sees nothing) when the
    directory is not known or does not list them."""
    if directory is None or directory.clinic_id != viewer.clinic_id:
        return None
    me = directory.person(viewer.person_id)
    if me is None:
        return None
    supervisees = {p.id for p in directory.people if p.supervisor == me.id}
    on_call = "on_call" in me.roles or me.id in directory.escalation.on_call
    return Scope(
        clinic_id=directory.clinic_id,
        clinician_ids=frozenset({me.id, *supervisees}),
        escalated_critical=on_call,
    )
