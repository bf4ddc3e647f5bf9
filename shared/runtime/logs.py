"""JSON logs with allowlisted fields, for every service.

Logs are JSON lines carrying an allowlisted set of fields only: whatever else a caller passes in
``extra`` is dropped, so a client id or an answer can never reach a log line by accident.
"""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any

#: The only ``extra`` fields a log line may carry. None of them can hold PHI.
ALLOWED_LOG_FIELDS = frozenset(
    {
        "service",
        "endpoint",
        "stage",
        "reason",
        "error_type",
        "topic",
        "partition",
        "offset",
        "attempt",
        "count",
        "instrument",
        "rule",
        "kind",
        "severity",
        "event_id",
        "correlation_id",
        "elapsed_s",
    }
)

_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and allowlisted extras."""

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record`` as a JSON line, dropping non-allowlisted fields."""
        out: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": _message(record),
        }
        for key, value in vars(record).items():
            if key in ALLOWED_LOG_FIELDS and key not in _STANDARD_ATTRS:
                out[key] = value if isinstance(value, int | float | bool) else str(value)
        if record.exc_info and record.exc_info[0] is not None:
            # The exception type only: exception messages can echo input values.
            out["error_type"] = record.exc_info[0].__name__
        return json.dumps(out, separators=(",", ":"))


_SAFE_TOKEN = re.compile(r"^[A-Za-z0-9._:/@=-]{0,200}$")


def _safe_arg(value: object, depth: int = 0) -> object:
    """A log argument reduced to what cannot carry PHI: numbers, identifier-like strings (topics,
    group ids, hosts), sequences of those (topic-partitions); anything else — free text, bytes,
    mappings (a decoded record would be one) — by type only."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return value if _SAFE_TOKEN.match(value) else "<str>"
    if isinstance(value, BaseException):
        return type(value).__name__
    if depth < 3 and isinstance(value, tuple | list | set | frozenset):
        items = [_safe_arg(v, depth + 1) for v in list(value)[:50]]
        return tuple(items) if isinstance(value, tuple) else items
    return f"<{type(value).__name__}>"


def _message(record: logging.LogRecord) -> str:
    # Our own messages are fixed strings with allowlisted args. Third-party libraries may format a
    # record's value into theirs, so their args are reduced to PHI-free forms before formatting.
    if record.name.startswith(("shared", "services")):
        return record.getMessage()
    template = record.msg if isinstance(record.msg, str) else type(record.msg).__name__
    if not record.args:
        return template
    args = record.args if isinstance(record.args, tuple) else (record.args,)
    try:
        return template % tuple(_safe_arg(a) for a in args)
    except (TypeError, ValueError, KeyError):
        return template


def logging_config(level: str = "INFO") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` mapping that sends every logger through ``JsonFormatter``."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": f"{__name__}.JsonFormatter"}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": level.upper(), "handlers": ["stderr"]},
    }


class RepeatFilter(logging.Filter):
    """Lets a third-party message template through at most once per ``window_s`` per logger.

    aiokafka logs a metadata failure per attempt while a broker is away — thousands of lines a
    second — which would drown everything else. Rapport's own lines are never filtered.
    """

    def __init__(self, window_s: float = 10.0) -> None:
        super().__init__()
        self.window_s = window_s
        self._last: dict[tuple[str, str], float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        """True when ``record`` should be written."""
        if record.name.startswith(("shared", "services")):
            return True
        key = (record.name, record.msg if isinstance(record.msg, str) else type(record.msg).__name__)
        last = self._last.get(key)
        if last is not None and record.created - last < self.window_s:
            return False
        if len(self._last) > 10_000:
            self._last.clear()
        self._last[key] = record.created
        return True
