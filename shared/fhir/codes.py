"""Code systems, canonical URLs and code tables of Rapport's FHIR mapping.

LOINC is used where it has codes (PHQ-9, GAD-7: panels, items, totals and answer codes). ORS, SRS,
WAI-SR, CORE-10 and K10 have none that Rapport relies on, so they live in Rapport's local code system
(:data:`INSTRUMENT_SYSTEM`). Every URL under :data:`CANONICAL_BASE` is an identity, not an address:
it is never fetched, and changing one is a breaking change for every integrator.
"""

from __future__ import annotations

from typing import Final

#: Root of Rapport's own FHIR identities (code systems, questionnaires, extensions). ``example.org``
#: is reserved (RFC 2606): nobody else can own it, and nobody mistakes it for a resolvable address.
CANONICAL_BASE: Final = "https://rapport.example.org/fhir"

LOINC: Final = "http://loinc.org"
UCUM: Final = "http://unitsofmeasure.org"
OBSERVATION_CATEGORY: Final = "http://terminology.hl7.org/CodeSystem/observation-category"
V3_INTERPRETATION: Final = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
DATA_ABSENT_REASON: Final = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
ORDINAL_VALUE_EXTENSIONS: Final = (
    "http://hl7.org/fhir/StructureDefinition/ordinalValue",  # R4
    "http://hl7.org/fhir/StructureDefinition/itemWeight",  # R5, seen in R4 data from newer tools
)
#: Identifier system of a reference by event id (``urn:uuid:<id>``), used when a response had no id.
URI_IDENTIFIER_SYSTEM: Final = "urn:ietf:rfc:3986"

#: Local code system of instruments (the instrument id), their totals (``<id>-total``) and
#: subscales (``<id>-<subscale>``).
INSTRUMENT_SYSTEM: Final = f"{CANONICAL_BASE}/CodeSystem/instrument"
#: Local code system of severity bands as the instrument specs name them (``minimal``, ``mild`` …).
BAND_SYSTEM: Final = f"{CANONICAL_BASE}/CodeSystem/score-band"
#: Extension on a ``QuestionnaireResponse``: the 1-based session number in the episode (valueInteger
#: or valuePositiveInt). Required: FHIR has no session number of its own.
SESSION_NUMBER_EXTENSION: Final = f"{CANONICAL_BASE}/StructureDefinition/session-number"
#: Extension on a ``QuestionnaireResponse``: the episode of care (valueReference
#: ``EpisodeOfCare/<id>``, valueIdentifier or valueString). Optional: :data:`DEFAULT_EPISODE`.
EPISODE_EXTENSION: Final = f"{CANONICAL_BASE}/StructureDefinition/episode"
DEFAULT_EPISODE: Final = "default"

LOCAL_INSTRUMENTS: Final = ("ORS", "SRS", "WAI-SR", "CORE-10", "K10")

#: Questionnaire canonical URL → instrument id. LOINC forms use ``http://loinc.org/q/<panel>``.
QUESTIONNAIRES: Final[dict[str, str]] = {
    f"{LOINC}/q/44249-1": "PHQ-9",
    f"{LOINC}/q/69737-5": "GAD-7",
    **{f"{CANONICAL_BASE}/Questionnaire/{i.lower()}": i for i in LOCAL_INSTRUMENTS},
}

#: LOINC panel code → instrument id (matched on the last path segment of a canonical URL).
LOINC_PANELS: Final[dict[str, str]] = {"44249-1": "PHQ-9", "69737-5": "GAD-7"}

#: LOINC item code → (instrument, item id). PHQ-9 items 1–9 and GAD-7 items 1–7, in order.
LOINC_ITEMS: Final[dict[str, tuple[str, str]]] = {
    **{
        code: ("PHQ-9", str(n))
        for n, code in enumerate(
            (
                "44250-9",
                "44255-8",
                "44259-0",
                "44254-1",
                "44251-7",
                "44258-2",
                "44252-5",
                "44253-3",
                "44260-8",
            ),
            start=1,
        )
    },
    **{
        code: ("GAD-7", str(n))
        for n, code in enumerate(
            ("69725-0", "68509-9", "69733-4", "69734-2", "69735-9", "69689-8", "69736-7"), start=1
        )
    },
}

#: LOINC codes that may appear in a response but are not scored: the difficulty questions
#: (PHQ-9 69722-7, GAD-7 69726-8) and the sender's own totals (44261-6, 70274-6). Rapport scores
#: the answers itself and never trusts a submitted total.
LOINC_IGNORED: Final = frozenset({"69722-7", "69726-8", "44261-6", "70274-6"})

#: LOINC answer codes of the PHQ-9 and GAD-7 frequency scale → item score.
LOINC_ANSWERS: Final[dict[str, int]] = {"LA6568-5": 0, "LA6569-3": 1, "LA6570-1": 2, "LA6571-9": 3}

#: Instrument → LOINC code and display of its total score, where LOINC has one.
LOINC_TOTALS: Final[dict[str, tuple[str, str]]] = {
    "PHQ-9": ("44261-6", "Patient Health Questionnaire 9 item (PHQ-9) total score [Reported]"),
    "GAD-7": ("70274-6", "Generalized anxiety disorder 7 item (GAD-7) total score [Reported.PHQ]"),
}


def instrument_of_questionnaire(canonical: str) -> str | None:
    """The instrument a ``QuestionnaireResponse.questionnaire`` canonical names, or ``None``.

    A ``|version`` suffix is ignored; besides the exact URLs of :data:`QUESTIONNAIRES`, a canonical
    whose last path segment is a LOINC panel code (``…/44249-1``) or an instrument id
    (``…/Questionnaire/WAI-SR``, any case) is recognised.
    """
    url = canonical.split("|", 1)[0].rstrip("/")
    found = QUESTIONNAIRES.get(url)
    if found is not None:
        return found
    last = url.rsplit("/", 1)[-1]
    if last in LOINC_PANELS:
        return LOINC_PANELS[last]
    by_lower = {i.lower(): i for i in (*LOCAL_INSTRUMENTS, *LOINC_PANELS.values())}
    return by_lower.get(last.lower())


def questionnaire_version(canonical: str) -> str | None:
    """The ``|version`` part of a canonical URL, if any."""
    _, sep, version = canonical.partition("|")
    return version or None if sep else None
