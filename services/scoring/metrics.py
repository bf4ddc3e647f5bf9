"""The scoring service's Prometheus metrics, built on an injected registry."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram


@dataclass(frozen=True)
class ScoringMetrics:
    """Counters and histograms of the scoring worker. Labels are bounded vocabularies only."""

    sessions: Counter
    surveys_scored: Counter
    dead_letters: Counter
    processing_seconds: Histogram
    publish_seconds: Histogram

    @classmethod
    def create(cls, registry: CollectorRegistry) -> ScoringMetrics:
        """Register the metrics on ``registry``."""
        return cls(
            sessions=Counter(
                "rapport_scoring_sessions_total",
                "Session events consumed, by outcome (scored, partial, rejected).",
                ["outcome"],
                registry=registry,
            ),
            surveys_scored=Counter(
                "rapport_scoring_surveys_scored_total",
                "Surveys scored and published, by instrument.",
                ["instrument"],
                registry=registry,
            ),
            dead_letters=Counter(
                "rapport_scoring_dead_letters_total",
                "Records sent to the dead-letter topic, by reason code.",
                ["reason"],
                registry=registry,
            ),
            processing_seconds=Histogram(
                "rapport_scoring_processing_seconds",
                "Time to decode and score one session event (publishing is measured per batch).",
                buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
                registry=registry,
            ),
            publish_seconds=Histogram(
                "rapport_scoring_publish_seconds",
                "Time to publish one batch's results and receive every broker acknowledgement.",
                buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
                registry=registry,
            ),
        )
