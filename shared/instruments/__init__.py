"""Instruments as data: validated YAML specs, a registry, and one generic pure scorer.

>>> from shared.instruments import default_registry, score_survey
>>> score_survey(default_registry(), "GAD-7", {str(i): 1 for i in range(1, 8)}).total
7.0
"""

from shared.instruments.registry import (
    Registry,
    default_registry,
    load_registry,
    load_spec,
    score_response,
    score_responses,
    score_survey,
)
from shared.instruments.scorer import ScoreFailure, ScoreResult, score
from shared.instruments.spec import InstrumentSpec, SpecError

__all__ = [
    "InstrumentSpec",
    "Registry",
    "ScoreFailure",
    "ScoreResult",
    "SpecError",
    "default_registry",
    "load_registry",
    "load_spec",
    "score",
    "score_response",
    "score_responses",
    "score_survey",
]
