"""The simulator's Prometheus metrics, on an injected registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

KINDS = ("valid", "invalid")


class SimulatorMetrics:
    """Counters of records sent (acknowledged by the broker, or written as history) and failed."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.events_sent = Counter(
            "rapport_simulator_events_sent",
            "Synthetic session-completed records delivered (broker-acknowledged or written to history).",
            ["kind"],
            registry=registry,
        )
        self.send_errors = Counter(
            "rapport_simulator_send_errors",
            "Synthetic records the producer failed to deliver.",
            ["kind"],
            registry=registry,
        )
        for kind in KINDS:
            self.events_sent.labels(kind=kind)
            self.send_errors.labels(kind=kind)

    def sent(self, valid: bool) -> None:
        """Count one delivered record."""
        self.events_sent.labels(kind="valid" if valid else "invalid").inc()

    def failed(self, valid: bool) -> None:
        """Count one record the producer gave up on."""
        self.send_errors.labels(kind="valid" if valid else "invalid").inc()
