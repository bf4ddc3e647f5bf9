"""The gateway's Prometheus metrics. Labels are bounded vocabularies: route templates, status codes,
outcomes — never a clinic, key, client or event id."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass(frozen=True)
class GatewayMetrics:
    """Counters, histograms and gauges of the gateway."""

    requests: Counter
    request_seconds: Histogram
    events: Counter
    ack_seconds: Histogram
    pending: Gauge
    scores: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> GatewayMetrics:
        """Register the metrics on ``registry``."""
        return cls(
            requests=Counter(
                "rapport_gateway_requests_total",
                "HTTP requests answered, by route template and status code.",
                ["route", "status"],
                registry=registry,
            ),
            request_seconds=Histogram(
                "rapport_gateway_request_seconds",
                "Time from request to answer, by route template (202s include the broker ack).",
                ["route"],
                buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
                registry=registry,
            ),
            events=Counter(
                "rapport_gateway_events_total",
                "Session events by outcome: produced (acknowledged by the broker), replayed (answered "
                "from the idempotency ledger), failed (not acknowledged in time or refused).",
                ["outcome"],
                registry=registry,
            ),
            ack_seconds=Histogram(
                "rapport_gateway_ack_seconds",
                "Time from handing an event to the producer to the broker's acknowledgement.",
                buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
                registry=registry,
            ),
            pending=Gauge(
                "rapport_gateway_pending_deliveries",
                "Events handed to the producer and not yet acknowledged by the broker.",
                registry=registry,
            ),
            scores=Counter(
                "rapport_gateway_scores_total",
                "Scored-survey records read into the Observation read model, by outcome.",
                ["outcome"],
                registry=registry,
            ),
        )
