"""A throwaway PostgreSQL server for tests, from Debian's ``postgresql`` package.

``RAPPORT_TEST_POSTGRES_URL`` points at an existing server instead. Otherwise the cluster is created
with ``initdb`` in a fresh folder (``RAPPORT_TEST_PG_DIR`` or a temporary one), started with
``pg_ctl`` on ``RAPPORT_TEST_PG_PORT`` or a free port, on loopback with trust authentication, and
removed at the end. PostgreSQL refuses to run as root: under root, the cluster runs as the
``postgres`` system user the package creates. A missing PostgreSQL fails with instructions; it is
never skipped.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support import free_port

HOW_TO = "Install PostgreSQL (`apt-get install postgresql`; .ci/run does) or set RAPPORT_TEST_POSTGRES_URL."


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]))
    if found:
        return found[-1]
    on_path = shutil.which(name)
    if on_path:
        return on_path
    raise RuntimeError(f"PostgreSQL's {name} was not found. {HOW_TO}")


def _as_owner(argv: list[str], owner: str | None) -> list[str]:
    return ["runuser", "-u", owner, "--", *argv] if owner else argv


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yield the URL of the ``postgres`` database of a running server (admin rights)."""
    configured = os.environ.get("RAPPORT_TEST_POSTGRES_URL", "").strip()
    if configured:
        yield configured
        return
    owner: str | None = None
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres").pw_name
        except KeyError:
            raise RuntimeError(f"running as root and there is no postgres user. {HOW_TO}") from None
    base = os.environ.get("RAPPORT_TEST_PG_DIR")
    if base:
        Path(base).mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="rapport-pg-", dir=base or None))
    data, sockets = root / "data", root / "sockets"
    sockets.mkdir()
    if owner:
        uid = pwd.getpwnam(owner).pw_uid
        for path in (root, sockets):
            os.chown(path, uid, -1)
    port = int(os.environ.get("RAPPORT_TEST_PG_PORT") or free_port())
    initdb = [_bin("initdb"), "-D", str(data), "-U", "rapport", "--auth=trust", "-E", "UTF8", "--no-locale"]
    subprocess.run(_as_owner(initdb, owner), check=True, capture_output=True, timeout=120)
    options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off"
    start = [
        _bin("pg_ctl"),
        "-D",
        str(data),
        "-l",
        str(root / "server.log"),
        "-o",
        options,
        "-w",
        "-t",
        "90",
        "start",
    ]
    started = subprocess.run(_as_owner(start, owner), capture_output=True, text=True, timeout=120)
    if started.returncode != 0:
        log = (root / "server.log").read_text(errors="replace") if (root / "server.log").exists() else ""
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"pg_ctl start failed: {started.stdout}{started.stderr}{log[-2000:]}")
    try:
        yield f"postgresql://rapport@127.0.0.1:{port}/postgres"
    finally:
        stop = [_bin("pg_ctl"), "-D", str(data), "-m", "fast", "-w", "-t", "60", "stop"]
        subprocess.run(_as_owner(stop, owner), capture_output=True, timeout=90, check=False)
        shutil.rmtree(root, ignore_errors=True)


def new_database(admin_url: str) -> str:
    """Create an empty database on the server; returns its URL."""
    import psycopg

    name = f"inbox_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin_url.rsplit("/", 1)[0] + f"/{name}"
