"""The monitor service's own Prometheus metrics (the worker loop keeps the common ones)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram


@dataclass(frozen=True)
class MonitorMetrics:
    """Counters and histograms of the monitor beyond the loop's. Labels are bounded vocabularies."""

    signals: Counter
    score_to_signal_seconds: Histogram

    @classmethod
    def create(cls, registry: CollectorRegistry) -> MonitorMetrics:
        """Register the metrics on ``registry``."""
        return cls(
            signals=Counter(
                "rapport_monitor_signals_total",
                "Signals published, by kind and severity.",
                ["kind", "severity"],
                registry=registry,
            ),
            score_to_signal_seconds=Histogram(
                "rapport_monitor_score_to_signal_seconds",
                "From the scored event's time to its signal's publication.",
                buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
                registry=registry,
            ),
        )
