"""JSON logs with allowlisted fields, for every service.

Logs are JSON lines carrying an allowlisted set of fields only: whatever else a caller passes in
``extra`` is dropped, so a client id or an answer can never reach a log line by accident.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable
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
        "repeated",
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


#: Interval within which a repeated warning or error of one kind is logged once.
REPEAT_INTERVAL_S = 60.0


class RepeatFilter(logging.Filter):
    """Logs each kind of warning or error once per interval, with a count.

    A kind is (logger, level, message template): the arguments may differ (a node id, an offset),
    the kind does not. The first record of a kind passes; the next ones within ``interval_s`` are
    dropped and counted, and the first one after the interval passes carrying ``repeated``: how many
    were dropped since the last one logged. A broker outage then costs a few lines a minute instead
    of thousands. Records below ``min_level`` always pass.
    """

    def __init__(
        self,
        interval_s: float = REPEAT_INTERVAL_S,
        min_level: int = logging.WARNING,
        clock: Callable[[], float] = time.monotonic,
        max_kinds: int = 1000,
    ) -> None:
        super().__init__()
        self.interval_s = interval_s
        self.min_level = min_level
        self.clock = clock
        self.max_kinds = max_kinds
        self._kinds: dict[tuple[str, int, str], list[float]] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        """True when ``record`` is to be logged (see the class docstring)."""
        if record.levelno < self.min_level:
            return True
        template = record.msg if isinstance(record.msg, str) else type(record.msg).__name__
        kind = (record.name, record.levelno, template)
        now = self.clock()
        with self._lock:
            seen = self._kinds.get(kind)
            if seen is not None and now - seen[0] < self.interval_s:
                seen[1] += 1
                return False
            if seen is not None and seen[1]:
                record.repeated = int(seen[1])
            if seen is None and len(self._kinds) >= self.max_kinds:
                self._kinds.pop(next(iter(self._kinds)))
            self._kinds[kind] = [now, 0]
        return True


def logging_config(level: str = "INFO", repeat_interval_s: float = REPEAT_INTERVAL_S) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` mapping that sends every logger through ``JsonFormatter``, with
    repeated warnings and errors logged once per kind per ``repeat_interval_s`` (``RepeatFilter``)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": f"{__name__}.JsonFormatter"}},
        "filters": {"repeats": {"()": f"{__name__}.RepeatFilter", "interval_s": repeat_interval_s}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "filters": ["repeats"],
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": level.upper(), "handlers": ["stderr"]},
    }
