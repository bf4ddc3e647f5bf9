"""The monitor's rule engine: pure functions over per-client trajectories and a versioned rule set.

Live (the monitor service, one scored survey at a time)::

    from shared.rules import ClientState, evaluate, load_rulebook

    book = load_rulebook()                           # once, at start-up
    state = ClientState.from_json(raw) if raw else None
    result = evaluate(state, survey_scored, book, now)
    table[key] = result.state.to_json()              # unless result.change == "unchanged"
    for signal in result.signals: publish(signal)

Offline (``rapport backtest``): :class:`History` + :func:`run_backtest`, over the same
:func:`evaluate_episode` the live path uses.
"""

from shared.rules.backtest import BacktestReport, History, run_backtest
from shared.rules.config import (
    RuleBook,
    RuleSet,
    default_rulebook,
    default_ruleset,
    load_rulebook,
    rulebook_from_mapping,
)
from shared.rules.engine import RULES, Finding, evaluate_episode
from shared.rules.live import Evaluation, evaluate, observation_from_event, signal_id
from shared.rules.trajectory import (
    MAX_EPISODES,
    MAX_OBSERVATIONS,
    Change,
    ClientState,
    EpisodeState,
    Observation,
    Track,
    insert_observation,
)

__all__ = [
    "MAX_EPISODES",
    "MAX_OBSERVATIONS",
    "RULES",
    "BacktestReport",
    "Change",
    "ClientState",
    "EpisodeState",
    "Evaluation",
    "Finding",
    "History",
    "Observation",
    "RuleBook",
    "RuleSet",
    "Track",
    "default_rulebook",
    "default_ruleset",
    "evaluate",
    "evaluate_episode",
    "insert_observation",
    "load_rulebook",
    "observation_from_event",
    "rulebook_from_mapping",
    "run_backtest",
    "signal_id",
]
