"""What a worker checks before it builds its faust app: its web port is free, the broker answers, and
every topic it reads, writes or keeps state in has the partition count of its input topic.

Partition counts come from the broker, never from configuration: whatever ``rapport topics apply``
created is what the services use, so the two can never disagree. A topic that disagrees (a changelog
left over from an older provisioning, an output created by hand) is a clear startup error naming both
topics and their counts; the worker exits with :data:`EXIT_CONFIG` instead of crash-looping.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from shared.contracts.topics import topic_name

#: Exit code of a worker whose environment is wrong (``EX_CONFIG``): restarting it will not help.
EXIT_CONFIG = 78
#: Exit code of a worker that found no broker within its startup timeout (``EX_UNAVAILABLE``).
EXIT_UNAVAILABLE = 69


class StartupError(Exception):
    """A worker cannot start; the message says why in terms an operator can act on (topic names,
    counts, ports — never data)."""

    def __init__(self, message: str, exit_code: int = EXIT_CONFIG) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class Topology:
    """The topics of one service, by base name (the namespace is added from the settings)."""

    input: str
    outputs: tuple[str, ...]
    tables: tuple[str, ...] = ()
    """Names of the service's faust tables; each has a changelog topic ``<app id>-<name>-changelog``."""

    def names(self, namespace: str, app_id: str) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
        """(input, outputs, changelogs) as physical topic names."""
        return (
            topic_name(self.input, namespace),
            tuple(topic_name(t, namespace) for t in self.outputs),
            tuple(changelog_topic(app_id, table) for table in self.tables),
        )


def changelog_topic(app_id: str, table: str) -> str:
    """The changelog topic faust uses for ``table`` of the app ``app_id``."""
    return f"{app_id}-{table}-changelog"


def check_partitions(
    counts: Mapping[str, int | None], input_topic: str, outputs: Sequence[str], changelogs: Sequence[str]
) -> int:
    """The partition count every topic of the service must have (its input topic's), or a
    :class:`StartupError` listing every topic that is missing or disagrees.

    ``counts`` maps topic names to their partition count on the broker, ``None`` for a missing topic.
    A missing changelog is fine (faust creates it with the input's count); a missing input or output
    topic is not (topics are provisioned by ``rapport topics apply``, never auto-created).
    """
    expected = counts.get(input_topic)
    if expected is None:
        raise StartupError(
            f"input topic '{input_topic}' does not exist: provision the topics first "
            "(rapport topics apply --partitions N)"
        )
    problems = []
    for name in outputs:
        got = counts.get(name)
        if got is None:
            problems.append(f"output topic '{name}' does not exist")
        elif got != expected:
            problems.append(f"output topic '{name}' has {got} partitions")
    for name in changelogs:
        got = counts.get(name)
        if got is not None and got != expected:
            problems.append(f"changelog topic '{name}' has {got} partitions")
    if problems:
        raise StartupError(
            f"input topic '{input_topic}' has {expected} partitions, but " + "; ".join(problems) + ". "
            "Every topic of a service needs as many partitions as its input: provision missing topics "
            f"with `rapport topics apply --partitions {expected}`; a changelog with another count "
            "belongs to an older provisioning and must be deleted (the service rebuilds it)."
        )
    return expected


def read_partition_counts(
    bootstrap_servers: str, names: Sequence[str], timeout_s: float = 30.0
) -> dict[str, int | None]:
    """Partition count of each topic on the broker (``None`` when it does not exist)."""
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap_servers.split(","),
        client_id="rapport-startup",
        request_timeout_ms=int(timeout_s * 1000),
    )
    try:
        existing = set(admin.list_topics())
        present = [n for n in names if n in existing]
        described = admin.describe_topics(present) if present else []
        counts: dict[str, int | None] = dict.fromkeys(names)
        for d in described:
            counts[d.get("name", d.get("topic"))] = len(d["partitions"])
        return counts
    finally:
        admin.close()


def resolve_partitions(
    bootstrap_servers: str,
    topology: Topology,
    *,
    namespace: str,
    app_id: str,
    timeout_s: float = 60.0,
) -> int:
    """Wait for the broker (bounded), read the service's topics and return their partition count.

    Raises :class:`StartupError` when the broker does not answer in time or a topic disagrees.
    """
    from shared.runtime.provisioning import wait_for_broker

    try:
        wait_for_broker(bootstrap_servers, timeout_s=timeout_s)
    except TimeoutError as exc:
        raise StartupError(str(exc), EXIT_UNAVAILABLE) from exc
    input_topic, outputs, changelogs = topology.names(namespace, app_id)
    counts = read_partition_counts(bootstrap_servers, [input_topic, *outputs, *changelogs])
    return check_partitions(counts, input_topic, outputs, changelogs)


def check_port_free(host: str, port: int, setting: str) -> None:
    """Raise :class:`StartupError` naming ``port`` (and the ``setting`` that chooses it) when something
    already listens there; the web server would otherwise fail later with a bare ``OSError``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As the web server does: a port left in TIME_WAIT by a previous run is not "in use".
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise StartupError(
                    f"web port {port} on {host} is already in use (address in use): stop whatever "
                    f"listens there or choose another port with {setting}"
                ) from exc
            raise StartupError(
                f"cannot bind the web port {port} on {host} ({setting}): {exc.strerror}"
            ) from exc
