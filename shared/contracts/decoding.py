"""The one strict decoder of Rapport's input: JSON records and the numbers of CSV cells.

Every reader of untrusted input goes through here — the scoring service's dead-letter reasons
(:func:`shared.contracts.deadletters.decode`), ``rapport score``, ``rapport signals`` and
``rapport backtest`` — so one input is accepted or refused the same way everywhere:

* **UTF-8 JSON only**, standard grammar: ``NaN``, ``Infinity``, a byte-order mark, a lone surrogate
  escape or nesting deeper than the parser's limit make a record ``undecodable``;
* **a key twice in one object** is refused as ``duplicate_key`` (anywhere in the record): "last one
  wins" would silently pick one of two answers a sender gave;
* **numbers are ASCII digits** in the JSON number grammar, in JSON and in CSV cells alike
  (:func:`parse_number`); a number too large to represent (a 10 MB integer, ``1e400``) is decoded
  as an infinite value, which the scorer refuses as ``out_of_range_answer`` where it is an answer
  and the model refuses as ``schema_violation`` anywhere else — never "not valid JSON";
* **error locations name the contract field** (``client``, ``surveys[1].answers``), list positions
  are 0-based in brackets, and keys the sender chose (item ids, unknown keys) are shown as ``*``:
  a location never carries a value or a sender-chosen name, which may be PHI.
"""

from __future__ import annotations

import json
import re
import types
from collections import abc
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Final, TypeVar, Union, get_args, get_origin

import jiter
from pydantic import BaseModel, ValidationError

from shared.contracts.events import DeadLetterReason, contract_field_names

M = TypeVar("M", bound=BaseModel)

#: Python refuses to convert longer digit strings to ``int`` (``sys.int_info.default_max_str_digits``).
MAX_INT_DIGITS: Final = 4300
#: At most this many errors are listed in a detail; the rest are counted.
ERROR_LIMIT: Final = 5

_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?", re.ASCII)
_SURROGATE = re.compile("[\ud800-\udfff]")
_QUOTED = re.compile(r'"[^"]*"')
_POSITION = re.compile(r"at line \d+ column \d+$")


@dataclass(frozen=True, slots=True)
class Invalid:
    """Why a record was refused. ``detail`` holds error types and locations only, never values.

    ``parsed`` is the decoded JSON document when the record was JSON but not a valid model (callers
    may read a safely-shaped field from it, e.g. an instrument id to label an error); ``None`` when the
    record could not be decoded at all. It never goes into a log or an error message.
    """

    reason: DeadLetterReason
    detail: str
    parsed: Any = None


class NotANumber(ValueError):
    """A CSV cell that is not a number in the JSON number grammar (ASCII digits only)."""


# --------------------------------------------------------------------------- numbers


def parse_number(text: str) -> int | float | None:
    """A CSV cell as an answer, by the JSON number rule: empty → ``None`` (unanswered).

    Surrounding whitespace is ignored. Only ``-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?`` in
    ASCII digits is a number (no ``+3``, ``.5``, ``٣``, ``1_000``, ``nan``); integers stay ``int``.
    A number too large to represent becomes ``±inf`` (refused later as out of range). Raises
    :class:`NotANumber` for anything else.
    """
    cell = text.strip()
    if not cell:
        return None
    match = _NUMBER.fullmatch(cell)
    if match is None:
        raise NotANumber("not a number")
    if match.group(1) is None and match.group(2) is None:
        return _json_int(cell)
    return float(cell)


def _json_int(text: str) -> int | float:
    if len(text) > MAX_INT_DIGITS:
        return float("-inf") if text.startswith("-") else float("inf")
    return int(text)


# --------------------------------------------------------------------------- JSON


class _Duplicates(dict[str, Any]):
    """A decoded object in which some key appeared more than once (the slow path only)."""

    __slots__ = ("duplicates",)

    def __init__(self, pairs: list[tuple[str, Any]], duplicates: list[str]) -> None:
        super().__init__(pairs)
        self.duplicates = duplicates


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) == len(pairs):
        return out
    seen: set[str] = set()
    dups: dict[str, None] = {}
    for key, _ in pairs:
        if key in seen:
            dups[key] = None
        seen.add(key)
    return _Duplicates(pairs, list(dups))


def _no_constant(name: str) -> Any:
    raise ValueError("NaN and Infinity are not JSON")


def parse_json(raw: bytes | str, model: type[BaseModel] | None = None) -> Any:
    """Decode one JSON document strictly (see the module docstring); :class:`Invalid` when refused.

    ``model`` is the contract the document is meant to be: it only shapes the location of a
    duplicate key (which parts are field names, which are sender-chosen and masked).
    """
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    try:
        return jiter.from_json(data, allow_inf_nan=False, catch_duplicate_keys=True, cache_mode="keys")
    except ValueError as exc:
        message = str(exc)
    if message.startswith("Detected duplicate key") or message.startswith("number out of range"):
        return _parse_slow(data, model)
    return Invalid("undecodable", "not valid JSON: " + _safe_message(message))


def _safe_message(message: str) -> str:
    """jiter's message without anything quoted from the input (e.g. a key), position kept."""
    return _QUOTED.sub('"…"', message)


