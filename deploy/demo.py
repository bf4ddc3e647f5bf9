"""`make demo`: the whole pipeline on a real broker, with output a person can read.

Provisions a fresh topic namespace, starts every service of ``SERVICES`` as its own process, lets the
synthetic clinic send a few weeks of sessions (a few deliberately broken, and four designed clients:
a risk endorsement, a reliable deterioration, a rupture that repairs and one that does not), prints
scores, dead letters, signals and alerts as they arrive and ends with a count of signals by kind and
of what reached clinicians: signed webhooks (verified here with the Standard Webhooks reference
library), emails (a local SMTP sink), escalations, and the inbox where the alerts wait.

Where it runs:
  broker     --bootstrap-servers, else $KAFKA_BOOTSTRAP_SERVERS, else 127.0.0.1:$KAFKA_PORT (9092)
  web ports  $RAPPORT_<SERVICE>_WEB_PORT (scoring 6061, monitor 6062, notifier 6064, inbox 6066);
             the URLs really used are printed
  endpoints  a webhook receiver and an SMTP sink on free loopback ports; what they receive is kept
             in .demo/webhooks.jsonl and .demo/mail/

It cleans up after itself, Ctrl-C included: the services are stopped and every topic and consumer
group of its namespace is deleted. If it was killed outright, `make demo-down` (or the next
`make demo`) stops what it left running and deletes its topics.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python deploy/demo.py` puts deploy/ first on the path, not the repo
    sys.path.insert(0, str(ROOT))

from shared.cli.style import BOLD, DIM, GREEN, RED, YELLOW, Style  # noqa: E402
from shared.contracts import topics  # noqa: E402
from shared.contracts.alerts import ClinicDirectory  # noqa: E402
from shared.history.synthetic import DEMO_CASES, client_archetypes  # noqa: E402
from shared.runtime.provisioning import (  # noqa: E402
    apply_topics,
    delete_namespace,
    publish_records,
    wait_for_broker,
)

STATE = ROOT / ".demo"
RUNS = STATE / "runs"
PARTITIONS = 3
IDLE_END_S = 8.0
STOP_GRACE_S = 30.0


# --------------------------------------------------------------------------- what the demo runs


@dataclass(frozen=True)
class Service:
    """A service the demo starts: ``python -m <module>`` with settings under ``RAPPORT_<NAME>_``."""

    name: str
    module: str
    default_web_port: int
    settings: Mapping[str, str] = field(default_factory=dict)
    """Extra settings (without the prefix) on top of broker, namespace, partitions and app id."""

    @property
    def prefix(self) -> str:
        """The service's environment prefix, e.g. ``RAPPORT_SCORING_``."""
        return f"RAPPORT_{self.name.upper()}_"

    def web_port(self, environ: Mapping[str, str]) -> int:
        """The web port: ``RAPPORT_<NAME>_WEB_PORT`` if set, else the service's default."""
        return int(environ.get(f"{self.prefix}WEB_PORT") or self.default_web_port)

    def web_host(self, environ: Mapping[str, str]) -> str:
        """The host the service binds (``RAPPORT_<NAME>_WEB_HOST``, default loopback)."""
        return environ.get(f"{self.prefix}WEB_HOST") or "127.0.0.1"


#: Every service the demo starts, in this order. Adding one is a line here (and a view below if it
#: publishes something a person should see).
SERVICES: tuple[Service, ...] = (
    Service("scoring", "services.scoring", 6061),
    Service("monitor", "services.monitor", 6062),
    Service("notifier", "services.notifier", 6064, {"STORE": "memory://", "DISPATCH_INTERVAL_S": "0.1"}),
    Service("inbox", "services.inbox", 6066),
)

#: The demo clinics' escalation deadline: short, so a critical alert nobody acknowledges is seen
#: reaching the clinician's supervisor before the demo ends.
ACK_DEADLINE_S = 30.0
WEBHOOK_SECRET = "whsec_" + "ZGVtby1zaWduaW5nLWtleS1mb3ItbWFrZS1kZW1vISE="


def _describe_scored(value: dict[str, Any], style: Style) -> str:
    d = value["data"]
    total = "  —  " if d.get("total") is None else f"{d['total']:>5g}"
    band = f" {d['band']}" if d.get("band") else ""
    concern = style(" concern", YELLOW) if d.get("concern") else ""
    crit = (
        style(f" critical item {','.join(d['critical_items'])}", RED, BOLD) if d.get("critical_items") else ""
    )
    return (
        f"{style('scored', DIM)}  {d['client_id']:>24} s{d['session_number']:<2} "
        f"{d['instrument']:7} {total}{band}{concern}{crit}"
    )


