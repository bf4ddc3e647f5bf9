"""One history with every kind of defect through the three entry points of the session pipeline:
the live services' handlers (scoring, then the monitor), ``rapport signals`` and ``rapport backtest``.
They must agree on the scored surveys, the rejections and the signals.

The history is in session order per client (out-of-order delivery may legitimately add signals
live, see ``shared.rules.live``); it holds a redelivered line, which must change nothing.
"""

from __future__ import annotations

import io
import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import shared.cli
from services.monitor.handlers import state_key, track
from services.scoring.handlers import score_record
from shared.contracts.events import SessionCompleted, SessionCompletedData, SurveyResponse
from shared.history.sessions import SessionLine, parse_json_line
from shared.instruments import default_registry
from shared.pipeline.clinics import Scorers
from shared.pipeline.offline import line_context
from shared.rules.config import RuleBook, default_rulebook
from shared.runtime.worker import Record

T = datetime(2026, 1, 5, tzinfo=UTC)
PHQ_ZERO = {str(i): 0 for i in range(1, 10)}
PHQ_THREE = {str(i): 3 for i in range(1, 10)}
SRS_HIGH = {"1": 9.5, "2": 9.5, "3": 9.5, "4": 9.5}
SRS_LOW = {"1": 6.0, "2": 6.0, "3": 6.0, "4": 6.0}