def _parse_slow(data: bytes, model: type[BaseModel] | None) -> Any:
    """The rare path: find where duplicate keys are, and decode oversized numbers as ``±inf``."""
    try:
        text = data.decode("utf-8")
        doc = json.loads(
            text,
            object_pairs_hook=_pairs,
            parse_int=_json_int,
            parse_constant=_no_constant,
        )
    except (ValueError, RecursionError) as exc:
        # jiter found the first problem; the standard parser stopped at another one first.
        kind = "not valid UTF-8" if isinstance(exc, UnicodeDecodeError) else "not valid JSON"
        return Invalid("undecodable", kind)
    found: list[tuple[Any, ...]] = []
    bad_text = _walk(doc, (), found)
    if bad_text:
        return Invalid("undecodable", "not valid JSON: lone surrogate in a string")
    if found:
        locations = [render_location(path, model) for path in found]
        return Invalid("duplicate_key", _join(f"duplicate_key@{loc}" for loc in locations), None)
    return doc


def _walk(node: Any, path: tuple[Any, ...], found: list[tuple[Any, ...]]) -> bool:
    """Collect the paths of duplicated keys; True when a string holds a lone surrogate."""
    stack: list[tuple[Any, tuple[Any, ...]]] = [(node, path)]
    bad = False
    while stack:
        value, where = stack.pop()
        if isinstance(value, dict):
            if isinstance(value, _Duplicates):
                found.extend((*where, key) for key in value.duplicates)
            for key, item in value.items():
                bad = bad or bool(_SURROGATE.search(key))
                stack.append((item, (*where, key)))
        elif isinstance(value, list):
            stack.extend((item, (*where, i)) for i, item in enumerate(value))
        elif isinstance(value, str):
            bad = bad or bool(_SURROGATE.search(value))
    found.sort(key=lambda p: tuple(str(x) for x in p))
    return bad


def validate_json(model: type[M], raw: bytes | str) -> M | Invalid:
    """Decode ``raw`` strictly and validate it as ``model``.

    Reasons: ``undecodable`` (not UTF-8 JSON), ``duplicate_key``, ``schema_violation`` (not the
    model; ``detail`` lists error types at contract locations, e.g. ``missing@client``).
    """
    doc = parse_json(raw, model)
    if isinstance(doc, Invalid):
        return doc
    return validate_python(model, doc)


def validate_python(model: type[M], doc: Any) -> M | Invalid:
    """Validate an already-decoded document as ``model`` (``schema_violation`` when it is not one)."""
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False, include_context=False)
        return Invalid("schema_violation", summarize_errors(errors, model), doc)


# --------------------------------------------------------------------------- locations


def summarize_errors(
    errors: Sequence[Any], model: type[BaseModel] | None = None, limit: int = ERROR_LIMIT
) -> str:
    """pydantic errors as ``type@location; ...`` — types and contract locations only, never values.

    With ``model`` each location is walked along the model: field names are shown, list positions
    as ``[i]``, dict keys (sender-chosen) as ``*``. Without it, parts that are field names of any
    contract are shown and every other string is masked.
    """
    seen: dict[str, None] = {}
    for err in errors:
        loc = render_location(tuple(err.get("loc", ())), model)
        seen.setdefault(f"{err.get('type', 'error')}@{loc}", None)
    return _join(seen, limit)


def _join(parts: Iterable[str], limit: int = ERROR_LIMIT) -> str:
    items = list(parts)
    shown = items[:limit]
    if len(items) > limit:
        shown.append(f"+{len(items) - limit} more")
    return "; ".join(shown)


def render_location(loc: Sequence[Any], model: type[BaseModel] | None = None) -> str:
    """A pydantic-style location as ``data.surveys[1].answers.*`` (see :func:`summarize_errors`)."""
    out = ""
    node: Any = model if model is not None else _ANY_CONTRACT
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            node = _item_type(node)
            continue
        kind, node = _step(node, str(part))
        if kind == "field":
            out += f".{part}" if out else str(part)
        elif kind == "tag":
            if part == "[key]":
                out += "[key]"
        else:  # a dict key or anything else the sender chose
            out += ".*" if out else "*"
    return out or "<root>"


class _AnyContract:
    """Marker node: no model given, so any contract field name is shown."""


_ANY_CONTRACT: Final = _AnyContract()


def _unwrap(annotation: Any) -> list[Any]:
    """The members of an annotation, without ``Annotated`` and ``None``."""
    if annotation is None:
        return []
    origin = get_origin(annotation)
    if origin is Annotated:
        return _unwrap(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        members: list[Any] = []
        for arg in get_args(annotation):
            if arg is not type(None):
                members.extend(_unwrap(arg))
        return members
    return [annotation]


def _is_model(member: Any) -> bool:
    return isinstance(member, type) and issubclass(member, BaseModel)


def _step(node: Any, part: str) -> tuple[str, Any]:
    """How one string part of a location reads at ``node``: ``field``, ``key``, ``tag`` or ``masked``."""
    if node is _ANY_CONTRACT:
        if part == "[key]":
            return "tag", node
        return ("field", node) if part in contract_field_names() else ("masked", node)
    members = _unwrap(node)
    models = [m for m in members if _is_model(m)]
    for member in models:
        field = member.model_fields.get(part)
        if field is not None:
            return "field", field.annotation
    for member in members:
        if get_origin(member) in (dict, abc.Mapping) or member is dict:
            args = get_args(member)
            return "key", args[1] if len(args) == 2 else None
    if members and not models:
        # After a leaf: a union member's tag (``int``, ``float``) or ``[key]`` — pydantic's, not the sender's.
        return "tag", node
    return "masked", None


def _item_type(node: Any) -> Any:
    if node is _ANY_CONTRACT:
        return node
    for member in _unwrap(node):
        if get_origin(member) in (list, tuple, abc.Sequence):
            args = get_args(member)
            return args[0] if args else None
    return None
