"""The monitor service's Prometheus metrics, built on an injected registry."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram


@dataclass(frozen=True)
class MonitorMetrics:
    """Counters and histograms of the monitor worker. Labels are bounded vocabularies only."""

    scores: Counter
    signals: Counter
    dead_letters: Counter
    processing_seconds: Histogram
    score_to_signal_seconds: Histogram

    @classmethod
    def create(cls, registry: CollectorRegistry) -> MonitorMetrics:
        """Register the metrics on ``registry``."""
        return cls(
            scores=Counter(
                "rapport_monitor_scores_total",
                "Scored surveys consumed, by how they changed the trajectory "
                "(appended, inserted_late, replaced, unchanged, rejected).",
                ["outcome"],
                registry=registry,
            ),
            signals=Counter(
                "rapport_monitor_signals_total",
                "Signals published, by kind and severity.",
                ["kind", "severity"],
                registry=registry,
            ),
            dead_letters=Counter(
                "rapport_monitor_dead_letters_total",
                "Records sent to the dead-letter topic, by reason code.",
                ["reason"],
                registry=registry,
            ),
            processing_seconds=Histogram(
                "rapport_monitor_processing_seconds",
                "Time to take one scored survey into its trajectory and publish its signals.",
                buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
                registry=registry,
            ),
            score_to_signal_seconds=Histogram(
                "rapport_monitor_score_to_signal_seconds",
                "From the scored event's time to its signal's publication.",
                buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
                registry=registry,
            ),
        )
