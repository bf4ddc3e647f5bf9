"""``critical_item``: every session with an endorsed critical (risk) item. Severity critical, never
suppressed, no edge."""

from __future__ import annotations

from shared.rules.findings import Cursor, Finding, fmt, items_text

TEMPLATE = (
    "{name} risk {what} endorsed at session {session} (total {total}): follow the clinic's risk "
    "protocol now."
)
UNSCORED_TEMPLATE = (
    "{name} risk {what} endorsed at session {session} (total not scorable: {reason}): follow the "
    "clinic's risk protocol now."
)


class CriticalItem:
    """Fires at every session whose survey endorsed a critical item (no state)."""

    __slots__ = ()

    def step(self, at: Cursor) -> Finding | None:
        """The finding of this session's endorsed critical items, if any."""
        items = at.o.critical_items
        if not items or not at.emit:
            return None
        return at.finding(
            "critical_item",
            "critical",
            (),
            TEMPLATE,
            items=items,
            name=at.name,
            what=items_text(items),
            session=at.s,
            total=fmt(at.v),
        )


def unscored_critical_finding(
    instrument: str, session: int, items: tuple[str, ...], reason: str
) -> Finding:
    """The ``critical_item`` finding of a survey whose total could not be scored (``reason``) but
    whose risk items were endorsed: same kind, severity and id inputs as a scored one."""
    return Finding(
        kind="critical_item",
        severity="critical",
        instrument=instrument,
        session=session,
        series=(),
        thresholds=(),
        items=items,
        explanation=UNSCORED_TEMPLATE.format(
            name=instrument, what=items_text(items), session=session, reason=reason.replace("_", " ")
        ),
    )
