"""The scoring service's own Prometheus metrics (the worker loop keeps the common ones)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter


@dataclass(frozen=True)
class ScoringMetrics:
    """Counters of the scoring worker beyond the loop's. Labels are bounded vocabularies only."""

    surveys_scored: Counter
    risk_signals: Counter
    unroutable_risk: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> ScoringMetrics:
        """Register the metrics on ``registry``."""
        return cls(
            surveys_scored=Counter(
                "rapport_scoring_surveys_scored_total",
                "Surveys scored and published, by instrument.",
                ["instrument"],
                registry=registry,
            ),
            risk_signals=Counter(
                "rapport_scoring_risk_signals_total",
                "critical_item signals raised by scoring itself, from session events that failed "
                "validation, by instrument.",
                ["instrument"],
                registry=registry,
            ),
            unroutable_risk=Counter(
                "rapport_scoring_unroutable_risk_total",
                "Endorsed critical items in records whose clinic could not be read: no signal could "
                "be addressed (page on any increase).",
                registry=registry,
            ),
        )
