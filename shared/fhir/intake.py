"""FHIR R4 intake: a ``QuestionnaireResponse`` (or a transaction ``Bundle`` of them) → ``SessionCompleted``.

One response is one survey and becomes one ``SessionCompleted`` event. The rules (documented in
``docs/gateway.md``):

* instrument: ``questionnaire`` canonical URL (``http://loinc.org/q/44249-1``, a local
  ``…/Questionnaire/ors``, or any canonical ending in a LOINC panel code or an instrument id);
* items: the last ``/`` segment of ``linkId`` is a LOINC item code (PHQ-9, GAD-7) or the item number;
  groups are walked; difficulty questions and submitted totals are ignored;
* answers: ``valueCoding`` (LOINC answer codes, or an ``ordinalValue``/``itemWeight`` extension),
  ``valueInteger`` or ``valueDecimal`` — JSON numbers only;
* ``subject`` → client, ``encounter`` → the session, ``author`` (``Practitioner`` or
  ``PractitionerRole``) → clinician, ``authored`` → session time, the session-number extension →
  session number, the episode extension → episode (default ``default``);
* the clinic is never read from the resource: it is the calling key's.

The event id is deterministic (the response's identifier, else its id and version, else encounter and
instrument), so a resent response is the same event.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from shared.contracts.events import (
    Answer,
    SessionCompleted,
    SessionCompletedData,
    SurveyResponse,
    derive_id,
)
from shared.fhir import codes
from shared.fhir.problems import FhirRejected, Problem, problems_of_errors

_PSEUDONYM = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
_ITEM_ID = re.compile(r"^[A-Za-z0-9_.-]{1,16}$")
ACCEPTED_STATUSES = frozenset({"completed", "amended"})
#: Most responses one transaction Bundle may carry.
MAX_BUNDLE_ENTRIES = 100


@dataclass(frozen=True, slots=True)
class MappedSession:
    """One response mapped: the event to produce, the FHIR ids the scores will point back to."""

    event: SessionCompleted
    encounter: str
    """The ``Encounter`` id the response named (the session, in FHIR)."""
    derived_from: dict[str, Any]
    """The ``Reference`` (JSON) to the response, for ``Observation.derivedFrom``."""


def is_pseudonym(value: str) -> bool:
    """True when ``value`` can be a Rapport pseudonymous id (1-64 letters, digits, ``. _ : -``)."""
    return bool(_PSEUDONYM.match(value))


def decode_json(raw: bytes) -> Any:
    """The JSON document of a request body, or :class:`FhirRejected` (no input is echoed)."""
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise FhirRejected([Problem("structure", "", "the body is not valid JSON")]) from None


def session_from_document(doc: Any, *, clinic_id: str, now: datetime, source: str) -> MappedSession:
    """Validate a ``QuestionnaireResponse`` JSON document and map it to one session event."""
    from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse

    _expect_type(doc, "QuestionnaireResponse")
    try:
        model = QuestionnaireResponse.model_validate(doc)
    except ValidationError as exc:
        errors = exc.errors(include_input=False, include_url=False)
        raise FhirRejected(problems_of_errors(errors, "QuestionnaireResponse")) from None
    problems: list[Problem] = []
    mapped = _map_response(model, doc, "QuestionnaireResponse", clinic_id, now, source, problems)
    if problems or mapped is None:
        raise FhirRejected(problems)
    return mapped


def sessions_from_bundle(doc: Any, *, clinic_id: str, now: datetime, source: str) -> list[MappedSession]:
    """Validate a transaction ``Bundle`` of ``QuestionnaireResponse`` entries and map every entry.

    All or nothing: one bad entry rejects the Bundle, with every problem of every entry listed.
    """
    from fhir.resources.R4B.bundle import Bundle
    from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse

    _expect_type(doc, "Bundle")
    try:
        bundle = Bundle.model_validate(doc)
    except ValidationError as exc:
        raise FhirRejected(
            problems_of_errors(exc.errors(include_input=False, include_url=False), "Bundle")
        ) from None
    if bundle.type != "transaction":
        raise FhirRejected([Problem("not-supported", "Bundle.type", "only transaction Bundles are accepted")])
    entries = bundle.entry or []
    if not entries:
        raise FhirRejected([Problem("required", "Bundle.entry", "the Bundle has no entries")])
    if len(entries) > MAX_BUNDLE_ENTRIES:
        raise FhirRejected(
            [Problem("too-costly", "Bundle.entry", f"at most {MAX_BUNDLE_ENTRIES} entries per Bundle")]
        )
    problems: list[Problem] = []
    out: list[MappedSession] = []
    seen: dict[uuid.UUID, int] = {}
    for i, entry in enumerate(entries):
        prefix = f"Bundle.entry[{i}]"
        request = entry.request
        if request is not None and (
            request.method != "POST" or (request.url or "").split("?")[0] != "QuestionnaireResponse"
        ):
            problems.append(
                Problem("not-supported", f"{prefix}.request", "only POST QuestionnaireResponse is accepted")
            )
        resource = entry.resource
        if not isinstance(resource, QuestionnaireResponse):
            problems.append(
                Problem(
                    "not-supported", f"{prefix}.resource", "only QuestionnaireResponse entries are accepted"
                )
            )
            continue
        raw = doc["entry"][i]["resource"]
        mapped = _map_response(resource, raw, f"{prefix}.resource", clinic_id, now, source, problems)
        if mapped is None:
            continue
        if mapped.event.id in seen:
            problems.append(
                Problem("duplicate", prefix, f"the same response as Bundle.entry[{seen[mapped.event.id]}]")
            )
            continue
        seen[mapped.event.id] = i
        out.append(mapped)
    if problems:
        raise FhirRejected(problems)
    return out


def _expect_type(doc: Any, resource_type: str) -> None:
    if not isinstance(doc, dict):
        raise FhirRejected([Problem("structure", "", f"the body must be a {resource_type} JSON object")])
    if doc.get("resourceType") != resource_type:
        raise FhirRejected(
            [Problem("not-supported", "resourceType", f"this endpoint accepts {resource_type} only")]
        )


def _map_response(
    qr: Any,
    raw: dict[str, Any],
    prefix: str,
    clinic_id: str,
    now: datetime,
    source: str,
    problems: list[Problem],
) -> MappedSession | None:
    before = len(problems)

    def need(value: Any, where: str, text: str, code: Any = "required") -> Any:
        if value is None:
            problems.append(Problem(code, f"{prefix}.{where}", text))
        return value

    if qr.status not in ACCEPTED_STATUSES:
        problems.append(
            Problem("value", f"{prefix}.status", "only completed or amended responses are accepted")
        )

    instrument = None
    if need(qr.questionnaire, "questionnaire", "the questionnaire canonical URL names the instrument"):
        instrument = need(
            codes.instrument_of_questionnaire(qr.questionnaire),
            "questionnaire",
            "unknown questionnaire: use a documented canonical URL or LOINC panel",
            "not-supported",
        )
    client = need(_reference_id(qr.subject, ("Patient",)), "subject", "subject must reference the Patient")
    encounter = need(
        _reference_id(qr.encounter, ("Encounter",)), "encounter", "encounter must reference the Encounter"
    )
    clinician = need(
        _reference_id(qr.author, ("Practitioner", "PractitionerRole")),
        "author",
        "author must reference the clinician (Practitioner or PractitionerRole)",
    )
    authored = qr.authored
    if not isinstance(authored, datetime) or authored.tzinfo is None:
        problems.append(
            Problem("value", f"{prefix}.authored", "authored must be a date and time with a timezone")
        )
        authored = None
    session_number = _session_number(qr.extension, prefix, problems)
    episode = _episode(qr.extension) or codes.DEFAULT_EPISODE
    for value, where in (
        (client, "subject"),
        (encounter, "encounter"),
        (clinician, "author"),
        (episode, "extension"),
    ):
        if value is not None and not _PSEUDONYM.match(value):
            problems.append(
                Problem("value", f"{prefix}.{where}", "identifiers must be 1-64 letters, digits or . _ : -")
            )
    answers: dict[str, Answer] = {}
    if instrument is not None:
        _collect_answers(
            qr.item or [], raw.get("item") or [], instrument, f"{prefix}.item", answers, problems
        )
        if not answers and len(problems) == before:
            problems.append(Problem("required", f"{prefix}.item", "the response has no answered item"))
    if (
        len(problems) > before
        or instrument is None
        or client is None
        or encounter is None
        or clinician is None
        or authored is None
        or session_number is None
    ):
        return None

    event_id = _event_id(qr, clinic_id, client, encounter, instrument)
    try:
        event = SessionCompleted(
            id=event_id,
            source=source,
            time=now,
            subject=client,
            clinic_id=clinic_id,
            correlation_id=event_id,
            data=SessionCompletedData(
                clinician_id=clinician,
                client_id=client,
                episode_id=episode,
                session_number=session_number,
                session_time=authored,
                surveys=[
                    SurveyResponse(
                        instrument=instrument,
                        instrument_version=_short(codes.questionnaire_version(qr.questionnaire)),
                        answers=answers,
                        completed_at=authored,
                    )
                ],
            ),
        )
    except ValidationError as exc:
        # Limits of the contract (e.g. too many items); locations are the event's, not FHIR's.
        errors = exc.errors(include_input=False, include_url=False)
        problems.extend(problems_of_errors(errors, f"{prefix}(SessionCompleted)"))
        return None
    return MappedSession(event, encounter, _derived_from(qr, event_id))


def _short(version: str | None) -> str | None:
    return version[:32] if version else None


def _reference_id(ref: Any, types: Sequence[str]) -> str | None:
    """The id a Reference names: ``Type/id`` (relative or absolute, ``_history`` dropped) or a
    logical reference by identifier value (``type`` must then be one of ``types`` if given)."""
    if ref is None:
        return None
    if ref.reference:
        parts = ref.reference.split("/")
        if "_history" in parts:
            parts = parts[: parts.index("_history")]
        if len(parts) >= 2 and parts[-2] in types and parts[-1]:
            return str(parts[-1])
        return None
    ident = ref.identifier
    if ident is not None and ident.value and (ref.type is None or ref.type in types):
        return str(ident.value)
    return None


def _session_number(extensions: Any, prefix: str, problems: list[Problem]) -> int | None:
    for ext in extensions or []:
        if ext.url == codes.SESSION_NUMBER_EXTENSION:
            value = ext.valuePositiveInt if ext.valuePositiveInt is not None else ext.valueInteger
            if isinstance(value, int) and 1 <= value <= 10_000:
                return value
            problems.append(
                Problem("value", f"{prefix}.extension", "session-number must be an integer from 1 to 10000")
            )
            return None
    problems.append(
        Problem(
            "required",
            f"{prefix}.extension",
            f"the session-number extension is required ({codes.SESSION_NUMBER_EXTENSION})",
        )
    )
    return None


def _episode(extensions: Any) -> str | None:
    for ext in extensions or []:
        if ext.url == codes.EPISODE_EXTENSION:
            if ext.valueReference is not None:
                return _reference_id(ext.valueReference, ("EpisodeOfCare",)) or ""
            if ext.valueIdentifier is not None:
                return str(ext.valueIdentifier.value or "")
            return str(ext.valueString or "")
    return None


def _collect_answers(
    items: Sequence[Any],
    raw_items: Sequence[Any],
    instrument: str,
    prefix: str,
    out: dict[str, Answer],
    problems: list[Problem],
) -> None:
    for i, item in enumerate(items):
        path = f"{prefix}[{i}]"
        raw_item = raw_items[i] if i < len(raw_items) and isinstance(raw_items[i], dict) else {}
        if item.item:  # a group, or a question with nested questions
            _collect_answers(item.item, raw_item.get("item") or [], instrument, f"{path}.item", out, problems)
        answers = item.answer or []
        raw_answers = raw_item.get("answer") or []
        for j, answer in enumerate(answers):
            if answer.item:
                raw_nested = raw_answers[j].get("item") or [] if j < len(raw_answers) else []
                _collect_answers(
                    answer.item, raw_nested, instrument, f"{path}.answer[{j}].item", out, problems
                )
        segment = item.linkId.rstrip("/").rsplit("/", 1)[-1]
        if segment in codes.LOINC_IGNORED or not answers:
            continue
        if segment in codes.LOINC_ITEMS:
            owner, item_id = codes.LOINC_ITEMS[segment]
            if owner != instrument:
                problems.append(Problem("value", f"{path}.linkId", f"this LOINC item belongs to {owner}"))
                continue
        elif _ITEM_ID.match(segment):
            item_id = segment
        else:
            problems.append(
                Problem(
                    "code-invalid", f"{path}.linkId", "linkId must end in an item number or a LOINC item code"
                )
            )
            continue
        if len(answers) > 1:
            problems.append(Problem("value", f"{path}.answer", "an item takes exactly one answer"))
            continue
        raw_answer = raw_answers[0] if raw_answers and isinstance(raw_answers[0], dict) else {}
        value = _answer_value(answers[0], raw_answer, f"{path}.answer[0]", problems)
        if value is None:
            continue
        if item_id in out:
            problems.append(Problem("duplicate", f"{path}.linkId", "this item is answered twice"))
            continue
        out[item_id] = value


def _answer_value(answer: Any, raw: dict[str, Any], path: str, problems: list[Problem]) -> int | float | None:
    if answer.valueInteger is not None:
        if not _is_json_number(raw.get("valueInteger")):
            problems.append(Problem("value", f"{path}.valueInteger", "valueInteger must be a JSON number"))
            return None
        return int(answer.valueInteger)
    if answer.valueDecimal is not None:
        if not _is_json_number(raw.get("valueDecimal")):
            problems.append(Problem("value", f"{path}.valueDecimal", "valueDecimal must be a JSON number"))
            return None
        return _number(answer.valueDecimal)
    if answer.valueCoding is not None:
        coding = answer.valueCoding
        if coding.system == codes.LOINC and coding.code in codes.LOINC_ANSWERS:
            return codes.LOINC_ANSWERS[coding.code]
        for ext in [*(coding.extension or []), *(answer.extension or [])]:
            if ext.url in codes.ORDINAL_VALUE_EXTENSIONS:
                weight = ext.valueDecimal if ext.valueDecimal is not None else ext.valueInteger
                if weight is not None:
                    return _number(weight)
        problems.append(
            Problem(
                "code-invalid",
                f"{path}.valueCoding",
                "answer code not recognised: use a LOINC answer code or an ordinalValue extension",
            )
        )
        return None
    problems.append(
        Problem(
            "not-supported", path, "answer type not supported: use valueCoding, valueInteger or valueDecimal"
        )
    )
    return None


def _is_json_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _number(value: Decimal | int | float) -> int | float:
    number = float(value)
    return int(number) if number.is_integer() else number


def _event_id(qr: Any, clinic_id: str, client: str, encounter: str, instrument: str) -> uuid.UUID:
    ident = qr.identifier
    if ident is not None and ident.value:
        return derive_id("gateway", "fhir", clinic_id, "identifier", ident.system or "", ident.value)
    if qr.id:
        version = qr.meta.versionId if qr.meta is not None and qr.meta.versionId else ""
        return derive_id("gateway", "fhir", clinic_id, "QuestionnaireResponse", qr.id, version)
    return derive_id("gateway", "fhir", clinic_id, "encounter", client, encounter, instrument)


def _derived_from(qr: Any, event_id: uuid.UUID) -> dict[str, Any]:
    if qr.id:
        return {"reference": f"QuestionnaireResponse/{qr.id}"}
    ident = qr.identifier
    if ident is not None and ident.value:
        identifier = {"value": ident.value, **({"system": ident.system} if ident.system else {})}
        return {"type": "QuestionnaireResponse", "identifier": identifier}
    return {
        "type": "QuestionnaireResponse",
        "identifier": {"system": codes.URI_IDENTIFIER_SYSTEM, "value": f"urn:uuid:{event_id}"},
    }
