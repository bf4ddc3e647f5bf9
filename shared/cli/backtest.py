"""``rapport backtest HISTORY`` — how many signals a rule set would have raised over a history.

Reads a history (JSON Lines, one session a line, or CSV, one survey a row — see
``shared.history.sessions``), scores every survey with the instrument registry, groups the scores by
client and runs the rule set's episode evaluation — the same ``evaluate_episode`` the live monitor
runs — over each client's session-sorted trajectories. Reports, per rule and overall, the signals
fired and the share of clients flagged (at least one signal of severity moderate or higher; critical
items are counted separately). ``--compare`` puts a second rule set beside the first.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from shared.pipeline.offline import read_history
from shared.rules.backtest import BacktestReport, History, run_backtest

ERROR_LINES_SHOWN = 20


EPILOG = """\
input (HISTORY), --input-format:
  jsonl  one completed session a line, as for `rapport signals`:
         {"client": "c1", "session": 3, "surveys": [{"instrument": "SRS", "answers": {...}}],
          "clinic": "k1", "clinician": "t1", "episode": "e1", "time": "2025-01-07T10:00:00Z"}
  csv    one survey a row; header with client, session, instrument, optionally clinic,
         clinician, episode, time, and every other column an item id; an empty cell is an
         unanswered item; every row has exactly one cell per header column
  Strict rules, the same as the scoring service's: a key or column given twice is refused
  (duplicate_key), numbers are JSON numbers in ASCII digits, a number too large to represent is
  out_of_range_answer. Rejected records go to stderr as JSON lines (the first 20, then a count).

rule sets: --ruleset A and --compare B are YAML files merged onto the packaged default rule set
  (shared/rules/default_ruleset.yaml); each names its own version. examples/ruleset-strict.yaml
  is a stricter example to compare against.

output (stdout):
  table (default)  input summary (clients, sessions, surveys, rejected records and surveys), then
                   one row per (rule, severity): signals fired, clients with at least one, their
                   share of all clients; A and B side by side with the difference in percentage
                   points; then clients flagged (>= moderate, critical items excluded) and clients
                   with a critical item
  --json           the same as one JSON document: {"input": {...}, "A": {...}, "B": {...},
                   "difference": {...}}; per rule set: ruleset_version, clients, signals,
                   flagged_clients, critical_item_signals, rules: [{rule, kind, severity,
                   signals, clients, share}]

exit status:
  0  every record and survey was read and scored
  1  some record or survey was rejected (counted in the report; details on stderr)
  2  usage error: the history, a rule set or an instrument directory cannot be read
"""


def register(sub: Any) -> None:
    """Add the ``backtest`` subcommand."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "backtest",
        help="run a rule set over a history → signals and flagged clients per rule (A vs B)",
        description="Run the monitor's rules over a whole history (every client's trajectory) and "
        "report how many signals and flagged clients each rule yields.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("history", type=Path, help="history file: JSON Lines (one session a line) or CSV")
    parser.add_argument("--ruleset", type=Path, help="rule set A (YAML merged onto the default)")
    parser.add_argument("--compare", type=Path, help="rule set B, reported beside A")
    parser.add_argument(
        "--input-format",
        "--format",
        dest="format",
        choices=("jsonl", "csv"),
        help="history format (default: from the file name; .csv is CSV, anything else JSON Lines)",
    )
    parser.add_argument(
        "--instrument-dir",
        type=Path,
        action="append",
        default=[],
        help="extra instrument spec directory (repeatable)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar on stderr (there is none either when stderr is not a terminal)",
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from shared.cli.signals import load_inputs
    from shared.rules.config import load_rulebook

    try:
        book_a, registry = load_inputs(args.ruleset, args.instrument_dir)
        book_b = load_rulebook(args.compare) if args.compare else None
        size = args.history.stat().st_size
    except Exception as exc:  # operator-facing: one clear line, no traceback
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    fmt = args.format or ("csv" if args.history.suffix.lower() == ".csv" else "jsonl")
    progress = not args.no_progress and sys.stderr.isatty()
    started = time.perf_counter()
    bar = _bar(total=size, desc="read", unit="B", enabled=progress, scale=True)
    shown = 0

    def on_error(payload: dict[str, Any]) -> None:
        nonlocal shown
        shown += 1
        if shown <= ERROR_LINES_SHOWN:
            sys.stderr.write(json.dumps(payload) + "\n")

    with args.history.open("rb") as fh:
        history, stats = read_history(
            fh, fmt, registry, on_bytes=bar.update if bar else None, on_error=on_error
        )
    if bar:
        bar.close()
    if shown > ERROR_LINES_SHOWN:
        sys.stderr.write(json.dumps({"more_errors": shown - ERROR_LINES_SHOWN}) + "\n")
    stats.read_seconds = time.perf_counter() - started
    reports = {"A": _evaluate(history, book_a, "A", progress)}
    if book_b is not None:
        reports["B"] = _evaluate(history, book_b, "B", progress)
    elapsed = time.perf_counter() - started
    summary = {
        "history": str(args.history),
        "format": fmt,
        "clients": history.clients,
        "sessions": stats.sessions,
        "surveys": history.surveys,
        "risk_unknown_surveys": history.risk_unknown_surveys,
        **stats.to_dict(),
        "seconds": round(elapsed, 3),
    }
    if args.json:
        payload: dict[str, Any] = {"input": summary, **{k: r.to_dict() for k, r in reports.items()}}
        if "B" in reports:
            payload["difference"] = _difference(reports["A"], reports["B"])
        print(json.dumps(payload, indent=2))
    else:
        print(render_table(summary, reports))
    return 1 if stats.bad_lines or stats.unscorable_surveys else 0


def _evaluate(history: History, book: Any, label: str, progress: bool) -> BacktestReport:
    bar = _bar(total=history.clients, desc=f"rules {label}", unit="client", enabled=progress)
    try:
        return run_backtest(history, book, progress=bar.update if bar else None)
    finally:
        if bar:
            bar.close()


def _bar(total: int, desc: str, unit: str, enabled: bool, scale: bool = False) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, unit_scale=scale, file=sys.stderr, mininterval=0.5)


