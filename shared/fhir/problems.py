"""What is wrong with a FHIR request, as ``OperationOutcome`` issues that never echo input values.

pydantic's error messages can quote the input; an answer is PHI. Issues carry the element's
location (a FHIRPath-like expression built from element names and indexes only) and a fixed text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

IssueCode = Literal[
    "invalid",
    "structure",
    "required",
    "value",
    "code-invalid",
    "not-supported",
    "duplicate",
    "security",
    "forbidden",
    "too-costly",
    "throttled",
    "transient",
    "conflict",
    "informational",
]
Severity = Literal["fatal", "error", "warning", "information"]

#: pydantic error types whose messages are built from the schema only, never from the input
#: (other types, e.g. UUID parsing, may quote part of it).
SAFE_MESSAGE_TYPES = frozenset(
    {
        "missing",
        "int_type",
        "int_parsing",
        "int_from_float",
        "float_type",
        "float_parsing",
        "decimal_type",
        "decimal_parsing",
        "string_type",
        "bool_type",
        "bool_parsing",
        "list_type",
        "dict_type",
        "model_type",
        "model_attributes_type",
        "literal_error",
        "enum",
        "greater_than",
        "greater_than_equal",
        "less_than",
        "less_than_equal",
        "too_short",
        "too_long",
        "string_too_short",
        "string_too_long",
        "string_pattern_mismatch",
        "datetime_type",
        "datetime_parsing",
        "datetime_from_date_parsing",
        "timezone_aware",
        "date_parsing",
        "json_invalid",
        "json_type",
        "union_tag_invalid",
        "union_tag_not_found",
        "uuid_type",
    }
)
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


@dataclass(frozen=True, slots=True)
class Problem:
    """One issue: FHIR issue type, where (an expression of element names and indexes), and a fixed
    text that names no input value."""

    code: IssueCode
    expression: str
    diagnostics: str
    severity: Severity = "error"

    def issue(self) -> dict[str, Any]:
        """The ``OperationOutcome.issue`` element of this problem."""
        out: dict[str, Any] = {"severity": self.severity, "code": self.code, "diagnostics": self.diagnostics}
        if self.expression:
            out["expression"] = [self.expression]
        return out


class FhirRejected(ValueError):
    """A FHIR request that cannot become an event; ``problems`` says where and why."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__(f"{len(problems)} problem(s)")
        self.problems = tuple(problems)


def expression(prefix: str, loc: Iterable[object]) -> str:
    """``prefix`` plus ``loc`` as a FHIRPath-like expression (``QuestionnaireResponse.item[0].linkId``).

    Parts that are not element names (a sender's unknown key) are shown as ``*``.
    """
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and _NAME.match(part):
            out += f".{part.removesuffix('__ext')}" if part != "resource_type" else ".resourceType"
        else:
            out += ".*"
    return out


def problems_of_errors(errors: Sequence[Any], prefix: str, limit: int = 20) -> list[Problem]:
    """Problems of pydantic validation errors (``errors(include_input=False)``), values left out."""
    out: list[Problem] = []
    for err in errors[:limit]:
        kind = str(err.get("type", "error"))
        loc = tuple(err.get("loc", ()))
        if kind == "extra_forbidden":
            # The unknown key itself is the sender's text: name its parent only.
            out.append(Problem("structure", expression(prefix, loc[:-1]), "unknown element"))
            continue
        text = str(err.get("msg", "")) if kind in SAFE_MESSAGE_TYPES else "invalid value"
        code: IssueCode = (
            "required" if kind == "missing" else "structure" if kind.startswith("json") else "value"
        )
        out.append(Problem(code, expression(prefix, loc), f"{text} [{kind}]"))
    if len(errors) > limit:
        out.append(Problem("too-costly", prefix, f"{len(errors) - limit} more problems not listed"))
    return out


def operation_outcome(problems: Iterable[Problem]) -> dict[str, Any]:
    """An R4 ``OperationOutcome`` (JSON) listing ``problems``."""
    issues = [p.issue() for p in problems]
    if not issues:
        issues = [{"severity": "information", "code": "informational", "diagnostics": "ok"}]
    return {"resourceType": "OperationOutcome", "issue": issues}


def outcome_of(code: IssueCode, diagnostics: str, severity: Severity = "error") -> dict[str, Any]:
    """An ``OperationOutcome`` with a single issue (401, 403, 413, 415, 429, 503 …)."""
    return operation_outcome([Problem(code, "", diagnostics, severity)])
