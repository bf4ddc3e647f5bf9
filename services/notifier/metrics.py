"""The notifier's own Prometheus metrics (the worker loop keeps the common ones)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass(frozen=True)
class NotifierMetrics:
    """Counters, histograms and gauges of the notifier. Labels are bounded vocabularies only."""

    alerts: Counter
    delivery_attempts: Counter
    delivery_seconds: Histogram
    escalations: Counter
    session_to_alert_seconds: Histogram
    oldest_unacked_critical_seconds: Gauge
    directory_clinics: Gauge
    endpoints_disabled: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry) -> NotifierMetrics:
        """Register the metrics on ``registry``."""
        return cls(
            alerts=Counter(
                "rapport_notifier_alerts_total",
                "Signals and alert changes, by kind, severity and outcome (raised, deduplicated, "
                "throttled, inhibited, held, escalated, acknowledged, resolved, unroutable, ...).",
                ["kind", "severity", "outcome"],
                registry=registry,
            ),
            delivery_attempts=Counter(
                "rapport_notifier_delivery_attempts_total",
                "Delivery attempts by channel and outcome (delivered, retrying, gone, rejected); "
                "'exhausted' counts deliveries given up after the last retry.",
                ["channel", "outcome"],
                registry=registry,
            ),
            delivery_seconds=Histogram(
                "rapport_notifier_delivery_seconds",
                "Time of one delivery attempt, by channel.",
                ["channel"],
                buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
                registry=registry,
            ),
            escalations=Counter(
                "rapport_notifier_escalations_total",
                "Critical alerts escalated, by the step reached (supervisor, on_call).",
                ["step"],
                registry=registry,
            ),
            session_to_alert_seconds=Histogram(
                "rapport_notifier_session_to_alert_seconds",
                "From the session event's time to the alert's first delivery, by severity.",
                ["severity"],
                buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
                registry=registry,
            ),
            oldest_unacked_critical_seconds=Gauge(
                "rapport_notifier_oldest_unacked_critical_seconds",
                "Age of the oldest critical alert nobody has acknowledged yet (0 when none).",
                registry=registry,
            ),
            directory_clinics=Gauge(
                "rapport_notifier_directory_clinics",
                "Clinics in this worker's copy of the directory.",
                registry=registry,
            ),
            endpoints_disabled=Gauge(
                "rapport_notifier_endpoints_disabled",
                "Endpoints that answered 410 Gone and get nothing until their clinic's directory changes.",
                registry=registry,
            ),
        )