def _describe_dead_letter(value: dict[str, Any], style: Style) -> str:
    where = f" ({value['instrument']})" if value.get("instrument") else ""
    return (
        f"{style('dead  ', RED)}  {value['stage']}: {value['reason']}{where} — {value.get('detail', '')} "
        f"(offset {value['original_offset']})"
    )


def _describe_signal(value: dict[str, Any], style: Style) -> str:
    d = value["data"]
    severity = str(d["severity"])
    # A critical item raised from an invalid session event may lack the client or session (null).
    client, session = d["client_id"] or "?", d["session_number"] or "?"
    return (
        f"{style.severity(severity, 'SIGNAL')}  {client:>24} s{session!s:<2} "
        f"{style.severity(severity, f'{severity:>8}')} {d['kind']}: {d['explanation']}"
    )


def _describe_alert(value: dict[str, Any], style: Style) -> str:
    d = value["data"]
    state, severity = d["state"], d["severity"]
    head = style.severity(severity, "ALERT ") if state in ("raised", "escalated") else style("alert ", DIM)
    what = {
        "raised": f"raised for {d['clinician_id']} ({d['kind']}, {d.get('delivery') or 'immediate'})",
        "held": f"held: {d.get('delivery')}",
        "delivered": f"delivered by {d.get('channel')} to {d.get('recipient_id')}",
        "failed": f"{d.get('channel')} delivery failed ({d.get('outcome')})",
        "escalated": style(f"ESCALATED to {d.get('escalation_step')} {d.get('recipient_id')}", RED, BOLD),
        "acknowledged": f"acknowledged by {d.get('acknowledged_by')}",
        "resolved": "resolved by a later signal",
    }.get(state, state)
    level = style.severity(severity, f"{severity:>8}")
    return f"{head}  {d['client_id']:>24} s{d['session_number']:<2} {level} {what}"


#: What the demo prints: base topic name → one line per record.
VIEWS: dict[str, Callable[[dict[str, Any], Style], str]] = {
    topics.SURVEY_SCORED: _describe_scored,
    topics.DEAD_LETTER: _describe_dead_letter,
    topics.SIGNALS: _describe_signal,
    topics.ALERTS: _describe_alert,
}

#: What each designed case must show, checked in the closing summary.
CASE_EXPECTATIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "risk": (("critical_item",), ()),
    "deteriorating": (("outcome_reliable_deterioration",), ()),
    "rupture-repaired": (("alliance_drop", "alliance_repaired"), ()),
    "rupture-unrepaired": (("alliance_drop",), ("alliance_repaired",)),
}
assert set(CASE_EXPECTATIONS) == set(DEMO_CASES), "every designed case has an expectation"  # noqa: S101


# --------------------------------------------------------------------------- where alerts arrive


