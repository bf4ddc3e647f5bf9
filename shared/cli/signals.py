"""``rapport signals`` — run the monitor's rules offline over completed sessions on stdin.

JSON Lines in (one completed session a line, see ``shared.rules.sessions``), one JSON line per signal
out. Each survey is scored by the instrument registry, wrapped in the same ``SurveyScored`` envelope the
scoring service would publish (ids derived from the line's content), and fed to the same
``shared.rules.evaluate`` the live monitor calls — so lines may arrive out of order or repeat: a
repeated line never yields a repeated signal. A bad line or an unscorable survey becomes a JSON error
line on stderr (reason and locations, never answer values) and the rest goes on; the exit status is 1
when anything was rejected, else 0.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from shared.events import Signal, derive_id, utc_now
from shared.rules.config import RuleBook
from shared.rules.sessions import LineError, SessionLine, canonical_surveys, parse_json_line, session_time
from shared.rules.trajectory import ClientState

SOURCE = "rapport/cli"


def register(sub: Any) -> None:
    """Add the ``signals`` subcommand."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "signals",
        help="Score sessions from stdin (JSON Lines) and print the monitor's signals as JSON Lines.",
        description=(
            "Reads one completed session per line on stdin, e.g. "
            '{"client": "c1", "session": 3, "surveys": [{"instrument": "SRS", "answers": {"1": 9}}]} '
            "(optional: clinic, clinician, episode, time) and prints every signal the rule set raises."
        ),
    )
    parser.add_argument("--ruleset", type=Path, help="Rule-set YAML, merged onto the packaged default.")
    parser.add_argument(
        "--instrument-dir",
        type=Path,
        action="append",
        default=[],
        help="Extra instrument spec directory (repeatable); its specs override packaged ones by id.",
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    try:
        book, registry = load_inputs(args.ruleset, args.instrument_dir)
    except Exception as exc:  # operator-facing: one clear line, no traceback
        _stderr({"error": "configuration", "detail": f"{type(exc).__name__}: {exc}"})
        return 2
    monitor = OfflineMonitor(book, registry, utc_now())
    rejected = 0
    out = sys.stdout
    for n, raw in enumerate(sys.stdin, start=1):
        if not raw.strip():
            continue
        parsed = parse_json_line(raw, n)
        if isinstance(parsed, LineError):
            rejected += 1
            _stderr(parsed.to_dict())
            continue
        signals, errors = monitor.feed(parsed, n)
        for err in errors:
            rejected += 1
            _stderr(err)
        for signal in signals:
            out.write(json.dumps(signal_line(signal), ensure_ascii=False) + "\n")
    out.flush()
    return 1 if rejected else 0


def _stderr(payload: dict[str, Any]) -> None:
    sys.stderr.write(json.dumps(payload, ensure_ascii=False) + "\n")


def load_inputs(ruleset: Path | None, instrument_dirs: list[Path]) -> tuple[RuleBook, Any]:
    """The rule book and instrument registry the command line asks for (read here, not at import)."""
    from shared.instruments import default_registry, load_registry
    from shared.rules.config import load_rulebook

    book = load_rulebook(ruleset)
    registry = load_registry(extra_dirs=instrument_dirs) if instrument_dirs else default_registry()
    return book, registry


def signal_line(signal: Signal) -> dict[str, Any]:
    """The flat JSON form of a signal printed by ``rapport signals``."""
    d = signal.data
    return {
        "id": str(signal.id),
        "clinic": signal.clinic_id,
        "client": d.client_id,
        "episode": d.episode_id,
        "session": d.session_number,
        "instrument": d.instrument,
        "kind": d.kind,
        "severity": d.severity,
        "rule": d.rule_id,
        "rule_version": d.rule_version,
        "ruleset_version": d.ruleset_version,
        "explanation": d.explanation,
        "evidence": d.evidence.model_dump(mode="json"),
    }


class OfflineMonitor:
    """The live monitor's per-client loop, in memory: score → ``SurveyScored`` → ``evaluate``."""

    def __init__(self, book: RuleBook, registry: Any, now: datetime) -> None:
        self.book = book
        self.registry = registry
        self.now = now
        self.states: dict[tuple[str, str], ClientState] = {}

    def feed(self, line: SessionLine, line_no: int = 0) -> tuple[list[Signal], list[dict[str, Any]]]:
        """New signals raised by one session, and error payloads for surveys that could not be scored."""
        from shared.instruments import ScoreFailure, score_survey
        from shared.rules.live import evaluate
        from shared.scoring import SessionContext, scored_event

        key = (line.clinic, line.client)
        state = self.states.get(key)
        # The session's id stands in for the SessionCompleted id: same content → same id, so a
        # repeated line is a redelivery and a changed one is a correction.
        session_id = derive_id(
            SOURCE, line.clinic, line.client, line.episode, line.session, canonical_surveys(line)
        )
        ctx = SessionContext(
            session_id,
            line.clinic,
            line.client,
            line.clinician,
            line.episode,
            line.session,
            session_time(line, self.now),
        )
        signals: list[Signal] = []
        errors: list[dict[str, Any]] = []
        seen: set[str] = set()
        for survey in line.surveys:
            where = {"line": line_no, "client": line.client, "session": line.session}
            if survey.instrument in seen:
                errors.append(
                    {
                        **where,
                        "instrument": survey.instrument,
                        "error": "schema_violation",
                        "detail": "duplicate instrument in one session",
                    }
                )
                continue
            seen.add(survey.instrument)
            result = score_survey(self.registry, survey.instrument, survey.answers)
            if isinstance(result, ScoreFailure):
                err: dict[str, Any] = {
                    **where,
                    "instrument": survey.instrument,
                    "error": result.reason,
                    "detail": result.detail,
                }
                if result.critical_items:
                    err["critical_items"] = list(result.critical_items)
                errors.append(err)
            # Same construction as the live scoring service: an unscorable survey with an endorsed
            # risk item still becomes an event, so the risk signal is raised offline too.
            event = scored_event(ctx, result, self.registry, now=self.now, source=SOURCE)
            if event is None:
                continue
            evaluation = evaluate(state, event, self.book, self.now)
            state = evaluation.state
            signals.extend(evaluation.signals)
        if state is not None:
            self.states[key] = state
        return signals, errors
