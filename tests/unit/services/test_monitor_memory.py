"""The monitor's memory stays flat over a long stream: its caches are bounded and keyed by value.

The live service decodes a client's stored state whenever it is not in the worker loop's cache (at
every event after a rebalance, or with more clients than the cache holds), so events bring freshly
decoded ``ScaleInfo`` objects; a cache keyed on their identity kept one entry (and the scale) per track
per event — a leak of megabytes per second at a few thousand surveys per second.

The stream: 20,000 clients; each client's first two events build an SRS and a PHQ-9 track (item 9
endorsed: a critical signal), every later event corrects one of them (a different total, a new event
id), so the client's stored trajectory keeps its size while every event is decoded, evaluated by the
rules and stored again as JSON, as the service does when its cache misses. Whatever the handler
retains beyond that state is growth.

Minutes long under tracemalloc, so marked ``slow``: ``make test`` (and so CI) runs it, ``make
test-unit`` does not; ``make test-slow`` runs it alone. ``tests/unit/rules/test_config.py`` checks the
cache itself in a second.
"""

from __future__ import annotations

import tracemalloc
import uuid
from itertools import cycle

import pytest

from services.monitor.handlers import state_key, track
from shared.contracts.events import SurveyScored
from shared.rules.config import default_rulebook
from shared.rules.trajectory import ClientState
from tests.support import T0, scored_events, session_event, srs

CLIENTS = 20_000
EVENTS = 200_000
WARM_UP = 50_000
MAX_GROWTH = 0.05


def _templates() -> dict[tuple[str, int], SurveyScored]:
    """Scored surveys (from the real scoring handler) for each (instrument, variant) the stream uses."""
    phq = {"1": 2, "2": 2, "3": 1, "4": 2, "5": 1, "6": 1, "7": 2, "8": 1, "9": 1}  # total 13, item 9
    out: dict[tuple[str, int], SurveyScored] = {}
    for k, (srs_total, phq_first) in enumerate(((38.0, 2), (39.0, 3))):
        surveys = (("SRS", srs(srs_total)), ("PHQ-9", {**phq, "1": phq_first}))
        for event in scored_events(session_event(client="template", surveys=surveys)):
            out[(event.data.instrument, k)] = event
    return out


def _stream(templates: dict[tuple[str, int], SurveyScored]):  # type: ignore[no-untyped-def]
    """``EVENTS`` scored surveys of ``CLIENTS`` clients, round by round (one event per client a round)."""
    plan = cycle([("SRS", 0), ("PHQ-9", 0), ("SRS", 1), ("PHQ-9", 1)])
    steps = [next(plan) for _ in range(EVENTS // CLIENTS)]
    for instrument, variant in steps:
        template = templates[(instrument, variant)]
        for c in range(CLIENTS):
            client = f"c{c:06d}"
            data = template.data.model_copy(update={"client_id": client})
            yield template.model_copy(update={"id": uuid.uuid4(), "subject": client, "data": data})


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_handler_memory_is_flat_after_warm_up() -> None:
    rules = default_rulebook()
    templates = _templates()
    store: dict[str, str] = {}
    changes: dict[str, int] = {}
    signals = 0
    tracemalloc.start()
    try:
        for n, event in enumerate(_stream(templates), start=1):
            key = state_key(event)
            stored = store.get(key)
            outcome = track(event, ClientState.from_json(stored) if stored else None, rules, T0)
            if outcome.state is not None:
                store[key] = outcome.state.to_json()
            changes[outcome.change] = changes.get(outcome.change, 0) + 1
            signals += len(outcome.signals)
            if n == WARM_UP:
                after_warm_up, _ = tracemalloc.get_traced_memory()
        at_end, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The stream did what it says: every event was taken in and evaluated, one critical signal each.
    assert changes == {"appended": 2 * CLIENTS, "replaced": EVENTS - 2 * CLIENTS}
    assert signals == CLIENTS
    assert len(store) == CLIENTS
    growth = (at_end - after_warm_up) / after_warm_up
    assert growth < MAX_GROWTH, (
        f"traced memory grew {growth:.1%} from {after_warm_up / 1e6:.1f} MB after {WARM_UP:,} events "
        f"to {at_end / 1e6:.1f} MB after {EVENTS:,}"
    )