@dataclass
class Endpoints:
    """A clinic's EHR webhook receiver (signatures verified with the ``standardwebhooks`` reference
    library) and a mail server, on loopback, recording what they receive under ``.demo/``."""

    webhook_port: int = 0
    smtp_port: int = 0
    webhooks: int = 0
    verified: int = 0
    chats: int = 0
    mails: list[str] = field(default_factory=list)
    _stops: list[Callable[[], None]] = field(default_factory=list)

    def start(self) -> Endpoints:
        """Start both on free ports."""
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        import standardwebhooks
        from aiosmtpd.controller import Controller

        log = (STATE / "webhooks.jsonl").open("a", encoding="utf-8")
        mail_dir = STATE / "mail"
        shutil.rmtree(mail_dir, ignore_errors=True)
        mail_dir.mkdir(parents=True)
        endpoints = self

        class Receiver(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                if self.path.startswith("/chat/"):
                    endpoints.chats += 1
                else:
                    endpoints.webhooks += 1
                    try:
                        payload = standardwebhooks.Webhook(WEBHOOK_SECRET).verify(body, headers)
                        endpoints.verified += 1
                        entry = {"webhook_id": headers.get("webhook-id"), "verified": True, **payload}
                    except standardwebhooks.WebhookVerificationError:
                        entry = {"webhook_id": headers.get("webhook-id"), "verified": False}
                    log.write(json.dumps(entry) + "\n")
                    log.flush()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        class Sink:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                path = mail_dir / f"{len(endpoints.mails) + 1:03d}.eml"
                path.write_bytes(envelope.content)
                endpoints.mails.append(",".join(envelope.rcpt_tos))
                return "250 OK"

        self.webhook_port, self.smtp_port = _free_port(), _free_port()
        server = ThreadingHTTPServer(("127.0.0.1", self.webhook_port), Receiver)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        smtp = Controller(Sink(), hostname="127.0.0.1", port=self.smtp_port)
        smtp.start()
        self._stops = [server.shutdown, smtp.stop, log.close]
        return self

    def url(self, path: str) -> str:
        """A URL of the webhook receiver."""
        return f"http://127.0.0.1:{self.webhook_port}{path}"

    def stop(self) -> None:
        """Stop both."""
        for stop in self._stops:
            with contextlib.suppress(Exception):
                stop()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def demo_directory(people: Mapping[str, list[str]], endpoints: Endpoints) -> list[ClinicDirectory]:
    """Each synthetic clinic's directory: every clinician with the clinic's EHR webhook and an email,
    a supervisor (email) and an on-call (chat), a daily digest for moderate and info alerts, and a
    short escalation deadline."""
    out = []
    for clinic, clinicians in sorted(people.items()):
        supervisor, on_call = f"sup-{clinic}", f"oncall-{clinic}"
        members: list[dict[str, Any]] = [
            {
                "id": c,
                "supervisor": supervisor,
                "channels": [
                    {
                        "type": "webhook",
                        "id": f"ehr-{c}",
                        "url": endpoints.url(f"/ehr/{clinic}"),
                        "secrets": ["DEMO_EHR"],
                    },
                    {"type": "email", "id": f"mail-{c}", "to": f"{c}@{clinic}.demo.invalid"},
                ],
            }
            for c in sorted(clinicians)
        ]
        members.append(
            {
                "id": supervisor,
                "roles": ["clinician", "supervisor"],
                "channels": [
                    {"type": "email", "id": f"mail-{supervisor}", "to": f"{supervisor}@{clinic}.demo.invalid"}
                ],
            }
        )
        members.append(
            {
                "id": on_call,
                "roles": ["on_call"],
                "channels": [{"type": "chat", "id": f"chat-{on_call}", "url_secret": "DEMO_CHAT"}],
            }
        )
        out.append(
            ClinicDirectory.model_validate(
                {
                    "clinic_id": clinic,
                    "people": members,
                    # Moderate and info alerts in a daily digest: only critical and high go out at once.
                    "digest": "daily",
                    "escalation": {
                        "ack_deadline_minutes": ACK_DEADLINE_S / 60,
                        "supervisor_deadline_minutes": ACK_DEADLINE_S / 60,
                        "on_call": [on_call],
                    },
                }
            )
        )
    return out


def _clinicians(sim_args: list[str]) -> dict[str, list[str]]:
    """Clinic → its clinicians, as the simulator run with ``sim_args`` will create them."""
    from services.simulator.__main__ import settings_from_args

    settings = settings_from_args(sim_args)
    people: dict[str, set[str]] = defaultdict(set)
    for client in client_archetypes(settings.simulation_config(), settings.seed):
        people[client.clinic_id].add(client.clinician_id)
    return {clinic: sorted(ids) for clinic, ids in people.items()}


@dataclass
class Login:
    """The inbox's demo login: the clinician of the designed cases, a password made up per run."""

    database_url: str
    secret_key: str
    password: str
    path: Path
    user: str = "demo"
    person: str = ""
    clinic: str = ""

    @classmethod
    def for_run(cls, ns: str) -> Login:
        """A fresh inbox database and login for one run."""
        import secrets

        path = STATE / f"inbox-{ns.rstrip('.')}.db"
        return cls(f"sqlite:///{path}", secrets.token_urlsafe(48), secrets.token_urlsafe(12), path)

    def create(self, people: Mapping[str, list[str]]) -> None:
        """Add the login for the first clinic's first clinician (the designed cases are theirs)."""
        self.clinic = sorted(people)[0]
        self.person = people[self.clinic][0]
        done = subprocess.run(  # noqa: S603 - our own CLI, fixed arguments
            [
                sys.executable,
                "-m",
                "shared.cli",
                "inbox",
                "--database-url",
                self.database_url,
                "users",
                "add",
                self.user,
                "--clinic",
                self.clinic,
                "--person",
                self.person,
                "--password-stdin",
            ],
            input=self.password + "\n",
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            cwd=STATE,
        )
        if done.returncode != 0:
            raise SystemExit(f"could not create the inbox login: {done.stderr.strip()}")

    def forget(self) -> None:
        """Remove the run's inbox database."""
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)


