"""``rapport signals`` — run the monitor's rules offline over completed sessions on stdin.

JSON Lines in (one completed session a line, see ``shared.history.sessions``), one JSON line per signal
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
from pathlib import Path
from typing import Any

from shared.contracts.events import Signal, utc_now
from shared.history.sessions import LineError, parse_json_line
from shared.pipeline.clinics import ClinicRegistries
from shared.pipeline.offline import OfflineMonitor
from shared.rules.config import RuleBook


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
    add_variant_option(parser)
    parser.set_defaults(handler=_run)


def add_variant_option(parser: argparse.ArgumentParser) -> None:
    """``--variant ID=NAME`` (repeatable): spec variants for every clinic, over the rule set's own."""
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="ID=NAME",
        help=(
            "Score an instrument with a named variant of its spec for every clinic, e.g. PHQ-9=lowe_mcid "
            "(repeatable). Added to the rule set's `variants`; a clinic's own `variants` still win."
        ),
    )


def parse_variants(items: list[str]) -> dict[str, str]:
    """``["PHQ-9=lowe_mcid"]`` → ``{"PHQ-9": "lowe_mcid"}``; ``ValueError`` on a malformed item."""
    chosen: dict[str, str] = {}
    for item in items:
        instrument, sep, name = item.partition("=")
        if not sep or not instrument or not name:
            raise ValueError(f"--variant {item!r}: expected ID=NAME, e.g. PHQ-9=lowe_mcid")
        chosen[instrument] = name
    return chosen


def _run(args: argparse.Namespace) -> int:
    try:
        book, registry = load_inputs(args.ruleset, args.instrument_dir, args.variant)
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


def load_inputs(
    ruleset: Path | None, instrument_dirs: list[Path], variants: list[str] | None = None
) -> tuple[RuleBook, ClinicRegistries]:
    """The rule book (with ``--variant`` items added) and the per-clinic instrument registries the
    command line asks for (read here, not at import)."""
    from shared.instruments import default_registry, load_registry
    from shared.rules.config import load_rulebook

    book = load_rulebook(ruleset).with_variants(parse_variants(variants or []))
    registry = load_registry(extra_dirs=instrument_dirs) if instrument_dirs else default_registry()
    return book, ClinicRegistries(registry, book)


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
