"""``rapport signals`` — run the monitor's rules offline over completed sessions on stdin.

JSON Lines in (one completed session a line, see ``shared.history.sessions``), one JSON line per signal
out. Each survey is scored by the instrument registry, wrapped in the same ``SurveyScored`` envelope the
scoring service would publish (ids derived from the line's content), and fed to the same
``shared.rules.evaluate`` the live monitor calls — so lines may arrive out of order or repeat: a
repeated line never yields a repeated signal. A bad line or an unscorable survey becomes a JSON error
line on stderr (reason and locations, never answer values) and the rest goes on; the exit status is 1
when anything was rejected, else 0. ``--format table`` prints a person's view instead of JSON Lines.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from shared.cli.style import BOLD, RED, Style, cell
from shared.contracts.events import Signal, utc_now
from shared.history.sessions import LineError, parse_json_line
from shared.instruments import Registry
from shared.pipeline.offline import OfflineMonitor
from shared.rules.config import RuleBook

EPILOG = """\
input (stdin): JSON Lines, one completed session a line (blank lines skipped, counted in "line"):
  {"client": "c1", "session": 3, "surveys": [{"instrument": "SRS", "answers": {"1": 9, ...}}],
   "clinic": "k1", "clinician": "t1", "episode": "e1", "time": "2025-01-07T10:00:00Z"}
  client, session (1-10000) and surveys (1-20) are required; clinic, clinician, episode and time
  are optional. Lines may repeat or arrive out of order. Strict rules, the same as the scoring
  service's: a key given twice is refused (duplicate_key), numbers are JSON numbers in ASCII digits,
  a number too large to represent is out_of_range_answer.

output (stdout), --format:
  jsonl  (default) one JSON line per signal, as it is raised:
    line             the input line whose session raised it
    id               deterministic signal id (a repeated line never repeats a signal)
    clinic, client, episode, session, instrument
    kind             critical_item, alliance_below_cutoff, alliance_drop, alliance_decline,
                     alliance_repaired, outcome_reliable_deterioration, outcome_not_on_track,
                     outcome_reliable_improvement or dropout_risk
    severity         critical, high, moderate or info
    rule, rule_version, ruleset_version   which rule of which rule set fired
    explanation      one line in plain clinical language
    evidence         the series and thresholds the rule compared ({"series": [...], ...})
  table  one aligned row per signal for a person (line, client, session, instrument, severity,
         kind, explanation) and a closing count by kind; colour only on a terminal and never
         when NO_COLOR is set

errors (stderr): one line per rejected line or survey — JSON {"line", "error", "detail", ...}
  with --format jsonl, a sentence with --format table; reasons and locations, never answer values.
  A survey that cannot be scored but endorsed a risk item still raises critical_item.

exit status:
  0  every line and survey was read and scored
  1  some line or survey was rejected (see stderr); every other line was still processed
  2  configuration error: the rule set or an instrument spec directory cannot be read