# --------------------------------------------------------------------------- settings


def default_bootstrap(environ: Mapping[str, str]) -> str:
    """``KAFKA_BOOTSTRAP_SERVERS``, else the native launcher's ``127.0.0.1:$KAFKA_PORT`` (9092)."""
    return environ.get("KAFKA_BOOTSTRAP_SERVERS") or f"127.0.0.1:{environ.get('KAFKA_PORT') or '9092'}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The demo's options."""
    parser = argparse.ArgumentParser(
        prog="python deploy/demo.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="exit status: 0 done (every designed case showed its signal), 1 something failed or a "
        "designed case was not seen, 130 interrupted (after cleaning up)",
    )
    parser.add_argument(
        "--bootstrap-servers",
        default=default_bootstrap(os.environ),
        help="Kafka bootstrap servers (default: $KAFKA_BOOTSTRAP_SERVERS, else 127.0.0.1:$KAFKA_PORT)",
    )
    parser.add_argument("--clinics", type=int, default=2, help="clinics of the synthetic clinic (default 2)")
    parser.add_argument(
        "--clients-per-clinician", type=int, default=4, help="clients of each clinician (default 4)"
    )
    parser.add_argument("--sessions", type=int, default=8, help="sessions per client (default 8)")
    parser.add_argument("--rate", type=float, default=40.0, help="session events per second (default 40)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the synthetic clinic (default 7)")
    parser.add_argument("--quiet-scores", action="store_true", help="print only dead letters and signals")
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="stop after this many seconds whatever happens (600)"
    )
    parser.add_argument(
        "--down",
        action="store_true",
        help="do not run: stop what earlier demos of this folder left running and delete their topics",
    )
    return parser.parse_args(argv)


# --------------------------------------------------------------------------- processes


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM when the demo dies, even by SIGKILL (Linux)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _spawn(args: list[str], env: Mapping[str, str], log: Path | None) -> subprocess.Popen[bytes]:
    # Its own session: Ctrl-C reaches the demo only, which then stops the services in order.
    out = log.open("wb") if log is not None else None
    return subprocess.Popen(  # noqa: S603 - our own modules, fixed arguments
        [sys.executable, *args],
        env=dict(env),
        cwd=STATE,
        stdout=out,
        stderr=subprocess.STDOUT if out is not None else None,
        start_new_session=True,
        preexec_fn=_die_with_parent,  # the demo runs no other thread while it starts processes
    )


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _wait_ready(service: Service, proc: subprocess.Popen[bytes], url: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(
                f"{service.name} exited early (code {proc.returncode}); see .demo/{service.name}.log"
            )
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2) as r:  # noqa: S310 - our own loopback URL
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{service.name} not ready after {timeout_s:.0f}s; see .demo/{service.name}.log")


def _stop(procs: Mapping[str, subprocess.Popen[bytes]]) -> None:
    for proc in procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs.values():
        try:
            proc.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


# --------------------------------------------------------------------------- run records (for --down)


