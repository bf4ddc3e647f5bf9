"""The one strict decoder: duplicate keys, numbers, encodings and error locations."""

from __future__ import annotations

import json
import math

import pytest

from shared.contracts.deadletters import Rejection, decode
from shared.contracts.decoding import (
    Invalid,
    NotANumber,
    parse_json,
    parse_number,
    render_location,
    validate_json,
)
from shared.contracts.events import SessionCompleted, SurveyResponse
from shared.history.sessions import SessionLine
from tests.support import session_event

PHQ9 = {"1": 1, "2": 1, "3": 1, "4": 1, "5": 1, "6": 1, "7": 1, "8": 1, "9": 0}


def _session_text(**replace: str) -> str:
    """A valid history line with some raw JSON fragments substituted (to write duplicate keys)."""
    text = (
        '{"client": "c1", "session": 1, "surveys": ['
        '{"instrument": "GAD-7", "answers": {"1": 1, "2": 1, "3": 1, "4": 1, "5": 1, "6": 1, "7": 1}}, '
        '{"instrument": "PHQ-9", "answers": ANSWERS}]}'
    )
    text = text.replace("ANSWERS", replace.get("answers", json.dumps(PHQ9)))
    for old, new in replace.items():
        if old != "answers":
            text = text.replace(old, new)
    return text


def test_a_valid_record_decodes() -> None:
    line = validate_json(SessionLine, _session_text())
    assert isinstance(line, SessionLine) and line.surveys[1].answers["9"] == 0


@pytest.mark.parametrize(
    ("text", "location"),
    [
        ('{"instrument": "PHQ-9", "instrument": "GAD-7", "answers": {"1": 1}}', "instrument"),
        ('{"instrument": "PHQ-9", "answers": {"1": 1, "1": 3}}', "answers.*"),
        ('{"instrument": "PHQ-9", "answers": {"1": 1}, "Jane Doe": 1, "Jane Doe": 2}', "*"),
    ],
)
def test_a_key_given_twice_is_refused_with_its_location(text: str, location: str) -> None:
    got = validate_json(SurveyResponse, text)
    assert isinstance(got, Invalid)
    assert (got.reason, got.detail) == ("duplicate_key", f"duplicate_key@{location}")
    assert "Jane" not in got.detail


def test_duplicate_keys_deep_in_a_session_name_the_contract_field() -> None:
    text = _session_text(
        answers='{"1": 1, "2": 1, "3": 1, "4": 1, "5": 1, "6": 1, "7": 1, "8": 1, "9": 0, "9": 3}'
    )
    text = text.replace('"client": "c1"', '"client": "c1", "client": "c2"')
    got = validate_json(SessionLine, text)
    assert isinstance(got, Invalid)
    assert got.detail == "duplicate_key@client; duplicate_key@surveys[1].answers.*"


def test_schema_errors_name_contract_fields_and_mask_sender_keys() -> None:
    doc = json.loads(_session_text())
    doc["client"] = 5
    doc["surveys"][1]["answers"]["Jane Doe"] = "three"
    got = validate_json(SessionLine, json.dumps(doc))
    assert isinstance(got, Invalid) and got.reason == "schema_violation"
    assert "string_type@client" in got.detail
    assert "@surveys[1].answers.*" in got.detail
    assert "Jane" not in got.detail and "three" not in got.detail
    assert "@*" not in got.detail.replace("answers.*", "")  # no location is masked whole


def test_render_location_without_a_model_shows_contract_fields_only() -> None:
    assert (
        render_location(("data", "surveys", 1, "answers", "Jane", "[key]"))
        == "data.surveys[1].answers.*[key]"
    )
    assert render_location(()) == "<root>"


