"""The topic catalogue: every topic of the design with its partitioning and retention.

Names are versioned; a breaking change is a new topic. A namespace prefix (empty in production)
lets tests and demos run on their own copies of every topic on one broker.
"""

from __future__ import annotations

from dataclasses import dataclass

DAY_MS = 24 * 60 * 60 * 1000

SESSION_COMPLETED = "rapport.session-completed.v1"
SURVEY_SCORED = "rapport.survey-scored.v1"
SIGNALS = "rapport.signals.v1"
ALERTS = "rapport.alerts.v1"
ALERT_ACKS = "rapport.alert-acks.v1"
DIRECTORY = "rapport.directory.v1"
DEAD_LETTER = "rapport.dead-letter.v1"
DEAD_LETTER_REPLAYS = "rapport.dead-letter-replays.v1"
#: The notifier's internal topics: delivery results, due timers and re-partitioned inputs for the
#: per-client side (co-partitioned with signals), and digest items for the per-clinician side.
NOTIFIER_CLIENT = "rapport.notifier-client.v1"
NOTIFIER_DIGEST = "rapport.notifier-digest.v1"


@dataclass(frozen=True)
class TopicSpec:
    """One topic's name and its broker-side configuration."""

    name: str
    cleanup_policy: str = "delete"
    retention_ms: int | None = 7 * DAY_MS
    keyed_by: str = "client"

    def configs(self) -> dict[str, str]:
        """Broker topic configs to create or enforce."""
        out = {"cleanup.policy": self.cleanup_policy}
        if self.retention_ms is not None:
            out["retention.ms"] = str(self.retention_ms)
        return out


CATALOGUE: tuple[TopicSpec, ...] = (
    # Source of truth for replay: kept for years.
    TopicSpec(SESSION_COMPLETED, retention_ms=10 * 365 * DAY_MS),
    TopicSpec(SURVEY_SCORED, retention_ms=30 * DAY_MS),
    TopicSpec(SIGNALS, retention_ms=30 * DAY_MS),
    # The alert lifecycle is the audit trail of who was told what, when: kept for a year.
    TopicSpec(ALERTS, retention_ms=365 * DAY_MS, keyed_by="alert id"),
    TopicSpec(ALERT_ACKS, retention_ms=365 * DAY_MS),
    TopicSpec(DIRECTORY, cleanup_policy="compact", retention_ms=None, keyed_by="clinic"),
    TopicSpec(DEAD_LETTER, retention_ms=365 * DAY_MS, keyed_by="original key"),
    # The replay ledger: one record per replayed dead letter, kept for as long as dead letters are.
    TopicSpec(DEAD_LETTER_REPLAYS, cleanup_policy="compact", retention_ms=None, keyed_by="dead letter id"),
    TopicSpec(NOTIFIER_CLIENT, retention_ms=7 * DAY_MS, keyed_by="client (internal)"),
    TopicSpec(NOTIFIER_DIGEST, retention_ms=7 * DAY_MS, keyed_by="clinician (internal)"),
)


def topic_name(base: str, namespace: str = "") -> str:
    """The physical topic name: ``namespace`` + base name (namespace is empty in production)."""
    return f"{namespace}{base}"