def _record(ns: str, bootstrap: str, procs: Mapping[str, subprocess.Popen[bytes]]) -> Path:
    RUNS.mkdir(parents=True, exist_ok=True)
    path = RUNS / f"{ns.rstrip('.')}.json"
    body = {
        "pid": os.getpid(),
        "namespace": ns,
        "bootstrap": bootstrap,
        "children": {name: p.pid for name, p in procs.items()},
    }
    path.write_text(json.dumps(body))
    return path


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def clean_up_leftovers(style: Style, *, include_running: bool) -> int:
    """Stop processes and delete topics left by earlier demos of this folder; returns how many runs.

    A run whose demo process is still alive is left alone unless ``include_running`` (``--down``):
    then the demo is sent SIGTERM and cleans up after itself.
    """
    done = 0
    for path in sorted(RUNS.glob("*.json")) if RUNS.exists() else []:
        try:
            run = json.loads(path.read_text())
        except (OSError, ValueError):
            path.unlink(missing_ok=True)
            continue
        alive = "demo.py" in _cmdline(int(run["pid"])) and int(run["pid"]) != os.getpid()
        if alive and not include_running:
            continue
        if alive:
            print(f"stopping the running demo (pid {run['pid']}); it deletes its own topics")
            os.kill(int(run["pid"]), signal.SIGTERM)
            deadline = time.monotonic() + STOP_GRACE_S + 45
            while path.exists() and time.monotonic() < deadline:
                time.sleep(0.5)
            if not path.exists():
                done += 1
                continue
        for name, pid in run.get("children", {}).items():
            if f"services.{name}" in _cmdline(int(pid)):
                print(f"stopping {name} left running by an earlier demo (pid {pid})")
                os.kill(int(pid), signal.SIGTERM)
        ns = run["namespace"]
        try:
            wait_for_broker(run["bootstrap"], timeout_s=10)
            removed = delete_namespace(run["bootstrap"], ns)
            # A consumer killed with the demo stays a member until its session times out (10 s).
            if removed.busy_groups:
                print(style("waiting for the killed demo's consumers to time out (up to 30 s)…", DIM))
            for _ in range(6):
                if not removed.busy_groups:
                    break
                time.sleep(5)
                removed = delete_namespace(run["bootstrap"], ns)
            print(style(f"deleted {len(removed.topics)} topics of an earlier demo (namespace '{ns}')", DIM))
        except Exception as exc:  # broker gone: nothing to delete there any more
            print(
                f"could not delete the topics of namespace '{ns}' at {run['bootstrap']}: {type(exc).__name__}"
            )
        path.unlink(missing_ok=True)
        done += 1
    return done


# --------------------------------------------------------------------------- the run


class _Stopped(Exception):
    """SIGTERM or SIGHUP: end like Ctrl-C, cleaning up first."""


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stopped(signum)


def _summary(
    style: Style,
    counts: Counter[str],
    kinds: Counter[str],
    reasons: Counter[str],
    cases: Mapping[str, set[str]],
    elapsed: float,
) -> tuple[str, bool]:
    lines = [
        "",
        style("done", BOLD) + f" in {elapsed:.0f} s: {counts[topics.SURVEY_SCORED]} surveys scored, "
        f"{counts[topics.DEAD_LETTER]} dead letters, {counts[topics.SIGNALS]} signals",
    ]
    if reasons:
        lines.append("dead letters by reason: " + ", ".join(f"{r} {n}" for r, n in sorted(reasons.items())))
    lines.append(style("signals by kind:", BOLD))
    for kind, n in sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0])):
        lines.append(f"  {kind:32} {n:>4}")
    if not kinds:
        lines.append("  (none)")
    lines.append(style("designed cases (the synthetic clinic always has them):", BOLD))
    all_seen = True
    for case, (wanted, unwanted) in CASE_EXPECTATIONS.items():
        seen = cases.get(f"case-{case}", set())
        ok = set(wanted) <= seen and not set(unwanted) & seen
        all_seen &= ok
        shown = ", ".join(sorted(seen & (set(wanted) | set(unwanted)))) or "nothing yet"
        mark = style("seen", GREEN) if ok else style("NOT SEEN", RED, BOLD)
        lines.append(f"  case-{case:22} {DEMO_CASES[case].split(' (')[0]:60} {mark}: {shown}")
    return "\n".join(lines), all_seen


