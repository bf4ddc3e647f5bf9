"""The one message key of every record about a client: the event's subject, scoped by clinic.

Every output (scored surveys, signals, dead letters whose subject is known) is keyed by
:func:`subject_key`, whatever key its input had, so all records of one client land in one partition,
in order, next to that client's state. Client ids are scoped by clinic, so the key carries both.
"""

from __future__ import annotations

SEPARATOR = "|"
"""Cannot occur inside a pseudonymous id (letters, digits and ``. _ : -`` only), so keys are unambiguous."""


def subject_id(clinic_id: str, client_id: str) -> str:
    """The text form of a client's subject: ``clinic|client`` (also the monitor's state key)."""
    return f"{clinic_id}{SEPARATOR}{client_id}"


def subject_key(clinic_id: str, client_id: str) -> bytes:
    """The message key of every record about the client ``client_id`` of ``clinic_id``."""
    return subject_id(clinic_id, client_id).encode()
