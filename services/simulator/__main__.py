"""``python -m services.simulator``: parse flags into settings and run. Nothing else.

Flags override ``RAPPORT_SIMULATOR_*`` environment variables, which override the defaults.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from services.simulator.settings import SimulatorSettings

EPILOG = """\
output:
  to Kafka (default)   session-completed events on <namespace>rapport.session-completed.v1, keyed by
                       client; a one-line summary on stdout at the end
  --history-out FILE   JSON Lines history instead (the input of `rapport signals` and
  / --dry-run          `rapport backtest`: client, session, clinic, clinician, episode, time,
                       surveys); the summary goes to stderr when the history goes to stdout

every option can also be set as RAPPORT_SIMULATOR_<OPTION> (e.g. RAPPORT_SIMULATOR_RATE=50);
an option given on the command line wins.

exit status:
  0    done
  1    the broker could not be reached, or some records were not delivered
  2    invalid options (the message names the option)
  130  interrupted (what was sent is flushed and summarised first)
"""


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface; every flag maps onto a ``SimulatorSettings`` field."""
    p = argparse.ArgumentParser(
        prog="python -m services.simulator",
        description="Produce a synthetic clinic's session-completed events to Kafka, or write them "
        "as JSON Lines history (--history-out / --dry-run, no broker needed).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--bootstrap-servers", help="Kafka bootstrap servers, comma-separated (default 127.0.0.1:9092)"
    )
    p.add_argument(
        "--topic-namespace", help="prefix of the physical topic names (default: none, production names)"
    )
    cohort = p.add_argument_group("cohort")
    cohort.add_argument(
        "--seed", type=int, help="random seed: the same seed gives the same clinic (default 42)"
    )
    cohort.add_argument("--start", help="ISO datetime with offset: Monday of week 1 (default: in the past)")
    cohort.add_argument("--clinics", type=int, help="number of clinics (default 4)")
    cohort.add_argument("--clinicians-per-clinic", type=int, help="clinicians in each clinic (default 3)")
    cohort.add_argument(
        "--clients-per-clinician", type=int, help="clients of each clinician, one episode each (default 10)"
    )
    cohort.add_argument("--sessions", type=int, help="sessions per episode (sets min and max)")
    cohort.add_argument("--sessions-min", type=int, help="fewest sessions of an episode (default 6)")
    cohort.add_argument("--sessions-max", type=int, help="most sessions of an episode (default 16)")
    cohort.add_argument(
        "--clinic-types",
        help="comma-separated, cycled over clinics: pcoms (SRS+ORS), iapt (SRS+PHQ-9+GAD-7), "
        "core (WAI-SR+CORE-10), k10 (SRS+K10) or e.g. WAI-SR+PHQ-9 (default pcoms,iapt,core,k10)",
    )
    cohort.add_argument(
        "--invalid-rate", type=float, help="share of deliberately invalid records, 0-0.5 (default 0)"
    )
    cohort.add_argument("--id-prefix", help="prefix of every pseudonym, to keep runs apart on one topic")
    cohort.add_argument(
        "--demo-cases",
        action="store_true",
        default=None,
        help="add four designed clients to the first clinician: a risk endorsement, a reliable "
        "deterioration, a rupture that repairs and one that does not (8 sessions each)",
    )
    pace = p.add_argument_group("pacing")
    speed = pace.add_mutually_exclusive_group()
    speed.add_argument("--rate", type=float, help="records per second (token bucket; default 20)")
    speed.add_argument(
        "--as-fast-as-possible",
        action="store_true",
        default=None,
        help="no pacing: send as fast as Kafka takes them",
    )
    pace.add_argument(
        "--burst", type=int, help="token-bucket capacity: most records sent back to back (default 20)"
    )
    pace.add_argument(
        "--max-events", type=int, help="stop after this many records (default: the whole cohort)"
    )
    out = p.add_argument_group("output")
    out.add_argument("--history-out", metavar="FILE", help="write JSON Lines history to FILE ('-' = stdout)")
    out.add_argument("--dry-run", action="store_true", default=None, help="write history to stdout")
    out.add_argument("--metrics-port", type=int, help="serve /metrics on this port while running")
    return p


def settings_from_args(argv: Sequence[str] | None = None) -> SimulatorSettings:
    """Settings from the environment with the given flags on top."""
    args = build_parser().parse_args(argv)
    overrides: dict[str, Any] = {k: v for k, v in vars(args).items() if v is not None and k != "sessions"}
    if args.sessions is not None:
        overrides.setdefault("sessions_min", args.sessions)
        overrides.setdefault("sessions_max", args.sessions)
    return SimulatorSettings(**overrides)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: build settings and run the simulator."""
    try:
        settings = settings_from_args(argv)
    except (ValidationError, ValueError) as exc:
        print(f"simulator: invalid settings:\n{exc}", file=sys.stderr)
        return 2
    from services.simulator.app import run

    return run(settings)


if __name__ == "__main__":
    sys.exit(main())
