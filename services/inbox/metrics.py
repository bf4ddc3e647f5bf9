"""The inbox's Prometheus metrics. Labels are bounded vocabularies; never an id of anyone."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass(frozen=True)
class InboxMetrics:
    """Counters, gauges and histograms of the inbox."""

    records: Counter
    dead_letters: Counter
    ingest_seconds: Histogram
    ingest_errors: Counter
    logins: Counter
    access_denied: Counter
    acknowledgements: Counter
    ack_publish_failures: Counter
    acks_unpublished: Gauge
    csrf_rejected: Counter
    request_seconds: Histogram

    @classmethod
    def create(cls, registry: CollectorRegistry) -> InboxMetrics:
        """Register the metrics on ``registry``."""
        return cls(
            records=Counter(
                "rapport_inbox_records_total",
                "Topic records taken into the database, by topic (base name) and outcome.",
                ["topic", "outcome"],
                registry=registry,
            ),
            dead_letters=Counter(
                "rapport_inbox_dead_letters_total",
                "Records the inbox could not read, dead-lettered, by reason.",
                ["reason"],
                registry=registry,
            ),
            ingest_seconds=Histogram(
                "rapport_inbox_ingest_seconds",
                "One batch's database transaction (rows and offsets).",
                buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
                registry=registry,
            ),
            ingest_errors=Counter(
                "rapport_inbox_ingest_errors_total",
                "Batches whose database transaction failed (retried).",
                registry=registry,
            ),
            logins=Counter(
                "rapport_inbox_logins_total",
                "Login attempts by outcome (ok, failed, rate_limited, csrf).",
                ["outcome"],
                registry=registry,
            ),
            access_denied=Counter(
                "rapport_inbox_access_denied_total",
                "Requests for an alert answered 404: unknown, or outside the viewer's scope.",
                ["action", "reason"],
                registry=registry,
            ),
            acknowledgements=Counter(
                "rapport_inbox_acknowledgements_total",
                "Acknowledgements by outcome (published, pending, already).",
                ["outcome"],
                registry=registry,
            ),
            ack_publish_failures=Counter(
                "rapport_inbox_ack_publish_failures_total",
                "Attempts to publish an acknowledgement the broker did not confirm (retried).",
                registry=registry,
            ),
            acks_unpublished=Gauge(
                "rapport_inbox_acks_unpublished_messages",
                "Acknowledgements stored but not yet confirmed by the broker (the outbox).",
                registry=registry,
            ),
            csrf_rejected=Counter(
                "rapport_inbox_csrf_rejected_total",
                "Form posts refused for a missing or wrong CSRF token.",
                registry=registry,
            ),
            request_seconds=Histogram(
                "rapport_inbox_request_seconds",
                "Page and API requests by route template.",
                ["route"],
                buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
                registry=registry,
            ),
        )