def _line(client: str, session: int, *surveys: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    return {
        "client": client,
        "session": session,
        "clinic": "k1",
        "time": f"2026-01-{session:02d}T10:00:00Z",
        "surveys": [{"instrument": i, "answers": a} for i, a in surveys],
    }


def defect_history() -> list[str]:
    """Every kind of defect, and the healthy sessions around them."""
    lines: list[Any] = [
        # Two PHQ-9s in one session, first all 0 then all 3: the second is a duplicate, rejected.
        _line("dup", 1, ("PHQ-9", PHQ_ZERO), ("PHQ-9", PHQ_THREE)),
        # Too many items missing, item 9 endorsed: rejected and still a critical item.
        _line("risk-missing", 1, ("PHQ-9", {"1": 1, "2": 2, "9": 3})),
        # An out-of-range answer elsewhere does not hide the risk answer.
        _line("risk-range", 1, ("PHQ-9", {**PHQ_ZERO, "4": 7, "9": 1}), ("SRS", SRS_HIGH)),
        # Unknown instrument beside a valid one; unknown item; too many missing without risk.
        _line("mixed", 1, ("NOPE", {"1": 1}), ("SRS", SRS_HIGH)),
        _line("mixed", 2, ("SRS", {**SRS_HIGH, "99": 1})),
        _line("mixed", 3, ("PHQ-9", {"1": 1, "9": 0}), ("SRS", SRS_HIGH)),
        # Item 9 unanswered: prorated total, risk unknown.
        _line("unknown-risk", 1, ("PHQ-9", {str(i): 2 for i in range(1, 9)})),
        # Undecodable and schema-violating lines.
        "{not json",
        json.dumps({"client": "x", "session": 0, "surveys": []}),
        # A healthy trajectory with a rupture, and a deterioration; one line redelivered.
        _line("traj", 1, ("SRS", SRS_HIGH), ("PHQ-9", {str(i): 1 for i in range(1, 10)})),
        _line("traj", 2, ("SRS", SRS_HIGH), ("PHQ-9", {str(i): 1 for i in range(1, 10)})),
        _line("traj", 3, ("SRS", SRS_HIGH), ("PHQ-9", {str(i): 2 for i in range(1, 10)})),
        _line("traj", 4, ("SRS", SRS_LOW), ("PHQ-9", PHQ_THREE)),
        _line("traj", 4, ("SRS", SRS_LOW), ("PHQ-9", PHQ_THREE)),
        _line("traj", 5, ("SRS", SRS_HIGH), ("PHQ-9", PHQ_THREE)),
    ]
    return [x if isinstance(x, str) else json.dumps(x) for x in lines]


def _live(
    lines: list[str], registry: Scorers | None = None, rules: RuleBook | None = None
) -> tuple[set[str], Counter[str], list[dict[str, Any]]]:
    """The services' handlers: each valid line as the SessionCompleted event it stands for."""
    registry, rules = registry or default_registry(), rules or default_rulebook()
    scored: set[str] = set()
    rejections: Counter[str] = Counter()
    signals: list[dict[str, Any]] = []
    states: dict[str, str | None] = {}
    for n, text in enumerate(lines, start=1):
        parsed = parse_json_line(text, n)
        if not isinstance(parsed, SessionLine):
            rejections[parsed.reason] += 1
            continue
        ctx = line_context(parsed, T)
        event = SessionCompleted(
            id=ctx.session_id,
            source="tests",
            time=T,
            subject=ctx.client_id,
            clinic_id=ctx.clinic_id,
            correlation_id=ctx.session_id,
            data=SessionCompletedData(
                clinician_id=ctx.clinician_id,
                client_id=ctx.client_id,
                episode_id=ctx.episode_id,
                session_number=ctx.session_number,
                session_time=ctx.session_time,
                surveys=[SurveyResponse(instrument=s.instrument, answers=s.answers) for s in parsed.surveys],
            ),
        )
        handled = score_record(Record(None, event.model_dump_json().encode(), "t", 0, n), registry, T)
        rejections.update(r.reason for r in handled.rejections)
        for survey in handled.facts:
            scored.add(f"{survey.data.client_id}/{survey.data.session_number}/{survey.data.instrument}")
            key = state_key(survey)
            outcome = track(survey, states.get(key), rules, T)
            if outcome.state is not None:
                states[key] = outcome.state
            signals += [
                {
                    "id": str(s.id),
                    "kind": s.data.kind,
                    "severity": s.data.severity,
                    "rule": s.data.rule_id,
                    "clinic": s.clinic_id,
                    "session": s.data.session_number,
                }
                for s in outcome.signals
            ]
    return scored, rejections, signals


def _cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str, stdin: str = ""
) -> Any:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = shared.cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_live_signals_and_backtest_agree_on_a_history_with_every_defect(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    lines = defect_history()
    scored, live_rejections, live_signals = _live(lines)

    # rapport signals: the same signals (ids included) and the same rejections.
    code, out, err = _cli(monkeypatch, capsys, "signals", stdin="\n".join(lines) + "\n")
    assert code == 1, "something was rejected"
    offline = [json.loads(x) for x in out.splitlines()]
    errors = [json.loads(x) for x in err.splitlines()]
    assert sorted(s["id"] for s in offline) == sorted(s["id"] for s in live_signals)
    assert Counter(e["error"] for e in errors) == live_rejections

    # rapport backtest: the same rejections, the same signals per (rule, severity).
    path = tmp_path / "history.jsonl"
    path.write_text("\n".join(lines) + "\n")
    code, out, _err = _cli(monkeypatch, capsys, "backtest", str(path), "--json", "--no-progress")
    report = json.loads(out)
    assert report["input"]["errors_by_reason"] == dict(sorted(live_rejections.items()))
    assert report["input"]["unscorable_with_risk"] == 2
    by_rule = Counter({(r["rule"], r["severity"]): r["signals"] for r in report["A"]["rules"]})
    by_rule.update({("critical_item.endorsed", "critical"): 0})
    live_by_rule = Counter((s["rule"], s["severity"]) for s in live_signals)
    assert +by_rule == live_by_rule

    # What the history holds, so the comparison above is not vacuous.
    kinds = Counter(s["kind"] for s in live_signals)
    assert kinds["critical_item"] == 7, "risk-missing, risk-range, and every traj session (item 9 > 0)"
    assert {"alliance_drop", "outcome_reliable_deterioration"} <= set(kinds)
    assert "dup/1/PHQ-9" in scored, "the first PHQ-9 of the duplicate session is scored"
    assert set(live_rejections) >= {
        "undecodable",
        "schema_violation",
        "unknown_instrument",
        "unknown_item",
        "out_of_range_answer",
        "too_many_missing",
    }
