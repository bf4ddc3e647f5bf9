"""JSON logs carry allowlisted fields only, so PHI cannot leak through ``extra``."""

from __future__ import annotations

import json
import logging

from shared.runtime.logs import JsonFormatter


def _render(logger: str, msg: str, *args: object, **extra: object) -> dict[str, object]:
    record = logging.LogRecord(logger, logging.INFO, __file__, 1, msg, args, None)
    for k, v in extra.items():
        setattr(record, k, v)
    return json.loads(JsonFormatter().format(record))


def test_allowlisted_extras_are_kept_and_others_dropped() -> None:
    out = _render(
        "services.scoring", "dead-lettered", reason="undecodable", client_id="c-1", answers={"9": 3}
    )
    assert out["reason"] == "undecodable"
    assert "client_id" not in out
    assert "answers" not in out
    assert out["message"] == "dead-lettered"


def test_third_party_args_are_reduced_to_phi_free_forms() -> None:
    out = _render("aiokafka", "bad record %r", {"answers": {"9": 3}, "note": "Jane Doe feels low"})
    assert out["message"] == "bad record '<dict>'"
    listed = _render("aiokafka", "notes %s", ["Jane Doe feels low", "t.topic", 3])
    assert listed["message"] == "notes ['<str>', 't.topic', 3]"


def test_third_party_operational_args_stay_readable() -> None:
    out = _render("faust.tables.recovery", "Crashed reason=%r on %s", ValueError("client c-1"), "t.topic-1")
    assert out["message"] == "Crashed reason='ValueError' on t.topic-1"
    raw = _render("aiokafka", "value %r", b"raw bytes")
    assert raw["message"] == "value '<bytes>'"


def test_exception_is_reduced_to_its_type() -> None:
    try:
        raise ValueError("client c-42 answered 3")
    except ValueError:
        import sys

        record = logging.LogRecord("services.x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    out = json.loads(JsonFormatter().format(record))
    assert out["error_type"] == "ValueError"
    assert "c-42" not in json.dumps(out)
