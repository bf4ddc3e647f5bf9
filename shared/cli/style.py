"""Terminal styling for output a person reads: colour only on a terminal, and never with ``NO_COLOR``.

JSON Lines never carry colour. Tables and the demo use :class:`Style`, which adds ANSI codes only when
the stream is a TTY, ``NO_COLOR`` is unset or empty (https://no-color.org) and ``TERM`` is not
``dumb`` — so output piped to a file or another program is plain text.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import IO, Any

BOLD, DIM, RED, GREEN, YELLOW, CYAN, RESET = "1", "2", "31", "32", "33", "36", "0"

SEVERITY_CODES: Mapping[str, tuple[str, ...]] = {
    "critical": (RED, BOLD),
    "high": (RED,),
    "moderate": (YELLOW,),
    "info": (GREEN,),
}


def use_colour(stream: IO[Any], environ: Mapping[str, str] | None = None) -> bool:
    """True when ``stream`` is a terminal and neither ``NO_COLOR`` nor ``TERM=dumb`` says otherwise."""
    env = os.environ if environ is None else environ
    if env.get("NO_COLOR", "") != "" or env.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if isatty is not None else False
    except ValueError:  # a closed stream
        return False


class Style:
    """Wraps text in ANSI codes when enabled, returns it unchanged otherwise."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    @classmethod
    def for_stream(cls, stream: IO[Any]) -> Style:
        """A style that colours only if ``stream`` is a terminal (see :func:`use_colour`)."""
        return cls(use_colour(stream))

    def __call__(self, text: str, *codes: str) -> str:
        """``text`` in the given SGR codes (e.g. ``RED, BOLD``), or plain."""
        if not self.enabled or not codes:
            return text
        return f"\033[{';'.join(codes)}m{text}\033[0m"

    def severity(self, severity: str, text: str | None = None) -> str:
        """``text`` (default: the severity itself) in the severity's colour."""
        return self(severity if text is None else text, *SEVERITY_CODES.get(severity, ()))


def cell(value: object, width: int, align: str = "<") -> str:
    """``value`` padded to ``width`` (never cut: a long value widens its row, nothing is hidden)."""
    text = "—" if value is None or value == "" else str(value)
    return f"{text:{align}{width}}"