@pytest.mark.parametrize(
    "text",
    [
        '{"instrument": "PHQ-9", "answers": {"1": NaN}}',
        '{"instrument": "PHQ-9", "answers": {"1": Infinity}}',
        '{"instrument": "PHQ-9", "answers": {"1": -Infinity}}',
        '{"instrument": "PHQ-9", "answers": {"1": ١}}',  # Arabic-Indic digit one
        '{"instrument": "PHQ-9", "answers": {"1": 01}}',
        '{"instrument": "PHQ-9", "answers": {"1": +1}}',
        '{"instrument": "PHQ-9", "answers": {"1": .5}}',
        '{"instrument": "PHQ-9", "answers": {"1": 1}} trailing',
        '\ufeff{"instrument": "PHQ-9", "answers": {"1": 1}}',
        '{"instrument": "PHQ-9\\ud800", "answers": {"1": 1}}',
        "[" * 10_000,
        "",
    ],
)
def test_what_is_not_strict_json_is_undecodable(text: str) -> None:
    got = validate_json(SurveyResponse, text)
    assert isinstance(got, Invalid) and got.reason == "undecodable", got


def test_invalid_utf8_is_undecodable() -> None:
    got = validate_json(SurveyResponse, b'{"instrument": "PHQ-9\xff", "answers": {}}')
    assert isinstance(got, Invalid) and got.reason == "undecodable"


def test_a_lone_surrogate_is_undecodable_on_the_slow_path_too() -> None:
    got = parse_json('{"a": 1, "a": "\\ud800"}')
    assert isinstance(got, Invalid) and got.reason == "undecodable"


@pytest.mark.parametrize("number", ["9" * 10_000, "-" + "9" * 5_000, "1e400", "-1e400"])
def test_oversized_numbers_decode_as_infinite_answers(number: str) -> None:
    got = validate_json(SurveyResponse, f'{{"instrument": "PHQ-9", "answers": {{"1": {number}}}}}')
    assert isinstance(got, SurveyResponse)
    value = got.answers["1"]
    assert isinstance(value, float) and math.isinf(value) and (value < 0) == number.startswith("-")


def test_a_ten_megabyte_integer_is_not_called_invalid_json() -> None:
    raw = b'{"instrument": "PHQ-9", "answers": {"1": ' + b"7" * (10 * 1024 * 1024) + b"}}"
    got = validate_json(SurveyResponse, raw)
    assert isinstance(got, SurveyResponse) and got.answers["1"] == math.inf


def test_an_oversized_number_outside_an_answer_is_a_schema_violation() -> None:
    got = validate_json(SessionLine, _session_text().replace('"session": 1', '"session": ' + "9" * 5000))
    assert isinstance(got, Invalid) and got.reason == "schema_violation"
    assert got.detail.endswith("@session")


def test_schema_violation_keeps_the_parsed_document_for_safe_labels() -> None:
    got = validate_json(SurveyResponse, '{"instrument": "PHQ-9", "answers": {"1": "x"}}')
    assert isinstance(got, Invalid) and got.parsed == {"instrument": "PHQ-9", "answers": {"1": "x"}}
    assert validate_json(SurveyResponse, "{nope").parsed is None  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("cell", "value"),
    [("", None), ("  ", None), ("3", 3), (" 3 ", 3), ("-0", 0), ("2.5", 2.5), ("1e2", 100.0), ("0.10", 0.1)],
)
def test_csv_numbers_follow_the_json_number_grammar(cell: str, value: float | None) -> None:
    got = parse_number(cell)
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize(
    "cell", ["٣", "３", "+3", ".5", "5.", "03", "1_000", "nan", "inf", "1,5", "0x1", "3 4"]
)
def test_csv_cells_that_are_not_json_numbers_are_refused(cell: str) -> None:
    with pytest.raises(NotANumber):
        parse_number(cell)


def test_oversized_csv_numbers_become_infinite() -> None:
    assert parse_number("9" * 10_000) == math.inf
    assert parse_number("-" + "9" * 10_000) == -math.inf
    assert parse_number("1e999") == math.inf


def test_dead_letter_decode_uses_the_strict_decoder() -> None:
    raw = session_event().model_dump_json()
    doubled = raw.replace('"subject":', '"subject": "other", "subject":', 1)
    got = decode(SessionCompleted, doubled.encode())
    assert isinstance(got, Rejection) and (got.reason, got.detail) == (
        "duplicate_key",
        "duplicate_key@subject",
    )
    ok = decode(SessionCompleted, raw.encode())
    assert isinstance(ok, SessionCompleted)
