"""The canary's Prometheus metrics, on an injected registry."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

OUTCOMES = ("succeeded", "timed_out", "send_failed")
STAGES = ("scored", "signal")


@dataclass(frozen=True)
class CanaryMetrics:
    """What the canary measures. Labels are fixed vocabularies."""

    sent: Counter
    probes: Counter
    latency: Histogram
    last_success: Gauge
    last_sent: Gauge
    pending: Gauge
    ready: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry) -> CanaryMetrics:
        """Register the metrics on ``registry`` (every label value pre-created at zero)."""
        metrics = cls(
            sent=Counter(
                "rapport_canary_probes_sent_total",
                "Canary sessions handed to the producer.",
                registry=registry,
            ),
            probes=Counter(
                "rapport_canary_probes_total",
                "Canary probes by outcome: succeeded (its signal arrived), timed_out, send_failed.",
                ["outcome"],
                registry=registry,
            ),
            latency=Histogram(
                "rapport_canary_latency_seconds",
                "From sending a canary session to reading its result at a stage (scored, signal).",
                ["stage"],
                buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300),
                registry=registry,
            ),
            last_success=Gauge(
                "rapport_canary_last_success_timestamp_seconds",
                "Unix time of the last canary probe whose signal arrived (0: none yet).",
                registry=registry,
            ),
            last_sent=Gauge(
                "rapport_canary_last_sent_timestamp_seconds",
                "Unix time of the last canary session sent.",
                registry=registry,
            ),
            pending=Gauge(
                "rapport_canary_pending_probes",
                "Canary probes sent whose signal has not arrived yet.",
                registry=registry,
            ),
            ready=Gauge(
                "rapport_canary_ready",
                "1 when the canary watches its topics and can send probes, else 0.",
                registry=registry,
            ),
        )
        for outcome in OUTCOMES:
            metrics.probes.labels(outcome)
        for stage in STAGES:
            metrics.latency.labels(stage)
        return metrics