def _difference(a: BacktestReport, b: BacktestReport) -> dict[str, Any]:
    return {
        "flagged_clients": b.flagged_clients - a.flagged_clients,
        "flagged_share": round(b.share(b.flagged_clients) - a.share(a.flagged_clients), 6),
        "signals": b.signals - a.signals,
        "critical_item_signals": b.critical_signals - a.critical_signals,
    }


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def render_table(summary: dict[str, Any], reports: dict[str, BacktestReport]) -> str:
    """The human-readable report: one row per (rule, severity), A and B side by side when comparing."""
    a = reports["A"]
    b = reports.get("B")
    lines = [
        f"history: {summary['history']} ({summary['format']}) — {summary['clients']:,} clients, "
        f"{summary['sessions']:,} sessions, {summary['surveys']:,} surveys in {summary['seconds']:.1f} s",
        f"rejected: {summary['bad_records']:,} records, {summary['unscorable_surveys']:,} surveys "
        f"({summary['unscorable_with_risk']:,} of them with an endorsed risk item: critical "
        f"live, not in the table); risk item unanswered in {summary['risk_unknown_surveys']:,} surveys",
        f"rule set A: {a.ruleset_version}" + (f"   rule set B: {b.ruleset_version}" if b else ""),
        "",
    ]
    rows: list[tuple[str, str, str]] = []
    keys = list(
        dict.fromkeys(
            [(r["rule"], r["severity"]) for r in a.to_dict()["rules"]]
            + ([(r["rule"], r["severity"]) for r in b.to_dict()["rules"]] if b else [])
        )
    )

    def cell(report: BacktestReport | None, rule: str, severity: str) -> tuple[int, int]:
        if report is None:
            return 0, 0
        for (rid, _kind, sev), c in report.by_rule.items():
            if rid == rule and sev == severity:
                return c.signals, c.clients
        return 0, 0

    head = f"{'rule':32} {'severity':9} {'A signals':>10} {'A clients':>10} {'A share':>8}"
    if b:
        head += f" {'B signals':>10} {'B clients':>10} {'B share':>8} {'Δ share':>8}"
    lines.append(head)
    lines.append("-" * len(head))
    for rule, severity in keys:
        sa, ca = cell(a, rule, severity)
        row = f"{rule:32} {severity:9} {sa:>10,} {ca:>10,} {_pct(a.share(ca)):>8}"
        if b:
            sb, cb = cell(b, rule, severity)
            row += f" {sb:>10,} {cb:>10,} {_pct(b.share(cb)):>8} {_delta(b.share(cb) - a.share(ca)):>8}"
        rows.append((rule, severity, row))
    lines.extend(r[2] for r in rows)
    lines.append("-" * len(head))
    flag = f"{'flagged (>= moderate, excl. critical items)':42} {'':>10} {a.flagged_clients:>10,} "
    flag += f"{_pct(a.share(a.flagged_clients)):>8}"
    crit = f"{'critical items':42} {a.critical_signals:>10,} {a.critical_clients:>10,} "
    crit += f"{_pct(a.share(a.critical_clients)):>8}"
    if b:
        flag += f" {'':>10} {b.flagged_clients:>10,} {_pct(b.share(b.flagged_clients)):>8} "
        flag += f"{_delta(b.share(b.flagged_clients) - a.share(a.flagged_clients)):>8}"
        crit += (
            f" {b.critical_signals:>10,} {b.critical_clients:>10,} {_pct(b.share(b.critical_clients)):>8} "
        )
        crit += f"{_delta(b.share(b.critical_clients) - a.share(a.critical_clients)):>8}"
    lines.extend([flag, crit])
    return "\n".join(lines)


def _delta(x: float) -> str:
    return f"{100 * x:+.1f}pp"