def run(args: argparse.Namespace) -> int:
    """Run the demo once; returns the process exit code."""
    style = Style.for_stream(sys.stdout)
    environ = dict(os.environ)
    bootstrap = args.bootstrap_servers
    STATE.mkdir(exist_ok=True)
    clean_up_leftovers(style, include_running=False)

    urls: dict[str, str] = {}
    for service in SERVICES:
        host, port = service.web_host(environ), service.web_port(environ)
        if not _port_free(host, port):
            print(
                f"{service.name}: web port {port} on {host} is already in use; "
                f"set {service.prefix}WEB_PORT to a free port",
                file=sys.stderr,
            )
            return 1
        urls[service.name] = f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}"  # noqa: S104

    ns = f"demo-{uuid.uuid4().hex[:6]}."
    print(f"{style('Rapport demo', BOLD)} — broker {bootstrap}, topic namespace '{ns}'")
    try:
        wait_for_broker(bootstrap, timeout_s=60)
    except TimeoutError as exc:
        print(
            f"demo: {exc}. Set KAFKA_PORT or KAFKA_BOOTSTRAP_SERVERS to use another broker.", file=sys.stderr
        )
        return 1
    # Every run is a new clinic on new topics: local table files of earlier runs are of no use.
    shutil.rmtree(STATE / ".faust-data", ignore_errors=True)

    procs: dict[str, subprocess.Popen[bytes]] = {}
    record: Path | None = None
    interrupted = False
    previous = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
    started = time.monotonic()
    code = 1
    endpoints = Endpoints()
    sim_args = [
        "--clinics", str(args.clinics),
        "--clients-per-clinician", str(args.clients_per_clinician),
        "--sessions", str(args.sessions),
        "--seed", str(args.seed),
        "--rate", str(args.rate),
        "--invalid-rate", "0.02",
        "--demo-cases",
    ]  # fmt: skip
    login = Login.for_run(ns)
    try:
        record = _record(ns, bootstrap, procs)  # before anything exists on the broker
        apply_topics(bootstrap, partitions=PARTITIONS, namespace=ns)
        endpoints.start()
        people = _clinicians(sim_args)
        directory = demo_directory(people, endpoints)
        publish_records(
            bootstrap,
            topics.topic_name(topics.DIRECTORY, ns),
            [(c.clinic_id.encode(), c.model_dump_json().encode()) for c in directory],
        )
        login.create(people)
        extra = {
            "notifier": {
                "INBOX_URL": urls["inbox"],
                "SMTP_PORT": str(endpoints.smtp_port),
                "SMTP_SECURITY": "none",
                "SMTP_FROM": "rapport-demo@demo.invalid",
                "SECRET_DEMO_EHR": WEBHOOK_SECRET,
                "SECRET_DEMO_CHAT": endpoints.url("/chat/on-call"),
            },
            "inbox": {"DATABASE_URL": login.database_url, "SECRET_KEY": login.secret_key},
        }
        for service in SERVICES:
            env = {
                **environ,
                **{
                    f"{service.prefix}{k}": v
                    for k, v in {
                        "BOOTSTRAP_SERVERS": bootstrap,
                        "TOPIC_NAMESPACE": ns,
                        "PARTITIONS": str(PARTITIONS),
                        "APP_ID": f"{ns}{service.name}",
                        "WEB_PORT": str(service.web_port(environ)),
                        **service.settings,
                        **extra.get(service.name, {}),
                    }.items()
                },
            }
            procs[service.name] = _spawn(["-m", service.module], env, STATE / f"{service.name}.log")
            record = _record(ns, bootstrap, procs)
        for service in SERVICES:
            _wait_ready(service, procs[service.name], urls[service.name])
        print("services ready:")
        for service in SERVICES:
            url = urls[service.name]
            print(f"  {service.name:10} {url}/metrics  {url}/healthz  {url}/readyz")
        print(
            f"  {'endpoints':10} webhooks {endpoints.url('/ehr/')} (signatures verified), "
            f"SMTP 127.0.0.1:{endpoints.smtp_port}"
        )

        sim_env = {
            **environ,
            "RAPPORT_SIMULATOR_BOOTSTRAP_SERVERS": bootstrap,
            "RAPPORT_SIMULATOR_TOPIC_NAMESPACE": ns,
        }
        sim_args = ["-m", "services.simulator", *sim_args]
        procs["simulator"] = sim = _spawn(sim_args, sim_env, None)
        record = _record(ns, bootstrap, procs)
        code = _watch(args, bootstrap, ns, sim, style, started, endpoints, login, urls["inbox"])
        return code
    except (KeyboardInterrupt, _Stopped):
        interrupted = True
        return 130
    finally:
        # Cleaning up must not be cut short by a second Ctrl-C or a SIGTERM.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        if interrupted:
            print("\ninterrupted: stopping the services and deleting the demo's topics…")
        _stop(procs)
        endpoints.stop()
        login.forget()
        try:
            removed = delete_namespace(bootstrap, ns)
            print(
                style(
                    f"cleaned up: stopped {len(procs)} processes, deleted {len(removed.topics)} topics and "
                    f"{len(removed.groups)} consumer groups of namespace '{ns}'. Service logs: .demo/*.log",
                    DIM,
                )
            )
            if record is not None:
                record.unlink(missing_ok=True)
        except Exception as exc:  # the broker went away: `make demo-down` retries later
            print(f"could not delete the demo's topics ({type(exc).__name__}); `make demo-down` will retry")
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _watch(
    args: argparse.Namespace,
    bootstrap: str,
    ns: str,
    sim: subprocess.Popen[bytes],
    style: Style,
    started: float,
    endpoints: Endpoints,
    login: Login,
    inbox_url: str,
) -> int:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        *(topics.topic_name(t, ns) for t in VIEWS),
        bootstrap_servers=bootstrap.split(","),
        group_id=f"{ns}demo-viewer",
        auto_offset_reset="earliest",
        # If the demo is killed outright, its group can be deleted once this expires (`--down`).
        session_timeout_ms=10_000,
        heartbeat_interval_ms=3_000,
    )
    counts: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    alerts: Counter[str] = Counter()
    cases: dict[str, set[str]] = defaultdict(set)
    critical: set[str] = set()
    answered: set[str] = set()
    """Critical alerts, and those escalated or acknowledged: the demo waits for each to be one."""
    try:
        idle_since = time.monotonic()
        deadline = started + args.timeout
        while time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=500)
            for tp, records in batch.items():
                base = tp.topic[len(ns) :]
                for rec in records:
                    value = json.loads(rec.value)
                    counts[base] += 1
                    if base == topics.SIGNALS:
                        kinds[value["data"]["kind"]] += 1
                        cases[value["data"]["client_id"]].add(value["data"]["kind"])
                    elif base == topics.DEAD_LETTER:
                        reasons[value["reason"]] += 1
                    elif base == topics.ALERTS:
                        d = value["data"]
                        label = (
                            d["state"] if d["state"] != "delivered" else f"delivered by {d.get('channel')}"
                        )
                        alerts[label] += 1
                        if d["state"] == "raised" and d["severity"] == "critical":
                            critical.add(d["alert_id"])
                        elif d["state"] in ("escalated", "acknowledged"):
                            answered.add(d["alert_id"])
                        if d["state"] in ("held", "failed"):
                            continue
                    if base == topics.SURVEY_SCORED and args.quiet_scores:
                        continue
                    print(VIEWS[base](value, style), flush=True)
            if batch:
                idle_since = time.monotonic()
            elif (
                sim.poll() is not None
                and time.monotonic() - idle_since > IDLE_END_S
                # and (bounded) every critical alert nobody acknowledged has escalated
                and (critical <= answered or time.monotonic() - idle_since > ACK_DEADLINE_S + 30)
            ):
                break
    finally:
        consumer.close()
    text, all_seen = _summary(style, counts, kinds, reasons, cases, time.monotonic() - started)
    print(text)
    print(style("what reached clinicians:", BOLD))
    for label, n in sorted(alerts.items()):
        print(f"  alerts {label:32} {n:>4}")
    print(
        f"  webhooks received {endpoints.webhooks} ({endpoints.verified} with a valid Standard Webhooks "
        f"signature): .demo/webhooks.jsonl"
    )
    print(f"  emails received   {len(endpoints.mails)} (no client data in them): .demo/mail/")
    print(f"  on-call chat      {endpoints.chats}")
    print(
        f"  inbox             {inbox_url}/alerts — log in as {login.user} / {login.password} "
        f"({login.person} of {login.clinic})"
    )
    escalated_ok = critical <= answered
    if critical and not escalated_ok:
        print(
            style(f"  {len(critical - answered)} critical alert(s) neither escalated nor acknowledged", RED)
        )
    if sys.stdin.isatty() and sys.stdout.isatty():
        print(
            style(
                "The services keep running so you can look around; press Ctrl-C to stop and clean up.", BOLD
            )
        )
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)
    return 0 if sim.returncode == 0 and all_seen and escalated_ok and endpoints.verified else 1


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the demo, or (``--down``) clean up after earlier ones."""
    args = parse_args(argv)
    if args.down:
        n = clean_up_leftovers(Style.for_stream(sys.stdout), include_running=True)
        print(f"demo-down: {n} earlier demo run(s) cleaned up" if n else "demo-down: no demo left running")
        return 0
    return run(args)


if __name__ == "__main__":
    raise SystemExit(main())
