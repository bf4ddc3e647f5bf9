"""Which instrument registry scores a clinic's sessions: variants as configuration.

A rule book names spec variants per clinic (``clinics: <id>: variants: {PHQ-9: lowe_mcid}``) over the
rule set's own ``variants``. :class:`ClinicRegistries` turns that into one registry per distinct set
of variants, built (and so validated) up front; the scoring service, ``rapport signals`` and
``rapport backtest`` all score a session with ``for_clinic(session's clinic)``. The monitor needs no
registry: each ``SurveyScored`` carries the scale (cutoff, reliable change) its variant gave it.
"""

from __future__ import annotations

from shared.instruments import Registry
from shared.rules.config import RuleBook


class ClinicRegistries:
    """The base registry with each clinic's variants applied; bounded by the clinics the book names."""

    __slots__ = ("_by_clinic", "_default")

    def __init__(self, base: Registry, book: RuleBook) -> None:
        """Build every configured clinic's registry now: an unknown variant fails at start-up."""
        by_variants: dict[tuple[tuple[str, str], ...], Registry] = {}

        def registry(variants: dict[str, str]) -> Registry:
            key = tuple(sorted(variants.items()))
            found = by_variants.get(key)
            if found is None:
                found = by_variants[key] = base.with_variants(variants)
            return found

        self._default = registry(book.base.variants)
        self._by_clinic = {clinic: registry(book.for_clinic(clinic).variants) for clinic in book.clinics}

    def for_clinic(self, clinic_id: str | None) -> Registry:
        """The registry that scores ``clinic_id``'s sessions (the base variants for any other clinic)."""
        if clinic_id is None:
            return self._default
        return self._by_clinic.get(clinic_id, self._default)


Scorers = Registry | ClinicRegistries
"""What the session pipeline scores with: one registry for every clinic, or one per clinic."""


def registry_for(scorers: Scorers, clinic_id: str | None) -> Registry:
    """The registry that scores a session of ``clinic_id``."""
    if isinstance(scorers, Registry):
        return scorers
    return scorers.for_clinic(clinic_id)
