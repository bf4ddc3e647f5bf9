"""The canary's pure core: which records answer a probe, and the probes still waiting.

No Kafka here: the app feeds records and clock readings in.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from shared.contracts.canary import CANARY_CLIENT_PREFIX, CANARY_CLINIC_ID, CANARY_SIGNAL_KIND, is_canary
from shared.contracts.keys import subject_key

#: The stage whose arrival makes a probe a success when the notifier is part of the pipeline: the
#: probe's alert delivered (to the notifier's null channel).
FINAL_STAGE = "alerted"
#: The last stage without the notifier: the monitor's signal.
SIGNAL_STAGE = "signal"
#: Every record about a canary client is keyed by its subject (``rapport-canary|canary-…``).
_KEY_PREFIX = subject_key(CANARY_CLINIC_ID, CANARY_CLIENT_PREFIX)


def probe_of(stage: str, key: bytes | None, value: bytes) -> str | None:
    """The probe (correlation) id a record at ``stage`` answers, or None for any other record.

    Records are filtered by key first (canary clients' pseudonyms share a prefix), so real traffic is
    skipped without decoding it. ``scored``: any scored survey of a canary session; ``signal``: the
    ``critical_item`` signal every probe must raise; ``alerted``: its alert delivered by the notifier
    (alerts are keyed by alert id, so that stage is filtered by a cheap substring test instead).
    """
    if stage == FINAL_STAGE:
        if b'"rapport.alert.delivered"' not in value:
            return None
    elif key is None or not key.startswith(_KEY_PREFIX):
        return None
    try:
        event = json.loads(value)
    except ValueError:
        return None
    if not isinstance(event, dict) or not is_canary(event.get("clinic_id")):
        return None
    if stage in (SIGNAL_STAGE, FINAL_STAGE):
        data = event.get("data")
        if not isinstance(data, dict) or data.get("kind") != CANARY_SIGNAL_KIND:
            return None
    correlation = event.get("correlation_id")
    return correlation if isinstance(correlation, str) else None


@dataclass
class Probe:
    """One probe in flight."""

    sent_at: float
    seen: set[str] = field(default_factory=set)


@dataclass
class ProbeTracker:
    """Probes in flight, by id, on a monotonic clock supplied by the caller."""

    timeout_s: float
    final: str = FINAL_STAGE
    """The stage that completes a probe."""
    pending: dict[str, Probe] = field(default_factory=dict)

    def sent(self, probe_id: str, at: float) -> None:
        """Record that probe ``probe_id`` was sent at ``at``."""
        self.pending[probe_id] = Probe(at)

    def forget(self, probe_id: str) -> bool:
        """Drop a probe (its send failed); True if it was pending."""
        return self.pending.pop(probe_id, None) is not None

    def seen(self, stage: str, probe_id: str, at: float) -> float | None:
        """The latency of the first sighting of ``probe_id`` at ``stage``, else None (unknown probe,
        a redelivery, or a stage seen before). The final stage completes the probe."""
        probe = self.pending.get(probe_id)
        if probe is None or stage in probe.seen:
            return None
        probe.seen.add(stage)
        if stage == self.final:
            del self.pending[probe_id]
        return max(0.0, at - probe.sent_at)

    def expire(self, at: float) -> list[str]:
        """Remove and return the probes sent more than ``timeout_s`` before ``at``."""
        late = [pid for pid, probe in self.pending.items() if at - probe.sent_at > self.timeout_s]
        for pid in late:
            del self.pending[pid]
        return late