"""


def register(sub: Any) -> None:
    """Add the ``signals`` subcommand."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "signals",
        help="run the monitor's rules over sessions from stdin (JSON Lines) → signals",
        description="Score completed sessions read from stdin and print every signal the monitor's "
        "rule set raises, in the order the lines arrive.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--format",
        choices=("jsonl", "table"),
        default="jsonl",
        help="output format: jsonl (default, for programs) or table (for a person)",
    )
    parser.add_argument("--ruleset", type=Path, help="rule-set YAML, merged onto the packaged default")
    parser.add_argument(
        "--instrument-dir",
        type=Path,
        action="append",
        default=[],
        help="extra instrument spec directory (repeatable); its specs override packaged ones by id",
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    table = args.format == "table"
    try:
        book, registry = load_inputs(args.ruleset, args.instrument_dir)
    except Exception as exc:  # operator-facing: one clear line, no traceback
        detail = f"{type(exc).__name__}: {exc}"
        if table:
            sys.stderr.write(f"rapport signals: configuration error: {detail}\n")
        else:
            _stderr({"error": "configuration", "detail": detail})
        return 2
    monitor = OfflineMonitor(book, registry, utc_now())
    rejected = 0
    out = sys.stdout
    style = Style.for_stream(out)
    err_style = Style.for_stream(sys.stderr)
    counts: Counter[str] = Counter()
    if table:
        out.write(style(TABLE_HEAD, BOLD) + "\n")
    for n, raw in enumerate(_byte_lines(sys.stdin), start=1):
        if not raw.strip():
            continue
        parsed = parse_json_line(raw, n)
        if isinstance(parsed, LineError):
            rejected += 1
            _report(parsed.to_dict(), table, err_style)
            continue
        signals, errors = monitor.feed(parsed, n)
        for err in errors:
            rejected += 1
            _report(err, table, err_style)
        for signal in signals:
            counts[signal.data.kind] += 1
            line = signal_line(signal, n)
            if table:
                out.write(table_row(line, style) + "\n")
            else:
                out.write(json.dumps(line, ensure_ascii=False) + "\n")
        if table:
            out.flush()
    if table:
        out.write("\n" + table_summary(counts, rejected) + "\n")
    out.flush()
    return 1 if rejected else 0


def _byte_lines(stream: Any) -> Any:
    """Raw lines when stdin has bytes underneath: invalid UTF-8 is one bad line, not a crash."""
    buffer = getattr(stream, "buffer", None)
    return buffer if buffer is not None else stream


def _stderr(payload: dict[str, Any]) -> None:
    sys.stderr.write(json.dumps(payload, ensure_ascii=False) + "\n")


def _report(payload: dict[str, Any], table: bool, style: Style) -> None:
    if not table:
        _stderr(payload)
        return
    where = f"line {payload['line']}"
    if payload.get("instrument"):
        where += f" ({payload['instrument']})"
    text = f"{where}: {payload['error']}: {payload['detail']}"
    if payload.get("critical_items"):
        text += f" — critical item {', '.join(payload['critical_items'])} endorsed, signal raised"
    sys.stderr.write(style(text, RED) + "\n")


TABLE_HEAD = (
    f"{'line':>5}  {'client':<14}  {'sess':>4}  {'instrument':<10}  {'severity':<8}  "
    f"{'kind':<30}  explanation"
)


def table_row(line: dict[str, Any], style: Style) -> str:
    """One signal (its :func:`signal_line` form) as an aligned table row."""
    severity = style.severity(line["severity"], cell(line["severity"], 8))
    return (
        f"{line['line']:>5}  {cell(line['client'], 14)}  {line['session']:>4}  "
        f"{cell(line['instrument'], 10)}  {severity}  {cell(line['kind'], 30)}  {line['explanation']}"
    )


def table_summary(counts: Counter[str], rejected: int) -> str:
    """The closing line of the table: signals by kind, and how many lines or surveys were rejected."""
    total = sum(counts.values())
    by_kind = ", ".join(f"{kind} {n}" for kind, n in sorted(counts.items()))
    text = f"{total} signal{'s' if total != 1 else ''}" + (f" ({by_kind})" if by_kind else "")
    if rejected:
        text += f"; {rejected} line(s) or survey(s) rejected (see stderr)"
    return text


def load_inputs(ruleset: Path | None, instrument_dirs: list[Path]) -> tuple[RuleBook, Registry]:
    """The rule book and instrument registry the command line asks for (read here, not at import)."""
    from shared.instruments import default_registry, load_registry
    from shared.rules.config import load_rulebook

    book = load_rulebook(ruleset)
    registry = load_registry(extra_dirs=instrument_dirs) if instrument_dirs else default_registry()
    return book, registry


def signal_line(signal: Signal, line: int | None = None) -> dict[str, Any]:
    """The flat JSON form of a signal printed by ``rapport signals`` (``line``: the input line)."""
    d = signal.data
    head: dict[str, Any] = {"line": line} if line is not None else {}
    return {
        **head,
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
